//! Drift detection, the pipeline gate and break-glass, against moto (AWS) and Prism (GitHub's
//! API, validated against its official OpenAPI description). The clock is injected: a window
//! goes overdue because the check is asked about a later moment, not because the test sleeps.

mod common;

use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::{IpPermission, IpRange};
use salve::audit::Status;
use salve::aws::{AwsBackends, AwsOptions};
use salve::config::SalveConfig;
use salve::drift::break_glass::OpenRequest;
use salve::drift::history::History;
use salve::drift::{Drift, Outcome, Reference, Scope, Verdict};
use salve::notify::Notifier;
use salve::pipeline::{Pipeline, ProcessOptions};
use salve::runtime::RuntimeLimits;

const HOUR: i64 = 3_600_000;

struct Setup {
    pipeline: Pipeline,
    aws: AwsBackends,
    config: SalveConfig,
    audit: PathBuf,
}

impl Setup {
    async fn new(name: &str, url: &str, fixers: &[PathBuf], extra: &str) -> Setup {
        let audit = common::scratch(name).join("audit.jsonl");
        let config = common::test_config(extra);
        let sdk = common::sdk_config()
            .await
            .into_builder()
            .endpoint_url(url)
            .build();
        let aws = || {
            AwsBackends::from_config(
                sdk.clone(),
                AwsOptions {
                    endpoint_url: Some(url.to_string()),
                },
                "salve-tests",
                config.account_roles(),
            )
        };
        let pipeline = common::pipeline_with(
            fixers,
            RuntimeLimits::default(),
            Box::new(aws()),
            &audit,
            &config,
            Notifier::new(config.notify.clone(), None),
        );
        Setup {
            pipeline,
            aws: aws(),
            config,
            audit,
        }
    }

