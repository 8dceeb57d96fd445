//! `salve pending` and `salve approve` against moto: a finding that went to review is fixed
//! only once a person approves the plan they saw; a changed plan, or a guardrail an approval may
//! not override, leaves the resource untouched, and every outcome is recorded.

mod common;

use common::{aws_pipeline_config, endpoint, process_one, public_access_block, s3, unique};
use salve::approval::{self, ApprovalRequest};
use salve::audit::Status;
use salve::pipeline::ProcessOptions;
use serde_json::json;

/// An S3.8 finding on `bucket` whose tags name no owner, so it goes to review.
fn ownerless(id: &str, bucket: &str) -> String {
    json!({
        "id": id, "control_id": "S3.8", "title": "public bucket", "severity": "HIGH",
        "resource": {"arn": format!("arn:aws:s3:::{bucket}"), "type": "AWS::S3::Bucket",
                     "account_id": common::ACCOUNT, "region": "us-east-1",
                     "tags": {"environment": "dev"}},
    })
    .to_string()
}

fn alice(accept_new_plan: bool) -> ApprovalRequest {
    ApprovalRequest {
        by: "alice@example.com".into(),
        reason: Some("owner is on leave; the bucket must not stay public".into()),
        accept_new_plan,
    }
}

#[tokio::test]
async fn an_approved_plan_is_applied_and_recorded() {
    let client = s3().await;
    let bucket = unique("approve-ok");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    // Through the proxy, to see the session tags salve asks STS for.
    let proxy = common::proxy::CountingProxy::start(&endpoint()).await;
    let (p, audit) = aws_pipeline_config(
        "approve-ok",
        &proxy.url,
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    let review = process_one(
        &p,
        ownerless("appr-1", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(review["status"], "review", "{review:#}");
    assert_eq!(public_access_block(&client, &bucket).await, None);

    let waiting = approval::pending(&audit).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].finding.id, "appr-1");
    assert_eq!(
        waiting[0].record.sequence,
        review["sequence"].as_u64().unwrap()
    );
    assert!(waiting[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("missing owner"));

    let done = p.approve(&waiting[0], &alice(false)).await.unwrap();
    let e = &done.entry;
    assert_eq!(e.status, Some(Status::Remediated), "{:?}", e.reason);
    let a = e.approval.as_ref().expect("the approval is recorded");
    assert_eq!(a.by, "alice@example.com");
    assert_eq!(a.approves, waiting[0].record);
    assert!(a.overrides.as_deref().unwrap().contains("missing owner"));
    assert!(!a.accepted_new_plan);
    // The intent written before the write call carries the approval too.
    let intent: serde_json::Value = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["status"] == "intent")
        .expect("an intent record");
    assert_eq!(intent["approval"]["by"], "alice@example.com");
    assert_eq!(public_access_block(&client, &bucket).await, Some([true; 4]));
    // Only the write session of the approved run names the approver.
    let sessions: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.body.contains("Action=AssumeRole"))
        .map(|r| r.body)
        .collect();
    let tagged: Vec<&String> = sessions
        .iter()
        .filter(|b| b.contains("Key=salve%3Aapproved-by&Tags.member.3.Value=alice%40example.com"))
        .collect();
    assert_eq!(tagged.len(), 1, "{sessions:#?}");
    assert!(tagged[0].contains("SalveWrite"), "{}", tagged[0]);
    // Nothing waits any more.
    assert!(approval::pending(&audit).unwrap().is_empty());
    assert!(approval::find(&audit, "appr-1").is_err());
}

/// Ports open to the world in a security group, as moto has them.
async fn world_open_ports(group: &str) -> Vec<i32> {
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    let out = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    let mut ports: Vec<i32> = out.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        })
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    ports
}

