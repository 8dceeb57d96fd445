//! A fixer's Terraform edits, checked and applied by the host: each names a located block, every
//! file it touches still parses, and new text keeps `terraform fmt`'s indentation and `=`
//! alignment. The result is each changed file and its exact diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::code::{Located, Location};
use crate::capabilities::{BlockText, Edit};

/// One file as the edits leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the repository.
    pub file: PathBuf,
    /// Unified diff of the file, without context lines: exactly the lines that change.
    pub diff: String,
    #[serde(skip)]
    pub after: String,
}

/// Why edits were refused; recorded as it is.
pub type Refusal = String;

/// A block's text, as the edits put it: where it goes, what it replaces.
struct Splice {
    start: usize,
    end: usize,
    text: String,
}

/// Checks `edits` against the located blocks and applies them to the files in `repo`.
pub fn apply(repo: &Path, location: &Location, edits: &[Edit]) -> Result<Vec<FileChange>, Refusal> {
    let blocks: Vec<&Located> = location.blocks().collect();
    let find = |address: &str| {
        blocks
            .iter()
            .find(|b| b.address == address)
            .copied()
            .ok_or_else(|| {
                format!("an edit names {address}, which is not a located block; the fixer may edit only those")
            })
    };
    let mut by_file: BTreeMap<PathBuf, Vec<Splice>> = BTreeMap::new();
    for edit in edits {
        let (block, splice) = match edit {
            Edit::Replace(BlockText { address, text }) => {
                let b = find(address)?;
                fmt_check(address, text)?;
                (
                    b,
                    Splice {
                        start: b.span.start,
                        end: b.span.end,
                        text: text.trim_end().to_string(),
                    },
                )
            }
            Edit::InsertAfter(BlockText { address, text }) => {
                let b = find(address)?;
                fmt_check(address, text)?;
                let text = format!("\n\n{}", text.trim_end());
                (
                    b,
                    Splice {
                        start: b.span.end,
                        end: b.span.end,
                        text,
                    },
                )
            }
            Edit::Remove(address) => {
                let b = find(address)?;
                (
                    b,
                    Splice {
                        start: b.span.start,
                        end: b.span.end,
                        text: String::new(),
                    },
                )
            }
        };
        by_file.entry(block.file.clone()).or_default().push(splice);
    }
    let mut out = Vec::new();
    for (file, mut splices) in by_file {
        splices.sort_by_key(|s| (s.start, s.end));
        if splices.windows(2).any(|w| w[1].start < w[0].end) {
            return Err(format!("two edits overlap in {}", file.display()));
        }
        let path = repo.join(&file);
        let before = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut after = String::with_capacity(before.len());
        let mut at = 0;
        for s in &splices {
            after.push_str(before.get(at..s.start).unwrap_or_default());
            after.push_str(&s.text);
            at = s.end;
        }
        after.push_str(before.get(at..).unwrap_or_default());
        // A removed block leaves its blank line behind; keep at most one.
        while after.contains("\n\n\n") {
            after = after.replace("\n\n\n", "\n\n");
        }
        hcl_edit::parser::parse_body(&after)
            .map_err(|e| format!("{} would not parse after the edits: {e}", file.display()))?;
        out.push(FileChange {
            diff: diff(&file, &before, &after),
            file,
            after,
        });
    }
    Ok(out)
}

/// The attributes among `forces` whose value the edits of the resource's own block change (set,
/// changed or removed): each makes Terraform destroy the resource and create it again.
pub fn replaced_attributes(location: &Location, edits: &[Edit], forces: &[&str]) -> Vec<String> {
    let value = |text: &str, key: &str| -> Option<String> {
        let body = hcl_edit::parser::parse_body(text).ok()?;
        let block = body.into_blocks().next()?;
        let attribute = block.body.get_attribute(key)?;
        Some(attribute.value.to_string().trim().to_string())
    };
    let before = &location.resource.text;
    let mut out = Vec::new();
    for edit in edits {
        let Edit::Replace(BlockText { address, text }) = edit else {
            continue;
        };
        if *address != location.resource.address {
            continue;
        }
        for key in forces {
            if value(before, key) != value(text, key) && !out.iter().any(|k| k == key) {
                out.push(key.to_string());
            }
        }
    }
    out
}

