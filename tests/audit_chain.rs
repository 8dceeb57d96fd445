//! The audit chain verifies, and every kind of tampering is detected and named.

mod common;

use std::process::Command;

use common::scratch;
use salve::audit::{verify_text, AuditEntry, AuditLog, ProblemKind, Status};

fn write_log(name: &str, n: usize) -> (std::path::PathBuf, Vec<String>) {
    let path = scratch(name).join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 0..n {
        log.append(&AuditEntry {
            finding_id: Some(format!("finding-{i}")),
            status: Some(Status::Remediated),
            ..AuditEntry::default()
        })
        .unwrap();
    }
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (path, lines)
}

fn kinds(text: &str) -> Vec<(usize, ProblemKind)> {
    verify_text(text)
        .problems
        .iter()
        .map(|p| (p.line, p.kind))
        .collect()
}

#[test]
fn an_untouched_chain_verifies_and_reopening_continues_it() {
    let (path, lines) = write_log("intact", 3);
    let mut log = AuditLog::open(&path).unwrap();
    let sealed = log.append(&AuditEntry::default()).unwrap();
    assert_eq!(sealed.sequence, 3);
    let report = salve::audit::verify(&path).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 4);
    assert_eq!(lines.len(), 3);
}

#[test]
fn an_edited_record_is_named() {
    let (_, mut lines) = write_log("edited", 5);
    lines[2] = lines[2].replace("\"remediated\"", "\"skipped\"");
    let found = kinds(&(lines.join("\n") + "\n"));
    assert_eq!(found[0], (3, ProblemKind::Edited), "{found:?}");
}

#[test]
fn an_edited_and_rehashed_record_is_caught_by_the_next_link() {
    let (_, mut lines) = write_log("rehashed", 4);
    let mut record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&lines[1]).unwrap();
    record.insert("status".into(), "skipped".into());
    record.remove("record_hash");
    // Re-hashed the way the writer hashes: the exact bytes, record_hash appended last.
    let body = serde_json::Value::Object(record.clone()).to_string();
    let hash = salve::audit::sha256_hex(body.as_bytes());
    lines[1] = format!("{},\"record_hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    let report = verify_text(&(lines.join("\n") + "\n"));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        (report.problems[0].line, report.problems[0].kind),
        (3, ProblemKind::Edited)
    );
    assert!(report.problems[0]
        .message
        .contains("does not link to line 2"));
}

#[test]
fn a_removed_record_is_named() {
    let (_, mut lines) = write_log("removed", 5);
    lines.remove(2);
    let report = verify_text(&(lines.join("\n") + "\n"));
    assert_eq!(
        report.problems[0].kind,
        ProblemKind::Removed,
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.problems[0].message,
        "sequence 2..2 is missing before line 3: records were removed"
    );
}

#[test]
fn an_inserted_record_is_named() {
    let (_, mut lines) = write_log("inserted", 4);
    let copy = lines[1].clone();
    lines.insert(3, copy);
    let found = kinds(&(lines.join("\n") + "\n"));
    assert!(found.contains(&(4, ProblemKind::Inserted)), "{found:?}");
}

#[test]
fn reordered_records_are_named() {
    let (_, mut lines) = write_log("reordered", 5);
    lines.swap(1, 3);
    let found = kinds(&(lines.join("\n") + "\n"));
    assert!(
        found.iter().any(|(_, k)| *k == ProblemKind::Reordered),
        "{found:?}"
    );
}

#[test]
fn garbage_lines_are_reported_not_fatal() {
    let (_, mut lines) = write_log("garbage", 2);
    lines.insert(1, "not json".into());
    let found = kinds(&(lines.join("\n") + "\n"));
    assert_eq!(found[0], (2, ProblemKind::Unreadable));
}

#[test]
fn the_cli_exits_non_zero_and_names_the_line() {
    let (path, mut lines) = write_log("cli", 3);
    let ok = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact, 3 record(s)"));
    lines[0] = lines[0].replace("finding-0", "finding-X");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(
        stdout.contains("TAMPERED") && stdout.contains("line 1: Edited"),
        "{stdout}"
    );
}
