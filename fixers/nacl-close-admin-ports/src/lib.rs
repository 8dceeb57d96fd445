//! Stops a network ACL from allowing ingress from `0.0.0.0/0` or `::/0` to administration ports
//! (22 and 3389 unless the `admin-ports` setting says otherwise; Security Hub EC2.21).
//!
//! Entries are evaluated in rule-number order and the first match decides, so for each admin
//! port and each world CIDR the fixer finds the entry that decides it. An allow entry there is
//! deleted when it covers nothing but admin ports, and narrowed in place (same rule number) when
//! removing the admin ports leaves one range. When it would leave two ranges, or the entry allows
//! every protocol, a human decides: one entry cannot hold the rest, and new rule numbers are the
//! owner's to choose. Deny entries, other sources and egress entries are never touched. Rollback
//! data is every entry as it was.

use std::collections::BTreeMap;

use salve_sdk::network_acl::{
    self as acl, context, AclEntry, Call, Edit, Fixer, FixerError, LocatedBlock, Outcome, Plan,
    Result,
};

mod terraform;

/// The rollback data's one field: the ingress entries the fix touched, as they were before.
const ENTRIES_BEFORE: &str = "entries_before";
const DEFAULT_ADMIN_PORTS: [i32; 2] = [22, 3389];
const TCP: &str = "6";
const ALL: &str = "-1";

pub struct CloseAdminPorts;

fn admin_ports() -> Result<Vec<i32>> {
    let Some(setting) = context::setting("admin-ports") else {
        return Ok(DEFAULT_ADMIN_PORTS.to_vec());
    };
    let mut ports = setting
        .split(',')
        .map(|p| p.trim().parse::<i32>())
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|e| FixerError::invalid_input(format!("setting admin-ports={setting:?}: {e}")))?;
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// Whether `entry` decides TCP traffic to `port` from the whole internet of one address family.
fn matches(entry: &AclEntry, port: i32, v6: bool) -> bool {
    let world = if v6 {
        entry.ipv6_cidr_block.as_deref() == Some("::/0")
    } else {
        entry.cidr_block.as_deref() == Some("0.0.0.0/0")
    };
    let in_range = match (entry.from_port, entry.to_port) {
        (Some(from), Some(to)) => (from..=to).contains(&port),
        _ => entry.protocol == ALL,
    };
    !entry.egress && world && (entry.protocol == ALL || (entry.protocol == TCP && in_range))
}

/// The planned calls, from the ACL's entries.
fn calls(entries: &[AclEntry], admin: &[i32]) -> Result<Vec<(Call, String)>> {
    let mut ingress: Vec<&AclEntry> = entries.iter().filter(|e| !e.egress).collect();
    ingress.sort_by_key(|e| e.rule_number);
    let mut offending: Vec<&AclEntry> = Vec::new();
    for &port in admin {
        for v6 in [false, true] {
            let decides = ingress.iter().find(|e| matches(e, port, v6));
            if let Some(e) = decides.filter(|e| e.rule_action == "allow") {
                if !offending.iter().any(|o| o.rule_number == e.rule_number) {
                    offending.push(e);
                }
            }
        }
    }
    let mut out = Vec::new();
    for entry in offending {
        let n = entry.rule_number;
        let (from, to) = match (entry.protocol.as_str(), entry.from_port, entry.to_port) {
            (TCP, Some(from), Some(to)) => (from, to),
            _ => {
                return Err(FixerError::unexpected_state(format!(
                    "ingress entry {n} allows every protocol from the internet; narrowing it safely needs a human"
                )))
            }
        };
        let mut pieces = Vec::new();
        let mut start = from;
        for &port in admin.iter().filter(|p| (from..=to).contains(*p)) {
            if port > start {
                pieces.push((start, port - 1));
            }
            start = port + 1;
        }
        if start <= to {
            pieces.push((start, to));
        }
        match pieces.as_slice() {
            [] => out.push((
                Call::DeleteIngressEntry(n),
                format!("delete ingress entry {n}: it allows only administration ports from the internet"),
            )),
            [(from, to)] => out.push((
                Call::ReplaceIngressEntry(AclEntry {
                    from_port: Some(*from),
                    to_port: Some(*to),
                    ..entry.clone()
                }),
                format!("narrow ingress entry {n} to ports {from}-{to}, keeping its rule number"),
            )),
            _ => {
                return Err(FixerError::unexpected_state(format!(
                    "ingress entry {n} allows ports {}-{} from the internet; without the administration ports that is {} ranges, more than one entry holds, so a human picks the rule numbers",
                    from,
                    to,
                    pieces.len()
                )))
            }
        }
    }
    Ok(out)
}

