//! The path of one payload: ingest → triage → pick a fixer → check → plan → read tags → decide →
//! apply → verify → notify → audit.
//!
//! Every message in a payload, including every error, ends in exactly one audit record, and the
//! record is on disk before the caller hears the outcome.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use serde_json::Value;
use tracing::Instrument;

use crate::approval::{ApprovalMessage, ApprovalRequest, Pending, NOT_OVERRIDABLE};
use crate::audit::{
    AuditEntry, AuditLog, AuditWriter, DeliveryInfo, RecordLink, SealedRecord, Status,
};
use crate::capabilities::{
    AwsError, Binding, BoxFuture, Capabilities, FixerError, Phase, Plan, PlannedCall, TagRead,
};
use crate::config::SalveConfig;
pub use crate::credentials::SessionFor;
use crate::credentials::{
    group_reads_tags_by_api, read_policy, AssumeRoleFailure, SessionPolicy, TAGGING_API_ACTION,
};
use crate::finding::Finding;
use crate::idempotency::{self, Claim, Ledger};
use crate::ingest::{IngestConfig, IngestOutcome, Ingested};
use crate::kinds::VerifyMode;
use crate::notify::{Notice, Notifier, Trigger};
use crate::policy::metadata::{Metadata, TagReadMode};
use crate::policy::risk::{self, RiskScore};
use crate::policy::{Decision, DecisionInput, EligibilityPolicy, Verdict};
use crate::record::Approval;
use crate::record::{
    CallReadBack, DecisionStage, Evidence, RecordedDecision, ResourceTags, SessionPhase,
    SessionRecord,
};
use crate::registry::{FixerRegistry, Selection};
use crate::rollback::RollbackRequest;
use crate::runtime::{describe_fixer_error, LoadedFixer, Runtime, Sandbox, SandboxError};
use crate::text;

/// An approval on its way through one run.
struct Approving<'a> {
    request: &'a ApprovalRequest,
    pending: &'a Pending,
}

mod builder;
mod drift;
mod effect;
mod pull_request;
mod read_groups;
mod resource_locks;
mod undo;

pub use builder::PipelineBuilder;
pub use drift::FixHeld;
pub use effect::{Effect, Origin};
pub use read_groups::Prepared;

/// Binds capability backends to a finding's resource, through a session limited by one phase's
/// policy (AWS in production: an assumed role with that session policy). `on_behalf` says whom
/// the session is for besides the finding (a session name and tags in AWS).
pub trait BackendBinder: Send + Sync {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        policy: &'a SessionPolicy,
        on_behalf: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>>;

    /// The tags of `arns` in one bulk read through the session `policy` allows (AWS: the
    /// Resource Groups Tagging API); a resource the answer leaves out is not in the map. A
    /// binder without such a read says so, and each finding reads its own tags.
    fn tags_of<'a>(
        &'a self,
        _finding: &'a Finding,
        _policy: &'a SessionPolicy,
        _on_behalf: SessionFor<'a>,
        _arns: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, salve_core::Tags>, String>> {
        Box::pin(async { Err("these backends have no bulk tag read".to_string()) })
    }
}

impl BackendBinder for crate::aws::AwsBackends {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        policy: &'a SessionPolicy,
        on_behalf: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>> {
        Box::pin(self.bind_session(finding, policy, on_behalf))
    }

    fn tags_of<'a>(
        &'a self,
        finding: &'a Finding,
        policy: &'a SessionPolicy,
        on_behalf: SessionFor<'a>,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, salve_core::Tags>, String>> {
        Box::pin(crate::aws::AwsBackends::tags_of(
            self, finding, policy, on_behalf, arns,
        ))
    }
}

/// So a caller can keep a handle on the binder it gives the pipeline (to read its STS counters).
impl<T: BackendBinder> BackendBinder for std::sync::Arc<T> {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        policy: &'a SessionPolicy,
        on_behalf: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>> {
        (**self).bind(finding, policy, on_behalf)
    }

    fn tags_of<'a>(
        &'a self,
        finding: &'a Finding,
        policy: &'a SessionPolicy,
        on_behalf: SessionFor<'a>,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, salve_core::Tags>, String>> {
        (**self).tags_of(finding, policy, on_behalf, arns)
    }
}

/// STS's error code for a session policy (with its tags) over the packed-size limit.
const PACKED_POLICY_TOO_LARGE: &str = "PackedPolicyTooLarge";

fn session_failure(phase: &str, f: &AssumeRoleFailure) -> (Status, Option<String>) {
    let mut reason = format!("{phase} session: {}: {}", f.reason, f.message);
    if let Some(code) = &f.code {
        reason.push_str(&format!(" ({code}"));
        if let Some(id) = &f.request_id {
            reason.push_str(&format!(", request ID {id}"));
        }
        reason.push(')');
    }
    (Status::Failed, Some(reason))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessOptions {
    /// The most this run may do with a decided plan.
    pub effect: Effect,
    /// Where the payload came from, which decides whether a redelivery is recognised.
    pub origin: Origin,
    /// How many of a payload's messages run at once (0 and 1: one at a time). Messages about
    /// one resource always run one after another.
    pub concurrency: usize,
}

/// Per-fixer settings from the operator, by fixer name.
pub type FixerSettings = BTreeMap<String, BTreeMap<String, String>>;

/// Everything the pipeline decides with, built from `salve.toml`.
pub struct PipelineConfig {
    pub settings: FixerSettings,
    pub read_back: crate::config::ReadBackConfig,
    pub policy: EligibilityPolicy,
    pub ingest: IngestConfig,
    pub notifier: Notifier,
    pub approvals: crate::approval::ApprovalsConfig,
    pub iac: crate::iac::IacConfig,
    /// `[metadata] tag-read`: how a read group's tags are read.
    pub tag_read: TagReadMode,
}

impl PipelineConfig {
    pub fn from_config(config: &SalveConfig, notifier: Notifier) -> Result<PipelineConfig> {
        Ok(PipelineConfig {
            settings: config.fixers.clone(),
            read_back: config.read_back.clone(),
            policy: config.eligibility_policy()?,
            ingest: config.ingest.clone(),
            notifier,
            approvals: config.approvals.clone(),
            iac: config.iac.clone(),
            tag_read: config.metadata.tag_read,
        })
    }
}

/// Somewhere an intent record must reach before a fix may start, beyond the local log (Lambda's
/// `/tmp` dies with its environment, so there the intent must be in the S3 sink first).
pub trait IntentShipper: Send + Sync {
    fn ship(&self) -> BoxFuture<'_, Result<()>>;
}

pub struct Pipeline {
    runtime: Runtime,
    intent_shipper: Option<std::sync::Arc<dyn IntentShipper>>,
    registry: FixerRegistry,
    backends: Box<dyn BackendBinder>,
    config: PipelineConfig,
    /// `None` only for `salve explain`, which must not write anything.
    audit: Option<AuditWriter>,
    /// Where that log is, to find what an approval message approves.
    audit_path: Option<std::path::PathBuf>,
    ledger: Ledger,
    /// Findings about one resource run one after another, across payloads and messages.
    resource_locks: resource_locks::ResourceLocks,
    /// Reads Terraform state in S3 with salve's own credentials (`[[iac.terraform]]`).
    states: crate::iac::StateReader,
}

/// The audit entry of one message, and where it sits in the chain (`None` for `explain` and for
/// a recognised redelivery, which writes nothing).
pub struct Processed {
    pub entry: AuditEntry,
    pub sealed: Option<SealedRecord>,
    pub redelivery: Option<Redelivery>,
}

/// How far one message of a payload got: done (recorded already, or nothing to record), or
/// waiting for its terminal record, which is written in payload order.
enum Step {
    Done(Processed),
    Record { key: String, entry: AuditEntry },
}

/// A message that was not processed because the same finding was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Its terminal record is already in the audit log, with this status: acknowledge it.
    AlreadyHandled(Status),
    /// Another delivery of it is being processed now: let the queue bring it back later.
    InFlight,
}

