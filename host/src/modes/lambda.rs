//! AWS Lambda mode behind an SQS event source mapping with `ReportBatchItemFailures`: the
//! response lists only the messages whose failure is retryable; everything else was recorded
//! and is deleted by Lambda.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::batch::{process_batch, Disposition, QueueMessage};
use crate::pipeline::Pipeline;

/// Handles one SQS event. A record without a message ID cannot be reported back, so it is
/// processed and acknowledged like any other.
pub async fn handle(
    pipeline: Arc<Pipeline>,
    event: SqsEvent,
    max_concurrency: usize,
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
    for result in process_batch(pipeline, messages, max_concurrency).await {
        if let Disposition::Retry { reason } = &result.disposition {
            tracing::warn!(message_id = %result.id, "message will be retried: {reason}");
            response.add_failure(result.id);
        }
    }
    response
}

/// Runs the Lambda runtime loop. The pipeline (fixers loaded and compiled) is built once, at
/// init, and shared by every invocation.
pub async fn run(pipeline: Arc<Pipeline>, max_concurrency: usize) -> anyhow::Result<()> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let pipeline = pipeline.clone();
            async move {
                Ok::<_, lambda_runtime::Error>(
                    handle(pipeline, event.payload, max_concurrency).await,
                )
            }
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}
