//! Throughput of the batch core (`process_batch`) on this machine's cores: every message is a
//! finding the real S3 fixer remediates against its own in-memory bucket, through ingest, triage,
//! the Rego decision, check, plan, apply and verify, and the audit record is written to a real,
//! fsynced file before the message counts as done.
//!
//! Two runs in one process, so their ratio is fair on a noisy machine:
//! - `one at a time`: concurrency 1, so every record gets its own fsync;
//! - `concurrent, group commit`: records finishing together share one fsync, and each message
//!   still waits for its own record to be durable.
//!
//! Run: `./scripts/build-fixers.sh && cargo bench -p salve --bench batch_throughput`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use salve::audit::{AuditLog, Status};
use salve::config::SalveConfig;
use salve::in_memory::BucketPerFinding;
use salve::modes::batch::{process_batch, Disposition, QueueMessage};
use salve::pipeline::{Pipeline, PipelineBuilder};

mod support;

fn pipeline(audit: &Path) -> Pipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = SalveConfig::parse(
        "deployment = \"bench\"\n[accounts.\"123456789012\"]\nname = \"bench\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve\"\n",
        "bench salve.toml",
        &root,
    )
    .expect("config");
    let cache = std::env::temp_dir().join("salve-bench-fixer-cache");
    let pipeline = PipelineBuilder::new(&config)
        .cache_dir(Some(cache))
        .fixer_files(&[root.join("build/fixers/s3-block-public-access.wasm")])
        .audit_log(AuditLog::open(audit).expect("audit log"))
        .build(Box::new(BucketPerFinding::default()))
        .expect("pipeline");
    assert_eq!(
        pipeline.registry().ready.len(),
        1,
        "run scripts/build-fixers.sh first"
    );
    pipeline
}

fn messages(run: &str, n: usize) -> Vec<QueueMessage> {
    (0..n)
        .map(|i| QueueMessage {
            id: format!("{run}-{i}"),
            body: format!(
                r#"{{"id":"{run}-finding-{i}","source":"bench","control_id":"S3.8","title":"public bucket","severity":"HIGH",
                "resource":{{"arn":"arn:aws:s3:::{run}-bucket-{i}","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1",
                "tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
            )
            .into_bytes(),
        })
        .collect()
}

fn run(name: &str, rt: &tokio::runtime::Runtime, n: usize, concurrency: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("salve-bench-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let audit = dir.join(format!("run-{n}-{concurrency}.jsonl"));
    let _ = std::fs::remove_file(&audit);
    let pipeline = Arc::new(pipeline(&audit));
    // Warm the pooling allocator and the code paths.
    rt.block_on(process_batch(
        pipeline.clone(),
        messages("warm", 50),
        concurrency,
    ));
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .collect::<String>()
        .replace(' ', "-");
    let batch = messages(&slug, n);
    let started = Instant::now();
    let results = rt.block_on(process_batch(pipeline, batch, concurrency));
    let wall = started.elapsed();
    for r in &results {
        assert_eq!(r.disposition, Disposition::Ack, "{}", r.id);
        assert_eq!(
            r.statuses,
            [Status::Remediated],
            "{}: {:?}",
            r.id,
            r.reasons.first().cloned().flatten()
        );
    }
    let latencies: Vec<Duration> = results.iter().map(|r| r.elapsed).collect();
    let rate = n as f64 / wall.as_secs_f64();
    println!(
        "{name:<28} {n} findings in {:.2} s = {rate:>8.0} findings/s",
        wall.as_secs_f64()
    );
    support::report(&format!("{name} (latency)"), latencies);
    // The full record each fix writes (its intent and its terminal record), as the log holds it.
    let log = std::fs::read_to_string(&audit).unwrap_or_default();
    let (mut terminal, mut intent) = ((0usize, 0usize), (0usize, 0usize));
    for line in log.lines() {
        let which = if line.contains("\"status\":\"intent\"") {
            &mut intent
        } else {
            &mut terminal
        };
        which.0 += 1;
        which.1 += line.len() + 1;
    }
    let mean = |(count, bytes): (usize, usize)| bytes / count.max(1);
    println!(
        "{name:<28} mean record: terminal {} bytes, intent {} bytes ({} records in the log)",
        mean(terminal),
        mean(intent),
        terminal.0 + intent.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio");
    println!("{cores} worker threads");
    let serial = run("one at a time", &rt, 2_000, 1);
    let grouped = run("concurrent, group commit", &rt, 20_000, 64);
    println!("group commit / one at a time: {:.1}x", grouped / serial);
}
