//! Finding a resource's code in a Terraform repository: follow the local module calls from the
//! root module to the directory that declares it, then find its `resource` block and the blocks
//! that configure it from outside. The parser (hcl-edit) keeps formatting and comments, so what
//! is found can later be edited in place.

use std::path::{Path, PathBuf};

use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;
use serde::{Deserialize, Serialize};

use super::state::Address;

/// One block found in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    /// `module.bucket.aws_s3_bucket.logs` (without an index key: a block declares every
    /// instance).
    pub address: String,
    pub resource_type: String,
    /// Relative to the repository's root.
    pub file: PathBuf,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    /// The block's text as written.
    pub text: String,
    /// Its bytes in the file, for editing it in place.
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
}

/// A resource's block, the blocks that configure it from outside, and where the variables
/// they read are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub resource: Located,
    pub configured_by: Vec<Located>,
    /// For each `var.NAME` those blocks read in the root module: where its value is set. That
    /// is the `NAME = …` line of the `.tfvars` file Terraform loads last (`terraform.tfvars`,
    /// then `*.auto.tfvars` in name order), whose value overrides the default; else the
    /// `variable "NAME"` block with its default. Addresses: `tfvars.NAME` (type `tfvars`, the
    /// one line) and `var.NAME` (type `variable`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_by: Vec<Located>,
}

impl Location {
    /// Every located block, the resource first.
    pub fn blocks(&self) -> impl Iterator<Item = &Located> {
        std::iter::once(&self.resource)
            .chain(&self.configured_by)
            .chain(&self.set_by)
    }
}

/// Why a resource's code was not found; each reason goes into the record as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("resource is declared in external module {module_source} (module \"{call}\"); only local modules (./, ../) can be edited in this repository")]
    External { call: String, module_source: String },
    #[error("module \"{call}\" has a source that leaves the repository ({module_source})")]
    Escapes { call: String, module_source: String },
    #[error("no module \"{call}\" block in {dir}: the repository does not match the state")]
    ModuleCallNotFound { call: String, dir: String },
    #[error("no resource \"{resource_type}\" \"{name}\" block in {dir}: the repository does not match the state")]
    BlockNotFound {
        resource_type: String,
        name: String,
        dir: String,
    },
    #[error("{file} is not valid HCL: {error}")]
    Parse { file: String, error: String },
    #[error("reading {path}: {error}")]
    Io { path: String, error: String },
}

/// One parsed `.tf` file.
struct TfFile {
    /// Relative to the repository's root.
    path: PathBuf,
    text: String,
    body: Body,
}

fn io_error(path: &Path, e: std::io::Error) -> LocateError {
    LocateError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    }
}

