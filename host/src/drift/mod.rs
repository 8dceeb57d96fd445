//! `salve drift check` and `salve drift gate`: whether live resources still match what salve
//! fixed and what Terraform declares, and whether a pipeline may go on. Break-glass windows
//! (`break_glass`) let a person change a resource by hand for a bounded time.
//!
//! Two references, each compared on security-critical attributes only:
//! - a fix: the fixer's own `check()` must still hold (a regression otherwise);
//! - a Terraform state: each kind's `KindDrift` says which attributes matter and reads them from
//!   the state and, batched, from AWS.

pub mod break_glass;
pub mod history;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use futures_util::StreamExt;
use salve_core::LiveRead;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{AuditEntry, Status};
use crate::aws::AwsBackends;
use crate::credentials::session_policy::drift_policy;
use crate::credentials::SessionRequest;
use crate::iac::forge::Issue;
use crate::iac::Workspace;
use crate::kinds::{self, Kind, KindSpec};
use crate::notify::{Notice, Trigger};
use crate::pipeline::{FixHeld, Pipeline};
use crate::record::RecordLink;
use crate::rollback::Fixed;
use crate::timestamp::{self, EpochMillis};
use history::{History, WindowState};

/// `[drift]` in salve.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriftConfig {
    /// Run a regressed finding through the pipeline again (every guardrail decides anew).
    pub remediate_regressions: bool,
    /// How long a break-glass window lasts before it is overdue.
    pub break_glass_hours: u32,
    /// How many fixes are checked at once, and how many one-resource reads (S3 has no batch
    /// read) a Terraform workspace keeps in flight.
    pub concurrency: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            remediate_regressions: false,
            break_glass_hours: 48,
            concurrency: 8,
        }
    }
}

impl DriftConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.break_glass_hours == 0 {
            return Err("break-glass-hours must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        Ok(())
    }
}

/// What a drift is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// A fix salve made: its fixer's `check()` no longer holds.
    Fix,
    /// A Terraform workspace's state.
    Terraform,
}

/// One attribute that differs from its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeDrift {
    pub reference: Reference,
    pub attribute: String,
    pub declared: Value,
    pub live: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The fix's record and finding, for a regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<RecordLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
}

/// A `drift-detected` or `drift-resolved` record's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub kind: String,
    /// When the drift was first recorded.
    pub since: String,
    pub drifts: Vec<AttributeDrift>,
}

/// A break-glass record's body. An opening record has `by`, `reason`, `opened_at` and
/// `due_at`; a closing or overdue one links to it through `window`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BreakGlassRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
    /// Why no reconciliation issue was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<RecordLink>,
}

/// Which resources a check reads. Empty lists mean every one.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub workspaces: Vec<String>,
    pub kinds: Vec<&'static KindSpec>,
}

