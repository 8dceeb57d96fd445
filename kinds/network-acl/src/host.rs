//! The `network-acl` capability, bound to the finding's network ACL, and its backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{PortRange, RuleAction};
use salve_contract::{is_hex_id, Arn, CapabilityFunction, KindSpec};
use salve_core::{
    internal_error, tags_from, to_aws_error, AwsError, Binding, BoundResource, BoxFuture,
    Capabilities, DescribedTags, FixerError, KindHost, ObservedRead, PlannedCall, ReadBack,
    SdkConfig, TagRead, Tags,
};
use serde_json::{json, Value};

use crate::{
    CREATE_INGRESS_ENTRY, DELETE_INGRESS_ENTRY, DESCRIBE_ENTRIES, REPLACE_INGRESS_ENTRY, SPEC,
};

/// Contract 0.2.0, the first to have this kind.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:network-acl/network-acl-fixer-complete",
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

use v0_2::exports::salve::network_acl::fixer as typed;
use v0_2::exports::salve::network_acl::rollback as undo;
use v0_2::exports::salve::network_acl::terraform as tf;
pub use v0_2::salve::network_acl::capability::AclEntry;
use v0_2::salve::network_acl::capability::Host;

/// A typed call as the host plans it: the function and the JSON the capability records for it.
fn host_call(call: typed::Call) -> (&'static CapabilityFunction, Value) {
    match call {
        typed::Call::DeleteIngressEntry(n) => (&DELETE_INGRESS_ENTRY, json!(n)),
        typed::Call::ReplaceIngressEntry(entry) => (&REPLACE_INGRESS_ENTRY, json!(entry)),
        typed::Call::CreateIngressEntry(entry) => (&CREATE_INGRESS_ENTRY, json!(entry)),
    }
}

/// A planned call in the guest's form, from the host's.
fn guest_call(call: &PlannedCall) -> Result<typed::Call, String> {
    let bad = |e: serde_json::Error| format!("{}: {e}", call.function);
    if DELETE_INGRESS_ENTRY.is_called(&call.function) {
        Ok(typed::Call::DeleteIngressEntry(
            serde::Deserialize::deserialize(&call.args).map_err(bad)?,
        ))
    } else if REPLACE_INGRESS_ENTRY.is_called(&call.function) {
        Ok(typed::Call::ReplaceIngressEntry(
            serde::Deserialize::deserialize(&call.args).map_err(bad)?,
        ))
    } else if CREATE_INGRESS_ENTRY.is_called(&call.function) {
        Ok(typed::Call::CreateIngressEntry(
            serde::Deserialize::deserialize(&call.args).map_err(bad)?,
        ))
    } else {
        Err(format!("{} is not a network-acl write", call.function))
    }
}

salve_core::fixer_exports_v0_2! {
    typed: typed,
    rollback: undo,
    terraform: tf,
    host_call: host_call,
    guest_call: guest_call,
}

/// The kind's entry in the host's registry.
pub struct NetworkAcl;

