//! One batch of queue messages, processed concurrently with a bound. A message is acknowledged
//! only after the audit record of every finding in it is durable; it is retried only when a
//! failure was retryable (throttling, 5xx) or its records could not be written. Malformed and
//! ineligible messages are recorded and acknowledged: delivering them again cannot help.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::audit::{AuditEntry, Status};
use crate::pipeline::{Origin, Pipeline, Prepared, ProcessOptions, Redelivery};

/// A message as a queue delivers it.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Every finding in it has its terminal record on disk; delete it.
    Ack,
    /// Leave it on the queue (or report it as a batch item failure) so it comes back.
    Retry { reason: String },
}

#[derive(Debug, Clone)]
pub struct MessageResult {
    pub id: String,
    pub disposition: Disposition,
    /// The status of every record written for it (none for a recognised redelivery).
    pub statuses: Vec<Status>,
    /// The reason of every record written for it, in order. The records themselves are dropped
    /// once written (a caller that wants them passes an observer), so a batch of thousands does
    /// not hold every record until its last message ends.
    pub reasons: Vec<Option<String>>,
    /// Deliveries recognised as already handled or in flight, and so not processed again.
    pub redeliveries: Vec<Redelivery>,
    /// From the start of its processing until its records were durable.
    pub elapsed: Duration,
}

impl MessageResult {
    /// A message that was not processed (or whose records could not be written): retried.
    pub(crate) fn abandoned(id: String, reason: String, elapsed: Duration) -> MessageResult {
        MessageResult {
            id,
            disposition: Disposition::Retry { reason },
            statuses: Vec::new(),
            reasons: Vec::new(),
            redeliveries: Vec::new(),
            elapsed,
        }
    }
}

/// Why a message was handed back unprocessed when its batch's time ran out.
pub(crate) const NOT_STARTED_BEFORE_DEADLINE: &str =
    "not started: too little time was left before the invocation's deadline";

/// Processes `messages` with at most `max_concurrency` in flight, and returns one result per
/// message in the order given.
pub async fn process_batch(
    pipeline: Arc<Pipeline>,
    messages: Vec<QueueMessage>,
    max_concurrency: usize,
) -> Vec<MessageResult> {
    process_batch_until(pipeline, messages, max_concurrency, "sqs", None).await
}

/// How many of a batch's messages are ingested and grouped into shared read sessions at a
/// time, just before they start. A group holds at most about 70 resources (STS's session policy
/// size), so a larger window would save few sessions, and it would delay the batch's first
/// message and hold every message's findings in memory at once (a Lambda batch can be 10,000).
const PREPARE_WINDOW: usize = 256;

/// [`process_batch`] for messages that came `via` a queue (`sqs`) or a topic (`sns`), starting
/// no message after `cutoff`: a message still waiting for a worker then is handed back
/// unprocessed (a retry), so the batch finishes before its deadline.
///
/// The findings of the batch's messages share read sessions (see [`Pipeline::prepare`]), so a
/// queue that delivers one finding a message pays one read session per group, not per finding.
pub async fn process_batch_until(
    pipeline: Arc<Pipeline>,
    messages: Vec<QueueMessage>,
    max_concurrency: usize,
    via: &'static str,
    cutoff: Option<Instant>,
) -> Vec<MessageResult> {
    let slots = Slots {
        limit: max_concurrency.max(1),
        cutoff,
    };
    let preparer = pipeline.clone();
    collect_batch(
        messages,
        slots,
        move |window| prepare(&preparer, window),
        move |(id, prepared)| {
            let pipeline = pipeline.clone();
            async move { process_prepared(&pipeline, id, prepared, via, &mut |_| ()).await }
        },
    )
    .await
}

/// Ingests `messages` together, so their findings share read sessions; each comes back with
/// its ID.
pub(crate) fn prepare(pipeline: &Pipeline, messages: Vec<QueueMessage>) -> Vec<(String, Prepared)> {
    let (ids, bodies): (Vec<String>, Vec<Vec<u8>>) =
        messages.into_iter().map(|m| (m.id, m.body)).unzip();
    ids.into_iter().zip(pipeline.prepare(bodies)).collect()
}

/// How a batch's messages are started: how many at once, and after which moment none is.
#[derive(Clone, Copy)]
struct Slots {
    limit: usize,
    cutoff: Option<Instant>,
}

