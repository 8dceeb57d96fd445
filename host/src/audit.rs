//! The audit log: append-only JSON Lines, one record per finding, each chained by SHA-256 to the
//! record before it and fsynced before the caller is told it is written.
//!
//! Every line carries `sequence`, `previous_hash` (the `record_hash` of the line before, zeros for
//! the first) and `record_hash`, always the last field: the SHA-256 of the line's own bytes with
//! `record_hash` left out (and the object closed). Editing any record breaks its own hash or the
//! next record's link; removing, inserting or reordering breaks the sequence. Only an external
//! copy of the head hash (which `salve audit verify` prints) protects the newest record against a
//! full rewrite.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) use crate::base::create_private;
pub use crate::base::{hex, rfc3339, sha256_hex};
use crate::capabilities::{CapabilityCall, Plan};
use crate::finding::Finding;
use crate::ingest::Source;
use crate::notify::Delivery;
use crate::policy::metadata::Metadata;
use crate::policy::risk::RiskScore;
pub use crate::record::RecordLink;
use crate::record::{Approval, Evidence, RecordedDecision, ResourceTags, SessionRecord};
pub use crate::runtime::FixerIdentity;
use crate::runtime::FixerOutput;

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
    /// `salve rollback` undid a fix: the host read every reversing call's outcome back.
    RolledBack,
    /// The fix is a pull request against the Terraform that declares the resource; nothing
    /// was changed in the account.
    PullRequestOpened,
    /// `salve iac sync` found the finding's pull request merged: the fix is in the code, and
    /// remediation ended at the merge.
    PullRequestMerged,
    /// `salve iac sync` found the finding's pull request closed without merge: open again.
    PullRequestClosed,
    /// Not an outcome: written (and fsynced) after the write session is had and before the
    /// fixer's first write call, so nothing changes in AWS that the log could not record. The
    /// terminal record links back to it; one with no terminal record is reconciled at start.
    Intent,
    /// `salve drift check` found a resource that differs from a fix salve made or from the
    /// Terraform that declares it. Not about one finding: `drift` says what differs.
    DriftDetected,
    /// A resource recorded as drifted agrees again (the code or the live change was reconciled).
    DriftResolved,
    /// `salve break-glass open`: a person may change the resource by hand for a while.
    BreakGlassOpened,
    /// A break-glass window ended: closed by a person, or by `drift check` finding the live
    /// state and the code agree again.
    BreakGlassClosed,
    /// A break-glass window passed its due time unreconciled; the notifier was told.
    BreakGlassOverdue,
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
            Status::RolledBack => "rolled-back",
            Status::PullRequestOpened => "pull-request-opened",
            Status::PullRequestMerged => "pull-request-merged",
            Status::PullRequestClosed => "pull-request-closed",
            Status::Intent => "intent",
            Status::DriftDetected => "drift-detected",
            Status::DriftResolved => "drift-resolved",
            Status::BreakGlassOpened => "break-glass-opened",
            Status::BreakGlassClosed => "break-glass-closed",
            Status::BreakGlassOverdue => "break-glass-overdue",
        }
    }
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
    pub source: Option<Source>,
    /// The envelopes the finding arrived in, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelope: Vec<String>,
    /// The normalised finding, as decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// Environment, owner, exception, classification and exposure, each with where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The resource's own tags as read by the host, or why they could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tags: Option<ResourceTags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskScore>,
    pub fixer: Option<FixerIdentity>,
    pub dry_run: bool,
    pub plan: Option<Plan>,
    pub decision: Option<RecordedDecision>,
    /// Every capability call, with its IAM action, phase and result.
    pub calls: Vec<CapabilityCall>,
    pub evidence: Option<Evidence>,
    /// The fixer's own JSON, bounded (see `pipeline::fixer_json`): only the fixer knows its shape.
    pub rollback: Option<Value>,
    /// Integer microseconds: floats would not survive every JSON parser bit for bit, and the
    /// record hash is computed over the parsed form.
    pub durations_us: BTreeMap<String, u64>,
    /// The fixer's own log lines and captured stdout/stderr, bounded.
    pub fixer_output: Option<FixerOutput>,
    /// The assumed-role sessions: phase, session name and the exact session policy, or why the
    /// session could not be had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionRecord>,
    /// The failure is worth another delivery (throttling, 5xx): the queue retries the message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// Every notifier delivery for this finding, including failed ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Delivery>,
    /// Finding ID plus a hash of the normalised finding; a redelivery with the same key is
    /// recognised as already handled (see `idempotency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A record about an operation rather than a finding (a dead-letter replay), with what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// On a terminal record: the intent record written before its first write call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<RecordLink>,
    /// On a record that settles an intent an earlier run left without a terminal record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciles: Option<RecordLink>,
    /// How the payload arrived: the queue or topic message it came in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryInfo>,
    /// On a record of a plan a person approved: who, why, and the review record approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// On every record about an authenticated `salve-approval` message, applied or refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_message: Option<crate::approval::ApprovalMessageRecord>,
    /// On every record of a `salve rollback` run, done or refused: who, why, and the fix undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal: Option<crate::record::Reversal>,
    /// Where the resource is declared in Terraform, when `[[iac.terraform]]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iac: Option<crate::iac::Traced>,
    /// The pull request that carries the fix into the code, or why there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<crate::iac::PullRequestRecord>,
    /// A `drift-detected` or `drift-resolved` record's resource: what differs, from what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::DriftRecord>,
    /// A break-glass record: who, why, until when, and the reconciliation issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<crate::drift::BreakGlassRecord>,
}

