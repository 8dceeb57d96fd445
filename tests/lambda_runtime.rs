//! The binary as a Lambda `bootstrap` under a real Runtime API: cargo-lambda's emulator
//! (`cargo lambda watch --only-lambda-apis`, invoked with `cargo lambda invoke`), moto behind it
//! through the counting proxy. scripts/test.sh installs cargo-lambda into .venv and sets
//! SALVE_CARGO_LAMBDA.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{CountingProxy, Injected, Seen};
use common::*;
use serde_json::{json, Value};

fn cargo_lambda() -> PathBuf {
    PathBuf::from(std::env::var("SALVE_CARGO_LAMBDA").expect(
        "SALVE_CARGO_LAMBDA is not set: run scripts/test.sh, which installs cargo-lambda into .venv",
    ))
}

/// cargo-lambda's Runtime API emulator on a free port.
struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    fn start(dir: &Path, timeout_secs: u32) -> Emulator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("emulator-{port}.log"));
        let child = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--only-lambda-apis"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--timeout", &timeout_secs.to_string()])
            // It reads the workspace's metadata, though it builds nothing.
            .current_dir(repo_root())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting cargo lambda watch");
        let started = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("starting Runtime server")
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the emulator did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Emulator { child, port }
    }

    /// `cargo lambda invoke`: the function's response, or the error it reported.
    fn invoke(&self, dir: &Path, event: &Value) -> Result<Value, String> {
        let file = dir.join(format!("event-{}.json", unique("e")));
        std::fs::write(&file, event.to_string()).unwrap();
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "_", "--data-file"])
            .arg(&file)
            .args(["--invoke-port", &self.port.to_string()])
            .current_dir(repo_root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            serde_json::from_str(stdout.trim()).map_err(|e| format!("{e}: {stdout}"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The salve binary started the way Lambda starts a `bootstrap`: no arguments, environment only.
struct Function {
    child: Child,
    log: PathBuf,
}

impl Function {
    fn start(emulator: &Emulator, dir: &Path, aws: &str, extra_env: &[(&str, String)]) -> Function {
        let config = dir.join("salve.toml");
        std::fs::write(
            &config,
            format!("[accounts.\"{ACCOUNT}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\n"),
        )
        .unwrap();
        let log = dir.join(format!("function-{}.log", unique("f")));
        let mut command = Command::new(env!("CARGO_BIN_EXE_salve"));
        command
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", emulator.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("SALVE_FIXERS", repo_root().join("build/fixers"))
            .env("SALVE_CONFIG", &config)
            .env("SALVE_AUDIT_LOG", dir.join("tmp/salve/audit.jsonl"))
            .env(
                "SALVE_CACHE_DIR",
                repo_root().join("target/test-scratch/lambda-runtime-cache"),
            )
            .env(
                "SALVE_CACHE_KEY_FILE",
                repo_root().join("target/test-scratch/lambda-runtime-cache.key"),
            )
            .env("SALVE_ENDPOINT_URL", aws)
            .env("HOME", dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("starting the bootstrap");
        Function { child, log }
    }

    /// Waits until init is over (fixers compiled or loaded), so an invocation's time is its own.
    fn ready(self) -> Function {
        let started = Instant::now();
        while !self.log().contains("init done") {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the function did not finish init:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sqs_record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id, "receiptHandle": "rh", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:salve",
        "awsRegion": "us-east-1"
    })
}

async fn public_bucket(prefix: &str) -> String {
    let bucket = unique(prefix);
    s3().await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    bucket
}

fn local_records(dir: &Path) -> Vec<Value> {
    let path = dir.join("tmp/salve/audit.jsonl");
    if !path.exists() {
        return Vec::new();
    }
    read_records(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_sns_and_unsupported_events_under_the_runtime_api() {
    let dir = scratch("lambda-runtime-events");
    let proxy = CountingProxy::start(&endpoint()).await;
    proxy.set_fault(Some(Arc::new(|seen: &Seen| {
        (seen.method == "PUT"
            && seen.path_and_query.contains("publicAccessBlock")
            && seen.path_and_query.contains("/throttled-"))
        .then(|| {
            Injected::Respond(
                503,
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".into(),
            )
        })
    })));
    let emulator = Emulator::start(&dir, 120);
    let function = Function::start(&emulator, &dir, &proxy.url, &[]).ready();
    let good = public_bucket("good").await;
    let throttled = public_bucket("throttled").await;

    // An SQS batch: a fix, a malformed message, and a throttled fix.
    let event = json!({"Records": [
        sqs_record("m-good", &s3_finding("rt-good", &good)),
        sqs_record("m-malformed", "{not json"),
        sqs_record("m-throttled", &s3_finding("rt-throttled", &throttled)),
    ]});
    let response = emulator
        .invoke(&dir, &event)
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m-throttled"}]}),
        "{}",
        function.log()
    );
    assert_eq!(
        public_access_block(&s3().await, &good).await,
        Some([true; 4])
    );
    let records = local_records(&dir);
    let by_message = |id: &str| {
        records
            .iter()
            .find(|r| r["delivery"]["message_id"] == id)
            .unwrap_or_else(|| panic!("no record names message {id}: {records:#?}"))
            .clone()
    };
    assert_eq!(by_message("m-good")["status"], "remediated");
    assert_eq!(by_message("m-malformed")["status"], "rejected");
    assert_eq!(by_message("m-throttled")["retryable"], true);
    let log = function.log();
    for id in ["m-good", "m-malformed", "m-throttled"] {
        assert!(
            log.lines()
                .any(|l| l.contains(id) && l.contains("message settled")),
            "no log line for {id}:\n{log}"
        );
    }

    // A topic subscribed straight to the function.
    let sns_bucket = public_bucket("sns").await;
    let event = json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:salve:1",
        "Sns": {"Type": "Notification", "MessageId": "sns-1",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:salve", "Subject": null,
                "Message": s3_finding("rt-sns", &sns_bucket), "Timestamp": "2026-11-23T10:00:00.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x",
                "MessageAttributes": {}}
    }]});
    let response = emulator
        .invoke(&dir, &event)
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert_eq!(response, json!({}));
    assert_eq!(
        public_access_block(&s3().await, &sns_bucket).await,
        Some([true; 4])
    );
    let records = local_records(&dir);
    let sns = records
        .iter()
        .find(|r| r["delivery"]["message_id"] == "sns-1")
        .expect("the SNS record is recorded");
    assert_eq!(sns["status"], "remediated");
    assert_eq!(sns["delivery"]["via"], "sns");

    // An S3 notification: refused with an error, no record, and no acknowledgement.
    let before = local_records(&dir).len();
    let event =
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]});
    let err = emulator.invoke(&dir, &event).unwrap_err();
    assert!(err.contains("unsupported event"), "{err}");
    assert_eq!(local_records(&dir).len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_keeps_tmp_ships_nothing_twice() {
    let dir = scratch("lambda-runtime-restart");
    let sink_bucket = unique("sink");
    s3().await
        .create_bucket()
        .bucket(&sink_bucket)
        .send()
        .await
        .unwrap();
    let sink = format!("s3://{sink_bucket}/audit");
    let emulator = Emulator::start(&dir, 120);
    let env = [("SALVE_AUDIT_SINK", sink.clone())];
    let mut first = Function::start(&emulator, &dir, &endpoint(), &env).ready();
    let bucket = public_bucket("restart-1").await;
    emulator
        .invoke(
            &dir,
            &json!({"Records": [sqs_record("r-1", &s3_finding("rt-r1", &bucket))]}),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", first.log()));
    // A crash or a timeout: the process goes, /tmp stays.
    first.kill();
    let second = Function::start(&emulator, &dir, &endpoint(), &env).ready();
    let bucket = public_bucket("restart-2").await;
    emulator
        .invoke(
            &dir,
            &json!({"Records": [sqs_record("r-2", &s3_finding("rt-r2", &bucket))]}),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));

    // The README's recipe: concatenate the chain's objects in name order, then verify.
    let client = s3().await;
    let listed = client
        .list_objects_v2()
        .bucket(&sink_bucket)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    assert!(keys.len() >= 2, "{keys:?}");
    let mut chain = String::new();
    for key in &keys {
        let body = client
            .get_object()
            .bucket(&sink_bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        chain.push_str(&String::from_utf8(body.to_vec()).unwrap());
    }
    let report = salve::audit::verify_text(&chain);
    assert!(report.is_intact(), "{keys:?}: {:?}", report.problems);
    let local = std::fs::read_to_string(dir.join("tmp/salve/audit.jsonl")).unwrap();
    assert_eq!(chain, local, "the sink holds the log exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_too_short_for_the_batch_retries_what_it_did_not_start() {
    let dir = scratch("lambda-runtime-deadline");
    // Each fix is held up 400 ms on its way to AWS, so a 30-message batch needs about 12 s.
    let proxy = CountingProxy::start(&endpoint()).await;
    proxy.set_fault(Some(Arc::new(|seen: &Seen| {
        (seen.method == "PUT" && seen.path_and_query.contains("publicAccessBlock"))
            .then_some(Injected::Delay(Duration::from_millis(400)))
    })));
    // cargo-lambda's emulator always gives an invocation 600 s (its deadline header); a margin
    // of 598 s leaves the batch 2 s to start messages in, through the same header path as AWS.
    let emulator = Emulator::start(&dir, 30);
    let env = [
        ("SALVE_MAX_CONCURRENCY", "1".to_string()),
        ("SALVE_WALL_MS", "1500".to_string()),
        ("SALVE_DEADLINE_MARGIN_MS", "598000".to_string()),
    ];
    let function = Function::start(&emulator, &dir, &proxy.url, &env).ready();
    let mut records = Vec::new();
    for i in 0..30 {
        let bucket = public_bucket(&format!("deadline-{i}")).await;
        records.push(sqs_record(
            &format!("d-{i}"),
            &s3_finding(&format!("rt-d{i}"), &bucket),
        ));
    }
    let started = Instant::now();
    let response = emulator
        .invoke(&dir, &json!({ "Records": records }))
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the batch went on long after its 2 s to start messages: {:?}",
        started.elapsed()
    );
    let failures: Vec<String> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    assert!(!failures.is_empty() && failures.len() < 30, "{response}");
    // Every message not reported as a failure has its record; the failures that were never
    // started have none.
    let done = local_records(&dir);
    for i in 0..30 {
        let id = format!("d-{i}");
        let recorded = done
            .iter()
            .any(|r| r["delivery"]["message_id"] == id.as_str());
        assert_eq!(recorded, !failures.contains(&id), "{id}: {response}");
    }
}

#[test]
fn init_fails_loudly_without_fixers() {
    let dir = scratch("lambda-runtime-init");
    let emulator = Emulator::start(&dir, 30);
    let empty = dir.join("no-fixers");
    std::fs::create_dir_all(&empty).unwrap();
    let mut function = Function::start(
        &emulator,
        &dir,
        &endpoint(),
        &[("SALVE_FIXERS", empty.display().to_string())],
    );
    let status = function.child.wait().unwrap();
    assert!(!status.success());
    assert!(
        function.log().contains("no fixer is ready"),
        "{}",
        function.log()
    );
}