impl Scope {
    /// Resolves kind names (`AWS::S3::Bucket` or `s3-bucket`) and checks workspace names.
    pub fn new(
        accounts: Vec<String>,
        regions: Vec<String>,
        workspaces: Vec<String>,
        kind_names: &[String],
        configured: &[Workspace],
    ) -> Result<Scope> {
        let mut kinds_in = Vec::new();
        for name in kind_names {
            match kinds::specs().find(|s| s.name == name || s.interface == name) {
                Some(s) => kinds_in.push(s),
                None => bail!(
                    "unknown kind {name:?}; the kinds are: {}",
                    kinds::specs()
                        .map(|s| format!("{} ({})", s.name, s.interface))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        for w in &workspaces {
            if !configured.iter().any(|c| &c.name == w) {
                bail!(
                    "unknown workspace {w:?}; salve.toml's [[iac.terraform]] names: {}",
                    if configured.is_empty() {
                        "none".to_string()
                    } else {
                        configured
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
        }
        Ok(Scope {
            accounts,
            regions,
            workspaces,
            kinds: kinds_in,
        })
    }

    fn place(&self, account: &str, region: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.iter().any(|a| a == account))
            && (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
    }

    fn kind(&self, spec: &KindSpec) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k.name == spec.name)
    }

    fn workspace(&self, w: &Workspace) -> bool {
        self.workspaces.is_empty() || self.workspaces.contains(&w.name)
    }
}

/// How one resource compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Agrees,
    Drifted,
    Deleted,
    /// It could not be read: no session, a failed read. A gate cannot pass on this.
    Unknown,
}

/// One resource's result.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub resource_arn: String,
    pub kind: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drifts: Vec<AttributeDrift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why it could not be read, or how it was found deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The drift record that holds this drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Set by the gate: the break-glass window that covers the drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<Covered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Covered {
    pub opened: u64,
    pub by: String,
    pub due_at: String,
    #[serde(flatten)]
    pub state: WindowState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
}

/// What `drift check` found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub resources: Vec<Checked>,
    /// What could not be checked at all (an unreadable state, a workspace salve cannot read).
    pub problems: Vec<String>,
    /// Records written: drift detected or resolved, windows closed or overdue.
    pub records: Vec<u64>,
    /// Regressions run through the pipeline again (`remediate-regressions`), with their status.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requeued: Vec<(String, String)>,
}

impl Report {
    pub fn drifted(&self) -> impl Iterator<Item = &Checked> {
        self.resources
            .iter()
            .filter(|c| c.outcome == Outcome::Drifted)
    }
}

/// What a drift check reads with and writes to.
pub struct Drift<'a> {
    pub pipeline: &'a Pipeline,
    pub aws: &'a AwsBackends,
    pub config: &'a DriftConfig,
    pub audit_log: &'a Path,
}

/// One resource as the references see it, before records.
#[derive(Default)]
struct Seen {
    kind: String,
    drifts: Vec<AttributeDrift>,
    deleted: Vec<String>,
    unknown: Vec<String>,
    /// The regressed finding, for `remediate-regressions`.
    regressed: Option<crate::finding::Finding>,
}

impl Drift<'_> {
    /// Compares every resource in `scope` with its references and records what changed since
    /// the last check: new or different drift, drift resolved (closing the resource's
    /// break-glass window), windows that went overdue (with a notice).
    pub async fn check(&self, scope: &Scope, now: EpochMillis) -> Result<Report> {
        Ok(self.check_with_history(scope, now).await?.0)
    }

    /// [`Drift::check`], also returning the log's history as it read it before writing.
    async fn check_with_history(
        &self,
        scope: &Scope,
        now: EpochMillis,
    ) -> Result<(Report, History)> {
        let history = History::read(self.audit_log)?;
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        let mut report = Report::default();
        self.regressions(scope, &mut seen, &mut report).await?;
        self.terraform(scope, &mut seen, &mut report).await;
        let at = timestamp::format(now);

        for (arn, s) in seen {
            let outcome = if !s.drifts.is_empty() {
                Outcome::Drifted
            } else if !s.unknown.is_empty() {
                Outcome::Unknown
            } else if !s.deleted.is_empty() {
                Outcome::Deleted
            } else {
                Outcome::Agrees
            };
            let open = history.drift.get(&arn);
            let mut checked = Checked {
                resource_arn: arn.clone(),
                kind: s.kind.clone(),
                outcome,
                drifts: s.drifts.clone(),
                since: None,
                reasons: s.deleted.iter().chain(&s.unknown).cloned().collect(),
                record: None,
                break_glass: None,
            };
            match outcome {
                Outcome::Drifted => {
                    let since = open
                        .map(|o| o.drift.since.clone())
                        .unwrap_or_else(|| at.clone());
                    checked.since = Some(since.clone());
                    if let Some(o) = open.filter(|o| o.drift.drifts == s.drifts) {
                        checked.record = Some(o.record.sequence);
                    } else {
                        let record = DriftRecord {
                            kind: s.kind.clone(),
                            since,
                            drifts: s.drifts.clone(),
                        };
                        let sequence = self.detected(&arn, record, &mut report).await?;
                        checked.record = Some(sequence);
                        if let (Some(finding), true) =
                            (&s.regressed, self.config.remediate_regressions)
                        {
                            let p = self.pipeline.remediate_again(finding).await?;
                            if let Some(sealed) = &p.sealed {
                                report.records.push(sealed.sequence);
                            }
                            report.requeued.push((
                                finding.id.clone(),
                                p.entry.status.map(Status::as_str).unwrap_or("?").into(),
                            ));
                        }
                    }
                }
                Outcome::Agrees | Outcome::Deleted => {
                    if let Some(o) = open {
                        self.resolved(&arn, o, &at, outcome, &history, &mut report)
                            .await?;
                    }
                }
                Outcome::Unknown => {}
            }
            report.resources.push(checked);
        }
        self.overdue(scope, &history, now, &mut report).await?;
        Ok((report, history))
    }

