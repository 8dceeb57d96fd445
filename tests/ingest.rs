//! Ingest against fixtures written from the public formats: every envelope, every source, and
//! one fixture per rejection reason.

use std::path::PathBuf;

use salve::config::SalveConfig;
use salve::ingest::{ingest, IngestConfig, IngestOutcome, Ingested, Source};

fn payload(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/payloads")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(name: &str) -> Vec<Ingested> {
    ingest(&payload(name), &IngestConfig::default())
}

fn finding(item: &Ingested) -> &salve::finding::Finding {
    match &item.outcome {
        IngestOutcome::Finding(f) => f,
        other => panic!("expected a finding, got {other:?}"),
    }
}

fn rejection(item: &Ingested) -> &str {
    match &item.outcome {
        IngestOutcome::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn not_actionable(item: &Ingested) -> (String, String) {
    match &item.outcome {
        IngestOutcome::NotActionable { finding_id, reason } => (finding_id.clone(), reason.clone()),
        other => panic!("expected not-actionable, got {other:?}"),
    }
}

#[test]
fn wiz_default_template_with_an_arn() {
    let items = run("wiz-bucket-arn.json");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].source, Some(Source::Wiz));
    let f = finding(&items[0]);
    assert_eq!(f.id, "wiz-issue-0001");
    assert_eq!(f.source, "wiz");
    assert_eq!(f.control_id, "wc-id-1335");
    assert_eq!(f.control_aliases, ["3c9a7a5b-a2e6-4ad4-b1c8-2a7a3c1b0d55"]);
    assert_eq!(f.resource.arn, "arn:aws:s3:::acme-public-logs");
    assert_eq!(f.resource.resource_type, "AWS::S3::Bucket");
    assert_eq!(f.resource.account_id, "123456789012");
    assert_eq!(f.resource.tags["owner"], "platform-team");
    assert_eq!(f.projects, ["payments"]);
    assert_eq!(f.severity, salve::finding::Severity::High);
}

#[test]
fn wiz_test_event_is_read_leniently() {
    // "created":"2021-07-01M01:01:01Z" and "projects":null, as Wiz's own test event sends them.
    let items = run("wiz-test-event.json");
    let f = finding(&items[0]);
    assert_eq!(f.id, "wiz-test-0001");
    assert!(f.projects.is_empty());
}

#[test]
fn wiz_bare_ids_become_arns() {
    let sg = run("wiz-bare-security-group.json");
    let f = finding(&sg[0]);
    assert_eq!(
        f.resource.arn,
        "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0a1b2c3d4e5f60718"
    );
    assert_eq!(f.resource.resource_type, "AWS::EC2::SecurityGroup");
    assert_eq!(f.projects, ["payments", "web"], "a \"a, b, \" string");

    let bucket = run("wiz-bare-bucket.json");
    let f = finding(&bucket[0]);
    assert_eq!(f.resource.arn, "arn:aws:s3:::acme-bare-bucket");
    assert_eq!(f.resource.name, "acme-bare-bucket");
}

#[test]
fn wiz_resolved_and_not_open_are_skipped_with_a_reason() {
    let (id, reason) = not_actionable(&run("wiz-resolved.json")[0]);
    assert_eq!(id, "wiz-issue-0004");
    assert_eq!(
        reason,
        "Wiz trigger type is RESOLVED: the issue is closed, so there is nothing to fix"
    );
    let (_, reason) = not_actionable(&run("wiz-in-progress.json")[0]);
    assert_eq!(reason, "Wiz issue status is IN_PROGRESS, not OPEN");
}

#[test]
fn wiz_fields_are_mapped_by_json_pointer() {
    let config = SalveConfig::parse(
        r#"
[ingest.wiz.fields]
trigger-type = "/event/kind"
issue-id = "/event/issueId"
issue-status = "/event/state"
issue-severity = "/event/sev"
resource-id = "/asset/arn"
resource-account = "/asset/account"
resource-region = "/asset/region"
resource-tags = "/asset/labels"
control-id = "/rule/id"
control-name = "/rule/title"
"#,
        "test",
        std::path::Path::new("."),
    )
    .unwrap();
    let items = ingest(&payload("wiz-custom-template.json"), &config.ingest);
    assert_eq!(items[0].source, Some(Source::Wiz));
    let f = finding(&items[0]);
    assert_eq!(f.id, "wiz-issue-0006");
    assert_eq!(f.control_id, "EC2.13");
    assert_eq!(f.severity, salve::finding::Severity::Critical);
    assert_eq!(f.resource.name, "sg-0123456789abcdef0");
    assert_eq!(
        f.resource.tags["owner"], "net-team",
        "tags as a key/value list"
    );
}