/// What the caller hears about a recognised redelivery; nothing is written for it.
fn redelivered(item: &Ingested, key: String, redelivery: Redelivery) -> Processed {
    let finding_id = item.outcome.finding_id().map(str::to_string);
    let reason = match redelivery {
        Redelivery::AlreadyHandled(status) => format!(
            "already handled: its terminal record ({}) is in the audit log",
            status.as_str()
        ),
        Redelivery::InFlight => "another delivery of this finding is being processed".into(),
    };
    Processed {
        entry: AuditEntry {
            finding_id,
            reason: Some(reason),
            retryable: redelivery == Redelivery::InFlight,
            idempotency_key: Some(key),
            ..AuditEntry::default()
        },
        sealed: None,
        redelivery: Some(redelivery),
    }
}

/// Links a record to the intent it settles. A run that finds the resource already in the
/// planned state is the earlier run's fix landing, so it is recorded as `remediated` with the
/// intent as its evidence, not as `already-compliant`, which would understate what salve changed.
fn settle(entry: &mut AuditEntry, link: RecordLink) {
    if entry.status == Some(Status::AlreadyCompliant) {
        entry.status = Some(Status::Remediated);
        entry.reason = Some(format!(
            "reconciled: the run that wrote intent #{} stopped before its record, and the resource is now in the planned state",
            link.sequence
        ));
    } else {
        let before = entry.reason.take().unwrap_or_default();
        entry.reason = Some(format!(
            "reconciles intent #{} (an earlier run stopped between its first write and its record): {before}",
            link.sequence
        ));
    }
    entry.reconciles = Some(link);
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().min(u64::MAX as u128) as u64
}

fn set(entry: &mut AuditEntry, status: Status, reason: impl Into<String>) {
    entry.status = Some(status);
    entry.reason = Some(reason.into());
}

fn recorded(decision: Decision, stage: DecisionStage) -> Option<RecordedDecision> {
    Some(RecordedDecision { stage, decision })
}

impl Pipeline {
    /// Through [`PipelineBuilder`], the one place the parts are put together.
    pub(crate) fn new(
        runtime: Runtime,
        registry: FixerRegistry,
        backends: Box<dyn BackendBinder>,
        audit: Option<AuditLog>,
        config: PipelineConfig,
    ) -> Result<Pipeline> {
        let audit_path = audit.as_ref().map(|log| log.path().to_path_buf());
        let (audit, ledger) = match audit {
            Some(log) => {
                let (ledger, rebuilt) = Ledger::rebuild(log.path())?;
                tracing::debug!(
                    from_checkpoint = rebuilt.from_checkpoint,
                    lines_read = rebuilt.lines_read,
                    "idempotency ledger rebuilt"
                );
                (Some(AuditWriter::start(log)?), ledger)
            }
            None => (None, Ledger::default()),
        };
        Ok(Pipeline {
            runtime,
            intent_shipper: None,
            registry,
            backends,
            config,
            audit,
            audit_path,
            ledger,
            resource_locks: Default::default(),
            states: crate::iac::StateReader::default(),
        })
    }

    /// Every intent record must reach `shipper` before the fix it announces may start.
    pub fn ship_intents_to(&mut self, shipper: std::sync::Arc<dyn IntentShipper>) {
        self.intent_shipper = Some(shipper);
    }

    pub fn ingest_config(&self) -> &IngestConfig {
        &self.config.ingest
    }

    pub fn registry(&self) -> &FixerRegistry {
        &self.registry
    }

    pub fn engine_hash(&self) -> u64 {
        self.runtime.engine_hash()
    }

    pub fn notifier(&self) -> &Notifier {
        &self.config.notifier
    }

    /// The Terraform workspaces, and the reader of their states.
    pub fn iac(&self) -> (&crate::iac::IacConfig, &crate::iac::StateReader) {
        (&self.config.iac, &self.states)
    }

    pub fn policy(&self) -> &EligibilityPolicy {
        &self.config.policy
    }

    /// Processes one raw payload (which may hold several findings) and returns once every
    /// audit record is durable. The `Err` case is only for a failure to write an audit record.
    pub async fn process_payload(
        &self,
        payload: &[u8],
        options: ProcessOptions,
    ) -> Result<Vec<Processed>> {
        self.process_delivery(payload, options, None).await
    }

    /// [`Pipeline::process_payload`] for a payload that arrived in a queue or topic message,
    /// which every record names.
    pub async fn process_delivery(
        &self,
        payload: &[u8],
        options: ProcessOptions,
        delivery: Option<&DeliveryInfo>,
    ) -> Result<Vec<Processed>> {
        let mut out = Vec::new();
        self.process_delivery_each(payload, options, delivery, |p| out.push(p))
            .await?;
        Ok(out)
    }

