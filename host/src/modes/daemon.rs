//! The long-running SQS consumer (`salve daemon`). It long-polls, keeps at most `max_in_flight`
//! messages received and not yet settled, extends their visibility while they are worked on,
//! and deletes a message only after the batch core says its records are durable. On shutdown it
//! stops receiving, lets running messages finish within a grace period, and makes every other
//! received message visible again, so nothing waits out a visibility timeout for a dead process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, QueueAttributeName,
};
use aws_sdk_sqs::Client as SqsClient;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::batch::{prepare, process_prepared, Disposition, QueueMessage};
use crate::aws::{describe_aws_error, to_aws_error};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Prepared, Redelivery};

/// How soon a copy of an in-flight finding comes back.
const IN_FLIGHT_COPY_DELAY_SECS: i32 = 5;

/// How long shutdown waits for deletes already queued, past the workers' own grace.
const DELETER_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub queue_url: String,
    /// Messages received and not yet deleted or released.
    pub max_in_flight: usize,
    /// Messages processed at the same time (each may hold several findings).
    pub max_concurrency: usize,
    /// Long-poll wait per receive (SQS allows at most 20 s).
    pub wait_time: Duration,
    /// The visibility timeout to receive with and to extend by; `None` reads the queue's own.
    pub visibility_timeout: Option<Duration>,
    /// How long running messages may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Exit once a receive finds the queue empty and nothing is in flight.
    pub drain: bool,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            queue_url: String::new(),
            max_in_flight: 64,
            max_concurrency: 8,
            wait_time: Duration::from_secs(20),
            visibility_timeout: None,
            shutdown_grace: Duration::from_secs(20),
            drain: false,
        }
    }
}

/// How many free in-flight slots the daemon waits for before it receives again. With the
/// window full, receiving whenever one message settles would take one message a receive: a
/// ReceiveMessage each, and a finding with no one to share a read session with. So it waits for
/// a full SQS batch (10), but only as long as the messages it still holds beyond the running
/// ones keep every worker busy meanwhile.
fn receive_batch(options: &DaemonOptions) -> usize {
    options
        .max_in_flight
        .saturating_sub(options.max_concurrency)
        .clamp(1, 10)
}

/// What a run did, for the log line at exit.
#[derive(Debug, Default, Clone)]
pub struct DaemonReport {
    pub received: u64,
    pub acknowledged: u64,
    pub retried: u64,
    pub released: u64,
    pub receive_errors: u64,
}

/// Whether the daemon is serving, for `/healthz`.
#[derive(Default)]
pub struct Health {
    stopping: std::sync::atomic::AtomicBool,
    /// Receives that failed in a row; reset by the next one that works.
    failed_receives: std::sync::atomic::AtomicU32,
}

/// After this many failed receives in a row the daemon is not doing its job, and says so.
const UNHEALTHY_AFTER_FAILED_RECEIVES: u32 = 3;

impl Health {
    pub fn is_serving(&self) -> bool {
        self.problem().is_none()
    }

    /// Why `/healthz` should answer 503, if it should.
    pub fn problem(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.stopping.load(Relaxed) {
            return Some("stopping".into());
        }
        let failed = self.failed_receives.load(Relaxed);
        (failed >= UNHEALTHY_AFTER_FAILED_RECEIVES)
            .then(|| format!("receiving from the queue failed {failed} times in a row"))
    }

    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn receive_result(&self, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if ok {
            self.failed_receives.store(0, Relaxed);
        } else {
            self.failed_receives.fetch_add(1, Relaxed);
        }
    }
}

