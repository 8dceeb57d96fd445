//! Lambda cold init: from spawning the `salve` binary as a Lambda `bootstrap` to its first
//! request for an invocation, which is when the Lambda service counts init as done. Both shipped
//! fixers load from the compiled cache (warmed by one run that is not counted). A tiny stand-in
//! for the Lambda runtime API, on loopback, notes the moment the request arrives.
//!
//! Run: `./scripts/build-fixers.sh && cargo bench -p salve --bench lambda_init`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

const RUNS: usize = 30;

/// Spawns the bootstrap and returns the time until it asked for its first invocation, and its
/// peak resident memory by then (MiB).
fn cold_start(scratch: &Path) -> (Duration, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("runtime API stand-in");
    let address = listener.local_addr().expect("address");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_salve"))
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
        .expect("spawning salve");
    let (stream, _) = listener.accept().expect("the bootstrap connects");
    let mut request_line = String::new();
    BufReader::new(&stream)
        .read_line(&mut request_line)
        .expect("request line");
    let elapsed = started.elapsed();
    assert!(
        request_line.starts_with("GET /2018-06-01/runtime/invocation/next"),
        "{request_line}"
    );
    // Read before the process goes: its high-water mark of resident memory so far.
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, rss)
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
    let _ = std::fs::remove_dir_all(&scratch);
}
