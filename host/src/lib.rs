//! salve: closes cloud security findings with sandboxed WebAssembly fixers, and records evidence
//! for every decision. `main.rs` is only the command line; each stage lives in its own module.

pub mod actions;
pub mod audit;
pub mod aws;
pub mod capabilities;
pub mod decide;
pub mod finding;
pub mod pipeline;
pub mod registry;
pub mod report;
pub mod runtime;