impl KindHost for NetworkAcl {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_2: v0_2::salve::network_acl::capability,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        Box::pin(async move {
            let acl = bound(binding)?;
            let call = guest_call(call).map_err(|e| internal_error(&e))?;
            let entries = acl.entries().await?;
            let ingress = |n: i32| entries.iter().find(|e| !e.egress && e.rule_number == n);
            let observed = ObservedRead::of(&DESCRIBE_ENTRIES, &entries);
            Ok(match call {
                typed::Call::DeleteIngressEntry(n) => ReadBack {
                    holds: ingress(n).is_none(),
                    expected: json!({ "ingress_entry": n, "present": false }),
                    actual: json!(ingress(n)),
                    observed,
                },
                typed::Call::ReplaceIngressEntry(entry)
                | typed::Call::CreateIngressEntry(entry) => ReadBack {
                    holds: ingress(entry.rule_number) == Some(&entry),
                    expected: json!(entry),
                    actual: json!(ingress(entry.rule_number)),
                    observed,
                },
            })
        })
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, _path_style: bool) -> Binding {
        bind(Arc::new(AwsNetworkAcl {
            client: aws_sdk_ec2::Client::new(session),
            acl_id: resource.name.to_string(),
            described: DescribedTags::default(),
        }))
    }

    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String> {
        let Some(id) = arn
            .resource
            .strip_prefix("network-acl/")
            .filter(|id| is_hex_id(id, "acl-"))
        else {
            return Err("an AWS::EC2::NetworkAcl ARN looks like arn:aws:ec2:<region>:<account>:network-acl/acl-<hex>".into());
        };
        arn.require_scope("ec2", account, region)?;
        Ok(id.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String {
        format!(
            "arn:{}:ec2:{region}:{account}:network-acl/{name}",
            arn.partition
        )
    }

    fn arn_for_id(id: &str, _typed: bool, account: &str, region: &str) -> Option<String> {
        // The `acl-` prefix says what the ID is.
        is_hex_id(id, "acl-").then(|| {
            format!(
                "arn:{}:ec2:{region}:{account}:network-acl/{id}",
                salve_contract::partition_of(region)
            )
        })
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "ec2" && arn.resource.starts_with("network-acl/")
    }
}

/// Fills an ingress entry into a create or replace request: the two SDK builders are distinct
/// types with the same setters.
macro_rules! ingress_entry {
    ($builder:expr, $acl_id:expr, $entry:expr) => {{
        let entry = $entry;
        let ports = match (entry.from_port, entry.to_port) {
            (Some(from), Some(to)) => Some(PortRange::builder().from(from).to(to).build()),
            _ => None,
        };
        $builder
            .network_acl_id(&$acl_id)
            .rule_number(entry.rule_number)
            .egress(false)
            .protocol(&entry.protocol)
            .rule_action(RuleAction::from(entry.rule_action.as_str()))
            .set_cidr_block(entry.cidr_block)
            .set_ipv6_cidr_block(entry.ipv6_cidr_block)
            .set_port_range(ports)
    }};
}

/// What the capability needs from EC2 for one network ACL.
pub trait NetworkAclBackend: Send + Sync {
    fn entries(&self) -> BoxFuture<'_, Result<Vec<AclEntry>, AwsError>>;
    fn delete_ingress(&self, rule_number: i32) -> BoxFuture<'_, Result<(), AwsError>>;
    fn replace_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>>;
    fn create_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>>;
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
}

salve_core::kind_binding!(NetworkAclBinding, NetworkAclBackend, SPEC);

/// The real backend: the AWS SDK's EC2 client and the one ACL it may touch.
pub struct AwsNetworkAcl {
    client: aws_sdk_ec2::Client,
    acl_id: String,
    described: DescribedTags,
}

impl AwsNetworkAcl {
    async fn describe(&self) -> Result<aws_sdk_ec2::types::NetworkAcl, AwsError> {
        let out = self
            .client
            .describe_network_acls()
            .network_acl_ids(&self.acl_id)
            .send()
            .await
            .map_err(to_aws_error)?;
        self.described.pick(
            out.network_acls(),
            &self.acl_id,
            |a| a.network_acl_id(),
            tags_of,
            ("InvalidNetworkAclID.NotFound", "network ACL"),
        )
    }
}

/// The tags EC2 returned with the ACL.
fn tags_of(acl: &aws_sdk_ec2::types::NetworkAcl) -> Tags {
    tags_from(acl.tags().iter().map(|t| (t.key(), t.value())))
}

impl NetworkAclBackend for AwsNetworkAcl {
    fn entries(&self) -> BoxFuture<'_, Result<Vec<AclEntry>, AwsError>> {
        Box::pin(async move {
            Ok(self
                .describe()
                .await?
                .entries()
                .iter()
                .map(|e| AclEntry {
                    rule_number: e.rule_number().unwrap_or(0),
                    protocol: e.protocol().unwrap_or("-1").to_string(),
                    rule_action: e
                        .rule_action()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    egress: e.egress().unwrap_or(false),
                    cidr_block: e.cidr_block().map(str::to_string),
                    ipv6_cidr_block: e.ipv6_cidr_block().map(str::to_string),
                    from_port: e.port_range().and_then(|p| p.from()),
                    to_port: e.port_range().and_then(|p| p.to()),
                })
                .collect())
        })
    }

    fn delete_ingress(&self, rule_number: i32) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .delete_network_acl_entry()
                .network_acl_id(&self.acl_id)
                .rule_number(rule_number)
                .egress(false)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn replace_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            ingress_entry!(self.client.replace_network_acl_entry(), self.acl_id, entry)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn create_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            ingress_entry!(self.client.create_network_acl_entry(), self.acl_id, entry)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        // describe() keeps the tags it saw; they are read again only if none are kept.
        Box::pin(self.described.read_or(self.describe()))
    }
}

