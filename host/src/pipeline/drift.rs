//! `salve drift check`'s first reference: whether a fix salve made still holds. The fixer's own
//! `check()` decides, through a read session like any run's; the host's read-back of the fix's
//! calls says what changed, field by field, for the record.

use std::time::Instant;

use anyhow::Result;

use super::{FindingRun, Pipeline, ProcessOptions, Processed};
use crate::audit::AuditEntry;
use crate::capabilities::{describe_aws_error, Phase};
use crate::finding::Finding;
use crate::idempotency;
use crate::policy::metadata::Metadata;
use crate::record::CallReadBack;
use crate::rollback::Fixed;

/// Whether a fix still holds.
#[derive(Debug)]
pub enum FixHeld {
    Holds,
    /// The fixer's `check()` finds the resource non-compliant again; the read-backs say which
    /// of the fix's calls no longer hold.
    Regressed(Vec<CallReadBack>),
    /// The resource no longer exists.
    Deleted(String),
    /// It could not be read: no session, a failed read, a fixer that failed.
    Unknown(String),
}

impl Pipeline {
    /// Reads `fixed`'s resource through a read session and asks its fixer whether it is still
    /// compliant. Nothing is written and nothing changes.
    pub async fn still_fixed(&self, fixed: &Fixed) -> FixHeld {
        let mut scratch = AuditEntry::default();
        let finding = &fixed.finding;
        let Some((fixer, backend, mut sandbox, _)) = self.start(finding, &mut scratch, None).await
        else {
            return FixHeld::Unknown(scratch.reason.unwrap_or_else(|| "no fixer ran".into()));
        };
        let policy = &self.config.policy;
        let run = FindingRun {
            pipeline: self,
            finding,
            fixer,
            backend: &backend,
            payload_metadata: Metadata::from_tags(
                policy.tag_keys(),
                &finding.resource.tags,
                None,
                policy.restricted_environments(),
            ),
            approval: None,
            reversal: None,
            group: None,
        };
        let read_backs = match run.read_back(&fixed.plan, &[]).await {
            Ok(r) => r,
            Err(e) if salve_core::is_not_found(&e.code) => {
                return FixHeld::Deleted(describe_aws_error(&e))
            }
            Err(e) => {
                return FixHeld::Unknown(format!(
                    "reading the resource back: {}",
                    describe_aws_error(&e)
                ))
            }
        };
        // The fixer's check() is answered by the host's own read, made just now.
        sandbox.remember_reads(read_backs.iter().map(|r| &r.read_back));
        match sandbox.check(Phase::Check).await {
            Ok(true) => FixHeld::Holds,
            Ok(false) => FixHeld::Regressed(
                read_backs
                    .into_iter()
                    .filter(|r| !r.read_back.holds)
                    .collect(),
            ),
            Err(e) => FixHeld::Unknown(format!("the fixer's check() failed: {e}")),
        }
    }

    /// Runs a regressed finding through the whole pipeline again (`[drift]
    /// remediate-regressions`): every guardrail and policy decides anew, and the run is recorded
    /// like any other.
    pub async fn remediate_again(&self, finding: &Finding) -> Result<Processed> {
        let started = Instant::now();
        let key = idempotency::finding_key(finding);
        let mut entry = AuditEntry {
            idempotency_key: Some(key.clone()),
            ..AuditEntry::default()
        };
        let run: crate::capabilities::BoxFuture<'_, ()> = Box::pin(self.process_finding(
            finding,
            ProcessOptions::default(),
            &mut entry,
            None,
            None,
        ));
        run.await;
        self.conclude(&key, entry, started).await
    }
}
