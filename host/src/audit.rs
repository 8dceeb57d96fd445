//! The audit log: append-only JSON Lines, one record per finding, each chained by SHA-256 to the
//! record before it and fsynced before the caller is told it is written.
//!
//! Every line carries `sequence`, `previous_hash` (the `record_hash` of the line before, zeros for
//! the first) and `record_hash`: the SHA-256 of the line's own JSON with `record_hash` left out,
//! keys sorted. Editing any record breaks its own hash or the next record's link; removing,
//! inserting or reordering breaks the sequence. Only an external copy of the head hash (which
//! `salve audit verify` prints) protects the newest record against a full rewrite.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The hash the first record links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Remediated,
    AlreadyCompliant,
    Review,
    Skipped,
    Rejected,
    Failed,
    /// A `--dry-run` stopped after the plan.
    Planned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Remediated => "remediated",
            Status::AlreadyCompliant => "already-compliant",
            Status::Review => "review",
            Status::Skipped => "skipped",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Planned => "planned",
        }
    }
}

/// The fixer that handled a finding, pinned by the digest of its component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixerIdentity {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// What one audit record says about one finding. The log adds the chain fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditEntry {
    pub finding_id: Option<String>,
    pub correlation_id: Option<String>,
    pub resource_arn: Option<String>,
    pub status: Option<Status>,
    pub reason: Option<String>,
    /// SHA-256 of the raw payload, so a rejected payload can be matched to its source.
    pub payload_sha256: Option<String>,
    /// The recognised source: canonical, wiz or security-hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// The envelopes the finding arrived in, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelope: Vec<String>,
    /// The normalised finding, as decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Value>,
    /// Environment, owner, exception, classification and exposure, each with where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The resource's own tags as read by the host, or why they could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tags: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Value>,
    pub fixer: Option<FixerIdentity>,
    pub dry_run: bool,
    pub plan: Option<Value>,
    pub decision: Option<Value>,
    /// Every capability call, with its IAM action, phase and result.
    pub calls: Vec<Value>,
    pub evidence: Option<Value>,
    pub rollback: Option<Value>,
    /// Integer microseconds: floats would not survive every JSON parser bit for bit, and the
    /// record hash is computed over the parsed form.
    pub durations_us: BTreeMap<String, u64>,
    /// The fixer's own log lines and captured stdout/stderr, bounded.
    pub fixer_output: Option<Value>,
    /// The assumed-role sessions: phase, session name and the exact session policy, or why the
    /// session could not be had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Value>,
    /// The failure is worth another delivery (throttling, 5xx): the queue retries the message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// Every notifier delivery for this finding, including failed ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Value>,
    /// Finding ID plus a hash of the normalised finding; a redelivery with the same key is
    /// recognised as already handled (see `idempotency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A record about an operation rather than a finding (a dead-letter replay), with what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
}

/// A record as written: its position in the chain and its hash.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub sequence: u64,
    pub record_hash: String,
    pub line: String,
}

/// An open audit log. Appends are serialised by an exclusive file lock, so two salve processes
/// sharing one file still produce one chain.
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Seconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant), valid for any date after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The hash of a record: SHA-256 of its JSON without `record_hash`, keys sorted.
fn record_hash(record: &Map<String, Value>) -> String {
    let mut without = record.clone();
    without.remove("record_hash");
    sha256_hex(Value::Object(without).to_string().as_bytes())
}

