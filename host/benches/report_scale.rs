//! `salve report` over a log of a million records: how long it takes and how much memory it
//! holds. The records are copies of real ones: the S3 fixer remediates one finding through the
//! in-memory backend, and its terminal record (and a review and a skipped one) are replayed with
//! new IDs, times and hashes, a third of the findings recording twice (a review, then a fix).
//!
//! `salve audit verify` then checks the same log's chain, to show its memory stays bounded too,
//! and the idempotency ledger is rebuilt as a start does, from the whole log and then from the
//! checkpoint that first rebuild leaves beside it.
//!
//! Run: `./scripts/build-fixers.sh && cargo bench -p salve --bench report_scale [-- RECORDS]`.

use std::io::Write;

use sha2::Digest;
use std::path::Path;
use std::time::Instant;

use salve::audit::AuditLog;
use salve::config::SalveConfig;
use salve::in_memory::BucketPerFinding;
use salve::pipeline::{PipelineBuilder, ProcessOptions};
use salve::scorecard::{self, ReportOptions};
use serde_json::Value;

/// Peak resident memory of this process so far (Linux), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One real terminal record of each status the generator uses.
async fn templates(dir: &Path) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = SalveConfig::parse(
        "deployment = \"bench\"\n[accounts.\"123456789012\"]\nname = \"bench\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve\"\n",
        "bench salve.toml",
        &root,
    )
    .expect("config");
    let audit = dir.join("template.jsonl");
    let pipeline = PipelineBuilder::new(&config)
        .fixer_files(&[root.join("build/fixers/s3-block-public-access.wasm")])
        .audit_log(AuditLog::open(&audit).expect("audit log"))
        .build(Box::new(BucketPerFinding::default()))
        .expect("pipeline (run scripts/build-fixers.sh first)");
    let mut out = Vec::new();
    for (name, tags) in [
        ("fixed", r#"{"owner":"team-a","environment":"dev"}"#),
        ("review", r#"{"environment":"dev"}"#),
    ] {
        let payload = format!(
            r#"{{"id":"{name}","control_id":"S3.8","title":"public bucket","severity":"CRITICAL","first_observed_at":"2026-11-01T00:00:00Z",
            "resource":{{"arn":"arn:aws:s3:::bench-{name}","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1","tags":{tags}}}}}"#
        );
        let processed = pipeline
            .process_payload(payload.as_bytes(), ProcessOptions::default())
            .await
            .expect("process");
        let line = &processed[0].sealed.as_ref().expect("sealed").line;
        out.push(serde_json::from_str(line).expect("record"));
    }
    out
}

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("salve-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let templates = rt.block_on(templates(&dir));
    let (fixed, review) = (&templates[0], &templates[1]);
    assert_eq!(fixed["status"], "remediated", "{fixed:#}");
    assert_eq!(review["status"], "review", "{review:#}");

    let log = dir.join("audit.jsonl");
    let t = Instant::now();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    let start = salve::timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut bytes = 0u64;
    let mut previous = "0".repeat(64);
    for i in 0..records {
        // Finding n records once (fixed) or, for every third, a review first and then the fix.
        let n = i / 3 * 2 + usize::from(i % 3 != 0);
        let template = if i % 3 == 1 { review } else { fixed };
        let mut r = template.clone();
        let id = format!("bench-{n}");
        let at = start + (i as i64) * 15_000;
        r["finding_id"] = Value::String(id.clone());
        r["finding"]["id"] = Value::String(id.clone());
        r["idempotency_key"] = Value::String(format!("finding:{id}:{:032x}", n));
        r["finding"]["control_id"] = Value::String(format!("S3.{}", n % 9));
        r["finding"]["resource"]["arn"] =
            Value::String(format!("arn:aws:s3:::bench-{}", n % 50_000));
        r["finding"]["first_observed_at"] =
            Value::String(salve::timestamp::format(at - 86_400_000));
        r["timestamp"] = Value::String(salve::timestamp::format(at));
        r["sequence"] = Value::from(i);
        // A real chain, so `audit verify` below checks records, not a million problems: the
        // hash is of the record without it, and comes last.
        if let Some(o) = r.as_object_mut() {
            o.remove("record_hash");
        }
        r["previous_hash"] = Value::String(previous.clone());
        let body = serde_json::to_string(&r).unwrap();
        let hash = format!("{:x}", sha2::Sha256::digest(body.as_bytes()));
        let line = format!("{},\"record_hash\":\"{hash}\"}}", &body[..body.len() - 1]);
        previous = hash;
        bytes += line.len() as u64 + 1;
        writeln!(w, "{line}").unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let generated = t.elapsed();
    let before_verify = peak_rss_mib();

    let t = Instant::now();
    let verified = salve::audit::verify(&log).expect("verify");
    let took = t.elapsed();
    assert!(verified.is_intact(), "{:?}", verified.problems.first());
    println!(
        "audit verify: {:.2} s, {:.0} records/s; peak RSS {:.0} MiB after ({before_verify:.0} MiB before)",
        took.as_secs_f64(),
        verified.records as f64 / took.as_secs_f64(),
        peak_rss_mib()
    );
    // Start-up: the idempotency ledger from the whole log (which writes its checkpoint), then
    // from the checkpoint, as the next start does.
    let _ = std::fs::remove_file(salve::idempotency::checkpoint_path(&log));
    for start in ["whole log", "from checkpoint"] {
        let t = Instant::now();
        let (ledger, rebuilt) = salve::idempotency::Ledger::rebuild(&log).expect("ledger");
        println!(
            "ledger at start ({start}): {:.3} s, {} lines read, {} keys handled",
            t.elapsed().as_secs_f64(),
            rebuilt.lines_read,
            ledger.handled_count()
        );
    }
    let before = peak_rss_mib();

    let t = Instant::now();
    let report = scorecard::report(
        std::slice::from_ref(&log),
        ReportOptions {
            now: start + records as i64 * 15_000,
            ..ReportOptions::default()
        },
    )
    .expect("report");
    let took = t.elapsed();
    let after = peak_rss_mib();
    println!(
        "log: {records} records, {:.0} MiB (generated in {:.1} s)",
        bytes as f64 / 1048576.0,
        generated.as_secs_f64()
    );
    println!(
        "report: {:.2} s, {:.0} records/s, {:.0} MiB/s; findings {}, pairs fixed {}",
        took.as_secs_f64(),
        report.input.records as f64 / took.as_secs_f64(),
        bytes as f64 / 1048576.0 / took.as_secs_f64(),
        report.coverage.findings,
        report.recurrence.remediated_pairs
    );
    println!("peak RSS: {before:.0} MiB before the report, {after:.0} MiB after");
    let _ = std::fs::remove_dir_all(&dir);
}
