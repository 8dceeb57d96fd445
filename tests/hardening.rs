//! The hardening issue's defects, each as a test that failed before its fix: hostile fixers that
//! try to wedge the audit log or forge errors, torn writes, a full disk, a tampered fixer
//! cache, and payloads that try to talk their way past the guardrails.

mod common;

use std::sync::Arc;

use common::*;
use salve::audit::{AuditEntry, AuditLog, Status};
use salve::pipeline::ProcessOptions;
use salve::runtime::{Runtime, RuntimeLimits};
use salve_kind_security_group::host::InMemorySecurityGroup;
use salve_kind_security_group::host::{IngressRule, RuleSource};
use serde_json::Value;

const GROUP: &str = "sg-0123456789abcdef0";

fn open_ssh() -> IngressRule {
    IngressRule {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        source: RuleSource::Ipv4Cidr("0.0.0.0/0".into()),
        description: None,
    }
}

fn hostile(
    name: &str,
) -> (
    salve::pipeline::Pipeline,
    std::path::PathBuf,
    Arc<InMemorySecurityGroup>,
) {
    let group = Arc::new(InMemorySecurityGroup::with(vec![open_ssh()]));
    let audit = scratch(name).join("audit.jsonl");
    let p = pipeline(
        &[fixture("hostile-fixer")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            group.clone(),
        ))),
        &audit,
        no_settings(),
    );
    (p, audit, group)
}

async fn run(p: &salve::pipeline::Pipeline, id: &str, behaviour: &str) -> Value {
    process_one(
        p,
        sg_finding(id, GROUP, behaviour).as_bytes(),
        ProcessOptions::default(),
    )
    .await
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line parses"))
        .collect()
}

#[tokio::test]
async fn deep_rollback_data_cannot_wedge_the_audit_log() {
    let (p, audit, group) = hostile("deep-rollback");
    let r = run(&p, "f-deep", "deep-rollback").await;
    assert_eq!(r["status"], "remediated", "{r}");
    assert!(
        r["rollback"].is_string(),
        "too deep to embed: kept as a string: {}",
        r["rollback"]
    );
    // The next finding still gets its record, and the chain verifies.
    group.rules.lock().unwrap().push(open_ssh());
    let r = run(&p, "f-next", "plain").await;
    assert_eq!(r["status"], "remediated");
    let report = salve::audit::verify(&audit).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    drop(p);
    // A fresh process chains on from it too.
    let mut log = AuditLog::open(&audit).unwrap();
    log.append(&AuditEntry::default()).unwrap();
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}

#[tokio::test]
async fn a_trap_after_a_write_states_the_partial_change() {
    let (p, _, group) = hostile("trap-after-write");
    let r = run(&p, "f-trap", "trap-after-write").await;
    assert_eq!(r["status"], "failed");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("PARTIAL CHANGE") && reason.contains("ec2:RevokeSecurityGroupIngress"),
        "{reason}"
    );
    assert!(group.rules.lock().unwrap().is_empty(), "the write did land");
}

#[tokio::test]
async fn a_forged_aws_error_is_capped_and_never_retried() {
    let (p, _, _) = hostile("forged-error");
    let r = run(&p, "f-forged", "forged-aws-error").await;
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r.get("retryable"),
        None,
        "a fixer-built error must not be retryable: {}",
        r["retryable"]
    );
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.len() < 8 * 1024, "reason is {} bytes", reason.len());
    assert!(reason.contains("never received from AWS"), "{reason}");
}

#[tokio::test]
async fn a_flood_of_empty_log_lines_is_bounded_and_counted() {
    let (p, _, _) = hostile("log-flood");
    let r = run(&p, "f-flood", "log-flood").await;
    let log = &r["fixer_output"]["log"];
    let kept = log["lines"].as_array().unwrap().len();
    assert!(kept <= 1000, "kept {kept} lines");
    let dropped = log["dropped_lines"].as_u64().unwrap();
    assert!(
        dropped > 0 && dropped + kept as u64 >= 100_000,
        "{} {dropped} {}",
        r["status"],
        r["reason"]
    );
    assert!(
        r.to_string().len() < 256 * 1024,
        "record is {} bytes",
        r.to_string().len()
    );
}

