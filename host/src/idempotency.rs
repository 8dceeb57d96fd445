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
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

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

struct LedgerState {
    /// Each handled key's status and when it was handled (a counter), for eviction.
    handled: HashMap<String, (Status, u64)>,
    handled_seq: u64,
    max_handled: usize,
    in_flight: HashSet<String>,
    /// Intent records with no terminal record after them: a run stopped between its first
    /// write call and its record. Keyed by idempotency key.
    open_intents: HashMap<String, OpenIntent>,
    /// The nonces of the approval messages already recorded: a second one is a replay.
    nonces: HashSet<String>,
}

impl Default for LedgerState {
    fn default() -> LedgerState {
        LedgerState {
            handled: HashMap::new(),
            handled_seq: 0,
            max_handled: MAX_HANDLED,
            in_flight: HashSet::new(),
            open_intents: HashMap::new(),
            nonces: HashSet::new(),
        }
    }
}

/// An intent record that no terminal record settled yet.
#[derive(Debug, Clone)]
pub struct OpenIntent {
    pub link: RecordLink,
    /// The normalised finding, as the intent recorded it, so it can be re-read at start.
    pub finding: Option<serde_json::Value>,
}

#[derive(Default, Deserialize)]
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

impl LedgerState {
    /// Applies one line of the log; the record's place in the chain when it has one.
    fn apply(&mut self, line: &str) -> Option<RecordLink> {
        let fields = serde_json::from_str::<KeyFields>(line).ok()?;
        let link = match (fields.sequence, fields.record_hash) {
            (Some(sequence), Some(record_hash)) => Some(RecordLink {
                sequence,
                record_hash,
            }),
            _ => None,
        };
        // A retryable record gave its nonce back (see `return_nonce`).
        if let (Some(n), false) = (&fields.approval_message, fields.retryable) {
            self.nonces.insert(n.nonce.clone());
        }
        let Some(key) = fields.idempotency_key else {
            return link;
        };
        if fields.status == Some(Status::Intent) {
            if let Some(link) = &link {
                let finding = serde_json::from_str::<IntentFinding>(line)
                    .ok()
                    .and_then(|i| i.finding);
                let intent = OpenIntent {
                    link: link.clone(),
                    finding,
                };
                self.open_intents.insert(key, intent);
            }
            return link;
        }
        let settles = |l: &Option<RecordLink>, open: &OpenIntent| {
            l.as_ref().is_some_and(|l| l.sequence == open.link.sequence)
        };
        if self
            .open_intents
            .get(&key)
            .is_some_and(|o| settles(&fields.intent, o) || settles(&fields.reconciles, o))
        {
            self.open_intents.remove(&key);
        }
        if let Some(status) = fields.status {
            if is_terminal(status, fields.retryable, fields.dry_run) {
                self.handle(key, status);
            }
        }
        link
    }

    /// Marks a key handled. Past [`MAX_HANDLED`] keys the older half is forgotten: a
    /// redelivery of a forgotten one runs again, finds its fix in place and records
    /// `already-compliant`, so memory stays bounded without changing anything twice.
    fn handle(&mut self, key: String, status: Status) {
        self.handled_seq += 1;
        self.handled.insert(key, (status, self.handled_seq));
        if self.handled.len() > self.max_handled {
            let mut order: Vec<u64> = self.handled.values().map(|(_, n)| *n).collect();
            let middle = order.len() / 2;
            let (_, cut, _) = order.select_nth_unstable(middle);
            let cut = *cut;
            self.handled.retain(|_, (_, n)| *n > cut);
        }
    }
}

/// The ledger as of one record of the log, kept beside it (`<log>.ledger`), so a start reads
/// only the records written after it instead of the whole log. It is used only when the log
/// still holds that record, with that sequence and hash, ending at that offset; anything else
/// (another log, a rewritten one, a damaged checkpoint) means a full rebuild.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    /// Bytes of the log the checkpoint covers: it ends with the record `last`.
    offset: u64,
    last: RecordLink,
    handled: Vec<(String, Status)>,
    open_intents: Vec<(String, RecordLink, Option<serde_json::Value>)>,
    nonces: Vec<String>,
}

const CHECKPOINT_VERSION: u32 = 1;

/// A start that read at least this many records past the checkpoint writes a new one.
const CHECKPOINT_AFTER: usize = 10_000;

/// Handled keys kept at most (about 150 bytes each).
const MAX_HANDLED: usize = 1_000_000;