#[tokio::test]
async fn a_plan_that_changed_since_review_needs_a_new_approval() {
    use aws_sdk_ec2::types::{IpPermission, IpRange};
    let group = common::open_ssh_group("approve-changed").await;
    let (p, audit) = aws_pipeline_config(
        "approve-changed",
        &endpoint(),
        &[common::fixer("sg-close-admin-ports")],
        "",
    )
    .await;
    let payload =
        common::sg_finding("appr-2", &group, "ssh open").replace(r#""owner":"platform-team","#, "");
    let review = process_one(&p, payload.as_bytes(), ProcessOptions::default()).await;
    assert_eq!(review["status"], "review", "{review:#}");
    // After the review someone opens RDP to the world too: the plan a person saw (close 22) is
    // no longer the plan that would be applied (close 22 and 3389).
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(3389)
                .to_port(3389)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(world_open_ports(&group).await, [22, 3389]);

    let waiting = approval::find(&audit, "appr-2").unwrap();
    let refused = p.approve(&waiting, &alice(false)).await.unwrap();
    let e = &refused.entry;
    assert_eq!(e.status, Some(Status::Review), "{:?}", e.reason);
    let reason = e.reason.as_deref().unwrap();
    assert!(
        reason.contains("the plan changed since it was reviewed"),
        "{reason}"
    );
    assert!(reason.contains("--accept-new-plan"), "{reason}");
    assert!(e.approval.is_none());
    assert!(e
        .calls
        .iter()
        .all(|c| c.access != salve::kinds::Access::Write));
    assert_eq!(world_open_ports(&group).await, [22, 3389]);

    // The refusal is itself a review, of the new plan: that is what `salve pending` now shows.
    let latest = approval::find(&audit, "appr-2").unwrap();
    assert_eq!(
        latest.record.sequence,
        refused.sealed.as_ref().unwrap().sequence
    );
    assert_ne!(latest.plan, waiting.plan);
    // Approving the first review again, accepting the new plan, applies it and says so.
    let done = p.approve(&waiting, &alice(true)).await.unwrap();
    assert_eq!(
        done.entry.status,
        Some(Status::Remediated),
        "{:?}",
        done.entry.reason
    );
    assert!(done.entry.approval.as_ref().unwrap().accepted_new_plan);
    assert_eq!(world_open_ports(&group).await, Vec::<i32>::new());
}

#[tokio::test]
async fn an_approval_never_overrides_an_action_the_deployment_does_not_allow() {
    let client = s3().await;
    let bucket = unique("approve-guard");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, audit) = aws_pipeline_config(
        "approve-guard",
        &endpoint(),
        &[common::fixer("s3-block-public-access")],
        "[eligibility]\nallowed-actions = [\"ec2:RevokeSecurityGroupIngress\"]\n",
    )
    .await;
    let payload = ownerless("appr-3", &bucket).replace(
        r#""tags":{"environment":"dev"}"#,
        r#""tags":{"environment":"dev","owner":"team-a"}"#,
    );
    let review = process_one(&p, payload.as_bytes(), ProcessOptions::default()).await;
    assert_eq!(review["status"], "review", "{review:#}");
    assert!(
        review["reason"].as_str().unwrap().contains("not allowed"),
        "{review:#}"
    );

    let waiting = approval::find(&audit, "appr-3").unwrap();
    let refused = p.approve(&waiting, &alice(true)).await.unwrap();
    let e = &refused.entry;
    assert_eq!(e.status, Some(Status::Review));
    assert!(
        e.reason
            .as_deref()
            .unwrap()
            .contains("an approval cannot override"),
        "{:?}",
        e.reason
    );
    assert!(e.approval.is_none());
    assert_eq!(public_access_block(&client, &bucket).await, None);
}