/// Runs `process` on each message under `slots`, one result per message in the order given.
/// Messages are handed to `prepare` a window at a time, just before the first of them starts. A
/// message whose processing ended abnormally (a panic) before its record was written comes back
/// as a retry.
async fn collect_batch<T, W, P, F>(
    messages: Vec<QueueMessage>,
    slots: Slots,
    prepare: W,
    process: P,
) -> Vec<MessageResult>
where
    T: Send + 'static,
    W: FnMut(Vec<QueueMessage>) -> Vec<T> + Send + 'static,
    P: Fn(T) -> F + Send + Sync + 'static,
    F: Future<Output = MessageResult> + Send + 'static,
{
    // The loop that collects finished messages and starts the next runs as a task of the
    // runtime, not on the caller's thread: `block_on` (Lambda's handler, a bench) polls on a
    // thread outside the runtime's workers, and every message that ends would wake it with a
    // futex call and a context switch.
    let ids: Arc<[String]> = messages.iter().map(|m| m.id.clone()).collect();
    let batch = run_batch(messages, ids.clone(), slots, prepare, process);
    let results = match tokio::spawn(batch).await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!("a batch ended abnormally: {e}");
            vec![None; ids.len()]
        }
    };
    results
        .into_iter()
        .zip(ids.iter())
        .map(|(r, id)| {
            r.unwrap_or_else(|| {
                MessageResult::abandoned(id.clone(), ENDED_ABNORMALLY.into(), Duration::ZERO)
            })
        })
        .collect()
}

/// Why a message whose processing panicked is handed back.
const ENDED_ABNORMALLY: &str = "processing ended abnormally before the audit record was written";

/// Each message's result, in the order given; `None` where its task ended abnormally.
async fn run_batch<T, W, P, F>(
    messages: Vec<QueueMessage>,
    ids: Arc<[String]>,
    slots: Slots,
    mut prepare: W,
    process: P,
) -> Vec<Option<MessageResult>>
where
    T: Send + 'static,
    W: FnMut(Vec<QueueMessage>) -> Vec<T> + Send + 'static,
    P: Fn(T) -> F + Send + Sync + 'static,
    F: Future<Output = MessageResult> + Send + 'static,
{
    // A message's task is spawned only when a slot is free, not all up front behind a semaphore:
    // each task holds the whole pipeline's state (about 17 KB), so a 10,000-message batch
    // spawned at once held 170 MB of waiting tasks.
    let Slots { limit, cutoff } = slots;
    let mut results: Vec<Option<MessageResult>> = vec![None; messages.len()];
    let mut unprepared = messages.into_iter();
    let mut ready: std::collections::VecDeque<T> = Default::default();
    let mut next = 0;
    let mut tasks = JoinSet::new();
    let mut spawn_next = |tasks: &mut JoinSet<(usize, MessageResult)>| {
        if ready.is_empty() {
            let window: Vec<QueueMessage> = unprepared.by_ref().take(PREPARE_WINDOW).collect();
            if window.is_empty() {
                return false;
            }
            ready.extend(prepare(window));
        }
        let Some(job) = ready.pop_front() else {
            return false;
        };
        let index = next;
        next += 1;
        if cutoff.is_some_and(|c| Instant::now() >= c) {
            let result = MessageResult::abandoned(
                ids[index].clone(),
                NOT_STARTED_BEFORE_DEADLINE.into(),
                Duration::ZERO,
            );
            tasks.spawn(async move { (index, result) });
            return true;
        }
        let work = process(job);
        tasks.spawn(async move { (index, work.await) });
        true
    };
    while tasks.len() < limit && spawn_next(&mut tasks) {}
    while let Some(joined) = tasks.join_next().await {
        spawn_next(&mut tasks);
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            // A panic inside one message must not take the batch down; the message comes back.
            Err(e) => tracing::error!("a message task ended abnormally: {e}"),
        }
    }
    results
}

/// Processes one message from a queue on its own (a dead-letter replay): the queue-facing half
/// of the pipeline. It logs one line with its ID and outcome, and names it in every record.
pub async fn process_message(pipeline: &Pipeline, message: QueueMessage) -> MessageResult {
    let prepared = pipeline.prepare_one(message.body);
    process_prepared(pipeline, message.id, prepared, "sqs", &mut |_| ()).await
}

fn log_settled(result: &MessageResult) {
    let statuses: Vec<&str> = result.statuses.iter().map(|s| s.as_str()).collect();
    match &result.disposition {
        Disposition::Ack => tracing::info!(
            message_id = %result.id,
            outcome = "acknowledged",
            statuses = ?statuses,
            redeliveries = result.redeliveries.len(),
            "message settled"
        ),
        Disposition::Retry { reason } => tracing::warn!(
            message_id = %result.id,
            outcome = "retry",
            statuses = ?statuses,
            "message settled: {reason}"
        ),
    }
}

