//! The sandbox that runs fixers: one engine, one precompiled `InstancePre` per fixer, and a fresh
//! store per finding with a memory cap, a CPU deadline, a wall-clock deadline, WASI with an empty
//! context, and bounded output.

pub mod cache;
pub mod inspect;
pub mod output;
pub mod state;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

use crate::base::sha256_hex;
use crate::capabilities::{
    self, Binding, CallGate, Capabilities, FixerCorePre, FixerError, FixerInstance, FixerLog,
    FixerPre, Outcome, Phase, Plan, V0_1Pre,
};
use crate::kinds::{self, ContractVersion, Kind, KindSpec};
use inspect::{FixerManifest, Imports};
use output::BoundedOutput;
use state::{CpuClock, CpuLimitExceeded, SandboxState, EPOCH_TICK};

/// The fixer that handled a finding. Its identity *is* the digest of its component; the name
/// and version are what the component claims about itself, and are only labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixerIdentity {
    pub sha256: String,
    /// SHA-256 of the compiled artifact that ran, which the cache authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
    pub name: String,
    pub version: String,
}

/// wasmtime has its own error type; this lets `anyhow`'s `.context` apply to it.
fn wt<T>(result: wasmtime::Result<T>) -> Result<T> {
    result.map_err(anyhow::Error::from)
}

/// Components larger than this are refused before compiling.
const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

/// Bytes of each linear memory and table a freed pool slot keeps resident, where the kernel can
/// say which pages an instance dirtied (`PAGEMAP_SCAN`, Linux 6.7): only those are reset in place,
/// wherever they are. A Rust fixer's stack ends at 1 MiB and its data and heap lie above it, so
/// none of them is in a memory's lowest pages.
const KEEP_RESIDENT_SCANNED: usize = 256 * 1024;

/// Without `PAGEMAP_SCAN` the pool resets a memory's lowest bytes in place whether or not they
/// were touched, so a large figure would zero untouched pages on every reset.
const KEEP_RESIDENT_LOWEST: usize = 64 * 1024;

/// Freed pool slots given back to the kernel together. Each give-back is an `madvise` and a TLB
/// shootdown on every core; a slot waiting in the batch is not handed out again until it is
/// given back, so no fixer sees another's memory.
const DECOMMIT_BATCH: usize = 8;

/// Plans and outcomes larger than this (as JSON) are refused: they would bloat the audit log.
const MAX_PLAN_JSON_BYTES: usize = 256 * 1024;

/// Sandbox limits. The defaults are safe for the shipped fixers with a wide margin.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeLimits {
    /// Linear memory per fixer instance.
    pub memory_bytes: usize,
    /// Guest execution time per phase, not counting time spent in host calls.
    pub cpu_time: Duration,
    /// Wall-clock time for the whole finding, host calls included.
    pub wall_time: Duration,
    /// Captured bytes of stdout and of stderr, each.
    pub output_bytes: usize,
    /// Bytes of fixer log lines kept.
    pub log_bytes: usize,
    /// Capability calls per finding.
    pub max_capability_calls: usize,
    /// Fixer instances alive at once; sizes the pooling allocator.
    pub max_concurrent_fixers: u32,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            memory_bytes: 64 * 1024 * 1024,
            cpu_time: Duration::from_secs(2),
            wall_time: Duration::from_secs(60),
            output_bytes: 64 * 1024,
            log_bytes: 64 * 1024,
            max_capability_calls: 256,
            max_concurrent_fixers: 16,
        }
    }
}

/// Where a fixer's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactSource {
    Compiled,
    DiskCache,
    MemoryCache,
}

/// Compiled components keyed by the SHA-256 of the component bytes (and the engine's settings),
/// in memory and, when a trusted cache directory is usable, on disk (see [`cache`]).
struct ArtifactCache {
    disk: Option<cache::DiskCache>,
    compiled: Mutex<HashMap<String, (Component, String)>>,
}

