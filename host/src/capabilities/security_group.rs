//! The `security-group` capability, bound to the finding's security group.

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};
use serde_json::json;

use super::salve::fixer::security_group::{Host, IngressRule, RuleSource};
use super::{AwsError, BoxFuture, Capabilities, FixerError, ResourceBackend, Tags};
use crate::actions::{SG_AUTHORIZE_INGRESS, SG_DESCRIBE_INGRESS, SG_REVOKE_INGRESS};
use crate::aws::to_aws_error;

/// What the capability needs from EC2 for one security group.
pub trait SecurityGroupBackend: Send + Sync {
    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>>;
    fn revoke_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>>;
    fn authorize_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The group's tags (ec2:DescribeSecurityGroups), read by the host for eligibility metadata.
    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>>;
}

/// The real backend: the AWS SDK's EC2 client and the one group it may touch.
pub struct AwsSecurityGroup {
    client: aws_sdk_ec2::Client,
    group_id: String,
}

impl AwsSecurityGroup {
    pub fn new(client: aws_sdk_ec2::Client, group_id: String) -> AwsSecurityGroup {
        AwsSecurityGroup { client, group_id }
    }
}

/// Splits EC2's grouped permissions into one rule per source.
pub fn flatten_permissions(permissions: &[IpPermission]) -> Vec<IngressRule> {
    let mut rules = Vec::new();
    for p in permissions {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let rule = |source: RuleSource, description: Option<&str>| IngressRule {
            protocol: protocol.clone(),
            from_port: p.from_port(),
            to_port: p.to_port(),
            source,
            description: description.map(str::to_string),
        };
        for r in p.ip_ranges() {
            if let Some(cidr) = r.cidr_ip() {
                rules.push(rule(
                    RuleSource::Ipv4Cidr(cidr.to_string()),
                    r.description(),
                ));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(cidr) = r.cidr_ipv6() {
                rules.push(rule(
                    RuleSource::Ipv6Cidr(cidr.to_string()),
                    r.description(),
                ));
            }
        }
        for r in p.user_id_group_pairs() {
            if let Some(group) = r.group_id() {
                rules.push(rule(
                    RuleSource::SecurityGroup(group.to_string()),
                    r.description(),
                ));
            }
        }
        for r in p.prefix_list_ids() {
            if let Some(list) = r.prefix_list_id() {
                rules.push(rule(
                    RuleSource::PrefixList(list.to_string()),
                    r.description(),
                ));
            }
        }
    }
    rules
}

/// One EC2 permission per rule, so a revoke names exactly the rules the plan listed.
pub fn to_permissions(rules: &[IngressRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|r| {
            let mut p = IpPermission::builder().ip_protocol(&r.protocol);
            if r.protocol != "-1" {
                p = p.set_from_port(r.from_port).set_to_port(r.to_port);
            }
            let description = r.description.clone();
            match &r.source {
                RuleSource::Ipv4Cidr(c) => p.ip_ranges(
                    IpRange::builder()
                        .cidr_ip(c)
                        .set_description(description)
                        .build(),
                ),
                RuleSource::Ipv6Cidr(c) => p.ipv6_ranges(
                    Ipv6Range::builder()
                        .cidr_ipv6(c)
                        .set_description(description)
                        .build(),
                ),
                RuleSource::SecurityGroup(g) => p.user_id_group_pairs(
                    UserIdGroupPair::builder()
                        .group_id(g)
                        .set_description(description)
                        .build(),
                ),
                RuleSource::PrefixList(l) => p.prefix_list_ids(
                    PrefixListId::builder()
                        .prefix_list_id(l)
                        .set_description(description)
                        .build(),
                ),
            }
            .build()
        })
        .collect()
}

impl AwsSecurityGroup {
    async fn describe(&self) -> Result<aws_sdk_ec2::types::SecurityGroup, AwsError> {
        let out = self
            .client
            .describe_security_groups()
            .group_ids(&self.group_id)
            .send()
            .await
            .map_err(to_aws_error)?;
        out.security_groups()
            .iter()
            .find(|g| g.group_id() == Some(self.group_id.as_str()))
            .cloned()
            .ok_or_else(|| AwsError {
                code: "InvalidGroup.NotFound".into(),
                message: format!("security group {} was not in the response", self.group_id),
                request_id: None,
                retryable: false,
            })
    }
}

impl SecurityGroupBackend for AwsSecurityGroup {
    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>> {
        Box::pin(async move { Ok(flatten_permissions(self.describe().await?.ip_permissions())) })
    }

    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        Box::pin(async move {
            Ok(self
                .describe()
                .await?
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect())
        })
    }

    fn revoke_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .revoke_security_group_ingress()
                .group_id(&self.group_id)
                .set_ip_permissions(Some(to_permissions(&rules)))
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn authorize_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .authorize_security_group_ingress()
                .group_id(&self.group_id)
                .set_ip_permissions(Some(to_permissions(&rules)))
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }
}

impl Capabilities {
    fn security_group(&self) -> wasmtime::Result<std::sync::Arc<dyn SecurityGroupBackend>> {
        match &self.backend {
            ResourceBackend::SecurityGroup(b) => Ok(b.clone()),
            _ => Err(wasmtime::format_err!(
                "security-group called on a finding that is not a security group"
            )),
        }
    }
}

impl Host for Capabilities {
    async fn describe_ingress(&mut self) -> wasmtime::Result<Result<Vec<IngressRule>, FixerError>> {
        let backend = self.security_group()?;
        Ok(self
            .call(&SG_DESCRIBE_INGRESS, None, backend.describe_ingress())
            .await)
    }

    async fn revoke_ingress(
        &mut self,
        rules: Vec<IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = self.security_group()?;
        let request = json!(rules);
        Ok(self
            .call(
                &SG_REVOKE_INGRESS,
                Some(request),
                backend.revoke_ingress(rules),
            )
            .await)
    }

    async fn authorize_ingress(
        &mut self,
        rules: Vec<IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = self.security_group()?;
        let request = json!(rules);
        Ok(self
            .call(
                &SG_AUTHORIZE_INGRESS,
                Some(request),
                backend.authorize_ingress(rules),
            )
            .await)
    }
}
