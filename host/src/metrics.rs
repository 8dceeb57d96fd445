//! Counters for the daemon's `/metrics` endpoint, in the Prometheus text format. They are fed
//! from the audit records each message produced, so a metric can never claim an outcome the
//! audit log does not hold.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::{AuditEntry, Status};
use crate::modes::batch::{Disposition, MessageResult};
use crate::pipeline::Redelivery;

const STATUSES: [Status; 9] = [
    Status::Remediated,
    Status::AlreadyCompliant,
    Status::Review,
    Status::Skipped,
    Status::Rejected,
    Status::Failed,
    Status::Planned,
    Status::RolledBack,
    Status::PullRequestOpened,
];

/// Upper bounds of the fixer duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The phases that run fixer code (host calls included), summed into one duration per finding.
const FIXER_PHASES: [&str; 4] = ["check", "plan", "apply", "verify"];

#[derive(Default)]
pub struct Metrics {
    findings: [AtomicU64; STATUSES.len()],
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    receive_errors: AtomicU64,
    assume_role_failures: AtomicU64,
    redeliveries: AtomicU64,
    messages_acknowledged: AtomicU64,
    messages_retried: AtomicU64,
    messages_released: AtomicU64,
    in_flight: AtomicU64,
    /// The report's numbers (backlog, MTTR, recurrence, exceptions), fed record by record; set
    /// up by [`Metrics::track_program`] from the audit log the daemon appends to.
    program: std::sync::Mutex<Option<crate::scorecard::Builder>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    /// Reads the audit log once, so the program gauges cover what was recorded before this
    /// process started; every record written from here on is added as it is observed.
    pub fn track_program(&self, audit_log: &std::path::Path) -> anyhow::Result<()> {
        let mut builder = crate::scorecard::Builder::new(crate::scorecard::ReportOptions {
            now: crate::timestamp::now(),
            ..Default::default()
        });
        if audit_log.exists() {
            builder.read_path(audit_log)?;
        }
        *self.program.lock().unwrap_or_else(|p| p.into_inner()) = Some(builder);
        Ok(())
    }

    /// Counts a settled message; its records were each passed to
    /// [`observe_record`](Self::observe_record) as they were written.
    pub fn observe_message(&self, result: &MessageResult) {
        let redelivered = result
            .redeliveries
            .iter()
            .filter(|r| matches!(r, Redelivery::AlreadyHandled(_)))
            .count();
        add(&self.redeliveries, redelivered as u64);
        match result.disposition {
            Disposition::Ack => add(&self.messages_acknowledged, 1),
            Disposition::Retry { .. } => add(&self.messages_retried, 1),
        }
    }

