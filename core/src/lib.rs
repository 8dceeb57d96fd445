//! What every resource kind builds on: the fixer's state in the store ([`Capabilities`]), the
//! call gate, the `context` interface, and AWS errors as the contract names them.
//!
//! Every capability call goes through [`Capabilities::call`], which checks it against the phase
//! and the approved plan before the backend is touched, and records it with its IAM action and
//! result for the audit log. A kind's backend is bound to the finding's resource when it is built,
//! so no capability function takes a resource name from the guest.
//!
//! Layers: `salve-contract` ← `salve-core` ← each kind ← the host. A kind never sees the
//! pipeline, and this crate never names a kind.

mod aws_error;
mod context;
mod exports;
mod gate;
mod kind;
mod plan;
mod reads;
pub mod state_attributes;
mod tags;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

pub use aws_error::{describe_aws_error, internal_error, to_aws_error};
pub use aws_types::SdkConfig;
pub use context::{FixerLog, LogLine};
pub use exports::{BlockText, Edit, FixerInstance, FixerPre, LocatedBlock, V0_1Pre};
pub use gate::{serialize_access, CallGate, CallRecord, CallResult, CapabilityCall, Phase};
pub use kind::{
    is_not_found, read_each, read_in_batches, Binding, BoundResource, Declared, KindBackend,
    KindDrift, KindHost, LiveOne, LiveRead, ReadBack, SecurityAttributes, StateInstance,
};
pub use plan::{Change, Outcome, Plan, PlannedCall};
pub use reads::ObservedRead;
pub use salve_contract as contract;
pub use tags::{tags_from, DescribedTags, TagRead, Tags};

use salve_contract::CapabilityFunction;

/// The parts of the contract every fixer shares: the data types, `context`, and the `fixer`
/// export. Each kind generates its own capability interface against these types.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        inline: "
            package salve:host;
            world fixer-core {
                import salve:fixer/context@0.1.0;
                export salve:fixer/fixer@0.1.0;
            }
        ",
        world: "salve:host/fixer-core",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use bindings::exports::salve::fixer::fixer::Guest as FixerExports;
pub use bindings::salve::fixer::types::{AwsError, Finding, FixerError, Resource, Severity};

/// Contract 0.2.0's shared parts. `types` is unchanged from 0.1.0, so it is the same Rust type;
/// `context` is served by the same code under its 0.2.0 name.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        inline: "
            package salve:host-v0-2;
            world fixer-core {
                import salve:fixer/context@0.2.0;
                import salve:fixer/results@0.2.0;
                import salve:fixer/iac@0.2.0;
            }
        ",
        world: "salve:host-v0-2/fixer-core",
        imports: { default: async | trappable },
        with: { "salve:fixer/types@0.2.0": crate::bindings::salve::fixer::types },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}
pub use bindings::{FixerCore, FixerCorePre};

/// A boxed future, so backends can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Responses and requests kept in the audit record are cut at this size.
const MAX_RECORDED_JSON: usize = 4096;

/// The host side of one fixer run: the finding, the bound backend, the gate and the log.
pub struct Capabilities {
    finding: Finding,
    settings: BTreeMap<String, String>,
    backend: Binding,
    gate: CallGate,
    log: FixerLog,
    /// Every AWS error the host itself received and handed to the fixer. Only these can make a
    /// record retryable: a fixer can build an `aws` error of its own, with any text and flag.
    observed_errors: Vec<AwsError>,
    /// This finding's reads, answered again without AWS until a write or the pipeline says
    /// otherwise.
    reads: reads::ReadCache,
}

impl Capabilities {
    pub fn new(
        finding: Finding,
        settings: BTreeMap<String, String>,
        backend: Binding,
        max_calls: usize,
        max_log_bytes: usize,
    ) -> Capabilities {
        Capabilities {
            finding,
            settings,
            backend,
            gate: CallGate::new(max_calls),
            log: FixerLog::new(max_log_bytes),
            observed_errors: Vec::new(),
            reads: reads::ReadCache::default(),
        }
    }

    pub fn gate(&self) -> &CallGate {
        &self.gate
    }

    pub fn set_backend(&mut self, backend: Binding) {
        self.backend = backend;
    }