/// Where the ledger's checkpoint of `log` is kept.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".ledger");
    log.with_file_name(name)
}

/// How a ledger was rebuilt, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Whether a checkpoint was used.
    pub from_checkpoint: bool,
    /// Lines of the log read after it.
    pub lines_read: usize,
}

impl Ledger {
    /// Rebuilds the ledger from an audit log. A line that cannot be read is skipped here:
    /// `salve audit verify` is where a damaged log is reported, and a missing entry only means a
    /// redelivery is processed again, which is safe.
    pub fn from_audit_log(path: &Path) -> Result<Ledger> {
        Ledger::rebuild(path).map(|(ledger, _)| ledger)
    }

    /// [`Ledger::from_audit_log`], saying how. Call it only while nothing appends to the log
    /// through this process (at start): a checkpoint it writes must not miss a record.
    pub fn rebuild(path: &Path) -> Result<(Ledger, Rebuilt)> {
        Ledger::rebuild_every(path, CHECKPOINT_AFTER)
    }

    fn rebuild_every(path: &Path, checkpoint_after: usize) -> Result<(Ledger, Rebuilt)> {
        let ledger = Ledger::default();
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let none = Rebuilt {
                    from_checkpoint: false,
                    lines_read: 0,
                };
                return Ok((ledger, none));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading audit log {}", path.display()))
            }
        };
        let mut state = ledger.state.lock().unwrap_or_else(|p| p.into_inner());
        let checkpoint = checkpoint_path(path);
        let mut start = 0;
        match read_checkpoint(&checkpoint, &mut file) {
            Ok(Some(c)) => {
                start = c.offset;
                for (key, status) in c.handled {
                    state.handle(key, status);
                }
                for (key, link, finding) in c.open_intents {
                    state.open_intents.insert(key, OpenIntent { link, finding });
                }
                state.nonces.extend(c.nonces);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                checkpoint = %checkpoint.display(),
                "not using the ledger checkpoint, reading the whole audit log instead: {e:#}"
            ),
        }
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("reading audit log {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        let (mut offset, mut lines_read, mut last) = (start, 0, None);
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .with_context(|| format!("reading audit log {}", path.display()))?;
            // A line without its newline is a write still under way (or torn): not covered.
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            offset += n as u64;
            lines_read += 1;
            if let Some(link) = state.apply(&line) {
                last = Some((link, offset));
            }
        }
        if lines_read >= checkpoint_after {
            if let Some((link, offset)) = last {
                if let Err(e) = write_checkpoint(&checkpoint, &state, link, offset) {
                    tracing::warn!(
                        checkpoint = %checkpoint.display(),
                        "could not write the ledger checkpoint; the next start reads the whole log again: {e:#}"
                    );
                }
            }
        }
        drop(state);
        let rebuilt = Rebuilt {
            from_checkpoint: start > 0,
            lines_read,
        };
        Ok((ledger, rebuilt))
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
        if let Some((status, _)) = state.handled.get(key) {
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
                state.handle(key.to_string(), status);
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

/// The checkpoint beside the log, if there is one and the log still holds its last record where
/// it says.
fn read_checkpoint(path: &Path, log: &mut std::fs::File) -> Result<Option<Checkpoint>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading it"),
    };
    let c: Checkpoint = serde_json::from_slice(&text).context("parsing it")?;
    if c.version != CHECKPOINT_VERSION {
        bail!(
            "it is version {}, this salve reads {CHECKPOINT_VERSION}",
            c.version
        );
    }
    let len = log.metadata()?.len();
    if c.offset == 0 || c.offset > len {
        bail!("it covers {} bytes, and the log has {len}", c.offset);
    }
    // The record that ends at the checkpoint's offset must be the one it names.
    let end = c.offset - 1;
    let mut newline = [0u8; 1];
    log.seek(SeekFrom::Start(end))?;
    log.read_exact(&mut newline)?;
    let start = crate::audit::last_newline_before(log, end)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; (end - start) as usize];
    log.seek(SeekFrom::Start(start))?;
    log.read_exact(&mut line)?;
    let fields: KeyFields = serde_json::from_slice(&line).unwrap_or_default();
    let held = (fields.sequence, fields.record_hash.as_deref());
    if newline[0] != b'\n' || held != (Some(c.last.sequence), Some(c.last.record_hash.as_str())) {
        bail!(
            "the log does not hold its record {} at byte {}: the log was replaced or rewritten",
            c.last.sequence,
            c.offset
        );
    }
    Ok(Some(c))
}

