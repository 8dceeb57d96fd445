//! Hostile fixers against the real sandbox. Each misbehaviour must be contained, recorded with a
//! precise reason, and leave the host able to process the next finding.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use salve::capabilities::{AwsError, BoxFuture};
use salve::pipeline::{Pipeline, ProcessOptions};
use salve::runtime::RuntimeLimits;
use salve_kind_security_group::host::InMemorySecurityGroup;
use salve_kind_security_group::host::SecurityGroupBackend;
use serde_json::Value;

const GROUP: &str = "sg-0123456789abcdef0";

fn open_ssh_group() -> Arc<InMemorySecurityGroup> {
    use salve_kind_security_group::host::{IngressRule, RuleSource};
    Arc::new(InMemorySecurityGroup::with(vec![IngressRule {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        source: RuleSource::Ipv4Cidr("0.0.0.0/0".into()),
        description: None,
    }]))
}

fn tight_limits() -> RuntimeLimits {
    RuntimeLimits {
        memory_bytes: 16 * 1024 * 1024,
        cpu_time: Duration::from_millis(300),
        wall_time: Duration::from_secs(20),
        ..RuntimeLimits::default()
    }
}

fn hostile_pipeline(
    name: &str,
    group: Arc<InMemorySecurityGroup>,
    limits: RuntimeLimits,
) -> (Pipeline, std::path::PathBuf) {
    let audit = scratch(name).join("audit.jsonl");
    let p = pipeline(
        &[fixture("hostile-fixer")],
        limits,
        Box::new(FixedBackend(salve_kind_security_group::host::bind(group))),
        &audit,
        no_settings(),
    );
    (p, audit)
}

async fn run(p: &Pipeline, id: &str, behaviour: &str) -> Value {
    process_one(
        p,
        sg_finding(id, GROUP, behaviour).as_bytes(),
        ProcessOptions::default(),
    )
    .await
}

fn status(r: &Value) -> &str {
    r["status"].as_str().unwrap()
}

