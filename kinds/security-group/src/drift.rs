//! Drift of a security group: its ingress rules, from the state (the group's `ingress` blocks
//! and the rule resources that name it) and from one `DescribeSecurityGroups` per 200 groups.

use std::collections::BTreeSet;

use salve_core::state_attributes::{self as attrs, Attributes};
use salve_core::{
    AwsError, BoxFuture, Declared, KindDrift, LiveOne, LiveRead, SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::{flatten_permissions, IngressRule, RuleSource, SecurityGroup};

/// EC2 takes at most 200 values in one filter.
const BATCH: usize = 200;

fn rule(protocol: &str, from: Option<i64>, to: Option<i64>, source: &str) -> String {
    format!("{} from {source}", attrs::ports(protocol, from, to))
}

fn live_rule(r: &IngressRule) -> String {
    let source = match &r.source {
        RuleSource::Ipv4Cidr(c) | RuleSource::Ipv6Cidr(c) => c.clone(),
        RuleSource::SecurityGroup(g) => g.clone(),
        RuleSource::PrefixList(l) => l.clone(),
    };
    rule(
        &r.protocol,
        r.from_port.map(i64::from),
        r.to_port.map(i64::from),
        &source,
    )
}

/// The rules of an `ingress` block or an `aws_security_group_rule`: one per source.
fn classic_rules(
    block: &Attributes,
    group_id: &str,
    out: &mut BTreeSet<String>,
) -> Result<(), String> {
    let protocol = attrs::string(block, "protocol")?.unwrap_or("-1");
    let from = attrs::integer(block, "from_port")?;
    let to = attrs::integer(block, "to_port")?;
    let mut sources: Vec<&str> = Vec::new();
    for key in [
        "cidr_blocks",
        "ipv6_cidr_blocks",
        "prefix_list_ids",
        "security_groups",
    ] {
        sources.extend(attrs::strings(block, key)?);
    }
    sources.extend(attrs::string(block, "source_security_group_id")?);
    if attrs::boolean(block, "self")?.unwrap_or(false) {
        sources.push(group_id);
    }
    out.extend(sources.into_iter().map(|s| rule(protocol, from, to, s)));
    Ok(())
}

/// An `aws_vpc_security_group_ingress_rule`: one source each.
fn vpc_rule(block: &Attributes, out: &mut BTreeSet<String>) -> Result<(), String> {
    let protocol = attrs::string(block, "ip_protocol")?.unwrap_or("-1");
    let from = attrs::integer(block, "from_port")?;
    let to = attrs::integer(block, "to_port")?;
    for key in [
        "cidr_ipv4",
        "cidr_ipv6",
        "prefix_list_id",
        "referenced_security_group_id",
    ] {
        if let Some(source) = attrs::string(block, key)? {
            out.insert(rule(protocol, from, to, source));
        }
    }
    Ok(())
}

fn ingress(rules: BTreeSet<String>) -> SecurityAttributes {
    SecurityAttributes::from([("ingress".to_string(), json!(rules))])
}

impl KindDrift for SecurityGroup {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        let arn = attrs::arn_or(instance.attributes, || {
            format!(
                "arn:{}:ec2:{}:{}:security-group/{}",
                salve_contract::partition_of(instance.region),
                instance.region,
                instance.account_id,
                instance.id
            )
        })?;
        let mut rules = BTreeSet::new();
        let mut declared = false;
        if let Some(blocks) = attrs::blocks(instance.attributes, "ingress")? {
            declared = true;
            for b in blocks {
                classic_rules(b, instance.id, &mut rules).map_err(|e| format!("ingress: {e}"))?;
            }
        }
        for (resource_type, a) in instance.configured_by {
            declared = true;
            match *resource_type {
                "aws_security_group_rule" => {
                    if attrs::string(a, "type")? == Some("ingress") {
                        classic_rules(a, instance.id, &mut rules)
                            .map_err(|e| format!("{resource_type}: {e}"))?;
                    }
                }
                _ => vpc_rule(a, &mut rules).map_err(|e| format!("{resource_type}: {e}"))?,
            }
        }
        Ok(Declared {
            arn,
            attributes: if declared {
                ingress(rules)
            } else {
                SecurityAttributes::new()
            },
        })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        salve_core::live_by_filter!(
            aws_sdk_ec2::Client::new(read.session),
            read.ids,
            BATCH,
            aws_sdk_ec2::types::Filter,
            "group-id",
            describe_security_groups,
            security_groups,
            |g| (
                g.group_id(),
                ingress(
                    flatten_permissions(g.ip_permissions())
                        .iter()
                        .map(live_rule)
                        .collect(),
                )
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_terraform_declares_a_rule_reads_alike() {
        let group = json!({"id": "sg-1", "ingress": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"],
             "ipv6_cidr_blocks": [], "prefix_list_ids": [], "security_groups": [], "self": false,
             "description": "ssh"}]});
        let rule = json!({"type": "ingress", "protocol": "6", "from_port": 443, "to_port": 443,
            "cidr_blocks": ["0.0.0.0/0"], "security_group_id": "sg-1", "self": true});
        let egress = json!({"type": "egress", "protocol": "-1", "from_port": 0, "to_port": 0,
            "cidr_blocks": ["0.0.0.0/0"]});
        let vpc = json!({"ip_protocol": "-1", "cidr_ipv4": "192.168.0.0/16"});
        let (g, r, e, v) = (
            group.as_object().unwrap(),
            rule.as_object().unwrap(),
            egress.as_object().unwrap(),
            vpc.as_object().unwrap(),
        );
        let configured = [
            ("aws_security_group_rule", r),
            ("aws_security_group_rule", e),
            ("aws_vpc_security_group_ingress_rule", v),
        ];
        let declared = SecurityGroup::declared(StateInstance {
            id: "sg-1",
            attributes: g,
            configured_by: &configured,
            account_id: "123456789012",
            region: "us-east-1",
        })
        .unwrap();
        assert_eq!(
            declared.arn,
            "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1"
        );
        assert_eq!(
            declared.attributes["ingress"],
            json!([
                "all from 192.168.0.0/16",
                "tcp 22-22 from 10.0.0.0/8",
                "tcp 443-443 from 0.0.0.0/0",
                "tcp 443-443 from sg-1"
            ])
        );
        let live = IngressRule {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            source: RuleSource::Ipv4Cidr("10.0.0.0/8".into()),
            description: Some("another description is not drift".into()),
        };
        assert_eq!(live_rule(&live), "tcp 22-22 from 10.0.0.0/8");
    }

    #[test]
    fn a_mistyped_state_is_an_error_naming_the_attribute() {
        let group = json!({"id": "sg-1", "ingress": [{"protocol": "tcp", "from_port": "ssh"}]});
        let err = SecurityGroup::declared(StateInstance {
            id: "sg-1",
            attributes: group.as_object().unwrap(),
            configured_by: &[],
            account_id: "1",
            region: "us-east-1",
        })
        .unwrap_err();
        assert!(err.contains("from_port"), "{err}");
    }
}
