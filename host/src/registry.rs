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

/// Control ID → the fixer name that handles it when several installed fixers claim it.
pub type Routing = std::collections::BTreeMap<String, String>;

/// What a fixer claims about itself, which must not collide with another installed fixer's.
struct Claims<'a> {
    name: &'a str,
    resource_type: &'a str,
    controls: &'a [String],
}

impl<'a> Claims<'a> {
    fn of(f: &'a LoadedFixer) -> Claims<'a> {
        Claims {
            name: &f.manifest.name,
            resource_type: f.resource_type.name,
            controls: &f.manifest.controls,
        }
    }

    /// The controls both claim for the same resource type.
    fn shared_controls<'b>(
        &'b self,
        other: &'b Claims<'_>,
    ) -> impl Iterator<Item = &'a String> + 'b {
        let same_type = self.resource_type == other.resource_type;
        self.controls
            .iter()
            .filter(move |c| same_type && other.controls.contains(c))
    }
}

#[derive(Default)]
pub struct FixerRegistry {
    pub ready: Vec<LoadedFixer>,
    pub refused: Vec<RefusedFixer>,
    routing: Routing,
}

impl FixerRegistry {
    /// Loads every `*.wasm` file in `dir` and checks identities (see [`FixerRegistry::resolve`]).
    /// A bad file is refused, not fatal.
    pub fn load_dir(runtime: &Runtime, dir: &Path) -> Result<FixerRegistry> {
        Self::load_dir_routed(runtime, dir, Routing::new())
    }

    pub fn load_dir_routed(
        runtime: &Runtime,
        dir: &Path,
        routing: Routing,
    ) -> Result<FixerRegistry> {
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
        registry.resolve(routing);
        Ok(registry)
    }

    /// A fixer is named by what it claims, so claims must not collide. Two fixers with one name
    /// are both refused (settings and records are keyed by name). Two fixers claiming one
    /// control of one resource type are both refused for it unless `routing` names the one
    /// that handles it; never is the choice left to file names.
    pub fn resolve(&mut self, routing: Routing) {
        let mut refuse: Vec<(usize, String)> = Vec::new();
        for (i, a) in self.ready.iter().enumerate() {
            let claims_a = Claims::of(a);
            for (j, b) in self.ready.iter().enumerate().skip(i + 1) {
                let claims_b = Claims::of(b);
                if claims_a.name == claims_b.name {
                    let why = format!(
                        "two installed fixers are named {:?} (sha256 {} and {}); a name must identify one fixer, so both are refused",
                        a.manifest.name, a.sha256, b.sha256
                    );
                    refuse.push((i, why.clone()));
                    refuse.push((j, why));
                    continue;
                }
                for control in claims_a.shared_controls(&claims_b) {
                    match routing.get(control) {
                        Some(chosen) if chosen == claims_a.name || chosen == claims_b.name => {}
                        _ => {
                            let why = format!(
                                "fixers {:?} and {:?} both claim control {control} for {}; name the one to use under [routing] in salve.toml",
                                a.manifest.name, b.manifest.name, a.resource_type.name
                            );
                            refuse.push((i, why.clone()));
                            refuse.push((j, why));
                        }
                    }
                }
            }
        }
        refuse.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        refuse.dedup_by_key(|(i, _)| *i);
        for (i, why) in refuse {
            let f = self.ready.remove(i);
            tracing::warn!(fixer = %f.manifest.name, "fixer refused: {why}");
            self.refused.push(RefusedFixer {
                path: PathBuf::from(format!("sha256:{}", f.sha256)),
                resource_type: Some(f.resource_type.name.to_string()),
                controls: f.manifest.controls.clone(),
                error: why,
            });
        }
        self.routing = routing;
    }

    /// The routing entries, for `fixer inspect` and reports.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// What a fixer (by digest, name, type and controls) would collide with among these: the
    /// same name, or a control of the same resource type. Another copy of the same component is
    /// not a collision.
    pub fn claims_shared_with(
        &self,
        sha256: &str,
        name: &str,
        resource_type: &str,
        controls: &[String],
    ) -> Vec<String> {
        let mine = Claims {
            name,
            resource_type,
            controls,
        };
        let mut out = Vec::new();
        for other in self.ready.iter().filter(|f| f.sha256 != sha256) {
            let theirs = Claims::of(other);
            if theirs.name == name {
                out.push(format!(
                    "an installed fixer (sha256 {}) is also named {name:?}: both would be refused",
                    other.sha256
                ));
            }
            for c in mine.shared_controls(&theirs) {
                out.push(format!(
                    "control {c} is also claimed by installed fixer {:?} (sha256 {}): both are refused for it unless [routing] names one",
                    theirs.name, other.sha256
                ));
            }
        }
        out
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
        let routed = finding
            .control_ids()
            .find_map(|id| self.routing.get(id).map(String::as_str));
        let mut candidates = self
            .ready
            .iter()
            .filter(|f| handles(f.resource_type.name, &f.manifest.controls, finding));
        let chosen = match routed {
            Some(name) => candidates.find(|f| f.manifest.name == name),
            None => candidates.next(),
        };
        if let Some(f) = chosen {
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
