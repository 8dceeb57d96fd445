//! `AWS::EC2::NetworkAcl`: network ACLs that allow ingress from `0.0.0.0/0` or `::/0` to admin
//! ports (Security Hub EC2.21).
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

pub const DESCRIBE_ENTRIES: CapabilityFunction = CapabilityFunction {
    interface: "network-acl",
    function: "describe-entries",
    iam_action: "ec2:DescribeNetworkAcls",
    access: Access::Read,
    // EC2's Describe calls have no resource-level permissions.
    scope: ResourceScope::AllResources,
};

pub const DELETE_INGRESS_ENTRY: CapabilityFunction = CapabilityFunction {
    interface: "network-acl",
    function: "delete-ingress-entry",
    iam_action: "ec2:DeleteNetworkAclEntry",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const REPLACE_INGRESS_ENTRY: CapabilityFunction = CapabilityFunction {
    interface: "network-acl",
    function: "replace-ingress-entry",
    iam_action: "ec2:ReplaceNetworkAclEntry",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

/// Undoes a fix that deleted an entry.
pub const CREATE_INGRESS_ENTRY: CapabilityFunction = CapabilityFunction {
    interface: "network-acl",
    function: "create-ingress-entry",
    iam_action: "ec2:CreateNetworkAclEntry",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::EC2::NetworkAcl",
    security_hub_types: &["AwsEc2NetworkAcl"],
    wiz_types: &[],
    controls: &["EC2.21"],
    world: "network-acl-fixer",
    interface: "network-acl",
    functions: &[
        DESCRIBE_ENTRIES,
        DELETE_INGRESS_ENTRY,
        REPLACE_INGRESS_ENTRY,
        CREATE_INGRESS_ENTRY,
    ],
    tags_action: "ec2:DescribeNetworkAcls",
    tags_scope: ResourceScope::AllResources,
    arn_pattern: "arn:aws:ec2:*:{account}:network-acl/*",
    verify: VerifyMode::Immediate,
    since: ContractVersion::V0_2,
    scaffold: Scaffold {
        module: "network_acl",
        example_arn: "arn:aws:ec2:us-east-1:123456789012:network-acl/acl-0123456789abcdef0",
        // Recorded once against moto with `salve fixer test --record`: the read session's
        // AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-11-23T18:30:31.903Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_network_acl",
        id_attributes: &["id", "arn"],
        named_by_region: false,
        configured_by: &[("aws_network_acl_rule", "network_acl_id")],
        forces_replacement: &["vpc_id"],
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