/// `path` as the repository names it, for messages and records.
fn relative(repo: &Path, path: &Path) -> String {
    path.strip_prefix(repo)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.tf` file of `dir`, parsed, in name order.
fn tf_files(repo: &Path, dir: &Path) -> Result<Vec<TfFile>, LocateError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "tf"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            let body = hcl_edit::parser::parse_body(&text).map_err(|e| LocateError::Parse {
                file: relative(repo, &path),
                error: e.to_string(),
            })?;
            Ok(TfFile {
                path: path.strip_prefix(repo).unwrap_or(&path).to_path_buf(),
                text,
                body,
            })
        })
        .collect()
}

fn located(file: &TfFile, block: &Block, address: String, resource_type: &str) -> Located {
    located_span(file, block.span().unwrap_or(0..0), address, resource_type)
}

fn located_span(
    file: &TfFile,
    span: std::ops::Range<usize>,
    address: String,
    resource_type: &str,
) -> Located {
    let line = |at: usize| {
        let before = file.text.get(..at).unwrap_or(&file.text);
        before.matches('\n').count() + 1
    };
    Located {
        address,
        resource_type: resource_type.to_string(),
        file: file.path.clone(),
        start_line: line(span.start),
        end_line: line(span.end.saturating_sub(1).max(span.start)),
        text: file.text.get(span.clone()).unwrap_or_default().to_string(),
        span,
    }
}

/// The string value of a block's attribute `key`, when it is a plain string.
fn string_attribute<'a>(block: &'a Block, key: &str) -> Option<&'a str> {
    block.body.get_attribute(key).and_then(|a| a.value.as_str())
}

/// Follows `address`'s module calls from `root` (a directory inside `repo`) and finds its
/// resource block, and the blocks of `configured_by` (type, referring attribute) that refer to it.
pub fn locate(
    repo: &Path,
    root: &Path,
    address: &Address,
    configured_by: &[(&str, &str)],
) -> Result<Location, LocateError> {
    let repo = repo.canonicalize().map_err(|e| io_error(repo, e))?;
    let mut dir = root.canonicalize().map_err(|e| io_error(root, e))?;
    let mut prefix = String::new();
    for call in address.module_calls() {
        let files = tf_files(&repo, &dir)?;
        let source = files
            .iter()
            .flat_map(|f| f.body.get_blocks("module"))
            .find(|b| b.has_exact_labels(&[call]))
            .map(|b| {
                string_attribute(b, "source")
                    .unwrap_or_default()
                    .to_string()
            })
            .ok_or_else(|| LocateError::ModuleCallNotFound {
                call: call.to_string(),
                dir: relative(&repo, &dir),
            })?;
        if !(source.starts_with("./") || source.starts_with("../")) {
            return Err(LocateError::External {
                call: call.to_string(),
                module_source: source,
            });
        }
        let next = dir
            .join(&source)
            .canonicalize()
            .map_err(|e| io_error(&dir.join(&source), e))?;
        if !next.starts_with(&repo) {
            return Err(LocateError::Escapes {
                call: call.to_string(),
                module_source: source,
            });
        }
        dir = next;
        prefix.push_str(&format!("module.{call}."));
    }
    let files = tf_files(&repo, &dir)?;
    let (rt, name) = (address.resource_type.as_str(), address.name.as_str());
    let resource = files
        .iter()
        .find_map(|f| {
            f.body
                .get_blocks("resource")
                .find(|b| b.has_exact_labels(&[rt, name]))
                .map(|b| located(f, b, format!("{prefix}{rt}.{name}"), rt))
        })
        .ok_or_else(|| LocateError::BlockNotFound {
            resource_type: rt.to_string(),
            name: name.to_string(),
            dir: relative(&repo, &dir),
        })?;
    // `aws_s3_bucket.logs.id`, `aws_s3_bucket.logs["a"].id`, `aws_s3_bucket.logs.bucket`, ...
    let reference = format!("{rt}.{name}");
    let refers = |text: &str| {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .any(|word| word == reference || word.starts_with(&format!("{reference}.")))
    };
    let mut configured = Vec::new();
    for (config_type, attribute) in configured_by {
        for f in &files {
            for b in f.body.get_blocks("resource") {
                let Some(label) = b.labels.get(1) else {
                    continue;
                };
                let is_type = b.labels.first().is_some_and(|l| l.as_str() == *config_type);
                let value = b.body.get_attribute(attribute).map(|a| a.value.to_string());
                if is_type && value.as_deref().is_some_and(refers) {
                    let address = format!("{prefix}{config_type}.{}", label.as_str());
                    configured.push(located(f, b, address, config_type));
                }
            }
        }
    }
    let mut location = Location {
        resource,
        configured_by: configured,
        set_by: Vec::new(),
    };
    // A child module's variables are set by its caller's arguments, which are not followed.
    if prefix.is_empty() {
        location.set_by = variables_set(&repo, &dir, &files, &location)?;
    }
    Ok(location)
}

/// The names of the variables `text` reads (`var.NAME`), in order, once each.
fn variables_read(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("var.") {
        let preceded = text.len() - rest.len() + at;
        let before = text[..preceded].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Where each variable the located blocks read is set (see [`Location::set_by`]).
fn variables_set(
    repo: &Path,
    dir: &Path,
    files: &[TfFile],
    location: &Location,
) -> Result<Vec<Located>, LocateError> {
    let texts: Vec<&str> = location.blocks().map(|b| b.text.as_str()).collect();
    let mut names: Vec<&str> = Vec::new();
    for t in &texts {
        for n in variables_read(t) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // Terraform loads terraform.tfvars, then *.auto.tfvars in name order; a later one wins.
    let mut tfvars: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".auto.tfvars"))
        })
        .collect();
    tfvars.sort();
    tfvars.insert(0, dir.join("terraform.tfvars"));
    let mut parsed = Vec::new();
    for path in tfvars.into_iter().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let body = hcl_edit::parser::parse_body(&text).map_err(|e| LocateError::Parse {
            file: relative(repo, &path),
            error: e.to_string(),
        })?;
        parsed.push(TfFile {
            path: path.strip_prefix(repo).unwrap_or(&path).to_path_buf(),
            text,
            body,
        });
    }
    let mut out = Vec::new();
    for name in names {
        let assigned = parsed.iter().rev().find_map(|f| {
            f.body
                .get_attribute(name)
                .map(|a| (f, a.span().unwrap_or(0..0)))
        });
        if let Some((f, span)) = assigned {
            out.push(located_span(f, span, format!("tfvars.{name}"), "tfvars"));
            continue;
        }
        let declared = files.iter().find_map(|f| {
            f.body
                .get_blocks("variable")
                .find(|b| b.has_exact_labels(&[name]))
                .map(|b| located(f, b, format!("var.{name}"), "variable"))
        });
        out.extend(declared);
    }
    Ok(out)
}