#[tokio::test]
async fn an_intent_is_durable_before_the_first_write_and_linked_from_the_record() {
    let (p, audit, _) = hostile("intent");
    let r = run(&p, "f-intent", "plain").await;
    assert_eq!(r["status"], "remediated");
    let all = records(&audit);
    assert_eq!(all.len(), 2, "an intent and a terminal record");
    assert_eq!(all[0]["status"], "intent");
    assert!(
        all[0]["plan"].is_object(),
        "the intent holds the approved plan"
    );
    assert_eq!(all[1]["intent"]["sequence"], all[0]["sequence"]);
    assert_eq!(
        all[1]["fixer"]["artifact_sha256"].as_str().map(str::len),
        Some(64),
        "the record names the compiled artifact that ran"
    );
    assert_eq!(all[1]["intent"]["record_hash"], all[0]["record_hash"]);
}

#[tokio::test]
async fn an_intent_left_by_a_killed_run_is_reconciled_at_start() {
    let (p, audit, group) = hostile("reconcile");
    run(&p, "f-recon", "plain").await;
    drop(p);
    // Simulate a run killed between apply and its record: drop the terminal record, leaving
    // only the intent (the group is already fixed, as it would be).
    let lines: Vec<String> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::write(&audit, format!("{}\n", lines[0])).unwrap();
    assert!(group.rules.lock().unwrap().is_empty());
    let p = pipeline(
        &[fixture("hostile-fixer")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            group.clone(),
        ))),
        &audit,
        no_settings(),
    );
    let settled = p.reconcile_open_intents().await.unwrap();
    assert_eq!(settled.len(), 1);
    let e = &settled[0].entry;
    assert_eq!(e.status, Some(Status::Remediated), "{:?}", e.reason);
    assert_eq!(e.reconciles.as_ref().unwrap().sequence, 0);
    assert!(
        p.reconcile_open_intents().await.unwrap().is_empty(),
        "settled once"
    );
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}

#[test]
fn a_torn_tail_is_cut_kept_and_recorded() {
    let dir = scratch("torn");
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    log.append(&AuditEntry::default()).unwrap();
    drop(log);
    // A write that stopped half way: no newline.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, br#"{"finding_id":"half"#).unwrap();
    drop(f);
    let mut log = AuditLog::open(&path).unwrap();
    let sealed = log.append(&AuditEntry::default()).unwrap();
    assert_eq!(
        sealed.sequence, 2,
        "record 0, the repair record, then this one"
    );
    let all = records(&path);
    assert_eq!(all[1]["operation"]["kind"], "audit-repair");
    let saved = all[1]["operation"]["repair"]["saved_to"].as_str().unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), br#"{"finding_id":"half"#);
    assert!(salve::audit::verify(&path).unwrap().is_intact());
}

#[test]
fn verify_hashes_the_bytes_on_disk_so_a_duplicated_key_is_caught() {
    let dir = scratch("dupkey");
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    log.append(&AuditEntry {
        status: Some(Status::Failed),
        ..AuditEntry::default()
    })
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // A second "status" key: a parser that keeps the last one reads "remediated".
    let forged = text.replacen('{', r#"{"status":"remediated","#, 1);
    let report = salve::audit::verify_text(&forged);
    assert!(!report.is_intact());
}

#[test]
fn the_audit_log_is_private_and_never_follows_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("perms");
    let path = dir.join("audit.jsonl");
    AuditLog::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let target = dir.join("elsewhere");
    std::fs::write(&target, "").unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = AuditLog::open(&link).err().expect("a symlink is refused");
    assert!(format!("{err:#}").contains("symlink"), "{err:#}");
}

