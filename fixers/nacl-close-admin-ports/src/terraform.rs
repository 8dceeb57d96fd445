//! The fix in Terraform: the ingress rules that allow administration ports from the internet are
//! removed where they are declared, as inline `ingress` blocks of the `aws_network_acl` or as
//! `aws_network_acl_rule` resources. A rule whose range merely contains an admin port, or that
//! allows every protocol, is left to a person: narrowing it in code means choosing new ranges
//! and rule numbers, which the owner should do.

use salve_sdk::hcl_text::{nested_blocks, unquoted, without_lines};
use salve_sdk::network_acl::{BlockText, Edit, FixerError, LocatedBlock, Result};

/// Whether a rule (an inline `ingress` block's lines, or a rule resource's) allows only admin
/// ports from the internet. A wider one that contains an admin port is an error, for a person.
fn allows_admin_ports(lines: &[&str], what: &str, admin: &[i32]) -> Result<bool> {
    let world = unquoted(lines, "cidr_block") == Some("0.0.0.0/0")
        || unquoted(lines, "ipv6_cidr_block") == Some("::/0");
    let action = unquoted(lines, "action").or(unquoted(lines, "rule_action"));
    let egress = unquoted(lines, "egress") == Some("true");
    if !world || egress || action != Some("allow") {
        return Ok(false);
    }
    let protocol = unquoted(lines, "protocol").unwrap_or_default();
    if matches!(protocol, "-1" | "all") {
        return Err(FixerError::unexpected_state(format!(
            "{what} allows every protocol from the internet; narrowing it in code is left to a person"
        )));
    }
    if !matches!(protocol, "tcp" | "6") {
        return Ok(false);
    }
    let port = |key| unquoted(lines, key).and_then(|v| v.parse::<i32>().ok());
    let (Some(from), Some(to)) = (port("from_port"), port("to_port")) else {
        return Ok(false);
    };
    let exposed = admin.iter().filter(|p| (from..=to).contains(*p)).count();
    if exposed == 0 {
        return Ok(false);
    }
    if (to - from + 1) as usize != exposed {
        return Err(FixerError::unexpected_state(format!(
            "{what} allows ports {from}-{to} from the internet, administration ports among them; narrowing a range in code is left to a person"
        )));
    }
    Ok(true)
}

/// Removes every declaration that allows an admin port from the internet.
pub fn edits(blocks: &[LocatedBlock], admin: &[i32]) -> Result<Vec<Edit>> {
    let Some(acl) = blocks.first() else {
        return Err(FixerError::invalid_input(
            "no block declares the network ACL",
        ));
    };
    let lines: Vec<&str> = acl.text.lines().collect();
    // Rules a dynamic block builds are only known once Terraform evaluates its data.
    if let Some(header) = lines
        .iter()
        .position(|l| l.trim_start().starts_with("dynamic \"ingress\""))
    {
        let for_each = lines[header..]
            .iter()
            .find_map(|l| unquoted(&[l], "for_each"))
            .unwrap_or("an expression");
        return Err(FixerError::unexpected_state(format!(
            "{} builds ingress rules with a dynamic \"ingress\" block from {for_each}; remove the entries that allow administration ports from the internet from that data by hand",
            acl.address
        )));
    }
    let inline = nested_blocks(&lines, "ingress")
        .map_err(|e| FixerError::unexpected_state(format!("{}: {e}", acl.address)))?;
    let mut remove = Vec::new();
    for block in inline {
        let what = format!("an ingress block of {}", acl.address);
        if allows_admin_ports(&lines[block.clone()], &what, admin)? {
            remove.push(block);
        }
    }
    let mut edits = Vec::new();
    if !remove.is_empty() {
        edits.push(Edit::Replace(BlockText {
            address: acl.address.clone(),
            text: without_lines(&acl.text, &remove),
        }));
    }
    let rules = blocks[1..]
        .iter()
        .filter(|b| b.resource_type == "aws_network_acl_rule");
    for rule in rules {
        let lines: Vec<&str> = rule.text.lines().collect();
        if allows_admin_ports(&lines, &rule.address, admin)? {
            edits.push(Edit::Remove(rule.address.clone()));
        }
    }
    Ok(edits)
}
