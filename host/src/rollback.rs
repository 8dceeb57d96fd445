//! `salve rollback`: undoing a fix with the rollback data its record keeps. The fix is found in
//! the audit log; the pipeline then reads the resource back to see that it is still as the fix
//! left it, asks the fixer's `rollback` export for the inverse plan, and applies that plan like
//! any other, through a write session limited to it (`Pipeline::rollback`).

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::audit::Status;
use crate::capabilities::Plan;
use crate::finding::Finding;
use crate::record::RecordLink;
use crate::runtime::FixerIdentity;

/// What a person asks for with `salve rollback`.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub by: String,
    pub reason: String,
    /// Undo even where the fixer calls undoing unsafe.
    pub force: bool,
}

/// A fix salve made, as its `remediated` record keeps it.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub finding: Finding,
    /// The fix's plan. Each call's outcome must still hold before anything is undone.
    pub plan: Plan,
    /// The fixer's rollback data as it wrote it; absent when it returned none.
    pub rollback: Option<String>,
    pub fixer: Option<FixerIdentity>,
    pub record: RecordLink,
}

/// The fix `finding_id`'s latest record holds, or why there is none to undo.
pub fn find(audit_log: &Path, finding_id: &str) -> Result<Fixed> {
    let mut latest = crate::latest::records(audit_log)?;
    let Some(last) = latest.remove(finding_id) else {
        bail!(
            "finding {finding_id:?} has no record in {}; only a fix recorded there can be rolled back",
            audit_log.display()
        );
    };
    if let (Status::RolledBack, Some(r)) = (last.status, &last.reversal) {
        bail!(
            "finding {finding_id:?} was already rolled back by {} (record {}); nothing is left to undo",
            r.by,
            last.link.as_ref().map(|l| l.sequence).unwrap_or_default()
        );
    }
    if let (Status::PullRequestOpened | Status::PullRequestMerged, Some(pr)) =
        (last.status, &last.pull_request)
    {
        bail!(
            "finding {finding_id:?} was fixed by a pull request, not in the account, so there is nothing live to roll back. To revert it: {}",
            revert_instructions(pr)
        );
    }
    Fixed::from_latest(finding_id, last)
}

impl Fixed {
    /// The fix a finding's latest record holds, when it is a `remediated` record.
    pub fn from_latest(finding_id: &str, last: crate::latest::Latest) -> Result<Fixed> {
        if last.status != Status::Remediated {
            bail!(
                "finding {finding_id:?}'s latest record is {}, not remediated: only a fix salve made and nothing undid since can be rolled back",
                last.status.as_str()
            );
        }
        let (Some(record), Some(plan), Some(finding)) = (last.link, last.plan, last.finding) else {
            bail!("finding {finding_id:?}'s remediated record lacks its chain fields, plan or finding; run `salve audit verify`");
        };
        // The record's finding is input again: validated like any other.
        let finding = Finding::from_recorded(finding)
            .with_context(|| format!("finding {finding_id:?}'s remediated record"))?;
        let rollback = last.rollback.map(|v| match v {
            // The record keeps data too big or too deep for JSON as a (bounded) string of it.
            serde_json::Value::String(text)
                if serde_json::from_str::<serde_json::Value>(&text).is_ok() =>
            {
                text
            }
            v => v.to_string(),
        });
        Ok(Fixed {
            finding,
            plan,
            rollback,
            fixer: last.fixer,
            record,
        })
    }
}

/// Every fix that is the latest record of its finding, by finding ID; a record that cannot be
/// read as a fix is its ID and why.
pub fn remediated(audit_log: &Path) -> Result<Vec<Result<Fixed, (String, String)>>> {
    let mut out: Vec<_> = crate::latest::records(audit_log)?
        .into_iter()
        .filter(|(_, last)| last.status == Status::Remediated)
        .map(|(id, last)| Fixed::from_latest(&id, last).map_err(|e| (id, format!("{e:#}"))))
        .collect();
    out.sort_by(|a, b| id_of(a).cmp(id_of(b)));
    Ok(out)
}

fn id_of(r: &Result<Fixed, (String, String)>) -> &str {
    match r {
        Ok(f) => &f.finding.id,
        Err((id, _)) => id,
    }
}

/// How to undo a fix that went in as a pull request.
pub fn revert_instructions(pr: &crate::iac::PullRequestRecord) -> String {
    let what = match (&pr.number, &pr.url) {
        (Some(n), Some(url)) => format!("pull request #{n} ({url})"),
        _ => "the pull request".into(),
    };
    let branch = pr.branch.as_deref().unwrap_or("salve/<finding>");
    match &pr.commit {
        Some(commit) => format!(
            "if {what} is not merged, close it and delete branch {branch}; if it is, run `git revert {commit}` on the base branch and open a pull request with the revert"
        ),
        None => format!("close {what} and delete branch {branch}"),
    }
}
