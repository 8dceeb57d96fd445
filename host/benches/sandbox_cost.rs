//! The sandbox's cost per finding, with an in-memory capability backend so only salve and
//! wasmtime are measured:
//!
//! - `load (disk cache)`: SHA-256, manifest, deserialising the compiled fixer, link check, `InstancePre`;
//! - `instantiate`: a fresh store and instance from the `InstancePre` (pooling allocator);
//! - `finding`: fresh store + instantiate + `check`, `plan` and `apply` of the real S3 fixer.
//!
//! Run: `cargo bench -p salve --bench sandbox_cost` (after `scripts/build-fixers.sh`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use salve::capabilities::{Capabilities, Phase};
use salve::finding::Finding;
use salve::runtime::{Runtime, RuntimeLimits};
use salve_kind_s3_bucket::host::InMemoryS3Bucket;

mod support;
use support::report;

const ITERATIONS: usize = 5_000;
const WARMUP: usize = 200;

fn main() {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/fixers/s3-block-public-access.wasm");
    let bytes = std::fs::read(&wasm)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-fixers.sh", wasm.display()));
    let cache = std::env::temp_dir().join(format!("salve-bench-cache-{}", std::process::id()));
    let runtime = Runtime::new(RuntimeLimits::default(), Some(cache.clone())).expect("runtime");
    let fixer = runtime
        .load(&bytes)
        .expect("first load compiles and caches");
    let finding = Finding::from_canonical_json(
        br#"{"id":"bench","control_id":"S3.8","severity":"HIGH","resource":{"arn":"arn:aws:s3:::bench-bucket",
        "type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1"}}"#,
    )
    .expect("finding");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    let mut load = Vec::with_capacity(ITERATIONS / 10);
    for i in 0..(ITERATIONS / 10 + WARMUP / 10) {
        runtime.clear_memory_cache();
        let t = Instant::now();
        let loaded = runtime.load(&bytes).expect("load");
        let elapsed = t.elapsed();
        assert_eq!(loaded.artifact, salve::runtime::ArtifactSource::DiskCache);
        if i >= WARMUP / 10 {
            load.push(elapsed);
        }
    }

    let caps = |backend: Arc<InMemoryS3Bucket>| {
        Capabilities::new(
            salve::capabilities::to_wit_finding(&finding),
            BTreeMap::new(),
            salve_kind_s3_bucket::host::bind(backend),
            256,
            64 * 1024,
        )
    };
    let mut instantiate = Vec::with_capacity(ITERATIONS);
    let mut per_finding = Vec::with_capacity(ITERATIONS);
    rt.block_on(async {
        for i in 0..(ITERATIONS + WARMUP) {
            let backend = Arc::new(InMemoryS3Bucket::with(None));
            let t = Instant::now();
            let mut sandbox = runtime
                .start(&fixer, caps(backend.clone()))
                .await
                .expect("start");
            let started = t.elapsed();
            assert!(!sandbox.check(Phase::Check).await.expect("check"));
            let plan = sandbox.plan().await.expect("plan");
            sandbox.apply(&plan).await.expect("apply");
            let total = t.elapsed();
            assert_eq!(backend.writes(), 1);
            if i >= WARMUP {
                instantiate.push(started);
                per_finding.push(total);
            }
        }
    });
    report("load (disk cache)", load);
    report("instantiate", instantiate);
    report("finding (inst+c+p+a)", per_finding);
    let _ = std::fs::remove_dir_all(cache);
}