/// Receipt handles of the messages this process holds, by message ID.
type Held = Arc<Mutex<HashMap<String, String>>>;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs until `shutdown` resolves (or, with `drain`, until the queue is empty).
pub async fn run(
    pipeline: Arc<Pipeline>,
    sqs: SqsClient,
    options: DaemonOptions,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<DaemonReport> {
    let visibility = match options.visibility_timeout {
        Some(v) => v,
        None => queue_visibility_timeout(&sqs, &options.queue_url).await?,
    };
    let visibility_secs = visibility.as_secs().clamp(1, 12 * 60 * 60) as i32;
    let wait_secs = options.wait_time.as_secs().min(20) as i32;
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let workers = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
    let held: Held = Arc::default();
    let (stopping_tx, stopping) = watch::channel(false);
    let mut report = DaemonReport::default();
    let mut tasks = JoinSet::new();

    let extender = tokio::spawn(extend_visibility(
        sqs.clone(),
        options.queue_url.clone(),
        held.clone(),
        visibility_secs,
    ));
    // Bounded without a bound of its own: a worker holds its in-flight permit until its
    // message is deleted.
    let (deletions, deletions_queue) = mpsc::unbounded_channel();
    let deleter = {
        let (sqs, queue_url) = (sqs.clone(), options.queue_url.clone());
        tokio::spawn(run_deleter(deletions_queue, move |receipts| {
            let (sqs, queue_url) = (sqs.clone(), queue_url.clone());
            async move { delete_batch(&sqs, &queue_url, receipts).await }
        }))
    };
    tracing::info!(queue_url = %options.queue_url, visibility_secs, "daemon started");

    // /healthz answers 503 the moment shutdown begins, not when the current long poll returns.
    let shutdown = {
        let health = health.clone();
        async move {
            shutdown.await;
            health.stop();
        }
    };
    tokio::pin!(shutdown);
    let mut consecutive_errors = 0u32;
    let mut last_depth: Option<QueueDepth> = None;
    loop {
        while let Some(joined) = tasks.try_join_next() {
            tally(&mut report, joined);
        }
        metrics.set_in_flight(options.max_in_flight.max(1) - in_flight.available_permits());
        let free = in_flight.available_permits();
        let batch = receive_batch(&options);
        if free < batch {
            // Wait until that many have settled (not for one: with some free, that would
            // return at once and spin).
            let room = in_flight.clone().acquire_many_owned(batch as u32);
            tokio::select! {
                _ = &mut shutdown => break,
                permits = room => { drop(permits); continue; }
            }
        }
        let receive = sqs
            .receive_message()
            .queue_url(&options.queue_url)
            .max_number_of_messages(free.min(10) as i32)
            .wait_time_seconds(wait_secs)
            .visibility_timeout(visibility_secs)
            .send();
        tokio::pin!(receive);
        let received = tokio::select! {
            r = &mut receive => r,
            _ = &mut shutdown => {
                // The receive may already have taken messages off the queue. Dropping it would
                // hide them for a whole visibility timeout, so wait for its answer (at most the
                // long-poll wait) and hand them straight back.
                if let Ok(out) = receive.await {
                    let taken: Vec<(String, String)> = out
                        .messages
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|m| Some((m.message_id?, m.receipt_handle?)))
                        .collect();
                    if !taken.is_empty() {
                        release(&sqs, &options.queue_url, &taken).await;
                        // Received and released: the counters add up (received = acknowledged
                        // + retried + released).
                        report.received += taken.len() as u64;
                        report.released += taken.len() as u64;
                        metrics.released(taken.len());
                    }
                }
                break;
            }
        };
        let messages = match received {
            Ok(out) => {
                consecutive_errors = 0;
                health.receive_result(true);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                health.receive_result(false);
                metrics.receive_error();
                report.receive_errors += 1;
                consecutive_errors += 1;
                let backoff = Duration::from_millis(100 << consecutive_errors.min(6));
                tracing::warn!(
                    "receiving from the queue failed ({}); trying again in {backoff:?}",
                    queue_error(e)
                );
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        if messages.is_empty() {
            // Messages waiting out a visibility timeout (a retry) still count as queued.
            if options.drain && tasks.is_empty() {
                let depth = queue_depth(&sqs, &options.queue_url).await;
                if depth == Some(QueueDepth::default()) {
                    tracing::info!("the queue is empty and nothing is in flight; draining is done");
                    break;
                }
                // Said whenever it changes, so a drain that waits (a retry left to come back
                // after the visibility timeout, a message another consumer holds) says why.
                if depth != last_depth {
                    match depth {
                        Some(d) => tracing::info!(
                            visible = d.visible,
                            not_visible = d.not_visible,
                            delayed = d.delayed,
                            "draining: nothing here is in flight, but the queue is not empty; messages not visible are retries waiting out their visibility timeout or messages another consumer holds"
                        ),
                        None => tracing::warn!(
                            "draining: the queue's depth could not be read; receiving again"
                        ),
                    }
                    last_depth = depth;
                }
            }
            continue;
        }
        // Taken first, then prepared together: the findings of one receive share read
        // sessions (see `Pipeline::prepare`).
        let (mut taken, mut holds) = (Vec::new(), Vec::new());
        for message in messages {
            let (Some(id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
                tracing::warn!("the queue returned a message without an ID or receipt handle");
                continue;
            };
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                // Never more than asked for; if it happens, hand the message straight back.
                release(&sqs, &options.queue_url, &[(id, receipt)]).await;
                continue;
            };
            report.received += 1;
            lock(&held).insert(id.clone(), receipt.clone());
            let body = message.body.unwrap_or_default().into_bytes();
            taken.push(QueueMessage { id, body });
            holds.push((receipt, permit));
        }
        for ((id, prepared), (receipt, permit)) in prepare(&pipeline, taken).into_iter().zip(holds)
        {
            let job = MessageJob {
                pipeline: pipeline.clone(),
                sqs: sqs.clone(),
                queue_url: options.queue_url.clone(),
                held: held.clone(),
                metrics: metrics.clone(),
                deletions: deletions.clone(),
                id: id.clone(),
                prepared,
                receipt,
            };
            let workers = workers.clone();
            let mut stopping = stopping.clone();
            let span = tracing::info_span!("message", message_id = %id);
            tasks.spawn(
                async move {
                    let _permit = permit;
                    let worker = tokio::select! {
                        w = workers.acquire_owned() => w,
                        _ = stopping.wait_for(|s| *s) => return Settled::Unstarted,
                    };
                    let _worker = worker;
                    // Boxed: the job's future is deep, and the task holds it.
                    let run: crate::capabilities::BoxFuture<'_, _> = Box::pin(job.run());
                    run.await
                }
                .instrument(span),
            );
        }
    }

    // Shutdown: no more receives. Messages still waiting for a worker give themselves back;
    // running ones get the grace period.
    health.stop();
    let _ = stopping_tx.send(true);
    tracing::info!(
        in_flight = lock(&held).len(),
        "stopping: no more receives; finishing in-flight messages"
    );
    let finished = tokio::time::timeout(options.shutdown_grace, async {
        while let Some(joined) = tasks.join_next().await {
            tally(&mut report, joined);
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            "in-flight messages did not finish within {:?}; releasing them",
            options.shutdown_grace
        );
        tasks.abort_all();
        while let Some(joined) = tasks.join_next().await {
            tally(&mut report, joined);
        }
    }
    extender.abort();
    // The deleter ends once every worker's sender is gone, after the deletes already queued.
    drop(deletions);
    if tokio::time::timeout(DELETER_GRACE, deleter).await.is_err() {
        tracing::warn!(
            "deleting settled messages did not finish within {DELETER_GRACE:?}; they come back after their visibility timeout and the ledger recognises them"
        );
    }
    // Whatever is still held was not settled: make it visible again now.
    let leftover: Vec<(String, String)> = lock(&held).drain().collect();
    if !leftover.is_empty() {
        release(&sqs, &options.queue_url, &leftover).await;
    }
    report.released += leftover.len() as u64;
    metrics.released(leftover.len());
    metrics.set_in_flight(0);
    tracing::info!(
        received = report.received,
        acknowledged = report.acknowledged,
        retried = report.retried,
        released = report.released,
        "daemon stopped"
    );
    Ok(report)
}

enum Settled {
    Acknowledged,
    Retried,
    /// Shut down before it started; still held, so it is released.
    Unstarted,
}

fn tally(report: &mut DaemonReport, joined: Result<Settled, tokio::task::JoinError>) {
    match joined {
        Ok(Settled::Acknowledged) => report.acknowledged += 1,
        Ok(Settled::Retried) => report.retried += 1,
        Ok(Settled::Unstarted) | Err(_) => {}
    }
}

struct MessageJob {
    pipeline: Arc<Pipeline>,
    sqs: SqsClient,
    queue_url: String,
    held: Held,
    metrics: Arc<Metrics>,
    deletions: mpsc::UnboundedSender<Deletion>,
    id: String,
    prepared: Prepared,
    receipt: String,
}

impl MessageJob {
    async fn run(self) -> Settled {
        let id = self.id.clone();
        let metrics = &self.metrics;
        let result = process_prepared(
            &self.pipeline,
            self.id,
            self.prepared,
            "sqs",
            &mut |record| metrics.observe_record(record),
        )
        .await;
        metrics.observe_message(&result);
        // From here on the extender must leave it alone: it is either deleted or left to time out.
        lock(&self.held).remove(&id);
        match result.disposition {
            Disposition::Ack => {
                let (done, deleted) = oneshot::channel();
                let deletion = Deletion {
                    id,
                    receipt: self.receipt,
                    _done: done,
                };
                // The deleter outlives every worker (it ends when their senders are gone), so a
                // failed send means it died; the message then comes back after its visibility
                // timeout and the ledger recognises it.
                match self.deletions.send(deletion) {
                    Ok(()) => {
                        let _ = deleted.await;
                    }
                    Err(unsent) => tracing::error!(
                        message_id = %unsent.0.id,
                        "the deleter has stopped: this settled message was not deleted and will be delivered again; restart the daemon"
                    ),
                }
                Settled::Acknowledged
            }
            Disposition::Retry { .. } => {
                // A copy of a finding another task is still working on needs no long backoff:
                // bring it back soon, when the ledger will know the outcome.
                let only_in_flight_copies = result.reasons.is_empty()
                    && !result.redeliveries.is_empty()
                    && result
                        .redeliveries
                        .iter()
                        .all(|r| *r == Redelivery::InFlight);
                if only_in_flight_copies {
                    change_visibility(
                        &self.sqs,
                        &self.queue_url,
                        &[(id, self.receipt)],
                        IN_FLIGHT_COPY_DELAY_SECS,
                    )
                    .await;
                }
                Settled::Retried
            }
        }
    }
}

/// A settled message for the deleter.
struct Deletion {
    id: String,
    receipt: String,
    /// Dropped once the deleter is done with the message, which is what the worker waits for.
    _done: oneshot::Sender<()>,
}

/// One entry of a DeleteMessageBatch call that failed, by its index in the call.
#[derive(Debug, Clone)]
struct EntryFailure {
    index: usize,
    why: String,
    /// SQS's fault (throttling, an internal error), not the request's: worth another try.
    retry: bool,
}

/// What a DeleteMessageBatch call did: the entries that failed, or why the whole call failed.
type BatchOutcome = Result<Vec<EntryFailure>, String>;

const DELETE_ATTEMPTS: u32 = 3;

/// Deletes the settled messages of every worker, one DeleteMessageBatch call at a time, each
/// taking whatever settled while the call before it was out (at most 10). Under load that is a
/// call for several messages instead of one each, and with one message waiting it goes at once:
/// there is no timer. The cost is that a message's delete may wait for one call in flight.
///
/// One caller at a time also matters for moto server: its DeleteMessage rebuilds the queue's
/// message list without a lock, so two deletes that overlap can bring one deleted message back
/// (`scripts/moto-delete-race.sh` shows it). That message returned after its visibility timeout,
/// and a `--drain` run waited for it (issue 18, target 9). SQS itself does not lose deletes.
///
/// A message whose delete fails for good comes back after its visibility timeout, and the
/// idempotency ledger recognises it, so nothing is redone.
async fn run_deleter<F, Fut>(mut queue: mpsc::UnboundedReceiver<Deletion>, delete_batch: F)
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = BatchOutcome>,
{
    let mut taken = Vec::with_capacity(10);
    while queue.recv_many(&mut taken, 10).await > 0 {
        let mut pending = std::mem::take(&mut taken);
        for attempt in 1..=DELETE_ATTEMPTS {
            let receipts = pending.iter().map(|d| d.receipt.clone()).collect();
            let failures = match delete_batch(receipts).await {
                Ok(failures) => failures,
                Err(why) => (0..pending.len())
                    .map(|index| EntryFailure {
                        index,
                        why: why.clone(),
                        retry: true,
                    })
                    .collect(),
            };
            let mut again = Vec::new();
            for failure in failures {
                let Some(deletion) = pending.get(failure.index) else {
                    continue;
                };
                tracing::warn!(
                    message_id = %deletion.id,
                    attempt,
                    "deleting a settled message failed: {}",
                    failure.why
                );
                if failure.retry && attempt < DELETE_ATTEMPTS {
                    again.push(failure.index);
                }
            }
            if again.is_empty() {
                break;
            }
            // Those not tried again (deleted, or refused for good) are done with.
            pending = pending
                .into_iter()
                .enumerate()
                .filter(|(i, _)| again.contains(i))
                .map(|(_, d)| d)
                .collect();
            // Holds up the messages settled meanwhile too; a failing SQS fails them as well.
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
    }
}

/// The ID of a batch call's `index`th entry; SQS names failed entries by it.
fn batch_entry_id(index: usize) -> String {
    format!("m{index}")
}

/// The index a failed entry's ID ([`batch_entry_id`]) names.
fn batch_entry_index(id: &str) -> Option<usize> {
    id.strip_prefix('m')?.parse().ok()
}

/// One DeleteMessageBatch call; entry IDs are the receipts' indexes.
async fn delete_batch(sqs: &SqsClient, queue_url: &str, receipts: Vec<String>) -> BatchOutcome {
    let mut entries = Vec::with_capacity(receipts.len());
    for (i, receipt) in receipts.into_iter().enumerate() {
        let entry = DeleteMessageBatchRequestEntry::builder()
            .id(batch_entry_id(i))
            .receipt_handle(receipt)
            .build()
            .map_err(|e| format!("building the DeleteMessageBatch request: {e}"))?;
        entries.push(entry);
    }
    let out = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(queue_error)?;
    Ok(out
        .failed
        .into_iter()
        .filter_map(|f| {
            Some(EntryFailure {
                index: batch_entry_index(&f.id)?,
                why: format!("{}: {}", f.code, f.message.unwrap_or_default()),
                retry: !f.sender_fault,
            })
        })
        .collect())
}

/// `code: message (request ID …)` for a failed queue call.
pub(crate) fn queue_error<E>(
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    describe_aws_error(&to_aws_error(e))
}

/// Makes messages visible again at once.
pub(crate) async fn release(sqs: &SqsClient, queue_url: &str, messages: &[(String, String)]) {
    change_visibility(sqs, queue_url, messages, 0).await;
}

async fn change_visibility(
    sqs: &SqsClient,
    queue_url: &str,
    messages: &[(String, String)],
    seconds: i32,
) {
    change_visibility_held(sqs, queue_url, messages, seconds, None).await
}

/// Changes the visibility of `messages`. With `held`, a failure for a message that is no longer
/// held is expected, not a problem: the extender takes its snapshot, then a worker settles and
/// deletes the message before the batch call lands, and SQS answers "the input receipt handle is
/// invalid" for the deleted message. Only failures for messages still held are warned about.
async fn change_visibility_held(
    sqs: &SqsClient,
    queue_url: &str,
    messages: &[(String, String)],
    seconds: i32,
    held: Option<&Held>,
) {
    for chunk in messages.chunks(10) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (_, receipt))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(batch_entry_id(i))
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        let sent = sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(out) if out.failed.is_empty() => {}
            Ok(out) => {
                let still_held = |entry_id: &str| {
                    let Some(held) = held else { return true };
                    batch_entry_index(entry_id)
                        .and_then(|i| chunk.get(i))
                        .is_some_and(|(id, _)| lock(held).contains_key(id))
                };
                let failed: Vec<String> = out
                    .failed
                    .iter()
                    .filter(|f| still_held(&f.id))
                    .map(|f| f.message.clone().unwrap_or_default())
                    .collect();
                if failed.is_empty() {
                    tracing::debug!(
                        count = out.failed.len(),
                        "messages settled while their visibility was being extended"
                    );
                } else {
                    tracing::warn!(
                        "changing the visibility of {} message(s) failed: {failed:?}",
                        failed.len()
                    );
                }
            }
            Err(e) => tracing::warn!(
                "changing the visibility of {} message(s) failed: {}",
                chunk.len(),
                queue_error(e)
            ),
        }
    }
}

/// Every half visibility timeout, pushes the timeout of every held message forward, so a fix
/// that runs long is not delivered a second time while it runs.
async fn extend_visibility(sqs: SqsClient, queue_url: String, held: Held, visibility_secs: i32) {
    let period = Duration::from_millis((visibility_secs as u64 * 1000 / 2).max(500));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let messages: Vec<(String, String)> = lock(&held)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !messages.is_empty() {
            tracing::debug!(count = messages.len(), "extending message visibility");
            change_visibility_held(&sqs, &queue_url, &messages, visibility_secs, Some(&held)).await;
        }
    }
}

