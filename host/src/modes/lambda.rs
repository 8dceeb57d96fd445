//! AWS Lambda mode. Two event shapes are accepted, each record decided on its own:
//!
//! - an SQS event (an event source mapping with `ReportBatchItemFailures`): the response lists
//!   the messages to retry; everything else was recorded and is deleted by Lambda. On a FIFO
//!   queue, a failed message and every later message of its group are listed, as AWS requires,
//!   and a group's messages run one after another;
//! - an SNS event (a topic subscribed to the function): SNS invokes asynchronously, so when any
//!   record must be retried the invocation fails and Lambda's own retry and on-failure
//!   destination take over; records already handled are recognised on the retry.
//!
//! Anything else (an S3 notification, an EventBridge event, a record without a body) is refused
//! with an error, which the runtime posts to `/error`: a record that was not read is never
//! acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde_json::Value;

use super::batch::{
    prepare, process_batch_until, process_prepared, Disposition, MessageResult, QueueMessage,
};
use crate::audit_sink::S3AuditSink;
use crate::pipeline::Pipeline;

/// One record of an invocation, read.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub body: Vec<u8>,
    /// The FIFO message group, for an SQS record from a FIFO queue.
    pub group: Option<String>,
}

/// What an invocation carries.
#[derive(Debug)]
pub enum Invocation {
    Sqs {
        records: Vec<Record>,
        /// Records whose message ID is known but whose body could not be read: retried, never
        /// acknowledged.
        unreadable: Vec<(String, String)>,
    },
    Sns(Vec<Record>),
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Reads an invocation's event. `Err` is the reason it is refused as a whole.
pub fn classify(event: &Value) -> Result<Invocation, String> {
    let Some(records) = event.get("Records").and_then(Value::as_array) else {
        return Err(
            "unsupported event: it has no Records array; salve accepts SQS and SNS events".into(),
        );
    };
    let source = |r: &Value| {
        str_at(r, "/eventSource")
            .or_else(|| str_at(r, "/EventSource"))
            .unwrap_or("(none)")
            .to_string()
    };
    let Some(first) = records.first() else {
        return Ok(Invocation::Sqs {
            records: Vec::new(),
            unreadable: Vec::new(),
        });
    };
    match source(first).as_str() {
        "aws:sqs" => {
            let (mut out, mut unreadable) = (Vec::new(), Vec::new());
            for (i, r) in records.iter().enumerate() {
                if source(r) != "aws:sqs" {
                    return Err(format!(
                        "unsupported event: record {i} has eventSource {} in an SQS event",
                        source(r)
                    ));
                }
                let Some(id) = str_at(r, "/messageId") else {
                    return Err(format!(
                        "SQS record {i} has no messageId, so it can be neither processed nor reported"
                    ));
                };
                match str_at(r, "/body") {
                    Some(body) => out.push(Record {
                        id: id.to_string(),
                        body: body.as_bytes().to_vec(),
                        group: str_at(r, "/attributes/MessageGroupId").map(str::to_string),
                    }),
                    None => unreadable.push((
                        id.to_string(),
                        format!("SQS record {i} has no body that could be read"),
                    )),
                }
            }
            Ok(Invocation::Sqs {
                records: out,
                unreadable,
            })
        }
        "aws:sns" => {
            let mut out = Vec::new();
            for (i, r) in records.iter().enumerate() {
                if source(r) != "aws:sns" {
                    return Err(format!(
                        "unsupported event: record {i} has EventSource {} in an SNS event",
                        source(r)
                    ));
                }
                let (Some(id), Some(sns)) = (str_at(r, "/Sns/MessageId"), r.get("Sns")) else {
                    return Err(format!("SNS record {i} has no Sns.MessageId"));
                };
                if str_at(sns, "/Message").is_none() {
                    return Err(format!("SNS record {i} has no Sns.Message"));
                }
                // The record's `Sns` object is an SNS notification, which ingest unwraps like
                // one delivered to a queue.
                out.push(Record {
                    id: id.to_string(),
                    body: serde_json::to_vec(sns).map_err(|e| e.to_string())?,
                    group: None,
                });
            }
            Ok(Invocation::Sns(out))
        }
        other => Err(format!(
            "unsupported event: eventSource {other}; salve accepts SQS and SNS events"
        )),
    }
}

/// How an invocation is run: its concurrency, and when to stop starting messages.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_concurrency: usize,
    /// No message is started after this; the rest are retried.
    pub cutoff: Option<Instant>,
}