fn reason(r: &Value) -> &str {
    r["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn hostile_fixers_are_contained_and_the_host_carries_on() {
    let group = open_ssh_group();
    let (p, audit) = hostile_pipeline("contained", group.clone(), tight_limits());
    let cases = [
        ("loop", "check: CPU time limit of 300 ms exceeded during check"),
        ("memory", "check: memory limit of 16777216 bytes exceeded during check"),
        ("stack", "check: stack overflow during check"),
        ("panic", "check: fixer trapped during check: unreachable instruction (a Rust panic ends this way)"),
    ];
    for (i, (behaviour, expected)) in cases.iter().enumerate() {
        let record = run(&p, &format!("hostile-{i}"), behaviour).await;
        assert_eq!(
            status(&record),
            "failed",
            "{behaviour}: {}",
            reason(&record)
        );
        assert!(
            reason(&record).starts_with(expected),
            "{behaviour}: got {:?}",
            reason(&record)
        );
    }
    let panic = &read_records(&audit)[3];
    assert!(
        reason(panic).contains("hostile fixer panicked on purpose"),
        "{}",
        reason(panic)
    );
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The same host, right after: a well-behaved run of the same component still works.
    let record = run(&p, "after", "behave").await;
    assert_eq!(status(&record), "remediated", "{}", reason(&record));
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}

/// One pool slot, reused by every run: each instance must find the static and the heap the way
/// the module first had them, not as the instance before left them. The pool resets only the
/// pages an instance dirtied where the kernel can say which (`PAGEMAP_SCAN`), so this covers
/// that path and the whole-range one alike.
#[tokio::test]
async fn a_reused_pool_slot_holds_nothing_of_the_instance_before() {
    let limits = RuntimeLimits {
        max_concurrent_fixers: 1,
        ..tight_limits()
    };
    let (p, _audit) = hostile_pipeline("residue", open_ssh_group(), limits);
    for i in 0..6 {
        let record = run(&p, &format!("residue-{i}"), "residue").await;
        assert_eq!(
            status(&record),
            "already-compliant",
            "run {i}: {}",
            reason(&record)
        );
    }
}

/// A fixer whose check() says non-compliant but whose plan is empty has not shown the finding
/// closed: it goes to a person, never to already-compliant.
#[tokio::test]
async fn a_non_compliant_resource_with_an_empty_plan_goes_to_review() {
    let group = open_ssh_group();
    let (p, _) = hostile_pipeline("empty-plan", group.clone(), tight_limits());
    let record = run(&p, "e", "empty-plan").await;
    assert_eq!(status(&record), "review", "{record}");
    assert_eq!(
        reason(&record),
        "check() finds the resource non-compliant, but plan() proposes no change: the fixer cannot fix it as it is; a person decides"
    );
    assert_eq!(record["evidence"]["compliant_before"], false);
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_write_during_plan_is_denied_and_never_reaches_the_backend() {
    let group = open_ssh_group();
    let (p, _) = hostile_pipeline("write-in-plan", group.clone(), tight_limits());
    let record = run(&p, "w", "write-in-plan").await;
    assert_eq!(status(&record), "failed");
    assert_eq!(
        reason(&record),
        "plan: the fixer reported denied: ec2:RevokeSecurityGroupIngress denied: it is a write, and writes are allowed only during apply, not during plan"
    );
    let denied = record["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["result"] == "denied")
        .unwrap();
    assert_eq!(denied["phase"], "plan");
    assert_eq!(denied["action"], "ec2:RevokeSecurityGroupIngress");
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_action_missing_from_the_plan_is_denied_during_apply() {
    let group = open_ssh_group();
    let (p, _) = hostile_pipeline("unplanned", group.clone(), tight_limits());
    let record = run(&p, "u", "unplanned-write").await;
    assert_eq!(status(&record), "failed");
    assert_eq!(
        reason(&record),
        "apply: the fixer reported denied: ec2:AuthorizeSecurityGroupIngress denied: the approved plan does not list it; no write reached AWS before it stopped"
    );
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        group.rules.lock().unwrap().len(),
        1,
        "the group must be unchanged"
    );
}

#[tokio::test]
async fn huge_output_is_bounded() {
    let audit = scratch("huge-output").join("audit.jsonl");
    let limits = RuntimeLimits {
        // Writing 6 MB through WASI streams takes a while in an unoptimised test build.
        cpu_time: Duration::from_secs(30),
        ..tight_limits()
    };
    let p = pipeline(
        &[fixture("hostile-fixer")],
        limits,
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            open_ssh_group(),
        ))),
        &audit,
        no_settings(),
    );
    let record = run(&p, "h", "huge-output").await;
    assert_eq!(status(&record), "already-compliant", "{}", reason(&record));
    let out = &record["fixer_output"];
    let limit = RuntimeLimits::default().output_bytes;
    assert_eq!(out["stdout"].as_str().unwrap().len(), limit);
    assert_eq!(out["stderr"].as_str().unwrap().len(), limit);
    // 3,000 lines of 1,025 bytes were written to each stream.
    assert_eq!(
        out["stdout_dropped_bytes"].as_u64().unwrap() as usize,
        3_000 * 1025 - limit
    );
    assert!(out["log"]["dropped_lines"].as_u64().unwrap() > 2_900);
}

#[tokio::test]
async fn a_fixer_importing_another_resource_types_interface_is_refused_before_it_runs() {
    let audit = scratch("forbidden").join("audit.jsonl");
    let p = pipeline(
        &[fixture("forbidden-import")],
        tight_limits(),
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            open_ssh_group(),
        ))),
        &audit,
        no_settings(),
    );
    let refused = &p.registry().refused;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].error.ends_with(
            "fixer forbidden-import refused at link time: fixer imports salve:fixer/security-group@0.1.0, which is outside the s3-bucket-fixer world of AWS::S3::Bucket; a fixer may only use the capability interface of its own resource type"
        ),
        "{}",
        refused[0].error
    );
    let record: Value = process_one(
        &p,
        s3_finding("forbidden", "some-bucket").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(status(&record), "failed");
    assert!(
        reason(&record).contains("outside the s3-bucket-fixer world"),
        "{}",
        reason(&record)
    );
    assert_eq!(record["calls"].as_array().unwrap().len(), 0);
}

/// A backend whose every call hangs, to prove the wall-clock limit covers host calls.
struct HangingGroup;

impl SecurityGroupBackend for HangingGroup {
    fn describe_ingress(
        &self,
    ) -> BoxFuture<'_, Result<Vec<salve_kind_security_group::host::IngressRule>, AwsError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Vec::new())
        })
    }
    fn revoke_ingress(
        &self,
        _: Vec<salve_kind_security_group::host::IngressRule>,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async { Ok(()) })
    }
    fn authorize_ingress(
        &self,
        _: Vec<salve_kind_security_group::host::IngressRule>,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async { Ok(()) })
    }
    fn tags(&self) -> BoxFuture<'_, Result<salve::capabilities::TagRead, AwsError>> {
        Box::pin(async { Ok(salve::capabilities::Tags::new().into()) })
    }
}