    fn drift(&self) -> Drift<'_> {
        Drift {
            pipeline: &self.pipeline,
            aws: &self.aws,
            config: &self.config.drift,
            audit_log: &self.audit,
        }
    }

    fn statuses(&self) -> Vec<String> {
        common::read_records(&self.audit)
            .iter()
            .map(|r| r["status"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn prism() -> String {
    std::env::var("SALVE_PRISM_URL")
        .expect("SALVE_PRISM_URL: run the tests through scripts/test.sh, which starts Prism")
}

/// A group in moto that allows HTTPS from 10.0.0.0/8, and a state that declares exactly that.
async fn managed_group(dir: &Path) -> (String, PathBuf) {
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    let group = ec2
        .create_security_group()
        .group_name(common::unique("tf-web"))
        .description("declared in terraform")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission(443, "10.0.0.0/8"))
        .send()
        .await
        .unwrap();
    let state = serde_json::json!({
        "version": 4, "terraform_version": "1.9.8", "resources": [{
            "module": "module.network", "mode": "managed", "type": "aws_security_group",
            "name": "web", "instances": [{"attributes": {
                "id": group, "name": "web", "description": "tags and descriptions are not drift",
                "ingress": [{"protocol": "tcp", "from_port": 443, "to_port": 443,
                    "cidr_blocks": ["10.0.0.0/8"], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                    "security_groups": [], "self": false, "description": "https"}]}}]}]
    });
    let path = dir.join("terraform.tfstate");
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    (group, path)
}

fn permission(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

fn workspace(state: &Path, forge: &str) -> String {
    std::env::set_var("SALVE_TEST_GITHUB_TOKEN", "test-token-not-a-secret");
    format!(
        r#"
[[iac.terraform]]
name = "network"
accounts = ["123456789012"]
regions = ["us-east-1"]
repository = "{}"
state = "{}"
{forge}
"#,
        common::repo_root().display(),
        state.display()
    )
}

fn forge() -> String {
    format!(
        r#"forge = {{ type = "github", api-url = "{}", repo = "acme/network", token-env = "SALVE_TEST_GITHUB_TOKEN", labels = ["security"] }}
author = {{ name = "salve", email = "salve@example.com" }}"#,
        prism()
    )
}

fn group_arn(group: &str) -> String {
    format!("arn:aws:ec2:us-east-1:123456789012:security-group/{group}")
}

#[tokio::test]
async fn a_fix_that_was_undone_is_a_regression_the_notifier_hears_of_and_the_gate_fails_on() {
    let (hook, received) = common::serve_http(vec![(200, "ok".into())]).await;
    let s = Setup::new(
        "drift-regression",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        &format!(
            "[notify.routes.ops]\non = [\"regression\"]\nwebhook-url = \"http://{hook}/hook\"\n"
        ),
    )
    .await;
    let bucket = common::unique("drift-bucket");
    let s3 = common::s3().await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let r = common::process_one(
        &s.pipeline,
        common::s3_finding("drift-1", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "remediated", "{r:#}");

    // Fixed: the check finds nothing and writes nothing.
    let now = salve::timestamp::now();
    let (report, verdict) = s.drift().gate(&Scope::default(), now).await.unwrap();
    assert_eq!(verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.resources.len(), 1);
    assert_eq!(report.resources[0].outcome, Outcome::Agrees);
    assert!(report.records.is_empty());

    // Someone removes the block by hand, with another client: boto3, from moto's virtualenv.
    let out = std::process::Command::new(common::repo_root().join(".venv/bin/python"))
        .args([
            "-c",
            "import os, sys, boto3; boto3.client('s3', endpoint_url=os.environ['SALVE_MOTO_ENDPOINT'], region_name='us-east-1').delete_public_access_block(Bucket=sys.argv[1])",
            &bucket,
        ])
        .output()
        .expect("the project's virtualenv: run the tests through scripts/test.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (report, verdict) = s.drift().gate(&Scope::default(), now).await.unwrap();
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    assert_eq!(verdict.exit_code(), 1);
    let c = &report.resources[0];
    assert_eq!(c.resource_arn, format!("arn:aws:s3:::{bucket}"));
    assert_eq!(c.outcome, Outcome::Drifted);
    let d = &c.drifts[0];
    assert_eq!(d.reference, Reference::Fix);
    assert_eq!(d.attribute, "s3-bucket.put-public-access-block");
    assert_eq!(d.finding_id.as_deref(), Some("drift-1"));
    assert_eq!(
        d.fix.as_ref().unwrap().sequence,
        r["sequence"].as_u64().unwrap()
    );

    let records = common::read_records(&s.audit);
    let drift = records.last().unwrap();
    assert_eq!(drift["status"], "drift-detected");
    assert_eq!(drift["drift"]["drifts"][0]["reference"], "fix");
    assert_eq!(drift["notifications"][0]["delivered"], true, "{drift:#}");
    let bodies = received.await.unwrap();
    assert!(
        bodies[0].contains("a fix salve made was undone"),
        "{bodies:?}"
    );

    // The same drift again is not recorded again; it stays open since the first record.
    let before = records.len();
    let report = s
        .drift()
        .check(&Scope::default(), now + HOUR)
        .await
        .unwrap();
    assert_eq!(common::read_records(&s.audit).len(), before);
    assert_eq!(report.resources[0].since, c.since);

    // The report counts the regression as the (bucket, S3.8) pair recurring.
    let report = salve::scorecard::report(
        std::slice::from_ref(&s.audit),
        salve::scorecard::ReportOptions {
            now: salve::timestamp::now(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (
            report.recurrence.remediated_pairs,
            report.recurrence.recurred_pairs
        ),
        (1, 1)
    );
    assert_eq!(report.drift.detected, 1);

    // Scope: another account reads nothing.
    let other = Scope::new(vec!["999999999999".into()], vec![], vec![], &[], &[]).unwrap();
    assert!(s
        .drift()
        .check(&other, now)
        .await
        .unwrap()
        .resources
        .is_empty());
}

#[tokio::test]
async fn a_regression_is_fixed_again_when_the_policy_says_so() {
    let s = Setup::new(
        "drift-remediate",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        "[drift]\nremediate-regressions = true\n",
    )
    .await;
    let bucket = common::unique("drift-again");
    let s3 = common::s3().await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let r = common::process_one(
        &s.pipeline,
        common::s3_finding("drift-2", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    s3.delete_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let report = s
        .drift()
        .check(&Scope::default(), salve::timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        report.requeued,
        vec![("drift-2".to_string(), "remediated".to_string())]
    );
    assert_eq!(
        common::public_access_block(&s3, &bucket).await,
        Some([true; 4])
    );
    assert_eq!(
        s.statuses()[1..],
        ["drift-detected", "remediated"],
        "the drift is recorded before the fix that answers it"
    );
}

#[tokio::test]
async fn terraform_drift_break_glass_overdue_and_reconciliation() {
    let dir = common::scratch("drift-terraform-state");
    let (group, state) = managed_group(&dir).await;
    let (hook, received) = common::serve_http(vec![(200, "ok".into())]).await;
    let s = Setup::new(
        "drift-terraform",
        &common::endpoint(),
        &[],
        &format!(
            "{}\n[notify.routes.ops]\non = [\"break-glass-overdue\"]\nwebhook-url = \"http://{hook}/hook\"\n",
            workspace(&state, &forge())
        ),
    )
    .await;
    let arn = group_arn(&group);
    let scope = Scope::new(
        vec![],
        vec![],
        vec!["network".into()],
        &[],
        &s.config.iac.terraform,
    )
    .unwrap();
    let now = salve::timestamp::now();
    let (report, verdict) = s.drift().gate(&scope, now).await.unwrap();
    assert_eq!(verdict, Verdict::Clean, "{report:#?}");

    // An incident: SSH opened to the world by hand.
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission(22, "0.0.0.0/0"))
        .send()
        .await
        .unwrap();
    let (report, verdict) = s.drift().gate(&scope, now).await.unwrap();
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    let c = report.drifted().next().unwrap();
    assert_eq!(c.resource_arn, arn);
    let d = &c.drifts[0];
    assert_eq!(d.reference, Reference::Terraform);
    assert_eq!(d.attribute, "ingress");
    assert_eq!(
        d.address.as_deref(),
        Some("module.network.aws_security_group.web")
    );
    assert_eq!(d.workspace.as_deref(), Some("network"));
    assert_eq!(
        d.declared,
        serde_json::json!(["tcp 443-443 from 10.0.0.0/8"])
    );
    assert_eq!(
        d.live,
        serde_json::json!(["tcp 22-22 from 0.0.0.0/0", "tcp 443-443 from 10.0.0.0/8"])
    );
    let text = salve::drift::render(&report, Some(verdict));
    assert!(text.contains("reconcile the code"), "{text}");
    assert!(text.contains("revert the live change"), "{text}");

    // Break-glass: recorded, a reconciliation issue through Prism, and the gate passes with a
    // warning that shows the time left.
    let opened = s
        .drift()
        .open_break_glass(
            &OpenRequest {
                resource_arn: arn.clone(),
                reason: "incident 42: bastion down".into(),
                by: "alice".into(),
                ticket: Some("https://tickets.example.com/42".into()),
            },
            now,
        )
        .await
        .unwrap();
    assert!(opened.issue.is_some(), "{opened:?}");
    assert_eq!(opened.issue_error, None);
    assert_eq!(opened.due_at, salve::timestamp::format(now + 48 * HOUR));
    let again = s
        .drift()
        .open_break_glass(
            &OpenRequest {
                resource_arn: arn.clone(),
                reason: "again".into(),
                by: "bob".into(),
                ticket: None,
            },
            now,
        )
        .await
        .unwrap_err();
    assert!(
        format!("{again}").contains("already has a break-glass window"),
        "{again}"
    );

    let (report, verdict) = s.drift().gate(&scope, now + HOUR).await.unwrap();
    assert_eq!(verdict, Verdict::Covered, "{report:#?}");
    assert_eq!(verdict.exit_code(), 0);
    let text = salve::drift::render(&report, Some(verdict));
    assert!(text.contains("covered: 47h 0m left"), "{text}");

    // 49 hours later, unreconciled: the gate fails again, and the notifier is told once.
    let late = now + 49 * HOUR;
    let (report, verdict) = s.drift().gate(&scope, late).await.unwrap();
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    assert!(salve::drift::render(&report, Some(verdict)).contains("overdue by 1h 0m"));
    let overdue: Vec<_> = common::read_records(&s.audit)
        .into_iter()
        .filter(|r| r["status"] == "break-glass-overdue")
        .collect();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["notifications"][0]["delivered"], true);
    assert!(received.await.unwrap()[0].contains("break-glass-overdue"));
    s.drift().gate(&scope, late).await.unwrap();
    assert_eq!(
        s.statuses()
            .iter()
            .filter(|s| *s == "break-glass-overdue")
            .count(),
        1
    );
    let history = History::read(&s.audit).unwrap();
    let listed = salve::drift::break_glass::list(&history, late);
    assert!(salve::drift::break_glass::render(&listed).contains("OVERDUE by 1h 0m"));
    // The report counts it: open at the report's end, and overdue.
    let report = |until: i64| {
        salve::scorecard::report(
            std::slice::from_ref(&s.audit),
            salve::scorecard::ReportOptions {
                until: Some(until),
                now: until,
                ..Default::default()
            },
        )
        .unwrap()
        .drift
    };
    let counts = report(salve::timestamp::now() + 49 * HOUR);
    assert_eq!(
        (
            counts.detected,
            counts.break_glass_opened,
            counts.break_glass_overdue
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (counts.break_glass_open, counts.break_glass_open_overdue),
        (1, 1)
    );

    // Reconciled by reverting the live change: the drift resolves and the window closes itself.
    ec2.revoke_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission(22, "0.0.0.0/0"))
        .send()
        .await
        .unwrap();
    let (report, verdict) = s.drift().gate(&scope, late).await.unwrap();
    assert_eq!(verdict, Verdict::Clean, "{report:#?}");
    let statuses = s.statuses();
    assert_eq!(
        statuses[statuses.len() - 2..],
        ["drift-resolved", "break-glass-closed"]
    );
    let history = History::read(&s.audit).unwrap();
    assert!(history.unclosed(&arn).is_none());
    assert!(history.windows[0]
        .closed
        .as_ref()
        .unwrap()
        .by
        .contains("drift check"));
}

#[tokio::test]
async fn a_gate_that_cannot_check_exits_2() {
    let dir = common::scratch("drift-undecided-state");
    let (_, state) = managed_group(&dir).await;
    // Nothing listens on port 9: no session, no read.
    let s = Setup::new(
        "drift-undecided",
        "http://127.0.0.1:9",
        &[],
        &workspace(&state, ""),
    )
    .await;
    let (report, verdict) = s
        .drift()
        .gate(&Scope::default(), salve::timestamp::now())
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::Undecided, "{report:#?}");
    assert_eq!(verdict.exit_code(), 2);
    assert_eq!(report.resources[0].outcome, Outcome::Unknown);
    assert!(
        report.resources[0].reasons[0].contains("no read session"),
        "{report:#?}"
    );

    // An unreadable state cannot pass either.
    std::fs::write(&state, b"{\"version\": 4, \"resources\": 7}").unwrap();
    let s = Setup::new(
        "drift-unreadable",
        &common::endpoint(),
        &[],
        &workspace(&state, ""),
    )
    .await;
    let (report, verdict) = s
        .drift()
        .gate(&Scope::default(), salve::timestamp::now())
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::Undecided);
    assert!(
        report.problems[0].contains("workspace \"network\""),
        "{report:#?}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_a_malformed_window_never_opens_the_gate() {
    let dir = common::scratch("drift-bad-state");
    let (group, state) = managed_group(&dir).await;
    let s = Setup::new(
        "drift-bad",
        &common::endpoint(),
        &[],
        &workspace(&state, ""),
    )
    .await;
    let e = Scope::new(
        vec![],
        vec![],
        vec![],
        &["AWS::Lambda::Function".into()],
        &[],
    )
    .unwrap_err();
    assert!(format!("{e}").contains("AWS::S3::Bucket"), "{e}");
    let e = Scope::new(
        vec![],
        vec![],
        vec!["nope".into()],
        &[],
        &s.config.iac.terraform,
    )
    .unwrap_err();
    assert!(format!("{e}").contains("network"), "{e}");

    let open = |arn: &str| OpenRequest {
        resource_arn: arn.into(),
        reason: "incident".into(),
        by: "alice".into(),
        ticket: None,
    };
    let now = salve::timestamp::now();
    let e = s
        .drift()
        .open_break_glass(&open("arn:aws:s3:::a-bucket-salve-never-saw"), now)
        .await
        .unwrap_err();
    assert!(format!("{e}").contains("salve does not know"), "{e}");
    let e = s
        .drift()
        .open_break_glass(&open("not-an-arn"), now)
        .await
        .unwrap_err();
    assert!(format!("{e}").contains("is not an ARN"), "{e}");

    // A window the state's workspace has no forge for opens, and says no issue was opened.
    let arn = group_arn(&group);
    let opened = s.drift().open_break_glass(&open(&arn), now).await.unwrap();
    assert!(opened.issue_error.unwrap().contains("no forge"));
    s.drift()
        .close_break_glass(&arn, "alice", "done")
        .await
        .unwrap();

    // A break-glass record whose due time is not a time covers nothing.
    s.pipeline
        .record_operation(salve::audit::AuditEntry {
            resource_arn: Some(arn.clone()),
            status: Some(Status::BreakGlassOpened),
            break_glass: Some(salve::drift::BreakGlassRecord {
                by: Some("mallory".into()),
                reason: Some("forever".into()),
                opened_at: Some("2026-12-01T00:00:00Z".into()),
                due_at: Some("never".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission(3389, "0.0.0.0/0"))
        .send()
        .await
        .unwrap();
    let (report, verdict) = s.drift().gate(&Scope::default(), now).await.unwrap();
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    assert!(salve::drift::render(&report, Some(verdict)).contains("malformed"));
}

/// The binary: `drift gate` with no credentials exits 2, and so does one whose config is bad;
/// `break-glass list` shows a window.
#[tokio::test]
async fn the_gate_command_exits_2_without_credentials() {
    let dir = common::scratch("drift-cli");
    let (_, state) = managed_group(&dir).await;
    let config = dir.join("salve.toml");
    std::fs::write(
        &config,
        format!(
            "deployment = \"salve-tests\"\n[accounts.\"123456789012\"]\nname = \"test\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve-remediation\"\n{}",
            workspace(&state, "")
        ),
    )
    .unwrap();
    let gate = |extra: &[(&str, &str)], config: &Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_salve"));
        c.args(["drift", "gate", "--config"])
            .arg(config)
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .arg("--fixers")
            .arg(dir.join("no-fixers"))
            .env("SALVE_ENDPOINT_URL", common::endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // No credentials anywhere: no read session, so it cannot decide.
    let out = gate(
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
        &config,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("GATE CANNOT DECIDE"), "{stdout}");
    // With moto's credentials the same gate passes.
    let out = gate(&[], &config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A config that does not parse cannot decide either.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[drift]\nbreak-glass-hours = 0\n").unwrap();
    let out = gate(&[], &bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("break-glass-hours"));
}

/// The gate over one Terraform state holding `resources`, for `kind` alone, against moto at
/// `url` (or a proxy in front of it).
async fn gate_on_state(
    name: &str,
    kind: &str,
    resources: Vec<serde_json::Value>,
    url: &str,
) -> (salve::drift::Report, Verdict) {
    let state = serde_json::json!({"version": 4, "terraform_version": "1.9.8",
        "resources": resources});
    // Setup::new clears its own scratch folder, so the state lives in another.
    let path = common::scratch(&format!("{name}-state")).join("terraform.tfstate");
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let s = Setup::new(name, url, &[], &workspace(&path, &forge())).await;
    let scope = Scope::new(
        vec![],
        vec![],
        vec!["network".into()],
        &[kind.into()],
        &s.config.iac.terraform,
    )
    .unwrap();
    s.drift()
        .gate(&scope, salve::timestamp::now())
        .await
        .unwrap()
}

/// The one drifted resource's ARN, and its one drift as (attribute, declared, live, address).
fn one_drift(
    report: &salve::drift::Report,
) -> (
    String,
    (String, serde_json::Value, serde_json::Value, String),
) {
    let drifted: Vec<_> = report.drifted().collect();
    assert_eq!(drifted.len(), 1, "{report:#?}");
    assert_eq!(drifted[0].drifts.len(), 1, "{report:#?}");
    let d = &drifted[0].drifts[0];
    (
        drifted[0].resource_arn.clone(),
        (
            d.attribute.clone(),
            d.declared.clone(),
            d.live.clone(),
            d.address.clone().unwrap_or_default(),
        ),
    )
}

/// An EBS volume drifts in `encrypted` alone: the state says the code made it encrypted, but the
/// live volume (moto's, made by hand) is not. A volume that agrees is clean.
#[tokio::test]
async fn a_volume_the_state_declares_encrypted_but_is_not_drifts() {
    let plain = common::moto_volume(false).await;
    let sealed = common::moto_volume(true).await;
    let volume = |name: &str, id: &str, encrypted: bool| {
        serde_json::json!({"mode": "managed", "type": "aws_ebs_volume", "name": name,
            "instances": [{"attributes": {"id": id, "encrypted": encrypted, "kms_key_id": "",
                "availability_zone": "us-east-1a", "size": 8, "tags": {"Name": name}}}]})
    };
    let resources = vec![volume("data", &plain, true), volume("logs", &sealed, true)];
    let (report, verdict) =
        gate_on_state("drift-volume", "ebs-volume", resources, &common::endpoint()).await;
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    assert_eq!(
        one_drift(&report),
        (
            format!("arn:aws:ec2:us-east-1:123456789012:volume/{plain}"),
            (
                "encrypted".into(),
                serde_json::json!(true),
                serde_json::json!(false),
                "aws_ebs_volume.data".into()
            )
        )
    );
    assert_eq!(report.resources.len(), 2, "{report:#?}");
}

/// A DB instance the state declares private but that is public drifts in
/// `publicly_accessible`; one the state declares public, as it is, is clean. RDS is read by
/// filter, so the two share one call.
#[tokio::test]
async fn a_db_instance_the_state_declares_private_but_is_public_drifts() {
    let (opened, kept) = (
        common::unique("drift-db-opened"),
        common::unique("drift-db-kept"),
    );
    common::public_db(&opened).await;
    common::public_db(&kept).await;
    let db = |name: &str, identifier: &str, public: bool| {
        serde_json::json!({"mode": "managed", "type": "aws_db_instance", "name": name,
            "instances": [{"attributes": {"id": format!("db-{name}"), "identifier": identifier,
                "publicly_accessible": public, "engine": "postgres"}}]})
    };
    let resources = vec![db("orders", &opened, false), db("reports", &kept, true)];
    let (report, verdict) =
        gate_on_state("drift-db", "rds-instance", resources, &common::endpoint()).await;
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    assert_eq!(
        one_drift(&report),
        (
            format!("arn:aws:rds:us-east-1:123456789012:db:{opened}"),
            (
                "publicly_accessible".into(),
                serde_json::json!(false),
                serde_json::json!(true),
                "aws_db_instance.orders".into()
            )
        )
    );
    assert_eq!(report.resources.len(), 2, "{report:#?}");
}

/// A network ACL with an SSH entry its state does not declare drifts in `ingress`; one whose
/// state declares exactly its entries is clean (egress and AWS's default rule are not compared),
/// and one that no longer exists is reported deleted without hiding the other two.
#[tokio::test]
async fn a_network_acl_with_an_entry_the_state_lacks_drifts() {
    let https = (120, false, "6", "allow", "0.0.0.0/0", Some((443, 443)));
    let ssh = (100, false, "6", "allow", "0.0.0.0/0", Some((22, 22)));
    let egress = (100, true, "-1", "allow", "0.0.0.0/0", None);
    let opened = common::moto_acl(&[https, ssh, egress]).await;
    let kept = common::moto_acl(&[https, egress]).await;
    let acl = |name: &str, id: &str| {
        serde_json::json!({"mode": "managed", "type": "aws_network_acl", "name": name,
            "instances": [{"attributes": {"id": id, "ingress": [{"rule_no": 120,
                "action": "allow", "protocol": "6", "from_port": 443, "to_port": 443,
                "cidr_block": "0.0.0.0/0", "ipv6_cidr_block": ""}]}}]})
    };
    // An ID list fails whole on one missing ACL; the other two must still be compared.
    let gone = "acl-0123456789abcdef0";
    let resources = vec![
        acl("public", &opened),
        acl("private", &kept),
        acl("gone", gone),
    ];
    let (report, verdict) =
        gate_on_state("drift-acl", "network-acl", resources, &common::endpoint()).await;
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    let (arn, (attribute, declared, live, address)) = one_drift(&report);
    assert_eq!(
        (arn.as_str(), attribute.as_str(), address.as_str()),
        (
            format!("arn:aws:ec2:us-east-1:123456789012:network-acl/{opened}").as_str(),
            "ingress",
            "aws_network_acl.public"
        )
    );
    assert_eq!(
        (declared, live),
        (
            serde_json::json!(["#120 allow tcp 443-443 from 0.0.0.0/0"]),
            serde_json::json!([
                "#100 allow tcp 22-22 from 0.0.0.0/0",
                "#120 allow tcp 443-443 from 0.0.0.0/0"
            ])
        )
    );
    let missing = report
        .resources
        .iter()
        .find(|c| c.resource_arn.ends_with(gone))
        .expect("the missing ACL is reported");
    assert_eq!(missing.outcome, Outcome::Deleted, "{report:#?}");
    assert_eq!(report.resources.len(), 3, "{report:#?}");
}

/// Buckets are read one `GetPublicAccessBlock` each, several at once: a bucket whose block was
/// removed drifts, one that keeps it is clean, one that is gone is reported deleted, and one
/// whose read is denied is unknown on its own, each with its own answer whatever order the
/// reads finish in.
#[tokio::test]
async fn buckets_read_at_once_each_get_their_own_answer() {
    let s3 = common::s3().await;
    let buckets = common::moto_buckets(&s3, "drift-tf", 6).await;
    let all_on = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    // Every other bucket keeps the block its state declares; the rest never got one.
    for b in buckets.iter().step_by(2) {
        s3.put_public_access_block()
            .bucket(b)
            .public_access_block_configuration(all_on.clone())
            .send()
            .await
            .unwrap();
    }
    let gone = common::unique("drift-tf-gone");
    let mut resources = Vec::new();
    for (i, b) in buckets.iter().chain([&gone]).enumerate() {
        let name = format!("b{i}");
        resources.push(
            serde_json::json!({"mode": "managed", "type": "aws_s3_bucket",
            "name": name, "instances": [{"attributes": {"id": b, "bucket": b}}]}),
        );
        resources.push(serde_json::json!({"mode": "managed",
            "type": "aws_s3_bucket_public_access_block", "name": name,
            "instances": [{"attributes": {"id": b, "bucket": b, "block_public_acls": true,
                "ignore_public_acls": true, "block_public_policy": true,
                "restrict_public_buckets": true}}]}));
    }
    // The proxy denies the read of one bucket, as a bucket policy that denies salve would.
    let denied = buckets[1].clone();
    let proxy = common::proxy::CountingProxy::start(&common::endpoint()).await;
    let path = format!("/{denied}/?publicAccessBlock");
    proxy.set_fault(Some(std::sync::Arc::new(move |seen: &common::proxy::Seen| {
        seen.path_and_query.starts_with(&path).then(|| {
            common::proxy::Injected::Respond(
                403,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>denied-1</RequestId></Error>".into(),
            )
        })
    })));
    let (report, verdict) =
        gate_on_state("drift-buckets", "s3-bucket", resources, &proxy.url).await;
    assert_eq!(verdict, Verdict::Drift, "{report:#?}");
    let outcome = |bucket: &str| {
        report
            .resources
            .iter()
            .find(|c| c.resource_arn == format!("arn:aws:s3:::{bucket}"))
            .map(|c| c.outcome)
    };
    for (i, b) in buckets.iter().enumerate() {
        let expected = match i {
            1 => Outcome::Unknown,
            i if i % 2 == 0 => Outcome::Agrees,
            _ => Outcome::Drifted,
        };
        assert_eq!(outcome(b), Some(expected), "{b}: {report:#?}");
    }
    assert_eq!(outcome(&gone), Some(Outcome::Deleted), "{report:#?}");
    let why = report
        .resources
        .iter()
        .find(|c| c.resource_arn.ends_with(&denied))
        .map(|c| c.reasons.join("; "));
    assert!(
        why.as_deref().is_some_and(|w| w.contains("AccessDenied")),
        "{why:?}"
    );
}
