//! The report as one self-contained HTML file: inline CSS and SVG, no script, no external
//! reference of any kind (the page's Content-Security-Policy forbids loading anything), so it
//! opens the same in a browser, a mail client and on paper.

use std::fmt::Write;

use super::text::{hours, percent, verdict};
use super::{Report, Week};

const RED: &str = "#b42318";
const GREEN: &str = "#067647";
const GREY: &str = "#667085";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn colour(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => GREEN,
        Some(false) => RED,
        None => GREY,
    }
}

fn headline(out: &mut String, id: &str, name: &str, value: &str, target: &str, met: Option<bool>) {
    let c = colour(met);
    let _ = write!(
        out,
        r#"<td class="card" id="{id}" style="border-top:4px solid {c}"><div class="name">{name}</div><div class="value" style="color:{c}">{value}</div><div class="target">target {target} &middot; <b style="color:{c}">{}</b></div></td>"#,
        verdict(met)
    );
}

/// A bar chart of one weekly series, with an optional target line.
fn bars(
    out: &mut String,
    id: &str,
    title: &str,
    weeks: &[Week],
    value: impl Fn(&Week) -> Option<f64>,
    label: impl Fn(f64) -> String,
    target: Option<f64>,
) {
    const W: f64 = 640.0;
    const H: f64 = 160.0;
    const PAD: f64 = 28.0;
    let values: Vec<Option<f64>> = weeks.iter().map(&value).collect();
    let max = values
        .iter()
        .flatten()
        .copied()
        .chain(target)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let n = weeks.len().max(1) as f64;
    let slot = (W - PAD) / n;
    let y = |v: f64| H - PAD - (v / max) * (H - 2.0 * PAD);
    let _ = write!(
        out,
        r#"<figure><figcaption>{}</figcaption><svg id="{id}" role="img" aria-label="{}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg"><line x1="{PAD}" y1="{}" x2="{W}" y2="{}" stroke="{GREY}"/>"#,
        esc(title),
        esc(title),
        H - PAD,
        H - PAD
    );
    for (i, (w, v)) in weeks.iter().zip(&values).enumerate() {
        let x = PAD + i as f64 * slot + slot * 0.15;
        if let Some(v) = v {
            let over = target.is_some_and(|t| *v > t);
            let top = y(*v);
            let _ = write!(
                out,
                r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                slot * 0.7,
                (H - PAD - top).max(0.0),
                if over { RED } else { "#2e90fa" },
                esc(&w.week),
                esc(&label(*v)),
                x + slot * 0.35,
                top - 3.0,
                esc(&label(*v)),
            );
        }
        if weeks.len() <= 16 || i % 4 == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="{GREY}">{}</text>"#,
                x + slot * 0.35,
                H - PAD + 12.0,
                esc(w.week.get(5..).unwrap_or(&w.week))
            );
        }
    }
    if let Some(t) = target {
        let ty = y(t);
        let _ = write!(
            out,
            r#"<line x1="{PAD}" y1="{ty:.1}" x2="{W}" y2="{ty:.1}" stroke="{RED}" stroke-dasharray="4 3"/><text x="{PAD}" y="{:.1}" font-size="9" fill="{RED}">target {}</text>"#,
            ty - 3.0,
            esc(&label(t))
        );
    }
    out.push_str("</svg></figure>");
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    o.push_str(r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">"#);
    o.push_str(r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"#);
    o.push_str(r#"<meta name="viewport" content="width=device-width, initial-scale=1"><title>salve report</title>"#);
    o.push_str(
        "<style>body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#101828;max-width:980px;margin:24px auto;padding:0 16px}\
         h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #eaecf0;padding-bottom:4px}\
         .meta{color:#667085;font-size:13px}table{border-collapse:collapse;width:100%}\
         td,th{padding:4px 8px;font-size:13px;text-align:left;border-bottom:1px solid #f2f4f7}\
         th{color:#475467;font-weight:600}.cards td.card{width:33%;padding:12px 16px;border-bottom:0;vertical-align:top}\
         .name{color:#475467;font-size:13px}.value{font-size:32px;font-weight:700;margin:4px 0}.target{font-size:12px;color:#475467}\
         figure{margin:8px 0}figcaption{font-size:13px;color:#475467}.miss{color:#b42318;font-weight:600}\
         @media print{body{margin:0;max-width:none}h2{break-after:avoid}figure,table{break-inside:avoid}}</style></head><body>",
    );
    let _ = write!(
        o,
        r#"<h1>salve report</h1><div class="meta">{} to {} &middot; {} records from {} source(s){} &middot; generated {}</div>"#,
        esc(r.window.since.as_deref().unwrap_or("start of log")),
        esc(r.window.until.as_deref().unwrap_or("now")),
        r.input.records,
        r.input.sources.len(),
        if r.input.unreadable_lines > 0 {
            format!(", {} unreadable line(s) skipped", r.input.unreadable_lines)
        } else {
            String::new()
        },
        esc(&r.generated_at)
    );
    o.push_str(r#"<table class="cards"><tr>"#);
    headline(
        &mut o,
        "mttr",
        "MTTR, critical findings",
        &hours(r.mttr.critical.mean_hours),
        &format!("&lt; {:.0} h", r.mttr.target_hours),
        r.mttr.met,
    );
    headline(
        &mut o,
        "recurrence",
        "Recurrence rate",
        &percent(r.recurrence.rate),
        &format!("&lt; {:.0}%", r.recurrence.target * 100.0),
        r.recurrence.met,
    );
    headline(
        &mut o,
        "exception-rate",
        "Exception rate",
        &percent(r.exceptions.rate),
        &format!("&lt; {:.0}%", r.exceptions.target * 100.0),
        r.exceptions.met,
    );
    o.push_str("</tr></table>");

    o.push_str("<h2>Trend</h2>");
    let target_h = r.mttr.target_hours;
    bars(
        &mut o,
        "chart-mttr",
        "Mean time to remediation per week (hours)",
        &r.trend,
        |w| w.mttr_mean_hours,
        |v| format!("{v:.0}h"),
        Some(target_h),
    );
    bars(
        &mut o,
        "chart-fixed",
        "Findings remediated per week",
        &r.trend,
        |w| Some(w.remediated as f64),
        |v| format!("{v:.0}"),
        None,
    );
    bars(
        &mut o,
        "chart-exceptions",
        "Exception rate per week (%)",
        &r.trend,
        |w| w.exception_rate.map(|x| x * 100.0),
        |v| format!("{v:.0}%"),
        Some(r.exceptions.target * 100.0),
    );

    o.push_str("<h2>Mean time to remediation</h2><table><tr><th>severity / priority</th><th>findings</th><th>median</th><th>p90</th><th>mean</th></tr>");
    for (name, s) in r.mttr.by_severity.iter().chain(&r.mttr.by_priority) {
        let miss = s.mean_hours.is_some_and(|h| h > target_h);
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>"#,
            esc(name),
            s.count,
            hours(s.median_hours),
            hours(s.p90_hours),
            if miss { r#" class="miss""# } else { "" },
            hours(s.mean_hours)
        );
    }
    o.push_str("</table>");
    if r.mttr.fallback_starts > 0 {
        let _ = write!(
            o,
            r#"<p class="meta">{} finding(s) had no first-observed time from their source; the first record salve holds stands in.</p>"#,
            r.mttr.fallback_starts
        );
    }
    if !r.mttr.missed.is_empty() {
        o.push_str("<h3>Critical findings over the target</h3><table><tr><th>finding</th><th>control</th><th>resource</th><th>took</th></tr>");
        for m in &r.mttr.missed {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="miss">{}</td></tr>"#,
                esc(&m.finding_id),
                esc(&m.control),
                esc(&m.resource),
                hours(Some(m.hours))
            );
        }
        o.push_str("</table>");
    }

    let _ = write!(
        o,
        "<h2>Recurrence</h2><p>{} of {} fixed (resource, control) pairs were found non-compliant again.</p>",
        r.recurrence.recurred_pairs, r.recurrence.remediated_pairs
    );
    if !r.recurrence.worst_controls.is_empty() {
        o.push_str("<table><tr><th>control</th><th>recurrences</th></tr>");
        for c in &r.recurrence.worst_controls {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(&c.name), c.count);
        }
        o.push_str("</table>");
    }
    if !r.recurrence.worst_modules.is_empty() {
        o.push_str("<table><tr><th>Terraform module</th><th>recurrences</th></tr>");
        for m in &r.recurrence.worst_modules {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(&m.name), m.count);
        }
        o.push_str("</table>");
    }

    let _ = write!(
        o,
        "<h2>Exceptions</h2><p>{} of {} eligible findings were closed by an approved exception.</p>",
        r.exceptions.excepted, r.exceptions.eligible
    );
    for (title, rows) in [
        ("Expiring in the next 14 days", &r.exceptions.expiring_soon),
        ("No expiry", &r.exceptions.without_expiry),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<h3>{title}</h3><table><tr><th>finding</th><th>resource</th><th>owner</th><th>source</th><th>expires</th></tr>"
        );
        for e in rows {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.finding_id),
                esc(&e.resource),
                esc(&e.owner),
                esc(&e.source),
                esc(e.expires.as_deref().unwrap_or("none"))
            );
        }
        o.push_str("</table>");
    }

    let _ = write!(
        o,
        "<h2>Backlog</h2><p>{} open review or failed findings.</p><table><tr><th>priority</th><th>&lt;1d</th><th>1-7d</th><th>7-30d</th><th>&gt;30d</th></tr>",
        r.backlog.open
    );
    for (p, buckets) in &r.backlog.by_priority {
        let _ = write!(o, "<tr><td>{}</td>", esc(p));
        for b in ["<1d", "1-7d", "7-30d", ">30d"] {
            let _ = write!(o, "<td>{}</td>", buckets.get(b).copied().unwrap_or(0));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    if !r.backlog.oldest_p1.is_empty() {
        o.push_str("<h3>Oldest P1</h3><table><tr><th>finding</th><th>resource</th><th>status</th><th>age</th></tr>");
        for i in &r.backlog.oldest_p1 {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} d</td></tr>",
                esc(&i.finding_id),
                esc(&i.resource),
                i.status.as_str(),
                i.age_days
            );
        }
        o.push_str("</table>");
    }

    let _ = write!(
        o,
        "<h2>Coverage</h2><p>salve acted on {} of {} findings ({}).</p>",
        r.coverage.acted_on,
        r.coverage.findings,
        percent(r.coverage.share)
    );
    if !r.coverage.top_reasons.is_empty() {
        o.push_str("<table><tr><th>why salve could not act</th><th>findings</th></tr>");
        for c in &r.coverage.top_reasons {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(&c.name), c.count);
        }
        o.push_str("</table>");
    }
    let d = &r.drift;
    let _ = write!(
        o,
        "<h2>Drift and break-glass</h2><p>{} drift detected, {} resolved. Break-glass: {} opened, {} went overdue; {} open now, {} of them overdue.</p>",
        d.detected, d.resolved, d.break_glass_opened, d.break_glass_overdue, d.break_glass_open, d.break_glass_open_overdue
    );
    if !r.groups.is_empty() {
        o.push_str("<h2>By group</h2><table><tr><th>group</th><th>findings</th><th>fixed</th><th>MTTR mean</th><th>recurrence</th><th>exceptions</th></tr>");
        for g in &r.groups {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.name),
                g.findings,
                g.remediated,
                hours(g.mttr.mean_hours),
                percent(g.recurrence_rate),
                percent(g.exception_rate)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</body></html>\n");
    o
}