    /// Processes a payload's messages and hands each outcome to `each` once its record is
    /// durable, in payload order, so a caller can print and drop it: memory holds the messages
    /// in flight, not every record of the payload.
    ///
    /// Up to `options.concurrency` messages run at once. Messages about one resource run one
    /// after another in payload order (a resource lock, shared with every other payload this
    /// process runs), so two findings never change one resource at the same time. Terminal
    /// records are written in payload order; a message that finished early waits for the ones
    /// before it, its change already covered by its durable intent record.
    pub async fn process_delivery_each(
        &self,
        payload: &[u8],
        options: ProcessOptions,
        delivery: Option<&DeliveryInfo>,
        each: impl FnMut(Processed),
    ) -> Result<()> {
        let prepared = self.prepare_one(payload.to_vec());
        self.process_prepared_each(prepared, options, delivery, each)
            .await
    }

    /// [`Pipeline::process_delivery_each`] for a payload [`Pipeline::prepare`]d with the
    /// others of its batch, whose findings share read sessions with theirs.
    pub async fn process_prepared_each(
        &self,
        prepared: Prepared,
        options: ProcessOptions,
        delivery: Option<&DeliveryInfo>,
        mut each: impl FnMut(Processed),
    ) -> Result<()> {
        let Prepared {
            payload,
            payload_sha256,
            items,
            groups,
        } = prepared;
        // Raised again here, inside the message's task, so a bug in ingest costs this message
        // (retried) and not the batch or the daemon that prepared it.
        let items = items.unwrap_or_else(|panic| panic!("ingest panicked: {panic}"));
        let payload = payload.as_slice();
        let runs = items.into_iter().enumerate().map(|(index, item)| {
            let group = groups.get(&index).cloned();
            let lock = match &item.outcome {
                IngestOutcome::Finding(f) => Some(self.resource_locks.of(&f.resource.arn)),
                _ => None,
            };
            let payload_sha256 = &payload_sha256;
            async move {
                let _one = match &lock {
                    Some(l) => Some(l.lock().await),
                    None => None,
                };
                // Boxed: a message's future is tens of kilobytes, and the stream would move it
                // (memcpy) on every push.
                let run: BoxFuture<'_, Result<Step>> = Box::pin(self.run_message(
                    payload,
                    payload_sha256,
                    (index, item),
                    group.as_deref(),
                    options,
                    delivery,
                ));
                run.await
            }
        });
        let mut runs = futures_util::stream::iter(runs).buffered(options.concurrency.max(1));
        while let Some(step) = runs.next().await {
            match step? {
                Step::Done(p) => each(p),
                Step::Record { key, entry } => match self.record(entry).await {
                    Ok(processed) => {
                        let e = &processed.entry;
                        self.ledger.complete(&key, e.status, e.retryable, e.dry_run);
                        self.ledger.settle_intent(&key);
                        each(processed);
                    }
                    Err(e) => {
                        self.ledger.release(&key);
                        return Err(e);
                    }
                },
            }
        }
        Ok(())
    }

    /// One message of a payload, up to the record its outcome needs.
    async fn run_message(
        &self,
        payload: &[u8],
        payload_sha256: &str,
        (index, item): (usize, Ingested),
        group: Option<&read_groups::ReadGroup>,
        options: ProcessOptions,
        delivery: Option<&DeliveryInfo>,
    ) -> Result<Step> {
        if let (IngestOutcome::Approval(message), true) =
            (&item.outcome, options.effect.changes_resources())
        {
            return Ok(Step::Done(
                self.approval_message(payload_sha256, &item, message, delivery)
                    .await?,
            ));
        }
        let key = match &item.outcome {
            IngestOutcome::Finding(f) => idempotency::finding_key(f),
            other => idempotency::payload_key(payload_sha256, index, other.finding_id()),
        };
        // An empty payload has no identity of its own: two of them are not one message
        // delivered twice.
        let deduplicate = options.origin == Origin::Queue
            && options.effect.changes_resources()
            && !payload.is_empty();
        if deduplicate {
            match self.ledger.claim(&key) {
                Claim::Fresh => {}
                Claim::Handled(status) => {
                    return Ok(Step::Done(redelivered(
                        &item,
                        key,
                        Redelivery::AlreadyHandled(status),
                    )))
                }
                Claim::InFlight => {
                    return Ok(Step::Done(redelivered(&item, key, Redelivery::InFlight)))
                }
            }
        }
        let started = Instant::now();
        let mut entry = AuditEntry {
            payload_sha256: Some(payload_sha256.to_string()),
            dry_run: options.effect.is_dry_run(),
            idempotency_key: Some(key.clone()),
            delivery: delivery.cloned(),
            ..AuditEntry::default()
        };
        let open_intent = options
            .effect
            .changes_resources()
            .then(|| self.ledger.open_intent(&key))
            .flatten();
        self.process_item(item, options, &mut entry, group).await;
        if let Some(link) = open_intent {
            settle(&mut entry, link);
        }
        if options.effect.records() {
            self.notify(&mut entry).await;
        }
        entry.durations_us.insert("total".into(), micros(started));
        if !options.effect.records() {
            return Ok(Step::Done(Processed {
                entry,
                sealed: None,
                redelivery: None,
            }));
        }
        Ok(Step::Record { key, entry })
    }

    /// `salve approve`: runs a finding that waits for approval again, from check, with the
    /// approval standing in for the review reasons it overrides. The plan must equal the one the
    /// person reviewed (unless they accepted a new one); every guardrail runs again, and the
    /// allowlists can never be overridden. The record says who approved which review record.
    pub async fn approve(&self, pending: &Pending, request: &ApprovalRequest) -> Result<Processed> {
        self.approve_with(pending, request, AuditEntry::default())
            .await
    }

    /// [`Pipeline::approve`], recording what `template` already says (the message it came in).
    async fn approve_with(
        &self,
        pending: &Pending,
        request: &ApprovalRequest,
        template: AuditEntry,
    ) -> Result<Processed> {
        let started = Instant::now();
        let finding = &pending.finding;
        let key = idempotency::finding_key(finding);
        let mut entry = AuditEntry {
            idempotency_key: Some(key.clone()),
            ..template
        };
        let approving = Approving { request, pending };
        let span =
            tracing::info_span!("approval", finding_id = %finding.id, approved_by = %request.by);
        let run: BoxFuture<'_, ()> = Box::pin(self.process_finding(
            finding,
            ProcessOptions::default(),
            &mut entry,
            Some(&approving),
            None,
        ));
        run.instrument(span).await;
        self.conclude(&key, entry, started).await
    }

    /// Notifies, records and settles a run a person started (`approve`, `rollback`).
    async fn conclude(
        &self,
        key: &str,
        mut entry: AuditEntry,
        started: Instant,
    ) -> Result<Processed> {
        self.notify(&mut entry).await;
        entry.durations_us.insert("total".into(), micros(started));
        let processed = self.record(entry).await?;
        let e = &processed.entry;
        self.ledger.complete(key, e.status, e.retryable, e.dry_run);
        self.ledger.settle_intent(key);
        Ok(processed)
    }

    /// A `salve-approval` message: authenticated with the deployment's key, fresh, never seen
    /// before, and naming a finding that waits for approval, it runs like `salve approve`.
    /// Anything else is refused, and every case is recorded.
    async fn approval_message(
        &self,
        payload_sha256: &str,
        item: &Ingested,
        message: &ApprovalMessage,
        delivery: Option<&DeliveryInfo>,
    ) -> Result<Processed> {
        let started = Instant::now();
        let mut entry = AuditEntry {
            payload_sha256: Some(payload_sha256.to_string()),
            source: item.source,
            envelope: item.envelope.clone(),
            delivery: delivery.cloned(),
            ..AuditEntry::default()
        };
        let refused = match self
            .config
            .approvals
            .verify(message, crate::timestamp::now())
        {
            Err(reason) => reason,
            Ok(signed) => {
                entry.finding_id = Some(signed.finding_id.clone());
                entry.approval_message = Some((&signed).into());
                if !self.ledger.take_nonce(&signed.nonce) {
                    format!(
                        "a replayed approval: nonce {:?} was used before; nothing was changed",
                        signed.nonce
                    )
                } else {
                    let waiting = self
                        .audit_path
                        .as_deref()
                        .context("this pipeline has no audit log to find the approved review in")
                        .and_then(|log| crate::approval::find(log, &signed.finding_id));
                    match waiting {
                        Err(e) => format!("{e:#}; nothing was changed"),
                        Ok(pending) => {
                            let request = ApprovalRequest {
                                by: signed.by.clone(),
                                reason: signed.reason.clone(),
                                accept_new_plan: signed.accept_new_plan,
                            };
                            let processed = self.approve_with(&pending, &request, entry).await?;
                            // A failure worth another delivery must not burn the nonce.
                            if processed.entry.retryable {
                                self.ledger.return_nonce(&signed.nonce);
                            }
                            return Ok(processed);
                        }
                    }
                }
            }
        };
        entry.status = Some(Status::Rejected);
        entry.reason = Some(refused);
        entry.durations_us.insert("total".into(), micros(started));
        self.record(entry).await
    }

    /// Terraform state in S3 (`[[iac.terraform]]`) is read through `s3`, salve's own
    /// credentials, never a customer session.
    pub fn read_state_with(&mut self, s3: aws_sdk_s3::Client) {
        self.states = crate::iac::StateReader::new(Some(s3));
    }

    /// Records a payload that was refused before ingest (an input over the size limit), by its
    /// digest, which covers the whole input.
    pub async fn reject(
        &self,
        payload_sha256: &str,
        reason: String,
        options: ProcessOptions,
    ) -> Result<Processed> {
        let entry = AuditEntry {
            status: Some(Status::Rejected),
            reason: Some(reason),
            payload_sha256: Some(payload_sha256.to_string()),
            dry_run: options.effect.is_dry_run(),
            ..AuditEntry::default()
        };
        if !options.effect.records() {
            return Ok(Processed {
                entry,
                sealed: None,
                redelivery: None,
            });
        }
        self.record(entry).await
    }

    /// Settles every intent an earlier run left without a terminal record (it stopped between
    /// its first write call and its record: a crash, SIGKILL, a full disk). Each finding is read
    /// again through a read-only session, nothing is changed, and the record says what is in
    /// place, linked to the intent. Call at start, before taking new work.
    pub async fn reconcile_open_intents(&self) -> Result<Vec<Processed>> {
        let mut out = Vec::new();
        for (key, open) in self.ledger.open_intents() {
            let started = Instant::now();
            let mut entry = AuditEntry {
                idempotency_key: Some(key.clone()),
                ..AuditEntry::default()
            };
            match open.finding.map(Finding::from_recorded) {
                Some(Ok(finding)) => {
                    let options = ProcessOptions {
                        effect: Effect::Reconcile,
                        ..ProcessOptions::default()
                    };
                    self.process_finding(&finding, options, &mut entry, None, None)
                        .await;
                }
                Some(Err(e)) => set(
                    &mut entry,
                    Status::Failed,
                    format!("the intent's finding could not be read back: {e}; check the resource by hand"),
                ),
                None => set(
                    &mut entry,
                    Status::Failed,
                    "the intent record holds no finding; check the resource by hand",
                ),
            }
            settle(&mut entry, open.link);
            // A change that is in place settles the finding: its redelivery is acknowledged
            // without running again. One that is not leaves the key open, so the redelivered
            // message runs the fix again.
            entry.retryable = entry.status != Some(Status::Remediated);
            entry.durations_us.insert("total".into(), micros(started));
            let processed = self.record(entry).await?;
            let e = &processed.entry;
            self.ledger.complete(&key, e.status, e.retryable, false);
            self.ledger.settle_intent(&key);
            out.push(processed);
        }
        Ok(out)
    }

    /// Writes a record about an operation rather than a finding (a dead-letter replay), and
    /// returns once it is durable.
    pub async fn record_operation(&self, entry: AuditEntry) -> Result<SealedRecord> {
        self.record(entry)
            .await?
            .sealed
            .context("the audit log sealed no record")
    }

    fn writer(&self) -> Result<&AuditWriter> {
        self.audit
            .as_ref()
            .context("this pipeline has no audit log, so it can only explain")
    }

    /// Writes a record already serialised by [`AuditEntry::to_record_body`].
    async fn record_body(&self, body: String) -> Result<SealedRecord> {
        self.writer()?
            .append_body(body)
            .await
            .context("writing the audit record")
    }

    async fn record(&self, entry: AuditEntry) -> Result<Processed> {
        let (entry, sealed) = self.writer()?.append(entry).await;
        let sealed = sealed.context("writing the audit record")?;
        Ok(Processed {
            entry,
            sealed: Some(sealed),
            redelivery: None,
        })
    }

    async fn process_item(
        &self,
        item: Ingested,
        options: ProcessOptions,
        entry: &mut AuditEntry,
        group: Option<&read_groups::ReadGroup>,
    ) {
        entry.source = item.source;
        entry.envelope = item.envelope;
        match item.outcome {
            IngestOutcome::Rejected { reason } => set(entry, Status::Rejected, reason),
            IngestOutcome::Approval(_) => set(
                entry,
                Status::Skipped,
                "an approval message acts only when it may change resources: explain and --dry-run do not apply it",
            ),
            IngestOutcome::NotActionable { finding_id, reason } => {
                entry.finding_id = Some(finding_id);
                set(entry, Status::Skipped, reason);
            }
            IngestOutcome::Finding(finding) => {
                // Every log line of the finding carries its IDs.
                let span = tracing::info_span!("finding", finding_id = %finding.id, correlation_id = %finding.correlation_id);
                // Boxed: a finding's future (sandbox, sessions, read-back, pull request) is deep,
                // and the queue modes nest it further; rustc's layout query has a depth limit.
                let run: BoxFuture<'_, ()> =
                    Box::pin(self.process_finding(&finding, options, entry, None, group));
                run.instrument(span).await
            }
        }
    }

    /// Review and failed findings, and urgent ones whatever their outcome, go to the notifier;
    /// each delivery, failed or not, lands in the record.
    async fn notify(&self, entry: &mut AuditEntry) {
        if !self.config.notifier.has_routes() {
            return;
        }
        let mut triggers = Vec::new();
        match entry.status {
            Some(Status::Review) => triggers.push(Trigger::Review),
            Some(Status::Failed) => triggers.push(Trigger::Failed),
            _ => {}
        }
        if entry.risk.as_ref().is_some_and(|r| r.urgent) {
            triggers.push(Trigger::Urgent);
        }
        if triggers.is_empty() {
            return;
        }
        let notice = Notice {
            triggers,
            status: entry
                .status
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            finding_id: entry.finding_id.clone().unwrap_or_default(),
            correlation_id: entry.correlation_id.clone().unwrap_or_default(),
            resource_arn: entry.resource_arn.clone().unwrap_or_default(),
            reason: entry.reason.clone(),
            priority: entry.risk.as_ref().map(|r| r.priority.as_str().to_string()),
        };
        entry.notifications = self.config.notifier.notify(&notice).await;
    }

    fn risk(&self, finding: &Finding, metadata: &Metadata, entry: &mut AuditEntry) -> RiskScore {
        let score = risk::score(
            finding.severity,
            metadata.exposure.value.as_deref(),
            metadata.data_classification.value.as_deref(),
        );
        entry.risk = Some(score.clone());
        score
    }

    async fn process_finding(
        &self,
        finding: &Finding,
        options: ProcessOptions,
        entry: &mut AuditEntry,
        approval: Option<&Approving<'_>>,
        group: Option<&read_groups::ReadGroup>,
    ) {
        entry.finding_id = Some(finding.id.clone());
        entry.correlation_id = Some(finding.correlation_id.clone());
        entry.resource_arn = Some(finding.resource.arn.clone());
        entry.finding = Some(finding.clone());

        // Triage: no AWS call happens unless every check here passes.
        let policy = &self.config.policy;
        let payload_metadata = Metadata::from_tags(
            policy.tag_keys(),
            &finding.resource.tags,
            None,
            policy.restricted_environments(),
        );
        self.risk(finding, &payload_metadata, entry);
        let triage = policy.triage(finding, &payload_metadata);
        if triage.verdict != Verdict::Remediate {
            set(
                entry,
                Status::Skipped,
                triage.reason.clone().unwrap_or_default(),
            );
            entry.decision = recorded(triage, DecisionStage::Triage);
            return;
        }
        entry.decision = recorded(triage, DecisionStage::Triage);
        let Some((fixer, backend, mut sandbox, shared)) = self.start(finding, entry, group).await
        else {
            return;
        };
        let run = FindingRun {
            pipeline: self,
            finding,
            fixer,
            backend: &backend,
            payload_metadata,
            approval,
            reversal: None,
            group: group.filter(|_| shared),
        };
        let (status, reason) = run.phases(&mut sandbox, options, entry).await;
        self.finish_run(&sandbox, status, reason, entry);
    }

    /// What every run ends with: its outcome, and the calls and output the sandbox saw.
    fn finish_run(
        &self,
        sandbox: &Sandbox,
        status: Status,
        reason: Option<String>,
        entry: &mut AuditEntry,
    ) {
        entry.status = Some(status);
        entry.reason = reason;
        entry.calls = sandbox.gate().calls().to_vec();
        entry.fixer_output = Some(sandbox.output());
        tracing::info!(status = status.as_str(), "finding processed");
    }

    /// Selects the finding's fixer, has its read session and starts it in a sandbox, recording
    /// each step; `None` when one failed, with `entry` saying why. The flag says the session is
    /// `group`'s shared one.
    async fn start(
        &self,
        finding: &Finding,
        entry: &mut AuditEntry,
        group: Option<&read_groups::ReadGroup>,
    ) -> Option<(&LoadedFixer, Binding, Sandbox, bool)> {
        let fixer = match self.registry.select(finding) {
            Selection::Ready(f) => f,
            Selection::Refused(r) => {
                set(
                    entry,
                    Status::Failed,
                    format!(
                        "the fixer for {} was refused at load: {}",
                        finding.resource.resource_type, r.error
                    ),
                );
                return None;
            }
            Selection::None(reason) => {
                set(entry, Status::Skipped, reason);
                return None;
            }
        };
        entry.fixer = Some(fixer.identity());
        let arn = finding.resource.arn.as_str();
        let shared = group.filter(|g| g.covers(arn));
        let own = read_policy(fixer, &[arn]);
        let mut scopes = Vec::with_capacity(2);
        if let Some(g) = shared {
            scopes.push((&g.policy, SessionFor::ReadGroup(&g.id)));
        }
        scopes.push((&own, SessionFor::Finding));
        let mut bound = None;
        let mut shared_session = false;
        for (policy, on_behalf) in scopes {
            let t = Instant::now();
            let result = self.backends.bind(finding, policy, on_behalf).await;
            entry.durations_us.insert("read_session".into(), micros(t));
            entry.sessions.push(SessionRecord::new(
                SessionPhase::Read,
                finding,
                on_behalf,
                policy,
                result.as_ref().err(),
            ));
            // STS refuses a shared policy its packed-size limit does not fit (policy and tags
            // compressed together); the finding's own session still fits.
            let too_large =
                matches!(&result, Err(f) if f.code.as_deref() == Some(PACKED_POLICY_TOO_LARGE));
            let last = on_behalf == SessionFor::Finding;
            shared_session = !last;
            bound = Some(result);
            if !too_large || last {
                break;
            }
        }
        let backend = match bound? {
            Ok(b) => b,
            Err(f) => {
                let (status, reason) = session_failure("read", &f);
                entry.status = Some(status);
                entry.reason = reason;
                entry.retryable = f.retryable;
                return None;
            }
        };
        let mut settings = self
            .config
            .settings
            .get(&fixer.manifest.name)
            .cloned()
            .unwrap_or_default();
        // Settings can hold secrets; when they are pinned to a component, a fixer that only
        // claims the name gets nothing and does not run.
        if let Some(pinned) = settings.remove("sha256") {
            if !pinned.eq_ignore_ascii_case(&fixer.sha256) {
                set(
                    entry,
                    Status::Failed,
                    format!(
                        "the settings for fixer {:?} are pinned to sha256 {pinned}, but the installed component claiming that name is {}; it was not run",
                        fixer.manifest.name, fixer.sha256
                    ),
                );
                return None;
            }
        }
        let limits = self.runtime.limits();
        let capabilities = Capabilities::new(
            crate::capabilities::to_wit_finding(finding),
            settings,
            backend.clone(),
            limits.max_capability_calls,
            limits.log_bytes,
        );
        let started = Instant::now();
        let sandbox = match self.runtime.start(fixer, capabilities).await {
            Ok(s) => s,
            Err(e) => {
                set(entry, Status::Failed, format!("starting the fixer: {e:#}"));
                return None;
            }
        };
        entry
            .durations_us
            .insert("instantiate".into(), micros(started));
        Some((fixer, backend, sandbox, shared_session))
    }
}

