//! Break-glass: a person may change a resource by hand during an incident, for a bounded time.
//! Opening a window records who, why and until when, and opens a reconciliation issue in the
//! repository of the workspace that declares the resource; while it is open the gate passes for
//! that resource with a warning. A window ends when a person closes it or when `drift check`
//! finds the live state and the code agree again.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::history::{self, History, Window, WindowState};
use super::{BreakGlassRecord, Drift};
use crate::audit::{AuditEntry, Status};
use crate::iac::forge::GitHub;
use crate::iac::Workspace;
use crate::kinds;
use crate::timestamp::{self, EpochMillis};

/// What a person asks for with `salve break-glass open`.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub resource_arn: String,
    pub reason: String,
    pub by: String,
    pub ticket: Option<String>,
}

/// An opened window, as the command prints it.
#[derive(Debug, Serialize)]
pub struct Opened {
    pub record: u64,
    pub due_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<crate::iac::forge::Issue>,
    /// Why no reconciliation issue was opened; the window is open all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_error: Option<String>,
}

impl Drift<'_> {
    /// The workspace whose state declares `arn` (and `true`), else the first that covers its
    /// account and region (and `false`).
    async fn workspace_of(&self, arn: &str) -> Option<(&Workspace, bool)> {
        let (iac, states) = self.pipeline.iac();
        let parsed = salve_contract::parse_arn(arn).ok()?;
        let kind = kinds::for_arn(&parsed)?;
        let tf = kind.spec.terraform.as_ref()?;
        let mut covering = None;
        for w in &iac.terraform {
            let (Ok(location), Some((account, region))) = (w.state_location(), w.place()) else {
                continue;
            };
            if let Ok(state) = states.read(&location).await {
                let declares = state.instances_of(tf.resource_type).any(|(_, i)| {
                    i.id(tf.id_attributes).is_some_and(|id| {
                        kind.declared(salve_core::StateInstance {
                            id,
                            attributes: &i.attributes,
                            configured_by: &[],
                            account_id: account,
                            region,
                        })
                        .is_ok_and(|d| d.arn == arn)
                    })
                });
                if declares {
                    return Some((w, true));
                }
            }
            let place = (parsed.account.is_empty() || parsed.account == account)
                && (parsed.region.is_empty() || parsed.region == region);
            if covering.is_none() && place {
                covering = Some(w);
            }
        }
        covering.map(|w| (w, false))
    }

    /// Opens a window for `request.resource_arn`, due `[drift] break-glass-hours` after `now`.
    pub async fn open_break_glass(
        &self,
        request: &OpenRequest,
        now: EpochMillis,
    ) -> Result<Opened> {
        for (what, value) in [("--by", &request.by), ("--reason", &request.reason)] {
            if value.trim().is_empty() {
                bail!(
                    "{what} must not be empty: a break-glass window records who opened it and why"
                );
            }
        }
        let arn = request.resource_arn.trim();
        let parsed = salve_contract::parse_arn(arn)
            .map_err(|e| anyhow::anyhow!("--resource {arn:?} is not an ARN: {e}"))?;
        if kinds::for_arn(&parsed).is_none() {
            bail!(
                "--resource {arn:?} is not a kind salve knows; the kinds are: {}",
                kinds::specs()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let history = History::read(self.audit_log)?;
        if let Some(w) = history.unclosed(arn) {
            bail!(
                "{arn} already has a break-glass window, opened by {} in record {} and due {}; close it first (`salve break-glass close`)",
                w.by,
                w.opened.sequence,
                w.due_at
            );
        }
        let (workspace, declared) = match self.workspace_of(arn).await {
            Some((w, declared)) => (Some(w), declared),
            None => (None, false),
        };
        if !declared && !history.resources.contains(arn) {
            bail!(
                "salve does not know {arn}: no record in {} names it and no configured workspace's state declares it; check the ARN",
                self.audit_log.display()
            );
        }
        let due = now + i64::from(self.config.break_glass_hours) * 3_600_000;
        let (opened_at, due_at) = (timestamp::format(now), timestamp::format(due));
        let (issue, issue_error) = match workspace.and_then(|w| w.forge.as_ref().map(|f| (w, f))) {
            None => (
                None,
                Some(match workspace {
                    Some(w) => format!("workspace {:?} has no forge to open a reconciliation issue in", w.name),
                    None => "no configured workspace covers the resource, so there is no repository to open a reconciliation issue in".into(),
                }),
            ),
            Some((w, forge)) => {
                let body = issue_body(request, &history, arn, &w.name, &due_at);
                let mut labels = forge.labels.clone();
                labels.push("break-glass".into());
                let opened = match GitHub::new(forge) {
                    Ok(client) => client
                        .open_issue(&format!("Reconcile break-glass change to {arn}"), &body, &labels)
                        .await
                        .map_err(|e| e.message),
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(issue) => (Some(issue), None),
                    Err(e) => (None, Some(format!("opening the reconciliation issue: {e}"))),
                }
            }
        };
        let entry = AuditEntry {
            resource_arn: Some(arn.to_string()),
            status: Some(Status::BreakGlassOpened),
            reason: Some(format!(
                "break-glass opened by {}: {}; due {due_at}",
                request.by, request.reason
            )),
            break_glass: Some(BreakGlassRecord {
                by: Some(request.by.clone()),
                reason: Some(request.reason.clone()),
                ticket: request.ticket.clone(),
                opened_at: Some(opened_at),
                due_at: Some(due_at.clone()),
                issue: issue.clone(),
                issue_error: issue_error.clone(),
                window: None,
            }),
            ..AuditEntry::default()
        };
        let sealed = self
            .pipeline
            .record_operation(entry)
            .await
            .context("recording the break-glass window")?;
        Ok(Opened {
            record: sealed.sequence,
            due_at,
            issue,
            issue_error,
        })
    }

    /// Closes `arn`'s window.
    pub async fn close_break_glass(&self, arn: &str, by: &str, reason: &str) -> Result<u64> {
        if by.trim().is_empty() || reason.trim().is_empty() {
            bail!("--by and --reason must not be empty: closing a window is recorded too");
        }
        let history = History::read(self.audit_log)?;
        let Some(w) = history.unclosed(arn) else {
            bail!("{arn} has no open break-glass window; `salve break-glass list` shows them");
        };
        let entry = AuditEntry {
            resource_arn: Some(arn.to_string()),
            status: Some(Status::BreakGlassClosed),
            reason: Some(format!(
                "closed by {by}: {reason} (window opened by {} in record {})",
                w.by, w.opened.sequence
            )),
            break_glass: Some(BreakGlassRecord {
                by: Some(by.into()),
                reason: Some(reason.into()),
                window: Some(w.opened.clone()),
                ..BreakGlassRecord::default()
            }),
            ..AuditEntry::default()
        };
        Ok(self.pipeline.record_operation(entry).await?.sequence)
    }
}

fn issue_body(
    request: &OpenRequest,
    history: &History,
    arn: &str,
    workspace: &str,
    due_at: &str,
) -> String {
    let drift = history
        .drift
        .get(arn)
        .map(|o| format!("Drift recorded (record {}, since {}): {}\n\n", o.record.sequence, o.drift.since, super::describe(&o.drift.drifts)))
        .unwrap_or_else(|| "No drift is recorded for it yet; `salve drift check` will record the manual change.\n\n".into());
    format!(
        "A break-glass window was opened for `{arn}` (workspace `{workspace}`).\n\n\
         - Opened by: {}\n- Reason: {}\n{}- Due: **{due_at}**\n\n{drift}\
         Close this within the window, one of two ways:\n\
         1. reconcile the code: change the Terraform so it declares what is live now, and merge;\n\
         2. revert the live change, so it matches the code again.\n\n\
         `salve drift check` closes the window on its own once the live state and the code agree. \
         After the due time, `salve drift gate` fails again for this resource.\n",
        request.by,
        request.reason,
        request
            .ticket
            .as_deref()
            .map(|t| format!("- Incident ticket: {t}\n"))
            .unwrap_or_default(),
    )
}

/// A window as `salve break-glass list` shows it.
#[derive(Debug, Serialize)]
pub struct Listed<'a> {
    #[serde(flatten)]
    pub window: &'a Window,
    #[serde(rename = "now")]
    pub state: WindowState,
}