impl Host for Capabilities {
    async fn describe_entries(&mut self) -> wasmtime::Result<Result<Vec<AclEntry>, FixerError>> {
        let backend = match self.backend::<NetworkAclBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.call(&DESCRIBE_ENTRIES, None, backend.entries()).await)
    }

    async fn delete_ingress_entry(
        &mut self,
        rule_number: i32,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = match self.backend::<NetworkAclBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(
                &DELETE_INGRESS_ENTRY,
                Some(json!(rule_number)),
                backend.delete_ingress(rule_number),
            )
            .await)
    }

    async fn replace_ingress_entry(
        &mut self,
        entry: AclEntry,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write_entry(self, &REPLACE_INGRESS_ENTRY, entry).await)
    }

    async fn create_ingress_entry(
        &mut self,
        entry: AclEntry,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(write_entry(self, &CREATE_INGRESS_ENTRY, entry).await)
    }
}

/// Replaces or creates one ingress entry.
async fn write_entry(
    caps: &mut Capabilities,
    function: &'static CapabilityFunction,
    entry: AclEntry,
) -> Result<(), FixerError> {
    // Egress entries are never touched, whatever a plan says.
    if entry.egress {
        return Err(FixerError::InvalidInput(format!(
            "{}: the entry is an egress entry; egress entries are never changed",
            function.function
        )));
    }
    let backend = caps.backend::<NetworkAclBinding>()?.0;
    let request = Some(json!(entry));
    let write = if function.function == CREATE_INGRESS_ENTRY.function {
        backend.create_ingress(entry)
    } else {
        backend.replace_ingress(entry)
    };
    caps.call(function, request, write).await
}

/// In memory, for benchmarks and offline tests; counts writes.
#[derive(Default)]
pub struct InMemoryNetworkAcl {
    pub entries: Mutex<Vec<AclEntry>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

fn poisoned() -> AwsError {
    internal_error("in-memory backend lock poisoned")
}

impl NetworkAclBackend for InMemoryNetworkAcl {
    fn entries(&self) -> BoxFuture<'_, Result<Vec<AclEntry>, AwsError>> {
        Box::pin(async move { Ok(self.entries.lock().map_err(|_| poisoned())?.clone()) })
    }

    fn delete_ingress(&self, rule_number: i32) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.entries
                .lock()
                .map_err(|_| poisoned())?
                .retain(|e| e.egress || e.rule_number != rule_number);
            Ok(())
        })
    }

    fn replace_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut entries = self.entries.lock().map_err(|_| poisoned())?;
            for e in entries.iter_mut() {
                if !e.egress && e.rule_number == entry.rule_number {
                    *e = entry.clone();
                }
            }
            Ok(())
        })
    }

    fn create_ingress(&self, entry: AclEntry) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut entries = self.entries.lock().map_err(|_| poisoned())?;
            if entries
                .iter()
                .any(|e| !e.egress && e.rule_number == entry.rule_number)
            {
                return Err(AwsError {
                    code: "NetworkAclEntryAlreadyExists".into(),
                    message: format!("ingress entry {} already exists", entry.rule_number),
                    request_id: None,
                    retryable: false,
                });
            }
            entries.push(entry);
            Ok(())
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone().into()) })
    }
}