/// The failed guardrails no person can override (an approval, a rollback), each with its detail.
fn unoverridable(decision: &Decision) -> Vec<String> {
    decision
        .checks
        .iter()
        .filter(|c| !c.passed && NOT_OVERRIDABLE.contains(&c.name.as_ref()))
        .map(|c| c.detail.clone())
        .collect()
}

/// A failed phase. Only an AWS error the host itself received (throttling, 5xx) can make the
/// record retryable, with the host's own flag; an `aws` error the fixer built is the fixer's
/// error, said so, and never retried, or a fixer could have its message redelivered for ever.
fn phase_failure(
    phase: &str,
    e: &SandboxError,
    sandbox: &Sandbox,
    entry: &mut AuditEntry,
) -> (Status, Option<String>) {
    let reason = match e {
        SandboxError::Fixer(f @ FixerError::Aws(aws)) => match sandbox.observed_aws_error(aws) {
            Some(observed) => {
                entry.retryable |= observed.retryable;
                format!("{phase}: the fixer reported {}", describe_fixer_error(f))
            }
            None => format!(
                "{phase}: the fixer reported {}, an error the host never received from AWS (the fixer's own error; not retried)",
                describe_fixer_error(f)
            ),
        },
        SandboxError::Fixer(f) => {
            format!("{phase}: the fixer reported {}", describe_fixer_error(f))
        }
        SandboxError::Contained(r) => format!("{phase}: {}", text::bounded(r, 4096)),
    };
    (Status::Failed, Some(reason))
}