impl Fixer for CloseAdminPorts {
    fn check() -> Result<bool> {
        Ok(calls(&acl::describe_entries()?, &admin_ports()?)?.is_empty())
    }

    fn plan() -> Result<Plan> {
        let planned = calls(&acl::describe_entries()?, &admin_ports()?)?;
        if planned.is_empty() {
            return Ok(Plan::compliant(
                "no ingress entry allows administration ports from the internet",
            ));
        }
        let mut plan = Plan::new(format!(
            "close administration ports to the internet in {} ingress entr(ies)",
            planned.len()
        ));
        for (call, description) in planned {
            plan = plan.call(call, description);
        }
        Ok(plan)
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        // The rollback data is the entries this plan touches, as they are before it: a
        // rollback puts back those and nothing else someone changed since.
        let touched: Vec<i32> = plan
            .calls
            .iter()
            .map(|c| match &c.call {
                Call::DeleteIngressEntry(n) => *n,
                Call::ReplaceIngressEntry(e) | Call::CreateIngressEntry(e) => e.rule_number,
            })
            .collect();
        let before: Vec<AclEntry> = acl::describe_entries()?
            .into_iter()
            .filter(|e| !e.egress && touched.contains(&e.rule_number))
            .collect();
        for planned in plan.calls {
            match planned.call {
                Call::DeleteIngressEntry(n) => acl::delete_ingress_entry(n)?,
                Call::ReplaceIngressEntry(entry) => acl::replace_ingress_entry(&entry)?,
                Call::CreateIngressEntry(entry) => acl::create_ingress_entry(&entry)?,
            }
        }
        let rollback = BTreeMap::from([(ENTRIES_BEFORE, before)]);
        Ok(Outcome::with_rollback(&rollback))
    }

    fn plan_rollback(rollback: String, _force: bool) -> Result<Option<Plan>> {
        let data: BTreeMap<String, Vec<AclEntry>> = acl::rollback_data(&rollback)?;
        let Some(before) = data.get(ENTRIES_BEFORE) else {
            return Err(FixerError::invalid_input(format!(
                "the rollback data has no {ENTRIES_BEFORE}"
            )));
        };
        let now = acl::describe_entries()?;
        let mut plan = Plan::new("put the ACL's ingress entries back as they were before the fix");
        // Only ingress entries the fix could change: the ones now missing or different.
        for entry in before.iter().filter(|e| !e.egress) {
            let current = now
                .iter()
                .find(|e| !e.egress && e.rule_number == entry.rule_number);
            let n = entry.rule_number;
            plan = match current {
                Some(c) if c == entry => plan,
                Some(_) => plan.call(
                    Call::ReplaceIngressEntry(entry.clone()),
                    format!("restore ingress entry {n} as it was before the fix"),
                ),
                None => plan.call(
                    Call::CreateIngressEntry(entry.clone()),
                    format!("create again ingress entry {n}, which the fix deleted"),
                ),
            };
        }
        Ok(Some(plan))
    }

    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        terraform::edits(&blocks, &admin_ports()?).map(Some)
    }
}

salve_sdk::register_fixer!(CloseAdminPorts, kind: network_acl, controls: ["EC2.21"]);
