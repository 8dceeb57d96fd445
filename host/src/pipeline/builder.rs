//! The one way to wire a pipeline: the command line, `fixer test`, the tests and the benches
//! each name only what differs (where fixers come from, the backends, the audit log).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{BackendBinder, FixerSettings, Pipeline, PipelineConfig};
use crate::audit::AuditLog;
use crate::config::SalveConfig;
use crate::notify::Notifier;
use crate::registry::FixerRegistry;
use crate::runtime::{Runtime, RuntimeLimits};

/// Where the fixers come from.
enum Fixers {
    /// None: ingest and triage only (`salve explain` on a machine with no fixers yet).
    None,
    /// Every component in a directory, routed by the config's `[routing]`.
    Dir(PathBuf),
    /// These components; one that is refused at load is kept as refused, as from a directory.
    Files(Vec<PathBuf>),
}

#[must_use]
pub struct PipelineBuilder<'a> {
    config: &'a SalveConfig,
    limits: RuntimeLimits,
    cache_dir: Option<PathBuf>,
    fixers: Fixers,
    notifier: Option<Notifier>,
    settings: Option<FixerSettings>,
    audit: Option<AuditLog>,
}

impl<'a> PipelineBuilder<'a> {
    /// A pipeline deciding with `config`, default limits, no compile cache, no fixers, no
    /// notifier and no audit log (so it can only explain) until told otherwise.
    pub fn new(config: &'a SalveConfig) -> PipelineBuilder<'a> {
        PipelineBuilder {
            config,
            limits: RuntimeLimits::default(),
            cache_dir: None,
            fixers: Fixers::None,
            notifier: None,
            settings: None,
            audit: None,
        }
    }

    pub fn limits(mut self, limits: RuntimeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Where compiled fixers are cached (see `runtime::cache`).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    pub fn fixer_dir(mut self, dir: &Path) -> Self {
        self.fixers = Fixers::Dir(dir.to_path_buf());
        self
    }

    pub fn fixer_files(mut self, files: &[PathBuf]) -> Self {
        self.fixers = Fixers::Files(files.to_vec());
        self
    }

    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Per-fixer settings in place of the config's `[fixers.*]`.
    pub fn settings(mut self, settings: FixerSettings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Every outcome is recorded here; without it the pipeline can only explain.
    pub fn audit_log(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Loads the fixers and opens the pipeline over `backends`.
    pub fn build(self, backends: Box<dyn BackendBinder>) -> Result<Pipeline> {
        let runtime = Runtime::new(self.limits, self.cache_dir)?;
        let registry = match self.fixers {
            Fixers::None => FixerRegistry::default(),
            Fixers::Dir(dir) => {
                FixerRegistry::load_dir_routed(&runtime, &dir, self.config.routing.clone())?
            }
            Fixers::Files(files) => {
                let mut registry = FixerRegistry::default();
                for f in &files {
                    registry.add_file(&runtime, f);
                }
                registry
            }
        };
        let notifier = self.notifier.unwrap_or_else(Notifier::disabled);
        let mut config = PipelineConfig::from_config(self.config, notifier)?;
        if let Some(settings) = self.settings {
            config.settings = settings;
        }
        Pipeline::new(runtime, registry, backends, self.audit, config)
    }
}