    /// The bound backend as the kind that implements it, `B`. A kind asks for its own backend
    /// type; the linker only links a fixer's own kind, and the pipeline binds only that kind, so
    /// a mismatch is a host bug. It becomes a denied call the record shows, not a trap.
    pub fn backend<B: KindBackend + Clone>(&self) -> Result<B, FixerError> {
        self.backend
            .as_any()
            .downcast_ref::<B>()
            .cloned()
            .ok_or_else(|| {
                FixerError::Denied(format!(
                    "this fixer's capability is not bound to the finding's resource (bound: {})",
                    self.backend.kind().name
                ))
            })
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
    /// gate denies it, so a denied write never reaches AWS, nor when this finding's read cache
    /// already holds the answer to a read.
    pub async fn call<T: Serialize + serde::de::DeserializeOwned>(
        &mut self,
        function: &'static CapabilityFunction,
        request: Option<Value>,
        call: BoxFuture<'_, Result<T, AwsError>>,
    ) -> Result<T, FixerError> {
        // The gate compares the full arguments; only the record is cut to size.
        let planned = self.gate.authorize(function, request.as_ref());
        let read = function.access == contract::Access::Read;
        let key = if read { request.clone() } else { None };
        let request = request.map(bounded_json);
        let record = |result, detail, request, response, duration, planned| CallRecord {
            result,
            detail,
            request,
            response,
            duration,
            planned,
        };
        let planned = match planned {
            Ok(planned) => planned,
            Err(denial) => {
                let denied = record(
                    CallResult::Denied,
                    Some(denial.clone()),
                    request,
                    None,
                    Duration::ZERO,
                    None,
                );
                self.gate.record(function, denied);
                return Err(FixerError::Denied(denial));
            }
        };
        if !read {
            self.reads.forget();
        } else if let Some((value, response)) = self.reads.answer::<T>(function, key.as_ref()) {
            let response = Some(bounded_json(response.clone()));
            let cached = record(
                CallResult::Cached,
                None,
                request,
                response,
                Duration::ZERO,
                None,
            );
            self.gate.record(function, cached);
            return Ok(value);
        }
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let done = match &result {
            Ok(value) => {
                let response = serde_json::to_value(value).ok();
                if let (true, Some(response)) = (read, &response) {
                    self.reads.remember(ObservedRead {
                        function,
                        request: key,
                        response: response.clone(),
                    });
                }
                let response = response.map(bounded_json);
                record(CallResult::Ok, None, request, response, elapsed, planned)
            }
            Err(e) => {
                if self.observed_errors.len() < 64 {
                    self.observed_errors.push(e.clone());
                }
                let detail = format!("{}: {}", e.code, e.message);
                let failed = CallResult::AwsError;
                record(failed, Some(detail), request, None, elapsed, planned)
            }
        };
        self.gate.record(function, done);
        result.map_err(FixerError::Aws)
    }

    /// Forgets every read this finding made, so the next read of each reaches AWS. The
    /// pipeline calls this after `apply`, before it reads the resource back for `verify`.
    pub fn forget_reads(&mut self) {
        self.reads.forget();
    }

    /// Keeps a read the host made itself (its read-back after `apply`), so the fixer's
    /// `verify` is answered by that same fresh read instead of asking AWS once more.
    pub fn remember_read(&mut self, read: ObservedRead) {
        self.reads.remember(read);
    }
}

/// Keeps audit records bounded: large JSON is replaced by a note with its size.
pub(crate) fn bounded_json(value: Value) -> Value {
    // Every call's request and response pass here, and almost all are small: count the bytes
    // without building the text.
    if json_len(&value) <= MAX_RECORDED_JSON {
        return value;
    }
    let text = value.to_string();
    serde_json::json!({ "truncated": true, "bytes": text.len(), "prefix": text.chars().take(512).collect::<String>() })
}

/// The length of `value` as compact JSON, `usize::MAX` when it does not serialise.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Adds the parts of the contract every fixer imports (`types` and `context`) to `linker`.
pub fn add_common_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    version: contract::ContractVersion,
    get: fn(&mut T) -> &mut Capabilities,
) -> anyhow::Result<()> {
    use wasmtime::component::HasSelf;
    match version {
        contract::ContractVersion::V0_1 => {
            bindings::salve::fixer::types::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
            bindings::salve::fixer::context::add_to_linker::<T, HasSelf<Capabilities>>(
                linker, get,
            )?;
        }
        contract::ContractVersion::V0_2 => {
            // Interfaces of types only: nothing to implement, but the import must resolve.
            linker.instance("salve:fixer/types@0.2.0")?;
            v0_2::salve::fixer::results::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
            v0_2::salve::fixer::iac::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
            v0_2::salve::fixer::context::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        }
    }
    Ok(())
}

impl v0_2::salve::fixer::results::Host for Capabilities {}

impl v0_2::salve::fixer::iac::Host for Capabilities {}

impl bindings::salve::fixer::types::Host for Capabilities {}