/// Every window, newest first, with where it stands at `now`.
pub fn list(history: &History, now: EpochMillis) -> Vec<Listed<'_>> {
    history
        .windows
        .iter()
        .rev()
        .map(|w| Listed {
            window: w,
            state: w.state(now),
        })
        .collect()
}

/// One line per window.
pub fn render(listed: &[Listed<'_>]) -> String {
    if listed.is_empty() {
        return "no break-glass windows\n".into();
    }
    let mut out = String::new();
    for l in listed {
        let w = l.window;
        let state = match l.state {
            WindowState::Open { left_ms } => format!("open, {} left", history::duration(left_ms)),
            WindowState::Overdue { late_ms } => {
                format!("OVERDUE by {}", history::duration(late_ms))
            }
            WindowState::Closed => {
                let c = w.closed.as_ref();
                format!(
                    "closed {} by {}",
                    c.map(|c| c.at.as_str()).unwrap_or("?"),
                    c.map(|c| c.by.as_str()).unwrap_or("?")
                )
            }
            WindowState::Malformed => "malformed due time: covers nothing".into(),
        };
        out.push_str(&format!(
            "{}  {state}\n  opened {} by {} (record {}): {}\n  due {}{}\n",
            w.resource_arn,
            w.opened_at,
            w.by,
            w.opened.sequence,
            w.reason,
            w.due_at,
            w.issue
                .as_ref()
                .map(|i| format!("; reconciliation issue #{} {}", i.number, i.html_url))
                .unwrap_or_default()
        ));
    }
    out
}
