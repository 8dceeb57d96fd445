//! Infrastructure as code: the Terraform workspaces that manage a finding's resource, and where
//! in a workspace's repository the resource is declared (`[[iac.terraform]]`).
//!
//! Tracing a finding: the workspace whose accounts and regions cover it → its state (a local
//! file, or S3 read with salve's own credentials) → the resource's address → the local module
//! calls from the root module → the `resource` block and the blocks that configure it.

pub mod code;
pub mod edit;
pub mod forge;
pub mod git;
pub mod state;
pub mod sync;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use code::{LocateError, Location};
use state::{Address, State};

/// `[iac]` in `salve.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IacConfig {
    /// How a decided fix of a resource Terraform manages lands.
    pub effect: IacEffect,
    /// The same, per environment (the resource's `environment` metadata, any case): e.g.
    /// `production = "pull-request"`, `dev = "both"`. An environment not listed gets `effect`.
    pub effect_by_environment: std::collections::BTreeMap<String, IacEffect>,
    /// A link to a control's documentation for pull requests, `{control}` replaced: none when
    /// unset.
    pub control_docs_url: Option<String>,
    pub terraform: Vec<Workspace>,
}

/// Where a fix of a Terraform-managed resource lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IacEffect {
    /// In the account only.
    Live,
    /// As a pull request only; the account is not changed.
    PullRequest,
    /// In the account now, and in the code so the next apply keeps it.
    #[default]
    Both,
}

/// Who salve's commits are by.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// One `[[iac.terraform]]` workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workspace {
    pub name: String,
    /// The accounts and regions whose resources this workspace declares.
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// A remote URL, or a local path, of the repository.
    pub repository: String,
    #[serde(default = "main_branch")]
    pub base_branch: String,
    /// The root module's directory inside the repository.
    #[serde(default = "repository_root")]
    pub root_module: String,
    /// A local file, or `s3://bucket/key`.
    pub state: String,
    /// Where pull requests are opened; without it, code is traced and edits shown, never pushed.
    pub forge: Option<forge::ForgeConfig>,
    pub author: Option<Author>,
}

fn main_branch() -> String {
    "main".into()
}

fn repository_root() -> String {
    ".".into()
}

/// Where a workspace's state is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl Workspace {
    /// A local repository or state file named relative to the config file is found beside it.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        if self.is_local_repository() && Path::new(&self.repository).is_relative() {
            self.repository = base_dir.join(&self.repository).display().to_string();
        }
        if !self.state.starts_with("s3://") && Path::new(&self.state).is_relative() {
            self.state = base_dir.join(&self.state).display().to_string();
        }
        if let Some(f) = self.forge.as_mut().and_then(|f| f.token_file.as_mut()) {
            *f = base_dir.join(&*f);
        }
    }

    /// Whether `repository` is a path rather than a URL (`https://…`, `ssh://…`, `git@host:…`).
    pub fn is_local_repository(&self) -> bool {
        let r = &self.repository;
        let scp_like = r
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        !r.contains("://") && !scp_like
    }

    /// Errors name the workspace and the key.
    pub fn validate(&self) -> Result<(), String> {
        let at = |key: &str| format!("[[iac.terraform]] {:?}: {key}", self.name);
        if self.name.trim().is_empty() {
            return Err("[[iac.terraform]]: name must not be empty".into());
        }
        if self.accounts.is_empty() {
            return Err(format!("{} must list at least one account", at("accounts")));
        }
        if let Some(a) = self
            .accounts
            .iter()
            .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "{}: {a:?} is not a 12-digit account ID",
                at("accounts")
            ));
        }
        if self.regions.is_empty() {
            return Err(format!("{} must list at least one region", at("regions")));
        }
        if self.repository.trim().is_empty() {
            return Err(format!("{} must not be empty", at("repository")));
        }
        let root = Path::new(&self.root_module);
        if root.is_absolute()
            || root
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "{}: {:?} must be a directory inside the repository",
                at("root-module"),
                self.root_module
            ));
        }
        self.state_location()
            .map_err(|e| format!("{}: {e}", at("state")))?;
        if let Some(f) = &self.forge {
            f.validate().map_err(|e| format!("{}: {e}", at("forge")))?;
            match &self.author {
                None => {
                    return Err(format!(
                        "{} is needed with a forge: the commits' name and email",
                        at("author")
                    ))
                }
                Some(a) if a.name.trim().is_empty() || !a.email.contains('@') => {
                    return Err(format!(
                        "{} needs a name and an email address",
                        at("author")
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub fn state_location(&self) -> Result<StateLocation, String> {
        if let Some(rest) = self.state.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(StateLocation::S3 {
                        bucket: bucket.into(),
                        key: key.into(),
                    })
                }
                _ => Err(format!("{:?} is not s3://bucket/key", self.state)),
            };
        }
        if self.state.trim().is_empty() {
            return Err("must name a state file or s3://bucket/key".into());
        }
        Ok(StateLocation::File(PathBuf::from(&self.state)))
    }

    /// The workspace's account and region, when it names exactly one of each: a state does not
    /// say which account its resources are in, so drift and break-glass read only such
    /// workspaces.
    pub fn place(&self) -> Option<(&str, &str)> {
        match (&self.accounts[..], &self.regions[..]) {
            ([account], [region]) => Some((account, region)),
            _ => None,
        }
    }

    /// Whether the workspace manages resources in the finding's account and region.
    pub fn covers(&self, finding: &Finding) -> bool {
        self.accounts.contains(&finding.resource.account_id)
            && self.regions.contains(&finding.resource.region)
    }
}

impl IacConfig {
    /// How a fix lands for a resource in `environment`.
    pub fn effect_for(&self, environment: Option<&str>) -> IacEffect {
        environment
            .and_then(|env| {
                self.effect_by_environment
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(env))
                    .map(|(_, e)| *e)
            })
            .unwrap_or(self.effect)
    }

    pub fn validate(&self) -> Result<(), String> {
        for w in &self.terraform {
            w.validate()?;
        }
        let mut names: Vec<&str> = self.terraform.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("[[iac.terraform]]: name {:?} is used twice", w[0]));
        }
        Ok(())
    }

    /// The workspaces that cover the finding's account and region, in configuration order.
    pub fn workspaces_for<'a>(
        &'a self,
        finding: &'a Finding,
    ) -> impl Iterator<Item = &'a Workspace> {
        self.terraform.iter().filter(|w| w.covers(finding))
    }
}

