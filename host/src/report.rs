//! Human-readable rendering of audit records and verification reports for the terminal.

use std::fmt::Write;

use serde_json::Value;

use crate::audit::{AuditEntry, SealedRecord, VerifyReport};

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// A few lines a person can read; `--output json` gives the full record.
pub fn render_processed(entry: &AuditEntry, sealed: &SealedRecord) -> String {
    let mut out = String::new();
    let status = entry.status.map(|s| s.as_str()).unwrap_or("unknown");
    let _ = writeln!(
        out,
        "finding   {}",
        entry.finding_id.as_deref().unwrap_or("(unparsed payload)")
    );
    if let Some(arn) = &entry.resource_arn {
        let _ = writeln!(out, "resource  {arn}");
    }
    if let Some(f) = &entry.fixer {
        let _ = writeln!(
            out,
            "fixer     {} {} (sha256 {})",
            f.name,
            f.version,
            short(&f.sha256)
        );
    }
    if let Some(plan) = &entry.plan {
        let summary = plan.get("summary").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(out, "plan      {summary}");
        for change in plan
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let action = change.get("action").and_then(Value::as_str).unwrap_or("?");
            let desc = change
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let _ = writeln!(out, "            {action}: {desc}");
        }
    }
    let _ = writeln!(out, "status    {status}");
    if let Some(reason) = &entry.reason {
        let _ = writeln!(out, "reason    {reason}");
    }
    let writes = entry
        .calls
        .iter()
        .filter(|c| c.get("access").and_then(Value::as_str) == Some("write"))
        .count();
    let _ = writeln!(
        out,
        "calls     {} capability call(s), {writes} write(s)",
        entry.calls.len()
    );
    let _ = writeln!(
        out,
        "audit     record #{} (hash {})",
        sealed.sequence,
        short(&sealed.record_hash)
    );
    out
}

pub fn render_verify(path: &str, report: &VerifyReport) -> String {
    let mut out = String::new();
    if report.is_intact() {
        let _ = writeln!(
            out,
            "{path}: intact, {} record(s), head {}",
            report.records,
            report.head_hash.as_deref().unwrap_or("(empty)")
        );
    } else {
        let _ = writeln!(
            out,
            "{path}: TAMPERED, {} problem(s) in {} record(s)",
            report.problems.len(),
            report.records
        );
        for p in &report.problems {
            let _ = writeln!(out, "  line {}: {:?}: {}", p.line, p.kind, p.message);
        }
    }
    out
}
