//! The fix in Terraform: the rules that open administration ports to the internet are removed
//! where they are declared, as inline `ingress` blocks of the group or as separate rule
//! resources. A rule whose range merely contains an admin port is left to a person: narrowing it
//! in code means choosing new ranges, which the live fix does but a reviewer should see done by
//! hand.

use salve_sdk::hcl_text::attribute;
use salve_sdk::security_group::{BlockText, Edit, FixerError, LocatedBlock, Result};

fn port(lines: &[&str], key: &str) -> Option<i32> {
    attribute(lines, key).and_then(|v| v.parse().ok())
}

/// Whether the rule text (an inline `ingress` block's lines or a rule resource's) opens exactly
/// admin ports to the world: its range holds only admin ports and its source is the internet.
/// A wider range containing one is an error, for a person.
fn opens_admin_ports(lines: &[&str], what: &str, admin: &[i32]) -> Result<bool> {
    let world = ["0.0.0.0/0", "::/0"]
        .iter()
        .any(|w| lines.iter().any(|l| l.contains(&format!("\"{w}\""))));
    if !world {
        return Ok(false);
    }
    if attribute(lines, "type").is_some_and(|t| t != "\"ingress\"") {
        return Ok(false);
    }
    let (Some(from), Some(to)) = (port(lines, "from_port"), port(lines, "to_port")) else {
        return Ok(false);
    };
    let exposed = admin.iter().filter(|p| (from..=to).contains(*p)).count();
    if exposed == 0 {
        return Ok(false);
    }
    if (to - from + 1) as usize != exposed {
        return Err(FixerError::unexpected_state(format!(
            "{what} opens ports {from}-{to} to the internet, administration ports among them; narrowing a range in code is left to a person"
        )));
    }
    Ok(true)
}

/// The group's block without the inline `ingress` blocks that open admin ports, or `None` when
/// it has none.
fn without_open_ingress(block: &LocatedBlock, admin: &[i32]) -> Result<Option<String>> {
    let lines: Vec<&str> = block.text.lines().collect();
    let mut keep: Vec<&str> = Vec::with_capacity(lines.len());
    let mut removed = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "ingress {" {
            let indent = &line[..line.len() - line.trim_start().len()];
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == format!("{indent}}}"))
                .ok_or_else(|| {
                    FixerError::unexpected_state(format!(
                        "an ingress block of {} does not close as terraform fmt writes it",
                        block.address
                    ))
                })?;
            let what = format!("an ingress block of {}", block.address);
            if opens_admin_ports(&lines[i + 1..end], &what, admin)? {
                removed += 1;
                // Its blank line before goes with it.
                if keep.last().is_some_and(|l| l.trim().is_empty()) {
                    keep.pop();
                }
                i = end + 1;
                continue;
            }
        }
        keep.push(line);
        i += 1;
    }
    Ok((removed > 0).then(|| keep.join("\n")))
}

/// Removes every declaration that opens an admin port to the internet.
pub fn edits(blocks: &[LocatedBlock], admin: &[i32]) -> Result<Vec<Edit>> {
    let Some(group) = blocks.first() else {
        return Err(FixerError::invalid_input("no block declares the group"));
    };
    // Rules a `dynamic "ingress"` block builds come from an expression (often a local or a
    // variable's list); which of them open admin ports is only known once Terraform evaluates
    // it, so removing the literal rules alone could leave the finding open.
    if let Some(line) = group
        .text
        .lines()
        .find(|l| l.trim_start().starts_with("dynamic \"ingress\""))
    {
        let for_each = group
            .text
            .lines()
            .skip_while(|l| *l != line)
            .find_map(|l| {
                l.trim()
                    .strip_prefix("for_each")
                    .map(|v| v.trim_start_matches([' ', '=']).trim())
            })
            .unwrap_or("an expression");
        return Err(FixerError::unexpected_state(format!(
            "{} builds ingress rules with a dynamic \"ingress\" block from {for_each}; remove the entries that open administration ports to the internet from that data by hand",
            group.address
        )));
    }
    let mut edits = Vec::new();
    if let Some(text) = without_open_ingress(group, admin)? {
        edits.push(Edit::Replace(BlockText {
            address: group.address.clone(),
            text,
        }));
    }
    // Where variables are set (`tfvars`, `variable`) is not a rule.
    let rules = blocks[1..]
        .iter()
        .filter(|b| b.resource_type != "tfvars" && b.resource_type != "variable");
    for rule in rules {
        let lines: Vec<&str> = rule.text.lines().collect();
        if opens_admin_ports(&lines, &rule.address, admin)? {
            edits.push(Edit::Remove(rule.address.clone()));
        }
    }
    Ok(edits)
}
