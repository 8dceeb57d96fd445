//! The path of one finding: parse → pick a fixer → check → plan → decide → apply → verify → audit.
//!
//! Every path through here, including every error, ends in exactly one audit record, and the
//! record is on disk before the caller hears the outcome.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::audit::{sha256_hex, AuditEntry, AuditLog, SealedRecord, Status};
use crate::capabilities::{Capabilities, Phase, Plan, ResourceBackend};
use crate::decide::{decide, Verdict};
use crate::finding::Finding;
use crate::registry::{FixerRegistry, Selection};
use crate::runtime::{describe_fixer_error, LoadedFixer, Runtime, Sandbox, SandboxError};

/// Binds capability backends to a finding's resource (AWS in production).
pub trait BackendBinder: Send + Sync {
    fn bind(&self, finding: &Finding) -> Result<ResourceBackend>;
}

impl BackendBinder for crate::aws::AwsBackends {
    fn bind(&self, finding: &Finding) -> Result<ResourceBackend> {
        crate::aws::AwsBackends::bind(self, finding)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessOptions {
    /// Stop after the plan and record it; change nothing.
    pub dry_run: bool,
}

/// Per-fixer settings from the operator, by fixer name.
pub type FixerSettings = BTreeMap<String, BTreeMap<String, String>>;

pub struct Pipeline {
    runtime: Runtime,
    registry: FixerRegistry,
    backends: Box<dyn BackendBinder>,
    settings: FixerSettings,
    audit: Mutex<AuditLog>,
}

/// The audit entry as written, and where it sits in the chain.
pub struct Processed {
    pub entry: AuditEntry,
    pub sealed: SealedRecord,
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().min(u64::MAX as u128) as u64
}

impl Pipeline {
    pub fn new(
        runtime: Runtime,
        registry: FixerRegistry,
        backends: Box<dyn BackendBinder>,
        settings: FixerSettings,
        audit: AuditLog,
    ) -> Pipeline {
        Pipeline {
            runtime,
            registry,
            backends,
            settings,
            audit: Mutex::new(audit),
        }
    }

    pub fn registry(&self) -> &FixerRegistry {
        &self.registry
    }

    /// Processes one raw payload and returns once its audit record is durable. The `Err` case is
    /// only for a failure to write the audit record itself.
    pub async fn process_payload(
        &self,
        payload: &[u8],
        options: ProcessOptions,
    ) -> Result<Processed> {
        let started = Instant::now();
        let mut entry = AuditEntry {
            payload_sha256: Some(sha256_hex(payload)),
            dry_run: options.dry_run,
            ..AuditEntry::default()
        };
        match Finding::from_canonical_json(payload) {
            Ok(finding) => self.process_finding(&finding, options, &mut entry).await,
            Err(e) => {
                entry.status = Some(Status::Rejected);
                entry.reason = Some(e.to_string());
            }
        }
        entry.durations_us.insert("total".into(), micros(started));
        self.record(entry)
    }

    fn record(&self, entry: AuditEntry) -> Result<Processed> {
        let mut log = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let sealed = log.append(&entry).context("writing the audit record")?;
        Ok(Processed { entry, sealed })
    }

    async fn process_finding(
        &self,
        finding: &Finding,
        options: ProcessOptions,
        entry: &mut AuditEntry,
    ) {
        entry.finding_id = Some(finding.id.clone());
        entry.correlation_id = Some(finding.correlation_id.clone());
        entry.resource_arn = Some(finding.resource.arn.clone());
        let span = tracing::info_span!("finding", finding_id = %finding.id, correlation_id = %finding.correlation_id);
        let _enter = span.enter();
        let fixer = match self.registry.select(finding) {
            Selection::Ready(f) => f,
            Selection::Refused(r) => {
                entry.status = Some(Status::Failed);
                entry.reason = Some(format!(
                    "the fixer for {} was refused at load: {}",
                    finding.resource.resource_type, r.error
                ));
                return;
            }
            Selection::None => {
                entry.status = Some(Status::Skipped);
                entry.reason = Some(format!(
                    "no fixer for resource type {}",
                    finding.resource.resource_type
                ));
                return;
            }
        };
        entry.fixer = Some(fixer.identity());
        let backend = match self.backends.bind(finding) {
            Ok(b) => b,
            Err(e) => {
                entry.status = Some(Status::Failed);
                entry.reason = Some(format!(
                    "binding capabilities to {}: {e:#}",
                    finding.resource.arn
                ));
                return;
            }
        };
        let settings = self
            .settings
            .get(&fixer.manifest.name)
            .cloned()
            .unwrap_or_default();
        let limits = self.runtime.limits();
        let capabilities = Capabilities::new(
            finding,
            settings,
            backend,
            limits.max_capability_calls,
            limits.log_bytes,
        );
        let started = Instant::now();
        let mut sandbox = match self.runtime.start(fixer, capabilities).await {
            Ok(s) => s,
            Err(e) => {
                entry.status = Some(Status::Failed);
                entry.reason = Some(format!("starting the fixer: {e:#}"));
                return;
            }
        };
        entry
            .durations_us
            .insert("instantiate".into(), micros(started));
        let (status, reason) = run_phases(fixer, &mut sandbox, options, entry).await;
        entry.status = Some(status);
        entry.reason = reason;
        entry.calls = sandbox
            .gate()
            .calls()
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        entry.fixer_output = serde_json::to_value(sandbox.output()).ok();
        tracing::info!(status = status.as_str(), "finding processed");
    }
}

fn phase_failure(phase: &str, e: &SandboxError) -> (Status, Option<String>) {
    let reason = match e {
        SandboxError::Fixer(f) => {
            format!("{phase}: the fixer reported {}", describe_fixer_error(f))
        }
        SandboxError::Contained(r) => format!("{phase}: {r}"),
    };
    (Status::Failed, Some(reason))
}

fn plan_json(plan: &Plan) -> Value {
    serde_json::to_value(plan).unwrap_or(Value::Null)
}

/// check → plan → decide → apply → verify, recording as it goes.
async fn run_phases(
    fixer: &LoadedFixer,
    sandbox: &mut Sandbox,
    options: ProcessOptions,
    entry: &mut AuditEntry,
) -> (Status, Option<String>) {
    let t = Instant::now();
    let compliant_before = sandbox.check(Phase::Check).await;
    entry.durations_us.insert("check".into(), micros(t));
    let compliant_before = match compliant_before {
        Ok(c) => c,
        Err(e) => return phase_failure("check", &e),
    };
    entry.evidence = Some(json!({ "compliant_before": compliant_before }));
    if compliant_before {
        return (
            Status::AlreadyCompliant,
            Some("check() found the resource compliant".into()),
        );
    }

    let t = Instant::now();
    let plan = sandbox.plan().await;
    entry.durations_us.insert("plan".into(), micros(t));
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return phase_failure("plan", &e),
    };
    entry.plan = Some(plan_json(&plan));
    if plan.changes.is_empty() {
        return (
            Status::AlreadyCompliant,
            Some("check() reported non-compliant but plan() proposes no change".into()),
        );
    }

    let decision = decide(fixer, &plan);
    entry.decision = serde_json::to_value(&decision).ok();
    match decision.verdict {
        Verdict::Remediate => {}
        Verdict::Review => return (Status::Review, decision.reason),
        Verdict::Skip => return (Status::Skipped, decision.reason),
    }
    if options.dry_run {
        return (
            Status::Planned,
            Some("dry run: stopped after the plan; nothing was changed".into()),
        );
    }

    let t = Instant::now();
    let outcome = sandbox.apply(&plan).await;
    entry.durations_us.insert("apply".into(), micros(t));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return phase_failure("apply", &e),
    };
    entry.rollback = outcome
        .rollback
        .as_deref()
        .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.to_string())));

    let t = Instant::now();
    let compliant_after = sandbox.check(Phase::Verify).await;
    entry.durations_us.insert("verify".into(), micros(t));
    let evidence = json!({
        "compliant_before": compliant_before,
        "compliant_after": compliant_after.as_ref().ok(),
        "applied": outcome.applied,
    });
    entry.evidence = Some(evidence);
    match compliant_after {
        Ok(true) => (Status::Remediated, None),
        Ok(false) => (
            Status::Failed,
            Some(
                "verify: apply() finished but check() still finds the resource non-compliant"
                    .into(),
            ),
        ),
        Err(e) => phase_failure("verify", &e),
    }
}
