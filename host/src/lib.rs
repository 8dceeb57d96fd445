//! salve: closes cloud security findings with sandboxed WebAssembly fixers, and records evidence
//! for every decision. The command line (`src/bin/salve`) only parses flags and prints; what a
//! command sets up is in [`app`], and each stage lives in its own module.
// A finding's future nests the sandbox, the sessions, the read-back and a pull request inside
// the queue modes' tasks; a clean build can exceed rustc's default depth for its layout query
// (an incremental one may not), so the limit is set rather than left to the build's order.
#![recursion_limit = "256"]

// A finding's records, sessions and sandbox state are allocated by one task and freed on another
// thread (the audit writer, or the other runtime worker after work stealing). glibc frees such
// memory under the owning arena's lock, and in `batch_throughput` its lock waits and fastbin
// consolidation cost about a fifth of the time; mimalloc frees across threads without a lock.
// Set here rather than in the binary so tests and benchmarks measure the allocator that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod approval;
pub mod audit;
pub mod audit_sink;
pub mod aws;
pub mod base;
pub mod capabilities;
pub mod config;
pub mod credentials;
pub mod drift;
pub mod finding;
pub mod fixer_test;
pub mod http;
pub mod iac;
pub mod idempotency;
pub mod in_memory;
pub mod ingest;
pub mod kinds;
pub mod latest;
pub mod metrics;
pub mod modes;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod registry;
pub mod report;
pub mod rollback;
pub mod runtime;
pub mod scorecard;
pub mod text;
pub mod timestamp;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Each crate of salve's dependency graph, `name version`, with its enabled features.
    fn features(edges: &str) -> BTreeMap<String, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["tree", "--offline", "-p", "salve", "--prefix", "none"])
            .args(["-e", edges, "-f", "{p}|{f}"])
            .output()
            .expect("running cargo tree");
        assert!(
            out.status.success(),
            "cargo tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(package, f)| {
                // `name vX (path)` for a workspace crate, and `(*)` on a repeat.
                let package = package.split(" (").next().unwrap_or(package);
                (package.to_string(), f.trim_end_matches(" (*)").to_string())
            })
            .collect()
    }

    /// Cargo builds a crate once per feature set, and the tests' dev-dependencies add features:
    /// proptest turned on regex-syntax's Unicode tables, so `regex.match` with `\d` worked in
    /// every test and was "invalid regex" in the shipped binary. Every crate the binary uses
    /// must have the same features in the tests, so that what passed is what ships (and the
    /// benchmarks, which build with the dev-dependencies too, measure the shipped layout).
    #[test]
    fn the_tests_build_every_shipped_crate_with_the_shipped_features() {
        let shipped = features("normal,build");
        let tested = features("normal,build,dev");
        let differ: Vec<String> = shipped
            .iter()
            .filter_map(|(package, f)| {
                let t = tested.get(package)?;
                (t != f).then(|| format!("{package}: shipped [{f}], tested [{t}]"))
            })
            .collect();
        assert!(
            differ.is_empty(),
            "a dev-dependency changes the features of crates the binary uses; name each in \
             host/Cargo.toml [dependencies] with the tested features:\n{}",
            differ.join("\n")
        );
    }
}
