//! `salve report`: mean time to remediation, recurrence and exception rate, the backlog, the
//! trend and the coverage, computed from the audit log alone.
//!
//! The log is streamed: one line is parsed at a time into a view of the few fields the report
//! needs, and what is kept is one small entry per finding and per (resource, control) pair.
//! Every definition is in README.md under "The report"; this module is their one
//! implementation.

pub mod html;
pub mod text;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::audit::Status;
use crate::finding::{Finding, Severity};
use crate::policy::exceptions::ExceptionStatus;
use crate::policy::metadata::Metadata;
use crate::policy::risk::{Priority, RiskScore};
use crate::policy::CheckInputs;
use crate::record::{DecisionStage, RecordedDecision};
use crate::timestamp::{self, EpochMillis};

pub const MTTR_TARGET_HOURS: f64 = 48.0;
pub const RECURRENCE_TARGET: f64 = 0.05;
pub const EXCEPTION_TARGET: f64 = 0.20;
/// Exceptions that end within this many days are listed as expiring.
pub const EXPIRY_WARNING_DAYS: i64 = 14;
/// The JSON report's `schema`; bumped whenever a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

const HOUR: f64 = 3_600_000.0;
const DAY: EpochMillis = 86_400_000;
/// The name of the triage check an approved exception fails.
const EXCEPTION_CHECK: &str = "exception not approved";

/// The parts of one audit record the report reads; serde skips the rest of the line.
#[derive(Deserialize)]
struct RecordView {
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
    finding: Option<Finding>,
    #[serde(default)]
    risk: Option<RiskScore>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    decision: Option<RecordedDecision>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reconciles: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    operation: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    reversal: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    resource_arn: Option<String>,
    #[serde(default)]
    break_glass: Option<crate::drift::BreakGlassRecord>,
    #[serde(default)]
    drift: Option<crate::drift::DriftRecord>,
    #[serde(default)]
    pull_request: Option<crate::iac::PullRequestRecord>,
    #[serde(default)]
    iac: Option<IacView>,
}

/// Where a record traced its resource in Terraform (`Traced::Located` or `Refused`).
#[derive(Debug, Default, Deserialize)]
struct IacView {
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

/// The module calls of a state address (`module.a["x.y"].module.b`), `(root)` for none.
fn module_of(address: &str) -> String {
    let mut modules = Vec::new();
    let mut rest = address;
    while let Some(after) = rest.strip_prefix("module.") {
        let mut depth = 0;
        let end = after
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    '.' if depth == 0 => return true,
                    _ => {}
                }
                false
            })
            .map_or(after.len(), |(i, _)| i);
        modules.push(&rest[..7 + end]);
        rest = after.get(end + 1..).unwrap_or("");
    }
    if modules.is_empty() {
        "(root)".into()
    } else {
        modules.join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    Account,
    Owner,
    Control,
    Kind,
    Priority,
}

#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Records before this still build each finding's history; only outcomes from here on
    /// are counted.
    pub since: Option<EpochMillis>,
    /// Records after this are not read at all; the backlog's age is taken at this instant.
    pub until: Option<EpochMillis>,
    pub by: Option<GroupBy>,
    /// Today, for exception expiry and the backlog when `until` is open.
    pub now: EpochMillis,
}

/// Where a finding's start of exposure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartSource {
    /// The source said when it first observed the finding.
    Observed,
    /// It did not; the first record salve holds for the finding stands in.
    FirstRecord,
}

#[derive(Debug, Clone)]
struct ExceptionSeen {
    at: EpochMillis,
    source: String,
    owner: String,
    expires: Option<String>,
}

/// Text the report keeps many times over (accounts, controls, kinds, owners, resources): held
/// once and shared, since a million-record log repeats the same few values.
type Text = std::sync::Arc<str>;

fn intern(strings: &mut HashSet<Text>, s: &str) -> Text {
    match strings.get(s) {
        Some(t) => t.clone(),
        None => {
            let t: Text = s.into();
            strings.insert(t.clone());
            t
        }
    }
}

/// What the report keeps per finding.
#[derive(Debug, Clone)]
struct Tracked {
    id: Text,
    first_record: EpochMillis,
    first_observed: Option<EpochMillis>,
    severity: Option<Severity>,
    priority: Option<Priority>,
    account: Text,
    owner: Option<Text>,
    control: Text,
    kind: Text,
    resource: Text,
    eligible: bool,
    remediated: Option<EpochMillis>,
    exception: Option<ExceptionSeen>,
    last_status: Option<Status>,
    last_at: EpochMillis,
    in_window: bool,
    /// Why salve could not act, from its latest record that did not act.
    not_acted: Option<Text>,
    acted: bool,
}

impl Tracked {
    fn new(id: Text, empty: Text, at: EpochMillis) -> Tracked {
        Tracked {
            id,
            first_record: at,
            first_observed: None,
            severity: None,
            priority: None,
            account: empty.clone(),
            owner: None,
            control: empty.clone(),
            kind: empty.clone(),
            resource: empty,
            eligible: false,
            remediated: None,
            exception: None,
            last_status: None,
            last_at: at,
            in_window: false,
            not_acted: None,
            acted: false,
        }
    }

