//! The Lambda handler, invoked directly with a real-format SQS event: a good record, a malformed
//! one, and one that fails with a retryable error. Only the retryable one is a batch item
//! failure, and every record has its audit record. With the S3 audit sink (moto), nothing is
//! acknowledged until the records are in S3, and a failed upload is made up by the next batch.

mod common;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use salve::modes::lambda::Budget;
use serde_json::json;

use common::*;
use salve::capabilities::{AwsError, Binding, BoxFuture, TagRead};
use salve::credentials::{AssumeRoleFailure, SessionPolicy};
use salve::finding::Finding;
use salve::notify::Notifier;
use salve::pipeline::{BackendBinder, SessionFor};
use salve::runtime::RuntimeLimits;
use salve_kind_s3_bucket::host::InMemoryS3Bucket;
use salve_kind_s3_bucket::host::PublicAccessBlock;
use salve_kind_s3_bucket::host::S3BucketBackend;

/// A bucket whose every call is throttled.
struct ThrottledBucket;

fn throttled() -> AwsError {
    AwsError {
        code: "SlowDown".into(),
        message: "Please reduce your request rate.".into(),
        request_id: Some("req-throttled".into()),
        retryable: true,
    }
}

impl S3BucketBackend for ThrottledBucket {
    fn get_public_access_block(
        &self,
    ) -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>> {
        Box::pin(async { Err(throttled()) })
    }
    fn put_public_access_block(&self, _: PublicAccessBlock) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async { Err(throttled()) })
    }
    fn delete_public_access_block(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async { Err(throttled()) })
    }
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async { Err(throttled()) })
    }
}

/// Throttles the bucket named "throttled-bucket"; every other bucket is a good in-memory one.
struct ByBucket {
    good: Arc<InMemoryS3Bucket>,
}

impl BackendBinder for ByBucket {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        _: &'a SessionPolicy,
        _: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>> {
        Box::pin(async move {
            Ok(if finding.resource.name == "throttled-bucket" {
                salve_kind_s3_bucket::host::bind(Arc::new(ThrottledBucket))
            } else {
                salve_kind_s3_bucket::host::bind(self.good.clone())
            })
        })
    }
}

/// The bucket fixer against in-memory buckets (`throttled-bucket` throttles), logging to `audit`.
fn bucket_pipeline(
    audit: &std::path::Path,
    good: &Arc<InMemoryS3Bucket>,
) -> salve::pipeline::Pipeline {
    pipeline_with(
        &[fixer("s3-block-public-access")],
        RuntimeLimits::default(),
        Box::new(ByBucket { good: good.clone() }),
        audit,
        &test_config(""),
        Notifier::disabled(),
    )
}

/// Invokes the handler as the runtime would, with no deadline, and reads its SQS response.
async fn invoke(
    pipeline: Arc<salve::pipeline::Pipeline>,
    event: serde_json::Value,
    sink: Option<&salve::audit_sink::S3AuditSink>,
) -> SqsBatchResponse {
    let budget = Budget {
        max_concurrency: 4,
        cutoff: None,
    };
    let response = salve::modes::lambda::handle(pipeline, event, budget, sink)
        .await
        .expect("an SQS event is accepted");
    serde_json::from_value(response).unwrap()
}

fn record(id: &str, body: &str) -> serde_json::Value {
    json!({
        "messageId": id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:salve-findings",
        "awsRegion": "us-east-1"
    })
}