#[test]
fn a_write_past_a_file_size_limit_fails_cleanly_and_leaves_no_torn_record() {
    let dir = scratch("efbig");
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    // Fill the log to just short of a 1 KiB boundary, so the next record crosses the limit.
    let mut n = 0;
    while !(900..1000).contains(&(std::fs::metadata(&path).unwrap().len() % 1024)) {
        log.append(&AuditEntry {
            finding_id: Some("f".repeat(n % 97)),
            ..AuditEntry::default()
        })
        .unwrap();
        n += 1;
    }
    drop(log);
    let blocks = std::fs::metadata(&path).unwrap().len() / 1024 + 1;
    let payload = dir.join("payload.json");
    std::fs::write(&payload, "this is not JSON").unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {blocks} && exec {} process --audit-log {} --fixers {} {}",
            env!("CARGO_BIN_EXE_salve"),
            path.display(),
            dir.display(),
            payload.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "salve was killed by a signal (SIGXFSZ?): {stderr}"
    );
    assert!(
        !out.status.success(),
        "the record could not be written: {stderr}"
    );
    assert!(
        stderr.contains("nothing of this batch was kept"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'), "no torn record left behind");
    assert!(salve::audit::verify(&path).unwrap().is_intact());
}

#[test]
fn a_tampered_compiled_fixer_is_recompiled_never_loaded() {
    let dir = scratch("cache-tamper");
    let cache = dir.join("cache");
    std::env::set_var("SALVE_CACHE_KEY_FILE", dir.join("key"));
    let load = |name: &str| {
        let rt = Runtime::new(RuntimeLimits::default(), Some(cache.clone())).unwrap();
        rt.load_file(&fixer(name)).unwrap()
    };
    let s3 = load("s3-block-public-access");
    let sg = load("sg-close-admin-ports");
    assert_eq!(
        load("s3-block-public-access").artifact,
        salve::runtime::ArtifactSource::DiskCache
    );
    // Copy the security-group fixer's compiled file (and its tag) over the bucket fixer's.
    let find = |sha: &str, ext: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name().unwrap().to_string_lossy().starts_with(sha)
                    && p.to_string_lossy().ends_with(ext)
            })
            .unwrap()
    };
    for ext in [".cwasm", ".cwasm.hmac"] {
        std::fs::copy(find(&sg.sha256, ext), find(&s3.sha256, ext)).unwrap();
    }
    let again = load("s3-block-public-access");
    assert_eq!(
        again.artifact,
        salve::runtime::ArtifactSource::Compiled,
        "swapped artifact refused"
    );
    assert_eq!(again.manifest.name, "s3-block-public-access");
    assert_ne!(again.artifact_sha256, sg.artifact_sha256);
    std::env::remove_var("SALVE_CACHE_KEY_FILE");
}

