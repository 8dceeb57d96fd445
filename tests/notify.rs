//! The notifier: SNS against moto (the topic delivers into an SQS queue the test reads), and a
//! Slack-compatible webhook against a small HTTP server run by the test itself. A failed
//! delivery must be in the audit record.

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;

use common::*;
use salve::notify::Notifier;
use salve::pipeline::{Pipeline, ProcessOptions};
use salve::runtime::RuntimeLimits;
use salve_kind_s3_bucket::host::InMemoryS3Bucket;

async fn notifying_pipeline(name: &str, routes: &str) -> Pipeline {
    let config = test_config(routes);
    let notifier = Notifier::new(config.notify.clone(), Some(sdk_config().await));
    let audit = scratch(&format!("notify-{name}")).join("audit.jsonl");
    pipeline_with(
        &[fixer("s3-block-public-access")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_s3_bucket::host::bind(Arc::new(
            InMemoryS3Bucket::with(None),
        )))),
        &audit,
        &config,
        notifier,
    )
}

/// A finding with no owner anywhere: it goes to review.
fn ownerless(id: &str) -> Vec<u8> {
    json!({
        "id": id, "control_id": "S3.8", "severity": "HIGH",
        "resource": {"arn": "arn:aws:s3:::acme-ownerless", "type": "AWS::S3::Bucket",
                     "account_id": ACCOUNT, "region": "us-east-1", "tags": {"environment": "dev"}}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn review_findings_reach_the_sns_topic() {
    let sdk = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(unique("salve-review"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("salve-review-inbox"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let p = notifying_pipeline(
        "sns",
        &format!(
            "[notify.routes.security]\non = [\"review\", \"failed\"]\nsns-topic-arn = {topic:?}\n"
        ),
    )
    .await;
    let record = process_one(&p, &ownerless("notify-sns-1"), ProcessOptions::default()).await;
    assert_eq!(record["status"], "review");
    assert_eq!(
        record["notifications"],
        json!([{ "route": "security", "target": topic, "delivered": true }])
    );

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["salve"]["finding_id"], "notify-sns-1");
    assert_eq!(body["salve"]["status"], "review");
    assert_eq!(body["salve"]["reason"], "missing owner");
    assert!(body["text"].as_str().unwrap().contains("missing owner"));
}

#[tokio::test]
async fn a_missing_topic_is_recorded_not_dropped() {
    let topic = format!(
        "arn:aws:sns:us-east-1:{ACCOUNT}:{}",
        unique("no-such-topic")
    );
    let p = notifying_pipeline(
        "sns-missing",
        &format!("[notify.routes.security]\non = [\"review\"]\nsns-topic-arn = {topic:?}\n"),
    )
    .await;
    let record = process_one(&p, &ownerless("notify-sns-2"), ProcessOptions::default()).await;
    let n = &record["notifications"][0];
    assert_eq!(n["delivered"], false);
    assert!(
        n["error"]
            .as_str()
            .unwrap()
            .starts_with("SNS Publish failed: NotFound"),
        "{n}"
    );
}

#[tokio::test]
async fn review_and_urgent_findings_reach_the_webhook() {
    let (addr, server) = serve_http(vec![(200, "ok".into()); 2]).await;
    let url = format!("http://{addr}/services/T0/B0/SECRET");
    let p = notifying_pipeline(
        "webhook",
        &format!("[notify.routes.slack]\non = [\"review\", \"urgent\"]\nwebhook-url = {url:?}\n"),
    )
    .await;
    let record = process_one(&p, &ownerless("notify-hook-1"), ProcessOptions::default()).await;
    assert_eq!(
        record["notifications"],
        json!([{ "route": "slack", "target": url.split("/services").next().unwrap().to_string() + "/…", "delivered": true }]),
        "the webhook's secret path stays out of the record"
    );

    // Remediated, but every risk factor is high: urgent.
    let urgent = json!({
        "id": "notify-hook-2", "control_id": "S3.8", "severity": "CRITICAL",
        "resource": {"arn": "arn:aws:s3:::acme-cardholder", "type": "AWS::S3::Bucket",
                     "account_id": ACCOUNT, "region": "us-east-1",
                     "tags": {"owner": "pay", "environment": "dev", "exposure": "internet", "data-classification": "payment"}}
    });
    let record = process_one(&p, urgent.to_string().as_bytes(), ProcessOptions::default()).await;
    assert_eq!(record["status"], "remediated");
    assert_eq!(record["notifications"][0]["delivered"], true);

    let bodies = server.await.unwrap();
    let first: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(
        first["text"],
        "salve: review notify-hook-1 on arn:aws:s3:::acme-ownerless (P2): missing owner"
    );
    let second: Value = serde_json::from_str(&bodies[1]).unwrap();
    assert!(
        second["text"]
            .as_str()
            .unwrap()
            .starts_with("URGENT salve: remediated notify-hook-2"),
        "{second}"
    );
    assert_eq!(second["salve"]["triggers"], json!(["urgent"]));
}

#[tokio::test]
async fn webhook_failures_are_recorded() {
    let (addr, server) = serve_http(vec![(500, "ok".into())]).await;
    let url = format!("http://{addr}/services/T0/B0/SECRET");
    let p = notifying_pipeline(
        "webhook-500",
        &format!("[notify.routes.slack]\non = [\"review\"]\nwebhook-url = {url:?}\n"),
    )
    .await;
    let record = process_one(&p, &ownerless("notify-hook-3"), ProcessOptions::default()).await;
    let n = &record["notifications"][0];
    assert_eq!(n["delivered"], false);
    assert_eq!(
        n["error"],
        "webhook answered HTTP 500 Internal Server Error: ok"
    );
    server.await.unwrap();

    // Nobody listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let p = notifying_pipeline(
        "webhook-refused",
        &format!("[notify.routes.slack]\non = [\"review\"]\nwebhook-url = {url:?}\n"),
    )
    .await;
    let record = process_one(&p, &ownerless("notify-hook-4"), ProcessOptions::default()).await;
    let n = &record["notifications"][0];
    assert_eq!(n["delivered"], false);
    assert!(
        n["error"]
            .as_str()
            .unwrap()
            .starts_with("webhook request failed"),
        "{n}"
    );
}
