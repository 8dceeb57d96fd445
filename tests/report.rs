//! `salve report`: the metric arithmetic on a hand-built log whose answers are worked out here,
//! the first-observed fallbacks, a log the real pipeline wrote, and the HTML rendered in
//! headless Chromium.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use salve::scorecard::{self, Report, ReportOptions};
use salve::timestamp;

/// 2026-11-02T00:00:00Z, a Monday.
const T0: i64 = 1_793_577_600_000;
const H: i64 = 3_600_000;

fn at(hours: i64) -> String {
    timestamp::format(T0 + hours * H)
}

fn finding(id: &str, severity: &str, control: &str, arn: &str, observed: Option<i64>) -> Value {
    let mut f = json!({
        "id": id, "source": "canonical", "control_id": control, "title": "t",
        "severity": severity, "correlation_id": id,
        "resource": {"arn": arn, "type": "AWS::S3::Bucket", "account_id": "123456789012",
                     "region": "us-east-1", "name": "b", "tags": {}},
    });
    if let Some(h) = observed {
        f["first_observed_at"] = json!(at(h));
    }
    f
}

fn check(name: &str, passed: bool, inputs: Value) -> Value {
    json!({"name": name, "passed": passed, "inputs": inputs, "detail": "d", "on_fail": "skip"})
}

fn triage(checks: Vec<Value>, verdict: &str) -> Value {
    json!({"stage": "triage", "verdict": verdict, "checks": checks, "requires_approval": false})
}

fn risk(priority: &str) -> Value {
    json!({"severity": "HIGH", "exposure": "internet", "exposure_known": true,
           "sensitivity": "internal", "sensitivity_known": true, "score": 9,
           "priority": priority, "urgent": false, "suggest_exception": false})
}