/// What a pull request says first when its change replaces the resource: in plain words, what
/// is destroyed, why, and what to do before merging.
pub fn replacement_warning(address: &str, attributes: &[String]) -> String {
    let which = attributes
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "> **Warning: merging this destroys `{address}` and creates it again.** Terraform cannot change {which} in place. Whatever the resource holds is lost unless it is migrated first (for a volume or a database: take a snapshot and create the new one from it), and anything that refers to it by ID must follow. Plan the migration before you merge."
    )
}

/// `terraform fmt`'s layout, as far as a block's text shows it: two spaces per nesting level, no
/// tabs or trailing spaces, and the `=` of consecutive one-line attributes in one column.
fn fmt_check(address: &str, text: &str) -> Result<(), Refusal> {
    let refuse = |n: usize, why: &str| {
        Err(format!(
            "the edit of {address} is not formatted as terraform fmt formats it: line {n} {why}"
        ))
    };
    let mut depth: usize = 0;
    // Each attribute line of the current run: (column of `=`, indent, key length, line).
    let mut run: Vec<(usize, usize, usize, usize)> = Vec::new();
    let check_run = |run: &mut Vec<(usize, usize, usize, usize)>| -> Result<(), Refusal> {
        let not_fmt = |why: String| {
            Err(format!(
                "the edit of {address} is not formatted as terraform fmt formats it: {why}"
            ))
        };
        if let Some(&(column, indent, _, first)) = run.first() {
            if let Some((_, _, _, n)) = run.iter().find(|(c, ..)| *c != column) {
                return not_fmt(format!("line {n} does not align its = with line {first}"));
            }
            let widest = run.iter().map(|(_, _, k, _)| *k).max().unwrap_or(0);
            if column != indent + widest + 1 {
                return not_fmt(format!(
                    "line {first} has more than one space before = in its group"
                ));
            }
        }
        run.clear();
        Ok(())
    };
    for (i, line) in text.trim_end().lines().enumerate() {
        let n = i + 1;
        if line.contains('\t') {
            return refuse(n, "has a tab");
        }
        if line.ends_with(' ') {
            return refuse(n, "ends with a space");
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
            check_run(&mut run)?;
            continue;
        }
        let closes = trimmed.starts_with('}') || trimmed.starts_with(']');
        let expected = 2 * depth.saturating_sub(usize::from(closes));
        let indent = line.len() - trimmed.len();
        if indent != expected {
            return refuse(n, &format!("is indented {indent} spaces, not {expected}"));
        }
        let code = strip_strings(trimmed);
        let opens = code.matches(['{', '[', '(']).count();
        let shuts = code.matches(['}', ']', ')']).count();
        match code.find(" = ").or_else(|| code.find("= ")) {
            Some(eq) if opens == shuts && !code.starts_with('}') => {
                let key = code[..eq].trim_end();
                if key.contains(' ') {
                    check_run(&mut run)?;
                } else {
                    let column =
                        indent + code[..eq].len() + usize::from(code[eq..].starts_with(' '));
                    run.push((column, indent, key.len(), n));
                }
            }
            _ => check_run(&mut run)?,
        }
        depth = (depth + opens).saturating_sub(shuts);
    }
    check_run(&mut run)
}

/// The line with string literals blanked, so braces and `=` inside them do not count.
fn strip_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            out.push(if c == '"' { '"' } else { 'x' });
        } else {
            if c == '"' {
                quoted = true;
            }
            out.push(c);
        }
    }
    out
}

