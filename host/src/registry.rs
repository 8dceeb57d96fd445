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
    /// The declared resource type and controls, when the manifest could be read.
    pub resource_type: Option<String>,
    pub controls: Vec<String>,
    pub error: String,
}

pub enum Selection<'a> {
    Ready(&'a LoadedFixer),
    Refused(&'a RefusedFixer),
    /// No fixer handles the finding; the reason says which part did not match.
    None(String),
}

fn handles(resource_type: &str, controls: &[String], finding: &Finding) -> bool {
    resource_type == finding.resource.resource_type
        && finding
            .control_ids()
            .any(|id| controls.iter().any(|c| c == id))
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
                let manifest = std::fs::read(path)
                    .ok()
                    .and_then(|b| read_manifest(&b).ok());
                tracing::warn!(path = %path.display(), "fixer refused: {e:#}");
                self.refused.push(RefusedFixer {
                    path: path.to_path_buf(),
                    resource_type: manifest.as_ref().map(|m| m.resource_type.clone()),
                    controls: manifest.map(|m| m.controls).unwrap_or_default(),
                    error: format!("{e:#}"),
                });
            }
        }
    }

    /// The fixer that declares the finding's resource type and one of its control IDs. A ready
    /// fixer wins over a refused one, so one broken file cannot shadow a working fixer.
    pub fn select(&self, finding: &Finding) -> Selection<'_> {
        if let Some(f) = self
            .ready
            .iter()
            .find(|f| handles(f.resource_type.name, &f.manifest.controls, finding))
        {
            return Selection::Ready(f);
        }
        if let Some(r) = self.refused.iter().find(|r| {
            r.resource_type
                .as_deref()
                .is_some_and(|t| handles(t, &r.controls, finding))
        }) {
            return Selection::Refused(r);
        }
        let wanted = &finding.resource.resource_type;
        let ids: Vec<&str> = finding.control_ids().collect();
        let reason = if self.ready.iter().any(|f| f.resource_type.name == wanted) {
            format!(
                "no fixer: no fixer for {wanted} handles control {}",
                ids.join(" / ")
            )
        } else {
            format!("no fixer: no fixer handles resource type {wanted}")
        };
        Selection::None(reason)
    }
}
