//! How a decided plan lands: the one seam between deciding and changing anything.
//!
//! The caller picks the most a run may do ([`Effect`]); the decision can only land less (a
//! review or skip lands nothing). Live apply is today's path; the next ways a plan can land (a
//! pull request against the Terraform that declares the resource, a drift report) are more
//! variants here, not more booleans through the pipeline.

use std::time::Instant;

use super::{
    applied_calls, fixer_json, micros, partial_change, phase_failure, session_failure, FindingRun,
};
use crate::audit::{AuditEntry, Status};
use crate::capabilities::{describe_aws_error, Phase, Plan};
use crate::credentials::{write_policy, SessionFor};
use crate::idempotency::OpenIntent;
use crate::record::{AfterApply, Evidence, ReadBackEvidence, SessionPhase, SessionRecord};
use crate::runtime::{Sandbox, SandboxError};
use crate::text;

/// What a run may do once a plan is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effect {
    /// Apply the approved plan through a write session limited to it, read the resource back,
    /// and verify.
    #[default]
    Apply,
    /// Record the plan and stop; change nothing (`--dry-run`).
    PlanOnly,
    /// Say what would happen: change nothing, record nothing, notify nobody (`salve explain`).
    Explain,
    /// Settle an intent an earlier run left open: read the resource and record what is in
    /// place; change nothing.
    Reconcile,
}

impl Effect {
    /// Whether this run may change a resource, and so needs an intent record first.
    pub fn changes_resources(self) -> bool {
        self == Effect::Apply
    }

    /// Whether the outcome is written to the audit log and sent to the notifier.
    pub fn records(self) -> bool {
        self != Effect::Explain
    }

    /// Whether the record is marked a dry run (it stopped before any change by choice).
    pub fn is_dry_run(self) -> bool {
        matches!(self, Effect::PlanOnly | Effect::Explain)
    }
}

/// Where a payload came from, which decides whether a redelivery is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// A person ran it (`salve process`): a deliberate re-check, never deduplicated.
    #[default]
    Manual,
    /// A queue or topic delivered it: a finding whose terminal record is already in the log is
    /// acknowledged without running again.
    Queue,
}

