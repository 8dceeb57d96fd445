//! The one table that maps every capability function to the IAM action it performs.
//!
//! The link-time import check, the call-time gate, plan validation and the IAM session policies
//! all read from here, so a capability cannot be added without saying what it may do and on
//! which IAM resource.

/// Whether a capability function only reads or also changes the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Read,
    Write,
}

/// Which IAM resource an action is granted on in a session policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceScope {
    /// The finding's own resource ARN.
    FindingResource,
    /// `"*"`: the action has no resource-level permissions in IAM (EC2's `Describe*` calls), so
    /// the session policy cannot narrow it. The capability itself is still bound to the one
    /// resource, so the runtime narrows what IAM cannot.
    AllResources,
}

/// One function of one capability interface.
#[derive(Debug)]
pub struct CapabilityFunction {
    /// The interface's WIT name without package, e.g. "s3-bucket".
    pub interface: &'static str,
    /// The function's WIT name, e.g. "put-public-access-block".
    pub function: &'static str,
    pub iam_action: &'static str,
    pub access: Access,
    pub scope: ResourceScope,
}

/// A resource type salve can remediate, and the capability interface bound to it.
#[derive(Debug)]
pub struct ResourceType {
    /// CloudFormation-style name, as in findings: "AWS::S3::Bucket".
    pub name: &'static str,
    /// The WIT world a fixer of this type is checked against.
    pub world: &'static str,
    /// The capability interface of this type (its only resource-bound import).
    pub interface: &'static str,
    /// The read-only IAM action the host itself uses to read the resource's tags (for the
    /// eligibility metadata); not a capability a fixer can call.
    pub tags_action: &'static str,
    pub tags_scope: ResourceScope,
    /// Every resource of this type in one account, for the customer role, which serves every
    /// finding; `{account}` is replaced by the account ID, or `*`.
    pub arn_pattern: &'static str,
}

impl ResourceType {
    /// The ARN pattern for the resources of this type in `account` (`None`: any account).
    pub fn arn_pattern(&self, account: Option<&str>) -> String {
        self.arn_pattern
            .replace("{account}", account.unwrap_or("*"))
    }
}

/// The WIT package every salve interface belongs to.
pub const PACKAGE: &str = "salve:fixer";
/// The version of that package this host implements.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// Interfaces every world imports: the finding and the log, no resource access.
pub const COMMON_INTERFACES: &[&str] = &["types", "context"];

pub const S3_BUCKET: ResourceType = ResourceType {
    name: "AWS::S3::Bucket",
    world: "s3-bucket-fixer",
    interface: "s3-bucket",
    tags_action: "s3:GetBucketTagging",
    tags_scope: ResourceScope::FindingResource,
    // Bucket ARNs carry no account; ExpectedBucketOwner on every call is what pins the account.
    arn_pattern: "arn:aws:s3:::*",
};

pub const SECURITY_GROUP: ResourceType = ResourceType {
    name: "AWS::EC2::SecurityGroup",
    world: "security-group-fixer",
    interface: "security-group",
    tags_action: "ec2:DescribeSecurityGroups",
    tags_scope: ResourceScope::AllResources,
    arn_pattern: "arn:aws:ec2:*:{account}:security-group/*",
};

pub const RESOURCE_TYPES: &[&ResourceType] = &[&S3_BUCKET, &SECURITY_GROUP];

pub const S3_GET_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
    interface: "s3-bucket",
    function: "get-public-access-block",
    iam_action: "s3:GetBucketPublicAccessBlock",
    access: Access::Read,
    scope: ResourceScope::FindingResource,
};

pub const S3_PUT_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
    interface: "s3-bucket",
    function: "put-public-access-block",
    iam_action: "s3:PutBucketPublicAccessBlock",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SG_DESCRIBE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "describe-ingress",
    iam_action: "ec2:DescribeSecurityGroups",
    access: Access::Read,
    scope: ResourceScope::AllResources,
};

pub const SG_REVOKE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "revoke-ingress",
    iam_action: "ec2:RevokeSecurityGroupIngress",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

pub const SG_AUTHORIZE_INGRESS: CapabilityFunction = CapabilityFunction {
    interface: "security-group",
    function: "authorize-ingress",
    iam_action: "ec2:AuthorizeSecurityGroupIngress",
    access: Access::Write,
    scope: ResourceScope::FindingResource,
};

/// Every capability function the host implements.
pub const CAPABILITY_FUNCTIONS: &[&CapabilityFunction] = &[
    &S3_GET_PUBLIC_ACCESS_BLOCK,
    &S3_PUT_PUBLIC_ACCESS_BLOCK,
    &SG_DESCRIBE_INGRESS,
    &SG_REVOKE_INGRESS,
    &SG_AUTHORIZE_INGRESS,
];

/// The fully qualified name of a salve interface, as it appears in a component's imports.
pub fn qualified_interface(interface: &str) -> String {
    format!("{PACKAGE}/{interface}@{PACKAGE_VERSION}")
}

pub fn resource_type(name: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES.iter().copied().find(|t| t.name == name)
}

/// The functions of one capability interface.
pub fn functions_of(interface: &str) -> impl Iterator<Item = &'static CapabilityFunction> + '_ {
    CAPABILITY_FUNCTIONS
        .iter()
        .copied()
        .filter(move |f| f.interface == interface)
}

/// The capability function of `resource_type` that performs `iam_action`, if there is one.
pub fn function_for_action(
    resource_type: &ResourceType,
    iam_action: &str,
) -> Option<&'static CapabilityFunction> {
    functions_of(resource_type.interface).find(|f| f.iam_action == iam_action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_belongs_to_a_resource_type() {
        for f in CAPABILITY_FUNCTIONS {
            assert!(
                RESOURCE_TYPES.iter().any(|t| t.interface == f.interface),
                "{} has no resource type",
                f.function
            );
        }
    }

    #[test]
    fn actions_are_unique_per_interface() {
        for t in RESOURCE_TYPES {
            let mut actions: Vec<_> = functions_of(t.interface).map(|f| f.iam_action).collect();
            let n = actions.len();
            actions.dedup();
            assert_eq!(n, actions.len());
        }
    }

    #[test]
    fn lookup_by_action_respects_the_resource_type() {
        assert!(function_for_action(&S3_BUCKET, "s3:PutBucketPublicAccessBlock").is_some());
        assert!(function_for_action(&SECURITY_GROUP, "s3:PutBucketPublicAccessBlock").is_none());
    }
}
