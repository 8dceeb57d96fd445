//! `AWS::EC2::SecurityGroup`: ingress rules that open admin ports to the world (Security Hub
//! EC2.13, EC2.14, EC2.53, EC2.54).
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

pub const DESCRIBE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "describe-ingress",
    iam_action: "ec2:DescribeSecurityGroups",
    access: Access::Read,
    // EC2's Describe calls have no resource-level permissions.
    scope: ResourceScope::AllResources,
};

pub const REVOKE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "revoke-ingress",
    iam_action: "ec2:RevokeSecurityGroupIngress",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const AUTHORIZE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "authorize-ingress",
    iam_action: "ec2:AuthorizeSecurityGroupIngress",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::EC2::SecurityGroup",
    security_hub_types: &["AwsEc2SecurityGroup"],
    wiz_types: &["SECURITY_GROUP", "FIREWALL"],
    controls: &["EC2.13", "EC2.14", "EC2.53", "EC2.54"],
    world: "security-group-fixer",
    interface: "security-group",
    functions: &[DESCRIBE_INGRESS, REVOKE_INGRESS, AUTHORIZE_INGRESS],
    tags_action: "ec2:DescribeSecurityGroups",
    tags_scope: ResourceScope::AllResources,
    arn_pattern: "arn:aws:ec2:*:{account}:security-group/*",
    verify: VerifyMode::Immediate,
    since: ContractVersion::V0_1,
    scaffold: Scaffold {
        module: "security_group",
        example_arn: "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0",
        // Recorded once against moto with `salve fixer test --record`: the read session's
        // AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-11-23T10:49:49.954Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_security_group",
        id_attributes: &["id", "arn"],
        named_by_region: false,
        configured_by: &[
            ("aws_security_group_rule", "security_group_id"),
            ("aws_vpc_security_group_ingress_rule", "security_group_id"),
        ],
        forces_replacement: &["name", "vpc_id"],
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