/// Reads workspaces' states: a local file, or an S3 object with salve's own credentials. A
/// state is parsed once per version: S3 is asked with the last ETag (`If-None-Match`, so an
/// unchanged state is one small request and no download), a file by its size and modification
/// time. It is never served stale: every read asks whether it changed.
#[derive(Default)]
pub struct StateReader {
    s3: Option<aws_sdk_s3::Client>,
    cache: std::sync::Mutex<std::collections::HashMap<String, (String, std::sync::Arc<State>)>>,
}

impl StateReader {
    pub fn new(s3: Option<aws_sdk_s3::Client>) -> StateReader {
        StateReader {
            s3,
            cache: Default::default(),
        }
    }

    fn cached(&self, name: &str, version: &str) -> Option<std::sync::Arc<State>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(name)
            .filter(|(v, _)| v == version)
            .map(|(_, s)| s.clone())
    }

    fn keep(&self, name: String, version: String, state: State) -> std::sync::Arc<State> {
        let state = std::sync::Arc::new(state);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(name, (version, state.clone()));
        state
    }

    /// The state at `location`; the error says what to fix.
    pub async fn read(&self, location: &StateLocation) -> Result<std::sync::Arc<State>, String> {
        match location {
            StateLocation::File(path) => {
                let name = path.display().to_string();
                let meta = std::fs::metadata(path)
                    .map_err(|e| format!("reading the state {name}: {e}"))?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                let version = format!("{}:{modified}", meta.len());
                if let Some(state) = self.cached(&name, &version) {
                    return Ok(state);
                }
                let bytes =
                    std::fs::read(path).map_err(|e| format!("reading the state {name}: {e}"))?;
                let state = state::parse(&bytes).map_err(|e| format!("the state {name}: {e}"))?;
                Ok(self.keep(name, version, state))
            }
            StateLocation::S3 { bucket, key } => {
                let name = format!("s3://{bucket}/{key}");
                let Some(s3) = &self.s3 else {
                    return Err(format!("reading the state {name}: no AWS configuration"));
                };
                let known = {
                    let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    cache.get(&name).map(|(v, s)| (v.clone(), s.clone()))
                };
                let mut request = s3.get_object().bucket(bucket).key(key);
                if let Some((etag, _)) = &known {
                    request = request.if_none_match(etag);
                }
                let object = match request.send().await {
                    Ok(o) => o,
                    Err(e) => {
                        // 304: the state is the one already parsed.
                        if let (Some(304), Some((_, state))) =
                            (e.raw_response().map(|r| r.status().as_u16()), &known)
                        {
                            return Ok(state.clone());
                        }
                        return Err(format!(
                            "reading the state {name}: {}",
                            crate::capabilities::describe_aws_error(
                                &crate::capabilities::to_aws_error(e)
                            )
                        ));
                    }
                };
                let etag = object.e_tag().unwrap_or_default().to_string();
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("reading the state {name}: {e}"))?
                    .into_bytes();
                let state = state::parse(&bytes).map_err(|e| format!("the state {name}: {e}"))?;
                if etag.is_empty() {
                    return Ok(std::sync::Arc::new(state));
                }
                Ok(self.keep(name, etag, state))
            }
        }
    }
}

