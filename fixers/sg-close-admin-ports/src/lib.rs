//! Revokes ingress from `0.0.0.0/0` and `::/0` to administration ports (22 and 3389 unless the
//! `admin-ports` setting says otherwise). Every other rule stays as it is, including rules on the
//! same ports from narrower sources. A world-open port range that merely contains an admin port is
//! replaced by the same range minus the admin ports, so unrelated access survives. Rollback data
//! is the revoked rules and the replacements.

use std::collections::BTreeMap;

mod terraform;

use salve_sdk::security_group::{
    self, context, Call, Edit, Fixer, FixerError, IngressRule, LocatedBlock, Outcome, Plan, Result,
    RuleSource,
};

const DEFAULT_ADMIN_PORTS: [i32; 2] = [22, 3389];

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

fn open_to_world(rule: &IngressRule) -> bool {
    match &rule.source {
        RuleSource::Ipv4Cidr(cidr) => cidr == "0.0.0.0/0",
        RuleSource::Ipv6Cidr(cidr) => cidr == "::/0",
        _ => false,
    }
}

fn is_port_protocol(protocol: &str) -> bool {
    matches!(protocol, "tcp" | "udp" | "6" | "17")
}

/// The admin ports a world-open rule exposes. Fails for rules that open every protocol, since
/// narrowing those without guessing at the owner's intent is not possible.
fn exposed_admin_ports(rule: &IngressRule, admin: &[i32]) -> Result<Vec<i32>> {
    if !open_to_world(rule) {
        return Ok(Vec::new());
    }
    if rule.protocol == "-1" {
        return Err(FixerError::unexpected_state(format!(
            "a rule allows every protocol from {}; narrowing it safely needs a human",
            source_text(&rule.source)
        )));
    }
    if !is_port_protocol(&rule.protocol) {
        return Ok(Vec::new());
    }
    let (Some(from), Some(to)) = (rule.from_port, rule.to_port) else {
        return Ok(Vec::new());
    };
    Ok(admin
        .iter()
        .copied()
        .filter(|p| (from..=to).contains(p))
        .collect())
}

fn source_text(source: &RuleSource) -> &str {
    match source {
        RuleSource::Ipv4Cidr(s)
        | RuleSource::Ipv6Cidr(s)
        | RuleSource::SecurityGroup(s)
        | RuleSource::PrefixList(s) => s,
    }
}

/// The parts of `rule`'s port range that are not in `exposed` (sorted), as new rules.
fn remainder(rule: &IngressRule, exposed: &[i32]) -> Vec<IngressRule> {
    let (Some(from), Some(to)) = (rule.from_port, rule.to_port) else {
        return Vec::new();
    };
    let mut pieces = Vec::new();
    let mut start = from;
    for &port in exposed {
        if port > start {
            pieces.push((start, port - 1));
        }
        start = port + 1;
    }
    if start <= to {
        pieces.push((start, to));
    }
    pieces
        .into_iter()
        .map(|(from, to)| IngressRule {
            from_port: Some(from),
            to_port: Some(to),
            ..rule.clone()
        })
        .collect()
}

struct Findings {
    revoke: Vec<IngressRule>,
    replace: Vec<IngressRule>,
}

fn inspect() -> Result<Findings> {
    let admin = admin_ports()?;
    let mut found = Findings {
        revoke: Vec::new(),
        replace: Vec::new(),
    };
    for rule in security_group::describe_ingress()? {
        let exposed = exposed_admin_ports(&rule, &admin)?;
        if exposed.is_empty() {
            continue;
        }
        found.replace.extend(remainder(&rule, &exposed));
        found.revoke.push(rule);
    }
    Ok(found)
}

impl Fixer for CloseAdminPorts {
    fn check() -> Result<bool> {
        Ok(inspect()?.revoke.is_empty())
    }

    fn plan() -> Result<Plan> {
        let found = inspect()?;
        if found.revoke.is_empty() {
            return Ok(Plan::compliant(
                "no administration port is open to the internet",
            ));
        }
        let mut plan = Plan::new(format!(
            "revoke {} world-open rule(s) to administration ports",
            found.revoke.len()
        ))
        .call(
            Call::RevokeIngress(found.revoke),
            "revoke ingress from 0.0.0.0/0 and ::/0 to administration ports",
        );
        if !found.replace.is_empty() {
            plan = plan.call(
                Call::AuthorizeIngress(found.replace),
                "keep the rest of each revoked port range open, minus the administration ports",
            );
        }
        Ok(plan)
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        let mut rollback: BTreeMap<&str, Vec<IngressRule>> = BTreeMap::new();
        // Authorize the replacements first, so a failure half-way never leaves less access than
        // the plan intends to keep. Each call is the planned one, argument for argument: the host
        // lets nothing else through.
        for planned in &plan.calls {
            if let Call::AuthorizeIngress(rules) = &planned.call {
                security_group::authorize_ingress(rules)?;
                rollback
                    .entry("authorized")
                    .or_default()
                    .extend(rules.clone());
            }
        }
        for planned in &plan.calls {
            if let Call::RevokeIngress(rules) = &planned.call {
                security_group::revoke_ingress(rules)?;
                rollback.entry("revoked").or_default().extend(rules.clone());
            }
        }
        Ok(Outcome::with_rollback(&rollback))
    }

    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        terraform::edits(&blocks, &admin_ports()?).map(Some)
    }

    fn plan_rollback(rollback: String, _force: bool) -> Result<Option<Plan>> {
        let data: BTreeMap<String, Vec<IngressRule>> = security_group::rollback_data(&rollback)?;
        let mut plan = Plan::new("put the group's ingress back as it was before the fix");
        if let Some(revoked) = data.get("revoked").filter(|r| !r.is_empty()) {
            plan = plan.call(
                Call::AuthorizeIngress(revoked.clone()),
                "authorize again exactly the rules the fix revoked",
            );
        }
        if let Some(authorized) = data.get("authorized").filter(|r| !r.is_empty()) {
            plan = plan.call(
                Call::RevokeIngress(authorized.clone()),
                "revoke the narrower rules the fix authorized in their place",
            );
        }
        Ok(Some(plan))
    }
}

salve_sdk::register_fixer!(
    CloseAdminPorts,
    kind: security_group,
    controls: ["EC2.13", "EC2.14", "EC2.53", "EC2.54"],
);
