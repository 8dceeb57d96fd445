//! The `rds-instance` capability, bound to the finding's DB instance, and its backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use salve_contract::{Arn, CapabilityFunction, KindSpec};
use salve_core::{
    internal_error, tags_from, to_aws_error, AwsError, Binding, BoundResource, BoxFuture,
    Capabilities, DescribedTags, FixerError, KindHost, ObservedRead, PlannedCall, ReadBack,
    SdkConfig, TagRead, Tags,
};
use serde_json::{json, Value};

use crate::{DESCRIBE_INSTANCE, SET_PUBLICLY_ACCESSIBLE, SPEC};

/// Contract 0.2.0, the first to have this kind.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:rds-instance/rds-instance-fixer-complete",
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

use v0_2::exports::salve::rds_instance::fixer as typed;
use v0_2::exports::salve::rds_instance::rollback as undo;
use v0_2::exports::salve::rds_instance::terraform as tf;
use v0_2::salve::rds_instance::capability::Host;
pub use v0_2::salve::rds_instance::capability::Instance;

/// A typed call as the host plans it: the function and the JSON the capability records for it.
fn host_call(call: typed::Call) -> (&'static CapabilityFunction, Value) {
    let typed::Call::SetPubliclyAccessible(public) = call;
    (&SET_PUBLICLY_ACCESSIBLE, json!(public))
}

fn planned_value(call: &PlannedCall) -> Result<bool, String> {
    if !SET_PUBLICLY_ACCESSIBLE.is_called(&call.function) {
        return Err(format!("{} is not an rds-instance write", call.function));
    }
    call.args
        .as_bool()
        .ok_or_else(|| format!("{}: {} is not a boolean", call.function, call.args))
}

fn guest_call(call: &PlannedCall) -> Result<typed::Call, String> {
    Ok(typed::Call::SetPubliclyAccessible(planned_value(call)?))
}

salve_core::fixer_exports_v0_2! {
    typed: typed,
    rollback: undo,
    terraform: tf,
    host_call: host_call,
    guest_call: guest_call,
}

/// The kind's entry in the host's registry.
pub struct RdsInstance;

impl KindHost for RdsInstance {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_2: v0_2::salve::rds_instance::capability,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        Box::pin(async move {
            let db = bound(binding)?;
            let expected = planned_value(call).map_err(|e| internal_error(&e))?;
            let instance = db.describe().await?;
            Ok(ReadBack {
                holds: instance.publicly_accessible == expected,
                expected: json!({ "publicly_accessible": expected }),
                observed: ObservedRead::of(&DESCRIBE_INSTANCE, &instance),
                actual: json!(instance),
            })
        })
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, _path_style: bool) -> Binding {
        bind(Arc::new(AwsRdsInstance {
            client: aws_sdk_rds::Client::new(session),
            identifier: resource.name.to_string(),
            described: DescribedTags::default(),
        }))
    }

    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String> {
        let Some(id) = arn
            .resource
            .strip_prefix("db:")
            .filter(|id| is_identifier(id))
        else {
            return Err(
                "an AWS::RDS::DBInstance ARN looks like arn:aws:rds:<region>:<account>:db:<identifier>"
                    .into(),
            );
        };
        arn.require_scope("rds", account, region)?;
        Ok(id.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String {
        format!("arn:{}:rds:{region}:{account}:db:{name}", arn.partition)
    }

    fn arn_for_id(id: &str, typed: bool, account: &str, region: &str) -> Option<String> {
        (typed && is_identifier(id)).then(|| {
            format!(
                "arn:{}:rds:{region}:{account}:db:{id}",
                salve_contract::partition_of(region)
            )
        })
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "rds" && arn.resource.starts_with("db:")
    }
}

/// RDS identifiers: 1-63 letters, digits and hyphens, starting with a letter.
fn is_identifier(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What the capability needs from RDS for one instance.
pub trait RdsInstanceBackend: Send + Sync {
    fn describe(&self) -> BoxFuture<'_, Result<Instance, AwsError>>;
    fn set_publicly_accessible(&self, public: bool) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The instance's tags (from DescribeDBInstances), read by the host for eligibility.
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
}

salve_core::kind_binding!(RdsInstanceBinding, RdsInstanceBackend, SPEC);

/// The real backend: the AWS SDK's RDS client and the one instance it may touch.
pub struct AwsRdsInstance {
    client: aws_sdk_rds::Client,
    identifier: String,
    described: DescribedTags,
}

impl AwsRdsInstance {
    async fn describe_raw(&self) -> Result<aws_sdk_rds::types::DbInstance, AwsError> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(&self.identifier)
            .send()
            .await
            .map_err(to_aws_error)?;
        self.described.pick(
            out.db_instances(),
            &self.identifier,
            |i| i.db_instance_identifier(),
            tags_of,
            ("DBInstanceNotFound", "DB instance"),
        )
    }
}

/// The tags RDS returned with the instance.
fn tags_of(instance: &aws_sdk_rds::types::DbInstance) -> Tags {
    tags_from(instance.tag_list().iter().map(|t| (t.key(), t.value())))
}

impl RdsInstanceBackend for AwsRdsInstance {
    fn describe(&self) -> BoxFuture<'_, Result<Instance, AwsError>> {
        Box::pin(async move {
            let i = self.describe_raw().await?;
            Ok(Instance {
                identifier: self.identifier.clone(),
                publicly_accessible: i.publicly_accessible().unwrap_or(false),
                status: i.db_instance_status().unwrap_or("unknown").to_string(),
            })
        })
    }

    fn set_publicly_accessible(&self, public: bool) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .modify_db_instance()
                .db_instance_identifier(&self.identifier)
                .publicly_accessible(public)
                .apply_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        // describe_raw() keeps the tags it saw; they are read again only if none are kept.
        Box::pin(self.described.read_or(self.describe_raw()))
    }
}

