//! An unencrypted EBS volume (Security Hub EC2.3). A volume cannot be encrypted in place, so
//! this fixer changes nothing in the account: it says whether the volume is encrypted, and sets
//! `encrypted = true` on the `aws_ebs_volume` that declares it. That edit replaces the volume
//! when applied; the host says so at the top of the pull request.

use salve_sdk::ebs_volume::{
    self as ebs, BlockText, Edit, Fixer, FixerError, LocatedBlock, Result,
};

pub struct EncryptVolume;

impl Fixer for EncryptVolume {
    fn check() -> Result<bool> {
        Ok(ebs::describe_volume()?.encrypted)
    }

    /// `encrypted = false`, or no `encrypted` (the provider's default is unencrypted), becomes
    /// `encrypted = true`. A value from elsewhere (a variable, an expression) is refused with
    /// where to set it, since the same value may serve other volumes.
    fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        let Some(volume) = blocks.first() else {
            return Err(FixerError::invalid_input("no block declares the volume"));
        };
        let lines: Vec<&str> = volume.text.lines().collect();
        match salve_sdk::hcl_text::attribute(&lines, "encrypted") {
            Some("true") => return Ok(Some(Vec::new())),
            None | Some("false") => {}
            Some(other) => {
                return Err(FixerError::unexpected_state(format!(
                "encrypted in {} is {other}, not a literal: set it to true where its value is set",
                volume.address
            )))
            }
        }
        let text = salve_sdk::hcl_text::with_attribute(&volume.text, "encrypted", "true")
            .map_err(|e| FixerError::unexpected_state(format!("{}: {e}", volume.address)))?;
        Ok(Some(vec![Edit::Replace(BlockText {
            address: volume.address.clone(),
            text,
        })]))
    }
}

salve_sdk::register_fixer!(EncryptVolume, iac_only_kind: ebs_volume, controls: ["EC2.3"]);