/// States plainly which writes reached AWS before a failed apply stopped.
fn partial_change(reason: String, gate: &crate::capabilities::CallGate) -> String {
    let writes: Vec<&str> = gate
        .calls()
        .iter()
        .filter(|c| {
            c.phase == Phase::Apply
                && c.access == crate::kinds::Access::Write
                && c.result == crate::capabilities::CallResult::Ok
        })
        .map(|c| c.action.as_ref())
        .collect();
    if writes.is_empty() {
        format!("{reason}; no write reached AWS before it stopped")
    } else {
        format!(
            "{reason}; PARTIAL CHANGE: these writes succeeded before it stopped: {}",
            writes.join(", ")
        )
    }
}

/// JSON a fixer hands the host (rollback data), kept only as bounded data: parsed when it is
/// small and shallow, else kept as a bounded string. A record must never become too deep or
/// too big for the log to take or for a reader to parse.
pub fn fixer_json(text: &str) -> Value {
    const MAX_BYTES: usize = 64 * 1024;
    const MAX_DEPTH: usize = 16;
    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    if text.len() <= MAX_BYTES {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            if depth(&v) <= MAX_DEPTH {
                return v;
            }
        }
    }
    Value::String(text::bounded(text, MAX_BYTES).into_owned())
}

/// The approved plan's changes that a write call carried out and AWS accepted, from the gate's
/// record.
fn applied_calls(
    plan: &Plan,
    gate: &crate::capabilities::CallGate,
) -> Vec<crate::capabilities::Change> {
    gate.accepted()
        .filter_map(|i| plan.changes.get(i).cloned())
        .collect()
}

