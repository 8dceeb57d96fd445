//! Turns on all four S3 public access block settings of the finding's bucket (Security Hub S3.8).
//! Rollback data is the previous configuration, or `null` when the bucket had none; a rollback
//! puts the previous configuration back, or deletes the configuration the fix created.

use std::collections::BTreeMap;

use salve_sdk::s3_bucket::{
    self, BlockText, Call, Edit, Fixer, FixerError, LocatedBlock, Outcome, Plan, PublicAccessBlock,
    Result,
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

    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        terraform_edits(&blocks).map(Some)
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

/// The four settings, as `terraform fmt` aligns them.
const SETTINGS: [&str; 4] = [
    "block_public_acls",
    "ignore_public_acls",
    "block_public_policy",
    "restrict_public_buckets",
];

/// `aws_s3_bucket.logs` from `module.a.aws_s3_bucket.logs`: how the bucket's own module refers to it.
fn local_reference(address: &str) -> &str {
    let mut dots = address.rmatch_indices('.');
    match (dots.next(), dots.next()) {
        (Some(_), Some((i, _))) => &address[i + 1..],
        _ => address,
    }
}

/// A public access block for `bucket` (an HCL expression) with every setting on.
fn public_access_block(label: &str, bucket: &str) -> String {
    let mut text = format!(
        "resource \"aws_s3_bucket_public_access_block\" \"{label}\" {{\n  bucket = {bucket}\n\n"
    );
    for s in SETTINGS {
        text.push_str(&format!("  {s:<23} = true\n"));
    }
    text.push('}');
    text
}

/// The Terraform edit: complete the bucket's public access block, or add one after the bucket.
fn terraform_edits(blocks: &[LocatedBlock]) -> Result<Vec<Edit>> {
    let Some(bucket) = blocks.first() else {
        return Err(FixerError::invalid_input("no block declares the bucket"));
    };
    let existing = blocks[1..]
        .iter()
        .find(|b| b.resource_type == "aws_s3_bucket_public_access_block");
    Ok(vec![match existing {
        Some(block) => {
            // Keep the block's label and the way it names the bucket; set the four settings.
            let label = block.address.rsplit('.').next().unwrap_or("this");
            let named = block
                .text
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("bucket").map(str::trim_start))
                .and_then(|l| l.strip_prefix('='))
                .map(str::trim)
                .ok_or_else(|| {
                    FixerError::unexpected_state(format!(
                        "{} does not set bucket on one line",
                        block.address
                    ))
                })?;
            Edit::Replace(BlockText {
                address: block.address.clone(),
                text: public_access_block(label, named),
            })
        }
        None => {
            let reference = local_reference(&bucket.address);
            let label = reference.rsplit('.').next().unwrap_or("this");
            Edit::InsertAfter(BlockText {
                address: bucket.address.clone(),
                text: public_access_block(label, &format!("{reference}.id")),
            })
        }
    }])
}

salve_sdk::register_fixer!(
    BlockPublicAccess,
    kind: s3_bucket,
    controls: ["S3.8"],
);
