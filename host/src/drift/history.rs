//! What the audit log says about drift and break-glass: the drift each resource was last
//! recorded with and since when, and every break-glass window. Read in one pass; a torn or
//! malformed line is `salve audit verify`'s to report and is passed over here, so a malformed
//! break-glass record can never open the gate.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{BreakGlassRecord, DriftRecord};
use crate::audit::Status;
use crate::iac::forge::Issue;
use crate::record::RecordLink;
use crate::timestamp::{self, EpochMillis};

#[derive(Deserialize)]
struct View {
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default)]
    record_hash: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    resource_arn: Option<String>,
    #[serde(default)]
    drift: Option<DriftRecord>,
    #[serde(default)]
    break_glass: Option<BreakGlassRecord>,
}

/// A resource's drift as last recorded, while no `drift-resolved` followed it.
#[derive(Debug, Clone)]
pub struct OpenDrift {
    pub record: RecordLink,
    pub drift: DriftRecord,
}

/// How a break-glass window ended.
#[derive(Debug, Clone, Serialize)]
pub struct Closed {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// One break-glass window, from its `break-glass-opened` record and what followed.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub resource_arn: String,
    pub opened: RecordLink,
    pub by: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub opened_at: String,
    pub due_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closed>,
    /// Whether a `break-glass-overdue` record (and its notice) was written.
    pub overdue_recorded: bool,
    /// The due time; `None` when the record's is not a time, which never opens the gate.
    #[serde(skip)]
    due: Option<EpochMillis>,
}

/// Where a window stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum WindowState {
    Open {
        left_ms: i64,
    },
    Overdue {
        late_ms: i64,
    },
    Closed,
    /// The record's due time is not a time: the window covers nothing.
    Malformed,
}

impl Window {
    pub fn state(&self, now: EpochMillis) -> WindowState {
        if self.closed.is_some() {
            return WindowState::Closed;
        }
        match self.due {
            None => WindowState::Malformed,
            Some(due) if now < due => WindowState::Open { left_ms: due - now },
            Some(due) => WindowState::Overdue { late_ms: now - due },
        }
    }
}

/// `3h 20m`, for the time a window has left or is late by.
pub fn duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m}m"),
    }
}

#[derive(Debug, Default)]
pub struct History {
    pub drift: HashMap<String, OpenDrift>,
    /// Every window, oldest first.
    pub windows: Vec<Window>,
    /// Every resource any record names, so break-glass can refuse one salve does not know.
    pub resources: HashSet<String>,
}

impl History {
    pub fn read(audit_log: &Path) -> Result<History> {
        let mut history = History::default();
        let file = match std::fs::File::open(audit_log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(history),
            Err(e) => {
                return Err(e).with_context(|| format!("reading audit log {}", audit_log.display()))
            }
        };
        for line in std::io::BufReader::new(file).lines() {
            let line =
                line.with_context(|| format!("reading audit log {}", audit_log.display()))?;
            if let Ok(v) = serde_json::from_str::<View>(&line) {
                history.add(v);
            }
        }
        Ok(history)
    }

    fn add(&mut self, v: View) {
        let Some(arn) = v.resource_arn else {
            return;
        };
        self.resources.insert(arn.clone());
        let (Some(status), Some(sequence), Some(record_hash)) =
            (v.status, v.sequence, v.record_hash)
        else {
            return;
        };
        let link = RecordLink {
            sequence,
            record_hash,
        };
        match (status, v.drift, v.break_glass) {
            (Status::DriftDetected, Some(drift), _) => {
                self.drift.insert(
                    arn,
                    OpenDrift {
                        record: link,
                        drift,
                    },
                );
            }
            (Status::DriftResolved, _, _) => {
                self.drift.remove(&arn);
            }
            (Status::BreakGlassOpened, _, Some(b)) => {
                let (Some(by), Some(reason), Some(opened_at), Some(due_at)) =
                    (b.by, b.reason, b.opened_at, b.due_at)
                else {
                    return;
                };
                let due = timestamp::parse(&due_at);
                self.windows.push(Window {
                    resource_arn: arn,
                    opened: link,
                    by,
                    reason,
                    ticket: b.ticket,
                    opened_at,
                    due_at,
                    issue: b.issue,
                    closed: None,
                    overdue_recorded: false,
                    due,
                });
            }
            (Status::BreakGlassClosed | Status::BreakGlassOverdue, _, Some(b)) => {
                let Some(w) = b
                    .window
                    .as_ref()
                    .and_then(|opened| self.windows.iter_mut().find(|w| &w.opened == opened))
                else {
                    return;
                };
                if w.resource_arn != arn {
                    return;
                }
                if status == Status::BreakGlassOverdue {
                    w.overdue_recorded = true;
                } else if w.closed.is_none() {
                    w.closed = Some(Closed {
                        at: v.timestamp.unwrap_or_default(),
                        by: b.by.unwrap_or_default(),
                        reason: b.reason.unwrap_or_default(),
                    });
                }
            }
            _ => {}
        }
    }

    /// The resource's window that has not been closed, if any (at most one is open at a time).
    pub fn unclosed(&self, arn: &str) -> Option<&Window> {
        self.windows
            .iter()
            .rev()
            .find(|w| w.resource_arn == arn && w.closed.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(due_at: &str) -> Window {
        Window {
            resource_arn: "arn:aws:s3:::b".into(),
            opened: RecordLink {
                sequence: 1,
                record_hash: "h".into(),
            },
            by: "a".into(),
            reason: "r".into(),
            ticket: None,
            opened_at: "2026-12-01T00:00:00Z".into(),
            due_at: due_at.into(),
            issue: None,
            closed: None,
            overdue_recorded: false,
            due: timestamp::parse(due_at),
        }
    }

    #[test]
    fn a_window_is_open_until_its_due_time_and_a_malformed_one_never_is() {
        let w = window("2026-12-03T00:00:00Z");
        let due = timestamp::parse("2026-12-03T00:00:00Z").unwrap();
        assert_eq!(
            w.state(due - 3_600_000),
            WindowState::Open { left_ms: 3_600_000 }
        );
        assert_eq!(w.state(due), WindowState::Overdue { late_ms: 0 });
        assert_eq!(window("soon").state(0), WindowState::Malformed);
        assert_eq!(duration(3 * 3_600_000 + 20 * 60_000), "3h 20m");
    }
}