/// Writes the checkpoint beside the log: to a new private file, synced, then renamed over the
/// old one, so a crash leaves the old checkpoint or the new one, never half of one.
fn write_checkpoint(path: &Path, state: &LedgerState, last: RecordLink, offset: u64) -> Result<()> {
    let mut handled: Vec<(&String, &(Status, u64))> = state.handled.iter().collect();
    handled.sort_unstable_by_key(|(_, (_, n))| *n);
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        offset,
        last,
        handled: handled
            .into_iter()
            .map(|(k, (s, _))| (k.clone(), *s))
            .collect(),
        open_intents: state
            .open_intents
            .iter()
            .map(|(k, o)| (k.clone(), o.link.clone(), o.finding.clone()))
            .collect(),
        nonces: state.nonces.iter().cloned().collect(),
    };
    let tmp = path.with_extension(format!("ledger.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = crate::base::create_private(&tmp).context("creating it")?;
    let written = serde_json::to_writer(std::io::BufWriter::new(&mut file), &checkpoint)
        .map_err(anyhow::Error::from)
        .and_then(|()| file.sync_all().map_err(anyhow::Error::from))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

    fn line(sequence: u64, hash: &str, key: &str, status: &str, extra: &str) -> String {
        format!(
            r#"{{"sequence":{sequence},"record_hash":"{hash}","idempotency_key":"{key}","status":"{status}"{extra}}}"#
        ) + "\n"
    }

    #[test]
    fn a_start_reads_only_what_was_written_after_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("salve-ledger-cp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let intent = r#","finding":{"id":"f"}"#;
        let mut log = line(1, "h1", "a", "remediated", "")
            + &line(2, "h2", "b", "intent", intent)
            + &line(3, "h3", "c", "failed", r#","retryable":true"#);
        std::fs::write(&path, &log).unwrap();
        let (_, first) = Ledger::rebuild_every(&path, 1).unwrap();
        assert_eq!(
            first,
            Rebuilt {
                from_checkpoint: false,
                lines_read: 3
            }
        );
        assert!(checkpoint_path(&path).exists());

        // b's terminal record settles its intent; d is new.
        log += &line(
            4,
            "h4",
            "b",
            "remediated",
            r#","intent":{"sequence":2,"record_hash":"h2"}"#,
        );
        log += &line(5, "h5", "d", "skipped", "");
        std::fs::write(&path, &log).unwrap();
        let (ledger, second) = Ledger::rebuild_every(&path, 1).unwrap();
        assert_eq!(
            second,
            Rebuilt {
                from_checkpoint: true,
                lines_read: 2
            }
        );
        assert_eq!(ledger.claim("a"), Claim::Handled(Status::Remediated));
        assert_eq!(ledger.claim("b"), Claim::Handled(Status::Remediated));
        assert_eq!(ledger.claim("c"), Claim::Fresh);
        assert_eq!(ledger.claim("d"), Claim::Handled(Status::Skipped));
        assert!(ledger.open_intents().is_empty());

        // A log rewritten under the checkpoint is read whole: the checkpoint's record is gone.
        let rewritten = line(1, "other", "x", "remediated", "")
            + &line(2, "h2", "b", "intent", intent)
            + &line(3, "h3", "c", "failed", "")
            + &line(4, "h4", "y", "remediated", "")
            + &line(5, "h5x", "z", "remediated", "");
        std::fs::write(&path, &rewritten).unwrap();
        let (ledger, third) = Ledger::rebuild_every(&path, 1000).unwrap();
        assert_eq!(
            third,
            Rebuilt {
                from_checkpoint: false,
                lines_read: 5
            }
        );
        assert_eq!(ledger.claim("a"), Claim::Fresh);
        assert_eq!(ledger.claim("b"), Claim::Fresh);
        assert_eq!(ledger.open_intents().len(), 1, "b's intent is open again");

        // A damaged checkpoint is not used either.
        std::fs::write(checkpoint_path(&path), "{not json").unwrap();
        let (_, fourth) = Ledger::rebuild_every(&path, 1000).unwrap();
        assert!(!fourth.from_checkpoint);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn past_the_bound_the_older_half_of_the_handled_keys_is_forgotten() {
        let mut state = LedgerState {
            max_handled: 4,
            ..LedgerState::default()
        };
        for k in ["a", "b", "c", "d", "e"] {
            state.handle(k.into(), Status::Remediated);
        }
        let mut kept: Vec<&str> = state.handled.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["d", "e"]);
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