/// One finding between triage and the audit record.
struct FindingRun<'a> {
    pipeline: &'a Pipeline,
    finding: &'a Finding,
    fixer: &'a LoadedFixer,
    backend: &'a Binding,
    payload_metadata: Metadata,
    /// Set when a person approved the plan this run re-makes (`salve approve`).
    approval: Option<&'a Approving<'a>>,
    /// Set when the run undoes a fix (`salve rollback`).
    reversal: Option<&'a RollbackRequest>,
    /// The read group whose shared session this run reads through.
    group: Option<&'a read_groups::ReadGroup>,
}

impl FindingRun<'_> {
    /// Reads the resource back through the read session for every planned call, as often as
    /// the kind's verify mode allows, until each call's declared outcome holds.
    async fn read_back(
        &self,
        plan: &Plan,
        accepted: &[usize],
    ) -> Result<Vec<CallReadBack>, AwsError> {
        let Some(kind) = crate::kinds::get(self.fixer.resource_type.name) else {
            return Err(crate::capabilities::internal_error(
                "the fixer's kind is not registered",
            ));
        };
        let bounds = &self.pipeline.config.read_back;
        let (attempts, interval) = match kind.spec.verify {
            VerifyMode::Immediate => (1, std::time::Duration::ZERO),
            VerifyMode::Polled {
                attempts,
                interval_ms,
            } => (
                bounds
                    .max_attempts
                    .unwrap_or(attempts)
                    .clamp(1, attempts.max(1)),
                std::time::Duration::from_millis(bounds.interval_ms.unwrap_or(interval_ms)),
            ),
        };
        let calls: Vec<(usize, &PlannedCall)> = plan
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.call.as_ref().map(|call| (i, call)))
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (i, call) in calls {
            let attempts = if accepted.contains(&i) { attempts } else { 1 };
            let mut attempt = 1;
            let read_back = loop {
                let read_back = kind.read_back(call, self.backend).await?;
                if read_back.holds || attempt >= attempts {
                    break read_back;
                }
                attempt += 1;
                tokio::time::sleep(interval).await;
            };
            results.push(CallReadBack {
                call: call.clone(),
                attempts: attempt,
                read_back,
            });
        }
        Ok(results)
    }

    /// The fixer's `check()` before anything changes, recorded as the evidence's start; the
    /// failed phase when it fails.
    async fn check_before(
        &self,
        sandbox: &mut Sandbox,
        entry: &mut AuditEntry,
    ) -> Result<bool, (Status, Option<String>)> {
        let t = Instant::now();
        let compliant_before = sandbox.check(Phase::Check).await;
        entry.durations_us.insert("check".into(), micros(t));
        let compliant_before =
            compliant_before.map_err(|e| phase_failure("check", &e, sandbox, entry))?;
        entry.evidence = Some(Evidence {
            compliant_before,
            after: None,
        });
        Ok(compliant_before)
    }

    /// Reads the resource's tags, scores the risk and runs every guardrail and policy on
    /// `plan`, recording the metadata and the risk.
    async fn decide(&self, plan: &Plan, entry: &mut AuditEntry) -> Decision {
        let (metadata, tag_read_error) = self.metadata(entry).await;
        entry.metadata = Some(metadata.clone());
        let risk = self.pipeline.risk(self.finding, &metadata, entry);
        // Only policies read `input.iac`, and only with workspaces configured: one state read,
        // answered 304 while it is unchanged.
        let pipeline = self.pipeline;
        let iac = if pipeline.config.policy.has_operator_policies() {
            crate::iac::locate(&pipeline.config.iac, self.finding, &pipeline.states).await
        } else {
            None
        };
        let t = Instant::now();
        let decision = self.pipeline.config.policy.decide(DecisionInput {
            finding: self.finding,
            fixer: self.fixer,
            plan,
            metadata: &metadata,
            risk: &risk,
            tag_read_error: tag_read_error.as_deref(),
            iac: iac.as_ref(),
        });
        entry.durations_us.insert("decide".into(), micros(t));
        decision
    }

    /// The metadata from the payload's tags and the resource's own, the more restrictive
    /// answer winning. The resource is always read (a payload's tags are only a claim), through
    /// the read-only tag capability, in the plan phase, or in its read group's one Tagging API
    /// read when the group made one and its answer names the resource.
    async fn metadata(&self, entry: &mut AuditEntry) -> (Metadata, Option<String>) {
        let policy = &self.pipeline.config.policy;
        let keys = policy.tag_keys();
        let t = Instant::now();
        let (tags, action, read_group, group_miss) = match self.group_tags().await {
            Some(Ok((group, tags))) => (
                Ok(TagRead::from(tags)),
                TAGGING_API_ACTION,
                Some(group.to_string()),
                None,
            ),
            miss => (
                self.backend.read_tags().await,
                self.fixer.resource_type.tags_action,
                None,
                miss.and_then(Result::err),
            ),
        };
        entry.durations_us.insert("read_tags".into(), micros(t));
        match tags {
            Ok(TagRead { tags, reused }) => {
                entry.resource_tags = Some(ResourceTags {
                    action: action.into(),
                    tags: Some(tags.clone()),
                    error: None,
                    reused,
                    read_group,
                    group_miss,
                });
                let m = Metadata::from_tags(
                    keys,
                    &self.finding.resource.tags,
                    Some(&tags),
                    policy.restricted_environments(),
                );
                (m, None)
            }
            Err(e) => {
                let error = format!("{action}: {}", crate::aws::describe_aws_error(&e));
                entry.resource_tags = Some(ResourceTags {
                    action: action.into(),
                    tags: None,
                    error: Some(error.clone()),
                    reused: false,
                    read_group,
                    group_miss,
                });
                (self.payload_metadata.clone(), Some(error))
            }
        }
    }

    /// The resource's tags from its read group's one Tagging API read, with the group's ID;
    /// `None` when the group reads no tags, `Err` (why) when its answer cannot be used for this
    /// resource (see [`read_groups::GroupTags::for_resource`]), which is then read on its own.
    async fn group_tags(&self) -> Option<Result<(&str, salve_core::Tags), String>> {
        let group = self
            .group
            .filter(|_| group_reads_tags_by_api(self.fixer, self.pipeline.config.tag_read))?;
        let read = group
            .tags
            .get_or_init(|| async {
                let answer = self
                    .pipeline
                    .backends
                    .tags_of(
                        self.finding,
                        &group.policy,
                        SessionFor::ReadGroup(&group.id),
                        &group.arns,
                    )
                    .await;
                read_groups::GroupTags {
                    read_at: Instant::now(),
                    answer,
                }
            })
            .await;
        let tags = read.for_resource(&self.finding.resource.arn, Instant::now());
        Some(tags.map(|t| (group.id.as_str(), t)))
    }

    /// check → plan → read tags → decide → apply → verify, recording as it goes.
    async fn phases(
        &self,
        sandbox: &mut Sandbox,
        options: ProcessOptions,
        entry: &mut AuditEntry,
    ) -> (Status, Option<String>) {
        let compliant_before = match self.check_before(sandbox, entry).await {
            Ok(c) => c,
            Err(failed) => return failed,
        };
        if options.effect == Effect::Reconcile {
            return if compliant_before {
                (Status::AlreadyCompliant, None)
            } else {
                (
                    Status::Failed,
                    Some("check() finds the resource non-compliant: the planned change is not in place (it did not land, or was undone)".into()),
                )
            };
        }
        if compliant_before {
            return (
                Status::AlreadyCompliant,
                Some("check() found the resource compliant".into()),
            );
        }

        let t = Instant::now();
        let plan = sandbox.plan().await;
        entry.durations_us.insert("plan".into(), micros(t));
        let plan = match plan {
            Ok(p) => p,
            Err(e) => return phase_failure("plan", &e, sandbox, entry),
        };
        entry.plan = Some(plan.clone());
        // An IaC-only kind's plan is always empty: its fix is the pull request, decided below
        // like any plan.
        let iac_only = self.fixer.resource_type.iac_only.is_some();
        if plan.changes.is_empty() && !iac_only {
            // The fixer's own check says the resource is not compliant: recording it compliant
            // would close a finding nobody fixed. A person looks.
            return (
                Status::Review,
                Some("check() finds the resource non-compliant, but plan() proposes no change: the fixer cannot fix it as it is; a person decides".into()),
            );
        }
        // Where the code declares the resource, and the fixer's edit of it: shown by explain
        // and a dry run, so a change of code is seen before one is proposed.
        if options.effect.is_dry_run() {
            self.trace_code(sandbox, entry).await;
        }

        let decision = self.decide(&plan, entry).await;
        let (verdict, reason) = (decision.verdict, decision.reason.clone());
        let restricted = decision.only_environment_restricted();
        let guardrails = unoverridable(&decision);
        entry.decision = recorded(decision, DecisionStage::Decide);
        match (verdict, self.approval) {
            (Verdict::Skip, _) => return (Status::Skipped, reason),
            (Verdict::Remediate, None) => {}
            (Verdict::Review, None) => {
                // Live changes are not allowed there; a change of the code still is, and a
                // person reviews it as a pull request.
                if restricted && options.effect == Effect::Apply {
                    if let Ok(landed) = self.pull_request_only(sandbox, entry).await {
                        return landed;
                    }
                }
                return (Status::Review, reason);
            }
            (_, Some(a)) => {
                if !guardrails.is_empty() {
                    return (
                        Status::Review,
                        Some(format!(
                            "the approval by {} was not applied: an approval cannot override {}",
                            a.request.by,
                            guardrails.join("; ")
                        )),
                    );
                }
                let changed = plan != a.pending.plan;
                if changed && !a.request.accept_new_plan {
                    return (
                        Status::Review,
                        Some(format!(
                            "the approval by {} was not applied: the plan changed since it was reviewed; reviewed: {}; now: {}; approve again with --accept-new-plan to apply the new one",
                            a.request.by,
                            text::bounded(&serde_json::to_string(&a.pending.plan).unwrap_or_default(), 2048),
                            text::bounded(&serde_json::to_string(&plan).unwrap_or_default(), 2048),
                        )),
                    );
                }
                entry.approval = Some(Approval {
                    by: a.request.by.clone(),
                    reason: a.request.reason.clone(),
                    approves: a.pending.record.clone(),
                    overrides: reason.filter(|_| verdict == Verdict::Review),
                    accepted_new_plan: changed,
                });
            }
        }
        self.land(options.effect, sandbox, &plan, compliant_before, entry)
            .await
    }
}

