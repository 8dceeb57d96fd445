//! The `security-group` capability, bound to the finding's security group, and its backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};
use salve_contract::{is_hex_id, Arn, CapabilityFunction, KindSpec};
use salve_core::{
    internal_error, tags_from, to_aws_error, AwsError, Binding, BoundResource, BoxFuture,
    Capabilities, DescribedTags, FixerError, KindHost, ObservedRead, PlannedCall, ReadBack,
    SdkConfig, TagRead, Tags,
};
use serde_json::{json, Value};

use crate::{AUTHORIZE_INGRESS, DESCRIBE_INGRESS, REVOKE_INGRESS, SPEC};
use bindings::salve::fixer::security_group::Host;
pub use bindings::salve::fixer::security_group::{IngressRule, RuleSource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/since_v0.1.0",
        inline: "
            package salve:kind-security-group;
            world kind { import salve:fixer/security-group@0.1.0; }
        ",
        world: "salve:kind-security-group/kind",
        imports: { default: async | trappable },
        with: { "salve:fixer/types": salve_core::bindings::salve::fixer::types },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// Contract 0.2.0: this kind's own package, with a typed plan.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:security-group/security-group-fixer-complete",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "salve:fixer/types@0.2.0": salve_core::bindings::salve::fixer::types,
            "salve:fixer/context@0.2.0": salve_core::v0_2::salve::fixer::context,
            "salve:fixer/results@0.2.0": salve_core::v0_2::salve::fixer::results,
            "salve:fixer/iac@0.2.0": salve_core::v0_2::salve::fixer::iac,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use v0_2::exports::salve::security_group::fixer as typed;
use v0_2::exports::salve::security_group::rollback as undo;
use v0_2::exports::salve::security_group::terraform as tf;
use v0_2::salve::security_group::capability as capability_v0_2;

impl From<capability_v0_2::IngressRule> for IngressRule {
    fn from(r: capability_v0_2::IngressRule) -> IngressRule {
        use capability_v0_2::RuleSource as S;
        IngressRule {
            protocol: r.protocol,
            from_port: r.from_port,
            to_port: r.to_port,
            source: match r.source {
                S::Ipv4Cidr(c) => RuleSource::Ipv4Cidr(c),
                S::Ipv6Cidr(c) => RuleSource::Ipv6Cidr(c),
                S::SecurityGroup(g) => RuleSource::SecurityGroup(g),
                S::PrefixList(l) => RuleSource::PrefixList(l),
            },
            description: r.description,
        }
    }
}

impl From<IngressRule> for capability_v0_2::IngressRule {
    fn from(r: IngressRule) -> capability_v0_2::IngressRule {
        use capability_v0_2::RuleSource as S;
        capability_v0_2::IngressRule {
            protocol: r.protocol,
            from_port: r.from_port,
            to_port: r.to_port,
            source: match r.source {
                RuleSource::Ipv4Cidr(c) => S::Ipv4Cidr(c),
                RuleSource::Ipv6Cidr(c) => S::Ipv6Cidr(c),
                RuleSource::SecurityGroup(g) => S::SecurityGroup(g),
                RuleSource::PrefixList(l) => S::PrefixList(l),
            },
            description: r.description,
        }
    }
}

fn rules_from<R: Into<IngressRule>>(rules: Vec<R>) -> Vec<IngressRule> {
    rules.into_iter().map(Into::into).collect()
}

/// A typed call as the host plans it: the function and the JSON the capability records for it.
fn host_call(call: typed::Call) -> (&'static CapabilityFunction, Value) {
    let (function, rules) = match call {
        typed::Call::RevokeIngress(rules) => (&REVOKE_INGRESS, rules_from(rules)),
        typed::Call::AuthorizeIngress(rules) => (&AUTHORIZE_INGRESS, rules_from(rules)),
    };
    (function, json!(rules))
}

/// The planned call's function and rules, from the host's form.
fn planned_rules(
    call: &PlannedCall,
) -> Result<(&'static CapabilityFunction, Vec<IngressRule>), String> {
    let function = [&REVOKE_INGRESS, &AUTHORIZE_INGRESS]
        .into_iter()
        .find(|f| f.is_called(&call.function))
        .ok_or_else(|| format!("{} is not a security-group write", call.function))?;
    let rules = serde::Deserialize::deserialize(&call.args)
        .map_err(|e| format!("{}: {e}", call.function))?;
    Ok((function, rules))
}

fn guest_call(call: &PlannedCall) -> Result<typed::Call, String> {
    let (function, rules) = planned_rules(call)?;
    let rules = rules.into_iter().map(Into::into).collect();
    Ok(if function.function == REVOKE_INGRESS.function {
        typed::Call::RevokeIngress(rules)
    } else {
        typed::Call::AuthorizeIngress(rules)
    })
}

salve_core::fixer_exports_v0_2! {
    typed: typed,
    rollback: undo,
    terraform: tf,
    host_call: host_call,
    guest_call: guest_call,
}

/// The kind's entry in the host's registry.
pub struct SecurityGroup;

impl KindHost for SecurityGroup {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_1: bindings::salve::fixer::security_group,
        v0_2: capability_v0_2,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        Box::pin(async move {
            let group = bound(binding)?;
            let (function, rules) = planned_rules(call).map_err(|e| internal_error(&e))?;
            let actual = group.describe_ingress().await?;
            let present = |r: &IngressRule| actual.iter().any(|a| same_rule(a, r));
            // A revoke's outcome is that none of its rules is left; an authorize's, that all are
            // there.
            let holds = if function.function == REVOKE_INGRESS.function {
                !rules.iter().any(present)
            } else {
                rules.iter().all(present)
            };
            Ok(ReadBack {
                holds,
                expected: json!({ function.function: rules }),
                actual: json!(actual),
                observed: ObservedRead::of(&DESCRIBE_INGRESS, &actual),
            })
        })
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, _path_style: bool) -> Binding {
        bind(Arc::new(AwsSecurityGroup::new(
            aws_sdk_ec2::Client::new(session),
            resource.name.to_string(),
        )))
    }

    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String> {
        let Some(id) = arn
            .resource
            .strip_prefix("security-group/")
            .filter(|id| is_hex_id(id, "sg-"))
        else {
            return Err("an AWS::EC2::SecurityGroup ARN looks like arn:aws:ec2:<region>:<account>:security-group/sg-<hex>".into());
        };
        arn.require_scope("ec2", account, region)?;
        Ok(id.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String {
        format!(
            "arn:{}:ec2:{region}:{account}:security-group/{name}",
            arn.partition
        )
    }

    fn arn_for_id(id: &str, _typed: bool, account: &str, region: &str) -> Option<String> {
        // The `sg-` prefix says what the ID is, whatever type the source named.
        id.starts_with("sg-").then(|| {
            format!(
                "arn:{}:ec2:{region}:{account}:security-group/{id}",
                salve_contract::partition_of(region)
            )
        })
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "ec2" && arn.resource.starts_with("security-group/")
    }
}

salve_core::kind_binding!(SecurityGroupBinding, SecurityGroupBackend, SPEC);

/// What the capability needs from EC2 for one security group.
pub trait SecurityGroupBackend: Send + Sync {
    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>>;
    fn revoke_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>>;
    fn authorize_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The group's tags (ec2:DescribeSecurityGroups), read by the host for eligibility metadata.
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
}

/// The real backend: the AWS SDK's EC2 client and the one group it may touch.
pub struct AwsSecurityGroup {
    client: aws_sdk_ec2::Client,
    group_id: String,
    described: DescribedTags,
}

impl AwsSecurityGroup {
    pub fn new(client: aws_sdk_ec2::Client, group_id: String) -> AwsSecurityGroup {
        AwsSecurityGroup {
            client,
            group_id,
            described: DescribedTags::default(),
        }
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
        self.described.pick(
            out.security_groups(),
            &self.group_id,
            |g| g.group_id(),
            tags_of,
            ("InvalidGroup.NotFound", "security group"),
        )
    }
}

/// The tags EC2 returned with the group.
fn tags_of(group: &aws_sdk_ec2::types::SecurityGroup) -> Tags {
    tags_from(group.tags().iter().map(|t| (t.key(), t.value())))
}

impl SecurityGroupBackend for AwsSecurityGroup {
    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>> {
        Box::pin(async move { Ok(flatten_permissions(self.describe().await?.ip_permissions())) })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        // describe() keeps the tags it saw; they are read again only if none are kept.
        Box::pin(self.described.read_or(self.describe()))
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

/// The capability's calls, shared by every contract version.
async fn describe_ingress(caps: &mut Capabilities) -> Result<Vec<IngressRule>, FixerError> {
    let backend = caps.backend::<SecurityGroupBinding>()?.0;
    caps.call(&DESCRIBE_INGRESS, None, backend.describe_ingress())
        .await
}

async fn write(
    caps: &mut Capabilities,
    function: &'static CapabilityFunction,
    rules: Vec<IngressRule>,
) -> Result<(), FixerError> {
    let backend = caps.backend::<SecurityGroupBinding>()?.0;
    let request = json!(rules);
    let call = if function.function == REVOKE_INGRESS.function {
        backend.revoke_ingress(rules)
    } else {
        backend.authorize_ingress(rules)
    };
    caps.call(function, Some(request), call).await
}

impl Host for Capabilities {
    async fn describe_ingress(&mut self) -> wasmtime::Result<Result<Vec<IngressRule>, FixerError>> {
        Ok(describe_ingress(self).await)
    }

    async fn revoke_ingress(
        &mut self,
        rules: Vec<IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write(self, &REVOKE_INGRESS, rules).await)
    }

    async fn authorize_ingress(
        &mut self,
        rules: Vec<IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write(self, &AUTHORIZE_INGRESS, rules).await)
    }
}

impl capability_v0_2::Host for Capabilities {
    async fn describe_ingress(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<capability_v0_2::IngressRule>, FixerError>> {
        Ok(describe_ingress(self)
            .await
            .map(|rules| rules.into_iter().map(Into::into).collect()))
    }

    async fn revoke_ingress(
        &mut self,
        rules: Vec<capability_v0_2::IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write(self, &REVOKE_INGRESS, rules_from(rules)).await)
    }

    async fn authorize_ingress(
        &mut self,
        rules: Vec<capability_v0_2::IngressRule>,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write(self, &AUTHORIZE_INGRESS, rules_from(rules)).await)
    }
}

/// In memory, for benchmarks and offline tests of the sandbox; counts writes so a test can prove
/// what reached the "resource".
#[derive(Default)]
pub struct InMemorySecurityGroup {
    pub rules: Mutex<Vec<IngressRule>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

impl InMemorySecurityGroup {
    pub fn with(rules: Vec<IngressRule>) -> InMemorySecurityGroup {
        InMemorySecurityGroup {
            rules: Mutex::new(rules),
            writes: AtomicUsize::new(0),
            tags: Tags::new(),
        }
    }
}

fn same_rule(a: &IngressRule, b: &IngressRule) -> bool {
    // EC2 matches revokes on protocol, ports and source; descriptions do not count.
    a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.source == b.source
}

impl SecurityGroupBackend for InMemorySecurityGroup {
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone().into()) })
    }

    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>> {
        Box::pin(async move {
            Ok(self
                .rules
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))?
                .clone())
        })
    }

    fn revoke_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut current = self
                .rules
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))?;
            current.retain(|r| !rules.iter().any(|x| same_rule(r, x)));
            Ok(())
        })
    }

    fn authorize_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.rules
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))?
                .extend(rules);
            Ok(())
        })
    }
}