#[tokio::test]
async fn the_wall_clock_limit_covers_host_calls() {
    let audit = scratch("hanging").join("audit.jsonl");
    let limits = RuntimeLimits {
        wall_time: Duration::from_millis(500),
        ..tight_limits()
    };
    let p = pipeline(
        &[fixer("sg-close-admin-ports")],
        limits,
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            Arc::new(HangingGroup),
        ))),
        &audit,
        no_settings(),
    );
    let record: Value = process_one(
        &p,
        sg_finding("hang", GROUP, "x").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(status(&record), "failed");
    assert_eq!(
        reason(&record),
        "check: wall-clock limit of 500 ms exceeded during check"
    );
}

#[tokio::test]
async fn malformed_payloads_are_rejected_with_a_reason_and_a_digest() {
    let (p, _) = hostile_pipeline("malformed", open_ssh_group(), tight_limits());
    for (payload, expected) in [
        (&b"{not json"[..], "payload is not JSON"),
        (&b"{\"id\":\"x\"}"[..], "unrecognised payload"),
        (&b"\xff\xfe"[..], "payload is not JSON"),
    ] {
        let record: Value = process_one(&p, payload, ProcessOptions::default()).await;
        assert_eq!(status(&record), "rejected");
        assert!(reason(&record).starts_with(expected), "{}", reason(&record));
        assert_eq!(record["payload_sha256"], salve::audit::sha256_hex(payload));
    }
}

/// Refuses every shared read session the way STS refuses a policy over its packed-size limit,
/// and binds each finding's own session to its in-memory bucket.
struct PackedLimit(salve::in_memory::BucketPerFinding);

impl salve::pipeline::BackendBinder for PackedLimit {
    fn bind<'a>(
        &'a self,
        finding: &'a salve::finding::Finding,
        policy: &'a salve::credentials::SessionPolicy,
        on_behalf: salve::pipeline::SessionFor<'a>,
    ) -> BoxFuture<'a, Result<salve::capabilities::Binding, salve::credentials::AssumeRoleFailure>>
    {
        if let salve::pipeline::SessionFor::ReadGroup(_) = on_behalf {
            return Box::pin(async {
                Err(salve::credentials::AssumeRoleFailure {
                    reason: "assume-role failed".into(),
                    code: Some("PackedPolicyTooLarge".into()),
                    message: "Packed policy consumes 104% of allotted space".into(),
                    request_id: None,
                    retryable: false,
                })
            });
        }
        self.0.bind(finding, policy, on_behalf)
    }
}

/// A shared read session STS refuses as too large falls back to each finding's own session:
/// the payload is fixed, and each record shows both attempts.
#[tokio::test]
async fn a_shared_read_session_sts_refuses_as_too_large_falls_back_to_the_findings_own() {
    let audit = scratch("packed-limit").join("audit.jsonl");
    let p = pipeline(
        &[fixer("s3-block-public-access")],
        RuntimeLimits::default(),
        Box::new(PackedLimit(Default::default())),
        &audit,
        no_settings(),
    );
    let messages: Vec<Value> = (0..2)
        .map(|i| {
            let id = format!("packed-{i}");
            serde_json::json!({"MessageId": id, "Body": s3_finding(&id, &format!("packed-bucket-{i}"))})
        })
        .collect();
    let payload = serde_json::json!({ "Messages": messages }).to_string();
    let processed = p
        .process_payload(payload.as_bytes(), ProcessOptions::default())
        .await
        .unwrap();
    assert_eq!(processed.len(), 2);
    for r in &processed {
        let e = &r.entry;
        assert_eq!(
            e.status.map(|s| s.as_str()),
            Some("remediated"),
            "{:?}",
            e.reason
        );
        let reads: Vec<_> = e
            .sessions
            .iter()
            .filter(|s| s.phase == salve::record::SessionPhase::Read)
            .collect();
        assert_eq!(reads.len(), 2, "the shared attempt and the finding's own");
        assert!(reads[0].session_name.starts_with("salve-read-"));
        assert_eq!(
            reads[0].failure.as_ref().and_then(|f| f.code.as_deref()),
            Some("PackedPolicyTooLarge")
        );
        assert_eq!(
            reads[1].session_name,
            format!("salve-{}", e.finding_id.as_deref().unwrap())
        );
        assert!(reads[1].failure.is_none());
    }
}