impl Host for Capabilities {
    async fn describe_instance(&mut self) -> wasmtime::Result<Result<Instance, FixerError>> {
        let backend = match self.backend::<RdsInstanceBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(&DESCRIBE_INSTANCE, None, backend.describe())
            .await)
    }

    async fn set_publicly_accessible(
        &mut self,
        publicly_accessible: bool,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = match self.backend::<RdsInstanceBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(
                &SET_PUBLICLY_ACCESSIBLE,
                Some(json!(publicly_accessible)),
                backend.set_publicly_accessible(publicly_accessible),
            )
            .await)
    }
}

/// In memory, for tests of the polled verify: a modification takes effect only after
/// `reads_until_applied` further describes, as RDS applies it some minutes later.
pub struct InMemoryRdsInstance {
    pub instance: Mutex<Instance>,
    /// The modification accepted and not applied yet.
    pub pending: Mutex<Option<bool>>,
    pub reads_until_applied: Mutex<Option<usize>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

impl InMemoryRdsInstance {
    /// A public instance; a modification shows after `delay` reads (`None`: never).
    pub fn public(identifier: &str, delay: Option<usize>) -> InMemoryRdsInstance {
        InMemoryRdsInstance {
            instance: Mutex::new(Instance {
                identifier: identifier.to_string(),
                publicly_accessible: true,
                status: "available".into(),
            }),
            pending: Mutex::new(None),
            reads_until_applied: Mutex::new(delay),
            writes: AtomicUsize::new(0),
            tags: Tags::new(),
        }
    }
}

fn poisoned() -> AwsError {
    internal_error("in-memory backend lock poisoned")
}

impl RdsInstanceBackend for InMemoryRdsInstance {
    fn describe(&self) -> BoxFuture<'_, Result<Instance, AwsError>> {
        Box::pin(async move {
            let mut instance = self.instance.lock().map_err(|_| poisoned())?;
            let mut pending = self.pending.lock().map_err(|_| poisoned())?;
            let mut delay = self.reads_until_applied.lock().map_err(|_| poisoned())?;
            if let Some(public) = *pending {
                match delay.as_mut() {
                    Some(0) => {
                        instance.publicly_accessible = public;
                        *pending = None;
                        instance.status = "available".into();
                    }
                    Some(n) => *n -= 1,
                    None => {}
                }
            }
            Ok(instance.clone())
        })
    }

    fn set_publicly_accessible(&self, public: bool) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self.pending.lock().map_err(|_| poisoned())? = Some(public);
            self.instance.lock().map_err(|_| poisoned())?.status = "modifying".into();
            Ok(())
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone().into()) })
    }
}
