//! The installed fixers, loaded once, and the choice of fixer for a finding.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::finding::Finding;
use crate::runtime::inspect::read_manifest;
use crate::runtime::{LoadedFixer, Runtime};

/// A fixer file that failed a load-time check. Findings it would have handled fail with this
/// reason instead of silently finding no fixer.
#[derive(Debug, Clone)]
pub struct RefusedFixer {
    pub path: PathBuf,
    /// The declared resource type, when the manifest could be read.
    pub resource_type: Option<String>,
    pub error: String,
}

pub enum Selection<'a> {
    Ready(&'a LoadedFixer),
    Refused(&'a RefusedFixer),
    None,
}

#[derive(Default)]
pub struct FixerRegistry {
    pub ready: Vec<LoadedFixer>,
    pub refused: Vec<RefusedFixer>,
}

impl FixerRegistry {
    /// Loads every `*.wasm` file in `dir`, in name order. A bad file is refused, not fatal.
    pub fn load_dir(runtime: &Runtime, dir: &Path) -> Result<FixerRegistry> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading fixer directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        let mut registry = FixerRegistry::default();
        for path in paths {
            registry.add_file(runtime, &path);
        }
        Ok(registry)
    }

    pub fn add_file(&mut self, runtime: &Runtime, path: &Path) {
        match runtime.load_file(path) {
            Ok(fixer) => self.ready.push(fixer),
            Err(e) => {
                let resource_type = std::fs::read(path)
                    .ok()
                    .and_then(|b| read_manifest(&b).ok())
                    .map(|m| m.resource_type);
                tracing::warn!(path = %path.display(), "fixer refused: {e:#}");
                self.refused.push(RefusedFixer {
                    path: path.to_path_buf(),
                    resource_type,
                    error: format!("{e:#}"),
                });
            }
        }
    }

    /// The fixer for a finding's resource type. A ready fixer wins over a refused one.
    pub fn select(&self, finding: &Finding) -> Selection<'_> {
        let wanted = finding.resource.resource_type.as_str();
        if let Some(f) = self.ready.iter().find(|f| f.resource_type.name == wanted) {
            return Selection::Ready(f);
        }
        match self
            .refused
            .iter()
            .find(|r| r.resource_type.as_deref() == Some(wanted))
        {
            Some(r) => Selection::Refused(r),
            None => Selection::None,
        }
    }
}
