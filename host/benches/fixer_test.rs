//! `salve fixer test` on one fixer with its four recorded cases, warm (the compiled fixer is in
//! the cache): the whole command, process start to exit, as a CI job would run it.
//!
//! Run: `./scripts/build-fixers.sh && cargo bench -p salve --bench fixer_test`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

const RUNS: usize = 20;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cache = std::env::temp_dir().join(format!("salve-bench-fixer-test-{}", std::process::id()));
    for fixer in ["s3-block-public-access", "sg-close-admin-ports"] {
        let wasm = root.join(format!("build/fixers/{fixer}.wasm"));
        assert!(wasm.exists(), "run scripts/build-fixers.sh first");
        let cases = root.join(format!("fixers/{fixer}/cases"));
        let run = || {
            let started = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_salve"))
                .args(["fixer", "test"])
                .arg(&wasm)
                .arg(&cases)
                .arg("--cache-dir")
                .arg(&cache)
                .output()
                .expect("running salve fixer test");
            let elapsed = started.elapsed();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("4 passed, 0 failed"),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            elapsed
        };
        // The first run compiles the fixer into the cache.
        run();
        let samples: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
        support::report(&format!("fixer test {fixer} (4 cases)"), samples);
    }
    let _ = std::fs::remove_dir_all(&cache);
}