impl Budget {
    /// From the invocation's deadline (milliseconds since the epoch, as the Runtime API's
    /// `Lambda-Runtime-Deadline-Ms` gives it) less `margin`: the time one message and the sink
    /// upload may still need.
    pub fn from_deadline(max_concurrency: usize, deadline_ms: u64, margin: Duration) -> Budget {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        // A deadline before 2001 cannot be a time: cargo-lambda's emulator sends the timeout
        // itself (milliseconds from now) where AWS sends the epoch time.
        const EPOCH_2001_MS: u64 = 978_307_200_000;
        let remaining = if deadline_ms < EPOCH_2001_MS {
            Duration::from_millis(deadline_ms)
        } else {
            Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        };
        if remaining <= margin {
            tracing::warn!(
                remaining_ms = remaining.as_millis() as u64,
                margin_ms = margin.as_millis() as u64,
                "less time is left than one message may need: no message is started; raise the function timeout or lower --wall-ms"
            );
        }
        Budget {
            max_concurrency,
            cutoff: Some(Instant::now() + remaining.saturating_sub(margin)),
        }
    }
}

/// Handles one invocation; `Err` fails it (the runtime posts the text to `/error`).
pub async fn handle(
    pipeline: Arc<Pipeline>,
    event: Value,
    budget: Budget,
    sink: Option<&S3AuditSink>,
) -> Result<Value, String> {
    let invocation = classify(&event).inspect_err(|e| tracing::error!("{e}"))?;
    match invocation {
        Invocation::Sqs {
            records,
            unreadable,
        } => {
            let fifo = records.iter().any(|r| r.group.is_some());
            let results = if fifo {
                fifo_batch(&pipeline, records, budget).await
            } else {
                concurrent(pipeline, records, budget, "sqs").await
            };
            let mut response = SqsBatchResponse::default();
            for id in retries(results, sink).await {
                response.add_failure(id);
            }
            for (id, reason) in unreadable {
                tracing::warn!(message_id = %id, "message will be retried: {reason}");
                response.add_failure(id);
            }
            serde_json::to_value(response).map_err(|e| e.to_string())
        }
        Invocation::Sns(records) => {
            let results = concurrent(pipeline, records, budget, "sns").await;
            let retry = retries(results, sink).await;
            if retry.is_empty() {
                Ok(serde_json::json!({}))
            } else {
                Err(format!(
                    "{} SNS record(s) must be retried ({}); Lambda retries the event, and records already handled are recognised",
                    retry.len(),
                    retry.join(", ")
                ))
            }
        }
    }
}

/// Records that need no order between them, with the batch core's bounded concurrency.
async fn concurrent(
    pipeline: Arc<Pipeline>,
    records: Vec<Record>,
    budget: Budget,
    via: &'static str,
) -> Vec<MessageResult> {
    let messages = records
        .into_iter()
        .map(|r| QueueMessage {
            id: r.id,
            body: r.body,
        })
        .collect();
    process_batch_until(
        pipeline,
        messages,
        budget.max_concurrency,
        via,
        budget.cutoff,
    )
    .await
}

