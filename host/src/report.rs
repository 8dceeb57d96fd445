//! Human-readable rendering of audit records and verification reports for the terminal.

use std::fmt::Write;

use serde_json::Value;

use crate::audit::{AuditEntry, SealedRecord, VerifyReport};
use crate::policy::risk::RiskScore;

fn short(hash: &str) -> &str {
    crate::text::clip(hash, 12)
}

/// The entry with every string made inert for a terminal: fixer- and payload-supplied text
/// (a plan summary, a reason, a finding title) cannot move the cursor, recolour, or start a new
/// line that forges a `status` block.
fn sanitized(entry: &AuditEntry) -> AuditEntry {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                if let std::borrow::Cow::Owned(escaped) = crate::text::escape_control(s, false) {
                    *s = escaped;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut v) = serde_json::to_value(entry) else {
        return AuditEntry::default();
    };
    walk(&mut v);
    serde_json::from_value(v).unwrap_or_default()
}

/// A few lines a person can read; `--output json` gives the full record.
pub fn render_processed(raw: &AuditEntry, sealed: Option<&SealedRecord>) -> String {
    let entry = &sanitized(raw);
    let mut out = String::new();
    let status = entry.status.map(|s| s.as_str()).unwrap_or("unknown");
    let _ = writeln!(
        out,
        "finding   {}",
        entry.finding_id.as_deref().unwrap_or("(unparsed payload)")
    );
    let source = source_name(entry);
    if entry.envelope.is_empty() {
        let _ = writeln!(out, "source    {source}");
    } else {
        let _ = writeln!(
            out,
            "source    {source} (in {})",
            entry.envelope.join(" > ")
        );
    }
    if let Some(arn) = &entry.resource_arn {
        let _ = writeln!(out, "resource  {arn}");
    }
    if let Some(risk) = &entry.risk {
        let _ = writeln!(out, "risk      {}", describe_risk(risk));
    }
    if let Some(f) = &entry.fixer {
        // The digest is the identity; the name and version are only what the component claims.
        let _ = writeln!(
            out,
            "fixer     sha256:{} (claims {} {})",
            short(&f.sha256),
            f.name,
            f.version
        );
    }
    if let Some(plan) = &entry.plan {
        let _ = writeln!(out, "plan      {}", plan.summary);
        for change in &plan.changes {
            let _ = writeln!(out, "            {}: {}", change.action, change.description);
        }
    }
    for s in &entry.sessions {
        let actions: Vec<&str> = s
            .policy
            .statement
            .iter()
            .flat_map(|st| st.action.iter().map(String::as_str))
            .collect();
        let failed = s
            .failure
            .as_ref()
            .map(|f| format!(" FAILED: {}", f.reason))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "session   {} {} allows {}{failed}",
            s.phase.as_str(),
            s.session_name,
            actions.join(", ")
        );
    }
    let _ = writeln!(out, "status    {status}");
    if let Some(a) = &entry.approval {
        let _ = writeln!(
            out,
            "approved  by {} (record #{}){}",
            a.by,
            a.approves.sequence,
            a.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(r) = &entry.reversal {
        let _ = writeln!(
            out,
            "rollback  of record #{} by {}{}: {}",
            r.reverses.sequence,
            r.by,
            if r.force { " (forced)" } else { "" },
            r.reason
        );
    }
    if let Some(reason) = &entry.reason {
        let _ = writeln!(out, "reason    {reason}");
    }
    if let Some(pr) = &raw.pull_request {
        render_pull_request(&mut out, pr);
    }
    let writes = entry
        .calls
        .iter()
        .filter(|c| c.access == crate::kinds::Access::Write)
        .count();
    let _ = writeln!(
        out,
        "calls     {} capability call(s), {writes} write(s)",
        entry.calls.len()
    );
    for n in &entry.notifications {
        match &n.error {
            None => {
                let _ = writeln!(out, "notified  {}: {}", n.route, n.target);
            }
            Some(e) => {
                let _ = writeln!(out, "notified  {}: {} FAILED: {e}", n.route, n.target);
            }
        }
    }
    if let Some(sealed) = sealed {
        let _ = writeln!(
            out,
            "audit     record #{} (hash {})",
            sealed.sequence,
            short(&sealed.record_hash)
        );
    }
    out
}

/// An enum as the record spells it (`"internet"`, `"HIGH"`), for the terminal.
fn spelled(v: &impl serde::Serialize) -> String {
    crate::text::spelled(v).unwrap_or_else(|| "?".into())
}

fn source_name(entry: &AuditEntry) -> String {
    entry
        .source
        .as_ref()
        .map(spelled)
        .unwrap_or_else(|| "unrecognised".into())
}

fn describe_risk(risk: &RiskScore) -> String {
    let assumed = |known: bool| if known { "" } else { " assumed" };
    let mut s = format!(
        "{} (score {}: severity {} x exposure {}{} x data {}{})",
        risk.priority.as_str(),
        risk.score,
        spelled(&risk.severity),
        spelled(&risk.exposure),
        assumed(risk.exposure_known),
        spelled(&risk.sensitivity),
        assumed(risk.sensitivity_known),
    );
    if risk.urgent {
        s.push_str("; URGENT");
    }
    if risk.suggest_exception {
        s.push_str("; low on every factor: consider documenting an exception instead");
    }
    s
}

/// `salve explain`: everything that went into the decision, without changing anything.
pub fn render_explanation(raw: &AuditEntry) -> String {
    let entry = &sanitized(raw);
    let mut out = String::new();
    let _ = writeln!(out, "source     {}", source_name(entry));
    if !entry.envelope.is_empty() {
        let _ = writeln!(out, "envelope   {}", entry.envelope.join(" > "));
    }
    if let Some(f) = &entry.finding {
        let _ = writeln!(
            out,
            "finding    {}",
            serde_json::to_string_pretty(f)
                .unwrap_or_default()
                .replace('\n', "\n           ")
        );
    }
    if let Some(m) = &entry.metadata {
        let _ = writeln!(out, "metadata");
        for (k, v) in m.fields() {
            let value = v.value.as_deref().unwrap_or("(missing)");
            let _ = writeln!(out, "  {k:<20} {value} ({})", spelled(&v.source));
        }
    }
    if let Some(d) = &entry.decision {
        let _ = writeln!(out, "checks ({})", spelled(&d.stage));
        for c in &d.decision.checks {
            let _ = writeln!(
                out,
                "  [{}] {:<30} {}",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if let Some(p) = &d.decision.policy {
            let _ = writeln!(out, "rego rules that fired");
            let mut any = false;
            for (set, rules) in [
                ("skip", &p.skip),
                ("review", &p.review),
                ("require_approval", &p.require_approval),
            ] {
                for r in rules {
                    any = true;
                    let _ = writeln!(out, "  {set:<17} {r}");
                }
            }
            if let Some(e) = &p.error {
                any = true;
                let _ = writeln!(out, "  error             {e}");
            }
            if !any {
                let _ = writeln!(out, "  (none)");
            }
        }
    }
    out.push_str(&render_processed(entry, None));
    // The diff keeps its lines: each is escaped on its own.
    if let Some(t) = &raw.iac {
        render_traced(&mut out, t);
    }
    out
}

/// `salve pending`: what waits for a person, oldest first.
pub fn render_pending(waiting: &[crate::approval::Pending]) -> String {
    let mut out = String::new();
    if waiting.is_empty() {
        out.push_str("nothing is waiting for approval\n");
    }
    for p in waiting {
        let _ = writeln!(
            out,
            "{}  {}  {}  since {} (record #{})",
            p.finding.id,
            p.finding.control_id,
            p.finding.resource.arn,
            p.recorded_at,
            p.record.sequence
        );
        if let Some(r) = &p.reason {
            let _ = writeln!(out, "  review    {r}");
        }
        let _ = writeln!(out, "  plan      {}", p.plan.summary);
        for c in &p.plan.changes {
            let _ = writeln!(out, "            {}: {}", c.action, c.description);
        }
        let _ = writeln!(out, "  approve   salve approve {} --by <you>", p.finding.id);
    }
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

/// `salve fixer inspect`, for a person reviewing a fixer before installing it.
pub fn render_fixer(r: &crate::runtime::inspect::FixerReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fixer          {} {}", r.name, r.version);
    let _ = writeln!(out, "sha256         {}", r.sha256);
    if let Some(a) = &r.artifact_sha256 {
        let _ = writeln!(out, "artifact       {a} (compiled by this host)");
    }
    let _ = writeln!(out, "resource type  {}", r.resource_type);
    let _ = writeln!(
        out,
        "world          {}",
        r.world
            .unwrap_or("(none: this host has no world for the type)")
    );
    let _ = writeln!(
        out,
        "contract       {}",
        r.contract
            .unwrap_or("(none: it exports no salve fixer interface for the type)")
    );
    let _ = writeln!(out, "controls       {}", r.controls.join(", "));
    let _ = writeln!(out, "capabilities   {}", r.capability_interfaces.join(", "));
    for a in &r.actions {
        let access = match a.access {
            crate::kinds::Access::Read => "read",
            crate::kinds::Access::Write => "write",
        };
        let _ = writeln!(
            out,
            "  {:<5} {:<36} {}#{}",
            access, a.iam_action, a.interface, a.function
        );
    }
    let _ = writeln!(
        out,
        "imports        {}",
        r.imports.join("\n               ")
    );
    for overlap in &r.overlaps {
        let _ = writeln!(out, "overlap        {overlap}");
    }
    let verdict = if r.least_privilege_check.passed {
        "PASS"
    } else {
        "FAIL"
    };
    let _ = writeln!(
        out,
        "link check     {verdict}: {}",
        r.least_privilege_check.detail
    );
    out
}

pub fn render_replay(report: &crate::modes::replay::ReplayReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", crate::modes::replay::summary(report, None));
    for m in &report.messages {
        let _ = write!(
            out,
            "  {}  {}  findings: {}",
            m.message_id,
            m.action,
            if m.finding_ids.is_empty() {
                "(none readable)".to_string()
            } else {
                m.finding_ids.join(", ")
            }
        );
        if let Some(d) = &m.detail {
            let _ = write!(out, "  ({d})");
        }
        out.push('\n');
    }
    if let Some(seq) = report.audit_sequence {
        let _ = writeln!(out, "audit record {seq}");
    }
    out
}

/// Where Terraform declares the resource, for `explain`.
fn render_traced(out: &mut String, traced: &crate::iac::Traced) {
    use crate::iac::Traced;
    // Raw on purpose (the diff keeps its lines); every field is escaped on its own.
    let e = |s: &str| crate::text::escape_control(s, false).into_owned();
    match traced {
        Traced::Unmanaged { reason } => {
            let _ = writeln!(out, "terraform  not managed: {}", e(reason));
        }
        Traced::Unreadable { reason } => {
            let _ = writeln!(out, "terraform  could not be read: {}", e(reason));
        }
        Traced::Refused {
            workspace,
            address,
            reason,
        } => {
            let _ = writeln!(
                out,
                "terraform  {} (workspace {}) cannot be edited: {}",
                e(address),
                e(workspace),
                e(reason)
            );
        }
        Traced::Located {
            workspace,
            address,
            location,
            change,
            ..
        } => {
            let _ = writeln!(
                out,
                "terraform  {} (workspace {})",
                e(address),
                e(workspace)
            );
            for l in location.blocks() {
                let _ = writeln!(
                    out,
                    "  {} at {}:{}-{}",
                    e(&l.address),
                    e(&l.file.display().to_string()),
                    l.start_line,
                    l.end_line
                );
            }
            match change {
                None => {}
                Some(crate::iac::Change::NotOffered { reason }) => {
                    let _ = writeln!(out, "  no edit: {}", e(reason));
                }
                Some(crate::iac::Change::Refused { reason }) => {
                    let _ = writeln!(out, "  edit refused: {}", e(reason));
                }
                Some(crate::iac::Change::Proposed { files, .. }) => {
                    let _ = writeln!(out, "  proposed edit:");
                    for f in files {
                        for line in f.diff.lines() {
                            let _ = writeln!(out, "    {}", e(line));
                        }
                    }
                }
            }
        }
    }
}

/// The pull request line, and its diff line by line (each line escaped on its own).
fn render_pull_request(out: &mut String, pr: &crate::iac::PullRequestRecord) {
    let e = |s: &str| crate::text::escape_control(s, false).into_owned();
    let mut line = format!("pull req  {}", spelled(&pr.outcome));
    if let (Some(n), Some(url)) = (pr.number, &pr.url) {
        let _ = write!(line, " #{n} {}", e(url));
    }
    if let Some(b) = &pr.branch {
        let _ = write!(line, " (branch {}", e(b));
        if let Some(c) = &pr.commit {
            let _ = write!(line, ", commit {}", e(c.get(..12).unwrap_or(c)));
        }
        line.push(')');
    }
    let _ = writeln!(out, "{line}");
    if let Some(r) = &pr.reason {
        let _ = writeln!(out, "          {}", e(r));
    }
    for l in pr.diff.as_deref().unwrap_or_default().lines() {
        let _ = writeln!(out, "          {}", e(l));
    }
}