impl AuditLog {
    /// Opens (or creates) the log for appending.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating audit log directory {}", dir.display()))?;
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        if !existed {
            // The new file's directory entry must be durable too, or a crash can lose the log.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("syncing audit log directory {}", dir.display()))?;
            }
        }
        Ok(AuditLog { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number and hash the next record links to, read from the file's last line.
    fn chain_head(&mut self) -> Result<(u64, String)> {
        let Some(last) = last_line(&mut self.file)? else {
            return Ok((0, GENESIS_HASH.to_string()));
        };
        let record: Map<String, Value> = serde_json::from_str(&last).with_context(|| {
            format!(
                "the last line of {} is not an audit record; run `salve audit verify` on it",
                self.path.display()
            )
        })?;
        let sequence = record.get("sequence").and_then(Value::as_u64);
        let hash = record.get("record_hash").and_then(Value::as_str);
        match (sequence, hash) {
            (Some(s), Some(h)) => Ok((s + 1, h.to_string())),
            _ => bail!(
                "the last record of {} has no sequence or record_hash; run `salve audit verify` on it",
                self.path.display()
            ),
        }
    }

    /// Appends one record and returns once it is on disk (fdatasync).
    pub fn append(&mut self, entry: &AuditEntry) -> Result<SealedRecord> {
        let mut sealed = self.append_batch(std::slice::from_ref(entry))?;
        sealed.pop().context("the audit log sealed no record")
    }

    /// Appends records in order with one write and one fdatasync (group commit), and returns once
    /// all of them are on disk. Either every record is written or the call fails.
    pub fn append_batch(&mut self, entries: &[AuditEntry]) -> Result<Vec<SealedRecord>> {
        self.file
            .lock()
            .with_context(|| format!("locking audit log {}", self.path.display()))?;
        let result = self.append_locked(entries);
        let _ = self.file.unlock();
        result
    }

    fn append_locked(&mut self, entries: &[AuditEntry]) -> Result<Vec<SealedRecord>> {
        let (mut sequence, mut previous_hash) = self.chain_head()?;
        let timestamp = rfc3339(std::time::SystemTime::now());
        let mut bytes = Vec::new();
        let mut sealed = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Object(mut record) =
                serde_json::to_value(entry).context("serialising audit record")?
            else {
                bail!("audit entry did not serialise to an object");
            };
            record.insert("sequence".into(), sequence.into());
            record.insert("timestamp".into(), timestamp.clone().into());
            record.insert("previous_hash".into(), previous_hash.into());
            // The hash covers the record's JSON without `record_hash`, which is exactly this
            // string; appending the field to it (rather than re-serialising a copy with it) is
            // what `verify` reads back the same way, at a third of the cost.
            let body = Value::Object(record).to_string();
            let hash = sha256_hex(body.as_bytes());
            let mut line = body;
            line.pop();
            line.push_str(",\"record_hash\":\"");
            line.push_str(&hash);
            line.push_str("\"}");
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            previous_hash = hash.clone();
            sealed.push(SealedRecord {
                sequence,
                record_hash: hash,
                line,
            });
            sequence += 1;
        }
        self.file
            .write_all(&bytes)
            .with_context(|| format!("writing audit log {}", self.path.display()))?;
        self.file
            .sync_data()
            .with_context(|| format!("fsyncing audit log {}", self.path.display()))?;
        Ok(sealed)
    }
}

/// Group commit in front of an [`AuditLog`]: records handed in concurrently are written together
/// with one fdatasync, and each caller is answered only once its record is on disk. One thread
/// owns the file, so the chain stays in the order records were written.
pub struct AuditWriter {
    jobs: std::sync::mpsc::Sender<CommitJob>,
}

struct CommitJob {
    entry: AuditEntry,
    reply: tokio::sync::oneshot::Sender<(AuditEntry, Result<SealedRecord, String>)>,
}

/// At most this many records share one fsync, which bounds how long the first one waits.
const MAX_GROUP: usize = 512;

impl AuditWriter {
    pub fn start(mut log: AuditLog) -> Result<AuditWriter> {
        let (jobs, queue) = std::sync::mpsc::channel::<CommitJob>();
        std::thread::Builder::new()
            .name("salve-audit".into())
            .spawn(move || {
                // Ends when every sender is gone.
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    let (entries, replies): (Vec<_>, Vec<_>) =
                        group.into_iter().map(|j| (j.entry, j.reply)).unzip();
                    match log.append_batch(&entries) {
                        Ok(sealed) => {
                            for ((entry, reply), record) in
                                entries.into_iter().zip(replies).zip(sealed)
                            {
                                let _ = reply.send((entry, Ok(record)));
                            }
                        }
                        Err(e) => {
                            let message = format!("{e:#}");
                            for (entry, reply) in entries.into_iter().zip(replies) {
                                let _ = reply.send((entry, Err(message.clone())));
                            }
                        }
                    }
                }
            })
            .context("starting the audit writer thread")?;
        Ok(AuditWriter { jobs })
    }

    /// Hands one record to the writer and waits until it is durable. The entry comes back either
    /// way, so the caller still has it when the write fails.
    pub async fn append(&self, entry: AuditEntry) -> (AuditEntry, Result<SealedRecord>) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Err(std::sync::mpsc::SendError(job)) = self.jobs.send(CommitJob { entry, reply }) {
            return (
                job.entry,
                Err(anyhow::anyhow!("the audit writer thread has stopped")),
            );
        }
        match answer.await {
            Ok((entry, result)) => (entry, result.map_err(anyhow::Error::msg)),
            Err(_) => (
                AuditEntry::default(),
                Err(anyhow::anyhow!(
                    "the audit writer thread stopped before answering"
                )),
            ),
        }
    }
}

