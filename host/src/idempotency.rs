//! Recognising a finding that was already handled. Queues deliver at least once, so after a
//! crash between "record written" and "message deleted" the same message comes back. Each audit
//! record carries an idempotency key (finding ID plus a hash of the normalised finding), and the
//! ledger is rebuilt from the audit log at start, so it survives restarts with no second store
//! to keep in step: a key is handled exactly when its terminal record is on disk.
//!
//! Without the ledger a redelivered fix would still be safe (fixers plan from the resource's
//! current state, so a landed fix plans nothing and is recorded as already compliant); the
//! ledger is what keeps the audit log at one terminal record per finding.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::audit::{sha256_hex, RecordLink, Status};
use crate::finding::Finding;

/// The key of a finding: its ID and a hash of everything the decision is made from, so an
/// updated finding (new severity, other tags) is handled again, but a redelivery is not.
pub fn finding_key(finding: &Finding) -> String {
    let canonical = serde_json::to_vec(finding).unwrap_or_default();
    format!("finding:{}:{}", finding.id, &sha256_hex(&canonical)[..32])
}

/// The key of a message that held no usable finding: the payload's hash and its place in it.
pub fn payload_key(payload_sha256: &str, index: usize, finding_id: Option<&str>) -> String {
    match finding_id {
        Some(id) => format!(
            "finding:{id}:payload:{}",
            &payload_sha256[..32.min(payload_sha256.len())]
        ),
        None => format!("payload:{payload_sha256}:{index}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody has handled it: the caller owns it until [`Ledger::release`] or
    /// [`Ledger::complete`].
    Fresh,
    /// Its terminal record is already in the audit log, with this status.
    Handled(Status),
    /// Another delivery of it is being processed right now.
    InFlight,
}

#[derive(Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    handled: HashMap<String, Status>,
    in_flight: HashSet<String>,
    /// Intent records with no terminal record after them: a run stopped between its first
    /// write call and its record. Keyed by idempotency key.
    open_intents: HashMap<String, OpenIntent>,
    /// The nonces of the approval messages already recorded: a second one is a replay.
    nonces: HashSet<String>,
}

/// An intent record that no terminal record settled yet.
#[derive(Debug, Clone)]
pub struct OpenIntent {
    pub link: RecordLink,
    /// The normalised finding, as the intent recorded it, so it can be re-read at start.
    pub finding: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeyFields {
    idempotency_key: Option<String>,
    status: Option<Status>,
    #[serde(default)]
    retryable: bool,
    #[serde(default)]
    dry_run: bool,
    sequence: Option<u64>,
    record_hash: Option<String>,
    intent: Option<RecordLink>,
    reconciles: Option<RecordLink>,
    #[serde(default)]
    approval_message: Option<NonceField>,
}

#[derive(Deserialize)]
struct NonceField {
    nonce: String,
}

/// The finding an intent record holds; read only for intents, so rebuilding the ledger does not
/// build every record's finding.
#[derive(Deserialize)]
struct IntentFinding {
    finding: Option<serde_json::Value>,
}

impl Ledger {
    /// Rebuilds the ledger from an audit log. A line that cannot be read is skipped here:
    /// `salve audit verify` is where a damaged log is reported, and a missing entry only means a
    /// redelivery is processed again, which is safe.
    pub fn from_audit_log(path: &Path) -> Result<Ledger> {
        let ledger = Ledger::default();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ledger),
            Err(e) => {
                return Err(e).with_context(|| format!("reading audit log {}", path.display()))
            }
        };
        let mut state = ledger.state.lock().unwrap_or_else(|p| p.into_inner());
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("reading audit log {}", path.display()))?;
            let Ok(fields) = serde_json::from_str::<KeyFields>(&line) else {
                continue;
            };
            // A retryable record gave its nonce back (see `return_nonce`).
            if let (Some(n), false) = (&fields.approval_message, fields.retryable) {
                state.nonces.insert(n.nonce.clone());
            }
            let Some(key) = fields.idempotency_key else {
                continue;
            };
            if fields.status == Some(Status::Intent) {
                if let (Some(sequence), Some(record_hash)) = (fields.sequence, fields.record_hash) {
                    let link = RecordLink {
                        sequence,
                        record_hash,
                    };
                    let finding = serde_json::from_str::<IntentFinding>(&line)
                        .ok()
                        .and_then(|i| i.finding);
                    state.open_intents.insert(key, OpenIntent { link, finding });
                }
                continue;
            }
            let settles = |l: &Option<RecordLink>, open: &OpenIntent| {
                l.as_ref().is_some_and(|l| l.sequence == open.link.sequence)
            };
            if state
                .open_intents
                .get(&key)
                .is_some_and(|o| settles(&fields.intent, o) || settles(&fields.reconciles, o))
            {
                state.open_intents.remove(&key);
            }
            if let Some(status) = fields.status {
                if is_terminal(status, fields.retryable, fields.dry_run) {
                    state.handled.insert(key, status);
                }
            }
        }
        drop(state);
        Ok(ledger)
    }

    /// Takes an approval message's nonce; `false` when it was taken before (a replay).
    pub fn take_nonce(&self, nonce: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.nonces.insert(nonce.to_string())
    }

    /// Gives a nonce back: its approval ended in a failure worth another delivery.
    pub fn return_nonce(&self, nonce: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.nonces.remove(nonce);
    }

    pub fn claim(&self, key: &str) -> Claim {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = state.handled.get(key) {
            return Claim::Handled(*status);
        }
        if !state.in_flight.insert(key.to_string()) {
            return Claim::InFlight;
        }
        Claim::Fresh
    }

    /// The claim's record is durable. A terminal outcome marks the key handled; a retryable
    /// failure or a dry run leaves it free for the next delivery.
    pub fn complete(&self, key: &str, status: Option<Status>, retryable: bool, dry_run: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight.remove(key);
        if let Some(status) = status {
            if is_terminal(status, retryable, dry_run) {
                state.handled.insert(key.to_string(), status);
            }
        }
    }

    /// The claim ended without a durable record.
    pub fn release(&self, key: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight.remove(key);
    }

    /// The intent record an earlier run of this key left without a terminal record.
    pub fn open_intent(&self, key: &str) -> Option<RecordLink> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_intents.get(key).map(|o| o.link.clone())
    }

    /// Every intent still waiting for a terminal record, oldest first.
    pub fn open_intents(&self) -> Vec<(String, OpenIntent)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut open: Vec<_> = state
            .open_intents
            .iter()
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        open.sort_by_key(|(_, o)| o.link.sequence);
        open
    }

    /// An intent record is durable; it stays open until [`Ledger::settle_intent`].
    pub fn note_intent(&self, key: &str, intent: OpenIntent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_intents.insert(key.to_string(), intent);
    }

    /// The key's terminal record is durable, so its intent is settled.
    pub fn settle_intent(&self, key: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_intents.remove(key);
    }

    pub fn handled_count(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.handled.len()
    }
}

