//! Host capabilities: what a fixer can do to the world, one module per capability interface.
//!
//! Every call goes through [`CallGate`], which checks the call against the phase and the approved
//! plan before the backend is touched, and records it with its IAM action and result for the audit
//! log. Backends are bound to the finding's resource when they are built, so no function here takes
//! a resource name from the guest.

mod context;
mod gate;
pub mod in_memory;
pub mod s3_bucket;
pub mod security_group;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

pub use context::{FixerLog, LogLine};
pub use gate::{CallGate, CallResult, CapabilityCall, Phase};

use crate::actions::CapabilityFunction;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "all-capabilities",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
});

pub use exports::salve::fixer::fixer::Guest as FixerExports;
pub use salve::fixer::types::{AwsError, Change, FixerError, Outcome, Plan};

/// A boxed future, so backends can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A resource's tags, key to value.
pub type Tags = BTreeMap<String, String>;

/// The backend of the one resource a finding names.
#[derive(Clone)]
pub enum ResourceBackend {
    S3Bucket(Arc<dyn s3_bucket::S3BucketBackend>),
    SecurityGroup(Arc<dyn security_group::SecurityGroupBackend>),
}

impl ResourceBackend {
    /// The read-only context capability: the bound resource's own tags, for the eligibility
    /// metadata. The host calls it during the plan phase; fixers cannot.
    pub async fn read_tags(&self) -> Result<Tags, AwsError> {
        match self {
            ResourceBackend::S3Bucket(b) => b.tags().await,
            ResourceBackend::SecurityGroup(g) => g.tags().await,
        }
    }
}

/// Responses and requests kept in the audit record are cut at this size.
const MAX_RECORDED_JSON: usize = 4096;

/// The host side of one fixer run: the finding, the bound backend, the gate and the log.
pub struct Capabilities {
    finding: salve::fixer::types::Finding,
    settings: BTreeMap<String, String>,
    backend: ResourceBackend,
    gate: CallGate,
    log: FixerLog,
    /// Every AWS error the host itself received and handed to the fixer. Only these can make a
    /// record retryable: a fixer can build an `aws` error of its own, with any text and flag.
    observed_errors: Vec<AwsError>,
}

impl Capabilities {
    pub fn new(
        finding: &crate::finding::Finding,
        settings: BTreeMap<String, String>,
        backend: ResourceBackend,
        max_calls: usize,
        max_log_bytes: usize,
    ) -> Capabilities {
        Capabilities {
            finding: to_wit_finding(finding),
            settings,
            backend,
            gate: CallGate::new(max_calls),
            log: FixerLog::new(max_log_bytes),
            observed_errors: Vec::new(),
        }
    }

    pub fn gate(&self) -> &CallGate {
        &self.gate
    }

    pub fn set_backend(&mut self, backend: ResourceBackend) {
        self.backend = backend;
    }

    pub fn gate_mut(&mut self) -> &mut CallGate {
        &mut self.gate
    }

    pub fn log(&self) -> &FixerLog {
        &self.log
    }

    /// The host's own copy of an AWS error a fixer returns, if the host received it.
    pub fn observed(&self, e: &AwsError) -> Option<&AwsError> {
        self.observed_errors
            .iter()
            .find(|o| o.code == e.code && o.request_id == e.request_id && o.message == e.message)
    }

    /// Runs one capability call through the gate and records it. `call` is not polled when the
    /// gate denies it, so a denied write never reaches AWS.
    async fn call<T: Serialize>(
        &mut self,
        function: &'static CapabilityFunction,
        request: Option<Value>,
        call: BoxFuture<'_, Result<T, AwsError>>,
    ) -> Result<T, FixerError> {
        let request = request.map(bounded_json);
        if let Err(denial) = self.gate.authorize(function) {
            self.gate.record(
                function,
                CallResult::Denied,
                Some(denial.clone()),
                request,
                None,
                Duration::ZERO,
            );
            return Err(FixerError::Denied(denial));
        }
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        match &result {
            Ok(value) => {
                let response = serde_json::to_value(value).ok().map(bounded_json);
                self.gate
                    .record(function, CallResult::Ok, None, request, response, elapsed);
            }
            Err(e) => {
                if self.observed_errors.len() < 64 {
                    self.observed_errors.push(e.clone());
                }
                let detail = format!("{}: {}", e.code, e.message);
                self.gate.record(
                    function,
                    CallResult::AwsError,
                    Some(detail),
                    request,
                    None,
                    elapsed,
                );
            }
        }
        result.map_err(FixerError::Aws)
    }
}

/// Keeps audit records bounded: large JSON is replaced by a note with its size.
pub(crate) fn bounded_json(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_RECORDED_JSON {
        return value;
    }
    serde_json::json!({ "truncated": true, "bytes": text.len(), "prefix": text.chars().take(512).collect::<String>() })
}

fn to_wit_finding(f: &crate::finding::Finding) -> salve::fixer::types::Finding {
    use crate::finding::Severity as S;
    use salve::fixer::types::Severity as W;
    salve::fixer::types::Finding {
        id: f.id.clone(),
        source: f.source.clone(),
        control_id: f.control_id.clone(),
        title: f.title.clone(),
        severity: match f.severity {
            S::Informational => W::Informational,
            S::Low => W::Low,
            S::Medium => W::Medium,
            S::High => W::High,
            S::Critical => W::Critical,
        },
        resource: salve::fixer::types::Resource {
            arn: f.resource.arn.clone(),
            resource_type: f.resource.resource_type.clone(),
            account_id: f.resource.account_id.clone(),
            region: f.resource.region.clone(),
            name: f.resource.name.clone(),
            tags: f
                .resource
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        correlation_id: f.correlation_id.clone(),
    }
}

/// Adds the host implementation of `resource_type`'s world (context plus its one capability
/// interface) to `linker`. Interfaces of other resource types are deliberately absent, so a
/// fixer that imports them cannot even be instantiated.
pub fn add_world_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    resource_type: &crate::actions::ResourceType,
    get: fn(&mut T) -> &mut Capabilities,
) -> anyhow::Result<()> {
    use wasmtime::component::HasSelf;
    salve::fixer::types::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
    salve::fixer::context::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
    match resource_type.interface {
        "s3-bucket" => {
            salve::fixer::s3_bucket::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?
        }
        "security-group" => {
            salve::fixer::security_group::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?
        }
        other => anyhow::bail!("no host implementation for capability interface {other}"),
    }
    Ok(())
}

impl salve::fixer::types::Host for Capabilities {}
