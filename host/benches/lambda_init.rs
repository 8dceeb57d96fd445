//! Lambda cold init: from spawning the `salve` binary as a Lambda `bootstrap` to its first
//! request for an invocation, which is when the Lambda service counts init as done. Both shipped
//! fixers load from the compiled cache (warmed by one run that is not counted). A tiny stand-in
//! for the Lambda runtime API, on loopback, notes the moment the request arrives. Then, in five
//! more starts, it serves one invocation and reads the peak memory after it: init's layout
//! (host/lambda-init.order) covers init only, and this shows what the first invocation adds.
//!
//! Run: `./scripts/build-fixers.sh && cargo bench -p salve --bench lambda_init`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

const RUNS: usize = 30;

/// The bootstrap, started against a runtime API stand-in listening on `listener`.
fn spawn(scratch: &Path, listener: &TcpListener) -> Child {
    let address = listener.local_addr().expect("address");
    Command::new(env!("CARGO_BIN_EXE_salve"))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "salve-bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("SALVE_CONFIG", scratch.join("salve.toml"))
        .env("SALVE_FIXERS", scratch.join("fixers"))
        .env("SALVE_CACHE_DIR", scratch.join("cache"))
        .env("SALVE_AUDIT_LOG", scratch.join("audit.jsonl"))
        .env("SALVE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning salve")
}

/// The process's high-water mark of resident memory so far (MiB).
fn peak_rss(child: &Child) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Reads one HTTP request's head and body; returns its request line.
fn read_request(reader: &mut BufReader<&TcpStream>) -> String {
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("header");
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("content length");
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    request_line
}

/// Spawns the bootstrap and returns the time until it asked for its first invocation, and its
/// peak resident memory by then (MiB).
fn cold_start(scratch: &Path) -> (Duration, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("runtime API stand-in");
    let started = Instant::now();
    let mut child = spawn(scratch, &listener);
    let (stream, _) = listener.accept().expect("the bootstrap connects");
    let request_line = read_request(&mut BufReader::new(&stream));
    let elapsed = started.elapsed();
    assert!(request_line.starts_with(NEXT), "{request_line}");
    // Read before the process goes.
    let rss = peak_rss(&child);
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, rss)
}

const NEXT: &str = "GET /2018-06-01/runtime/invocation/next";

/// Peak RSS (MiB) at the first `/invocation/next`, and at the second: after one invocation
/// whose finding triage settles (its account is not allowlisted: ingest, decision and a durable
/// record, and no AWS call).
fn first_invocation(scratch: &Path) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("runtime API stand-in");
    let mut child = spawn(scratch, &listener);
    let (stream, _) = listener.accept().expect("the bootstrap connects");
    let mut reader = BufReader::new(&stream);
    assert!(read_request(&mut reader).starts_with(NEXT));
    let at_init = peak_rss(&child);
    let finding = r#"{"id":"bench-1","source":"bench","control_id":"S3.8","title":"public bucket","severity":"HIGH","resource":{"arn":"arn:aws:s3:::bench-1","type":"AWS::S3::Bucket","account_id":"999999999999","region":"us-east-1"}}"#;
    let event = format!(
        r#"{{"Records":[{{"messageId":"m1","receiptHandle":"r","body":{},"attributes":{{}},"messageAttributes":{{}},"md5OfBody":"","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:q","awsRegion":"us-east-1"}}]}}"#,
        serde_json::to_string(finding).expect("finding as a JSON string")
    );
    // Far enough that the deadline margin (--wall-ms plus 3 s) leaves the message time to start.
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 600_000;
    write!(
        &stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nLambda-Runtime-Trace-Id: bench\r\nContent-Length: {}\r\n\r\n{event}",
        event.len()
    )
    .expect("the invocation");
    // The client keeps the connection: the response comes on it, then the next request.
    let response = read_request(&mut reader);
    assert!(
        response.starts_with("POST /2018-06-01/runtime/invocation/bench-1/response"),
        "{response}"
    );
    write!(
        &stream,
        "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .expect("accepted");
    assert!(read_request(&mut reader).starts_with(NEXT));
    let after = peak_rss(&child);
    let _ = child.kill();
    let _ = child.wait();
    (at_init, after)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("salve-bench-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    std::fs::write(
        scratch.join("salve.toml"),
        "deployment = \"bench\"\n[accounts.\"123456789012\"]\nname = \"bench\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve\"\n",
    )
    .expect("config");
    // Two fixers, as the performance issue measures it (build/fixers holds every shipped one).
    std::fs::create_dir_all(scratch.join("fixers")).expect("fixer directory");
    for f in ["s3-block-public-access", "sg-close-admin-ports"] {
        std::fs::copy(
            root.join(format!("build/fixers/{f}.wasm")),
            scratch.join(format!("fixers/{f}.wasm")),
        )
        .expect("run scripts/build-fixers.sh first");
    }
    // The first start compiles both fixers into the cache, as a deploy step would.
    cold_start(&scratch);
    let (samples, rss): (Vec<Duration>, Vec<f64>) = (0..RUNS).map(|_| cold_start(&scratch)).unzip();
    support::report("lambda cold init", samples);
    let mut rss = rss;
    rss.sort_by(f64::total_cmp);
    println!(
        "peak RSS at the first /invocation/next: median {:.1} MiB, max {:.1} MiB",
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
    let (at_init, after): (Vec<f64>, Vec<f64>) = (0..5).map(|_| first_invocation(&scratch)).unzip();
    println!(
        "peak RSS after one invocation (a finding triage settles): median {:.1} MiB (at init {:.1} MiB, 5 runs)",
        median(after),
        median(at_init)
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