impl ArtifactCache {
    fn open(dir: Option<PathBuf>) -> ArtifactCache {
        let disk = dir.and_then(|dir| {
            let Some(key_file) = cache::key_file() else {
                tracing::warn!(
                    "no HOME and no SALVE_CACHE_KEY_FILE: compiled fixers are not cached on disk"
                );
                return None;
            };
            match cache::DiskCache::open(&dir, &key_file) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(
                        "not using the fixer cache: {e:#}; fixers are compiled in memory instead"
                    );
                    None
                }
            }
        });
        ArtifactCache {
            disk,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The component, where it came from, and the SHA-256 of its compiled artifact.
    fn get_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Component, ArtifactSource, String)> {
        if let Some((c, digest)) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
        {
            return Ok((c.clone(), ArtifactSource::MemoryCache, digest.clone()));
        }
        let path = self
            .disk
            .as_ref()
            .map(|d| (d, d.path(sha256, engine_hash(engine))));
        let mut found = None;
        if let Some((disk, path)) = &path {
            match disk.read(path, sha256) {
                Ok(Some((artifact, digest))) => {
                    // SAFETY: the bytes were authenticated just above (HMAC with a key outside
                    // the cache, bound to this .wasm's digest), so they are what this host
                    // compiled from the reviewed component; wasmtime checks the engine
                    // compatibility again.
                    match unsafe { Component::deserialize(engine, &artifact) } {
                        Ok(c) => found = Some((c, digest)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), "recompiling: the cached artifact does not load: {e:#}")
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "recompiling, not loading, a cached fixer artifact: {e:#}"
                ),
            }
        }
        let (component, source, digest) = match found {
            Some((c, digest)) => (c, ArtifactSource::DiskCache, digest),
            None => {
                let c =
                    wt(Component::new(engine, bytes)).context("compiling the fixer component")?;
                let artifact = wt(c.serialize()).context("serialising the compiled fixer")?;
                let digest = sha256_hex(&artifact);
                if let Some((disk, path)) = &path {
                    if let Err(e) = disk.write(path, sha256, &artifact, &digest) {
                        tracing::warn!(path = %path.display(), "could not cache compiled fixer: {e:#}");
                    }
                }
                (c, ArtifactSource::Compiled, digest)
            }
        };
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_string(), (component.clone(), digest.clone()));
        Ok((component, source, digest))
    }
}

/// The engine's compatibility hash (its build, settings and the CPU features it compiles for),
/// which names cache entries.
fn engine_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// Advances the engine's epoch on a background thread until the runtime is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("salve-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("could not start the epoch thread: {e}"));
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A fixer that passed every load-time check and is ready to instantiate.
pub struct LoadedFixer {
    pub manifest: FixerManifest,
    pub sha256: String,
    pub resource_type: &'static KindSpec,
    pub imports: Imports,
    pub artifact: ArtifactSource,
    /// SHA-256 of the compiled artifact that runs (what the cache holds), beside the `.wasm`'s.
    pub artifact_sha256: String,
    /// The contract version the fixer was built against, from its exports.
    pub contract: ContractVersion,
    pre: Box<dyn FixerPre<SandboxState>>,
}

impl LoadedFixer {
    pub fn identity(&self) -> FixerIdentity {
        FixerIdentity {
            sha256: self.sha256.clone(),
            artifact_sha256: Some(self.artifact_sha256.clone()),
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
        }
    }

    /// The IAM actions this fixer can ever ask for, from its imports.
    pub fn actions(&self) -> Vec<&'static str> {
        self.imports
            .functions
            .iter()
            .map(|f| f.iam_action)
            .collect()
    }
}

