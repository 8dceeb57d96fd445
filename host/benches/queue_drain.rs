//! The daemon draining findings from moto's SQS, in process: long polling, concurrent
//! processing, the audit record fsynced, then DeleteMessage. moto is single-process Python, so
//! it bounds the rate; its share is reported as the CPU time the moto process used over the wall
//! time of the drain (100% means one core busy in moto the whole time).
//!
//! Three workloads:
//! - `skipped at triage`: findings for an account that is not allowlisted, so the only AWS
//!   calls are the queue's own (receive, delete);
//! - `already compliant`: findings for a bucket that is already fixed, through the S3 fixer:
//!   AssumeRole (cached per session policy), reads, verify, plus the queue calls;
//! - `remediated`: one finding a message, each about a public bucket of its own, which the S3
//!   fixer fixes: the findings of one receive share a read session, and each fix has its own
//!   write session.
//!
//! Each line says how many AssumeRole calls each finding cost; from moto's request log
//! (`SALVE_MOTO_LOG`, which scripts/moto.sh sets), how many S3 calls; how many SQS calls the
//! daemon made, by operation; and how many messages the queue still held once every finding was
//! acknowledged (deletes moto lost: see `scripts/moto-delete-race.sh`).
//!
//! Run: `./scripts/bench.sh queue_drain` (starts moto; needs SALVE_MOTO_ENDPOINT and
//! SALVE_MOTO_PID otherwise).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use salve::audit::{AuditLog, Status};
use salve::aws::{AwsBackends, AwsOptions};
use salve::config::SalveConfig;
use salve::metrics::Metrics;
use salve::modes::daemon::{self, DaemonOptions, Health};
use salve::pipeline::PipelineBuilder;