#[tokio::test]
async fn two_fixers_with_one_name_or_one_control_are_refused_unless_routed() {
    let rt = Runtime::new(RuntimeLimits::default(), None).unwrap();
    let dir = scratch("routing");
    for (i, name) in ["a", "b"].iter().enumerate() {
        std::fs::copy(
            fixer("s3-block-public-access"),
            dir.join(format!("{i}-{name}.wasm")),
        )
        .unwrap();
    }
    let reg = salve::registry::FixerRegistry::load_dir(&rt, &dir).unwrap();
    assert!(reg.ready.is_empty());
    assert!(
        reg.refused.iter().all(|r| r.error.contains("named")),
        "{:?}",
        reg.refused[0].error
    );

    // Two different fixers claiming one control: hostile-fixer and sg-close-admin-ports share EC2.13.
    let dir = scratch("routing-overlap");
    std::fs::copy(fixture("hostile-fixer"), dir.join("a.wasm")).unwrap();
    std::fs::copy(fixer("sg-close-admin-ports"), dir.join("b.wasm")).unwrap();
    let reg = salve::registry::FixerRegistry::load_dir(&rt, &dir).unwrap();
    assert!(
        reg.refused.iter().any(|r| r.error.contains("[routing]")),
        "{:?}",
        reg.refused.iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    let routing = [("EC2.13".to_string(), "sg-close-admin-ports".to_string())].into();
    let reg = salve::registry::FixerRegistry::load_dir_routed(&rt, &dir, routing).unwrap();
    assert_eq!(reg.ready.len(), 2);
    let f = salve::finding::Finding::from_canonical_json(sg_finding("f", GROUP, "t").as_bytes())
        .unwrap();
    match reg.select(&f) {
        salve::registry::Selection::Ready(f) => assert_eq!(f.manifest.name, "sg-close-admin-ports"),
        _ => panic!("routing picks the named fixer"),
    }
    // `fixer inspect --installed` reports the overlap before anyone installs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["fixer", "inspect", "--output", "json", "--installed"])
        .arg(repo_root().join("build/fixers"))
        .arg(fixture("hostile-fixer"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["artifact_sha256"].as_str().map(str::len),
        Some(64),
        "inspect names the compiled artifact: {report:#}"
    );
    let overlaps = report["overlaps"].to_string();
    assert!(
        overlaps.contains("EC2.13") && overlaps.contains("sg-close-admin-ports"),
        "{report:#}"
    );
}

#[tokio::test]
async fn settings_pinned_to_another_digest_are_withheld_and_the_fixer_does_not_run() {
    let group = Arc::new(InMemorySecurityGroup::with(vec![open_ssh()]));
    let audit = scratch("pinned").join("audit.jsonl");
    let settings = [(
        "hostile-fixer".to_string(),
        [
            ("sha256".to_string(), "0".repeat(64)),
            ("token".to_string(), "secret".to_string()),
        ]
        .into(),
    )]
    .into();
    let p = pipeline(
        &[fixture("hostile-fixer")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            group.clone(),
        ))),
        &audit,
        settings,
    );
    let r = run(&p, "f-pin", "plain").await;
    assert_eq!(r["status"], "failed");
    assert!(
        r["reason"].as_str().unwrap().contains("pinned"),
        "{}",
        r["reason"]
    );
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(r["fixer"]["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn payload_tags_cannot_unrestrict_a_restricted_resource() {
    let group = Arc::new(InMemorySecurityGroup {
        rules: std::sync::Mutex::new(vec![open_ssh()]),
        tags: [(
            "Environment".to_string(),
            "Restricted-Production".to_string(),
        )]
        .into(),
        ..InMemorySecurityGroup::default()
    });
    let audit = scratch("restricted").join("audit.jsonl");
    let p = pipeline(
        &[fixer("sg-close-admin-ports")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            group.clone(),
        ))),
        &audit,
        no_settings(),
    );
    // The payload says environment=dev (sg_finding's tags).
    let r = process_one(
        &p,
        sg_finding("f-env", GROUP, "open ssh").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "review", "{}", r["reason"]);
    assert_eq!(group.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
    let env = &r["metadata"]["environment"];
    assert_eq!(env["value"], "restricted-production");
    assert_eq!(env["payload"], "dev");
    assert_eq!(env["source"], "resource-tags");
}

#[test]
fn duplicate_keys_in_a_payload_are_rejected() {
    let payload = br#"{"id":"f","control_id":"S3.8","severity":"HIGH","resource":{"arn":"arn:aws:s3:::a-bucket","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1"},"resource":{"arn":"arn:aws:s3:::b-bucket","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1"}}"#;
    let out = salve::ingest::ingest(payload, &Default::default());
    match &out[0].outcome {
        salve::ingest::IngestOutcome::Rejected { reason } => {
            assert!(reason.contains("appears twice"), "{reason}")
        }
        other => panic!("accepted a payload with two resources: {other:?}"),
    }
}

#[tokio::test]
async fn a_wasi_sleep_is_wall_clock_time_not_cpu_time() {
    let group = Arc::new(InMemorySecurityGroup::with(vec![open_ssh()]));
    let audit = scratch("sleep").join("audit.jsonl");
    let limits = |wall_ms| RuntimeLimits {
        cpu_time: std::time::Duration::from_millis(300),
        wall_time: std::time::Duration::from_millis(wall_ms),
        ..RuntimeLimits::default()
    };
    let backend = || {
        Box::new(FixedBackend(salve_kind_security_group::host::bind(
            group.clone(),
        )))
    };
    let p = pipeline(
        &[fixture("hostile-fixer")],
        limits(20_000),
        backend(),
        &audit,
        no_settings(),
    );
    let r = run(&p, "f-sleep", "sleep").await;
    assert_eq!(r["status"], "already-compliant", "{}", r["reason"]);
    drop(p);
    let p = pipeline(
        &[fixture("hostile-fixer")],
        limits(500),
        backend(),
        &audit,
        no_settings(),
    );
    let r = run(&p, "f-sleep-2", "sleep").await;
    assert_eq!(r["status"], "failed");
    assert!(
        r["reason"].as_str().unwrap().contains("wall-clock limit"),
        "{}",
        r["reason"]
    );
}

mod against_moto {
    //! The same defects where they meet AWS: moto behind the counting proxy.
    use super::*;
    use crate::common::proxy::{CountingProxy, Injected};

    async fn via_proxy(
        name: &str,
        proxy: &CountingProxy,
    ) -> (salve::pipeline::Pipeline, std::path::PathBuf) {
        aws_pipeline(name, &proxy.url).await
    }

    #[tokio::test]
    async fn a_write_whose_response_was_lost_is_verified_not_failed() {
        let group = open_ssh_group("lost-response").await;
        let proxy = CountingProxy::start(&endpoint()).await;
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        proxy.set_fault(Some(Arc::new(move |seen| {
            (seen.body.contains("Action=RevokeSecurityGroupIngress")
                && !fired.swap(true, std::sync::atomic::Ordering::SeqCst))
            .then(|| {
                // AWS applied the revoke; the answer was lost and a retry found the rule gone.
                Injected::ForwardThenRespond(
                    400,
                    "<Response><Errors><Error><Code>InvalidPermission.NotFound</Code><Message>The specified rule does not exist in this security group.</Message></Error></Errors><RequestID>lost-1</RequestID></Response>".into(),
                )
            })
        })));
        let (p, _) = via_proxy("lost-response", &proxy).await;
        let r = process_one(
            &p,
            sg_finding("f-lost", &group, "open ssh").as_bytes(),
            ProcessOptions::default(),
        )
        .await;
        assert_eq!(r["status"], "remediated", "{}", r["reason"]);
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("InvalidPermission.NotFound"),
            "{}",
            r["reason"]
        );
        assert_eq!(r["evidence"]["compliant_after"], true);
        assert!(r["evidence"]["apply_error"].is_string());
    }

    #[tokio::test]
    async fn every_s3_call_names_the_expected_bucket_owner() {
        let s3 = s3().await;
        let bucket = unique("owner");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let proxy = CountingProxy::start(&endpoint()).await;
        let (p, _) = via_proxy("expected-owner", &proxy).await;
        let r = process_one(
            &p,
            s3_finding("f-owner", &bucket).as_bytes(),
            ProcessOptions::default(),
        )
        .await;
        assert_eq!(r["status"], "remediated", "{}", r["reason"]);
        let s3_calls: Vec<_> = proxy
            .requests()
            .into_iter()
            .filter(|s| s.path_and_query.starts_with(&format!("/{bucket}")))
            .collect();
        assert!(s3_calls.len() >= 3, "{s3_calls:?}");
        for call in s3_calls {
            let owner = call
                .headers
                .iter()
                .find(|(k, _)| k == "x-amz-expected-bucket-owner")
                .map(|(_, v)| v.as_str());
            assert_eq!(
                owner,
                Some(ACCOUNT),
                "{} {}",
                call.method,
                call.path_and_query
            );
        }
    }

    #[tokio::test]
    async fn fixer_text_cannot_forge_terminal_output() {
        let group = open_ssh_group("escape").await;
        let dir = scratch("terminal-escape");
        std::fs::write(
            dir.join("finding.json"),
            sg_finding("f-esc", &group, "terminal-escape"),
        )
        .unwrap();
        std::fs::write(
            dir.join("salve.toml"),
            format!("[accounts.\"{ACCOUNT}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\n"),
        )
        .unwrap();
        let fixers = dir.join("fixers");
        std::fs::create_dir_all(&fixers).unwrap();
        std::fs::copy(fixture("hostile-fixer"), fixers.join("hostile.wasm")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .current_dir(&dir)
            .args([
                "explain",
                "finding.json",
                "--config",
                "salve.toml",
                "--fixers",
                "fixers",
            ])
            .args(["--endpoint-url", &endpoint()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "raw control characters reached the terminal:\n{text:?}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("status    remediated")),
            "a forged status line:\n{text}"
        );
        assert!(
            text.contains("\\u{1b}"),
            "the escape is shown, visibly:\n{text}"
        );
    }

    #[test]
    fn explain_on_a_fresh_machine_shows_ingest_and_triage() {
        let dir = scratch("fresh-explain");
        std::fs::write(
            dir.join("finding.json"),
            s3_finding("f-fresh", "fresh-bucket"),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .current_dir(&dir)
            .args(["explain", "finding.json"])
            .env("HOME", &dir)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // No region: no instance-metadata lookup, its retries, or its SDK debug dumps.
        assert!(!stderr.to_ascii_lowercase().contains("imds"), "{stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(stderr.contains("no fixers are installed"), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("skipped"));
        assert!(
            !dir.join(".salve/cache").exists(),
            "no cache in the current directory"
        );
    }

    #[tokio::test]
    async fn recording_never_sends_signed_requests_to_a_case_files_endpoint() {
        let dir = scratch("record-endpoint");
        let case_dir = dir.join("case");
        std::fs::create_dir_all(&case_dir).unwrap();
        let shipped = repo_root().join("fixers/s3-block-public-access/cases/fixed/case.json");
        let mut case: Value =
            serde_json::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        // A case file from someone else, naming their endpoint.
        let spy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        spy.set_nonblocking(true).unwrap();
        case["endpoint_url"] = format!("http://{}", spy.local_addr().unwrap()).into();
        let bucket = unique("record-endpoint");
        case["finding"]["resource"]["arn"] = format!("arn:aws:s3:::{bucket}").into();
        std::fs::write(case_dir.join("case.json"), case.to_string()).unwrap();
        // "AWS" here is moto, through the SDK's own AWS_ENDPOINT_URL; no --endpoint-url flag.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(["fixer", "test", "--record"])
            .arg(fixer("s3-block-public-access"))
            .arg(&case_dir)
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("HOME", &dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("recording ignores it"), "{stderr}");
        assert!(
            spy.accept().is_err(),
            "a signed request went to the endpoint the case file named"
        );
    }
}

#[test]
fn an_oversized_payload_is_recorded_with_its_real_size_and_whole_digest() {
    let dir = scratch("oversized");
    let payload = vec![b' '; 7 * 1024 * 1024];
    std::fs::write(dir.join("big.json"), &payload).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .current_dir(&dir)
        .args([
            "process",
            "big.json",
            "--audit-log",
            "audit.jsonl",
            "--fixers",
            ".",
        ])
        .args(["--output", "json"])
        .env("HOME", &dir)
        .output()
        .unwrap();
    let record: Value = serde_json::from_slice(&out.stdout).expect("one JSON record");
    assert_eq!(record["status"], "rejected");
    assert_eq!(
        record["reason"],
        format!(
            "payload is {} bytes, over the 6291456-byte limit",
            payload.len()
        )
    );
    assert_eq!(record["payload_sha256"], salve::audit::sha256_hex(&payload));
}

#[tokio::test]
async fn nothing_is_changed_when_the_log_cannot_take_the_intent() {
    let bucket = unique("no-intent");
    let client = s3().await;
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = scratch("no-intent");
    std::fs::write(dir.join("finding.json"), s3_finding("f-no-intent", &bucket)).unwrap();
    std::fs::write(
        dir.join("salve.toml"),
        format!("[accounts.\"{ACCOUNT}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\n"),
    )
    .unwrap();
    // An empty log that may not grow: a full disk, as far as salve can tell.
    std::fs::write(dir.join("audit.jsonl"), "").unwrap();
    let out = std::process::Command::new("bash")
        .current_dir(&dir)
        .arg("-c")
        .arg(format!(
            "ulimit -f 0 && exec {} process finding.json --audit-log audit.jsonl --config salve.toml --fixers {} --endpoint-url {}",
            env!("CARGO_BIN_EXE_salve"),
            repo_root().join("build/fixers").display(),
            endpoint()
        ))
        .env("HOME", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        public_access_block(&client, &bucket).await,
        None,
        "the bucket was changed with no record of it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
