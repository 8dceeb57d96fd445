//! The report for a terminal.

use std::fmt::Write;

use super::{Report, Stats};

pub fn hours(h: Option<f64>) -> String {
    match h {
        None => "n/a".into(),
        Some(h) if h < 1.0 => format!("{:.0} min", h * 60.0),
        Some(h) if h < 72.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} d", h / 24.0),
    }
}

pub fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{:.1}%", r * 100.0))
}

pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "no data",
    }
}

fn stats_line(s: &Stats) -> String {
    format!(
        "n={:<5} median {:>9}  p90 {:>9}  mean {:>9}",
        s.count,
        hours(s.median_hours),
        hours(s.p90_hours),
        hours(s.mean_hours)
    )
}

/// Text from the log (finding IDs, resource names, reasons) made inert for a terminal.
fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    crate::text::escape_control(s, false)
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "salve report  {} .. {}  ({} records from {} source(s){})",
        r.window.since.as_deref().unwrap_or("start of log"),
        r.window.until.as_deref().unwrap_or("now"),
        r.input.records,
        r.input.sources.len(),
        if r.input.unreadable_lines > 0 {
            format!(", {} unreadable line(s) skipped", r.input.unreadable_lines)
        } else {
            String::new()
        }
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "MTTR (critical)   {:>9}   target < {:.0} h   {}",
        hours(r.mttr.critical.mean_hours),
        r.mttr.target_hours,
        verdict(r.mttr.met)
    );
    let _ = writeln!(
        w,
        "Recurrence rate   {:>9}   target < {:.0}%    {}",
        percent(r.recurrence.rate),
        r.recurrence.target * 100.0,
        verdict(r.recurrence.met)
    );
    let _ = writeln!(
        w,
        "Exception rate    {:>9}   target < {:.0}%   {}",
        percent(r.exceptions.rate),
        r.exceptions.target * 100.0,
        verdict(r.exceptions.met)
    );
    let _ = writeln!(w, "\nMTTR by severity");
    for (sev, s) in &r.mttr.by_severity {
        let _ = writeln!(w, "  {sev:<14} {}", stats_line(s));
    }
    let _ = writeln!(w, "MTTR by priority");
    for (p, s) in &r.mttr.by_priority {
        let _ = writeln!(w, "  {p:<14} {}", stats_line(s));
    }
    if r.mttr.fallback_starts > 0 {
        let _ = writeln!(
            w,
            "  ({} finding(s) had no first-observed time; their first record stands in)",
            r.mttr.fallback_starts
        );
    }
    for m in &r.mttr.missed {
        let _ = writeln!(
            w,
            "  missed: {} {} {} took {}",
            safe(&m.finding_id),
            safe(&m.control),
            safe(&m.resource),
            hours(Some(m.hours))
        );
    }
    let _ = writeln!(
        w,
        "\nRecurrence: {} of {} fixed (resource, control) pair(s) came back",
        r.recurrence.recurred_pairs, r.recurrence.remediated_pairs
    );
    for c in &r.recurrence.worst_controls {
        let _ = writeln!(w, "  control {:<20} {}", safe(&c.name), c.count);
    }
    for m in &r.recurrence.worst_modules {
        let _ = writeln!(w, "  module  {:<20} {}", safe(&m.name), m.count);
    }
    let _ = writeln!(
        w,
        "\nExceptions: {} of {} eligible finding(s)",
        r.exceptions.excepted, r.exceptions.eligible
    );
    for e in &r.exceptions.expiring_soon {
        let _ = writeln!(
            w,
            "  expires {} {} {} (owner {})",
            e.expires.as_deref().unwrap_or("?"),
            safe(&e.finding_id),
            safe(&e.resource),
            safe(&e.owner)
        );
    }
    for e in &r.exceptions.without_expiry {
        let _ = writeln!(
            w,
            "  NO EXPIRY {} {} (owner {}, {})",
            safe(&e.finding_id),
            safe(&e.resource),
            safe(&e.owner),
            safe(&e.source)
        );
    }
    let _ = writeln!(
        w,
        "\nBacklog: {} open review/failed finding(s)",
        r.backlog.open
    );
    for (p, buckets) in &r.backlog.by_priority {
        let cells: Vec<String> = ["<1d", "1-7d", "7-30d", ">30d"]
            .iter()
            .map(|b| format!("{b} {}", buckets.get(*b).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(w, "  {p:<9} {}", cells.join("  "));
    }
    for i in &r.backlog.oldest_p1 {
        let _ = writeln!(
            w,
            "  oldest P1: {} {} {:.1} d ({})",
            safe(&i.finding_id),
            safe(&i.resource),
            i.age_days,
            i.status.as_str()
        );
    }
    let _ = writeln!(w, "\nTrend (week starting)");
    for t in &r.trend {
        let _ = writeln!(
            w,
            "  {}  fixed {:<5} MTTR {:>9}  recurred {:<4} exceptions {} ({})",
            t.week,
            t.remediated,
            hours(t.mttr_mean_hours),
            t.recurred,
            t.excepted,
            percent(t.exception_rate)
        );
    }
    let _ = writeln!(
        w,
        "\nCoverage: salve acted on {} of {} finding(s) ({})",
        r.coverage.acted_on,
        r.coverage.findings,
        percent(r.coverage.share)
    );
    for reason in &r.coverage.top_reasons {
        let _ = writeln!(w, "  {:<40} {}", safe(&reason.name), reason.count);
    }
    let d = &r.drift;
    let _ = writeln!(
        w,
        "\nDrift: {} detected, {} resolved; break-glass: {} opened, {} went overdue; {} open now, {} of them overdue",
        d.detected, d.resolved, d.break_glass_opened, d.break_glass_overdue, d.break_glass_open, d.break_glass_open_overdue
    );
    if !r.groups.is_empty() {
        let _ = writeln!(
            w,
            "\nBy {:?}",
            r.by.map(|b| format!("{b:?}").to_lowercase())
                .unwrap_or_default()
        );
        for g in &r.groups {
            let _ = writeln!(
                w,
                "  {:<24} findings {:<5} fixed {:<5} MTTR {:>9}  recurrence {:>6}  exceptions {:>6}",
                safe(&g.name),
                g.findings,
                g.remediated,
                hours(g.mttr.mean_hours),
                percent(g.recurrence_rate),
                percent(g.exception_rate)
            );
        }
    }
    out
}
