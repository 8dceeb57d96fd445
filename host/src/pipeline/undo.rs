//! `salve rollback` as a run of the pipeline: a decision like any other, applied through a
//! write session limited to the inverse calls, and recorded with a link to the fix it undoes.

use std::time::Instant;

use anyhow::Result;
use tracing::Instrument;

use super::{
    micros, phase_failure, recorded, unoverridable, Effect, FindingRun, Pipeline, Processed,
};
use crate::audit::{AuditEntry, Status};
use crate::capabilities::{describe_aws_error, FixerError};
use crate::idempotency;
use crate::policy::metadata::Metadata;
use crate::policy::Verdict;
use crate::record::{DecisionStage, Reversal};
use crate::rollback::{Fixed, RollbackRequest};
use crate::runtime::{Sandbox, SandboxError};
use crate::text;

impl Pipeline {
    /// `salve rollback`: undoes the fix `fixed` names, when the resource is still as the fix left
    /// it and the fixer plans the inverse. Every refusal is recorded, like the rollback itself.
    pub async fn rollback(&self, fixed: &Fixed, request: &RollbackRequest) -> Result<Processed> {
        let started = Instant::now();
        let finding = &fixed.finding;
        let key = idempotency::finding_key(finding);
        let mut entry = AuditEntry {
            idempotency_key: Some(key.clone()),
            finding_id: Some(finding.id.clone()),
            correlation_id: Some(finding.correlation_id.clone()),
            resource_arn: Some(finding.resource.arn.clone()),
            finding: Some(finding.clone()),
            reversal: Some(Reversal {
                by: request.by.clone(),
                reason: request.reason.clone(),
                reverses: fixed.record.clone(),
                force: request.force,
                overrides: None,
            }),
            ..AuditEntry::default()
        };
        let span = tracing::info_span!("rollback", finding_id = %finding.id, by = %request.by);
        // Type-erased: a run's future is deep (see lib.rs).
        let run: crate::capabilities::BoxFuture<'_, ()> =
            Box::pin(self.undo_finding(fixed, request, &mut entry));
        run.instrument(span).await;
        self.conclude(&key, entry, started).await
    }

    async fn undo_finding(&self, fixed: &Fixed, request: &RollbackRequest, entry: &mut AuditEntry) {
        let finding = &fixed.finding;
        let policy = &self.config.policy;
        let payload_metadata = Metadata::from_tags(
            policy.tag_keys(),
            &finding.resource.tags,
            None,
            policy.restricted_environments(),
        );
        let Some((fixer, backend, mut sandbox, _)) = self.start(finding, entry, None).await else {
            return;
        };
        let run = FindingRun {
            pipeline: self,
            finding,
            fixer,
            backend: &backend,
            payload_metadata,
            approval: None,
            reversal: Some(request),
            group: None,
        };
        let (status, reason) = run.undo(&mut sandbox, fixed, entry).await;
        self.finish_run(&sandbox, status, reason, entry);
    }
}

fn refused(why: String) -> (Status, Option<String>) {
    (
        Status::Rejected,
        Some(format!(
            "the rollback was refused: {why}; nothing was changed"
        )),
    )
}

impl FindingRun<'_> {
    /// read back the fix → check → plan the rollback → decide → land.
    async fn undo(
        &self,
        sandbox: &mut Sandbox,
        fixed: &Fixed,
        entry: &mut AuditEntry,
    ) -> (Status, Option<String>) {
        let name = &self.fixer.manifest.name;
        // The rollback data is in the fixing fixer's own format.
        if let Some(was) = fixed.fixer.as_ref().filter(|was| &was.name != name) {
            return refused(format!(
                "the fix was made by fixer {:?}, and the fixer for this resource type is now {name:?}, which cannot read its rollback data",
                was.name
            ));
        }
        if !fixed.plan.is_typed() {
            return refused(
                "the fix was made under contract 0.1.0, whose fixers have no rollback".into(),
            );
        }
        // The host's own reading first: undoing anything on a resource someone changed since the
        // fix would undo their change too.
        let t = Instant::now();
        let held = self.read_back(&fixed.plan, &[]).await;
        entry.durations_us.insert("read_back".into(), micros(t));
        match held {
            Err(e) => {
                entry.retryable = e.retryable;
                return (
                    Status::Failed,
                    Some(format!(
                        "the host could not read the resource to see that it is as the fix left it, so nothing was changed: {}",
                        describe_aws_error(&e)
                    )),
                );
            }
            Ok(results) => {
                sandbox.remember_reads(results.iter().map(|r| &r.read_back));
                if let Some(miss) = results.iter().find(|r| !r.read_back.holds) {
                    return refused(format!(
                        "the resource changed since the fix (record {}): {} left {}, the resource now has {}",
                        fixed.record.sequence,
                        miss.call.function,
                        text::bounded(&miss.read_back.expected.to_string(), 1024),
                        text::bounded(&miss.read_back.actual.to_string(), 1024),
                    ));
                }
            }
        }
        let compliant_before = match self.check_before(sandbox, entry).await {
            Ok(c) => c,
            Err(failed) => return failed,
        };
        let Some(data) = &fixed.rollback else {
            return refused(format!(
                "the fix's record (record {}) holds no rollback data",
                fixed.record.sequence
            ));
        };
        if !sandbox.exports_rollback() {
            return refused(format!(
                "fixer {name:?} declares no rollback: its component does not export `rollback`"
            ));
        }
        let t = Instant::now();
        let planned = sandbox
            .plan_rollback(data, self.reversal.is_some_and(|r| r.force))
            .await;
        entry.durations_us.insert("plan".into(), micros(t));
        let plan = match planned {
            Ok(Some(plan)) => plan,
            Ok(None) => return refused(format!("fixer {name:?} declares no rollback")),
            Err(SandboxError::Fixer(FixerError::Denied(why))) => {
                return refused(format!(
                    "fixer {name:?} refused: {}",
                    text::bounded(&why, 1024)
                ))
            }
            Err(e) => return phase_failure("plan rollback", &e, sandbox, entry),
        };
        entry.plan = Some(plan.clone());
        if plan.changes.is_empty() {
            return refused(format!(
                "fixer {name:?} plans no call to undo: {}",
                text::bounded(&plan.summary, 1024)
            ));
        }

        let decision = self.decide(&plan, entry).await;
        let blocked = unoverridable(&decision);
        // A person asked for this; what would send a fix to review does not stop it.
        let overrides = decision
            .reason
            .clone()
            .filter(|_| decision.verdict != Verdict::Remediate);
        entry.decision = recorded(decision, DecisionStage::Decide);
        if !blocked.is_empty() {
            return refused(format!("a rollback cannot override {}", blocked.join("; ")));
        }
        if let Some(r) = entry.reversal.as_mut() {
            r.overrides = overrides;
        }
        self.land(Effect::Apply, sandbox, &plan, compliant_before, entry)
            .await
    }
}