    pub fn observe_record(&self, record: &AuditEntry) {
        if let Some(program) = self
            .program
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            program.add_entry(record, crate::timestamp::now());
        }
        if let Some(i) = record
            .status
            .and_then(|s| STATUSES.iter().position(|x| *x == s))
        {
            add(&self.findings[i], 1);
        }
        let fixer_us: Option<u64> = FIXER_PHASES
            .iter()
            .filter_map(|p| record.durations_us.get(*p))
            .copied()
            .reduce(|a, b| a.saturating_add(b));
        if let Some(us) = fixer_us {
            let seconds = us as f64 / 1e6;
            for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
                if seconds <= *bound {
                    add(bucket, 1);
                }
            }
            add(&self.duration_count, 1);
            add(&self.duration_sum_us, us);
        }
        let failed_sessions = record
            .sessions
            .iter()
            .filter(|s| s.failure.is_some())
            .count();
        add(&self.assume_role_failures, failed_sessions as u64);
    }

    pub fn receive_error(&self) {
        add(&self.receive_errors, 1);
    }

    pub fn released(&self, n: usize) {
        add(&self.messages_released, n as u64);
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Ordering::Relaxed);
    }

    pub fn findings(&self, status: Status) -> u64 {
        STATUSES
            .iter()
            .position(|x| *x == status)
            .map(|i| get(&self.findings[i]))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP salve_findings_total Findings with a terminal audit record, by outcome."
        );
        let _ = writeln!(out, "# TYPE salve_findings_total counter");
        for (status, counter) in STATUSES.iter().zip(&self.findings) {
            let _ = writeln!(
                out,
                "salve_findings_total{{outcome=\"{}\"}} {}",
                status.as_str(),
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP salve_fixer_duration_seconds Time in fixer phases (check, plan, apply, verify) per finding, host calls included."
        );
        let _ = writeln!(out, "# TYPE salve_fixer_duration_seconds histogram");
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            let _ = writeln!(
                out,
                "salve_fixer_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.duration_count);
        let _ = writeln!(
            out,
            "salve_fixer_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "salve_fixer_duration_seconds_sum {}",
            get(&self.duration_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "salve_fixer_duration_seconds_count {count}");
        let counters = [
            (
                "salve_queue_receive_errors_total",
                "Failed receives from the queue.",
                &self.receive_errors,
            ),
            (
                "salve_assume_role_failures_total",
                "Sessions that could not be assumed in a customer account.",
                &self.assume_role_failures,
            ),
            (
                "salve_redeliveries_total",
                "Deliveries of findings already handled, acknowledged without processing.",
                &self.redeliveries,
            ),
            (
                "salve_messages_acknowledged_total",
                "Messages deleted after their records were durable.",
                &self.messages_acknowledged,
            ),
            (
                "salve_messages_retried_total",
                "Messages left for the queue to deliver again.",
                &self.messages_retried,
            ),
            (
                "salve_messages_released_total",
                "Messages made visible again at shutdown without being processed.",
                &self.messages_released,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", get(counter));
        }
        let _ = writeln!(
            out,
            "# HELP salve_messages_in_flight Messages received and not yet deleted or released."
        );
        let _ = writeln!(out, "# TYPE salve_messages_in_flight gauge");
        let _ = writeln!(out, "salve_messages_in_flight {}", get(&self.in_flight));
        let gauges = self
            .program
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|b| b.gauges(crate::timestamp::now()));
        if let Some(g) = gauges {
            let _ = writeln!(
                out,
                "# HELP salve_backlog_open Findings whose latest record is review or failed, by priority."
            );
            let _ = writeln!(out, "# TYPE salve_backlog_open gauge");
            for p in ["P1", "P2", "P3", "P4", "unscored"] {
                let n = g.open_by_priority.get(p).copied().unwrap_or(0);
                let _ = writeln!(out, "salve_backlog_open{{priority=\"{p}\"}} {n}");
            }
            // NaN is how the text format says "no data", rather than a misleading 0.
            let value = |v: Option<f64>| v.map_or_else(|| "NaN".to_string(), |v| format!("{v}"));
            for (name, help, v) in [
                (
                    "salve_mttr_7d_hours",
                    "Mean time to remediation of the findings fixed in the last 7 days, in hours.",
                    g.mttr_7d_hours,
                ),
                (
                    "salve_recurrence_rate",
                    "Share of fixed (resource, control) pairs found non-compliant again.",
                    g.recurrence_rate,
                ),
                (
                    "salve_exception_rate",
                    "Share of eligible findings closed by an approved exception.",
                    g.exception_rate,
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {}", value(v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn observe(metrics: &Metrics, records: Vec<AuditEntry>) {
        for record in &records {
            metrics.observe_record(record);
        }
        metrics.observe_message(&MessageResult {
            id: "m".into(),
            disposition: Disposition::Ack,
            statuses: records.iter().filter_map(|r| r.status).collect(),
            reasons: records.into_iter().map(|r| r.reason).collect(),
            redeliveries: vec![Redelivery::AlreadyHandled(Status::Remediated)],
            elapsed: Duration::ZERO,
        });
    }

    #[test]
    fn renders_outcomes_durations_and_failures() {
        let metrics = Metrics::default();
        let mut fixed = AuditEntry {
            status: Some(Status::Remediated),
            ..AuditEntry::default()
        };
        fixed.durations_us.insert("check".into(), 2_000);
        fixed.durations_us.insert("apply".into(), 1_000);
        let denied = AuditEntry {
            status: Some(Status::Failed),
            sessions: vec![crate::record::SessionRecord {
                phase: crate::record::SessionPhase::Read,
                session_name: "salve-f1".into(),
                policy: crate::credentials::PolicyDocument {
                    version: "2012-10-17".into(),
                    statement: Vec::new(),
                },
                failure: Some(crate::credentials::AssumeRoleFailure {
                    reason: "denied".into(),
                    code: None,
                    message: "AccessDenied".into(),
                    request_id: None,
                    retryable: false,
                }),
            }],
            ..AuditEntry::default()
        };
        observe(&metrics, vec![fixed, denied]);
        metrics.receive_error();
        let text = metrics.render();
        for line in [
            "salve_findings_total{outcome=\"remediated\"} 1",
            "salve_findings_total{outcome=\"failed\"} 1",
            "salve_findings_total{outcome=\"skipped\"} 0",
            "salve_fixer_duration_seconds_bucket{le=\"0.0025\"} 0",
            "salve_fixer_duration_seconds_bucket{le=\"0.005\"} 1",
            "salve_fixer_duration_seconds_bucket{le=\"+Inf\"} 1",
            "salve_fixer_duration_seconds_sum 0.003",
            "salve_fixer_duration_seconds_count 1",
            "salve_queue_receive_errors_total 1",
            "salve_assume_role_failures_total 1",
            "salve_redeliveries_total 1",
            "salve_messages_acknowledged_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