/// Processes one prepared message that came `via` a queue or a topic, shows `observe` every
/// record written for it, and logs one line with its ID and outcome.
pub(crate) async fn process_prepared(
    pipeline: &Pipeline,
    id: String,
    prepared: Prepared,
    via: &'static str,
    observe: &mut (dyn FnMut(&AuditEntry) + Send),
) -> MessageResult {
    let started = Instant::now();
    let options = ProcessOptions {
        origin: Origin::Queue,
        ..ProcessOptions::default()
    };
    let delivery = crate::audit::DeliveryInfo {
        via: via.to_string(),
        message_id: id.clone(),
    };
    let mut processed = Vec::new();
    let outcome = pipeline
        .process_prepared_each(prepared, options, Some(&delivery), |p| processed.push(p))
        .await;
    let result = match outcome {
        Ok(()) => settle(id, processed, started, observe),
        Err(e) => MessageResult::abandoned(
            id,
            format!("the audit record could not be written: {e:#}"),
            started.elapsed(),
        ),
    };
    log_settled(&result);
    result
}

/// A message whose every record is durable: acknowledged, unless a finding in it failed in a
/// way a retry can help.
fn settle(
    id: String,
    processed: Vec<crate::pipeline::Processed>,
    started: Instant,
    observe: &mut (dyn FnMut(&AuditEntry) + Send),
) -> MessageResult {
    let retryable: Vec<String> = processed
        .iter()
        .filter(|p| p.entry.retryable)
        .map(|p| {
            format!(
                "{}: {}",
                p.entry.finding_id.as_deref().unwrap_or("?"),
                p.entry.reason.as_deref().unwrap_or("retryable failure")
            )
        })
        .collect();
    let mut result = MessageResult {
        id,
        disposition: if retryable.is_empty() {
            Disposition::Ack
        } else {
            Disposition::Retry {
                reason: retryable.join("; "),
            }
        },
        statuses: Vec::new(),
        reasons: Vec::new(),
        redeliveries: Vec::new(),
        elapsed: started.elapsed(),
    };
    for p in processed {
        match p.redelivery {
            Some(r) => result.redeliveries.push(r),
            None => {
                observe(&p.entry);
                result.statuses.extend(p.entry.status);
                result.reasons.push(p.entry.reason);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: usize) -> Vec<QueueMessage> {
        (0..n)
            .map(|i| QueueMessage {
                id: format!("m{i}"),
                body: Vec::new(),
            })
            .collect()
    }

    fn acknowledged(id: String) -> MessageResult {
        MessageResult {
            id,
            disposition: Disposition::Ack,
            statuses: vec![Status::Remediated],
            reasons: vec![None],
            redeliveries: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// A message whose processing panics comes back as a retry, in its place, and the rest of the
    /// batch (including the messages started after the panic freed its slot) still settles.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_message_is_retried_and_the_batch_goes_on() {
        let slots = Slots {
            limit: 2,
            cutoff: None,
        };
        let results = collect_batch(
            messages(6),
            slots,
            |w| w,
            |message| async move {
                if message.id == "m1" {
                    panic!("a bug in one message's processing");
                }
                acknowledged(message.id)
            },
        )
        .await;
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "m5"]);
        for (i, r) in results.iter().enumerate() {
            if i == 1 {
                assert_eq!(
                    r.disposition,
                    Disposition::Retry {
                        reason: ENDED_ABNORMALLY.into()
                    }
                );
                assert!(r.statuses.is_empty());
            } else {
                assert_eq!(r.disposition, Disposition::Ack, "{}", r.id);
            }
        }
    }

    /// The containment above needs unwinding in the shipped binary. cargo-lambda's release
    /// build switches to `panic = "abort"` unless the workspace's release profile names a
    /// strategy, so the profile must keep naming `unwind`.
    #[test]
    fn the_release_profile_keeps_unwinding_for_cargo_lambda() {
        let manifest = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
        let manifest: toml::Table = toml::from_str(manifest).expect("the workspace Cargo.toml");
        let panic = manifest
            .get("profile")
            .and_then(|p| p.get("release"))
            .and_then(|r| r.get("panic"))
            .and_then(|p| p.as_str());
        assert_eq!(
            panic,
            Some("unwind"),
            "[profile.release] panic in Cargo.toml"
        );
    }

    /// Past the cutoff no message is started: each comes back unprocessed, as a retry.
    #[tokio::test]
    async fn nothing_starts_after_the_cutoff() {
        let slots = Slots {
            limit: 4,
            cutoff: Some(Instant::now()),
        };
        let results = collect_batch(
            messages(3),
            slots,
            |w| w,
            |message| async move { panic!("{} was started after the cutoff", message.id) },
        )
        .await;
        assert!(results.iter().all(|r| r.disposition
            == Disposition::Retry {
                reason: NOT_STARTED_BEFORE_DEADLINE.into()
            }));
    }
}