    async fn regressions(
        &self,
        scope: &Scope,
        seen: &mut BTreeMap<String, Seen>,
        report: &mut Report,
    ) -> Result<()> {
        let (iac, _) = self.pipeline.iac();
        let in_scope = |f: &crate::finding::Finding| {
            scope.place(&f.resource.account_id, &f.resource.region)
                && kinds::get(&f.resource.resource_type).is_some_and(|k| scope.kind(k.spec))
                && (scope.workspaces.is_empty()
                    || iac
                        .workspaces_for(f)
                        .any(|w| scope.workspaces.contains(&w.name)))
        };
        let mut fixes: Vec<Fixed> = Vec::new();
        for fixed in crate::rollback::remediated(self.audit_log)? {
            match fixed {
                Ok(f) if in_scope(&f.finding) => fixes.push(f),
                Ok(_) => {}
                Err((id, why)) => report
                    .problems
                    .push(format!("finding {id}'s fix cannot be checked: {why}")),
            }
        }
        let results: Vec<(Fixed, FixHeld)> = futures_util::stream::iter(fixes)
            .map(|f| async move {
                let held = self.pipeline.still_fixed(&f).await;
                (f, held)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        for (fixed, held) in results {
            let r = &fixed.finding.resource;
            let s = seen.entry(r.arn.clone()).or_default();
            s.kind = r.resource_type.clone();
            let finding_id = Some(fixed.finding.id.clone());
            match held {
                FixHeld::Holds => {}
                FixHeld::Regressed(read_backs) => {
                    let drift = |attribute: String, declared: Value, live: Value| AttributeDrift {
                        reference: Reference::Fix,
                        attribute,
                        declared,
                        live,
                        workspace: None,
                        address: None,
                        fix: Some(fixed.record.clone()),
                        finding_id: finding_id.clone(),
                    };
                    if read_backs.is_empty() {
                        s.drifts.push(drift(
                            "check".into(),
                            "compliant".into(),
                            "non-compliant".into(),
                        ));
                    }
                    for rb in read_backs {
                        s.drifts.push(drift(
                            rb.call.function.clone(),
                            rb.read_back.expected,
                            rb.read_back.actual,
                        ));
                    }
                    s.regressed = Some(fixed.finding.clone());
                }
                FixHeld::Deleted(why) => s.deleted.push(format!(
                    "deleted since fix record {}: {why}",
                    fixed.record.sequence
                )),
                FixHeld::Unknown(why) => s.unknown.push(format!(
                    "fix record {} could not be checked: {why}",
                    fixed.record.sequence
                )),
            }
        }
        Ok(())
    }

    async fn terraform(
        &self,
        scope: &Scope,
        seen: &mut BTreeMap<String, Seen>,
        report: &mut Report,
    ) {
        let (iac, states) = self.pipeline.iac();
        for workspace in iac.terraform.iter().filter(|w| scope.workspace(w)) {
            let (account, region) = match workspace.place() {
                Some(place) => place,
                None => {
                    report.problems.push(format!(
                        "workspace {:?} lists {} accounts and {} regions; drift reads a workspace in one account and one region, so give each its own [[iac.terraform]]",
                        workspace.name,
                        workspace.accounts.len(),
                        workspace.regions.len()
                    ));
                    continue;
                }
            };
            if !scope.place(account, region) {
                continue;
            }
            let state = match workspace.state_location() {
                Ok(location) => states.read(&location).await,
                Err(e) => Err(e),
            };
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    report
                        .problems
                        .push(format!("workspace {:?}: {e}", workspace.name));
                    continue;
                }
            };
            for kind in kinds::KINDS.iter().filter(|k| scope.kind(k.spec)) {
                self.terraform_kind(workspace, &state, kind, account, region, seen, report)
                    .await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn terraform_kind(
        &self,
        workspace: &Workspace,
        state: &crate::iac::state::State,
        kind: &Kind,
        account: &str,
        region: &str,
        seen: &mut BTreeMap<String, Seen>,
        report: &mut Report,
    ) {
        let Some(tf) = &kind.spec.terraform else {
            return;
        };
        // The instances that configure another (rules of a group), by the ID they name.
        let mut configuring: HashMap<&str, Vec<Configuring<'_>>> = HashMap::new();
        for (resource_type, link) in tf.configured_by {
            for (_, i) in state.instances_of(resource_type) {
                if let Some(id) = i.attributes.get(*link).and_then(Value::as_str) {
                    configuring
                        .entry(id)
                        .or_default()
                        .push((resource_type, &i.attributes));
                }
            }
        }
        let mut declared = Vec::new();
        for (address, i) in state.instances_of(tf.resource_type) {
            let Some(id) = i.id(tf.id_attributes) else {
                report.problems.push(format!(
                    "workspace {:?}: {address} has none of the ID attributes {:?}",
                    workspace.name, tf.id_attributes
                ));
                continue;
            };
            let arn = i.attributes.get("arn").and_then(Value::as_str);
            let mut configured_by: Vec<_> = configuring.get(id).cloned().unwrap_or_default();
            if let Some(arn) = arn.filter(|a| *a != id) {
                configured_by.extend(configuring.get(arn).cloned().unwrap_or_default());
            }
            match kind.declared(salve_core::StateInstance {
                id,
                attributes: &i.attributes,
                configured_by: &configured_by,
                account_id: account,
                region,
            }) {
                Ok(d) if d.attributes.is_empty() => {}
                Ok(d) => declared.push((id.to_string(), address.to_string(), d)),
                Err(e) => report
                    .problems
                    .push(format!("workspace {:?}: {address}: {e}", workspace.name)),
            }
        }
        if declared.is_empty() {
            return;
        }
        let mut unknown = |why: String| {
            for (_, _, d) in &declared {
                let s = seen.entry(d.arn.clone()).or_default();
                s.kind = kind.spec.name.to_string();
                s.unknown.push(why.clone());
            }
        };
        let policy = drift_policy(kind.spec, account);
        let session = self
            .aws
            .session(
                &SessionRequest {
                    account_id: account,
                    finding_id: &format!("drift-{}", kind.spec.interface),
                    correlation_id: &format!("drift-{}", workspace.name),
                    policy: &policy,
                    approved_by: None,
                },
                region,
            )
            .await;
        let session = match session {
            Ok(s) => s,
            Err(f) => {
                return unknown(format!(
                    "no read session for {} in {account}: {}: {}",
                    kind.spec.name, f.reason, f.message
                ))
            }
        };
        let ids: Vec<String> = declared.iter().map(|(id, _, _)| id.clone()).collect();
        let read = LiveRead {
            session: &session,
            account_id: account,
            ids: &ids,
            path_style: self.aws.path_style(),
            concurrency: self.config.concurrency,
        };
        let live = match kind.live(read).await {
            Ok(live) => live,
            Err(e) => {
                return unknown(format!(
                    "reading {} in {account}/{region}: {}",
                    kind.spec.name,
                    crate::capabilities::describe_aws_error(&e)
                ))
            }
        };
        for ((_, address, d), live) in declared.into_iter().zip(live) {
            let s = seen.entry(d.arn.clone()).or_default();
            s.kind = kind.spec.name.to_string();
            let live = match live {
                Ok(Some(live)) => live,
                Ok(None) => {
                    s.deleted.push(format!(
                        "workspace {:?} declares it at {address}, and it does not exist",
                        workspace.name
                    ));
                    continue;
                }
                Err(e) => {
                    s.unknown.push(format!(
                        "reading it in {account}/{region}: {}",
                        crate::capabilities::describe_aws_error(&e)
                    ));
                    continue;
                }
            };
            for (attribute, declared) in d.attributes {
                let live = live.get(&attribute).cloned().unwrap_or(Value::Null);
                if live != declared {
                    s.drifts.push(AttributeDrift {
                        reference: Reference::Terraform,
                        attribute,
                        declared,
                        live,
                        workspace: Some(workspace.name.clone()),
                        address: Some(address.clone()),
                        fix: None,
                        finding_id: None,
                    });
                }
            }
        }
    }

    async fn write(&self, entry: AuditEntry, report: &mut Report) -> Result<u64> {
        let sealed = self.pipeline.record_operation(entry).await?;
        report.records.push(sealed.sequence);
        Ok(sealed.sequence)
    }

    async fn detected(&self, arn: &str, record: DriftRecord, report: &mut Report) -> Result<u64> {
        let regressions: Vec<&AttributeDrift> = record
            .drifts
            .iter()
            .filter(|d| d.reference == Reference::Fix)
            .collect();
        let reason = describe(&record.drifts);
        let mut entry = AuditEntry {
            resource_arn: Some(arn.to_string()),
            status: Some(Status::DriftDetected),
            reason: Some(reason.clone()),
            ..AuditEntry::default()
        };
        if let Some(first) = regressions.first() {
            let notice = Notice {
                triggers: vec![Trigger::Regression],
                status: Status::DriftDetected.as_str().into(),
                finding_id: first.finding_id.clone().unwrap_or_default(),
                correlation_id: String::new(),
                resource_arn: arn.to_string(),
                reason: Some(format!("a fix salve made was undone: {reason}")),
                priority: None,
            };
            entry.notifications = self.pipeline.notifier().notify(&notice).await;
        }
        entry.drift = Some(record);
        self.write(entry, report).await
    }

    async fn resolved(
        &self,
        arn: &str,
        open: &history::OpenDrift,
        at: &str,
        outcome: Outcome,
        history: &History,
        report: &mut Report,
    ) -> Result<()> {
        let why = if outcome == Outcome::Deleted {
            "the resource no longer exists"
        } else {
            "the live state and its references agree again"
        };
        let entry = AuditEntry {
            resource_arn: Some(arn.to_string()),
            status: Some(Status::DriftResolved),
            reason: Some(format!(
                "{why}; resolves drift record {} (since {})",
                open.record.sequence, open.drift.since
            )),
            drift: Some(DriftRecord {
                since: at.to_string(),
                ..open.drift.clone()
            }),
            ..AuditEntry::default()
        };
        self.write(entry, report).await?;
        if let Some(w) = history.unclosed(arn) {
            let entry = AuditEntry {
                resource_arn: Some(arn.to_string()),
                status: Some(Status::BreakGlassClosed),
                reason: Some(format!(
                    "closed by drift check: {why} (window opened by {} in record {})",
                    w.by, w.opened.sequence
                )),
                break_glass: Some(BreakGlassRecord {
                    by: Some("salve drift check".into()),
                    reason: Some(why.into()),
                    window: Some(w.opened.clone()),
                    ..BreakGlassRecord::default()
                }),
                ..AuditEntry::default()
            };
            self.write(entry, report).await?;
        }
        Ok(())
    }

    /// Every window in scope that passed its due time is recorded once, and the notifier told.
    async fn overdue(
        &self,
        scope: &Scope,
        history: &History,
        now: EpochMillis,
        report: &mut Report,
    ) -> Result<()> {
        for w in &history.windows {
            let WindowState::Overdue { late_ms } = w.state(now) else {
                continue;
            };
            if w.overdue_recorded || !in_scope_arn(scope, &w.resource_arn) {
                continue;
            }
            let reason = format!(
                "break-glass window opened by {} (record {}) was due {} and is {} late; reconcile the code or revert the live change",
                w.by,
                w.opened.sequence,
                w.due_at,
                history::duration(late_ms)
            );
            let notice = Notice {
                triggers: vec![Trigger::BreakGlassOverdue],
                status: Status::BreakGlassOverdue.as_str().into(),
                finding_id: String::new(),
                correlation_id: String::new(),
                resource_arn: w.resource_arn.clone(),
                reason: Some(reason.clone()),
                priority: None,
            };
            let entry = AuditEntry {
                resource_arn: Some(w.resource_arn.clone()),
                status: Some(Status::BreakGlassOverdue),
                reason: Some(reason),
                notifications: self.pipeline.notifier().notify(&notice).await,
                break_glass: Some(BreakGlassRecord {
                    window: Some(w.opened.clone()),
                    ..BreakGlassRecord::default()
                }),
                ..AuditEntry::default()
            };
            self.write(entry, report).await?;
        }
        Ok(())
    }

    /// `drift gate`: the check, then each drift is covered by an open break-glass window or
    /// fails the gate.
    pub async fn gate(&self, scope: &Scope, now: EpochMillis) -> Result<(Report, Verdict)> {
        // The history as the check read it is the one to judge by: the check closes windows only
        // of resources that agree again, never of one that drifted, and opens none.
        let (mut report, history) = self.check_with_history(scope, now).await?;
        let mut verdict = Verdict::Clean;
        for c in report
            .resources
            .iter_mut()
            .filter(|c| c.outcome == Outcome::Drifted)
        {
            let covered = history.unclosed(&c.resource_arn).map(|w| Covered {
                opened: w.opened.sequence,
                by: w.by.clone(),
                due_at: w.due_at.clone(),
                state: w.state(now),
                issue: w.issue.clone(),
            });
            let open = matches!(
                covered.as_ref().map(|c| c.state),
                Some(WindowState::Open { .. })
            );
            c.break_glass = covered;
            verdict = verdict.max(if open {
                Verdict::Covered
            } else {
                Verdict::Drift
            });
        }
        let unknown = report
            .resources
            .iter()
            .any(|c| c.outcome == Outcome::Unknown)
            || !report.problems.is_empty();
        if unknown && verdict != Verdict::Drift {
            verdict = Verdict::Undecided;
        }
        Ok((report, verdict))
    }
}

/// A resource type's instance that configures another: its type and attributes.
type Configuring<'a> = (&'a str, &'a serde_json::Map<String, Value>);

/// The gate's answer, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Clean,
    /// Every drift is covered by an open break-glass window.
    Covered,
    /// Something could not be checked; a gate that cannot check must not pass.
    Undecided,
    Drift,
}

impl Verdict {
    /// 0 clean, 0 with a warning when covered, 1 drift, 2 cannot decide.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean | Verdict::Covered => 0,
            Verdict::Drift => 1,
            Verdict::Undecided => 2,
        }
    }
}

