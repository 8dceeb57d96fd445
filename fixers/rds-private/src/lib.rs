//! Makes the finding's RDS DB instance private (Security Hub RDS.2): `PubliclyAccessible=false`,
//! applied immediately. RDS applies it asynchronously; the host polls the instance until it
//! reports private. Rollback data says it was public.

use std::collections::BTreeMap;

use salve_sdk::rds_instance::{
    self as rds, BlockText, Call, Edit, Fixer, FixerError, LocatedBlock, Outcome, Plan, Result,
};

pub struct MakePrivate;

impl Fixer for MakePrivate {
    fn check() -> Result<bool> {
        Ok(!rds::describe_instance()?.publicly_accessible)
    }

    fn plan() -> Result<Plan> {
        let instance = rds::describe_instance()?;
        if !instance.publicly_accessible {
            return Ok(Plan::compliant(
                "the DB instance is not publicly accessible",
            ));
        }
        if instance.status == "modifying" {
            // A modification in flight may be this very change; asking again would only queue
            // another. The finding is retried later by the next evaluation.
            return Err(FixerError::unexpected_state(
                "the DB instance is being modified; try again once it is available",
            ));
        }
        Ok(Plan::new("make the DB instance private").call(
            Call::SetPubliclyAccessible(false),
            "ModifyDBInstance PubliclyAccessible=false, ApplyImmediately",
        ))
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        for planned in plan.calls {
            let Call::SetPubliclyAccessible(public) = planned.call;
            rds::set_publicly_accessible(public)?;
        }
        let rollback = BTreeMap::from([("was_publicly_accessible", true)]);
        Ok(Outcome::with_rollback(&rollback))
    }

    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        let Some(db) = blocks.first() else {
            return Err(FixerError::invalid_input(
                "no block declares the DB instance",
            ));
        };
        let Some((_, value)) = assignment(&db.text, "publicly_accessible") else {
            // The provider's default is private: the code already says so.
            return Ok(Some(Vec::new()));
        };
        if let Some(edit) = make_false(db, "publicly_accessible")? {
            return Ok(Some(edit));
        }
        let Some(name) = value.strip_prefix("var.").filter(|n| {
            n.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        }) else {
            return Err(FixerError::unexpected_state(format!(
                "publicly_accessible in {} is {value}, not a literal or a variable: set it to false by hand",
                db.address
            )));
        };
        // The value is set where Terraform takes it from: a .tfvars line overrides the
        // variable's default, and the host locates whichever applies.
        let set_by = |kind: &str, address: String| {
            blocks
                .iter()
                .find(|b| b.resource_type == kind && b.address == address)
        };
        if let Some(line) = set_by("tfvars", format!("tfvars.{name}")) {
            return match make_false(line, name)? {
                Some(edit) => Ok(Some(edit)),
                None => Err(FixerError::unexpected_state(format!(
                    "{name} in {} is not the literal true or false: set it to false there",
                    line.file
                ))),
            };
        }
        if let Some(variable) = set_by("variable", format!("var.{name}")) {
            return match make_false(variable, "default")? {
                Some(edit) => Ok(Some(edit)),
                None => Err(FixerError::unexpected_state(format!(
                    "variable {name} in {} has no literal default and no .tfvars file sets it: the value comes from outside the repository (-var, a CI variable, the module's caller), so set it to false there",
                    variable.file
                ))),
            };
        }
        Err(FixerError::unexpected_state(format!(
            "publicly_accessible in {} is var.{name}, which the host did not locate (a module's variable is set by its caller): set it to false where it is set",
            db.address
        )))
    }
}

/// The value of the one-line attribute `key` in `text` (its line and its value).
fn assignment<'a>(text: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| (line, v.trim()))
    })
}

/// The edit that turns `key = true` in `block` to `key = false`: `Some(no edit)` when it is
/// already false, `None` when the value is not a literal. Only the value changes, so the
/// attributes' alignment holds.
fn make_false(block: &LocatedBlock, key: &str) -> Result<Option<Vec<Edit>>> {
    Ok(match assignment(&block.text, key) {
        Some((_, "false")) => Some(Vec::new()),
        Some((line, "true")) => Some(vec![Edit::Replace(BlockText {
            address: block.address.clone(),
            text: block
                .text
                .replacen(line, &line.replacen("true", "false", 1), 1),
        })]),
        _ => None,
    })
}

salve_sdk::register_fixer!(MakePrivate, kind: rds_instance, controls: ["RDS.2"]);
