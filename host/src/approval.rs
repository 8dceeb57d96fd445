//! Findings waiting for a person: the latest record of each finding, when it is a `review` with
//! a plan, read from the audit log. `salve pending` lists them; `salve approve` takes one, and the
//! pipeline re-checks, re-plans and re-decides it before anything changes
//! (`Pipeline::approve`).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::audit::Status;
use crate::capabilities::Plan;
use crate::finding::Finding;
use crate::record::{RecordLink, RecordedDecision};

/// What a person approves with `salve approve`.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub by: String,
    pub reason: Option<String>,
    /// Apply even when the plan made now differs from the reviewed one.
    pub accept_new_plan: bool,
}

/// One finding waiting for approval.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub finding: Finding,
    pub plan: Plan,
    /// Why it went to review.
    pub reason: Option<String>,
    pub requires_approval: bool,
    pub record: RecordLink,
    pub recorded_at: String,
}

/// The fields of a record this module reads.
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
}

/// Every finding whose latest terminal record is a review with a plan, oldest first.
pub fn pending(audit_log: &Path) -> Result<Vec<Pending>> {
    let file = match std::fs::File::open(audit_log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading audit log {}", audit_log.display()))
        }
    };
    let mut latest: HashMap<String, Option<Pending>> = HashMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading audit log {}", audit_log.display()))?;
        // A line that is not a record (a torn tail) is `salve audit verify`'s to report.
        let Ok(v) = serde_json::from_str::<View>(&line) else {
            continue;
        };
        let Some(id) = v.finding_id.clone() else {
            continue;
        };
        if v.dry_run || matches!(v.status, None | Some(Status::Intent | Status::Planned)) {
            continue;
        }
        let waiting = match (v.status, v.plan, v.finding, v.sequence, v.record_hash) {
            (
                Some(Status::Review),
                Some(plan),
                Some(finding),
                Some(sequence),
                Some(record_hash),
            ) if !plan.changes.is_empty() => {
                // The record's finding is input again: validated like any other.
                Finding::from_recorded(finding).ok().map(|finding| Pending {
                    finding,
                    plan,
                    reason: v.reason,
                    requires_approval: v
                        .decision
                        .as_ref()
                        .is_some_and(|d| d.decision.requires_approval),
                    record: RecordLink {
                        sequence,
                        record_hash,
                    },
                    recorded_at: v.timestamp.unwrap_or_default(),
                })
            }
            _ => None,
        };
        latest.insert(id, waiting);
    }
    let mut out: Vec<Pending> = latest.into_values().flatten().collect();
    out.sort_by_key(|p| p.record.sequence);
    Ok(out)
}

/// The one pending finding `finding_id` names, or why there is none to approve.
pub fn find(audit_log: &Path, finding_id: &str) -> Result<Pending> {
    match pending(audit_log)?
        .into_iter()
        .find(|p| p.finding.id == finding_id)
    {
        Some(p) => Ok(p),
        None => bail!(
            "finding {finding_id:?} is not waiting for approval in {}: its latest record is not a review with a plan (see `salve pending`)",
            audit_log.display()
        ),
    }
}

/// The guardrails an approval never overrides: it speaks for a person, not for the deployment's
/// allowlists.
pub const NOT_OVERRIDABLE: [&str; 3] = [
    "account allowlisted",
    "resource type approved",
    "every proposed action allowed",
];