fn in_scope_arn(scope: &Scope, arn: &str) -> bool {
    let Ok(parsed) = salve_contract::parse_arn(arn) else {
        return false;
    };
    let kind_ok = kinds::for_arn(&parsed).is_some_and(|k| scope.kind(k.spec));
    let place_ok = (scope.accounts.is_empty()
        || parsed.account.is_empty()
        || scope.accounts.iter().any(|a| a == parsed.account))
        && (scope.regions.is_empty()
            || parsed.region.is_empty()
            || scope.regions.iter().any(|r| r == parsed.region));
    kind_ok && place_ok
}

/// One line for a record's reason: which attributes differ from what.
pub fn describe(drifts: &[AttributeDrift]) -> String {
    drifts
        .iter()
        .map(|d| {
            let against = match (&d.reference, &d.address, &d.fix) {
                (Reference::Terraform, Some(a), _) => format!("Terraform {a}"),
                (Reference::Fix, _, Some(f)) => format!("fix record {}", f.sequence),
                (Reference::Terraform, None, _) => "Terraform".into(),
                (Reference::Fix, _, None) => "a fix".into(),
            };
            format!(
                "{} differs from {against}: declared {}, live {}",
                d.attribute,
                crate::text::bounded(&d.declared.to_string(), 512),
                crate::text::bounded(&d.live.to_string(), 512)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The human table: one line per drifted attribute, then what could not be read.
pub fn render(report: &Report, verdict: Option<Verdict>) -> String {
    let mut out = String::new();
    let drifted: Vec<&Checked> = report.drifted().collect();
    let count = |o: Outcome| report.resources.iter().filter(|c| c.outcome == o).count();
    out.push_str(&format!(
        "{} resources checked: {} drifted, {} agree, {} deleted, {} unreadable\n",
        report.resources.len(),
        drifted.len(),
        count(Outcome::Agrees),
        count(Outcome::Deleted),
        count(Outcome::Unknown)
    ));
    for c in &drifted {
        out.push_str(&format!(
            "\nDRIFT {} ({}) since {}{}\n",
            c.resource_arn,
            c.kind,
            c.since.as_deref().unwrap_or("?"),
            c.record
                .map(|r| format!(", record {r}"))
                .unwrap_or_default()
        ));
        for d in &c.drifts {
            let against = match (d.reference, &d.workspace, &d.address, &d.fix) {
                (Reference::Terraform, Some(w), Some(a), _) => format!("terraform {w} {a}"),
                (Reference::Fix, _, _, Some(f)) => format!(
                    "fix record {}{}",
                    f.sequence,
                    d.finding_id
                        .as_deref()
                        .map(|i| format!(" (finding {i})"))
                        .unwrap_or_default()
                ),
                _ => "?".into(),
            };
            out.push_str(&format!(
                "  {:<26} against {against}\n    declared {}\n    live     {}\n",
                d.attribute,
                crate::text::bounded(&d.declared.to_string(), 400),
                crate::text::bounded(&d.live.to_string(), 400)
            ));
        }
        if let Some(b) = &c.break_glass {
            let state = match b.state {
                WindowState::Open { left_ms } => {
                    format!("covered: {} left", history::duration(left_ms))
                }
                WindowState::Overdue { late_ms } => {
                    format!("NOT covered: overdue by {}", history::duration(late_ms))
                }
                WindowState::Malformed => "NOT covered: the window's due time is malformed".into(),
                WindowState::Closed => "NOT covered: closed".into(),
            };
            out.push_str(&format!(
                "  break-glass by {} (record {}), due {}: {state}{}\n",
                b.by,
                b.opened,
                b.due_at,
                b.issue
                    .as_ref()
                    .map(|i| format!("; reconcile in #{} {}", i.number, i.html_url))
                    .unwrap_or_default()
            ));
        }
    }
    for c in report
        .resources
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Unknown | Outcome::Deleted))
    {
        let what = if c.outcome == Outcome::Deleted {
            "DELETED"
        } else {
            "UNREADABLE"
        };
        out.push_str(&format!(
            "\n{what} {} ({}): {}\n",
            c.resource_arn,
            c.kind,
            c.reasons.join("; ")
        ));
    }
    for p in &report.problems {
        out.push_str(&format!("\nPROBLEM {p}\n"));
    }
    if let Some((id, status)) = report.requeued.first() {
        out.push_str(&format!(
            "\nremediated again ({} in all): {id} → {status}\n",
            report.requeued.len()
        ));
    }
    match verdict {
        Some(Verdict::Drift) => out.push_str(
            "\nGATE FAILED: security-critical drift with no open break-glass window.\n\
             Two ways out, for each resource above:\n\
             1. reconcile the code: change the Terraform to declare what is live, and merge;\n\
             2. revert the live change, so it matches the code (or the fix) again.\n\
             During an incident: salve break-glass open --resource ARN --reason TEXT --by WHO\n",
        ),
        Some(Verdict::Covered) => out.push_str(
            "\nGATE PASSED WITH A WARNING: every drift is under an open break-glass window; reconcile before it is due.\n",
        ),
        Some(Verdict::Undecided) => out.push_str(
            "\nGATE CANNOT DECIDE: something in scope could not be checked (above); it does not pass.\n",
        ),
        Some(Verdict::Clean) => out.push_str("\nGATE PASSED: no security-critical drift.\n"),
        None => {}
    }
    out
}
