//! Reading a located Terraform block's text as `terraform fmt` writes it, for a fixer's
//! `terraform` export: one-line attributes, and nested blocks that close at their own indent.

/// The value of the one-line attribute `key` among `lines`, trimmed (quotes kept).
pub fn attribute<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// A string attribute's value without its quotes, or a bare value as written.
pub fn unquoted<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    attribute(lines, key).map(|v| v.trim_matches('"'))
}

/// Each nested block `name { … }` of `lines`, as the range of its lines (the header through the
/// closing brace). `Err` names the block that does not close at its own indent.
pub fn nested_blocks(
    lines: &[&str],
    name: &str,
) -> core::result::Result<Vec<core::ops::Range<usize>>, String> {
    let header = format!("{name} {{");
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == header {
            let line = lines[i];
            let indent = &line[..line.len() - line.trim_start().len()];
            let close = format!("{indent}}}");
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == close)
                .ok_or_else(|| {
                    format!("a {name} block does not close as terraform fmt writes it")
                })?;
            out.push(i..end + 1);
            i = end + 1;
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// `text` without the lines of `remove` (line ranges), each taking one blank line before it.
pub fn without_lines(text: &str, remove: &[core::ops::Range<usize>]) -> String {
    let mut keep: Vec<&str> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if remove.iter().any(|r| r.contains(&n)) {
            if remove.iter().any(|r| r.start == n)
                && keep.last().is_some_and(|l| l.trim().is_empty())
            {
                keep.pop();
            }
            continue;
        }
        keep.push(line);
    }
    keep.join("\n")
}

/// Whether `line` is a one-line attribute at `indent` (`key = value`, its brackets closed), and
/// its key.
fn one_line_attribute(line: &str, indent: usize) -> Option<&str> {
    let code = line.strip_prefix(&" ".repeat(indent))?;
    if code.starts_with(' ') {
        return None;
    }
    let (key, value) = code.split_once(" =")?;
    let key = key.trim_end();
    let opens = value.matches(['{', '[', '(']).count();
    let shuts = value.matches(['}', ']', ')']).count();
    (!key.is_empty() && !key.contains(' ') && opens == shuts).then_some(key)
}

/// `text` (a block as `terraform fmt` writes it) with its own attribute `key` set to `value`
/// (HCL as written: `true`, `"gp3"`). An existing one-line `key` keeps its place; a new one
/// joins the block's first run of one-line attributes, and the run's `=` are aligned again as
/// `terraform fmt` aligns them. `Err`: `key` is set over several lines.
pub fn with_attribute(text: &str, key: &str, value: &str) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let body = 1..lines.len().saturating_sub(1);
    if let Some(i) = body
        .clone()
        .find(|&i| one_line_attribute(&lines[i], 2) == Some(key))
    {
        let (name, _) = lines[i].split_once(" =").unwrap_or_default();
        lines[i] = format!("{name} = {value}");
    } else if body.clone().any(|i| {
        lines[i]
            .strip_prefix("  ")
            .and_then(|l| l.split_once(" ="))
            .is_some_and(|(k, _)| k.trim_end() == key)
    }) {
        return Err(format!("{key} is set over several lines; set it by hand"));
    } else {
        let run_end = body
            .clone()
            .find(|&i| one_line_attribute(&lines[i], 2).is_none())
            .unwrap_or(body.end);
        let run = 1..run_end;
        let width = run
            .clone()
            .filter_map(|i| one_line_attribute(&lines[i], 2).map(str::len))
            .chain([key.len()])
            .max()
            .unwrap_or(key.len());
        for i in run.clone() {
            let (k, v) = lines[i].split_once(" =").unwrap_or_default();
            lines[i] = format!("  {:<width$} ={}", k.trim(), v);
        }
        lines.insert(run_end, format!("  {key:<width$} = {value}"));
        // A new run of one: a blank line keeps what follows out of it.
        let next = lines.get(run_end + 1).map(|l| l.trim());
        if run.is_empty() && !matches!(next, None | Some("") | Some("}")) {
            lines.insert(run_end + 1, String::new());
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_attribute;

    #[test]
    fn a_new_attribute_joins_the_first_run_and_realigns_it() {
        let block = "resource \"aws_ebs_volume\" \"data\" {\n  availability_zone = \"us-east-1a\"\n  size              = 40\n\n  tags = {\n    Name = \"data\"\n  }\n}\n";
        assert_eq!(
            with_attribute(block, "encrypted", "true").unwrap(),
            "resource \"aws_ebs_volume\" \"data\" {\n  availability_zone = \"us-east-1a\"\n  size              = 40\n  encrypted         = true\n\n  tags = {\n    Name = \"data\"\n  }\n}\n"
        );
        let short = "resource \"aws_ebs_volume\" \"x\" {\n  size = 8\n}";
        assert_eq!(
            with_attribute(short, "encrypted", "true").unwrap(),
            "resource \"aws_ebs_volume\" \"x\" {\n  size      = 8\n  encrypted = true\n}"
        );
    }

    #[test]
    fn an_existing_attribute_keeps_its_column() {
        let block = "resource \"aws_ebs_volume\" \"x\" {\n  size      = 8\n  encrypted = false\n}";
        assert_eq!(
            with_attribute(block, "encrypted", "true").unwrap(),
            "resource \"aws_ebs_volume\" \"x\" {\n  size      = 8\n  encrypted = true\n}"
        );
    }

    #[test]
    fn a_block_without_a_first_run_gets_a_run_of_its_own() {
        let block = "resource \"aws_ebs_volume\" \"x\" {\n  # sized for logs\n  size = 8\n}";
        assert_eq!(
            with_attribute(block, "encrypted", "true").unwrap(),
            "resource \"aws_ebs_volume\" \"x\" {\n  encrypted = true\n\n  # sized for logs\n  size = 8\n}"
        );
    }
}
