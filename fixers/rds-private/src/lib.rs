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
        let Some(line) = db
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("publicly_accessible "))
        else {
            // The provider's default is private: the code already says so.
            return Ok(Some(Vec::new()));
        };
        let value = line
            .split_once('=')
            .map(|(_, v)| v.trim())
            .unwrap_or_default();
        match value {
            "false" => Ok(Some(Vec::new())),
            // Only the value changes, so the attribute's alignment holds.
            "true" => Ok(Some(vec![Edit::Replace(BlockText {
                address: db.address.clone(),
                text: db.text.replacen(line, &line.replacen("true", "false", 1), 1),
            })])),
            expression => Err(FixerError::unexpected_state(format!(
                "publicly_accessible in {} is {expression}, not a literal: the value is set elsewhere (a variable's default, or a .tfvars file that overrides it), which this fixer does not edit yet; set it to false there",
                db.address
            ))),
        }
    }
}

salve_sdk::register_fixer!(MakePrivate, kind: rds_instance, controls: ["RDS.2"]);
