//! `AWS::S3::Bucket`: a bucket's public access block (Security Hub S3.8).
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

pub const GET_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
    interface: "s3-bucket",
    function: "get-public-access-block",
    iam_action: "s3:GetBucketPublicAccessBlock",
    access: Access::Read,
    scope: ResourceScope::FindingResource,
};

pub const PUT_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
    interface: "s3-bucket",
    function: "put-public-access-block",
    iam_action: "s3:PutBucketPublicAccessBlock",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

/// Undoes a fix on a bucket that had no configuration. S3 authorizes DeletePublicAccessBlock
/// with `s3:PutBucketPublicAccessBlock`; there is no delete action.
pub const DELETE_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
    interface: "s3-bucket",
    function: "delete-public-access-block",
    iam_action: "s3:PutBucketPublicAccessBlock",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::S3::Bucket",
    security_hub_types: &["AwsS3Bucket"],
    wiz_types: &["BUCKET"],
    controls: &["S3.8"],
    world: "s3-bucket-fixer",
    interface: "s3-bucket",
    functions: &[
        GET_PUBLIC_ACCESS_BLOCK,
        PUT_PUBLIC_ACCESS_BLOCK,
        DELETE_PUBLIC_ACCESS_BLOCK,
    ],
    tags_action: "s3:GetBucketTagging",
    tags_scope: ResourceScope::FindingResource,
    // Bucket ARNs carry no account; ExpectedBucketOwner on every call is what pins the account.
    arn_pattern: "arn:aws:s3:::*",
    verify: VerifyMode::Immediate,
    since: ContractVersion::V0_1,
    scaffold: Scaffold {
        module: "s3_bucket",
        example_arn: "arn:aws:s3:::example-bucket",
        // The example case's traffic, recorded once against moto with `salve fixer test
        // --record`: the read session's AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-11-23T10:49:09.741Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_s3_bucket",
        id_attributes: &["bucket", "arn"],
        named_by_region: false,
        configured_by: &[("aws_s3_bucket_public_access_block", "bucket")],
        forces_replacement: &["bucket"],
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