/// Reads the last non-empty line of a file without reading the whole file.
fn last_line(file: &mut File) -> Result<Option<String>> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        end = start;
        let trimmed = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(pos) = trimmed.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(
                String::from_utf8_lossy(&trimmed[pos + 1..]).into_owned(),
            ));
        }
    }
    let trimmed = tail.strip_suffix(b"\n").unwrap_or(&tail);
    if trimmed.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(trimmed).into_owned()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    Unreadable,
    Edited,
    Removed,
    Inserted,
    Reordered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number in the file.
    pub line: usize,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub records: usize,
    /// The newest record's hash: keep a copy elsewhere to pin the whole chain.
    pub head_hash: Option<String>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Parsed {
    line: usize,
    sequence: u64,
    previous_hash: String,
    record_hash: String,
}

/// Checks the whole chain and names every record that was edited, removed, inserted or reordered.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading audit log {}", path.display()))?;
    Ok(verify_text(&text))
}

pub fn verify_text(text: &str) -> VerifyReport {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let record: Map<String, Value> = match serde_json::from_str(raw) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    line,
                    kind: ProblemKind::Unreadable,
                    message: format!("line {line} is not a JSON audit record: {e}"),
                });
                continue;
            }
        };
        let fields = (
            record.get("sequence").and_then(Value::as_u64),
            record.get("previous_hash").and_then(Value::as_str),
            record.get("record_hash").and_then(Value::as_str),
        );
        let (Some(sequence), Some(previous_hash), Some(stored_hash)) = fields else {
            problems.push(Problem {
                line,
                kind: ProblemKind::Unreadable,
                message: format!("line {line} lacks sequence, previous_hash or record_hash"),
            });
            continue;
        };
        let actual = record_hash(&record);
        if actual != stored_hash {
            problems.push(Problem {
                line,
                kind: ProblemKind::Edited,
                message: format!(
                    "line {line} (sequence {sequence}) was edited: its content hashes to {actual}, not the recorded {stored_hash}"
                ),
            });
        }
        parsed.push(Parsed {
            line,
            sequence,
            previous_hash: previous_hash.to_string(),
            record_hash: actual,
        });
    }

    let mut seen: HashMap<u64, usize> = HashMap::new();
    for p in &parsed {
        if let Some(first) = seen.insert(p.sequence, p.line) {
            problems.push(Problem {
                line: p.line,
                kind: ProblemKind::Inserted,
                message: format!(
                    "line {} repeats sequence {} of line {first}: a record was inserted",
                    p.line, p.sequence
                ),
            });
        }
    }

    let mut expected_sequence = 0u64;
    let mut expected_previous = GENESIS_HASH.to_string();
    let mut previous_line: Option<usize> = None;
    for p in &parsed {
        let after = previous_line.map_or("the start".to_string(), |l| format!("line {l}"));
        if p.sequence > expected_sequence {
            problems.push(Problem {
                line: p.line,
                kind: ProblemKind::Removed,
                message: format!(
                    "sequence {}..{} is missing before line {}: records were removed",
                    expected_sequence,
                    p.sequence - 1,
                    p.line
                ),
            });
        } else if p.sequence < expected_sequence && seen.get(&p.sequence) == Some(&p.line) {
            problems.push(Problem {
                line: p.line,
                kind: ProblemKind::Reordered,
                message: format!(
                    "line {} has sequence {} after sequence {}: records were reordered",
                    p.line,
                    p.sequence,
                    expected_sequence.saturating_sub(1)
                ),
            });
        } else if p.previous_hash != expected_previous && p.sequence == expected_sequence {
            // Same position, wrong link: the record before it was changed and re-hashed, or this
            // one was put in place of the original.
            let kind = if previous_line.is_some() {
                ProblemKind::Edited
            } else {
                ProblemKind::Inserted
            };
            problems.push(Problem {
                line: p.line,
                kind,
                message: format!(
                    "line {} does not link to {after}: previous_hash {} should be {}",
                    p.line, p.previous_hash, expected_previous
                ),
            });
        }
        expected_sequence = expected_sequence.max(p.sequence + 1);
        expected_previous = p.record_hash.clone();
        previous_line = Some(p.line);
    }
    problems.sort_by_key(|p| p.line);
    VerifyReport {
        records: parsed.len(),
        head_hash: parsed.last().map(|p| p.record_hash.clone()),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn last_line_handles_blocks_and_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("salve-lastline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let long = "x".repeat(200_000);
        std::fs::write(&path, format!("a\n{long}\n")).unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_line(&mut f).unwrap().unwrap().len(), 200_000);
        std::fs::write(&path, "").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_line(&mut f).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