#[test]
fn security_hub_batches_yield_one_finding_each() {
    let items = run("securityhub-event-two-findings.json");
    assert_eq!(items.len(), 2);
    let a = finding(&items[0]);
    let b = finding(&items[1]);
    assert_eq!(items[0].source, Some(Source::SecurityHub));
    assert_eq!(a.control_id, "S3.8");
    assert_eq!(a.resource.resource_type, "AWS::S3::Bucket");
    assert_eq!(a.resource.tags["owner"], "data-team");
    assert_eq!(b.control_id, "EC2.13");
    assert_eq!(b.severity, salve::finding::Severity::Critical);
    assert_eq!(b.resource.name, "sg-0fedcba9876543210");
}

#[test]
fn security_hub_acts_only_on_failed_active_open_findings() {
    let cases = [
        (
            "securityhub-suppressed.json",
            "Security Hub workflow status is SUPPRESSED",
        ),
        (
            "securityhub-passed.json",
            "Security Hub compliance status is PASSED, not FAILED",
        ),
        (
            "securityhub-archived.json",
            "Security Hub record state is ARCHIVED, not ACTIVE",
        ),
    ];
    for (file, expected) in cases {
        let (_, reason) = not_actionable(&run(file)[0]);
        assert_eq!(reason, expected, "{file}");
    }
}

#[test]
fn every_envelope_is_unwrapped() {
    let sns = run("sns-notification-wiz.json");
    assert_eq!(sns[0].envelope, ["sns-notification"]);
    assert_eq!(finding(&sns[0]).id, "wiz-issue-0001");

    let sqs = run("sqs-receive-message.json");
    assert_eq!(sqs[0].envelope, ["sqs-message[0]", "sns-notification"]);
    assert_eq!(finding(&sqs[0]).id, "wiz-issue-0001");

    let eb = run("eventbridge-custom-wiz.json");
    assert_eq!(eb[0].envelope, ["eventbridge"]);
    assert_eq!(finding(&eb[0]).id, "wiz-issue-0001");

    // Raw SNS delivery, non-raw delivery of a Security Hub batch, and a broken record.
    let lambda = run("lambda-sqs-event.json");
    assert_eq!(lambda.len(), 4);
    assert_eq!(lambda[0].envelope, ["lambda-sqs-record[0]"]);
    assert_eq!(finding(&lambda[0]).source, "wiz");
    assert_eq!(
        lambda[1].envelope,
        ["lambda-sqs-record[1]", "sns-notification"]
    );
    assert_eq!(finding(&lambda[1]).control_id, "S3.8");
    assert_eq!(finding(&lambda[2]).control_id, "EC2.13");
    assert!(rejection(&lambda[3]).starts_with("Records[2].body is not JSON"));
}

#[test]
fn each_rejection_has_a_precise_reason() {
    let cases = [
        ("reject-not-json.json", "payload is not JSON: EOF while parsing"),
        ("reject-unrecognised.json", "unrecognised payload: not a canonical finding, a Wiz automation-rule payload or a Security Hub finding (top-level keys: hello)"),
        ("reject-wiz-bad-severity.json", "Wiz payload: severity \"SEVERE\" is not one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL"),
        ("reject-wiz-bad-account.json", "Wiz payload: normalised field resource.account_id: \"acme-prod\" is not a 12-digit AWS account ID"),
        ("reject-wiz-bad-arn.json", "Wiz payload: normalised field resource.arn: \"Not_A_Bucket\" is not a valid bucket name"),
        ("reject-wiz-missing-control.json", "Wiz payload: required field /control/id is missing or not a string"),
        ("reject-wiz-bad-region.json", "Wiz payload: normalised field resource.region: \"mars-1\" is not an AWS region"),
        ("reject-asff-missing-severity.json", "ASFF finding: required field Severity.Label is missing"),
        ("reject-sns-message-not-json.json", "the SNS notification's Message is not JSON"),
        ("reject-canonical-unknown-field.json", "payload is not a canonical finding: unknown field `surprise`"),
    ];
    for (file, expected) in cases {
        let items = run(file);
        assert_eq!(items.len(), 1, "{file}");
        let reason = rejection(&items[0]);
        assert!(reason.starts_with(expected), "{file}: {reason}");
    }
}

#[test]
fn oversized_payloads_are_rejected_before_parsing() {
    let big = vec![b' '; salve::ingest::MAX_PAYLOAD_BYTES + 1];
    let items = ingest(&big, &IngestConfig::default());
    assert_eq!(
        rejection(&items[0]),
        format!(
            "payload is {} bytes, over the {}-byte limit",
            big.len(),
            salve::ingest::MAX_PAYLOAD_BYTES
        )
    );
}
