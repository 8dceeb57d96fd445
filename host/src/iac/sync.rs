//! `salve iac sync`: what happened to the pull requests salve opened. A merged pull request ends
//! the finding's remediation at its merge time (the report's MTTR counts it); one closed without
//! merge means a person said no, and the finding is open again. Each change of state is one
//! record; a pull request still open writes nothing.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::forge::GitHub;
use super::{PullRequestOutcome, PullRequestRecord};
use crate::audit::{AuditEntry, Status};
use crate::finding::Finding;
use crate::pipeline::Pipeline;

/// One pull request's state, as `iac sync` found it.
#[derive(Debug, Clone, Serialize)]
pub struct Synced {
    pub finding_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// `merged`, `closed-unmerged`, `open`, or `unknown` with `reason`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
}

/// Asks the forge about every finding whose latest record is `pull-request-opened`, and records
/// the merged and the closed ones.
pub async fn sync(pipeline: &Pipeline, audit_log: &Path) -> Result<Vec<Synced>> {
    let (iac, _) = pipeline.iac();
    let mut latest: Vec<_> = crate::latest::records(audit_log)?
        .into_iter()
        .filter(|(_, l)| l.status == Status::PullRequestOpened)
        .collect();
    latest.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut clients: std::collections::HashMap<String, Result<GitHub, String>> =
        std::collections::HashMap::new();
    for (id, last) in latest {
        let mut synced = Synced {
            finding_id: id.clone(),
            number: None,
            state: "unknown",
            reason: None,
            record: None,
        };
        let Some(pr) = last.pull_request else {
            synced.reason = Some("the record holds no pull request".into());
            out.push(synced);
            continue;
        };
        synced.number = pr.number;
        let forge = iac
            .terraform
            .iter()
            .find(|w| w.name == pr.workspace)
            .and_then(|w| w.forge.as_ref());
        let (Some(forge), Some(branch)) = (forge, pr.branch.as_deref()) else {
            synced.reason = Some(format!(
                "workspace {:?} is not configured with a forge, or the record names no branch",
                pr.workspace
            ));
            out.push(synced);
            continue;
        };
        // One client per workspace for the whole sync: building one loads the TLS roots.
        let client = clients
            .entry(pr.workspace.clone())
            .or_insert_with(|| GitHub::new(forge));
        let found = match client {
            Ok(client) => client.find_pull(branch).await.map_err(|e| e.message),
            Err(e) => Err(e.clone()),
        };
        let pull = match found {
            Ok(Some(p)) => p,
            Ok(None) => {
                synced.reason = Some(format!("the forge has no pull request for {branch}"));
                out.push(synced);
                continue;
            }
            Err(e) => {
                synced.reason = Some(e);
                out.push(synced);
                continue;
            }
        };
        let (status, outcome, state, reason) = match (&pull.merged_at, pull.state.as_str()) {
            (Some(at), _) => (
                Status::PullRequestMerged,
                PullRequestOutcome::Merged,
                "merged",
                format!("pull request #{} was merged at {at}", pull.number),
            ),
            (None, "closed") => (
                Status::PullRequestClosed,
                PullRequestOutcome::ClosedUnmerged,
                "closed-unmerged",
                format!(
                    "pull request #{} was closed without merge: the finding is open again",
                    pull.number
                ),
            ),
            _ => {
                synced.state = "open";
                out.push(synced);
                continue;
            }
        };
        synced.state = state;
        let finding = last.finding.and_then(|f| Finding::from_recorded(f).ok());
        let entry = AuditEntry {
            finding_id: Some(id.clone()),
            correlation_id: finding.as_ref().map(|f| f.correlation_id.clone()),
            resource_arn: finding.as_ref().map(|f| f.resource.arn.clone()),
            finding,
            status: Some(status),
            reason: Some(reason),
            pull_request: Some(PullRequestRecord {
                outcome,
                number: Some(pull.number),
                url: Some(pull.html_url.clone()),
                merged_at: pull.merged_at.clone(),
                ..pr
            }),
            ..AuditEntry::default()
        };
        synced.record = Some(pipeline.record_operation(entry).await?.sequence);
        out.push(synced);
    }
    Ok(out)
}
