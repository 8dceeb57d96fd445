//! Turns on EBS encryption by default in the finding's account and region (Security Hub EC2.7),
//! so every new volume there is encrypted. Existing volumes are not touched: encrypting them
//! means a snapshot and a copy, a change a human schedules. Rollback data says the setting was
//! off.

use std::collections::BTreeMap;

use salve_sdk::ebs_encryption_by_default::{self as ebs, Call, Fixer, Outcome, Plan, Result};

pub struct EnableEbsEncryption;

impl Fixer for EnableEbsEncryption {
    fn check() -> Result<bool> {
        ebs::get_encryption_by_default()
    }

    fn plan() -> Result<Plan> {
        if ebs::get_encryption_by_default()? {
            return Ok(Plan::compliant(
                "EBS encryption by default is already on in this region",
            ));
        }
        Ok(
            Plan::new("turn on EBS encryption by default in this region").call(
                Call::EnableEncryptionByDefault,
                "encrypt every new EBS volume in the region with the account's default key",
            ),
        )
    }

    fn apply(plan: Plan) -> Result<Outcome> {
        let was_enabled = ebs::get_encryption_by_default()?;
        for planned in plan.calls {
            let Call::EnableEncryptionByDefault = planned.call;
            ebs::enable_encryption_by_default()?;
        }
        let rollback = BTreeMap::from([("was_enabled", was_enabled)]);
        Ok(Outcome::with_rollback(&rollback))
    }
}

salve_sdk::register_fixer!(EnableEbsEncryption, kind: ebs_encryption_by_default, controls: ["EC2.7"]);
