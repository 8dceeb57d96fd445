//! The git CLI, for a pull request's branch: a fresh clone of the workspace's repository, one
//! commit on `salve/<finding>`, a push that replaces only what salve pushed there before.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh clone, removed when dropped.
pub struct Clone {
    pub dir: PathBuf,
}

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `git args…` in `dir`; the error names the command and git's own words.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Never ask anyone for anything: a missing credential is an error, not a prompt.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .output()
        .map_err(|e| format!("running git: {e}; is git installed?"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            crate::text::bounded(String::from_utf8_lossy(&out.stderr).trim(), 1024)
        ))
    }
}

/// Clones `base` of `repository` (a URL or a path) into a new directory under `parent`.
pub fn clone(repository: &str, base: &str, parent: &Path) -> Result<Clone, String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = parent.join(format!("clone-{}-{nanos}", std::process::id()));
    let target = dir.display().to_string();
    git(
        parent,
        &[
            "clone",
            "--quiet",
            "--no-tags",
            "--single-branch",
            "--branch",
            base,
            "--",
            repository,
            &target,
        ],
    )
    .map_err(|e| format!("cloning {repository} ({base}): {e}"))?;
    Ok(Clone { dir })
}

/// `salve/<finding-id>`, with anything git would refuse in a branch name replaced.
pub fn branch_name(finding_id: &str) -> String {
    let safe: String = finding_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("salve/{}", safe.trim_matches('.'))
}

/// What a push left on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    pub commit: String,
    /// The branch already existed (an earlier run for the same finding).
    pub replaced: bool,
}

impl Clone {
    /// Commits `files` (relative path, new content) on `branch` from the cloned base and pushes
    /// it. The push replaces the branch only if it still is what salve saw (`--force-with-lease`).
    pub fn commit_and_push(
        &self,
        branch: &str,
        files: &[(PathBuf, String)],
        message: &str,
        author: (&str, &str),
    ) -> Result<Pushed, String> {
        let dir = &self.dir;
        if !git(dir, &["status", "--porcelain"])?.is_empty() {
            return Err("the fresh clone is not clean".into());
        }
        let remote = git(dir, &["ls-remote", "--heads", "origin", branch])?;
        let seen = remote
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        git(dir, &["checkout", "--quiet", "-B", branch])?;
        for (file, content) in files {
            let path = dir.join(file);
            if !path.starts_with(dir) || file.is_absolute() {
                return Err(format!("{} is outside the repository", file.display()));
            }
            std::fs::write(&path, content)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            git(dir, &["add", "--", &file.display().to_string()])?;
        }
        let (name, email) = author;
        git(
            dir,
            &[
                "-c",
                &format!("user.name={name}"),
                "-c",
                &format!("user.email={email}"),
                "commit",
                "--quiet",
                "--no-verify",
                "-m",
                message,
            ],
        )?;
        let commit = git(dir, &["rev-parse", "HEAD"])?;
        let lease = format!("--force-with-lease=refs/heads/{branch}:{seen}");
        git(
            dir,
            &[
                "push",
                "--quiet",
                "--no-verify",
                &lease,
                "origin",
                &format!("HEAD:refs/heads/{branch}"),
            ],
        )
        .map_err(|e| format!("pushing {branch}: {e}"))?;
        Ok(Pushed {
            branch: branch.to_string(),
            commit,
            replaced: !seen.is_empty(),
        })
    }
}
