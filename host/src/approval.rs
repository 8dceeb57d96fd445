//! Findings waiting for a person: the latest record of each finding, when it is a `review` with
//! a plan, read from the audit log. `salve pending` lists them; `salve approve` takes one, and the
//! pipeline re-checks, re-plans and re-decides it before anything changes
//! (`Pipeline::approve`).

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::audit::Status;
use crate::capabilities::Plan;
use crate::finding::Finding;
use crate::record::RecordLink;

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

/// Every finding whose latest terminal record is a review with a plan, oldest first.
pub fn pending(audit_log: &Path) -> Result<Vec<Pending>> {
    let mut out: Vec<Pending> = crate::latest::records(audit_log)?
        .into_values()
        .filter_map(|v| match (v.status, v.plan, v.finding, v.link) {
            (Status::Review, Some(plan), Some(finding), Some(record))
                if !plan.changes.is_empty() =>
            {
                // The record's finding is input again: validated like any other.
                Finding::from_recorded(finding).ok().map(|finding| Pending {
                    finding,
                    plan,
                    reason: v.reason,
                    requires_approval: v
                        .decision
                        .as_ref()
                        .is_some_and(|d| d.decision.requires_approval),
                    record,
                    recorded_at: v.timestamp.unwrap_or_default(),
                })
            }
            _ => None,
        })
        .collect();
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

/// The `type` of an approval message on the queue.
pub const MESSAGE_TYPE: &str = "salve-approval";

/// An approval as it arrives on the queue: the approval itself as a JSON string, and an
/// HMAC-SHA256 over exactly that string's bytes, in hex. README: "Approval" documents it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub approval: String,
    #[serde(rename = "hmac-sha256")]
    pub hmac_sha256: String,
}

/// What an authenticated approval message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedApproval {
    pub finding_id: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub accept_new_plan: bool,
    /// When the approver's system issued it (RFC 3339): it expires `max-age-seconds` later.
    pub issued_at: String,
    /// Unique per approval: a second message with the same nonce is a replay.
    pub nonce: String,
}

/// `[approvals]` in salve.toml: the key that authenticates approval messages, and how long one
/// stays valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApprovalsConfig {
    /// The environment variable that holds the key.
    pub key_env: Option<String>,
    /// A file that holds the key (relative to salve.toml).
    pub key_file: Option<std::path::PathBuf>,
    pub max_age_seconds: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            key_env: None,
            key_file: None,
            max_age_seconds: 3600,
        }
    }
}

/// How far in the future an approval may say it was issued (clocks differ).
const CLOCK_SKEW_MS: i64 = 300_000;

impl ApprovalsConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.key_env.is_some() && self.key_file.is_some() {
            return Err("[approvals] sets both key-env and key-file; keep one".into());
        }
        if !(60..=7 * 86_400).contains(&self.max_age_seconds) {
            return Err(format!(
                "[approvals] max-age-seconds = {} is outside 60..=604800",
                self.max_age_seconds
            ));
        }
        Ok(())
    }

    /// The key; errors name where it was looked for, never the value.
    fn key(&self) -> std::result::Result<Vec<u8>, String> {
        let text = match (&self.key_env, &self.key_file) {
            (Some(var), _) => std::env::var(var)
                .map_err(|_| format!("the approval key variable ${var} is not set"))?,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                format!("reading the approval key file {}: {e}", path.display())
            })?,
            (None, None) => {
                return Err(
                    "approval messages are not accepted here: salve.toml has no [approvals] key-env or key-file"
                        .into(),
                )
            }
        };
        let key = text.trim();
        if key.len() < 32 {
            return Err("the approval key is shorter than 32 characters".into());
        }
        Ok(key.as_bytes().to_vec())
    }

    /// Authenticates a message and reads it; `now` is in epoch milliseconds. The error says why
    /// it was refused, never the key.
    pub fn verify(
        &self,
        message: &ApprovalMessage,
        now: i64,
    ) -> std::result::Result<SignedApproval, String> {
        use hmac::{Hmac, Mac};
        let key = self.key()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|_| "the approval key cannot be used".to_string())?;
        mac.update(message.approval.as_bytes());
        let given = decode_hex(&message.hmac_sha256)
            .ok_or("the approval's hmac-sha256 is not 64 hex digits")?;
        mac.verify_slice(&given).map_err(|_| {
            "the approval failed authentication: its hmac-sha256 does not match the approval with this deployment's key".to_string()
        })?;
        let approval: SignedApproval = serde_json::from_str(&message.approval)
            .map_err(|e| format!("the authenticated approval is malformed: {e}"))?;
        if approval.by.trim().is_empty() || approval.nonce.trim().is_empty() {
            return Err("the approval names no approver or no nonce".into());
        }
        let issued = crate::timestamp::parse(&approval.issued_at).ok_or_else(|| {
            format!(
                "the approval's issued_at {:?} is not a time",
                approval.issued_at
            )
        })?;
        if issued > now + CLOCK_SKEW_MS {
            return Err(format!(
                "the approval was issued in the future ({})",
                approval.issued_at
            ));
        }
        if now - issued > self.max_age_seconds as i64 * 1000 {
            return Err(format!(
                "the approval expired: issued {}, valid for {} s",
                approval.issued_at, self.max_age_seconds
            ));
        }
        Ok(approval)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// An authenticated approval message, as every record about it keeps it (its nonce makes a
/// replay recognisable after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalMessageRecord {
    pub nonce: String,
    pub finding_id: String,
    pub by: String,
    pub issued_at: String,
}

impl From<&SignedApproval> for ApprovalMessageRecord {
    fn from(a: &SignedApproval) -> Self {
        ApprovalMessageRecord {
            nonce: a.nonce.clone(),
            finding_id: a.finding_id.clone(),
            by: a.by.clone(),
            issued_at: a.issued_at.clone(),
        }
    }
}