/// The message a payload arrived in, so a record can be matched to the queue's own logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryInfo {
    /// `sqs` (a queue, through Lambda or the daemon) or `sns` (a topic invoking Lambda).
    pub via: String,
    pub message_id: String,
}

impl SealedRecord {
    pub fn link(&self) -> RecordLink {
        RecordLink {
            sequence: self.sequence,
            record_hash: self.record_hash.clone(),
        }
    }
}

/// A record as written: its position in the chain and its hash.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub sequence: u64,
    pub record_hash: String,
    pub line: String,
}

/// Records larger than this (as JSON) have their bulkiest fields replaced by a digest and a
/// size, so one record can never make the log slow or unreadable to append to.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Where the chain stands: the next sequence number, the hash it links to, and the file length
/// at which that was true. Kept in memory so appending never depends on re-reading (or parsing)
/// the log's own last line; re-read only when another process grew the file.
#[derive(Debug, Clone)]
struct ChainHead {
    next_sequence: u64,
    previous_hash: String,
    end: u64,
}

/// What `open` did to a torn tail: the bytes it cut, and where it kept them.
#[derive(Debug, Clone, Serialize)]
pub struct TailRepair {
    pub offset: u64,
    pub dropped_bytes: u64,
    pub dropped_sha256: String,
    pub saved_to: String,
}

/// An open audit log. Appends are serialised by an exclusive file lock, so two salve processes
/// sharing one file still produce one chain.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    head: Option<ChainHead>,
}