/// One engine and one linker per resource type.
pub struct Runtime {
    engine: Engine,
    linkers: Vec<(&'static Kind, ContractVersion, Linker<SandboxState>)>,
    limits: RuntimeLimits,
    cache: ArtifactCache,
    /// One permit per instance the pooling allocator holds: a finding beyond the pool waits for
    /// a slot instead of failing to instantiate.
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    _ticker: EpochTicker,
}

/// The engine's settings; `scan` asks for `PAGEMAP_SCAN`, and then building the engine fails
/// where the kernel lacks it.
fn engine_config(limits: &RuntimeLimits, scan: bool) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let n = limits.max_concurrent_fixers;
    // A Rust component instantiates a handful of core modules; 4x leaves headroom.
    pool.total_component_instances(n)
        .total_core_instances(n * 4)
        .total_memories(n * 4)
        .total_tables(n * 4)
        .total_stacks(n)
        .max_memory_size(limits.memory_bytes)
        .decommit_batch_size(DECOMMIT_BATCH);
    if scan {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_SCANNED)
            .table_keep_resident(KEEP_RESIDENT_SCANNED);
    } else {
        pool.linear_memory_keep_resident(KEEP_RESIDENT_LOWEST)
            .table_keep_resident(KEEP_RESIDENT_LOWEST);
    }
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl Runtime {
    /// `cache_dir` keeps compiled fixers across processes; `None` keeps them in memory only.
    pub fn new(limits: RuntimeLimits, cache_dir: Option<PathBuf>) -> Result<Runtime> {
        if limits.max_concurrent_fixers == 0 {
            bail!("max_concurrent_fixers must be at least 1");
        }
        // Pages reset in place are not faulted in again (and copy-on-write data pages not
        // copied again) by the next finding: `sandbox_cost` 21 -> 11 µs with the scan. The cost
        // is up to this much resident memory per slot. Either way a slot is handed out again
        // only once it holds the module's original contents.
        let engine = match Engine::new(&engine_config(&limits, true)) {
            Ok(engine) => engine,
            Err(scan_refused) => {
                tracing::debug!(
                    "the kernel cannot scan for dirty pages ({scan_refused}); pool slots reset their lowest {KEEP_RESIDENT_LOWEST} bytes in place"
                );
                wt(Engine::new(&engine_config(&limits, false)))
                    .context("creating the wasmtime engine")?
            }
        };
        let mut linkers = Vec::new();
        for kind in kinds::KINDS {
            for version in kind.spec.contracts() {
                // Only this kind's interface of this version: a fixer that imports another
                // kind's, or mixes versions, cannot link.
                let mut linker = Linker::new(&engine);
                wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker)).context("linking WASI")?;
                capabilities::add_common_to_linker(
                    &mut linker,
                    version,
                    SandboxState::capabilities_mut,
                )?;
                kind.add_to_linker(&mut linker, version)?;
                linkers.push((kind, version, linker));
            }
        }
        let _ticker = EpochTicker::start(&engine);
        let slots = limits.max_concurrent_fixers as usize;
        Ok(Runtime {
            engine,
            linkers,
            limits,
            cache: ArtifactCache::open(cache_dir),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(slots)),
            _ticker,
        })
    }

    /// Forgets compiled components held in memory, so the next load reads the disk cache. Used
    /// to measure a cold process's load path without starting one.
    pub fn clear_memory_cache(&self) {
        self.cache
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether compiled fixers are kept on disk (the cache directory was usable).
    pub fn has_disk_cache(&self) -> bool {
        self.cache.disk.is_some()
    }

    /// The engine's compatibility hash, which names cache entries: it differs between builds
    /// and CPUs, so a cache only serves the binary and CPU that built it.
    pub fn engine_hash(&self) -> u64 {
        engine_hash(&self.engine)
    }

    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Inspects a fixer for review: its manifest, digest, imports and actions, and whether it
    /// passes the link-time check. Fails only when the file is not a salve fixer at all.
    pub fn inspect(&self, bytes: &[u8]) -> Result<inspect::FixerReport> {
        let manifest = inspect::read_manifest(bytes)?;
        let component =
            wt(Component::new(&self.engine, bytes)).context("compiling the fixer component")?;
        let (imports, actions) = inspect::list_imports(&self.engine, &component);
        let capability_interfaces = imports
            .iter()
            .filter(|i| i.starts_with("salve:"))
            .filter(|i| {
                !ContractVersion::ALL
                    .iter()
                    .any(|v| v.common_interfaces().contains(i))
            })
            .cloned()
            .collect();
        let (check, artifact_sha256) = match self.load(bytes) {
            Ok(f) => (
                inspect::LinkCheck {
                    passed: true,
                    detail: "every import is inside the fixer's world".into(),
                },
                Some(f.artifact_sha256),
            ),
            Err(e) => (
                inspect::LinkCheck {
                    passed: false,
                    detail: format!("{e:#}"),
                },
                None,
            ),
        };
        Ok(inspect::FixerReport {
            sha256: sha256_hex(bytes),
            artifact_sha256,
            world: kinds::resource_type(&manifest.resource_type).map(|t| t.world),
            contract: kinds::resource_type(&manifest.resource_type)
                .and_then(|k| inspect::contract_version(&self.engine, &component, k).ok())
                .map(ContractVersion::as_str),
            name: manifest.name,
            version: manifest.version,
            resource_type: manifest.resource_type,
            controls: manifest.controls,
            imports,
            capability_interfaces,
            actions,
            least_privilege_check: check,
            overlaps: Vec::new(),
        })
    }

    pub fn load_file(&self, path: &Path) -> Result<LoadedFixer> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading fixer {}", path.display()))?;
        self.load(&bytes)
            .with_context(|| format!("loading fixer {}", path.display()))
    }

    /// Checks and compiles (or fetches from the cache) a fixer component.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedFixer> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            bail!(
                "the component is {} bytes, over the {MAX_COMPONENT_BYTES}-byte limit",
                bytes.len()
            );
        }
        let sha256 = sha256_hex(bytes);
        let manifest = inspect::read_manifest(bytes)?;
        let kind = kinds::get(&manifest.resource_type).with_context(|| {
            format!(
                "fixer {} declares resource type {:?}, which this host has no world for",
                manifest.name, manifest.resource_type
            )
        })?;
        let resource_type = kind.spec;
        let (component, artifact, artifact_sha256) =
            self.cache.get_or_compile(&self.engine, &sha256, bytes)?;
        let contract = inspect::contract_version(&self.engine, &component, resource_type)
            .with_context(|| format!("fixer {} refused at link time", manifest.name))?;
        let imports = inspect::check_imports(&self.engine, &component, resource_type, contract)
            .with_context(|| format!("fixer {} refused at link time", manifest.name))?;
        let linker = self
            .linkers
            .iter()
            .find(|(k, v, _)| k.spec.name == resource_type.name && *v == contract)
            .map(|(_, _, l)| l)
            .context("no linker for the fixer's resource type")?;
        let pre = wt(linker.instantiate_pre(&component))
            .with_context(|| format!("linking fixer {}", manifest.name))?;
        let export = contract.fixer_export(resource_type);
        let pre: Box<dyn FixerPre<SandboxState>> = match contract {
            ContractVersion::V0_1 => {
                Box::new(V0_1Pre(wt(FixerCorePre::new(pre)).with_context(|| {
                    format!("fixer {} does not export {export}", manifest.name)
                })?))
            }
            ContractVersion::V0_2 => wt(kind.fixer_pre_v0_2(pre))
                .with_context(|| format!("fixer {} does not export {export}", manifest.name))?,
        };
        Ok(LoadedFixer {
            manifest,
            sha256,
            resource_type,
            imports,
            artifact,
            artifact_sha256,
            contract,
            pre,
        })
    }

    /// A fresh store and instance for one finding.
    pub async fn start(&self, fixer: &LoadedFixer, capabilities: Capabilities) -> Result<Sandbox> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .context("the runtime's instance slots are closed")?;
        let limits = &self.limits;
        let stdout = BoundedOutput::new(limits.output_bytes);
        let stderr = BoundedOutput::new(limits.output_bytes);
        // Empty on purpose: no preopened directories, no environment, no arguments, no network.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = SandboxState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            capabilities,
            stdout,
            stderr,
            cpu: CpuClock {
                budget: limits.cpu_time,
                used: Duration::ZERO,
                last_tick: Instant::now(),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu.tick() > state.cpu.budget {
                return Err(wasmtime::Error::new(CpuLimitExceeded(state.cpu.budget)));
            }
            // Yielding lets the wall-clock timeout fire even while the guest spins.
            Ok(UpdateDeadline::Yield(1))
        });
        let deadline = Instant::now() + limits.wall_time;
        let instantiate = fixer.pre.instantiate(&mut store);
        let bindings = match tokio::time::timeout(limits.wall_time, instantiate).await {
            Ok(result) => wt(result).context("instantiating the fixer")?,
            Err(_) => bail!("instantiating the fixer exceeded the wall-clock limit"),
        };
        Ok(Sandbox {
            store,
            bindings,
            deadline,
            limits: limits.clone(),
            contained: None,
            _slot: slot,
        })
    }
}

