//! `AWS::EC2::Volume`: an unencrypted EBS volume (Security Hub EC2.3).
//!
//! A volume cannot be encrypted in place: encrypting one means a snapshot, an encrypted copy
//! and a new volume, and Terraform's `encrypted = true` on an existing `aws_ebs_volume` destroys
//! and recreates it. So the kind is IaC-only: its fixer checks and edits the Terraform, the
//! host opens that edit as a pull request that says so at the top, and nothing changes in the
//! account. Where Terraform does not manage the volume, the finding goes to review.
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

pub const DESCRIBE_VOLUME: CapabilityFunction = CapabilityFunction {
    interface: "ebs-volume",
    function: "describe-volume",
    iam_action: "ec2:DescribeVolumes",
    access: Access::Read,
    // DescribeVolumes has no resource-level permissions.
    scope: ResourceScope::AllResources,
};

/// Why no live change fixes the kind; the record and the review reason quote it.
pub const IAC_ONLY: &str = "an EBS volume cannot be encrypted in place: encrypting it means a snapshot, an encrypted copy and a new volume, which destroys the old one";

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::EC2::Volume",
    security_hub_types: &["AwsEc2Volume"],
    wiz_types: &["VOLUME"],
    controls: &["EC2.3"],
    world: "ebs-volume-fixer",
    interface: "ebs-volume",
    functions: &[DESCRIBE_VOLUME],
    // DescribeVolumes returns the volume's tags with it.
    tags_action: "ec2:DescribeVolumes",
    tags_scope: ResourceScope::AllResources,
    arn_pattern: "arn:aws:ec2:*:{account}:volume/*",
    // Never verified: nothing is applied.
    verify: VerifyMode::Immediate,
    since: ContractVersion::V0_2,
    scaffold: Scaffold {
        module: "ebs_volume",
        example_arn: "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0",
        // Recorded once against moto with `salve fixer test --record`: the read session's
        // AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-12-03T09:18:27.140Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_ebs_volume",
        id_attributes: &["id", "arn"],
        named_by_region: false,
        configured_by: &[],
        // The provider's ForceNew attributes that a security fix might touch.
        forces_replacement: &[
            "encrypted",
            "kms_key_id",
            "snapshot_id",
            "availability_zone",
            "outpost_arn",
        ],
    }),
    iac_only: Some(IAC_ONLY),
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_spec_is_consistent() {
        super::SPEC.check().unwrap();
    }
}