/// One record as the audit log writes it, at `hours` after T0.
fn record(hours: i64, status: &str, finding: &Value, extra: Value) -> String {
    let mut r = json!({
        "timestamp": at(hours),
        "finding_id": finding["id"],
        "status": status,
        "finding": finding,
        "dry_run": false,
        "calls": [],
        "durations_us": {},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        r[k] = v.clone();
    }
    r.to_string()
}

fn approved(source: &str, expires: Option<&str>) -> Value {
    let mut v = json!({"status": "approved", "source": source, "owner": "team-a", "reason": "accepted risk"});
    if let Some(e) = expires {
        v["expires"] = json!(e);
    }
    v
}

fn report_of(lines: &[String], now: i64) -> Report {
    let mut b = scorecard::Builder::new(ReportOptions {
        now,
        ..ReportOptions::default()
    });
    b.read(lines.join("\n").as_bytes()).unwrap();
    b.finish()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("salve-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Ten findings whose metrics are worked out by hand below.
fn hand_built_log(now: i64) -> Vec<String> {
    let b1 = "arn:aws:s3:::b1";
    let f1 = finding("f1", "CRITICAL", "S3.8", b1, Some(0));
    let f2 = finding("f2", "CRITICAL", "S3.8", "arn:aws:s3:::b2", None);
    let f3 = finding("f3", "HIGH", "S3.1", "arn:aws:s3:::b3", Some(1));
    let f5 = finding("f5", "HIGH", "S3.8", b1, Some(199));
    let f6 = finding("f6", "HIGH", "S3.8", "arn:aws:s3:::b6", Some(0));
    let f7 = finding("f7", "HIGH", "S3.8", "arn:aws:s3:::b7", Some(0));
    let f8 = finding("f8", "HIGH", "S3.8", "arn:aws:s3:::b8", Some(0));
    let f9 = finding("f9", "CRITICAL", "S3.8", "arn:aws:s3:::b9", Some(0));
    let f10 = finding("f10", "HIGH", "S3.8", "arn:aws:s3:::b10", Some(0));
    let pass = |name: &str| check(name, true, json!({}));
    let eligible = || {
        triage(
            vec![
                pass("account allowlisted"),
                pass("severity eligible"),
                pass("resource type approved"),
                pass("exception not approved"),
            ],
            "remediate",
        )
    };
    let expires_soon = timestamp::format(now + 5 * 24 * H)[..10].to_string();
    vec![
        // f1: observed at 0, fixed at 10: 10 h.
        record(9, "intent", &f1, json!({})),
        record(
            10,
            "remediated",
            &f1,
            json!({"decision": eligible(), "risk": risk("P2")}),
        ),
        // f2: no observed time; its first record (review at 24) stands in; fixed at 84: 60 h.
        record(24, "review", &f2, json!({"decision": eligible()})),
        record(84, "remediated", &f2, json!({"decision": eligible()})),
        // A redelivery after the fix changes nothing.
        record(85, "already-compliant", &f2, json!({})),
        // f3: observed at 1, fixed at 5: 4 h.
        record(5, "remediated", &f3, json!({"decision": eligible()})),
        // A dry run is not an outcome.
        record(6, "planned", &f3, json!({"dry_run": true})),
        // f5: the same (bucket, control) as f1, non-compliant again and fixed at 200: 1 h, and a
        // recurrence of the pair.
        record(200, "remediated", &f5, json!({"decision": eligible()})),
        // f6: closed by an approved tag exception (no expiry).
        record(
            30,
            "skipped",
            &f6,
            json!({"decision": triage(vec![
            pass("account allowlisted"), pass("resource type approved"),
            check("exception not approved", false, approved("tag", None))], "skip")}),
        ),
        // f7: by a register exception that expires in five days.
        record(
            31,
            "skipped",
            &f7,
            json!({"decision": triage(vec![
            pass("account allowlisted"), pass("resource type approved"),
            check("exception not approved", false, approved("register", Some(&expires_soon)))], "skip")}),
        ),
        // f8: not eligible at all (its resource type is not approved).
        record(
            32,
            "skipped",
            &f8,
            json!({"decision": triage(vec![
            pass("account allowlisted"),
            check("resource type approved", false, json!({}))], "skip")}),
        ),
        // f9: a P1 that failed and is still open.
        record(
            40,
            "failed",
            &f9,
            json!({"decision": eligible(), "risk": risk("P1")}),
        ),
        // f10: eligible, but no fixer handles it.
        record(
            41,
            "skipped",
            &f10,
            json!({"decision": eligible(), "reason": "no fixer: nothing handles S3.8 for AWS::S3::Bucket"}),
        ),
        // Not a record: counted, not fatal.
        "{\"torn".to_string(),
    ]
}

#[test]
fn metrics_on_a_hand_built_log() {
    let now = T0 + 30 * 24 * H;
    let r = report_of(&hand_built_log(now), now);
    assert_eq!(r.input.unreadable_lines, 1);

    // MTTR, critical: f1 10 h and f2 60 h. Mean 35 h, median (nearest rank) 10 h, p90 60 h.
    assert_eq!(r.mttr.critical.count, 2);
    assert_eq!(r.mttr.critical.mean_hours, Some(35.0));
    assert_eq!(r.mttr.critical.median_hours, Some(10.0));
    assert_eq!(r.mttr.critical.p90_hours, Some(60.0));
    assert_eq!(r.mttr.met, Some(true));
    // f2 took longer than 48 h, and its start was the fallback.
    assert_eq!(r.mttr.missed.len(), 1);
    assert_eq!(r.mttr.missed[0].finding_id, "f2");
    assert_eq!(r.mttr.fallback_starts, 1);
    // HIGH: f3 4 h and f5 1 h.
    assert_eq!(r.mttr.by_severity["HIGH"].mean_hours, Some(2.5));

    // Recurrence: pairs (b1, S3.8), (b2, S3.8), (b3, S3.1) fixed; (b1, S3.8) came back: 1/3.
    assert_eq!(r.recurrence.remediated_pairs, 3);
    assert_eq!(r.recurrence.recurred_pairs, 1);
    assert_eq!(r.recurrence.met, Some(false));
    assert_eq!(r.recurrence.worst_controls[0].name, "S3.8");

    // Exceptions: eligible f1 f2 f3 f5 f6 f7 f9 f10 (8), excepted f6 f7: 25%, over the target.
    assert_eq!(r.exceptions.eligible, 8);
    assert_eq!(r.exceptions.excepted, 2);
    assert_eq!(r.exceptions.rate, Some(0.25));
    assert_eq!(r.exceptions.met, Some(false));
    assert_eq!(r.exceptions.expiring_soon.len(), 1);
    assert_eq!(r.exceptions.expiring_soon[0].finding_id, "f7");
    assert_eq!(r.exceptions.without_expiry.len(), 1);
    assert_eq!(r.exceptions.without_expiry[0].finding_id, "f6");

    // Backlog: only f9, a P1 observed at 0, open for 30 days (the ">30d" bucket starts at 30).
    assert_eq!(r.backlog.open, 1);
    assert_eq!(r.backlog.by_priority["P1"].get(">30d"), Some(&1));
    assert_eq!(r.backlog.oldest_p1[0].finding_id, "f9");
    assert!((r.backlog.oldest_p1[0].age_days - 30.0).abs() < 1e-9);

    // Coverage: 9 findings, salve acted on f1 f2 f3 f5 f9; the others: two exceptions (not a
    // gap), a type not approved, no fixer.
    assert_eq!(r.coverage.findings, 9);
    assert_eq!(r.coverage.acted_on, 5);
    let reasons: Vec<&str> = r
        .coverage
        .top_reasons
        .iter()
        .map(|x| x.name.as_str())
        .collect();
    assert_eq!(reasons, ["no fixer", "resource type not approved"]);

    // Trend: the week of 2026-11-02 holds f1 f2 f3; f5 is fixed in the week of 2026-11-09.
    assert_eq!(r.trend[0].week, "2026-11-02");
    assert_eq!(r.trend[0].remediated, 3);
    assert_eq!(r.trend[1].week, "2026-11-09");
    assert_eq!(r.trend[1].remediated, 1);
    assert_eq!(r.trend[1].recurred, 1);
}

/// The daemon's `/metrics` gauges: the same definitions, kept up to date record by record.
#[test]
fn metrics_gauges_follow_the_report() {
    let now = T0 + 201 * H;
    let lines = hand_built_log(now);
    let mut b = scorecard::Builder::new(ReportOptions {
        now,
        ..ReportOptions::default()
    });
    b.read(lines.join("\n").as_bytes()).unwrap();
    let g = b.gauges(now);
    assert_eq!(g.open_by_priority.get("P1"), Some(&1));
    assert_eq!(g.recurrence_rate, Some(1.0 / 3.0));
    assert_eq!(g.exception_rate, Some(0.25));
    // The last 7 days before 201 h start at 33 h: f2 (60 h) and f5 (1 h).
    assert_eq!(g.mttr_7d_hours, Some(30.5));

    // Through the daemon's endpoint text, seeded from the log on disk.
    let dir = scratch("gauges");
    let log = dir.join("audit.jsonl");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let metrics = salve::metrics::Metrics::default();
    metrics.track_program(&log).unwrap();
    let text = metrics.render();
    for line in [
        "salve_backlog_open{priority=\"P1\"} 1",
        "salve_backlog_open{priority=\"P2\"} 0",
        "salve_exception_rate 0.25",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("salve_recurrence_rate 0.333")),
        "{text}"
    );
    // The 7-day MTTR is taken against the clock, so only its presence is checked here; the
    // arithmetic is checked above at a fixed instant.
    assert!(
        text.lines().any(|l| l.starts_with("salve_mttr_7d_hours ")),
        "{text}"
    );
}

#[test]
fn a_window_counts_outcomes_inside_it_and_keeps_the_history_before() {
    let now = T0 + 30 * 24 * H;
    let lines = hand_built_log(now);
    let mut b = scorecard::Builder::new(ReportOptions {
        since: Some(T0 + 50 * H),
        until: Some(T0 + 150 * H),
        now,
        ..ReportOptions::default()
    });
    b.read(lines.join("\n").as_bytes()).unwrap();
    let r = b.finish();
    // Only f2 is fixed between 50 h and 150 h, and its start (24 h) comes from before.
    assert_eq!(r.mttr.critical.count, 1);
    assert_eq!(r.mttr.critical.mean_hours, Some(60.0));
    // f5's recurrence at 200 h is after the window.
    assert_eq!(r.recurrence.remediated_pairs, 1);
    assert_eq!(r.recurrence.recurred_pairs, 0);
}

#[test]
fn groups_split_the_same_numbers() {
    let now = T0 + 30 * 24 * H;
    let mut b = scorecard::Builder::new(ReportOptions {
        now,
        by: Some(scorecard::GroupBy::Control),
        ..ReportOptions::default()
    });
    b.read(hand_built_log(now).join("\n").as_bytes()).unwrap();
    let r = b.finish();
    let s31 = r.groups.iter().find(|g| g.name == "S3.1").unwrap();
    assert_eq!((s31.findings, s31.remediated), (1, 1));
    assert_eq!(s31.mttr.mean_hours, Some(4.0));
    let s38 = r.groups.iter().find(|g| g.name == "S3.8").unwrap();
    assert_eq!(s38.findings, 8);
    assert_eq!(s38.recurrence_rate, Some(0.5));
}

#[test]
fn rotated_and_repeated_logs_are_read_once() {
    let dir = scratch("rotated");
    let now = T0 + 30 * 24 * H;
    let lines: Vec<String> = hand_built_log(now)
        .into_iter()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str::<Value>(&l) {
            Ok(mut v) => {
                v["record_hash"] = json!(format!("{:032x}{}", i + 1, "0".repeat(32)));
                v.to_string()
            }
            Err(_) => l,
        })
        .collect();
    let (a, b) = lines.split_at(6);
    std::fs::write(dir.join("audit.jsonl.1"), a.join("\n")).unwrap();
    std::fs::write(dir.join("audit.jsonl"), b.join("\n")).unwrap();
    // The whole log again, as a concatenated copy.
    std::fs::write(dir.join("copy.jsonl"), lines.join("\n")).unwrap();
    let r = scorecard::report(
        std::slice::from_ref(&dir),
        ReportOptions {
            now,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.input.sources.len(), 3);
    assert_eq!(r.input.duplicate_records, 13);
    assert_eq!(r.mttr.critical.count, 2);
    assert_eq!(r.exceptions.excepted, 2);
}

/// The real pipeline writes the records: an S3 finding with a first-observed time fixed through
/// the in-memory backend, one without.
#[tokio::test]
async fn a_log_the_pipeline_wrote_reports_its_fix() {
    let dir = scratch("pipeline");
    let audit = dir.join("audit.jsonl");
    let p = common::pipeline(
        &[common::fixer("s3-block-public-access")],
        salve::runtime::RuntimeLimits::default(),
        Box::new(salve::in_memory::BucketPerFinding::default()),
        &audit,
        Default::default(),
    );
    let observed = timestamp::format(timestamp::parse("2026-11-20T08:00:00Z").unwrap());
    for (id, first) in [("obs", Some(observed.as_str())), ("no-obs", None)] {
        let mut f = json!({
            "id": id, "control_id": "S3.8", "title": "public bucket", "severity": "CRITICAL",
            "resource": {"arn": format!("arn:aws:s3:::report-{id}"), "type": "AWS::S3::Bucket",
                         "account_id": common::ACCOUNT, "region": "us-east-1",
                         "tags": {"owner": "team-a", "environment": "dev"}},
        });
        if let Some(t) = first {
            f["first_observed_at"] = json!(t);
        }
        let r = common::process_one(&p, f.to_string().as_bytes(), Default::default()).await;
        assert_eq!(r["status"], "remediated", "{r:#}");
        assert_eq!(r["finding"]["first_observed_at"], json!(first), "{r:#}");
    }
    drop(p);
    let r = scorecard::report(
        &[audit],
        ReportOptions {
            // The records are stamped with the real clock; a fixed "now" would one day precede them.
            now: timestamp::now(),
            ..ReportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.input.unreadable_lines, 0);
    assert_eq!(r.mttr.critical.count, 2);
    assert_eq!(r.mttr.fallback_starts, 1);
    assert_eq!(r.recurrence.remediated_pairs, 2);
    assert_eq!(r.coverage.acted_on, 2);
    // The observed one started days before salve saw it.
    assert!(
        r.mttr.critical.p90_hours.unwrap() > 24.0,
        "{:?}",
        r.mttr.critical
    );
}

/// The Lambda's audit sink objects in S3 (moto), read by the command line with salve's own
/// credentials, give the same numbers as the log they came from; a dead endpoint is a clear
/// error, not a report of nothing.
#[tokio::test]
async fn the_audit_sink_in_s3_reads_like_the_local_log() {
    let now = T0 + 30 * 24 * H;
    let lines = hand_built_log(now);
    let s3 = common::s3().await;
    let bucket = common::unique("salve-report-sink");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // As the sink names them: one object per batch, keyed by the sequence range.
    for (i, chunk) in lines.chunks(5).enumerate() {
        s3.put_object()
            .bucket(&bucket)
            .key(format!(
                "audit/chain-a/{:012}-{:012}.jsonl",
                i * 5,
                i * 5 + chunk.len() - 1
            ))
            .body(chunk.join("\n").into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    let run = |endpoint: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(["report", "--output", "json", "--audit-log"])
            .arg(format!("s3://{bucket}/audit"))
            .env("SALVE_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap()
    };
    let out = run(common::endpoint());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], 1);
    assert_eq!(r["input"]["sources"].as_array().unwrap().len(), 3);
    assert_eq!(r["mttr"]["critical"]["count"], 2);
    assert_eq!(r["recurrence"]["recurred_pairs"], 1);
    assert_eq!(r["exceptions"]["excepted"], 2);
    assert_eq!(r["input"]["unreadable_lines"], 1);

    let dead = run("http://127.0.0.1:9".into());
    assert!(!dead.status.success());
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(
        err.contains(&format!("listing s3://{bucket}/audit")),
        "{err}"
    );
}

fn first_observed(fixture: &str) -> Vec<Option<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/payloads")
        .join(fixture);
    let payload = std::fs::read(&path).unwrap();
    salve::ingest::ingest(&payload, &Default::default())
        .into_iter()
        .map(|i| match i.outcome {
            salve::ingest::IngestOutcome::Finding(f) => f.first_observed_at,
            other => panic!("{fixture}: {other:?}"),
        })
        .collect()
}

/// Each source's first-observed time, and what happens without one.
#[test]
fn first_observed_times_from_each_source() {
    // Wiz `issue.created`, through SNS.
    assert_eq!(
        first_observed("sns-notification-wiz.json"),
        [Some("2026-11-20T10:15:00.000Z".to_string())]
    );
    // Wiz's own test event sends "2021-07-01M01:01:01Z": not a time, so none (the report falls
    // back to salve's first record), and the finding is still read.
    assert_eq!(first_observed("wiz-test-event.json"), [None]);
    // Security Hub without FirstObservedAt: CreatedAt.
    assert_eq!(
        first_observed("securityhub-event-two-findings.json"),
        [
            Some("2026-11-20T10:15:00.000Z".to_string()),
            Some("2026-11-20T10:15:00.000Z".to_string())
        ]
    );
    // Security Hub's FirstObservedAt wins over CreatedAt; a zone is converted to UTC.
    let asff = json!({"version": "0", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
        "detail": {"findings": [{
            "SchemaVersion": "2018-10-08", "Id": "sh-1", "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            "AwsAccountId": "123456789012", "Region": "us-east-1", "Title": "t",
            "Compliance": {"Status": "FAILED", "SecurityControlId": "S3.8"},
            "Severity": {"Label": "HIGH"}, "RecordState": "ACTIVE", "Workflow": {"Status": "NEW"},
            "FirstObservedAt": "2026-11-19T10:00:00+02:00", "CreatedAt": "2026-11-20T10:15:00.000Z",
            "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::report-bucket", "Region": "us-east-1"}]}]}});
    let out = salve::ingest::ingest(asff.to_string().as_bytes(), &Default::default());
    match &out[0].outcome {
        salve::ingest::IngestOutcome::Finding(f) => {
            assert_eq!(
                f.first_observed_at.as_deref(),
                Some("2026-11-19T08:00:00.000Z")
            )
        }
        other => panic!("{other:?}"),
    }
    // Canonical JSON: optional, and a value that is not a time is refused with the field named.
    let canonical = |t: &str| {
        json!({"id": "c1", "control_id": "S3.8", "severity": "HIGH", "first_observed_at": t,
               "resource": {"arn": "arn:aws:s3:::report-bucket", "type": "AWS::S3::Bucket",
                            "account_id": "123456789012", "region": "us-east-1"}})
        .to_string()
    };
    match &salve::ingest::ingest(
        canonical("2026-11-20 10:15:00").as_bytes(),
        &Default::default(),
    )[0]
    .outcome
    {
        salve::ingest::IngestOutcome::Finding(f) => {
            assert_eq!(
                f.first_observed_at.as_deref(),
                Some("2026-11-20T10:15:00.000Z")
            )
        }
        other => panic!("{other:?}"),
    }
    match &salve::ingest::ingest(canonical("last tuesday").as_bytes(), &Default::default())[0]
        .outcome
    {
        salve::ingest::IngestOutcome::Rejected { reason } => {
            assert!(reason.contains("first_observed_at"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

fn chromium() -> Option<(PathBuf, PathBuf)> {
    let browser =
        PathBuf::from(std::env::var("SALVE_CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let driver = PathBuf::from(
        std::env::var("SALVE_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into()),
    );
    (browser.exists() && driver.exists()).then_some((browser, driver))
}

/// The HTML report as a person sees it in headless Chromium, through chromedriver: the three
/// headline numbers with their targets, charts with drawn bars, and not one request leaving
/// the page (Chromium's own network log is read to prove it).
#[tokio::test]
async fn the_html_report_renders_in_chromium_with_no_network() {
    let Some((browser, driver)) = chromium() else {
        // scripts/test.sh installs both; a run without them must not pass silently.
        panic!("chromium and chromedriver are missing: run ./scripts/test.sh, which installs them (or set SALVE_CHROMIUM and SALVE_CHROMEDRIVER)");
    };
    let dir = scratch("html");
    let now = T0 + 30 * 24 * H;
    let report = report_of(&hand_built_log(now), now);
    let page = dir.join("report.html");
    std::fs::write(&page, scorecard::html::render(&report)).unwrap();
    let shot = webdriver::render(&driver, &browser, &page, &dir.join("profile")).await;

    assert_eq!(
        shot.headline("mttr"),
        "MTTR, critical findings\n35.0 h\ntarget < 48 h · met"
    );
    assert_eq!(
        shot.headline("recurrence"),
        "Recurrence rate\n33.3%\ntarget < 5% · MISSED"
    );
    assert_eq!(
        shot.headline("exception-rate"),
        "Exception rate\n25.0%\ntarget < 20% · MISSED"
    );
    // Missed targets are red (the computed colour, as drawn).
    assert_eq!(shot.colours["recurrence"], "rgb(180, 35, 24)");
    assert_eq!(shot.colours["mttr"], "rgb(6, 118, 71)");
    for chart in ["chart-mttr", "chart-fixed", "chart-exceptions"] {
        let (w, h, bars) = shot.charts[chart];
        assert!(w > 300.0 && h > 100.0, "{chart} is {w}x{h}");
        assert!(bars > 0, "{chart} drew no bar");
    }
    assert!(
        shot.png.len() > 10_000,
        "the screenshot is {} bytes",
        shot.png.len()
    );
    // Every request the page made, from Chromium's own network events for the page: the
    // document itself and nothing else. The control (a page over HTTP opened next) shows the
    // events are being seen at all.
    assert_eq!(
        shot.page_requests,
        [format!("file://{}", page.display())],
        "the report page made requests"
    );
    assert!(
        shot.control_requests
            .iter()
            .any(|u| u.starts_with(&shot.control)),
        "no network event for the control page {}: {:?}",
        shot.control,
        shot.control_requests
    );
    // Kept as a build artifact (README: "The report").
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("report.png"), &shot.png).unwrap();
    std::fs::copy(&page, artifacts.join("report.html")).unwrap();
}

/// Just enough of the W3C WebDriver protocol (over chromedriver's HTTP port) to look at a page
/// the way a person would: rendered text, computed colours, element boxes and a screenshot.
mod webdriver {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::{json, Value};

    const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

    pub struct Rendered {
        headlines: BTreeMap<String, String>,
        /// The computed colour of each headline's number, as `rgb(r, g, b)`.
        pub colours: BTreeMap<String, String>,
        /// Each chart's drawn width, height and number of bars.
        pub charts: BTreeMap<String, (f64, f64, usize)>,
        pub png: Vec<u8>,
        /// Every URL the report page requested (`Network.requestWillBeSent`).
        pub page_requests: Vec<String>,
        /// The origin of the one HTTP page opened after the report, as a control, and what its
        /// load requested.
        pub control: String,
        pub control_requests: Vec<String>,
    }

    impl Rendered {
        pub fn headline(&self, id: &str) -> &str {
            &self.headlines[id]
        }
    }

    /// chromedriver goes with the test, whether it passes or panics.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    struct Driver {
        client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
        base: String,
    }

    impl Driver {
        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
            let req = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                )))
                .unwrap();
            let resp = self
                .client
                .request(req)
                .await
                .expect("chromedriver answers");
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes).expect("chromedriver speaks JSON");
            if v["value"].get("error").is_some() {
                panic!("WebDriver {method} {path}: {v}");
            }
            v["value"].clone()
        }

        /// The URLs of the requests documents under `origin` started since the last call, from
        /// the DevTools network events chromedriver keeps in its performance log.
        async fn requests(&self, session: &str, origin: &str) -> Vec<String> {
            let entries = self
                .call(
                    "POST",
                    &format!("/session/{session}/se/log"),
                    Some(json!({"type": "performance"})),
                )
                .await;
            let mut out = Vec::new();
            for e in entries.as_array().into_iter().flatten() {
                let Some(m) = e["message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<Value>(m).ok())
                else {
                    continue;
                };
                let params = &m["message"]["params"];
                // Only what a document of `origin` asked for: the browser's own pages (its new
                // tab page, say) are not the report's requests.
                if m["message"]["method"] == "Network.requestWillBeSent"
                    && params["documentURL"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(origin))
                {
                    if let Some(url) = params["request"]["url"].as_str() {
                        out.push(url.to_string());
                    }
                }
            }
            out
        }

        async fn find(&self, session: &str, css: &str) -> Vec<String> {
            let v = self
                .call(
                    "POST",
                    &format!("/session/{session}/elements"),
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
                .collect()
        }

        async fn one(&self, session: &str, css: &str) -> String {
            self.find(session, css)
                .await
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("no element {css}"))
        }
    }

    fn rgb(css: &str) -> String {
        let inner = css
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')');
        let parts: Vec<&str> = inner.split(',').map(str::trim).take(3).collect();
        format!("rgb({})", parts.join(", "))
    }

    /// Opens `page` in headless Chromium, Chromium logging its network activity to `netlog`,
    /// and then, as a control that the log sees requests at all, one page over HTTP.
    pub async fn render(driver: &Path, browser: &Path, page: &Path, profile: &Path) -> Rendered {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _driver = KillOnDrop(
            std::process::Command::new(driver)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let d = Driver {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            let ready = tokio::time::timeout(Duration::from_secs(1), async {
                let req = hyper::Request::get(format!("{}/status", d.base))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                d.client.request(req).await.is_ok()
            })
            .await;
            if ready == Ok(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = d
            .call(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:loggingPrefs": {"performance": "ALL"},
                    "goog:chromeOptions": {
                        "binary": browser,
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            "--window-size=1100,1800",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }}})),
            )
            .await;
        let session = session["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        let url = format!("file://{}", page.display());
        d.call(
            "POST",
            &format!("/session/{session}/url"),
            Some(json!({"url": url})),
        )
        .await;
        let mut headlines = BTreeMap::new();
        let mut colours = BTreeMap::new();
        for id in ["mttr", "recurrence", "exception-rate"] {
            let e = d.one(&session, &format!("#{id}")).await;
            let text = d
                .call("GET", &format!("/session/{session}/element/{e}/text"), None)
                .await;
            headlines.insert(
                id.to_string(),
                text.as_str().unwrap_or_default().to_string(),
            );
            let v = d.one(&session, &format!("#{id} .value")).await;
            let c = d
                .call(
                    "GET",
                    &format!("/session/{session}/element/{v}/css/color"),
                    None,
                )
                .await;
            colours.insert(id.to_string(), rgb(c.as_str().unwrap_or_default()));
        }
        let mut charts = BTreeMap::new();
        for id in ["chart-mttr", "chart-fixed", "chart-exceptions"] {
            let e = d.one(&session, &format!("#{id}")).await;
            let r = d
                .call("GET", &format!("/session/{session}/element/{e}/rect"), None)
                .await;
            let mut bars = 0;
            for b in d.find(&session, &format!("#{id} rect.bar")).await {
                let r = d
                    .call("GET", &format!("/session/{session}/element/{b}/rect"), None)
                    .await;
                if r["height"].as_f64().unwrap_or(0.0) > 0.0 {
                    bars += 1;
                }
            }
            charts.insert(
                id.to_string(),
                (
                    r["width"].as_f64().unwrap_or(0.0),
                    r["height"].as_f64().unwrap_or(0.0),
                    bars,
                ),
            );
        }
        let page_requests = d.requests(&session, &url).await;
        let shot = d
            .call("GET", &format!("/session/{session}/screenshot"), None)
            .await;
        let png = aws_smithy_types::base64::decode(shot.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        // The control: a request the net log must show.
        d.call(
            "POST",
            &format!("/session/{session}/url"),
            Some(json!({"url": format!("{}/status", d.base)})),
        )
        .await;
        let control_requests = d.requests(&session, &d.base).await;
        d.call("DELETE", &format!("/session/{session}"), None).await;
        Rendered {
            headlines,
            colours,
            charts,
            png,
            page_requests,
            control: d.base.clone(),
            control_requests,
        }
    }
}

/// A new resource with the same control from the same Terraform module recurs the module's
/// earlier fix; another module, or the same resource again, does not.
#[test]
fn a_new_resource_from_the_same_module_is_a_recurrence() {
    let traced = |address: &str| {
        json!({"iac": {"outcome": "located", "workspace": "prod", "address": address,
                        "location": {"resource": {"file": "main.tf", "first_line": 1, "last_line": 3}, "configured_by": []}}})
    };
    let a = finding("m-a", "HIGH", "S3.8", "arn:aws:s3:::a", Some(0));
    let b = finding("m-b", "HIGH", "S3.8", "arn:aws:s3:::b", Some(10));
    let c = finding("m-c", "HIGH", "S3.8", "arn:aws:s3:::c", Some(20));
    let lines = vec![
        record(
            1,
            "remediated",
            &a,
            traced("module.logs[\"x.y\"].aws_s3_bucket.this"),
        ),
        // Another bucket from another module: not the same template.
        record(
            11,
            "remediated",
            &c,
            traced("module.data.aws_s3_bucket.this"),
        ),
        // Another bucket from the same module, later: the template made it again.
        record(
            21,
            "remediated",
            &b,
            traced("module.logs[\"x.y\"].aws_s3_bucket.this"),
        ),
    ];
    let r = report_of(&lines, T0 + 30 * H);
    assert_eq!(r.recurrence.remediated_pairs, 3);
    assert_eq!(r.recurrence.recurred_pairs, 1);
    assert_eq!(r.recurrence.worst_modules.len(), 1);
    assert_eq!(
        r.recurrence.worst_modules[0].name,
        "prod:module.logs[\"x.y\"]"
    );
}