/// Where a finding's resource is declared, or why it was not found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Traced {
    /// No configured workspace manages the resource (or its kind is not traced).
    Unmanaged { reason: String },
    Located {
        workspace: String,
        /// The state address, with its index key.
        address: String,
        /// Boxed: it is most of the variant's size, and the other outcomes are small.
        location: Box<Location>,
        /// The fixer's edit of that code, once asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change: Option<Change>,
        /// The checkout the location is in.
        #[serde(skip)]
        repository: PathBuf,
    },
    /// The resource is in a workspace's state, but its code cannot be edited or found.
    Refused {
        workspace: String,
        address: String,
        reason: String,
    },
    /// A workspace's state or repository could not be read.
    Unreadable { reason: String },
}

/// A pull request salve opened or updated for a finding, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRecord {
    pub workspace: String,
    pub outcome: PullRequestOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// When the forge merged it (`salve iac sync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<String>,
}

impl PullRequestRecord {
    /// A record of `outcome` in `workspace`, saying `reason`; the rest is filled in as known.
    pub fn new(workspace: &str, outcome: PullRequestOutcome, reason: Option<String>) -> Self {
        PullRequestRecord {
            workspace: workspace.to_string(),
            outcome,
            branch: None,
            commit: None,
            number: None,
            url: None,
            diff: None,
            reason,
            retryable: false,
            merged_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullRequestOutcome {
    Opened,
    /// The finding's branch and pull request existed; both now hold this change.
    Updated,
    /// The finding's pull request was closed without merge: a person said no, so nothing was
    /// pushed and the finding goes to review.
    ClosedUnmerged,
    /// Nothing was pushed (or, when `branch` is set, the branch was pushed but the pull request
    /// was not opened): `reason` says why.
    Failed,
    /// `salve iac sync` found it merged.
    Merged,
    /// The located code already declares the fix, yet the resource was not fixed: a pending
    /// `terraform apply`, or a stale state. Nothing was pushed; without a live fix, a person
    /// looks.
    CodeAlreadyFixed,
}

/// What the fixer's `terraform` export made of the located code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Change {
    /// The edits, checked and applied to a copy: each changed file and its diff.
    Proposed {
        files: Vec<edit::FileChange>,
        /// Attributes of the resource the edit changes that make Terraform destroy and recreate
        /// it (the kind's `forces_replacement`). A pull request says so first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        forces_replacement: Vec<String>,
    },
    /// The fixer proposed edits the host refused, or could not make them.
    Refused { reason: String },
    /// The fixer does not edit Terraform.
    NotOffered { reason: String },
}

/// The workspace's repository as a local directory: a local repository in place. Cloning a
/// remote one belongs to the pull-request step, which is not built yet.
pub fn checkout(workspace: &Workspace) -> Result<PathBuf, String> {
    if workspace.is_local_repository() {
        Ok(PathBuf::from(&workspace.repository))
    } else {
        Err(format!(
            "repository {} is remote; salve reads only a local checkout so far (set repository to its path)",
            workspace.repository
        ))
    }
}

/// What the policies see of Terraform (`input.iac`): whether the state of a workspace that
/// covers the finding names its resource, and where. Read from the state alone (no clone), so
/// it costs one state read (an `If-None-Match` while the state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IacInput {
    /// `None` when the states could not be read: the policy cannot tell.
    pub managed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The resource's address in the state (`module.logs.aws_s3_bucket.this`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The module path of that address (`module.logs`; empty for the root module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Why it is not managed, or why the states could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl IacInput {
    fn unmanaged(reason: String) -> IacInput {
        IacInput {
            managed: Some(false),
            workspace: None,
            address: None,
            module: None,
            reason: Some(reason),
        }
    }
}

/// The addresses in `state` that name the finding's resource, as its kind's Terraform spec says.
fn names(state: &State, tf: &salve_contract::Terraform, finding: &Finding) -> Vec<Address> {
    let r = &finding.resource;
    let region = tf.named_by_region.then_some(r.region.as_str());
    state.find(tf.resource_type, tf.id_attributes, &r.name, &r.arn, region)
}

/// Where the states of the workspaces that cover `finding` name its resource. `None` when no
/// workspace is configured at all: then the policies see no `input.iac`.
pub async fn locate(
    config: &IacConfig,
    finding: &Finding,
    states: &StateReader,
) -> Option<IacInput> {
    if config.terraform.is_empty() {
        return None;
    }
    let Some(tf) = crate::kinds::resource_type(&finding.resource.resource_type)
        .and_then(|k| k.terraform.as_ref())
    else {
        return Some(IacInput::unmanaged(format!(
            "salve does not trace {} to Terraform",
            finding.resource.resource_type
        )));
    };
    for w in config.workspaces_for(finding) {
        let state = match w.state_location() {
            Ok(location) => states.read(&location).await,
            Err(e) => Err(e),
        };
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                return Some(IacInput {
                    managed: None,
                    reason: Some(format!("workspace {:?}: {e}", w.name)),
                    ..IacInput::unmanaged(String::new())
                })
            }
        };
        let found = names(&state, tf, finding);
        if let Some(address) = found.first() {
            let module: Vec<String> = address
                .module
                .iter()
                .map(|m| format!("module.{m}"))
                .collect();
            return Some(IacInput {
                managed: Some(true),
                workspace: Some(w.name.clone()),
                address: Some(address.to_string()),
                module: Some(module.join(".")),
                reason: None,
            });
        }
    }
    Some(IacInput::unmanaged(format!(
        "no workspace's state names {} in account {} ({})",
        finding.resource.arn, finding.resource.account_id, finding.resource.region
    )))
}

