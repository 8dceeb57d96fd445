//! Turns on all four S3 public access block settings of the finding's bucket (Security Hub S3.8).
//! Rollback data is the previous configuration, or `null` when the bucket had none.

use std::collections::BTreeMap;

use salve_sdk::s3_bucket::{self, PublicAccessBlock};
use salve_sdk::{Change, Fixer, Outcome, Plan, Result};

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
        Ok(Plan::new("block all public access to the bucket").with(
            Change::new(
                s3_bucket::PUT_PUBLIC_ACCESS_BLOCK,
                "turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets",
            )
            .before(&current)
            .after(&BLOCK_ALL),
        ))
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        // Read again rather than trusting the plan's `before`: the bucket may have changed since.
        let previous = s3_bucket::get_public_access_block()?;
        if plan
            .changes_for(s3_bucket::PUT_PUBLIC_ACCESS_BLOCK)
            .next()
            .is_some()
        {
            s3_bucket::put_public_access_block(BLOCK_ALL)?;
        }
        // Naming the field makes `null` read as "the bucket had no configuration".
        let rollback = BTreeMap::from([("previous_public_access_block", previous)]);
        Ok(Outcome::applied(plan).with_rollback(&rollback))
    }
}

salve_sdk::register_fixer!(
    BlockPublicAccess,
    resource_type: "AWS::S3::Bucket",
    controls: ["S3.8"],
);