/// A FIFO batch: each group's messages in order, one at a time; after a message that must be
/// retried, the rest of its group is not started and is retried too, so the group's order
/// holds. Groups take turns in the batch's order.
async fn fifo_batch(
    pipeline: &Pipeline,
    records: Vec<Record>,
    budget: Budget,
) -> Vec<MessageResult> {
    let mut stopped: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut results = Vec::with_capacity(records.len());
    let (groups, messages): (Vec<String>, Vec<QueueMessage>) = records
        .into_iter()
        .map(|r| {
            let message = QueueMessage {
                id: r.id,
                body: r.body,
            };
            (r.group.unwrap_or_default(), message)
        })
        .unzip();
    // One after another, but prepared together: their findings share read sessions.
    for (group, (id, prepared)) in groups.into_iter().zip(prepare(pipeline, messages)) {
        let late = budget.cutoff.is_some_and(|c| Instant::now() >= c);
        if stopped.contains(&group) || late {
            let reason = if late {
                super::batch::NOT_STARTED_BEFORE_DEADLINE
            } else {
                "not started: an earlier message of its FIFO group must be retried first"
            };
            stopped.insert(group);
            results.push(MessageResult::abandoned(id, reason.into(), Duration::ZERO));
            continue;
        }
        let result = process_prepared(pipeline, id, prepared, "sqs", &mut |_| ()).await;
        if matches!(result.disposition, Disposition::Retry { .. }) {
            stopped.insert(group);
        }
        results.push(result);
    }
    results
}

/// Ships the records to the sink, then names the messages to retry: a retryable outcome, or
/// any outcome whose records did not reach the sink.
async fn retries(results: Vec<MessageResult>, sink: Option<&S3AuditSink>) -> Vec<String> {
    let shipped = match sink {
        None => Ok(()),
        Some(sink) => sink.flush().await.map(|key| {
            if let Some(key) = key {
                tracing::info!(key = %key, "audit records shipped to {}", sink.location());
            }
        }),
    };
    let mut out = Vec::new();
    for result in results {
        let retry = match (&result.disposition, &shipped) {
            (Disposition::Retry { reason }, _) => Some(reason.clone()),
            (Disposition::Ack, Err(e)) => Some(format!(
                "its audit record is not yet in the durable sink: {e:#}"
            )),
            (Disposition::Ack, Ok(())) => None,
        };
        if let Some(reason) = retry {
            tracing::warn!(message_id = %result.id, "message will be retried: {reason}");
            out.push(result.id);
        }
    }
    out
}

/// Runs the Lambda runtime loop. The pipeline (fixers loaded and compiled) is built once, at
/// init, and shared by every invocation.
pub async fn run(
    pipeline: Arc<Pipeline>,
    max_concurrency: usize,
    deadline_margin: Duration,
    sink: Option<Arc<S3AuditSink>>,
) -> anyhow::Result<()> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let pipeline = pipeline.clone();
            let sink = sink.clone();
            async move {
                let budget =
                    Budget::from_deadline(max_concurrency, event.context.deadline, deadline_margin);
                handle(pipeline, event.payload, budget, sink.as_deref())
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_sqs_and_sns_events_are_accepted() {
        let s3 = json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]});
        assert!(classify(&s3).unwrap_err().contains("eventSource aws:s3"));
        let eventbridge = json!({"detail-type": "x", "detail": {}});
        assert!(classify(&eventbridge).unwrap_err().contains("no Records"));
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "MessageId": "n-1", "Message": "{}"}}]});
        assert!(matches!(classify(&sns), Ok(Invocation::Sns(r)) if r[0].id == "n-1"));
        let sqs = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m-1", "body": "{}", "attributes": {"MessageGroupId": "g"}},
            {"eventSource": "aws:sqs", "messageId": "m-2"}
        ]});
        match classify(&sqs).unwrap() {
            Invocation::Sqs {
                records,
                unreadable,
            } => {
                assert_eq!(records[0].group.as_deref(), Some("g"));
                assert_eq!(unreadable[0].0, "m-2");
            }
            other => panic!("{other:?}"),
        }
    }
}
