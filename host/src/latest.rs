//! The latest record of each finding that says something about it, read from the audit log:
//! what `salve pending`, `salve approve` and `salve rollback` start from.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::audit::Status;
use crate::capabilities::Plan;
use crate::record::{RecordLink, RecordedDecision, Reversal};
use crate::runtime::FixerIdentity;

/// The fields of a record the readers of this module use.
#[derive(Deserialize)]
struct View {
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default)]
    record_hash: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    finding_id: Option<String>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    finding: Option<serde_json::Value>,
    #[serde(default)]
    plan: Option<Plan>,
    #[serde(default)]
    decision: Option<RecordedDecision>,
    #[serde(default)]
    fixer: Option<FixerIdentity>,
    #[serde(default)]
    rollback: Option<serde_json::Value>,
    #[serde(default)]
    reversal: Option<Reversal>,
    #[serde(default)]
    pull_request: Option<crate::iac::PullRequestRecord>,
}

/// A finding's latest record, as its readers need it.
pub struct Latest {
    pub status: Status,
    pub link: Option<RecordLink>,
    pub timestamp: Option<String>,
    pub reason: Option<String>,
    /// The finding as recorded; input again, so a reader validates it.
    pub finding: Option<serde_json::Value>,
    pub plan: Option<Plan>,
    pub decision: Option<RecordedDecision>,
    pub fixer: Option<FixerIdentity>,
    /// The fixer's rollback data, when the record is a fix that returned some.
    pub rollback: Option<serde_json::Value>,
    pub reversal: Option<Reversal>,
    pub pull_request: Option<crate::iac::PullRequestRecord>,
}

/// The latest terminal record of every finding in `audit_log` (none when the log does not
/// exist yet). Records that say nothing new about the finding are passed over: dry runs,
/// intents, refused messages and refused or failed rollbacks.
pub fn records(audit_log: &Path) -> Result<HashMap<String, Latest>> {
    let file = match std::fs::File::open(audit_log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading audit log {}", audit_log.display()))
        }
    };
    let mut latest = HashMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading audit log {}", audit_log.display()))?;
        // A line that is not a record (a torn tail) is `salve audit verify`'s to report.
        let Ok(v) = serde_json::from_str::<View>(&line) else {
            continue;
        };
        let (Some(id), Some(status)) = (v.finding_id, v.status) else {
            continue;
        };
        // A rollback that did not happen leaves the fix in place: the fix stays the latest.
        let refused_rollback = v.reversal.is_some() && status != Status::RolledBack;
        if v.dry_run
            || refused_rollback
            || matches!(status, Status::Intent | Status::Planned | Status::Rejected)
        {
            continue;
        }
        let link = match (v.sequence, v.record_hash) {
            (Some(sequence), Some(record_hash)) => Some(RecordLink {
                sequence,
                record_hash,
            }),
            _ => None,
        };
        latest.insert(
            id,
            Latest {
                status,
                link,
                timestamp: v.timestamp,
                reason: v.reason,
                finding: v.finding,
                plan: v.plan,
                decision: v.decision,
                fixer: v.fixer,
                rollback: v.rollback,
                reversal: v.reversal,
                pull_request: v.pull_request,
            },
        );
    }
    Ok(latest)
}