#[tokio::test]
async fn only_retryable_failures_are_batch_item_failures() {
    let good = Arc::new(InMemoryS3Bucket::with(None));
    let audit = scratch("lambda-batch").join("audit.jsonl");
    let pipeline = Arc::new(bucket_pipeline(&audit, &good));
    let event = json!({"Records": [
        record("msg-good", &s3_finding("lambda-good", "good-bucket")),
        record("msg-malformed", "{not json"),
        record("msg-throttled", &s3_finding("lambda-throttled", "throttled-bucket")),
    ]});

    let response = invoke(pipeline, event, None).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failures, ["msg-throttled"]);
    assert_eq!(good.writes(), 1);

    let records = read_records(&audit);
    assert_eq!(
        records.len(),
        3,
        "every message has its record before the response"
    );
    let by_status = |s: &str| records.iter().filter(|r| r["status"] == s).count();
    assert_eq!(
        (
            by_status("remediated"),
            by_status("rejected"),
            by_status("failed")
        ),
        (1, 1, 1)
    );
    let failed = records.iter().find(|r| r["status"] == "failed").unwrap();
    assert_eq!(failed["retryable"], true);
    assert!(
        failed["reason"].as_str().unwrap().contains("SlowDown"),
        "{failed}"
    );
    let rejected = records.iter().find(|r| r["status"] == "rejected").unwrap();
    assert_eq!(
        rejected.get("retryable"),
        None,
        "a malformed message is never retried"
    );
}

async fn sink_objects(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().unwrap().to_string();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body;
        let text = String::from_utf8(body.collect().await.unwrap().to_vec()).unwrap();
        out.push((key, text));
    }
    out.sort();
    out
}

#[tokio::test]
async fn nothing_is_acknowledged_before_the_records_reach_the_sink() {
    let sdk = sdk_config().await;
    let s3 = salve::aws::s3_client(&sdk, true);
    let sink_bucket = unique("audit-sink");
    let audit = scratch("lambda-sink").join("audit.jsonl");
    let sink = salve::audit_sink::S3AuditSink::new(
        s3.clone(),
        &format!("s3://{sink_bucket}/salve/test"),
        &audit,
    )
    .unwrap();
    let pipeline = Arc::new(bucket_pipeline(
        &audit,
        &Arc::new(InMemoryS3Bucket::with(None)),
    ));
    let event = |ids: &[(&str, &str)]| -> serde_json::Value {
        let records: Vec<serde_json::Value> = ids
            .iter()
            .map(|(m, f)| record(m, &s3_finding(f, "good-bucket")))
            .collect();
        json!({ "Records": records })
    };

    // The sink's bucket does not exist yet: the fix is recorded locally, but not acknowledged.
    let response = invoke(pipeline.clone(), event(&[("m-1", "sink-1")]), Some(&sink)).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failures, ["m-1"]);
    assert_eq!(read_records(&audit).len(), 1);

    // The sink is back; the redelivery is recognised, and the earlier record ships with the
    // next batch's.
    s3.create_bucket()
        .bucket(&sink_bucket)
        .send()
        .await
        .unwrap();
    let response = invoke(
        pipeline,
        event(&[("m-1", "sink-1"), ("m-2", "sink-2")]),
        Some(&sink),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let objects = sink_objects(&s3, &sink_bucket).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    let (key, text) = &objects[0];
    let local = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(
        text, &local,
        "the sink holds every local record, byte for byte"
    );
    assert!(key.starts_with("salve/test/"), "{key}");
    // Every record, intents included, in one object named by its first and last sequence.
    let last = local.lines().count() - 1;
    assert!(
        key.ends_with(&format!("/000000000000-{last:012}.jsonl")),
        "{key}"
    );
    assert!(salve::audit::verify_text(text).is_intact());
}

