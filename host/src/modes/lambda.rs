//! AWS Lambda mode behind an SQS event source mapping with `ReportBatchItemFailures`: the
//! response lists only the messages whose failure is retryable; everything else was recorded
//! and is deleted by Lambda.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::batch::{process_batch, Disposition, QueueMessage};
use crate::audit_sink::S3AuditSink;
use crate::pipeline::Pipeline;

/// Handles one SQS event. A record without a message ID cannot be reported back, so it is
/// processed and acknowledged like any other. With a sink, nothing is acknowledged unless the
/// batch's records reached it: until then they exist only on this environment's `/tmp`.
pub async fn handle(
    pipeline: Arc<Pipeline>,
    event: SqsEvent,
    max_concurrency: usize,
    sink: Option<&S3AuditSink>,
) -> SqsBatchResponse {
    let messages: Vec<QueueMessage> = event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| QueueMessage {
            id: r
                .message_id
                .unwrap_or_else(|| format!("(record {i} without a message ID)")),
            body: r.body.unwrap_or_default().into_bytes(),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    let results = process_batch(pipeline, messages, max_concurrency).await;
    let shipped = match sink {
        None => Ok(()),
        Some(sink) => sink.flush().await.map(|key| {
            if let Some(key) = key {
                tracing::info!(key = %key, "audit records shipped to {}", sink.location());
            }
        }),
    };
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
            response.add_failure(result.id);
        }
    }
    response
}

/// Runs the Lambda runtime loop. The pipeline (fixers loaded and compiled) is built once, at
/// init, and shared by every invocation.
pub async fn run(
    pipeline: Arc<Pipeline>,
    max_concurrency: usize,
    sink: Option<S3AuditSink>,
) -> anyhow::Result<()> {
    let sink = sink.map(Arc::new);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let pipeline = pipeline.clone();
            let sink = sink.clone();
            async move {
                Ok::<_, lambda_runtime::Error>(
                    handle(pipeline, event.payload, max_concurrency, sink.as_deref()).await,
                )
            }
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}