/// The command line: `salve pending` lists, `salve approve` refuses what is not waiting.
#[tokio::test]
async fn the_command_line_lists_and_refuses_clearly() {
    let client = s3().await;
    let bucket = unique("approve-cli");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, audit) = aws_pipeline_config(
        "approve-cli",
        &endpoint(),
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    process_one(
        &p,
        ownerless("appr-4", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    drop(p);
    let salve = env!("CARGO_BIN_EXE_salve");
    let out = std::process::Command::new(salve)
        .args(["pending", "--audit-log"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("appr-4"), "{text}");
    assert!(text.contains("salve approve appr-4 --by <you>"), "{text}");
    let out = std::process::Command::new(salve)
        .args(["approve", "no-such-finding", "--by", "bob", "--audit-log"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not waiting for approval"), "{err}");
}

fn signed(key: &str, approval: &serde_json::Value) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let text = approval.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"type": "salve-approval", "approval": text, "hmac-sha256": hex})
        .to_string()
        .into_bytes()
}

/// Approvals from the queue: authenticated, fresh and used once, or refused and recorded.
#[tokio::test]
async fn approval_messages_are_authenticated_fresh_and_used_once() {
    const KEY: &str = "a-test-approval-key-of-more-than-32-characters";
    std::env::set_var("SALVE_TEST_APPROVAL_KEY_Q", KEY);
    let client = s3().await;
    let bucket = unique("approve-queue");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, audit) = aws_pipeline_config(
        "approve-queue",
        &endpoint(),
        &[common::fixer("s3-block-public-access")],
        "[approvals]\nkey-env = \"SALVE_TEST_APPROVAL_KEY_Q\"\nmax-age-seconds = 600\n",
    )
    .await;
    let review = process_one(
        &p,
        ownerless("appr-q", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(review["status"], "review", "{review:#}");
    let now = salve::timestamp::format(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let approval = |nonce: &str, issued_at: &str| {
        json!({"finding_id": "appr-q", "by": "carol@example.com", "reason": "from the chat button",
               "issued_at": issued_at, "nonce": nonce})
    };
    let rejected = |r: &serde_json::Value, why: &str| {
        assert_eq!(r["status"], "rejected", "{r:#}");
        assert!(r["reason"].as_str().unwrap().contains(why), "{r:#}");
    };

    // Signed with another key: refused, and its nonce is not trusted (not recorded).
    let forged = signed(
        "another-key-that-is-also-longer-than-32-chars",
        &approval("n1", &now),
    );
    let r = process_one(&p, &forged, ProcessOptions::default()).await;
    rejected(&r, "failed authentication");
    assert!(r.get("approval_message").is_none(), "{r:#}");
    // Expired.
    let r = process_one(
        &p,
        &signed(KEY, &approval("n2", "2026-01-01T00:00:00Z")),
        ProcessOptions::default(),
    )
    .await;
    rejected(&r, "expired");
    assert_eq!(public_access_block(&client, &bucket).await, None);
    // Still waiting after those.
    assert_eq!(approval::pending(&audit).unwrap().len(), 1);

    // A good one: applied, through SNS too, and recorded with its nonce.
    let good = signed(KEY, &approval("n3", &now));
    let sns = json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:approvals",
                     "Message": String::from_utf8(good.clone()).unwrap(), "Timestamp": now});
    let r = process_one(&p, sns.to_string().as_bytes(), ProcessOptions::default()).await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    assert_eq!(r["source"], "salve-approval");
    assert_eq!(r["approval"]["by"], "carol@example.com");
    assert_eq!(r["approval_message"]["nonce"], "n3");
    assert_eq!(public_access_block(&client, &bucket).await, Some([true; 4]));

    // The same message again: a replay, refused.
    let r = process_one(&p, &good, ProcessOptions::default()).await;
    rejected(&r, "replayed");
    // And after a restart, from the log alone.
    drop(p);
    let restarted = salve::idempotency::Ledger::from_audit_log(&audit).unwrap();
    assert!(
        !restarted.take_nonce("n3"),
        "the nonce must be known after a restart"
    );
    assert!(
        restarted.take_nonce("n1"),
        "an unauthenticated message's nonce is not trusted"
    );
}