/// The part of a written line its `record_hash` covers: the writer appends
/// `,"record_hash":"<64 hex>"}` to the hashed body, so the body is the line without that suffix,
/// closed again. Hashing these exact bytes (not a re-serialised parse) means a line with a
/// duplicated key, or any other byte-level edit, does not verify.
fn hashed_body(line: &str) -> Option<String> {
    const TAIL: usize = r#","record_hash":""#.len() + 64 + r#""}"#.len();
    let cut = line.len().checked_sub(TAIL)?;
    let (body, tail) = (line.get(..cut)?, line.get(cut..)?);
    let hash = tail
        .strip_prefix(r#","record_hash":""#)?
        .strip_suffix(r#""}"#)?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{body}}}"))
}

/// The sequence and `record_hash` of one written line, read from its top level only (see
/// [`chain_fields`]), for anything that needs a record's place in the chain.
pub fn record_position(line: &str) -> Option<(u64, String)> {
    let fields = chain_fields(line).ok()?;
    Some((fields.sequence?, fields.record_hash?))
}

/// The top-level fields of a record the chain depends on, read without building the whole
/// value: a record nested deeper than a JSON parser's recursion limit must not make the chain
/// unreadable.
#[derive(Debug, Default)]
struct ChainFields {
    sequence: Option<u64>,
    previous_hash: Option<String>,
    record_hash: Option<String>,
}

/// Scans one JSON object's top level. Fails on anything that is not a well-formed object, and on
/// a repeated top-level key (two readers of such a line could disagree about what it says).
fn chain_fields(line: &str) -> Result<ChainFields, String> {
    let b = line.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    // Returns the index just past a string that starts at `i` (which must be a quote).
    let end_of_string = |mut i: usize| -> Result<usize, String> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Ok(i + 1),
                _ => i += 1,
            }
        }
        Err("unterminated string".into())
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    i += 1;
    let mut fields = ChainFields::default();
    let mut keys: std::collections::HashSet<&str> = std::collections::HashSet::new();
    loop {
        skip_ws(&mut i);
        match b.get(i) {
            Some(b'}') if keys.is_empty() => {
                i += 1;
                break;
            }
            Some(b'"') => {}
            _ => return Err(format!("expected a key at byte {i}")),
        }
        let key_end = end_of_string(i)?;
        let key = &line[i + 1..key_end - 1];
        if !keys.insert(key) {
            return Err(format!("key {key:?} appears twice"));
        }
        i = key_end;
        skip_ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected ':' after key {key:?}"));
        }
        i += 1;
        skip_ws(&mut i);
        let value_start = i;
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    i = end_of_string(i)?;
                    if depth == 0 {
                        break;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b',' | b'}' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let value = line[value_start..i].trim();
        match key {
            "sequence" => fields.sequence = value.parse().ok(),
            "previous_hash" => fields.previous_hash = unquote_hex(value),
            "record_hash" => fields.record_hash = unquote_hex(value),
            _ => {}
        }
        skip_ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return Err(format!("expected ',' or '}}' at byte {i}")),
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        return Err("text after the record".into());
    }
    Ok(fields)
}

fn unquote_hex(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    (inner.len() == 64 && inner.bytes().all(|b| b.is_ascii_hexdigit())).then(|| inner.to_string())
}

/// Keeps a record under [`MAX_RECORD_BYTES`]: the largest fields are replaced, biggest first,
/// by their size and digest, and the record says which ones were.
fn shrink(record: &mut Map<String, Value>) {
    const KEEP: &[&str] = &[
        "finding_id",
        "correlation_id",
        "resource_arn",
        "status",
        "reason",
        "payload_sha256",
        "idempotency_key",
        "fixer",
        "retryable",
        "dry_run",
    ];
    let mut sizes: Vec<(String, usize)> = record
        .iter()
        .filter(|(k, _)| !KEEP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.to_string().len()))
        .collect();
    sizes.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let mut total: usize = record
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum();
    let mut omitted = Vec::new();
    for (key, size) in sizes {
        if total <= MAX_RECORD_BYTES - 4096 {
            break;
        }
        if let Some(v) = record.get_mut(&key) {
            let text = v.to_string();
            *v = serde_json::json!({ "omitted": true, "bytes": size, "sha256": sha256_hex(text.as_bytes()) });
            total = total.saturating_sub(size);
            omitted.push(key);
        }
    }
    // A reason can be long too (it may quote a fixer); cut it last.
    if let Some(Value::String(reason)) = record.get_mut("reason") {
        if reason.len() > 16 * 1024 {
            *reason = format!("{}… (cut)", crate::text::clip(reason, 16 * 1024));
        }
    }
    record.insert(
        "omitted_fields".into(),
        Value::Array(omitted.into_iter().map(Value::String).collect()),
    );
}