fn is_terminal(status: Status, retryable: bool, dry_run: bool) -> bool {
    !retryable && !dry_run && !matches!(status, Status::Planned | Status::Intent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_handled_only_after_a_terminal_record() {
        let ledger = Ledger::default();
        assert_eq!(ledger.claim("k"), Claim::Fresh);
        assert_eq!(ledger.claim("k"), Claim::InFlight);
        ledger.complete("k", Some(Status::Failed), true, false);
        assert_eq!(
            ledger.claim("k"),
            Claim::Fresh,
            "a retryable failure frees the key"
        );
        ledger.release("k");
        assert_eq!(ledger.claim("k"), Claim::Fresh);
        ledger.complete("k", Some(Status::Remediated), false, false);
        assert_eq!(ledger.claim("k"), Claim::Handled(Status::Remediated));
    }

    #[test]
    fn dry_runs_do_not_count_as_handled() {
        let ledger = Ledger::default();
        assert_eq!(ledger.claim("k"), Claim::Fresh);
        ledger.complete("k", Some(Status::Planned), false, true);
        assert_eq!(ledger.claim("k"), Claim::Fresh);
    }

    #[test]
    fn the_ledger_is_rebuilt_from_the_log_skipping_damaged_lines() {
        let dir = std::env::temp_dir().join(format!("salve-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"idempotency_key":"a","status":"remediated"}"#,
                "\n",
                "not json\n",
                r#"{"idempotency_key":"b","status":"failed","retryable":true}"#,
                "\n",
                r#"{"idempotency_key":"c","status":"planned","dry_run":true}"#,
                "\n",
                r#"{"status":"rejected"}"#,
                "\n",
            ),
        )
        .unwrap();
        let ledger = Ledger::from_audit_log(&path).unwrap();
        assert_eq!(ledger.claim("a"), Claim::Handled(Status::Remediated));
        assert_eq!(ledger.claim("b"), Claim::Fresh);
        assert_eq!(ledger.claim("c"), Claim::Fresh);
        assert_eq!(ledger.handled_count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