/// 2,000 by default; `SALVE_BENCH_FINDINGS` sets another count (moto's cost per message grows
/// with the queue's length, so smaller runs show how).
fn findings() -> usize {
    std::env::var("SALVE_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Requests in moto's log (`SALVE_MOTO_LOG`, set by scripts/moto.sh) so far: those for buckets
/// whose name starts with `prefix` (path-style, so the bucket is the path's first segment), and
/// all of them, whatever the service; `None` without the log.
fn moto_requests(prefix: &str) -> Option<(usize, usize)> {
    let log = std::fs::read_to_string(std::env::var("SALVE_MOTO_LOG").ok()?).ok()?;
    let marker = format!(" /{prefix}");
    // moto colours the lines of non-2xx answers, so the closing quote may not follow at once.
    let requests = log.lines().filter(|l| l.contains(" HTTP/1.1"));
    let (mut s3, mut all) = (0, 0);
    for line in requests {
        all += 1;
        s3 += usize::from(line.contains(&marker));
    }
    Some((s3, all))
}

/// `SALVE_BENCH_TAG_READ=tagging-api` runs the workloads with `[metadata] tag-read` set so.
fn tag_read() -> String {
    std::env::var("SALVE_BENCH_TAG_READ")
        .map(|mode| format!("[metadata]\ntag-read = \"{mode}\"\n"))
        .unwrap_or_default()
}

/// The daemon's SQS requests, by operation (each attempt of a retried call counts).
#[derive(Debug, Clone, Default)]
struct SqsCalls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Intercept for SqsCalls {
    fn name(&self) -> &'static str {
        "SqsCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _bag: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // SQS's JSON protocol names the operation in this header: `AmazonSQS.DeleteMessageBatch`.
        let target = context.request().headers().get("x-amz-target");
        let operation = target.map_or("?", |t| t.rsplit('.').next().unwrap_or(t));
        let mut calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(operation.to_string()).or_default() += 1;
        Ok(())
    }
}

impl SqsCalls {
    fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// `total/finding (Operation n, ...)`.
    fn per_finding(&self, findings: usize) -> String {
        let calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let total: u64 = calls.values().sum();
        let each: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        format!(
            "{:.2}/finding ({})",
            total as f64 / findings as f64,
            each.join(", ")
        )
    }
}

fn wiz(i: usize, account: &str, bucket: &str) -> String {
    serde_json::json!({
        "trigger": {"source": "CLOUD_EVENTS", "type": "Created", "ruleId": "bench", "ruleName": "salve"},
        "issue": {"id": format!("bench-{account}-{i}-{}", std::process::id()), "status": "OPEN", "severity": "HIGH",
                  "created": "2026-11-20T10:15:00Z"},
        "resource": {"id": format!("arn:aws:s3:::{bucket}"), "name": bucket, "type": "BUCKET", "cloudPlatform": "AWS",
                     "subscriptionId": account, "region": "us-east-1",
                     "tags": {"owner": "platform-team", "environment": "dev"}},
        "control": {"id": "S3.8", "name": "S3.8", "severity": "HIGH"},
    })
    .to_string()
}

async fn drain(
    name: &str,
    sdk: &aws_config::SdkConfig,
    endpoint: &str,
    moto_pid: &str,
    account: &str,
    (bucket_prefix, bucket_of): (&str, impl Fn(usize) -> String),
    expected: Status,
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!(
            "bench-{}-{}",
            name.replace(' ', "-"),
            std::process::id()
        ))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue URL");
    for chunk in (0..findings()).collect::<Vec<_>>().chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(wiz(*i, account, &bucket_of(*i)))
                    .build()
                    .expect("entry")
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send batch");
    }

    let config = SalveConfig::parse(
        &format!("deployment = \"bench\"\n[accounts.\"123456789012\"]\nname = \"bench\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve\"\n{}", tag_read()),
        "bench salve.toml",
        &root,
    )
    .expect("config");
    let backends = Arc::new(AwsBackends::from_config(
        sdk.clone(),
        AwsOptions {
            endpoint_url: Some(endpoint.to_string()),
        },
        "bench",
        config.account_roles(),
    ));
    let audit =
        std::env::temp_dir().join(format!("salve-bench-drain-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let pipeline = PipelineBuilder::new(&config)
        .cache_dir(Some(std::env::temp_dir().join("salve-bench-fixer-cache")))
        .fixer_dir(&root.join("build/fixers"))
        .audit_log(AuditLog::open(&audit).expect("audit log"))
        .build(Box::new(backends.clone()))
        .expect("pipeline");
    let metrics = Arc::new(Metrics::default());
    let sqs_calls = SqsCalls::default();
    let counted = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(sqs_calls.clone())
            .build(),
    );
    let options = DaemonOptions {
        queue_url: queue.clone(),
        max_in_flight: 64,
        max_concurrency: 16,
        wait_time: Duration::from_secs(1),
        ..DaemonOptions::default()
    };
    // Stop the clock when the last message is acknowledged, not after the final empty poll.
    let watched = metrics.clone();
    let done = async move {
        while watched.findings(expected) < findings() as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (moto_before, own_before) = (cpu_seconds(moto_pid), cpu_seconds("self"));
    let requests_before = moto_requests(bucket_prefix);
    let started = Instant::now();
    daemon::run(
        Arc::new(pipeline),
        counted,
        options,
        metrics.clone(),
        Arc::new(Health::default()),
        done,
    )
    .await
    .expect("daemon");
    let wall = started.elapsed().as_secs_f64();
    let moto = cpu_seconds(moto_pid) - moto_before;
    let own = cpu_seconds("self") - own_before;
    assert_eq!(metrics.findings(expected), findings() as u64);
    // moto writes a request's log line after answering it; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The S3 calls on this workload's buckets, and every call the drain made besides the
    // queue's own (STS, S3, the Tagging API).
    let sqs_total = sqs_calls.total();
    let (s3, others) = match (requests_before, moto_requests(bucket_prefix)) {
        (Some((s3_before, all_before)), Some((s3_after, all_after))) => (
            format!(
                "   S3 calls/finding {:.2}",
                (s3_after - s3_before) as f64 / findings() as f64
            ),
            format!(
                "   AWS calls/finding besides SQS {:.2}",
                (all_after.saturating_sub(all_before) as f64 - sqs_total as f64)
                    / findings() as f64
            ),
        ),
        _ => (String::new(), String::new()),
    };
    // Every finding is acknowledged and its message deleted, so anything left is a lost delete.
    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()
        .and_then(|out| out.attributes)
        .map(|a| {
            a.values()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                .to_string()
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "{name:<20} {} findings in {wall:.2} s = {:>6.0} findings/s   moto CPU {:>4.0}% of wall   salve CPU {:>4.0}% of wall   AssumeRole/finding {:.2}{s3}{others}\n{:<20} SQS calls {}   left in the queue {left}",
        findings(),
        findings() as f64 / wall,
        100.0 * moto / wall,
        100.0 * own / wall,
        backends.assumer().sts_calls() as f64 / findings() as f64,
        "",
        sqs_calls.per_finding(findings()),
    );
    let _ = sqs.delete_queue().queue_url(&queue).send().await;
    let _ = std::fs::remove_file(&audit);
}

fn main() {
    let endpoint = std::env::var("SALVE_MOTO_ENDPOINT")
        .expect("SALVE_MOTO_ENDPOINT is not set: run scripts/bench.sh, which starts moto");
    let moto_pid = std::env::var("SALVE_MOTO_PID").expect("SALVE_MOTO_PID is not set");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let bucket = format!("bench-compliant-{}", std::process::id());
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        s3.put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .expect("fix the bucket");
        drain(
            "skipped at triage",
            &sdk,
            &endpoint,
            &moto_pid,
            "999999999999",
            (&bucket, |_| bucket.clone()),
            Status::Skipped,
        )
        .await;
        drain(
            "already compliant",
            &sdk,
            &endpoint,
            &moto_pid,
            "123456789012",
            (&bucket, |_| bucket.clone()),
            Status::AlreadyCompliant,
        )
        .await;
        let public_prefix = format!("bench-public-{}-", std::process::id());
        let public = |i: usize| format!("{public_prefix}{i}");
        // Tagged, as buckets in an account usually are: the Tagging API answers only for
        // resources that have tags (`SALVE_BENCH_TAG_READ=tagging-api`).
        let tags = aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key("owner")
                    .value("platform-team")
                    .build()
                    .expect("tag"),
            )
            .build()
            .expect("tagging");
        for i in 0..findings() {
            s3.create_bucket()
                .bucket(public(i))
                .send()
                .await
                .expect("bucket");
            s3.put_bucket_tagging()
                .bucket(public(i))
                .tagging(tags.clone())
                .send()
                .await
                .expect("tag the bucket");
        }
        drain(
            "remediated",
            &sdk,
            &endpoint,
            &moto_pid,
            "123456789012",
            (&public_prefix, public),
            Status::Remediated,
        )
        .await;
    });
}