/// Traces `finding` through the workspaces that cover it. `checkout` gives a workspace's
/// repository as a local directory (the path itself for a local repository).
pub async fn trace(
    config: &IacConfig,
    finding: &Finding,
    states: &StateReader,
    checkout: impl Fn(&Workspace) -> Result<PathBuf, String>,
) -> Result<Traced, String> {
    let Some(tf) = crate::kinds::resource_type(&finding.resource.resource_type)
        .and_then(|k| k.terraform.as_ref())
    else {
        return Ok(Traced::Unmanaged {
            reason: format!(
                "salve does not trace {} to Terraform",
                finding.resource.resource_type
            ),
        });
    };
    let mut workspaces = 0;
    for w in config.workspaces_for(finding) {
        workspaces += 1;
        let location = w.state_location()?;
        let state = states
            .read(&location)
            .await
            .map_err(|e| format!("workspace {:?}: {e}", w.name))?;
        let found = names(&state, tf, finding);
        let address: Address =
            match found.as_slice() {
                [] => continue,
                [one] => one.clone(),
                many => {
                    return Ok(Traced::Refused {
                        workspace: w.name.clone(),
                        address: many[0].to_string(),
                        reason: format!(
                        "{} instances in the state name this resource ({}); salve edits only one",
                        many.len(),
                        many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                    })
                }
            };
        let repo = checkout(w).map_err(|e| format!("workspace {:?}: {e}", w.name))?;
        let root = repo.join(&w.root_module);
        let traced = match code::locate(&repo, &root, &address, tf.configured_by) {
            Ok(location) => Traced::Located {
                workspace: w.name.clone(),
                address: address.to_string(),
                location: Box::new(location),
                change: None,
                repository: repo,
            },
            Err(e @ (LocateError::Io { .. } | LocateError::Parse { .. })) => {
                return Err(format!("workspace {:?}: {e}", w.name))
            }
            Err(e) => Traced::Refused {
                workspace: w.name.clone(),
                address: address.to_string(),
                reason: e.to_string(),
            },
        };
        return Ok(traced);
    }
    Ok(Traced::Unmanaged {
        reason: if workspaces == 0 {
            format!(
                "no [[iac.terraform]] workspace covers account {} in {}",
                finding.resource.account_id, finding.resource.region
            )
        } else {
            format!(
                "not in the state of the {workspaces} workspace(s) that cover account {} in {}",
                finding.resource.account_id, finding.resource.region
            )
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_can_have_its_own_effect() {
        let c = IacConfig {
            effect_by_environment: [("Production".to_string(), IacEffect::PullRequest)].into(),
            ..IacConfig::default()
        };
        assert_eq!(c.effect_for(Some("production")), IacEffect::PullRequest);
        assert_eq!(c.effect_for(Some("dev")), IacEffect::Both);
        assert_eq!(c.effect_for(None), IacEffect::Both);
    }
}