impl AuditEntry {
    /// The record's JSON object before the chain's fields are added: serialised from the typed
    /// entry straight to text (no `serde_json::Value` tree), and shrunk when it is too large.
    /// Callers do this on their own threads, so the one writer only chains and hashes.
    pub fn to_record_body(&self) -> Result<String> {
        // Most records are 4 to 8 KB: one allocation instead of a doubling series of copies.
        let mut bytes = Vec::with_capacity(8 * 1024);
        serde_json::to_writer(&mut bytes, self).context("serialising audit record")?;
        let body = String::from_utf8(bytes).context("serialising audit record")?;
        // The chain's fields add under 256 bytes; `shrink` leaves 4 KiB.
        if body.len() + 256 <= MAX_RECORD_BYTES {
            return Ok(body);
        }
        let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(&body) else {
            bail!("an oversized audit record could not be re-read to shrink it");
        };
        shrink(&mut record);
        Ok(Value::Object(record).to_string())
    }

    /// The body of the intent record written before this entry's first write call: the entry as
    /// it stands, with status `intent`, `reason`, and no durations yet. Serialised from the entry
    /// itself (those three fields swapped in and back) rather than from a copy: a copy is a deep
    /// clone of the finding, decision, plan and sessions on every fix.
    pub fn to_intent_body(&mut self, reason: &str) -> Result<String> {
        let status = self.status.replace(Status::Intent);
        let before = self.reason.replace(reason.to_string());
        let durations = std::mem::take(&mut self.durations_us);
        let body = self.to_record_body();
        self.status = status;
        self.reason = before;
        self.durations_us = durations;
        body
    }
}

/// Opens a log file the way an audit log must be opened: never through a symlink (someone
/// who can write next to the log must not redirect it), and readable only by its owner.
fn open_log_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