    fn start(&self) -> (EpochMillis, StartSource) {
        match self.first_observed {
            Some(t) => (t.min(self.first_record), StartSource::Observed),
            None => (self.first_record, StartSource::FirstRecord),
        }
    }

    fn group(&self, by: GroupBy) -> String {
        let v = match by {
            GroupBy::Account => Some(&*self.account),
            GroupBy::Owner => self.owner.as_deref(),
            GroupBy::Control => Some(&*self.control),
            GroupBy::Kind => Some(&*self.kind),
            GroupBy::Priority => self.priority.map(Priority::as_str),
        };
        v.filter(|s| !s.is_empty())
            .unwrap_or("(unknown)")
            .to_string()
    }
}

#[derive(Debug, Clone, Default)]
struct Pair {
    remediated: Option<EpochMillis>,
    recurred: Option<EpochMillis>,
    control: Text,
    kind: Text,
    /// The Terraform module (`workspace:module.x`) that declares the resource, when traced.
    module: Option<Text>,
}

/// Per (module, control): the resources seen, and those whose pair was fixed, in order.
#[derive(Debug, Default)]
struct ModuleControl {
    seen: HashSet<Text>,
    fixed: Vec<Text>,
}

/// Reading the log: what was read, skipped and could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Input {
    pub sources: Vec<String>,
    pub records: u64,
    /// Lines that are not records the report can read (a torn tail, another program's lines).
    pub unreadable_lines: u64,
    /// The same record read twice (a rotated log and its copy, say), counted once.
    pub duplicate_records: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub count: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    pub mean_hours: Option<f64>,
}

