//! `AWS::EC2::EbsEncryptionByDefault`: EBS encryption by default, a setting of one account in one
//! region (Security Hub EC2.7). Security Hub reports it on the account (`AwsAccount`,
//! `AWS::::Account:<id>`) with the finding's region; salve names it by a synthetic ARN,
//! `arn:aws:ec2:<region>:<account>:ebs-encryption-by-default`, since AWS has none for it.
//!
//! Everything about the kind is declared here; with the `host` feature, [`host`] adds the
//! capability, the AWS backend and the in-memory backend.

use salve_contract::{
    Access, CapabilityFunction, ContractVersion, KindSpec, ResourceScope, Scaffold, Terraform,
    VerifyMode,
};

#[cfg(feature = "host")]
pub mod drift;
#[cfg(feature = "host")]
pub mod host;

/// The last segment of the kind's synthetic ARN.
pub const ARN_RESOURCE: &str = "ebs-encryption-by-default";

pub const GET_ENCRYPTION_BY_DEFAULT: CapabilityFunction = CapabilityFunction {
    interface: "ebs-encryption-by-default",
    function: "get-encryption-by-default",
    iam_action: "ec2:GetEbsEncryptionByDefault",
    access: Access::Read,
    // Neither action has resource-level permissions: the setting is the account's.
    scope: ResourceScope::AllResources,
};

pub const ENABLE_ENCRYPTION_BY_DEFAULT: CapabilityFunction = CapabilityFunction {
    interface: "ebs-encryption-by-default",
    function: "enable-encryption-by-default",
    iam_action: "ec2:EnableEbsEncryptionByDefault",
    access: Access::Write,
    scope: ResourceScope::AllResources,
};

/// Undoes the fix; the fixer asks for `--force`, since new volumes are then unencrypted.
pub const DISABLE_ENCRYPTION_BY_DEFAULT: CapabilityFunction = CapabilityFunction {
    interface: "ebs-encryption-by-default",
    function: "disable-encryption-by-default",
    iam_action: "ec2:DisableEbsEncryptionByDefault",
    access: Access::Write,
    scope: ResourceScope::AllResources,
};

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::EC2::EbsEncryptionByDefault",
    security_hub_types: &["AwsAccount"],
    wiz_types: &[],
    controls: &["EC2.7"],
    world: "ebs-encryption-by-default-fixer",
    interface: "ebs-encryption-by-default",
    functions: &[
        GET_ENCRYPTION_BY_DEFAULT,
        ENABLE_ENCRYPTION_BY_DEFAULT,
        DISABLE_ENCRYPTION_BY_DEFAULT,
    ],
    // The setting has no tags; the host's tag read asks for nothing and finds none, so the
    // payload's tags are the metadata.
    tags_action: "ec2:GetEbsEncryptionByDefault",
    tags_scope: ResourceScope::AllResources,
    arn_pattern: "arn:aws:ec2:*:{account}:ebs-encryption-by-default",
    verify: VerifyMode::Immediate,
    since: ContractVersion::V0_2,
    scaffold: Scaffold {
        module: "ebs_encryption_by_default",
        example_arn: "arn:aws:ec2:us-east-1:123456789012:ebs-encryption-by-default",
        // Recorded once against moto with `salve fixer test --record`: the read session's
        // AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-11-23T17:56:14.710Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_ebs_encryption_by_default",
        // The provider's ID for the setting is the region.
        id_attributes: &["id"],
        named_by_region: true,
        configured_by: &[],
        forces_replacement: &[],
    }),
    iac_only: None,
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_spec_is_consistent() {
        super::SPEC.check().unwrap();
    }
}