/// What a queue holds, by state; all zero is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct QueueDepth {
    visible: u64,
    /// Received and not yet deleted: in flight, or a retry waiting out its visibility timeout.
    not_visible: u64,
    delayed: u64,
}

/// The queue's depth by state, or `None` if the queue cannot say.
async fn queue_depth(sqs: &SqsClient, queue_url: &str) -> Option<QueueDepth> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .ok()?;
    let attributes = out.attributes?;
    // An attribute the service leaves out counts as none (as before this was split by state);
    // one it returns unreadable makes the depth unknown.
    let count = |name: QueueAttributeName| -> Option<u64> {
        attributes.get(&name).map_or(Some(0), |v| v.parse().ok())
    };
    Some(QueueDepth {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
        not_visible: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
    })
}

async fn queue_visibility_timeout(sqs: &SqsClient, queue_url: &str) -> Result<Duration> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(queue_error(e)))
        .with_context(|| format!("reading the visibility timeout of {queue_url}"))?;
    let seconds = out
        .attributes
        .as_ref()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30);
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_waits_for_a_full_receive_only_while_held_messages_keep_the_workers_busy() {
        let batch = |max_in_flight, max_concurrency| {
            receive_batch(&DaemonOptions {
                max_in_flight,
                max_concurrency,
                ..DaemonOptions::default()
            })
        };
        assert_eq!(batch(64, 8), 10, "the defaults: a full SQS batch");
        assert_eq!(batch(12, 8), 4, "four held beyond the eight running");
        assert_eq!(
            batch(8, 8),
            1,
            "nothing held beyond the running: as soon as one settles"
        );
        assert_eq!(batch(1, 8), 1);
        assert_eq!(batch(0, 0), 1);
    }

    /// Queues `receipts` as settled messages; the receivers resolve once the deleter is done
    /// with each.
    fn settle(
        queue: &mpsc::UnboundedSender<Deletion>,
        receipts: &[&str],
    ) -> Vec<oneshot::Receiver<()>> {
        receipts
            .iter()
            .map(|r| {
                let (done, handled) = oneshot::channel();
                let deletion = Deletion {
                    id: format!("id-{r}"),
                    receipt: r.to_string(),
                    _done: done,
                };
                assert!(queue.send(deletion).is_ok());
                handled
            })
            .collect()
    }

    /// Runs the deleter over what is queued, with `answer` standing in for SQS; returns the
    /// calls it made.
    async fn deleter_calls(
        receipts: &[&str],
        answer: impl Fn(&[String]) -> BatchOutcome,
    ) -> Vec<Vec<String>> {
        let (queue, taken) = mpsc::unbounded_channel();
        let handled = settle(&queue, receipts);
        drop(queue);
        let calls = Mutex::new(Vec::new());
        run_deleter(taken, |receipts: Vec<String>| {
            let outcome = answer(&receipts);
            calls.lock().unwrap().push(receipts);
            async move { outcome }
        })
        .await;
        for h in handled {
            assert!(h.await.is_err(), "every worker is told, by the drop");
        }
        calls.into_inner().unwrap()
    }

    #[tokio::test]
    async fn settled_messages_go_out_in_batches_of_what_has_queued_up() {
        let receipts: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
        let receipts: Vec<&str> = receipts.iter().map(String::as_str).collect();
        let calls = deleter_calls(&receipts, |_| Ok(vec![])).await;
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 2], "SQS takes at most 10 a call");
        assert_eq!(calls.concat(), receipts, "each once, in order");
    }

    #[tokio::test]
    async fn only_an_entry_sqs_failed_is_tried_again_and_a_refused_one_is_not() {
        let calls = deleter_calls(&["ok", "throttled", "invalid"], |receipts| {
            Ok(receipts
                .iter()
                .enumerate()
                .filter_map(|(index, r)| match r.as_str() {
                    "throttled" => Some(EntryFailure {
                        index,
                        why: "ThrottlingException".into(),
                        retry: true,
                    }),
                    "invalid" => Some(EntryFailure {
                        index,
                        why: "ReceiptHandleIsInvalid".into(),
                        retry: false,
                    }),
                    _ => None,
                })
                .collect())
        })
        .await;
        assert_eq!(
            calls,
            [
                vec!["ok", "throttled", "invalid"],
                vec!["throttled"],
                vec!["throttled"],
            ],
            "the throttled one alone, until the attempts run out"
        );
    }

    #[tokio::test]
    async fn a_failed_call_is_tried_again_then_left_to_the_visibility_timeout() {
        let calls = deleter_calls(&["a", "b"], |_| Err("connection refused".into())).await;
        assert_eq!(calls.len(), DELETE_ATTEMPTS as usize);
        assert!(calls.iter().all(|c| c == &["a", "b"]));
    }
}
