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