impl Stats {
    fn of(mut hours: Vec<f64>) -> Stats {
        if hours.is_empty() {
            return Stats::default();
        }
        hours.sort_by(f64::total_cmp);
        let rank =
            |q: f64| hours[((q * hours.len() as f64).ceil() as usize).clamp(1, hours.len()) - 1];
        Stats {
            count: hours.len(),
            median_hours: Some(rank(0.5)),
            p90_hours: Some(rank(0.9)),
            mean_hours: Some(hours.iter().sum::<f64>() / hours.len() as f64),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub finding_id: String,
    pub resource: String,
    pub control: String,
    pub severity: Option<Severity>,
    pub hours: f64,
    pub start: StartSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mttr {
    pub target_hours: f64,
    /// The headline: every critical finding remediated in the window.
    pub critical: Stats,
    pub met: Option<bool>,
    pub by_severity: BTreeMap<String, Stats>,
    pub by_priority: BTreeMap<String, Stats>,
    /// Findings whose start is the first record salve holds, not the source's own timestamp.
    pub fallback_starts: usize,
    /// Critical findings that took longer than the target, slowest first (at most 20).
    pub missed: Vec<Missed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub name: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recurrence {
    pub target: f64,
    /// (resource, control) pairs first remediated in the window.
    pub remediated_pairs: usize,
    /// Of those, the pairs found non-compliant again after the fix.
    pub recurred_pairs: usize,
    pub rate: Option<f64>,
    pub met: Option<bool>,
    pub worst_controls: Vec<Ranked>,
    pub worst_kinds: Vec<Ranked>,
    /// Terraform modules (`workspace:module.x`) whose pairs recurred, where traced.
    pub worst_modules: Vec<Ranked>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceptionRow {
    pub finding_id: String,
    pub resource: String,
    pub control: String,
    pub owner: String,
    pub source: String,
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exceptions {
    pub target: f64,
    /// Findings seen in the window that salve could have fixed but for an exception.
    pub eligible: usize,
    pub excepted: usize,
    pub rate: Option<f64>,
    pub met: Option<bool>,
    pub expiring_soon: Vec<ExceptionRow>,
    pub without_expiry: Vec<ExceptionRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacklogItem {
    pub finding_id: String,
    pub status: Status,
    pub priority: Option<Priority>,
    pub resource: String,
    pub control: String,
    pub age_days: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub open: usize,
    /// Open findings per priority, then per age bucket (`<1d`, `1-7d`, `7-30d`, `>30d`).
    pub by_priority: BTreeMap<String, BTreeMap<String, usize>>,
    pub oldest_p1: Vec<BacklogItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Week {
    /// The Monday the week starts on (UTC).
    pub week: String,
    pub remediated: usize,
    pub mttr_mean_hours: Option<f64>,
    pub recurred: usize,
    pub excepted: usize,
    pub eligible: usize,
    pub exception_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub findings: usize,
    pub acted_on: usize,
    pub share: Option<f64>,
    pub top_reasons: Vec<Ranked>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub findings: usize,
    pub remediated: usize,
    pub mttr: Stats,
    pub recurrence_rate: Option<f64>,
    pub exception_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub generated_at: String,
    pub window: Window,
    pub input: Input,
    pub mttr: Mttr,
    pub recurrence: Recurrence,
    pub exceptions: Exceptions,
    pub backlog: Backlog,
    pub trend: Vec<Week>,
    pub coverage: Coverage,
    pub drift: DriftCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<GroupBy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

/// Drift and break-glass: counts of records in the window, and the windows open at its end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftCounts {
    pub detected: usize,
    pub resolved: usize,
    pub break_glass_opened: usize,
    /// Windows that went overdue (a `break-glass-overdue` record) in the report's window.
    pub break_glass_overdue: usize,
    /// Windows not closed at the report's end, and those of them past their due time.
    pub break_glass_open: usize,
    pub break_glass_open_overdue: usize,
}

/// The program's numbers as gauges for `/metrics`: kept up to date record by record, so a
/// scrape costs no pass over the findings.
#[derive(Debug, Default)]
struct Running {
    open_by_priority: BTreeMap<&'static str, u64>,
    eligible: u64,
    excepted: u64,
    remediated_pairs: u64,
    recurred_pairs: u64,
    /// Remediations with their MTTR in hours, oldest first, for the trailing seven days.
    recent_fixes: std::collections::VecDeque<(EpochMillis, f64)>,
}

/// What `/metrics` shows of the program (README: "The report" defines each).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub open_by_priority: BTreeMap<&'static str, u64>,
    pub mttr_7d_hours: Option<f64>,
    pub recurrence_rate: Option<f64>,
    pub exception_rate: Option<f64>,
}

/// Whether the finding waits for someone: a review, a failure, or a fix rolled back.
fn is_open(t: &Tracked) -> bool {
    matches!(
        t.last_status,
        Some(
            Status::Review
                | Status::Failed
                | Status::RolledBack
                | Status::PullRequestOpened
                | Status::PullRequestClosed
        )
    )
}

fn open_priority(t: &Tracked) -> Option<&'static str> {
    is_open(t).then(|| t.priority.map(Priority::as_str).unwrap_or("unscored"))
}

/// Feeds records in log order and produces the report.
pub struct Builder {
    options: ReportOptions,
    running: Running,
    input: Input,
    /// The first 128 bits of every record hash read: a SHA-256 prefix that long cannot be
    /// made to collide, and 16 bytes a record keeps a million-record log in 16 MB.
    seen: HashSet<u128>,
    findings: HashMap<Text, Tracked>,
    pairs: HashMap<(Text, Text), Pair>,
    strings: HashSet<Text>,
    drift: DriftCounts,
    modules: HashMap<(Text, Text), ModuleControl>,
    /// Unclosed break-glass windows by resource, with their due time (`None`: malformed).
    windows: HashMap<String, Option<EpochMillis>>,
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn top(counts: HashMap<String, usize>, n: usize) -> Vec<Ranked> {
    let mut v: Vec<Ranked> = counts
        .into_iter()
        .map(|(name, count)| Ranked { name, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(n);
    v
}

fn severity_name(s: Severity) -> String {
    crate::text::spelled(&s).unwrap_or_else(|| "?".into())
}

/// Why a record did not act, as a short category: the guardrail that failed, or the reason's
/// first clause ("no fixer", …).
fn not_acted_reason(view: &RecordView) -> String {
    if let Some(d) = &view.decision {
        if let Some(c) = d.decision.checks.iter().find(|c| !c.passed) {
            return match c.name.as_ref() {
                "owner present" => "missing owner".into(),
                "environment not restricted" => "restricted environment".into(),
                "account allowlisted" => "account not allowlisted".into(),
                "resource type approved" => "resource type not approved".into(),
                "severity eligible" => "severity below the threshold".into(),
                "every proposed action allowed" => "action not allowed".into(),
                other => other.to_string(),
            };
        }
    }
    let reason = view.reason.as_deref().unwrap_or("no reason recorded");
    let first = reason
        .split([':', ';', '('])
        .next()
        .unwrap_or(reason)
        .trim();
    crate::text::clip(first, 80).to_string()
}

impl Builder {
    pub fn new(options: ReportOptions) -> Builder {
        Builder {
            options,
            running: Running::default(),
            input: Input::default(),
            seen: HashSet::new(),
            findings: HashMap::new(),
            pairs: HashMap::new(),
            strings: HashSet::new(),
            drift: DriftCounts::default(),
            modules: HashMap::new(),
            windows: HashMap::new(),
        }
    }

    fn in_window(&self, at: EpochMillis) -> bool {
        self.options.since.is_none_or(|s| at >= s) && self.options.until.is_none_or(|u| at <= u)
    }

    /// Reads every record of one log (a file, or every file of a directory in name order).
    pub fn read_path(&mut self, path: &Path) -> Result<()> {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading the directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                self.read_path(&f)?;
            }
            return Ok(());
        }
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        self.input.sources.push(path.display().to_string());
        self.read(std::io::BufReader::new(file))
            .with_context(|| format!("reading the audit log {}", path.display()))
    }

    /// Reads every object under an `s3://bucket/prefix` the audit sink wrote (each chain's
    /// objects in key order, which is record order), with salve's own credentials.
    pub async fn read_s3(&mut self, client: &aws_sdk_s3::Client, url: &str) -> Result<()> {
        let (bucket, prefix) = crate::audit_sink::parse_s3_url(url)?;
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!(
                    "listing {url}: {}; check the bucket name and salve's s3:ListBucket permission",
                    crate::aws::describe_aws_error(&crate::aws::to_aws_error(e))
                )
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        for key in keys {
            // The sink writes one object per batch of records: small, so read whole.
            let body = crate::aws::get_object(client, &bucket, &key).await?;
            self.input.sources.push(format!("s3://{bucket}/{key}"));
            self.read(&body[..])?;
        }
        Ok(())
    }

    /// Reads JSON Lines; a line that is not a readable record is counted, never fatal.
    pub fn read(&mut self, mut reader: impl BufRead) -> Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<RecordView>(text) {
                Ok(view) => self.add(view),
                Err(_) => self.input.unreadable_lines += 1,
            }
        }
    }

    fn add(&mut self, view: RecordView) {
        if let Some(hash) = &view.record_hash {
            if let Ok(key) = u128::from_str_radix(crate::text::clip(hash, 32), 16) {
                if !self.seen.insert(key) {
                    self.input.duplicate_records += 1;
                    return;
                }
            }
        }
        self.input.records += 1;
        let Some(at) = view.timestamp.as_deref().and_then(timestamp::parse) else {
            self.input.unreadable_lines += 1;
            return;
        };
        self.add_at(view, at);
    }

    /// Adds one record the daemon has just written (it has no timestamp field yet: `at` is when
    /// it was sealed).
    pub fn add_entry(&mut self, entry: &crate::audit::AuditEntry, at: EpochMillis) {
        if entry.finding_id.is_none() || entry.operation.is_some() {
            return;
        }
        self.input.records += 1;
        self.add_at(
            RecordView {
                record_hash: None,
                timestamp: None,
                finding_id: entry.finding_id.clone(),
                status: entry.status,
                reason: entry.reason.clone(),
                finding: entry.finding.clone(),
                risk: entry.risk.clone(),
                metadata: entry.metadata.clone(),
                decision: entry.decision.clone(),
                dry_run: entry.dry_run,
                reconciles: entry.reconciles.as_ref().map(|_| serde::de::IgnoredAny),
                operation: None,
                reversal: entry.reversal.as_ref().map(|_| serde::de::IgnoredAny),
                resource_arn: None,
                break_glass: None,
                drift: None,
                pull_request: entry.pull_request.clone(),
                iac: None,
            },
            at,
        );
    }

    fn add_at(&mut self, view: RecordView, at: EpochMillis) {
        if self.options.until.is_some_and(|u| at > u) {
            return;
        }
        if self.add_drift(&view, at) {
            return;
        }
        // An intent is not an outcome, a dry run changed nothing, and an operation record (a
        // dead-letter replay) is about messages, not findings.
        // A rollback that did not happen leaves the fix as it was.
        let refused_rollback = view.reversal.is_some() && view.status != Some(Status::RolledBack);
        if view.dry_run
            || view.operation.is_some()
            || refused_rollback
            || matches!(
                view.status,
                None | Some(Status::Intent) | Some(Status::Planned)
            )
        {
            return;
        }
        let Some(id) = view.finding_id.clone() else {
            return;
        };
        let in_window = self.in_window(at);
        let status = view.status;
        let strings = &mut self.strings;
        let described = view.finding.as_ref().map(|f| {
            (
                intern(strings, &f.resource.account_id),
                intern(strings, &f.control_id),
                intern(strings, &f.resource.resource_type),
                intern(strings, &f.resource.arn),
            )
        });
        let owner = view
            .metadata
            .as_ref()
            .and_then(|m| m.owner.value.as_deref())
            .map(|o| intern(strings, o));
        let not_acted = match status {
            Some(
                Status::Remediated
                | Status::Failed
                | Status::Review
                | Status::AlreadyCompliant
                | Status::RolledBack
                | Status::PullRequestOpened
                | Status::PullRequestMerged
                | Status::PullRequestClosed,
            ) => None,
            _ => Some(intern(strings, &not_acted_reason(&view))),
        };
        if !self.findings.contains_key(id.as_str()) {
            // Allocated once per finding, not once per record.
            let key: Text = id.as_str().into();
            let empty = intern(strings, "");
            self.findings
                .insert(key.clone(), Tracked::new(key, empty, at));
        }
        let Some(tracked) = self.findings.get_mut(id.as_str()) else {
            return;
        };
        let was_open = open_priority(tracked);
        let (was_eligible, was_excepted, was_fixed) = (
            tracked.eligible,
            tracked.exception.is_some(),
            tracked.remediated.is_some(),
        );
        tracked.first_record = tracked.first_record.min(at);
        tracked.last_at = tracked.last_at.max(at);
        tracked.last_status = status;
        tracked.in_window |= in_window;
        if let Some(f) = &view.finding {
            if let Some(t) = f.first_observed_at.as_deref().and_then(timestamp::parse) {
                tracked.first_observed = Some(tracked.first_observed.map_or(t, |o| o.min(t)));
            }
            tracked.severity = Some(f.severity);
        }
        if let Some((account, control, kind, resource)) = described {
            tracked.account = account;
            tracked.control = control;
            tracked.kind = kind;
            tracked.resource = resource;
        }
        if let Some(r) = &view.risk {
            tracked.priority = Some(r.priority);
        }
        if owner.is_some() {
            tracked.owner = owner;
        }
        let mut excepted = false;
        if let Some(d) = &view.decision {
            let failed: Vec<&str> = d
                .decision
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_ref())
                .collect();
            // Past triage, or stopped at triage only by its exception: salve could have acted.
            if d.stage == DecisionStage::Decide || failed.iter().all(|n| *n == EXCEPTION_CHECK) {
                tracked.eligible = true;
            }
            if let Some(c) = d
                .decision
                .checks
                .iter()
                .find(|c| c.name == EXCEPTION_CHECK && !c.passed)
            {
                if let CheckInputs::Exception(ExceptionStatus::Approved {
                    source,
                    owner,
                    expires,
                    ..
                }) = &c.inputs
                {
                    excepted = true;
                    tracked.exception = Some(ExceptionSeen {
                        at,
                        source: source.clone(),
                        owner: owner.clone(),
                        expires: expires.clone(),
                    });
                }
            }
        }
        // A merged pull request ends remediation when it was merged, not when sync saw it.
        let fixed_at = match status {
            Some(Status::PullRequestMerged) => view
                .pull_request
                .as_ref()
                .and_then(|p| p.merged_at.as_deref())
                .and_then(timestamp::parse)
                .map_or(at, |m| m.min(at)),
            _ => at,
        };
        match status {
            Some(Status::Remediated | Status::PullRequestMerged) => {
                tracked.eligible = true;
                tracked.acted = true;
                if tracked.remediated.is_none() {
                    tracked.remediated = Some(fixed_at);
                }
            }
            Some(
                Status::Failed
                | Status::Review
                | Status::AlreadyCompliant
                | Status::RolledBack
                | Status::PullRequestOpened
                | Status::PullRequestClosed,
            ) => {
                tracked.acted = true;
            }
            _ => {
                if !excepted {
                    tracked.not_acted = not_acted;
                }
            }
        }
        let r = &mut self.running;
        if let Some(p) = was_open {
            if let Some(n) = r.open_by_priority.get_mut(p) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(p) = open_priority(tracked) {
            *r.open_by_priority.entry(p).or_default() += 1;
        }
        r.eligible += u64::from(tracked.eligible && !was_eligible);
        r.excepted += u64::from(tracked.exception.is_some() && !was_excepted);
        if let (false, Some(fixed), None) = (was_fixed, tracked.remediated, &tracked.exception) {
            let hours = (fixed - tracked.start().0).max(0) as f64 / HOUR;
            r.recent_fixes.push_back((fixed, hours));
            // Only the trailing week is ever shown; a log read at start must not keep it all.
            while r
                .recent_fixes
                .front()
                .is_some_and(|(t, _)| *t < fixed - 7 * DAY)
            {
                r.recent_fixes.pop_front();
            }
        }
        if !tracked.resource.is_empty() && view.reconciles.is_none() {
            let pair = self
                .pairs
                .entry((tracked.resource.clone(), tracked.control.clone()))
                .or_default();
            pair.control.clone_from(&tracked.control);
            pair.kind.clone_from(&tracked.kind);
            match (status, pair.remediated) {
                // Non-compliant again after a fix: the fixed state did not hold.
                (Some(Status::Remediated | Status::Failed | Status::Review), Some(fixed))
                    if at > fixed && pair.recurred.is_none() =>
                {
                    pair.recurred = Some(at);
                    self.running.recurred_pairs += 1;
                }
                (Some(Status::Remediated | Status::PullRequestMerged), None) => {
                    pair.remediated = Some(fixed_at);
                    self.running.remediated_pairs += 1;
                }
                _ => {}
            }
            let module = view.iac.as_ref().and_then(|i| {
                Some(format!(
                    "{}:{}",
                    i.workspace.as_deref()?,
                    module_of(i.address.as_deref()?)
                ))
            });
            if let Some(module) = module {
                let module = intern(&mut self.strings, &module);
                let (resource, control) = (tracked.resource.clone(), tracked.control.clone());
                self.module_recurrence(module, resource, control, status, at);
            }
        }
    }

    /// A finding on a new resource, with a control a pair from the same Terraform module was
    /// fixed for: the module keeps making the misconfiguration, so that pair recurs.
    fn module_recurrence(
        &mut self,
        module: Text,
        resource: Text,
        control: Text,
        status: Option<Status>,
        at: EpochMillis,
    ) {
        let key = (resource.clone(), control.clone());
        if let Some(pair) = self.pairs.get_mut(&key) {
            pair.module = Some(module.clone());
        }
        let mc = self.modules.entry((module, control.clone())).or_default();
        let new_resource = mc.seen.insert(resource.clone());
        let non_compliant = matches!(
            status,
            Some(
                Status::Remediated
                    | Status::Failed
                    | Status::Review
                    | Status::PullRequestOpened
                    | Status::PullRequestMerged
            )
        );
        if new_resource && non_compliant {
            let earlier = mc.fixed.iter().find_map(|r| {
                let p = self.pairs.get(&(r.clone(), control.clone()))?;
                (p.recurred.is_none() && p.remediated.is_some_and(|f| f < at)).then(|| r.clone())
            });
            if let Some(r) = earlier {
                if let Some(p) = self.pairs.get_mut(&(r, control.clone())) {
                    p.recurred = Some(at);
                    self.running.recurred_pairs += 1;
                }
            }
        }
        if self.pairs.get(&key).is_some_and(|p| p.remediated.is_some())
            && !mc.fixed.contains(&resource)
        {
            mc.fixed.push(resource);
        }
    }

    /// The gauges as of `now`: MTTR over the fixes of the trailing seven days, the rates over
    /// everything read.
    pub fn gauges(&self, now: EpochMillis) -> Gauges {
        let r = &self.running;
        let week: Vec<f64> = r
            .recent_fixes
            .iter()
            .filter(|(t, _)| *t >= now - 7 * DAY)
            .map(|(_, h)| *h)
            .collect();
        Gauges {
            open_by_priority: r.open_by_priority.clone(),
            mttr_7d_hours: Stats::of(week).mean_hours,
            recurrence_rate: ratio(r.recurred_pairs as usize, r.remediated_pairs as usize),
            exception_rate: ratio(r.excepted as usize, r.eligible as usize),
        }
    }

    /// Counts a drift or break-glass record; `false` for any other.
    fn add_drift(&mut self, view: &RecordView, at: EpochMillis) -> bool {
        let counted = self.in_window(at);
        let d = &mut self.drift;
        let arn = view.resource_arn.clone().unwrap_or_default();
        match view.status {
            Some(Status::DriftDetected) => {
                d.detected += usize::from(counted);
                self.regressed(view, at);
            }
            Some(Status::DriftResolved) => d.resolved += usize::from(counted),
            Some(Status::BreakGlassOpened) => {
                d.break_glass_opened += usize::from(counted);
                let due = view
                    .break_glass
                    .as_ref()
                    .and_then(|b| b.due_at.as_deref())
                    .and_then(timestamp::parse);
                self.windows.insert(arn, due);
            }
            Some(Status::BreakGlassOverdue) => d.break_glass_overdue += usize::from(counted),
            Some(Status::BreakGlassClosed) => {
                self.windows.remove(&arn);
            }
            _ => return false,
        }
        true
    }

    /// A fix `drift check` found undone is its (resource, control) pair recurring.
    fn regressed(&mut self, view: &RecordView, at: EpochMillis) {
        let Some(record) = &view.drift else {
            return;
        };
        let fixes = record
            .drifts
            .iter()
            .filter(|d| d.reference == crate::drift::Reference::Fix)
            .filter_map(|d| d.finding_id.as_deref());
        for id in fixes {
            let Some(t) = self.findings.get(id) else {
                continue;
            };
            let key = (t.resource.clone(), t.control.clone());
            let Some(pair) = self.pairs.get_mut(&key) else {
                continue;
            };
            if pair.remediated.is_some_and(|fixed| at > fixed) && pair.recurred.is_none() {
                pair.recurred = Some(at);
                self.running.recurred_pairs += 1;
            }
        }
    }

    pub fn finish(self) -> Report {
        let o = &self.options;
        let until = o.until.unwrap_or(o.now);
        let in_window = |t: EpochMillis| o.since.is_none_or(|s| t >= s) && t <= until;

        // MTTR: findings remediated in the window, not closed by an exception first.
        let mut all_by_sev: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut all_by_pri: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut critical = Vec::new();
        let mut missed = Vec::new();
        let mut fallback_starts = 0;
        let mut weeks: BTreeMap<EpochMillis, WeekAcc> = BTreeMap::new();
        let mut groups: BTreeMap<String, GroupAcc> = BTreeMap::new();
        for t in self.findings.values() {
            let group = o.by.map(|by| t.group(by));
            if let Some(g) = &group {
                if t.in_window {
                    groups.entry(g.clone()).or_default().findings += 1;
                }
            }
            let Some(fixed) = t.remediated.filter(|f| in_window(*f)) else {
                continue;
            };
            if t.exception.as_ref().is_some_and(|e| e.at <= fixed) {
                continue;
            }
            let (start, source) = t.start();
            if source == StartSource::FirstRecord {
                fallback_starts += 1;
            }
            let hours = (fixed - start).max(0) as f64 / HOUR;
            let sev = t.severity.map(severity_name).unwrap_or_else(|| "?".into());
            all_by_sev.entry(sev).or_default().push(hours);
            if let Some(p) = t.priority {
                all_by_pri.entry(p.as_str().into()).or_default().push(hours);
            }
            if t.severity == Some(Severity::Critical) {
                critical.push(hours);
                if hours > MTTR_TARGET_HOURS {
                    missed.push(Missed {
                        finding_id: t.id.to_string(),
                        resource: t.resource.to_string(),
                        control: t.control.to_string(),
                        severity: t.severity,
                        hours,
                        start: source,
                    });
                }
            }
            let w = weeks.entry(week_of(fixed)).or_default();
            w.remediated += 1;
            w.hours.push(hours);
            if let Some(g) = group {
                let g = groups.entry(g).or_default();
                g.remediated += 1;
                g.hours.push(hours);
            }
        }
        missed.sort_by(|a, b| b.hours.total_cmp(&a.hours));
        missed.truncate(20);
        let critical = Stats::of(critical);
        let mttr = Mttr {
            target_hours: MTTR_TARGET_HOURS,
            met: critical.mean_hours.map(|h| h <= MTTR_TARGET_HOURS),
            critical,
            by_severity: all_by_sev
                .into_iter()
                .map(|(k, v)| (k, Stats::of(v)))
                .collect(),
            by_priority: all_by_pri
                .into_iter()
                .map(|(k, v)| (k, Stats::of(v)))
                .collect(),
            fallback_starts,
            missed,
        };

        // Recurrence: pairs first fixed in the window, and which of them came back.
        let (mut remediated_pairs, mut recurred_pairs) = (0, 0);
        let mut by_control: HashMap<String, usize> = HashMap::new();
        let mut by_kind: HashMap<String, usize> = HashMap::new();
        let mut by_module: HashMap<String, usize> = HashMap::new();
        let mut group_pairs: HashMap<String, (usize, usize)> = HashMap::new();
        let pair_group: HashMap<(&str, &str), String> = match o.by {
            Some(by) => self
                .findings
                .values()
                .map(|t| ((&*t.resource, &*t.control), t.group(by)))
                .collect(),
            None => HashMap::new(),
        };
        for ((resource, control), p) in &self.pairs {
            if !p.remediated.is_some_and(in_window) {
                continue;
            }
            remediated_pairs += 1;
            let group = pair_group.get(&(&**resource, &**control));
            if let Some(g) = group {
                group_pairs.entry(g.clone()).or_default().0 += 1;
            }
            if let Some(again) = p.recurred.filter(|r| *r <= until) {
                recurred_pairs += 1;
                *by_control.entry(p.control.to_string()).or_default() += 1;
                *by_kind.entry(p.kind.to_string()).or_default() += 1;
                if let Some(m) = &p.module {
                    *by_module.entry(m.to_string()).or_default() += 1;
                }
                weeks.entry(week_of(again)).or_default().recurred += 1;
                if let Some(g) = group {
                    group_pairs.entry(g.clone()).or_default().1 += 1;
                }
            }
        }
        let rate = ratio(recurred_pairs, remediated_pairs);
        let recurrence = Recurrence {
            target: RECURRENCE_TARGET,
            remediated_pairs,
            recurred_pairs,
            rate,
            met: rate.map(|r| r <= RECURRENCE_TARGET),
            worst_controls: top(by_control, 10),
            worst_kinds: top(by_kind, 10),
            worst_modules: top(by_module, 10),
        };

        // Exceptions, backlog and coverage: the findings seen in the window.
        let today = o.now;
        let (mut eligible, mut excepted) = (0, 0);
        let mut expiring_soon = Vec::new();
        let mut without_expiry = Vec::new();
        let mut open = 0;
        let mut by_priority: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut oldest_p1 = Vec::new();
        let (mut findings, mut acted_on) = (0, 0);
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for t in self.findings.values().filter(|t| t.in_window) {
            findings += 1;
            if t.acted {
                acted_on += 1;
            } else if let Some(r) = &t.not_acted {
                if t.exception.is_none() {
                    *reasons.entry(r.to_string()).or_default() += 1;
                }
            }
            let group = o.by.map(|by| t.group(by));
            if t.eligible {
                eligible += 1;
                weeks.entry(week_of(t.last_at)).or_default().eligible += 1;
                if let Some(g) = &group {
                    groups.entry(g.clone()).or_default().eligible += 1;
                }
            }
            if let Some(e) = &t.exception {
                excepted += 1;
                weeks.entry(week_of(e.at)).or_default().excepted += 1;
                if let Some(g) = &group {
                    groups.entry(g.clone()).or_default().excepted += 1;
                }
                let row = ExceptionRow {
                    finding_id: t.id.to_string(),
                    resource: t.resource.to_string(),
                    control: t.control.to_string(),
                    owner: e.owner.clone(),
                    source: e.source.clone(),
                    expires: e.expires.clone(),
                };
                match e.expires.as_deref().and_then(timestamp::parse) {
                    None => without_expiry.push(row),
                    Some(end) if end >= today - DAY && end <= today + EXPIRY_WARNING_DAYS * DAY => {
                        expiring_soon.push(row)
                    }
                    Some(_) => {}
                }
            }
            if is_open(t) {
                open += 1;
                let (start, _) = t.start();
                let age_days = (until - start).max(0) as f64 / DAY as f64;
                let bucket = match age_days {
                    d if d < 1.0 => "<1d",
                    d if d < 7.0 => "1-7d",
                    d if d < 30.0 => "7-30d",
                    _ => ">30d",
                };
                let priority = t.priority.map(Priority::as_str).unwrap_or("unscored");
                *by_priority
                    .entry(priority.into())
                    .or_default()
                    .entry(bucket.into())
                    .or_default() += 1;
                if t.priority == Some(Priority::P1) {
                    oldest_p1.push(BacklogItem {
                        finding_id: t.id.to_string(),
                        status: t.last_status.unwrap_or(Status::Review),
                        priority: t.priority,
                        resource: t.resource.to_string(),
                        control: t.control.to_string(),
                        age_days,
                    });
                }
            }
        }
        for eligible_exceptions in [&mut expiring_soon, &mut without_expiry] {
            eligible_exceptions.sort_by(|a, b| {
                a.expires
                    .cmp(&b.expires)
                    .then(a.finding_id.cmp(&b.finding_id))
            });
        }
        oldest_p1.sort_by(|a, b| b.age_days.total_cmp(&a.age_days));
        oldest_p1.truncate(10);
        let rate = ratio(excepted, eligible);
        let exceptions = Exceptions {
            target: EXCEPTION_TARGET,
            eligible,
            excepted,
            rate,
            met: rate.map(|r| r <= EXCEPTION_TARGET),
            expiring_soon,
            without_expiry,
        };

        let trend = weeks
            .into_iter()
            .filter(|(start, _)| o.since.is_none_or(|s| start + 7 * DAY > s))
            .map(|(start, w)| Week {
                week: timestamp::format(start)[..10].to_string(),
                remediated: w.remediated,
                mttr_mean_hours: (!w.hours.is_empty())
                    .then(|| w.hours.iter().sum::<f64>() / w.hours.len() as f64),
                recurred: w.recurred,
                excepted: w.excepted,
                eligible: w.eligible,
                exception_rate: ratio(w.excepted, w.eligible),
            })
            .collect();
        let groups = groups
            .into_iter()
            .map(|(name, g)| {
                let pairs = group_pairs.get(&name).copied().unwrap_or_default();
                Group {
                    findings: g.findings,
                    remediated: g.remediated,
                    mttr: Stats::of(g.hours),
                    recurrence_rate: ratio(pairs.1, pairs.0),
                    exception_rate: ratio(g.excepted, g.eligible),
                    name,
                }
            })
            .collect();
        Report {
            schema: SCHEMA,
            generated_at: timestamp::format(o.now),
            window: Window {
                since: o.since.map(timestamp::format),
                until: o.until.map(timestamp::format),
            },
            input: self.input,
            mttr,
            recurrence,
            exceptions,
            backlog: Backlog {
                open,
                by_priority,
                oldest_p1,
            },
            trend,
            coverage: Coverage {
                findings,
                acted_on,
                share: ratio(acted_on, findings),
                top_reasons: top(reasons, 10),
            },
            drift: DriftCounts {
                break_glass_open: self.windows.len(),
                // A malformed due time counts as overdue: it covers nothing.
                break_glass_open_overdue: self
                    .windows
                    .values()
                    .filter(|due| due.is_none_or(|d| d <= until))
                    .count(),
                ..self.drift
            },
            by: o.by,
            groups,
        }
    }
}

#[derive(Default)]
struct WeekAcc {
    remediated: usize,
    hours: Vec<f64>,
    recurred: usize,
    excepted: usize,
    eligible: usize,
}

#[derive(Default)]
struct GroupAcc {
    findings: usize,
    remediated: usize,
    hours: Vec<f64>,
    excepted: usize,
    eligible: usize,
}

/// The Monday (00:00 UTC) of the week an instant falls in.
fn week_of(at: EpochMillis) -> EpochMillis {
    let days = at.div_euclid(DAY);
    // 1970-01-01 was a Thursday.
    let monday = days - (days + 3).rem_euclid(7);
    monday * DAY
}

/// Reads every log and builds the report.
pub fn report(paths: &[PathBuf], options: ReportOptions) -> Result<Report> {
    let mut builder = Builder::new(options);
    for p in paths {
        builder.read_path(p)?;
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_paths_keep_index_keys_with_dots() {
        assert_eq!(super::module_of("aws_s3_bucket.this"), "(root)");
        assert_eq!(
            super::module_of("module.logs.aws_s3_bucket.this"),
            "module.logs"
        );
        assert_eq!(
            super::module_of("module.a[\"x.y\"].module.b.aws_security_group.web[0]"),
            "module.a[\"x.y\"].module.b"
        );
    }
}