/// Why a phase did not produce a result.
#[derive(Debug, Clone)]
pub enum SandboxError {
    /// The fixer returned an error of its own.
    Fixer(FixerError),
    /// The sandbox stopped the fixer: a trap, a limit, or a timeout. The text says which.
    Contained(String),
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::Fixer(e) => write!(f, "{}", describe_fixer_error(e)),
            SandboxError::Contained(reason) => f.write_str(reason),
        }
    }
}

/// Fixer-supplied text in a reason is cut to this many bytes.
pub const MAX_FIXER_TEXT: usize = 1024;

/// A fixer's error as a reason says it. Every string in it came from the fixer, so each is cut
/// to [`MAX_FIXER_TEXT`].
pub fn describe_fixer_error(e: &FixerError) -> String {
    let b = |s: &str| crate::text::bounded(s, MAX_FIXER_TEXT).into_owned();
    match e {
        FixerError::Aws(a) => {
            let id = a
                .request_id
                .as_deref()
                .map(|r| format!(" (request {})", b(r)))
                .unwrap_or_default();
            format!("AWS error {}: {}{id}", b(&a.code), b(&a.message))
        }
        FixerError::Denied(m) => format!("denied: {}", b(m)),
        FixerError::UnexpectedState(m) => format!("unexpected state: {}", b(m)),
        FixerError::InvalidInput(m) => format!("invalid input: {}", b(m)),
    }
}

