//! `salve replay`: takes messages off a dead-letter queue and either sends them back to the main
//! queue or processes them here. A message leaves the dead-letter queue only after it is safely
//! somewhere else (sent to the target, or its records durable); anything that fails stays. The
//! replay itself is written to the audit log, dry runs included.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client as SqsClient;
use serde::Serialize;
use serde_json::json;

use super::batch::{process_message, Disposition, QueueMessage};
use super::daemon::{queue_error, release};
use crate::audit::{sha256_hex, AuditEntry};
use crate::ingest;
use crate::pipeline::Pipeline;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub from: String,
    /// Send messages here; `None` processes them in this process.
    pub to: Option<String>,
    pub max: usize,
    /// List what would be replayed and change nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayedMessage {
    pub message_id: String,
    pub body_sha256: String,
    /// How often the queues had delivered it before this replay.
    pub receive_count: Option<u64>,
    /// The findings ingest sees in it (none for a malformed message).
    pub finding_ids: Vec<String>,
    /// `moved`, `processed`, `left` (dry run, or it failed), with why.
    pub action: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub from: String,
    pub to: Option<String>,
    pub dry_run: bool,
    pub moved: usize,
    pub processed: usize,
    pub left: usize,
    pub messages: Vec<ReplayedMessage>,
    /// The sequence number of the replay's own audit record.
    pub audit_sequence: Option<u64>,
}

/// How long received messages stay hidden while a replay decides about them.
const REPLAY_VISIBILITY_SECS: i32 = 300;

pub async fn replay(
    pipeline: Arc<Pipeline>,
    sqs: &SqsClient,
    options: &ReplayOptions,
) -> Result<ReplayReport> {
    let mut report = ReplayReport {
        from: options.from.clone(),
        to: options.to.clone(),
        dry_run: options.dry_run,
        moved: 0,
        processed: 0,
        left: 0,
        messages: Vec::new(),
        audit_sequence: None,
    };
    // Received messages stay hidden until the end, so one pass never sees the same one twice;
    // those not moved or processed are handed back together.
    let mut to_release: Vec<(String, String)> = Vec::new();
    let mut receive_error = None;
    while report.messages.len() < options.max {
        let want = (options.max - report.messages.len()).min(10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&options.from)
            .max_number_of_messages(want)
            .wait_time_seconds(1)
            .visibility_timeout(REPLAY_VISIBILITY_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                receive_error = Some(format!(
                    "receiving from {}: {}",
                    options.from,
                    queue_error(e)
                ));
                break;
            }
        };
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let (Some(id), Some(receipt)) =
                (message.message_id.clone(), message.receipt_handle.clone())
            else {
                continue;
            };
            let body = message.body.clone().unwrap_or_default();
            let mut replayed = ReplayedMessage {
                message_id: id.clone(),
                body_sha256: sha256_hex(body.as_bytes()),
                receive_count: message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok()),
                finding_ids: finding_ids(&pipeline, body.as_bytes()),
                action: "left".into(),
                detail: None,
            };
            let settled = if options.dry_run {
                replayed.detail = Some("dry run".into());
                false
            } else if let Some(to) = &options.to {
                match send_to(sqs, to, &message).await {
                    Ok(()) => {
                        replayed.action = "moved".into();
                        report.moved += 1;
                        true
                    }
                    Err(e) => {
                        replayed.detail = Some(e);
                        false
                    }
                }
            } else {
                let result = process_message(
                    &pipeline,
                    QueueMessage {
                        id: id.clone(),
                        body: body.into_bytes(),
                    },
                )
                .await;
                match result.disposition {
                    Disposition::Ack => {
                        replayed.action = "processed".into();
                        replayed.detail = Some(
                            result
                                .statuses
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        );
                        report.processed += 1;
                        true
                    }
                    Disposition::Retry { reason } => {
                        replayed.detail = Some(format!("still failing: {reason}"));
                        false
                    }
                }
            };
            if settled {
                if let Err(e) = sqs
                    .delete_message()
                    .queue_url(&options.from)
                    .receipt_handle(&receipt)
                    .send()
                    .await
                {
                    // Already safe elsewhere; a copy left behind is recognised if replayed again.
                    replayed.detail = Some(format!(
                        "deleting it from the dead-letter queue failed: {}",
                        queue_error(e)
                    ));
                }
            } else {
                report.left += 1;
                to_release.push((id, receipt));
            }
            report.messages.push(replayed);
        }
    }
    release(sqs, &options.from, &to_release).await;

    let sealed = pipeline
        .record_operation(AuditEntry {
            reason: Some(summary(&report, receive_error.as_deref())),
            dry_run: options.dry_run,
            operation: Some(json!({
                "kind": "replay",
                "from": report.from,
                "to": report.to,
                "max": options.max,
                "moved": report.moved,
                "processed": report.processed,
                "left": report.left,
                "receive_error": receive_error,
                "messages": serde_json::to_value(&report.messages).unwrap_or_default(),
            })),
            ..AuditEntry::default()
        })
        .await?;
    report.audit_sequence = Some(sealed.sequence);
    if let Some(e) = receive_error {
        anyhow::bail!(
            "{e} (what was replayed before it is in audit record {})",
            sealed.sequence
        );
    }
    Ok(report)
}

pub fn summary(report: &ReplayReport, receive_error: Option<&str>) -> String {
    let target = match &report.to {
        Some(to) => format!("to {to}"),
        None => "in place".to_string(),
    };
    let mut s = format!(
        "replay from {} {target}{}: {} message(s) seen, {} moved, {} processed, {} left in the dead-letter queue",
        report.from,
        if report.dry_run { " (dry run)" } else { "" },
        report.messages.len(),
        report.moved,
        report.processed,
        report.left
    );
    if let Some(e) = receive_error {
        s.push_str(&format!("; stopped early: {e}"));
    }
    s
}

fn finding_ids(pipeline: &Pipeline, body: &[u8]) -> Vec<String> {
    ingest::ingest(body, pipeline.ingest_config())
        .into_iter()
        .filter_map(|i| i.outcome.finding_id().map(str::to_string))
        .collect()
}

/// Sends a copy to the target queue with the same body and message attributes.
async fn send_to(
    sqs: &SqsClient,
    to: &str,
    message: &aws_sdk_sqs::types::Message,
) -> Result<(), String> {
    let mut send = sqs
        .send_message()
        .queue_url(to)
        .message_body(message.body.clone().unwrap_or_default());
    if let Some(attributes) = &message.message_attributes {
        for (name, value) in attributes {
            send = send.message_attributes(name.clone(), value.clone());
        }
    }
    tokio::time::timeout(Duration::from_secs(30), send.send())
        .await
        .map_err(|_| format!("sending to {to} timed out"))?
        .map(|_| ())
        .map_err(|e| format!("sending to {to} failed: {}", queue_error(e)))
}
