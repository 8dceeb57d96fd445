//! A decided fix landing in the code: a fresh clone of the workspace's repository, the fixer's
//! Terraform edit, one commit on `salve/<finding>`, a push, and a pull request through the
//! forge's API. Every way this stops is recorded in `pull_request`, a pushed branch included.

use std::fmt::Write as _;

use super::FindingRun;
use crate::audit::AuditEntry;
use crate::iac::forge::GitHub;
use crate::iac::{git, Change, PullRequestOutcome, PullRequestRecord, Traced, Workspace};
use crate::runtime::Sandbox;

impl FindingRun<'_> {
    /// The workspace that covers the finding and has a forge to open pull requests in.
    pub(super) fn forge_workspace(&self) -> Option<&Workspace> {
        self.pipeline
            .config
            .iac
            .workspaces_for(self.finding)
            .find(|w| w.forge.is_some() && w.author.is_some())
    }

    /// How a fix of this resource lands: as a policy said (`effect`), else for its environment
    /// as the decision saw it (the resource's own tags first).
    pub(super) fn iac_effect(&self, entry: &AuditEntry) -> crate::iac::IacEffect {
        let by_policy = entry
            .decision
            .as_ref()
            .and_then(|d| d.decision.policy.as_ref())
            .and_then(|p| p.effect);
        if let Some(effect) = by_policy {
            return effect;
        }
        let environment = entry
            .metadata
            .as_ref()
            .and_then(|m| m.environment.value.as_deref());
        self.pipeline.config.iac.effect_for(environment)
    }

    /// The finding's pull request in `workspace`, as the forge has it now (`Some(None)`: there
    /// is none). `None` when the forge cannot answer: that does not hold a live fix back, and
    /// the pull request step after it looks again and records the error.
    pub(super) async fn existing_pull_request(
        &self,
        workspace: &Workspace,
    ) -> Option<Option<crate::iac::forge::PullRequest>> {
        let github = GitHub::new(workspace.forge.as_ref()?).ok()?;
        github
            .find_pull(&git::branch_name(&self.finding.id))
            .await
            .ok()
    }

    /// The record of a pull request a person closed without merge: the change was declined.
    pub(super) fn declined(
        &self,
        workspace: &Workspace,
        pr: &crate::iac::forge::PullRequest,
    ) -> Option<PullRequestRecord> {
        declined(pr).then(|| declined_record(workspace, pr, git::branch_name(&self.finding.id)))
    }

    /// Opens (or updates) the finding's pull request in `workspace`. `None`: Terraform does not
    /// manage the resource, so there is nothing to propose.
    pub(super) async fn pull_request(
        &self,
        workspace: &Workspace,
        sandbox: &mut Sandbox,
        entry: &mut AuditEntry,
        fixed_live: bool,
        known: Option<Option<crate::iac::forge::PullRequest>>,
    ) -> Option<PullRequestRecord> {
        let (Some(forge), Some(author)) = (&workspace.forge, &workspace.author) else {
            return None;
        };
        let record = |outcome, reason: Option<String>| {
            PullRequestRecord::new(&workspace.name, outcome, reason)
        };
        let failed = |reason: String, retryable: bool| PullRequestRecord {
            retryable,
            ..record(PullRequestOutcome::Failed, Some(reason))
        };
        let github = match GitHub::new(forge) {
            Ok(g) => g,
            Err(e) => return Some(failed(e, false)),
        };
        let branch = git::branch_name(&self.finding.id);
        // Looked up already when the run checked, before a live fix, that it was not declined.
        let existing = match known {
            Some(known) => known,
            None => match github.find_pull(&branch).await {
                Ok(p) => p,
                Err(e) => return Some(failed(e.message, e.retryable)),
            },
        };
        if let Some(pr) = existing.as_ref().filter(|p| declined(p)) {
            return Some(declined_record(workspace, pr, branch));
        }

        let (repository, base) = (workspace.repository.clone(), workspace.base_branch.clone());
        let parent = std::env::temp_dir().join("salve-iac");
        let cloned = tokio::task::spawn_blocking(move || git::clone(&repository, &base, &parent))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let clone = match cloned {
            Ok(c) => c,
            Err(e) => return Some(failed(e, true)),
        };
        let dir = clone.dir.clone();
        let name = workspace.name.clone();
        let traced = self
            .propose(sandbox, move |w| {
                if w.name == name {
                    Ok(dir.clone())
                } else {
                    Err("not the workspace the pull request is for".into())
                }
            })
            .await;
        let (address, location, (files, forces_replacement)) = match traced {
            Traced::Located {
                address,
                location,
                change:
                    Some(Change::Proposed {
                        files,
                        forces_replacement,
                    }),
                ..
            } => (address, location, (files, forces_replacement)),
            Traced::Located {
                change: Some(Change::Refused { reason } | Change::NotOffered { reason }),
                ..
            }
            | Traced::Refused { reason, .. }
            | Traced::Unreadable { reason } => return Some(failed(reason, false)),
            Traced::Located { change: None, .. } => {
                return Some(failed("the fixer was not asked for an edit".into(), false))
            }
            Traced::Unmanaged { .. } => return None,
        };
        if files.is_empty() {
            let reason = if fixed_live {
                format!("{address} already declares the fix, which the live change has now made too, so nothing was pushed")
            } else {
                format!("{address} already declares the fix, but the resource is not fixed: a terraform apply is pending or the state is stale, so nothing was pushed")
            };
            return Some(record(PullRequestOutcome::CodeAlreadyFixed, Some(reason)));
        }
        let diff: String = files.iter().map(|f| f.diff.as_str()).collect();
        let f = self.finding;
        let title = format!("salve: {} on {}", f.control_id, f.resource.name);
        let message = format!(
            "{title}\n\nFinding: {} {} ({})\nControl: {}\nResource: {} ({})\n\nProposed by salve from its fixer {}.",
            f.source, f.id, f.title, f.control_id, f.resource.arn, address, self.fixer.manifest.name
        );
        let changes: Vec<(std::path::PathBuf, String)> = files
            .iter()
            .map(|c| (c.file.clone(), c.after.clone()))
            .collect();
        // Nothing may change in a repository that the log could not record either: a pull
        // request alone gets its own intent (a live fix's intent already covers this run).
        if entry.intent.is_none() {
            // The workspace's name, not its URL, which could hold a credential.
            let reason = format!(
                "branch {branch} is about to be pushed to workspace {:?}'s repository and a pull request opened for it; the terminal record links back here",
                workspace.name
            );
            if let Err(why) = self.record_intent(entry, &reason).await {
                return Some(failed(format!("{why}, so nothing was pushed"), true));
            }
        }
        let who = (author.name.clone(), author.email.clone());
        let branch_for_push = branch.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            let result =
                clone.commit_and_push(&branch_for_push, &changes, &message, (&who.0, &who.1));
            drop(clone);
            result
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let pushed = match pushed {
            Ok(p) => p,
            Err(e) => {
                return Some(PullRequestRecord {
                    diff: Some(diff),
                    ..failed(format!("{e}; no branch was pushed"), true)
                })
            }
        };
        // A value set through a variable changes where it is set, for every reader of it.
        let variables: Vec<&crate::iac::code::Located> = location
            .set_by
            .iter()
            .filter(|b| files.iter().any(|f| f.file == b.file))
            .collect();
        // A change that destroys the resource is never proposed quietly: it is said first.
        let mut body = String::new();
        if !forces_replacement.is_empty() {
            let warning = crate::iac::edit::replacement_warning(
                &location.resource.address,
                &forces_replacement,
            );
            body = warning + "\n\n";
        }
        body += &self.body(
            entry,
            fixed_live,
            &address,
            &location.resource.file,
            &diff,
            &variables,
        );
        let opened = match &existing {
            // The pull request is the one this finding's branch already had.
            Some(pr) => github
                .update_pull(pr.number, &title, &body)
                .await
                .map(|_| (pr.clone(), PullRequestOutcome::Updated)),
            None => match github
                .open_pull(&branch, &workspace.base_branch, &title, &body)
                .await
            {
                // Another run opened it between the lookup and now.
                Err(e) if e.status == Some(422) => match github.find_pull(&branch).await {
                    Ok(Some(pr)) => github
                        .update_pull(pr.number, &title, &body)
                        .await
                        .map(|_| (pr, PullRequestOutcome::Updated)),
                    _ => Err(e),
                },
                other => other.map(|p| (p, PullRequestOutcome::Opened)),
            },
        };
        let with_branch = |r: PullRequestRecord| PullRequestRecord {
            branch: Some(pushed.branch.clone()),
            commit: Some(pushed.commit.clone()),
            diff: Some(diff.clone()),
            ..r
        };
        match opened {
            Err(e) => Some(with_branch(failed(
                format!(
                    "branch {} was pushed (commit {}), but the pull request was not opened: {}",
                    pushed.branch, pushed.commit, e.message
                ),
                e.retryable,
            ))),
            Ok((pr, outcome)) => {
                let replaces = (!forces_replacement.is_empty()).then(|| {
                    format!(
                        "merging it destroys and recreates {} ({} cannot change in place); the pull request says so first",
                        location.resource.address,
                        forces_replacement.join(", ")
                    )
                });
                let mut r = with_branch(PullRequestRecord {
                    number: Some(pr.number),
                    url: Some(pr.html_url.clone()),
                    ..record(outcome, replaces.clone())
                });
                if let Err(e) = github.add_labels(pr.number, &forge.labels).await {
                    let labels = format!("the labels were not added: {}", e.message);
                    r.reason = Some(match replaces {
                        Some(replaces) => format!("{replaces}; {labels}"),
                        None => labels,
                    });
                }
                Some(r)
            }
        }
    }

    /// The pull request's description: the finding, its risk, the exact change, what salve did
    /// live, the audit trail and how to revert.
    fn body(
        &self,
        entry: &AuditEntry,
        fixed_live: bool,
        address: &str,
        file: &std::path::Path,
        diff: &str,
        variables: &[&crate::iac::code::Located],
    ) -> String {
        let f = self.finding;
        let mut b = String::new();
        let _ = writeln!(
            b,
            "salve found **{}** on `{}` and proposes this change to the Terraform that declares it (`{address}` in `{}`), so the next `terraform apply` keeps the fix.\n",
            f.control_id,
            f.resource.arn,
            file.display()
        );
        for v in variables {
            let (name, source) = match v.resource_type.as_str() {
                "tfvars" => (
                    v.address.trim_start_matches("tfvars."),
                    "which overrides the variable's default",
                ),
                _ => (
                    v.address.trim_start_matches("var."),
                    "its default, since no .tfvars file sets it",
                ),
            };
            let _ = writeln!(
                b,
                "**The value comes from variable `{name}`.** The change is made where Terraform takes it from: `{}` line {}, {source}. Every resource that reads `var.{name}` changes with it.\n",
                v.file.display(),
                v.start_line
            );
        }
        let _ = writeln!(b, "### Finding\n");
        let _ = writeln!(b, "- Source: {} `{}`", f.source, f.id);
        let _ = writeln!(b, "- Title: {}", f.title);
        let control = match &self.pipeline.config.iac.control_docs_url {
            Some(url) => format!(
                "[{0}]({1})",
                f.control_id,
                url.replace("{control}", &f.control_id)
            ),
            None => f.control_id.clone(),
        };
        let _ = writeln!(b, "- Control: {control}");
        if let Some(r) = &entry.risk {
            let _ = writeln!(
                b,
                "- Risk: score {}, priority {}",
                r.score,
                r.priority.as_str()
            );
        }
        let fence = fence_for(diff);
        let newline = if diff.ends_with('\n') { "" } else { "\n" };
        let _ = writeln!(b, "\n### Change\n\n{fence}diff\n{diff}{newline}{fence}\n");
        let live = if fixed_live {
            "salve has already fixed the resource in the account; this change makes the code agree, so the next apply does not undo it."
        } else {
            "salve changed nothing in the account: this pull request is the fix."
        };
        let _ = writeln!(b, "### In the account\n\n{live}\n");
        if let Some(intent) = &entry.intent {
            let what = if fixed_live {
                "the live change's"
            } else {
                "this push's"
            };
            let _ = writeln!(
                b,
                "Audit: {what} intent is record #{} (hash `{}`).\n",
                intent.sequence, intent.record_hash
            );
        }
        let _ = writeln!(
            b,
            "### Reverting\n\nRevert this pull request's commit. A live change salve made is undone with `salve rollback {}`.",
            f.id
        );
        b
    }
}

/// A code fence no line of `text` can close: longer than its longest run of backticks (a diff
/// of a Markdown file, or a hostile fixer's edit, must not end the block and write the rest of
/// the description).
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn declined(pr: &crate::iac::forge::PullRequest) -> bool {
    pr.state == "closed" && pr.merged_at.is_none()
}

fn declined_record(
    workspace: &Workspace,
    pr: &crate::iac::forge::PullRequest,
    branch: String,
) -> PullRequestRecord {
    PullRequestRecord {
        branch: Some(branch),
        number: Some(pr.number),
        url: Some(pr.html_url.clone()),
        ..PullRequestRecord::new(
            &workspace.name,
            PullRequestOutcome::ClosedUnmerged,
            Some(format!(
                "pull request #{} for this finding was closed without merge: a person declined the change, so nothing was pushed or changed",
                pr.number
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_diff_cannot_close_its_fence() {
        assert_eq!(super::fence_for("+ a = 1\n"), "```");
        assert_eq!(super::fence_for("+ ```\n+ ````x\n"), "`````");
    }
}