impl FindingRun<'_> {
    /// Traces the finding to its Terraform code and asks the fixer for the edit of it; the
    /// answer goes into `entry.iac`. Nothing is written anywhere: the edits are checked and
    /// applied to a copy in memory.
    async fn trace_code(&self, sandbox: &mut Sandbox, entry: &mut AuditEntry) {
        if self.pipeline.config.iac.terraform.is_empty() {
            return;
        }
        entry.iac = Some(self.propose(sandbox, crate::iac::checkout).await);
    }

    /// Traces the finding to its code in the checkout `checkout` gives, and asks the fixer for
    /// the edit of it, checked and applied in memory.
    pub(crate) async fn propose(
        &self,
        sandbox: &mut Sandbox,
        checkout: impl Fn(&crate::iac::Workspace) -> Result<std::path::PathBuf, String>,
    ) -> crate::iac::Traced {
        use crate::iac::{self, Change, Traced};
        let config = &self.pipeline.config.iac;
        let traced = iac::trace(config, self.finding, &self.pipeline.states, checkout)
            .await
            .unwrap_or_else(|reason| Traced::Unreadable { reason });
        let Traced::Located {
            workspace,
            address,
            location,
            repository,
            ..
        } = traced
        else {
            return traced;
        };
        let blocks: Vec<crate::capabilities::LocatedBlock> = location
            .blocks()
            .map(|b| crate::capabilities::LocatedBlock {
                address: b.address.clone(),
                resource_type: b.resource_type.clone(),
                file: b.file.display().to_string(),
                text: b.text.clone(),
            })
            .collect();
        let change = if !sandbox.exports_terraform() {
            Change::NotOffered {
                reason: format!(
                    "fixer {:?} does not export terraform",
                    self.fixer.manifest.name
                ),
            }
        } else {
            match sandbox.terraform_edits(&blocks).await {
                Ok(None) => Change::NotOffered {
                    reason: format!(
                        "fixer {:?} does not edit Terraform",
                        self.fixer.manifest.name
                    ),
                },
                Ok(Some(edits)) => {
                    let shared = address != location.resource.address
                        && edits
                            .iter()
                            .any(|e| edit_target(e) == location.resource.address);
                    if shared {
                        Change::Refused {
                            reason: format!(
                                "{address} is one instance of {}, whose block declares every instance; editing the block would change them all",
                                location.resource.address
                            ),
                        }
                    } else {
                        match iac::edit::apply(&repository, &location, &edits) {
                            Ok(files) => {
                                let forces = self
                                    .fixer
                                    .resource_type
                                    .terraform
                                    .as_ref()
                                    .map_or(&[][..], |t| t.forces_replacement);
                                Change::Proposed {
                                    forces_replacement: iac::edit::replaced_attributes(
                                        &location, &edits, forces,
                                    ),
                                    files,
                                }
                            }
                            Err(reason) => Change::Refused { reason },
                        }
                    }
                }
                Err(e) => Change::Refused {
                    reason: format!("terraform: {e}"),
                },
            }
        };
        Traced::Located {
            workspace,
            address,
            location,
            change: Some(change),
            repository,
        }
    }
}

/// The located block an edit names.
fn edit_target(edit: &crate::capabilities::Edit) -> &str {
    use crate::capabilities::Edit;
    match edit {
        Edit::Replace(b) | Edit::InsertAfter(b) => &b.address,
        Edit::Remove(address) => address,
    }
}