/// Captured stdout, stderr and log of one fixer run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FixerOutput {
    pub log: FixerLog,
    pub stdout: String,
    pub stdout_dropped_bytes: u64,
    pub stderr: String,
    pub stderr_dropped_bytes: u64,
}

/// One fixer instance for one finding.
pub struct Sandbox {
    store: Store<SandboxState>,
    bindings: Box<dyn FixerInstance<SandboxState>>,
    deadline: Instant,
    limits: RuntimeLimits,
    /// Set once the sandbox has stopped the fixer; the instance is not used again.
    contained: Option<String>,
    /// Returned to the runtime when the sandbox is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

type CallOutcome<T> = Result<wasmtime::Result<Result<T, FixerError>>, tokio::time::error::Elapsed>;

impl Sandbox {
    fn begin(&mut self, phase: Phase) -> Result<Duration, SandboxError> {
        if let Some(reason) = &self.contained {
            return Err(SandboxError::Contained(format!(
                "not run: the fixer was already stopped ({reason})"
            )));
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(self.contain(format!(
                "wall-clock limit of {} ms exceeded before {}",
                self.limits.wall_time.as_millis(),
                phase.as_str()
            )));
        }
        let state = self.store.data_mut();
        state.cpu.start_phase();
        Ok(remaining)
    }

    fn contain(&mut self, reason: String) -> SandboxError {
        self.contained = Some(reason.clone());
        SandboxError::Contained(reason)
    }

