//! At-least-once delivery without double writes: a redelivered finding is recognised from the
//! audit log (also after a restart), two deliveries at once are processed once, and even with no
//! record of it a redelivery whose fix landed is only `already-compliant`. The in-memory bucket
//! counts the writes that reached it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use salve::audit::Status;
use salve::in_memory::BucketPerFinding;
use salve::modes::batch::{process_batch, Disposition, QueueMessage};
use salve::pipeline::{Pipeline, Redelivery};
use salve::runtime::RuntimeLimits;
use salve_kind_s3_bucket::host::InMemoryS3Bucket;

fn bucket_pipeline(bucket: &Arc<InMemoryS3Bucket>, audit: &Path) -> Arc<Pipeline> {
    Arc::new(pipeline(
        &[fixer("s3-block-public-access")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_s3_bucket::host::bind(
            bucket.clone(),
        ))),
        audit,
        no_settings(),
    ))
}

fn message(id: &str, finding_id: &str) -> QueueMessage {
    QueueMessage {
        id: id.into(),
        body: s3_finding(finding_id, "shared-bucket").into_bytes(),
    }
}

#[tokio::test]
async fn a_redelivered_finding_is_recognised_and_never_written_twice() {
    let dir = scratch("idempotency-redelivery");
    let audit = dir.join("audit.jsonl");
    let bucket = Arc::new(InMemoryS3Bucket::with(None));

    let first = bucket_pipeline(&bucket, &audit);
    let results = process_batch(first.clone(), vec![message("m1", "f-1")], 4).await;
    assert_eq!(results[0].statuses, [Status::Remediated]);
    assert_eq!(bucket.writes(), 1);

    // The same message again, as SQS may deliver it: acknowledged, nothing written or recorded.
    let again = process_batch(first.clone(), vec![message("m1-again", "f-1")], 4).await;
    assert_eq!(again[0].disposition, Disposition::Ack);
    assert_eq!(
        again[0].redeliveries,
        [Redelivery::AlreadyHandled(Status::Remediated)]
    );
    assert!(again[0].reasons.is_empty());
    assert_eq!(read_records(&audit).len(), 1);
    drop(first);

    // After a restart the ledger comes back from the audit log.
    let restarted = bucket_pipeline(&bucket, &audit);
    let after = process_batch(restarted, vec![message("m1-later", "f-1")], 4).await;
    assert_eq!(
        after[0].redeliveries,
        [Redelivery::AlreadyHandled(Status::Remediated)]
    );
    assert_eq!(read_records(&audit).len(), 1);
    assert_eq!(bucket.writes(), 1);

    // With no record of it at all (another audit log), the fix that landed plans nothing.
    let forgetful = bucket_pipeline(&bucket, &dir.join("other-audit.jsonl"));
    let replanned = process_batch(forgetful, vec![message("m1-elsewhere", "f-1")], 4).await;
    assert_eq!(replanned[0].statuses, [Status::AlreadyCompliant]);
    assert_eq!(bucket.writes(), 1, "no write is ever applied twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_at_once_are_processed_once() {
    let dir = scratch("idempotency-concurrent");
    let audit = dir.join("audit.jsonl");
    let bucket = Arc::new(InMemoryS3Bucket::with(None));
    let p = bucket_pipeline(&bucket, &audit);
    let copies: Vec<QueueMessage> = (0..8)
        .map(|i| message(&format!("copy-{i}"), "f-2"))
        .collect();
    let results = process_batch(p, copies, 8).await;
    let processed: Vec<_> = results.iter().filter(|r| !r.reasons.is_empty()).collect();
    assert_eq!(processed.len(), 1, "exactly one copy is processed");
    assert_eq!(processed[0].statuses, [Status::Remediated]);
    for r in results.iter().filter(|r| r.reasons.is_empty()) {
        match r.redeliveries[..] {
            // Seen while the first was running: comes back later, and is then recognised.
            [Redelivery::InFlight] => assert!(matches!(r.disposition, Disposition::Retry { .. })),
            [Redelivery::AlreadyHandled(Status::Remediated)] => {
                assert_eq!(r.disposition, Disposition::Ack)
            }
            ref other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bucket.writes(), 1);
    assert_eq!(read_records(&audit).len(), 1);
}

#[tokio::test]
async fn an_updated_finding_is_handled_again() {
    let dir = scratch("idempotency-updated");
    let audit = dir.join("audit.jsonl");
    let bucket = Arc::new(InMemoryS3Bucket::with(None));
    let p = bucket_pipeline(&bucket, &audit);
    process_batch(p.clone(), vec![message("m1", "f-3")], 1).await;
    // Same ID, different content (now CRITICAL): a new decision, so a new record.
    let updated = QueueMessage {
        id: "m2".into(),
        body: s3_finding("f-3", "shared-bucket")
            .replace("\"HIGH\"", "\"CRITICAL\"")
            .into_bytes(),
    };
    let results = process_batch(p, vec![updated], 1).await;
    assert_eq!(results[0].statuses, [Status::AlreadyCompliant]);
    assert_eq!(read_records(&audit).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_findings_at_once_than_sandbox_slots_wait_for_a_slot() {
    let dir = scratch("idempotency-slots");
    let limits = RuntimeLimits {
        max_concurrent_fixers: 2,
        ..RuntimeLimits::default()
    };
    let p = Arc::new(pipeline(
        &[fixer("s3-block-public-access")],
        limits,
        Box::new(BucketPerFinding::default()),
        &dir.join("audit.jsonl"),
        no_settings(),
    ));
    let messages: Vec<QueueMessage> = (0..40)
        .map(|i| QueueMessage {
            id: format!("m{i}"),
            body: s3_finding(&format!("slot-{i}"), &format!("bucket-{i}")).into_bytes(),
        })
        .collect();
    for r in process_batch(p, messages, 16).await {
        assert_eq!(
            r.statuses,
            [Status::Remediated],
            "{}: {:?}",
            r.id,
            r.reasons.first().cloned().flatten()
        );
    }
}
