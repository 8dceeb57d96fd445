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
/// intents, refused messages, refused or failed rollbacks, and `already-compliant` after a fix.
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
        // A later run that found the resource already compliant (a redelivery) says nothing
        // new about a fix: the fix stays the latest, so it can still be rolled back or checked
        // for drift.
        if status == Status::AlreadyCompliant
            && latest
                .get(&id)
                .is_some_and(|l: &Latest| l.status == Status::Remediated)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivery_found_compliant_leaves_the_fix_the_latest() {
        let dir = std::env::temp_dir().join(format!("salve-latest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.jsonl");
        std::fs::write(
            &log,
            "{\"sequence\":0,\"record_hash\":\"a\",\"finding_id\":\"f\",\"status\":\"remediated\"}\n\
             {\"sequence\":1,\"record_hash\":\"b\",\"finding_id\":\"f\",\"status\":\"already-compliant\"}\n\
             {\"sequence\":2,\"record_hash\":\"c\",\"finding_id\":\"g\",\"status\":\"already-compliant\"}\n",
        )
        .unwrap();
        let latest = records(&log).unwrap();
        assert_eq!(latest["f"].status, Status::Remediated);
        assert_eq!(latest["f"].link.as_ref().unwrap().sequence, 0);
        assert_eq!(latest["g"].status, Status::AlreadyCompliant);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
