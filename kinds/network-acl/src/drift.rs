//! Drift of a network ACL: its ingress entries, from the state (the ACL's `ingress` blocks and
//! the `aws_network_acl_rule`s that name it) and from one `DescribeNetworkAcls` per 200 ACLs.
//! The default deny-all entry (rule 32767) is AWS's, never Terraform's, so it is left out.

use std::collections::BTreeSet;

use salve_core::state_attributes::{self as attrs, Attributes};
use salve_core::{
    is_not_found, read_in_batches, to_aws_error, AwsError, BoxFuture, Declared, KindDrift, LiveOne,
    LiveRead, SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::NetworkAcl;

const BATCH: usize = 200;
const DEFAULT_RULE: i64 = 32767;

fn entry(
    number: i64,
    action: &str,
    protocol: &str,
    from: Option<i64>,
    to: Option<i64>,
    cidr: &str,
) -> String {
    format!(
        "#{number} {} {} from {cidr}",
        action.to_ascii_lowercase(),
        attrs::ports(protocol, from, to)
    )
}

/// One `ingress` block (`rule_no`, `action`) or `aws_network_acl_rule` (`rule_number`,
/// `rule_action`).
fn declared_entry(block: &Attributes, out: &mut BTreeSet<String>) -> Result<(), String> {
    let number = match attrs::integer(block, "rule_no")? {
        Some(n) => n,
        None => attrs::integer(block, "rule_number")?
            .ok_or("the entry has neither rule_no nor rule_number")?,
    };
    let action = match attrs::string(block, "action")? {
        Some(a) => a,
        None => attrs::string(block, "rule_action")?.ok_or("the entry has no action")?,
    };
    let protocol = attrs::string(block, "protocol")?.unwrap_or("-1");
    let (from, to) = (
        attrs::integer(block, "from_port")?,
        attrs::integer(block, "to_port")?,
    );
    for key in ["cidr_block", "ipv6_cidr_block"] {
        if let Some(cidr) = attrs::string(block, key)? {
            out.insert(entry(number, action, protocol, from, to, cidr));
        }
    }
    Ok(())
}

fn ingress(entries: BTreeSet<String>) -> SecurityAttributes {
    SecurityAttributes::from([("ingress".to_string(), json!(entries))])
}

impl KindDrift for NetworkAcl {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        let arn = attrs::arn_or(instance.attributes, || {
            format!(
                "arn:{}:ec2:{}:{}:network-acl/{}",
                salve_contract::partition_of(instance.region),
                instance.region,
                instance.account_id,
                instance.id
            )
        })?;
        let mut entries = BTreeSet::new();
        let mut declared = false;
        if let Some(blocks) = attrs::blocks(instance.attributes, "ingress")? {
            declared = true;
            for b in blocks {
                declared_entry(b, &mut entries).map_err(|e| format!("ingress: {e}"))?;
            }
        }
        for (resource_type, a) in instance.configured_by {
            declared = true;
            if attrs::boolean(a, "egress")? != Some(true) {
                declared_entry(a, &mut entries).map_err(|e| format!("{resource_type}: {e}"))?;
            }
        }
        Ok(Declared {
            arn,
            attributes: if declared {
                ingress(entries)
            } else {
                SecurityAttributes::new()
            },
        })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        let client = aws_sdk_ec2::Client::new(read.session);
        Box::pin(read_in_batches(read.ids, BATCH, move |chunk| {
            let client = client.clone();
            async move {
                match described(&client, &chunk).await {
                    // An ID list fails whole when one ACL is gone: read the batch's ACLs one
                    // at a time, so the others are still compared.
                    Err(e) if is_not_found(&e.code) => {
                        let mut found = Vec::new();
                        for id in &chunk {
                            match described(&client, std::slice::from_ref(id)).await {
                                Ok(acls) => found.extend(acls),
                                Err(e) if is_not_found(&e.code) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(found)
                    }
                    read => read,
                }
            }
        }))
    }
}

/// The ACLs `ids` name, by ID list rather than the `network-acl-id` filter the other EC2 kinds'
/// readers use: moto server, which the tests run against, answers that filter with a 500, and
/// with the fallback above an ID list tolerates a deleted ACL as well.
async fn described(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<Vec<(String, SecurityAttributes)>, AwsError> {
    let out = client
        .describe_network_acls()
        .set_network_acl_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(to_aws_error)?;
    Ok(out
        .network_acls()
        .iter()
        .filter_map(|acl| {
            let live = ingress(acl.entries().iter().filter_map(live_entry).collect());
            Some((acl.network_acl_id()?.to_string(), live))
        })
        .collect())
}

/// An ingress entry as [`entry`] spells it; `None` for egress and AWS's default rule.
fn live_entry(e: &aws_sdk_ec2::types::NetworkAclEntry) -> Option<String> {
    let number = i64::from(e.rule_number().unwrap_or(0));
    if e.egress().unwrap_or(false) || number == DEFAULT_RULE {
        return None;
    }
    let range = e.port_range();
    Some(entry(
        number,
        e.rule_action().map(|a| a.as_str()).unwrap_or(""),
        e.protocol().unwrap_or("-1"),
        range.and_then(|r| r.from()).map(i64::from),
        range.and_then(|r| r.to()).map(i64::from),
        e.cidr_block().or(e.ipv6_cidr_block()).unwrap_or(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_rule_resources_read_alike() {
        let acl = json!({"id": "acl-1", "ingress": [
            {"rule_no": 100, "action": "allow", "protocol": "tcp", "from_port": 443,
             "to_port": 443, "cidr_block": "0.0.0.0/0", "ipv6_cidr_block": ""}]});
        let rule = json!({"rule_number": 200, "rule_action": "deny", "protocol": "6",
            "from_port": 22, "to_port": 22, "cidr_block": "0.0.0.0/0", "egress": false});
        let out = json!({"rule_number": 300, "rule_action": "allow", "protocol": "-1",
            "cidr_block": "0.0.0.0/0", "egress": true});
        let configured = [
            ("aws_network_acl_rule", rule.as_object().unwrap()),
            ("aws_network_acl_rule", out.as_object().unwrap()),
        ];
        let declared = NetworkAcl::declared(StateInstance {
            id: "acl-1",
            attributes: acl.as_object().unwrap(),
            configured_by: &configured,
            account_id: "123456789012",
            region: "us-east-1",
        })
        .unwrap();
        assert_eq!(
            declared.attributes["ingress"],
            json!([
                "#100 allow tcp 443-443 from 0.0.0.0/0",
                "#200 deny tcp 22-22 from 0.0.0.0/0"
            ])
        );
    }
}