/// A unified diff of two versions of `file` with no context lines: the lines that differ,
/// between the longest common prefix and suffix of each changed region.
fn diff(file: &Path, before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut out = format!("--- a/{0}\n+++ b/{0}\n", file.display());
    // One hunk per maximal run of differing lines, found by walking both files with the
    // longest common subsequence (small files: blocks, not data).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        let (si, sj) = (i, j);
        let (mut removed, mut added) = (String::new(), String::new());
        while i < n || j < m {
            if i < n && j < m && a[i] == b[j] {
                break;
            }
            if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
                let _ = writeln!(added, "+{}", b[j]);
                j += 1;
            } else {
                let _ = writeln!(removed, "-{}", a[i]);
                i += 1;
            }
        }
        let _ = writeln!(out, "@@ -{},{} +{},{} @@", si + 1, i - si, sj + 1, j - sj);
        out.push_str(&removed);
        out.push_str(&added);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(address: &str, text: &str) -> Located {
        Located {
            address: address.into(),
            resource_type: "aws_ebs_volume".into(),
            file: "main.tf".into(),
            start_line: 1,
            end_line: 1,
            text: text.into(),
            span: 0..text.len(),
        }
    }

    #[test]
    fn an_edit_that_changes_a_replacing_attribute_is_named() {
        let before =
            "resource \"aws_ebs_volume\" \"data\" {\n  size      = 10\n  encrypted = false\n}";
        let location = Location {
            resource: located("aws_ebs_volume.data", before),
            configured_by: Vec::new(),
            set_by: Vec::new(),
        };
        let replace = |text: &str| {
            vec![Edit::Replace(BlockText {
                address: "aws_ebs_volume.data".into(),
                text: text.into(),
            })]
        };
        let forces = ["encrypted", "availability_zone"];
        let encrypted = before.replace("encrypted = false", "encrypted = true");
        assert_eq!(
            replaced_attributes(&location, &replace(&encrypted), &forces),
            ["encrypted"]
        );
        let resized = before.replace("size      = 10", "size      = 20");
        assert!(replaced_attributes(&location, &replace(&resized), &forces).is_empty());
        // Setting one that was not written changes it too (from the provider's default).
        let zoned = before.replace("  size", "  availability_zone = \"us-east-1a\"\n  size");
        assert_eq!(
            replaced_attributes(&location, &replace(&zoned), &forces),
            ["availability_zone"]
        );
        assert_eq!(
            replacement_warning("aws_ebs_volume.data", &["encrypted".into()]),
            "> **Warning: merging this destroys `aws_ebs_volume.data` and creates it again.** Terraform cannot change `encrypted` in place. Whatever the resource holds is lost unless it is migrated first (for a volume or a database: take a snapshot and create the new one from it), and anything that refers to it by ID must follow. Plan the migration before you merge."
        );
    }

    #[test]
    fn fmt_accepts_terraform_fmt_output_and_names_the_line_it_refuses() {
        let good = "resource \"aws_s3_bucket_public_access_block\" \"this\" {\n  bucket = aws_s3_bucket.this.id\n\n  block_public_acls       = true\n  ignore_public_acls      = true\n  block_public_policy     = true\n  restrict_public_buckets = true\n}\n";
        fmt_check("x", good).unwrap();
        let nested = "resource \"aws_security_group\" \"a\" {\n  name = \"a\"\n\n  ingress {\n    from_port   = 443\n    to_port     = 443\n    cidr_blocks = [\"0.0.0.0/0\"]\n  }\n}";
        fmt_check("x", nested).unwrap();
        let e = fmt_check(
            "x",
            &good.replace("  ignore_public_acls      =", "  ignore_public_acls ="),
        )
        .unwrap_err();
        assert!(e.contains("line 5 does not align"), "{e}");
        let e = fmt_check("x", &good.replace("  bucket =", "    bucket =")).unwrap_err();
        assert!(e.contains("line 2 is indented 4 spaces, not 2"), "{e}");
        let e = fmt_check("x", "a  = 1\n").unwrap_err();
        assert!(e.contains("more than one space"), "{e}");
        assert!(fmt_check("x", "a = \"{ = }\"\nbb = 2\n").is_err());
    }

    #[test]
    fn a_diff_holds_exactly_the_changed_lines() {
        let d = diff(Path::new("main.tf"), "a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(
            d,
            "--- a/main.tf\n+++ b/main.tf\n@@ -2,1 +2,1 @@\n-b\n+B\n@@ -4,0 +4,1 @@\n+d\n"
        );
    }
}