    fn finish<T>(&mut self, phase: Phase, outcome: CallOutcome<T>) -> Result<T, SandboxError> {
        match outcome {
            Err(_) => Err(self.contain(format!(
                "wall-clock limit of {} ms exceeded during {}",
                self.limits.wall_time.as_millis(),
                phase.as_str()
            ))),
            Ok(Err(trap)) => {
                let reason = self.trap_reason(phase, &trap);
                Err(self.contain(reason))
            }
            Ok(Ok(Err(fixer_error))) => Err(SandboxError::Fixer(fixer_error)),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    fn trap_reason(&self, phase: Phase, error: &wasmtime::Error) -> String {
        let phase = phase.as_str();
        if let Some(cpu) = error.downcast_ref::<CpuLimitExceeded>() {
            return format!(
                "CPU time limit of {} ms exceeded during {phase}",
                cpu.0.as_millis()
            );
        }
        let text = format!("{error:?}");
        if text.contains("forcing trap when growing memory") {
            return format!(
                "memory limit of {} bytes exceeded during {phase}",
                self.limits.memory_bytes
            );
        }
        let (stderr, _) = self.store.data().stderr.contents();
        let tail: String = {
            let chars: Vec<char> = stderr.trim().chars().collect();
            chars[chars.len().saturating_sub(400)..].iter().collect()
        };
        let stderr_note = if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr: {tail}")
        };
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => format!("stack overflow during {phase}"),
            Some(Trap::Interrupt) => format!("CPU time limit exceeded during {phase}"),
            Some(Trap::UnreachableCodeReached) => format!(
                "fixer trapped during {phase}: unreachable instruction (a Rust panic ends this way){stderr_note}"
            ),
            Some(trap) => format!("fixer trapped during {phase}: {trap}{stderr_note}"),
            None => {
                let first: String = format!("{error:#}").chars().take(400).collect();
                format!("fixer failed during {phase}: {first}{stderr_note}")
            }
        }
    }

    /// Runs `check()` (read only). `phase` is `Check` before the fix and `Verify` after it.
    pub async fn check(&mut self, phase: Phase) -> Result<bool, SandboxError> {
        let remaining = self.begin(phase)?;
        self.store.data_mut().capabilities.gate_mut().enter(phase);
        let outcome = tokio::time::timeout(remaining, self.bindings.check(&mut self.store)).await;
        self.finish(phase, outcome)
    }

    /// Enters a read-only export in the plan phase (writes are denied): the time it has left.
    fn enter_read(&mut self) -> Result<Duration, SandboxError> {
        let remaining = self.begin(Phase::Plan)?;
        self.store
            .data_mut()
            .capabilities
            .gate_mut()
            .enter(Phase::Plan);
        Ok(remaining)
    }

    /// The outcome of a read-only export, its size bounded.
    fn finish_read<T: Serialize>(
        &mut self,
        what: &str,
        outcome: CallOutcome<T>,
    ) -> Result<T, SandboxError> {
        let value = self.finish(Phase::Plan, outcome)?;
        check_size(what, &value).map_err(|m| self.contain(m))?;
        Ok(value)
    }

    /// Runs `plan()` (read only).
    pub async fn plan(&mut self) -> Result<Plan, SandboxError> {
        let remaining = self.enter_read()?;
        let outcome = tokio::time::timeout(remaining, self.bindings.plan(&mut self.store)).await;
        self.finish_read("plan", outcome)
    }

    /// Whether the fixer exports `rollback` (contract 0.2.0, optional).
    pub fn exports_rollback(&self) -> bool {
        self.bindings.exports_rollback()
    }

    /// Runs `rollback.plan-rollback` (read only, like `plan`): the calls that undo a fix whose
    /// outcome returned `rollback`. `None` when the fixer declares no rollback.
    pub async fn plan_rollback(
        &mut self,
        rollback: &str,
        force: bool,
    ) -> Result<Option<Plan>, SandboxError> {
        let remaining = self.enter_read()?;
        let call = self
            .bindings
            .plan_rollback(&mut self.store, rollback, force);
        let outcome = tokio::time::timeout(remaining, call).await;
        self.finish_read("rollback plan", outcome)
    }

