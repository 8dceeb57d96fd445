//! Turns on EBS encryption by default in the finding's account and region (Security Hub EC2.7),
//! so every new volume there is encrypted. Existing volumes are not touched: encrypting them
//! means a snapshot and a copy, a change a human schedules. Rollback data says the setting was
//! off.

use std::collections::BTreeMap;

use salve_sdk::ebs_encryption_by_default::{
    self as ebs, BlockText, Call, Edit, Fixer, FixerError, LocatedBlock, Outcome, Plan, Result,
};

/// The rollback data's one field.
const WAS_ENABLED: &str = "was_enabled";

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
            match planned.call {
                Call::EnableEncryptionByDefault => ebs::enable_encryption_by_default()?,
                Call::DisableEncryptionByDefault => ebs::disable_encryption_by_default()?,
            }
        }
        let rollback = BTreeMap::from([(WAS_ENABLED, was_enabled)]);
        Ok(Outcome::with_rollback(&rollback))
    }

    fn plan_rollback(rollback: String, force: bool) -> Result<Option<Plan>> {
        let data: BTreeMap<String, bool> = ebs::rollback_data(&rollback)?;
        let Some(&was_enabled) = data.get(WAS_ENABLED) else {
            return Err(FixerError::invalid_input(format!(
                "the rollback data has no {WAS_ENABLED}"
            )));
        };
        if was_enabled {
            return Ok(Some(Plan::compliant(
                "the setting was already on before the fix; there is nothing to undo",
            )));
        }
        // Possible, but it weakens every volume created afterwards, so a person must insist.
        if !force {
            return Err(FixerError::denied(
                "turning EBS encryption by default off leaves every new volume in the region unencrypted; run salve rollback again with --force if that is intended",
            ));
        }
        Ok(Some(
            Plan::new("turn EBS encryption by default off again, as it was before the fix").call(
                Call::DisableEncryptionByDefault,
                "new EBS volumes in the region are no longer encrypted by default",
            ),
        ))
    }

    /// `aws_ebs_encryption_by_default`'s `enabled = false` becomes `true`. Without `enabled` the
    /// provider turns it on, so the code already agrees; any other value is a person's to set.
    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        let Some(setting) = blocks.first() else {
            return Err(FixerError::invalid_input(
                "no block declares the region's setting",
            ));
        };
        let lines: Vec<&str> = setting.text.lines().collect();
        let Some(value) = salve_sdk::hcl_text::attribute(&lines, "enabled") else {
            return Ok(Some(Vec::new()));
        };
        match value {
            "true" => Ok(Some(Vec::new())),
            "false" => {
                let line = lines
                    .iter()
                    .find(|l| l.trim_start().starts_with("enabled"))
                    .copied()
                    .unwrap_or_default();
                let text = setting
                    .text
                    .replacen(line, &line.replacen("false", "true", 1), 1);
                Ok(Some(vec![Edit::Replace(BlockText {
                    address: setting.address.clone(),
                    text,
                })]))
            }
            other => Err(FixerError::unexpected_state(format!(
                "enabled in {} is {other}, not a literal: set it to true where its value is set",
                setting.address
            ))),
        }
    }
}

salve_sdk::register_fixer!(EnableEbsEncryption, kind: ebs_encryption_by_default, controls: ["EC2.7"]);