#[tokio::test]
async fn the_sink_never_overwrites_an_object() {
    let sdk = sdk_config().await;
    let s3 = salve::aws::s3_client(&sdk, true);
    let bucket = unique("sink-no-overwrite");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let audit = scratch("sink-no-overwrite").join("audit.jsonl");
    let mut log = salve::audit::AuditLog::open(&audit).unwrap();
    for i in 0..2 {
        log.append(&salve::audit::AuditEntry {
            finding_id: Some(format!("f-{i}")),
            ..Default::default()
        })
        .unwrap();
    }
    let sink = |s3: &aws_sdk_s3::Client| {
        salve::audit_sink::S3AuditSink::new(s3.clone(), &format!("s3://{bucket}/p"), &audit)
            .unwrap()
    };
    let key = sink(&s3).flush().await.unwrap().unwrap();
    // A second shipper of the same bytes (an answer that was lost) lands on the same name: the
    // object is already there, with the same bytes, so that is a success, not a copy.
    assert_eq!(
        sink(&s3).flush().await.unwrap().as_deref(),
        Some(key.as_str())
    );
    // Other bytes under that name are never replaced.
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"someone else's\n",
        ))
        .send()
        .await
        .unwrap();
    let err = sink(&s3).flush().await.unwrap_err();
    assert!(format!("{err:#}").contains("never overwritten"), "{err:#}");
    let objects = sink_objects(&s3, &bucket).await;
    assert_eq!(objects, [(key, "someone else's\n".to_string())]);
}

#[tokio::test]
async fn a_fifo_group_stops_at_its_first_retry_and_reports_the_rest() {
    let good = Arc::new(InMemoryS3Bucket::with(None));
    let audit = scratch("lambda-fifo").join("audit.jsonl");
    let pipeline = Arc::new(bucket_pipeline(&audit, &good));
    let fifo = |id: &str, group: &str, body: String| {
        let mut r = record(id, &body);
        r["attributes"]["MessageGroupId"] = group.into();
        r
    };
    let event = json!({"Records": [
        fifo("g1-1", "g1", s3_finding("fifo-1", "good-bucket")),
        fifo("g1-2", "g1", s3_finding("fifo-2", "throttled-bucket")),
        fifo("g1-3", "g1", s3_finding("fifo-3", "good-bucket")),
        fifo("g2-1", "g2", s3_finding("fifo-4", "good-bucket")),
    ]});
    let response = invoke(pipeline, event, None).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // AWS requires the failed message and everything after it in its group.
    assert_eq!(failures, ["g1-2", "g1-3"]);
    let records = read_records(&audit);
    let ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r["delivery"]["message_id"].as_str())
        .collect();
    assert_eq!(ids, ["g1-1", "g1-2", "g2-1"], "g1-3 was never started");
}

#[tokio::test]
async fn no_fix_starts_before_its_intent_is_in_the_sink() {
    let sdk = sdk_config().await;
    let s3 = salve::aws::s3_client(&sdk, true);
    let sink_bucket = unique("intent-sink");
    let audit = scratch("lambda-intent-sink").join("audit.jsonl");
    let sink = Arc::new(
        salve::audit_sink::S3AuditSink::new(s3.clone(), &format!("s3://{sink_bucket}/a"), &audit)
            .unwrap(),
    );
    let good = Arc::new(InMemoryS3Bucket::with(None));
    let mut pipeline = bucket_pipeline(&audit, &good);
    pipeline.ship_intents_to(sink.clone());
    let pipeline = Arc::new(pipeline);
    let event = json!({"Records": [record("i-1", &s3_finding("intent-1", "good-bucket"))]});

    // The sink's bucket is not there: the intent cannot be made durable, so nothing changes.
    let response = invoke(pipeline.clone(), event.clone(), Some(&sink)).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        good.writes(),
        0,
        "a fix started with its intent only on local disk"
    );
    let failed = read_records(&audit).pop().unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("durable audit sink"),
        "{failed}"
    );

    // Once it is, the redelivery fixes, and the intent is in the sink before the write.
    s3.create_bucket()
        .bucket(&sink_bucket)
        .send()
        .await
        .unwrap();
    let response = invoke(pipeline, event, Some(&sink)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(good.writes(), 1);
    let objects = sink_objects(&s3, &sink_bucket).await;
    assert!(
        objects.len() >= 2,
        "the intent shipped on its own first: {objects:?}"
    );
    assert!(
        objects[0].1.contains("\"status\":\"intent\""),
        "{objects:?}"
    );
}