impl AuditLog {
    /// Opens (or creates) the log for appending. A torn last line (a crash, a full disk or a
    /// file-size limit in the middle of a write) is cut off, kept beside the log for inspection,
    /// and the repair is itself recorded as the next record; a damaged *complete* record is not
    /// repaired: that is for `salve audit verify` to report.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating audit log directory {}", dir.display()))?;
        }
        let existed = path.exists();
        let file = open_log_file(&path).with_context(|| {
            format!(
                "opening audit log {} (it must be a regular file, not a symlink)",
                path.display()
            )
        })?;
        if !existed {
            // The new file's directory entry must be durable too, or a crash can lose the log.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("syncing audit log directory {}", dir.display()))?;
            }
        }
        let mut log = AuditLog {
            path,
            file,
            head: None,
        };
        log.file
            .lock()
            .with_context(|| format!("locking audit log {}", log.path.display()))?;
        let repaired = log.repair_torn_tail();
        let _ = log.file.unlock();
        if let Some(repair) = repaired? {
            tracing::warn!(
                path = %log.path.display(),
                dropped_bytes = repair.dropped_bytes,
                saved_to = %repair.saved_to,
                "the audit log ended in a torn record; it was cut off and the repair recorded"
            );
            log.append(&AuditEntry {
                status: None,
                reason: Some(format!(
                    "audit log repair: a torn record of {} bytes at offset {} was cut off (kept in {})",
                    repair.dropped_bytes, repair.offset, repair.saved_to
                )),
                operation: Some(serde_json::json!({ "kind": "audit-repair", "repair": repair })),
                ..AuditEntry::default()
            })?;
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts a last line that has no newline: the writer always ends a record with one, so such
    /// bytes are a write that did not finish. Call with the lock held.
    fn repair_torn_tail(&mut self) -> Result<Option<TailRepair>> {
        let len = self.file.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut last = [0u8; 1];
        self.file.seek(SeekFrom::Start(len - 1))?;
        self.file.read_exact(&mut last)?;
        if last[0] == b'\n' {
            return Ok(None);
        }
        let offset = last_newline_before(&mut self.file, len)?.map_or(0, |p| p + 1);
        let mut torn = vec![0u8; (len - offset) as usize];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut torn)?;
        let saved = self.path.with_extension(format!(
            "torn-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        ));
        let mut out = create_private(&saved)
            .with_context(|| format!("keeping the torn tail in {}", saved.display()))?;
        out.write_all(&torn)?;
        out.sync_all()?;
        self.file.set_len(offset).with_context(|| {
            format!("cutting the torn tail of audit log {}", self.path.display())
        })?;
        self.file.sync_all()?;
        Ok(Some(TailRepair {
            offset,
            dropped_bytes: torn.len() as u64,
            dropped_sha256: sha256_hex(&torn),
            saved_to: saved.display().to_string(),
        }))
    }

    /// The chain head, from memory when the file is as this process left it, else from the
    /// file's last line. Call with the lock held.
    fn chain_head(&mut self) -> Result<ChainHead> {
        let len = self.file.metadata()?.len();
        if let Some(head) = self.head.as_ref().filter(|h| h.end == len) {
            return Ok(head.clone());
        }
        if self.repair_torn_tail()?.is_some() {
            // Another process tore its write; the next open records it. Here it is only cut.
            tracing::warn!(path = %self.path.display(), "cut a torn record another process left");
        }
        let len = self.file.metadata()?.len();
        let Some(last) = last_line(&mut self.file)? else {
            return Ok(ChainHead {
                next_sequence: 0,
                previous_hash: GENESIS_HASH.to_string(),
                end: len,
            });
        };
        let fields = chain_fields(&last).map_err(|e| {
            anyhow::anyhow!(
                "the last line of {} is not an audit record ({e}); run `salve audit verify {}` and move the damaged log aside",
                self.path.display(),
                self.path.display()
            )
        })?;
        match (fields.sequence, fields.record_hash) {
            (Some(s), Some(h)) => Ok(ChainHead {
                next_sequence: s.checked_add(1).context("the audit log's sequence is exhausted")?,
                previous_hash: h,
                end: len,
            }),
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
    /// all of them are on disk. Either every record is written or the call fails, and a failed
    /// write leaves the file as it was.
    pub fn append_batch(&mut self, entries: &[AuditEntry]) -> Result<Vec<SealedRecord>> {
        let bodies = entries
            .iter()
            .map(AuditEntry::to_record_body)
            .collect::<Result<Vec<_>>>()?;
        self.append_bodies(bodies)
    }

    /// [`append_batch`](Self::append_batch) of records already serialised by
    /// [`AuditEntry::to_record_body`], so the one thread that writes only chains them.
    pub fn append_bodies(&mut self, bodies: Vec<String>) -> Result<Vec<SealedRecord>> {
        self.file
            .lock()
            .with_context(|| format!("locking audit log {}", self.path.display()))?;
        let result = self.append_locked(bodies);
        let _ = self.file.unlock();
        result
    }

    fn append_locked(&mut self, bodies: Vec<String>) -> Result<Vec<SealedRecord>> {
        use std::fmt::Write as _;
        let head = self.chain_head()?;
        let (mut sequence, mut previous_hash) = (head.next_sequence, head.previous_hash.clone());
        let timestamp = rfc3339(std::time::SystemTime::now());
        let mut sealed = Vec::with_capacity(bodies.len());
        for mut line in bodies {
            // The chain's fields go last, after the record's own: the hash covers the line
            // without `record_hash`, which is exactly this string, and `verify` reads the
            // chain's fields wherever they are. The body becomes the line in place.
            if line.ends_with('}') {
                line.pop();
            }
            if !line.ends_with('{') {
                line.push(',');
            }
            let _ = write!(
                line,
                "\"sequence\":{sequence},\"timestamp\":\"{timestamp}\",\"previous_hash\":\"{previous_hash}\"}}"
            );
            let hash = sha256_hex(line.as_bytes());
            line.pop();
            line.push_str(",\"record_hash\":\"");
            line.push_str(&hash);
            line.push_str("\"}\n");
            previous_hash = hash.clone();
            sealed.push(SealedRecord {
                sequence,
                record_hash: hash,
                line,
            });
            sequence = sequence
                .checked_add(1)
                .context("the audit log's sequence is exhausted")?;
        }
        let written = write_lines(&mut self.file, &sealed).and_then(|()| self.file.sync_data());
        let length: usize = sealed.iter().map(|s| s.line.len()).sum();
        // A sealed record's line is the record alone, as `salve process` prints it.
        for record in &mut sealed {
            record.line.pop();
        }
        if let Err(e) = written {
            // A short write (full disk, file-size limit) must not leave half a record behind
            // for the next append to chain from; put the file back as it was.
            self.head = None;
            let _ = self
                .file
                .set_len(head.end)
                .and_then(|()| self.file.sync_data());
            return Err(e).with_context(|| {
                format!(
                    "writing audit log {} (nothing of this batch was kept)",
                    self.path.display()
                )
            });
        }
        self.head = Some(ChainHead {
            next_sequence: sequence,
            previous_hash,
            end: head.end + length as u64,
        });
        Ok(sealed)
    }
}

/// Writes every line (each ending in its newline) with as few `writev` calls as the kernel
/// allows, instead of first copying a group's lines into one buffer.
fn write_lines(file: &mut File, sealed: &[SealedRecord]) -> std::io::Result<()> {
    use std::io::IoSlice;
    // Linux takes at most 1024 slices per call (IOV_MAX).
    for chunk in sealed.chunks(1024) {
        let mut slices: Vec<IoSlice<'_>> = chunk
            .iter()
            .map(|s| IoSlice::new(s.line.as_bytes()))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Group commit in front of an [`AuditLog`]: records handed in concurrently are written together
/// with one fdatasync, and each caller is answered only once its record is on disk. One thread
/// owns the file, so the chain stays in the order records were written.
pub struct AuditWriter {
    jobs: std::sync::mpsc::Sender<CommitJob>,
}

/// Only the serialised body crosses to the writer thread and only its sealed line comes back:
/// the entry stays with the task that built it, so it is neither moved between threads nor
/// freed on one it was not allocated on.
struct CommitJob {
    /// The entry as [`AuditEntry::to_record_body`] wrote it, on the caller's thread.
    body: String,
    reply: tokio::sync::oneshot::Sender<Result<SealedRecord, String>>,
}

/// At most this many records share one fsync, which bounds how long the first one waits.
const MAX_GROUP: usize = 512;

/// How long the writer keeps looking for the next record, after a group of more than one,
/// before it sleeps. Under load the next record comes within microseconds, and a sleeping
/// writer costs every sender a futex wake-up and the writer a context switch (in
/// `batch_throughput`, about 1.18x group commit). A lone record means no load, so the writer
/// sleeps at once and one-at-a-time callers pay nothing.
const LINGER: std::time::Duration = std::time::Duration::from_micros(20);

/// The next job for the writer, or `None` once every sender is gone. While lingering it polls,
/// yielding the CPU between polls, so a worker that has a record to hand over can run.
fn next_job(queue: &std::sync::mpsc::Receiver<CommitJob>, linger: bool) -> Option<CommitJob> {
    use std::sync::mpsc::TryRecvError;
    if linger {
        let until = std::time::Instant::now() + LINGER;
        loop {
            match queue.try_recv() {
                Ok(job) => return Some(job),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if std::time::Instant::now() >= until => break,
                Err(TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
    }
    queue.recv().ok()
}

impl AuditWriter {
    pub fn start(mut log: AuditLog) -> Result<AuditWriter> {
        let (jobs, queue) = std::sync::mpsc::channel::<CommitJob>();
        std::thread::Builder::new()
            .name("salve-audit".into())
            .spawn(move || {
                // Ends when every sender is gone.
                let mut linger = false;
                while let Some(first) = next_job(&queue, linger) {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    linger = group.len() > 1;
                    let (bodies, replies): (Vec<String>, Vec<_>) =
                        group.into_iter().map(|job| (job.body, job.reply)).unzip();
                    match log.append_bodies(bodies) {
                        Ok(sealed) => {
                            for (reply, record) in replies.into_iter().zip(sealed) {
                                let _ = reply.send(Ok(record));
                            }
                        }
                        Err(e) => {
                            let message = format!("{e:#}");
                            for reply in replies {
                                let _ = reply.send(Err(message.clone()));
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
        let sealed = match entry.to_record_body() {
            Ok(body) => self.append_body(body).await,
            Err(e) => Err(e),
        };
        (entry, sealed)
    }

    /// Hands one record already serialised by [`AuditEntry::to_record_body`] to the writer and
    /// waits until it is durable.
    pub async fn append_body(&self, body: String) -> Result<SealedRecord> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.jobs.send(CommitJob { body, reply }).is_err() {
            bail!("the audit writer thread has stopped");
        }
        match answer.await {
            Ok(result) => result.map_err(anyhow::Error::msg),
            Err(_) => bail!("the audit writer thread stopped before answering"),
        }
    }
}

/// The position of the last `\n` before `end`, reading backwards block by block.
pub(crate) fn last_newline_before(file: &mut File, end: u64) -> Result<Option<u64>> {
    const BLOCK: u64 = 64 * 1024;
    let mut block = vec![0u8; BLOCK as usize];
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let chunk = &mut block[..(pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

/// Reads the last non-empty line of a file without reading the whole file. Each byte is read
/// once, so a huge last line costs its length, not its length squared.
fn last_line(file: &mut File) -> Result<Option<String>> {
    let mut end = file.seek(SeekFrom::End(0))?;
    // Skip trailing newlines (and blank lines) to find where the last line ends.
    loop {
        if end == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 1];
        file.seek(SeekFrom::Start(end - 1))?;
        file.read_exact(&mut b)?;
        if b[0] != b'\n' {
            break;
        }
        end -= 1;
    }
    let start = last_newline_before(file, end)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
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

/// The sequences seen so far, to tell an inserted copy from a record out of order: a bitset for
/// the dense range a real log uses, a set for the rest (a forged sequence far out of range must
/// not make the bitset huge).
#[derive(Default)]
struct Sequences {
    bits: Vec<u64>,
    outliers: std::collections::HashSet<u64>,
}

impl Sequences {
    /// Marks `sequence` seen; whether it was seen before.
    fn insert(&mut self, sequence: u64, records: usize) -> bool {
        let dense = (records as u64).saturating_mul(2).saturating_add(1 << 16);
        if sequence < dense {
            let (word, bit) = ((sequence / 64) as usize, sequence % 64);
            if word >= self.bits.len() {
                self.bits.resize(word + 1, 0);
            }
            let was = self.bits[word] & (1 << bit) != 0;
            self.bits[word] |= 1 << bit;
            was || self.outliers.remove(&sequence)
        } else {
            !self.outliers.insert(sequence)
        }
    }
}

/// Checks the whole chain and names every record that was edited, removed, inserted or
/// reordered, in one pass over the file: memory holds the problems and a bit per sequence, not
/// the records.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let file = File::open(path).with_context(|| format!("reading audit log {}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut checker = Checker::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut buf)
            .with_context(|| format!("reading audit log {}", path.display()))?;
        if n == 0 {
            break;
        }
        let torn = buf.last() != Some(&b'\n');
        let text = String::from_utf8_lossy(&buf);
        checker.line(text.trim_end_matches('\n'), torn);
    }
    Ok(checker.finish())
}

pub fn verify_text(text: &str) -> VerifyReport {
    let mut checker = Checker::default();
    for raw in text.split_inclusive('\n') {
        let torn = !raw.ends_with('\n');
        checker.line(raw.trim_end_matches('\n'), torn);
    }
    checker.finish()
}

struct Checker {
    line: usize,
    problems: Vec<Problem>,
    records: usize,
    seen: Sequences,
    expected_sequence: u64,
    expected_previous: String,
    previous_line: Option<usize>,
    head_hash: Option<String>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            line: 0,
            problems: Vec::new(),
            records: 0,
            seen: Sequences::default(),
            expected_sequence: 0,
            expected_previous: GENESIS_HASH.to_string(),
            previous_line: None,
            head_hash: None,
        }
    }
}

impl Checker {
    fn line(&mut self, raw: &str, torn: bool) {
        self.line += 1;
        let line = self.line;
        if raw.trim().is_empty() {
            return;
        }
        if torn {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Unreadable,
                message: format!(
                    "line {line} has no newline: a write that did not finish (a crash or a full disk); opening the log with salve cuts it off and records the repair"
                ),
            });
            return;
        }
        let fields = match chain_fields(raw) {
            Ok(f) => f,
            Err(e) => {
                self.problems.push(Problem {
                    line,
                    kind: ProblemKind::Unreadable,
                    message: format!("line {line} is not a JSON audit record: {e}"),
                });
                return;
            }
        };
        let (Some(sequence), Some(previous_hash), Some(stored_hash)) =
            (fields.sequence, fields.previous_hash, fields.record_hash)
        else {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Unreadable,
                message: format!("line {line} lacks sequence, previous_hash or record_hash"),
            });
            return;
        };
        let actual = match hashed_body(raw) {
            Some(body) => sha256_hex(body.as_bytes()),
            None => String::from("(record_hash is not the last field)"),
        };
        if actual != stored_hash {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Edited,
                message: format!(
                    "line {line} (sequence {sequence}) was edited: its content hashes to {actual}, not the recorded {stored_hash}"
                ),
            });
        }
        self.records += 1;
        self.link(line, sequence, &previous_hash, actual);
    }

    /// The record's place in the chain: after the one before it, with the next sequence.
    fn link(&mut self, line: usize, sequence: u64, previous_hash: &str, record_hash: String) {
        let repeated = self.seen.insert(sequence, self.records);
        if repeated {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Inserted,
                message: format!(
                    "line {line} repeats sequence {sequence} of an earlier line: a record was inserted"
                ),
            });
        }
        let after = self
            .previous_line
            .map_or("the start".to_string(), |l| format!("line {l}"));
        if sequence > self.expected_sequence {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Removed,
                message: format!(
                    "sequence {}..{} is missing before line {line}: records were removed",
                    self.expected_sequence,
                    sequence - 1,
                ),
            });
        } else if sequence < self.expected_sequence && !repeated {
            self.problems.push(Problem {
                line,
                kind: ProblemKind::Reordered,
                message: format!(
                    "line {line} has sequence {sequence} after sequence {}: records were reordered",
                    self.expected_sequence.saturating_sub(1)
                ),
            });
        } else if previous_hash != self.expected_previous && sequence == self.expected_sequence {
            // Same position, wrong link: the record before it was changed and re-hashed, or this
            // one was put in place of the original.
            let kind = if self.previous_line.is_some() {
                ProblemKind::Edited
            } else {
                ProblemKind::Inserted
            };
            self.problems.push(Problem {
                line,
                kind,
                message: format!(
                    "line {line} does not link to {after}: previous_hash {previous_hash} should be {}",
                    self.expected_previous
                ),
            });
        }
        self.expected_sequence = self.expected_sequence.max(sequence.saturating_add(1));
        self.expected_previous.clone_from(&record_hash);
        self.previous_line = Some(line);
        self.head_hash = Some(record_hash);
    }

    fn finish(self) -> VerifyReport {
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.line);
        VerifyReport {
            records: self.records,
            head_hash: self.head_hash,
            problems,
        }
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
        std::fs::write(&path, "only\n\n").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_line(&mut f).unwrap().as_deref(), Some("only"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chain_fields_reads_the_top_level_only_and_refuses_repeated_keys() {
        let h = "a".repeat(64);
        let deep = "[".repeat(500) + &"]".repeat(500);
        let line = format!(
            r#"{{"rollback":{{"sequence":7,"x":{deep}}},"s":"a\"b,}}","sequence":3,"previous_hash":"{h}","record_hash":"{h}"}}"#
        );
        let f = chain_fields(&line).unwrap();
        assert_eq!(f.sequence, Some(3));
        assert_eq!(f.record_hash.as_deref(), Some(h.as_str()));
        let twice = format!(r#"{{"sequence":1,"sequence":2,"record_hash":"{h}"}}"#);
        assert!(chain_fields(&twice).unwrap_err().contains("twice"));
        assert!(chain_fields(r#"{"a":1"#).is_err());
    }

    #[test]
    fn verify_survives_the_largest_sequence() {
        let h = "0".repeat(64);
        let line = format!(
            r#"{{"previous_hash":"{h}","sequence":{},"record_hash":"{h}"}}"#,
            u64::MAX
        );
        let report = verify_text(&format!("{line}\n{line}\n"));
        assert!(!report.is_intact());
    }
}