impl FindingRun<'_> {
    /// Lands a plan the decision approved, as far as `effect` allows.
    pub(super) async fn land(
        &self,
        effect: Effect,
        sandbox: &mut Sandbox,
        plan: &Plan,
        compliant_before: bool,
        entry: &mut AuditEntry,
    ) -> (Status, Option<String>) {
        match effect {
            Effect::Apply if self.fixer.resource_type.iac_only.is_some() => {
                self.land_iac_only(sandbox, entry).await
            }
            Effect::Apply => {
                use crate::iac::IacEffect;
                let effect = self.iac_effect(entry);
                let workspace = match effect {
                    IacEffect::Live => None,
                    _ => self.forge_workspace(),
                };
                match (effect, workspace) {
                    (IacEffect::PullRequest, Some(w)) => {
                        match self.land_pull_request(w, sandbox, entry).await {
                            Some(landed) => landed,
                            // Terraform does not manage the resource: the fix stays live.
                            None => {
                                self.apply_live(sandbox, plan, compliant_before, entry)
                                    .await
                            }
                        }
                    }
                    (IacEffect::Both, Some(w)) => {
                        // A person who closed the finding's pull request declined the change.
                        let known = self.existing_pull_request(w).await;
                        if let Some(declined) = known
                            .as_ref()
                            .and_then(|k| k.as_ref())
                            .and_then(|pr| self.declined(w, pr))
                        {
                            let reason = declined.reason.clone();
                            entry.pull_request = Some(declined);
                            return (Status::Review, reason);
                        }
                        let (status, reason) = self
                            .apply_live(sandbox, plan, compliant_before, entry)
                            .await;
                        // The code is fixed too, so the next apply does not undo the live fix.
                        if status == Status::Remediated {
                            let pr: crate::capabilities::BoxFuture<'_, _> =
                                Box::pin(self.pull_request(w, sandbox, entry, true, known));
                            entry.pull_request = pr.await;
                        }
                        (status, reason)
                    }
                    _ => {
                        self.apply_live(sandbox, plan, compliant_before, entry)
                            .await
                    }
                }
            }
            Effect::PlanOnly | Effect::Explain => (
                Status::Planned,
                Some("dry run: stopped after the plan; nothing was changed".into()),
            ),
            // Settled after check, before any plan; kept total so a new effect must say.
            Effect::Reconcile => (
                Status::Failed,
                Some("a reconcile run reached the plan stage; nothing was changed".into()),
            ),
        }
    }

    /// Lands the fix of an IaC-only kind, which nothing live can fix: a pull request where
    /// Terraform manages the resource and the effect allows one, else review with why.
    async fn land_iac_only(
        &self,
        sandbox: &mut Sandbox,
        entry: &mut AuditEntry,
    ) -> (Status, Option<String>) {
        let why_live = self.fixer.resource_type.iac_only.unwrap_or_default();
        match self.pull_request_only(sandbox, entry).await {
            Ok(landed) => landed,
            Err(why_not_code) => (
                Status::Review,
                Some(format!(
                    "nothing was changed: {why_live}; {why_not_code}; a person migrates it or declares it in Terraform"
                )),
            ),
        }
    }

    /// Lands the fix as a pull request alone, where the effect allows one and a workspace with
    /// a forge covers the resource. `Err` says why no pull request was made: the effect is
    /// live, no such workspace, or Terraform does not manage the resource.
    pub(super) async fn pull_request_only(
        &self,
        sandbox: &mut Sandbox,
        entry: &mut AuditEntry,
    ) -> Result<(Status, Option<String>), String> {
        if self.iac_effect(entry) == crate::iac::IacEffect::Live {
            return Err(
                "the effect for this resource is live, so no pull request is opened".into(),
            );
        }
        let Some(w) = self.forge_workspace() else {
            return Err(
                "no Terraform workspace with a forge covers this account and region".into(),
            );
        };
        self.land_pull_request(w, sandbox, entry)
            .await
            .ok_or_else(|| format!("Terraform workspace {:?} does not manage it", w.name))
    }

    /// Lands the fix as a pull request only; nothing changes in the account. `None`: Terraform
    /// does not manage the resource.
    pub(super) async fn land_pull_request(
        &self,
        workspace: &crate::iac::Workspace,
        sandbox: &mut Sandbox,
        entry: &mut AuditEntry,
    ) -> Option<(Status, Option<String>)> {
        use crate::iac::PullRequestOutcome;
        // Boxed: the pull request's future (clone, trace, fixer, forge) is deep.
        let pr: crate::capabilities::BoxFuture<'_, _> =
            Box::pin(self.pull_request(workspace, sandbox, entry, false, None));
        let pr = pr.await?;
        let landed = match pr.outcome {
            // Its reason, if any, is what a reviewer must know first (a replacement).
            PullRequestOutcome::Opened | PullRequestOutcome::Updated => {
                (Status::PullRequestOpened, pr.reason.clone())
            }
            PullRequestOutcome::ClosedUnmerged | PullRequestOutcome::CodeAlreadyFixed => {
                (Status::Review, pr.reason.clone())
            }
            // Only `iac sync` records a merge; a run never makes one.
            PullRequestOutcome::Merged => (Status::PullRequestMerged, pr.reason.clone()),
            PullRequestOutcome::Failed => {
                entry.retryable = pr.retryable;
                (
                    Status::Failed,
                    pr.reason.clone().map(|r| {
                        format!("the pull request was not made: {r}; nothing was changed in the account")
                    }),
                )
            }
        };
        entry.pull_request = Some(pr);
        Some(landed)
    }

    /// Writes the intent record a change needs before it starts (the entry so far, as
    /// `intent`), notes it in the ledger so a crash is reconciled at the next start, and ships
    /// it where it must be first (Lambda's sink). `Err` says why nothing may change.
    pub(super) async fn record_intent(
        &self,
        entry: &mut AuditEntry,
        reason: &str,
    ) -> Result<(), String> {
        let written = match entry.to_intent_body(reason) {
            Ok(body) => self.pipeline.record_body(body).await,
            Err(e) => Err(e),
        };
        let sealed = written
            .map_err(|e| format!("the audit log could not take the intent record: {e:#}"))?;
        let link = sealed.link();
        if let Some(key) = &entry.idempotency_key {
            self.pipeline.ledger.note_intent(
                key,
                OpenIntent {
                    link: link.clone(),
                    finding: entry
                        .finding
                        .as_ref()
                        .and_then(|f| serde_json::to_value(f).ok()),
                },
            );
        }
        entry.intent = Some(link);
        if let Some(shipper) = &self.pipeline.intent_shipper {
            shipper.ship().await.map_err(|e| {
                format!("the intent record could not reach the durable audit sink: {e:#}")
            })?;
        }
        Ok(())
    }

    /// write session → intent record → apply → read back → verify.
    async fn apply_live(
        &self,
        sandbox: &mut Sandbox,
        plan: &Plan,
        compliant_before: bool,
        entry: &mut AuditEntry,
    ) -> (Status, Option<String>) {
        let policy = write_policy(self.fixer, plan, &self.finding.resource.arn);
        let t = Instant::now();
        // The person who approved the plan, or who asked for the rollback, is on the session.
        let on_behalf = self
            .approval
            .map(|a| a.request.by.as_str())
            .or(self.reversal.map(|r| r.by.as_str()))
            .map_or(SessionFor::Finding, SessionFor::ApprovedBy);
        let bound = self
            .pipeline
            .backends
            .bind(self.finding, &policy, on_behalf)
            .await;
        entry.durations_us.insert("write_session".into(), micros(t));
        entry.sessions.push(SessionRecord::new(
            SessionPhase::Write,
            self.finding,
            on_behalf,
            &policy,
            bound.as_ref().err(),
        ));
        let write_backend = match bound {
            Ok(b) => b,
            Err(f) => {
                entry.retryable = f.retryable;
                return session_failure("write", &f);
            }
        };
        // Nothing may change in AWS that the log could not record: the intent (the approved
        // plan and the write session) is durable before the fixer's first write call.
        if let Err(why) = self
            .record_intent(
                entry,
                "the approved plan is about to be applied; the terminal record links back here",
            )
            .await
        {
            entry.retryable = true;
            return (
                Status::Failed,
                Some(format!(
                    "{why}, so nothing was changed; the message is retried"
                )),
            );
        }
        sandbox.rebind(write_backend);
        let t = Instant::now();
        let outcome = sandbox.apply(plan).await;
        entry.durations_us.insert("apply".into(), micros(t));
        // Verify reads through the read session again; the write session is not used after apply.
        // Nothing read before the write may answer it.
        sandbox.rebind(self.backend.clone());
        sandbox.forget_reads();
        let (applied, apply_error) = match outcome {
            Ok(o) => {
                entry.rollback = o.rollback.as_deref().map(fixer_json);
                // Under a typed plan what was applied is what the gate let through and AWS
                // accepted, not a list the fixer returns.
                let applied = if plan.is_typed() {
                    applied_calls(plan, sandbox.gate())
                } else {
                    o.applied
                };
                (Some(applied), None)
            }
            Err(e) => (None, Some(e)),
        };
        // After an apply error the resource is read anyway: a write whose response was lost
        // (a reset connection, then a retry that finds the change already made) is a fix, not a
        // failure. A fixer the sandbox stopped cannot check, so its partial change is stated.
        if let Some(e @ SandboxError::Contained(_)) = &apply_error {
            let (status, reason) = phase_failure("apply", e, sandbox, entry);
            return (status, reason.map(|r| partial_change(r, sandbox.gate())));
        }

        // The host's own evidence first: under a typed plan it reads the resource back and
        // compares it with each planned call's declared outcome, before it asks the fixer.
        let t = Instant::now();
        let read_back = if plan.is_typed() {
            // Only a call AWS accepted is worth waiting for; anything else is read once.
            let accepted: Vec<usize> = sandbox.gate().accepted().collect();
            Some(self.read_back(plan, &accepted).await)
        } else {
            None
        };
        if let Some(Ok(results)) = &read_back {
            entry.durations_us.insert("read_back".into(), micros(t));
            // The host's read after the write is as fresh as verify's own would be.
            sandbox.remember_reads(results.iter().map(|r| &r.read_back));
        }
        let t = Instant::now();
        let compliant_after = sandbox.check(Phase::Verify).await;
        entry.durations_us.insert("verify".into(), micros(t));
        entry.evidence = Some(Evidence {
            compliant_before,
            after: Some(AfterApply {
                compliant_after: compliant_after.as_ref().ok().copied(),
                applied,
                apply_error: apply_error
                    .as_ref()
                    .map(|e| text::bounded(&e.to_string(), 4096).into_owned()),
                read_back: match &read_back {
                    None => None,
                    Some(Ok(results)) => Some(ReadBackEvidence::Calls(results.clone())),
                    Some(Err(e)) => Some(ReadBackEvidence::Error {
                        error: describe_aws_error(e),
                    }),
                },
            }),
        });
        match &read_back {
            Some(Err(e)) => {
                entry.retryable = e.retryable;
                return (
                    Status::Failed,
                    Some(format!(
                        "the host could not read the resource back after apply, so the change is unconfirmed: {}",
                        describe_aws_error(e)
                    )),
                );
            }
            Some(Ok(results)) => {
                let miss = results.iter().find(|r| !r.read_back.holds);
                // An apply that failed (a throttled write, say) explains a change that is not
                // there; its own failure decides, retryable or not, with the read-back kept as
                // evidence.
                if let (Some(_), Some(e)) = (miss, &apply_error) {
                    let (status, reason) = phase_failure("apply", e, sandbox, entry);
                    return (status, reason.map(|r| partial_change(r, sandbox.gate())));
                }
                if let Some(miss) = miss {
                    let reason = format!(
                        "the host read the resource back and {} did not take effect: the plan declares {}, the resource has {}",
                        miss.call.function,
                        text::bounded(&miss.read_back.expected.to_string(), 1024),
                        text::bounded(&miss.read_back.actual.to_string(), 1024),
                    );
                    return (Status::Failed, Some(partial_change(reason, sandbox.gate())));
                }
            }
            None => {}
        }
        if self.reversal.is_some() {
            // The fixer's check() is expected to fail now: the finding is open again. The
            // host's read-back of every reversing call is the evidence.
            return (
                Status::RolledBack,
                apply_error.map(|e| {
                    format!(
                        "apply reported an error ({}), but the host reads every reversing call's outcome in place",
                        text::bounded(&e.to_string(), 1024)
                    )
                }),
            );
        }
        if let Some(e) = apply_error {
            return match compliant_after {
                Ok(true) => (
                    Status::Remediated,
                    Some(format!(
                        "apply reported an error ({}), but verify finds the resource in the planned state",
                        text::bounded(&e.to_string(), 1024)
                    )),
                ),
                _ => {
                    let (status, reason) = phase_failure("apply", &e, sandbox, entry);
                    (status, reason.map(|r| partial_change(r, sandbox.gate())))
                }
            };
        }
        match compliant_after {
            Ok(true) => (Status::Remediated, None),
            Ok(false) => (
                Status::Failed,
                Some(
                    "verify: apply() finished but check() still finds the resource non-compliant"
                        .into(),
                ),
            ),
            Err(e) => phase_failure("verify", &e, sandbox, entry),
        }
    }
}