    /// Whether the fixer exports `terraform` (contract 0.2.0, optional).
    pub fn exports_terraform(&self) -> bool {
        self.bindings.exports_terraform()
    }

    /// Runs `terraform.edits` (read only, like `plan`): the fix as edits of the located blocks.
    pub async fn terraform_edits(
        &mut self,
        blocks: &[capabilities::LocatedBlock],
    ) -> Result<Option<Vec<capabilities::Edit>>, SandboxError> {
        let remaining = self.enter_read()?;
        let call = self.bindings.terraform_edits(&mut self.store, blocks);
        let outcome = tokio::time::timeout(remaining, call).await;
        self.finish_read("terraform edits", outcome)
    }

    /// Runs `apply(plan)`; only the actions `approved` lists pass the gate.
    pub async fn apply(&mut self, approved: &Plan) -> Result<Outcome, SandboxError> {
        let remaining = self.begin(Phase::Apply)?;
        self.store
            .data_mut()
            .capabilities
            .gate_mut()
            .enter_apply(approved);
        let outcome =
            tokio::time::timeout(remaining, self.bindings.apply(&mut self.store, approved)).await;
        let result = self.finish(Phase::Apply, outcome)?;
        check_size("outcome", &result).map_err(|m| self.contain(m))?;
        Ok(result)
    }

    pub fn gate(&self) -> &CallGate {
        self.store.data().capabilities.gate()
    }

    /// The host's own copy of an AWS error the fixer returned, if the host received it.
    pub fn observed_aws_error(&self, e: &capabilities::AwsError) -> Option<capabilities::AwsError> {
        self.store.data().capabilities.observed(e).cloned()
    }

    /// Binds the capabilities to another session's backend (the write session for `apply`, the
    /// read session again for `verify`). The gate and its record carry over.
    pub fn rebind(&mut self, backend: Binding) {
        self.store.data_mut().capabilities.set_backend(backend);
    }

    /// Forgets the reads this finding made, so `verify` never sees a state from before the
    /// write. The pipeline calls it after `apply`, before it reads the resource back.
    pub fn forget_reads(&mut self) {
        self.store.data_mut().capabilities.forget_reads();
    }

    /// Answers the fixer's next reads with what the host just read itself.
    pub fn remember_reads<'r>(
        &mut self,
        reads: impl IntoIterator<Item = &'r capabilities::ReadBack>,
    ) {
        let caps = &mut self.store.data_mut().capabilities;
        for read in reads {
            if let Some(observed) = &read.observed {
                caps.remember_read(observed.clone());
            }
        }
    }

    pub fn output(&self) -> FixerOutput {
        let state = self.store.data();
        let (stdout, stdout_dropped_bytes) = state.stdout.contents();
        let (stderr, stderr_dropped_bytes) = state.stderr.contents();
        FixerOutput {
            log: state.capabilities.log().clone(),
            stdout,
            stdout_dropped_bytes,
            stderr,
            stderr_dropped_bytes,
        }
    }
}

fn check_size<T: Serialize>(what: &str, value: &T) -> Result<(), String> {
    let size = capabilities::json_len(value);
    if size > MAX_PLAN_JSON_BYTES {
        return Err(format!(
            "the fixer's {what} is {size} bytes as JSON, over the {MAX_PLAN_JSON_BYTES}-byte limit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings a kernel without `PAGEMAP_SCAN` gets must be ones wasmtime accepts: where the
    /// tests run the kernel has the ioctl, so `Runtime::new` does not take that branch there.
    #[test]
    fn the_engine_without_the_dirty_page_scan_builds() {
        let limits = RuntimeLimits::default();
        if let Err(e) = Engine::new(&engine_config(&limits, false)) {
            panic!("the fallback engine settings are refused: {e}");
        }
    }
}
