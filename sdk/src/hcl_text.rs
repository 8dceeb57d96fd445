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
