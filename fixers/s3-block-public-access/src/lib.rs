//! Turns on all four S3 public access block settings of the finding's bucket (Security Hub S3.8).
//! Rollback data is the previous configuration, or `null` when the bucket had none; a rollback
//! puts the previous configuration back, or deletes the configuration the fix created.

use std::collections::BTreeMap;

use salve_sdk::s3_bucket::{
    self, Call, Fixer, FixerError, Outcome, Plan, PublicAccessBlock, Result,
};

/// The rollback data's one field.
const PREVIOUS: &str = "previous_public_access_block";

const BLOCK_ALL: PublicAccessBlock = PublicAccessBlock {
    block_public_acls: true,
    ignore_public_acls: true,
    block_public_policy: true,
    restrict_public_buckets: true,
};

pub struct BlockPublicAccess;

fn is_compliant(current: &Option<PublicAccessBlock>) -> bool {
    current.as_ref() == Some(&BLOCK_ALL)
}

impl Fixer for BlockPublicAccess {
    fn check() -> Result<bool> {
        Ok(is_compliant(&s3_bucket::get_public_access_block()?))
    }

    fn plan() -> Result<Plan> {
        let current = s3_bucket::get_public_access_block()?;
        if is_compliant(&current) {
            return Ok(Plan::compliant(
                "all four public access block settings are already on",
            ));
        }
        Ok(Plan::new("block all public access to the bucket").call(
            Call::PutPublicAccessBlock(BLOCK_ALL),
            "turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets",
        ))
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        // Read again for the rollback data: the bucket may have changed since the plan.
        let previous = s3_bucket::get_public_access_block()?;
        for planned in plan.calls {
            match planned.call {
                Call::PutPublicAccessBlock(config) => s3_bucket::put_public_access_block(config)?,
                Call::DeletePublicAccessBlock => s3_bucket::delete_public_access_block()?,
            }
        }
        // Naming the field makes `null` read as "the bucket had no configuration".
        let rollback = BTreeMap::from([(PREVIOUS, previous)]);
        Ok(Outcome::with_rollback(&rollback))
    }

    fn plan_rollback(rollback: String, _force: bool) -> Result<Option<Plan>> {
        let data: BTreeMap<String, Option<PublicAccessBlock>> =
            s3_bucket::rollback_data(&rollback)?;
        let Some(previous) = data.get(PREVIOUS) else {
            return Err(FixerError::invalid_input(format!(
                "the rollback data has no {PREVIOUS}"
            )));
        };
        let plan = Plan::new("put the bucket's public access block back as it was before the fix");
        Ok(Some(match previous {
            Some(config) => plan.call(
                Call::PutPublicAccessBlock(*config),
                "restore the configuration the bucket had before the fix",
            ),
            None => plan.call(
                Call::DeletePublicAccessBlock,
                "delete the configuration: the bucket had none before the fix",
            ),
        }))
    }
}

salve_sdk::register_fixer!(
    BlockPublicAccess,
    kind: s3_bucket,
    controls: ["S3.8"],
);
