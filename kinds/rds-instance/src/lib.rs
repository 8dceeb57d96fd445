//! `AWS::RDS::DBInstance`: a DB instance reachable from the internet (Security Hub RDS.2).
//!
//! RDS applies `PubliclyAccessible=false` asynchronously, so the host polls the instance after
//! apply, within a bound, until it reports private.
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

pub const DESCRIBE_INSTANCE: CapabilityFunction = CapabilityFunction {
    interface: "rds-instance",
    function: "describe-instance",
    iam_action: "rds:DescribeDBInstances",
    access: Access::Read,
    scope: ResourceScope::FindingResource,
};

pub const SET_PUBLICLY_ACCESSIBLE: CapabilityFunction = CapabilityFunction {
    interface: "rds-instance",
    function: "set-publicly-accessible",
    iam_action: "rds:ModifyDBInstance",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SPEC: KindSpec = KindSpec {
    name: "AWS::RDS::DBInstance",
    security_hub_types: &["AwsRdsDbInstance"],
    wiz_types: &[],
    controls: &["RDS.2"],
    world: "rds-instance-fixer",
    interface: "rds-instance",
    functions: &[DESCRIBE_INSTANCE, SET_PUBLICLY_ACCESSIBLE],
    // DescribeDBInstances returns the instance's tags with it.
    tags_action: "rds:DescribeDBInstances",
    tags_scope: ResourceScope::FindingResource,
    arn_pattern: "arn:aws:rds:*:{account}:db:*",
    // A modification applied immediately still takes minutes: poll every 10 s for 10 minutes.
    verify: VerifyMode::Polled {
        attempts: 60,
        interval_ms: 10_000,
    },
    since: ContractVersion::V0_2,
    scaffold: Scaffold {
        module: "rds_instance",
        example_arn: "arn:aws:rds:us-east-1:123456789012:db:example-db",
        // Recorded once against moto with `salve fixer test --record`: the read session's
        // AssumeRole, which is all a stub that reads nothing needs.
        traffic: include_str!("../scaffold-traffic.json"),
        recorded_at: "2026-11-23T18:09:21.758Z",
    },
    terraform: Some(Terraform {
        resource_type: "aws_db_instance",
        id_attributes: &["identifier", "arn"],
        named_by_region: false,
        configured_by: &[],
        forces_replacement: &["identifier", "engine", "storage_encrypted"],
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
