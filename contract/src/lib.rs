//! The contract between salve's host, its SDK and its resource kinds.
//!
//! A resource kind declares a [`KindSpec`]: its CloudFormation type and the aliases sources use
//! for it, its capability interface, and the IAM action and resource scope of every capability
//! function. The link-time import check, the call-time gate, plan validation, the IAM documents
//! and the SDK's action names all read from these declarations, so a capability cannot be added
//! without saying what it may do and on which IAM resource.
//!
//! This crate has no dependencies: the SDK compiles it to wasm, and every kind depends on it.

mod arn;

pub use arn::{is_hex_id, parse_arn, partition_of, Arn};

/// The WIT package of the shared interfaces (and, in 0.1.0, of every interface).
pub const PACKAGE: &str = "salve:fixer";
/// The first contract version, frozen in `wit/since_v0.1.0/`.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// Interfaces every 0.1.0 world imports: the finding and the log, no resource access.
pub const COMMON_INTERFACES: &[&str] = &["types", "context"];

/// The fully qualified name of a 0.1.0 interface, as it appears in a component's imports.
pub fn qualified_interface(interface: &str) -> String {
    format!("{PACKAGE}/{interface}@{PACKAGE_VERSION}")
}

/// The contract versions the host loads. A released version is frozen; a fixer built against
/// it keeps loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// One package with every kind's interface; a plan names IAM actions.
    V0_1,
    /// One package per kind; a plan is typed calls with their arguments, and the host reads the
    /// resource back after apply.
    V0_2,
}

impl ContractVersion {
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_1, ContractVersion::V0_2];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }

    /// The shared interfaces every world of this version imports.
    pub fn common_interfaces(self) -> Vec<String> {
        let names: &[&str] = match self {
            ContractVersion::V0_1 => COMMON_INTERFACES,
            ContractVersion::V0_2 => &["types", "context", "results", "iac"],
        };
        names
            .iter()
            .map(|i| format!("{PACKAGE}/{i}@{}", self.as_str()))
            .collect()
    }

    /// `kind`'s capability interface, as a component imports it.
    pub fn capability_interface(self, kind: &KindSpec) -> String {
        match self {
            ContractVersion::V0_1 => qualified_interface(kind.interface),
            ContractVersion::V0_2 => format!("salve:{}/capability@0.2.0", kind.interface),
        }
    }

    /// The interface a fixer of `kind` exports.
    pub fn fixer_export(self, kind: &KindSpec) -> String {
        match self {
            ContractVersion::V0_1 => qualified_interface("fixer"),
            ContractVersion::V0_2 => format!("salve:{}/fixer@0.2.0", kind.interface),
        }
    }
}

/// Whether a capability function only reads or also changes the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Which IAM resource an action is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceScope {
    /// The finding's own resource ARN in a session policy; the kind's ARN pattern in the
    /// customer role.
    FindingResource,
    /// `"*"`: the action has no resource-level permissions in IAM (EC2's `Describe*` calls), so
    /// no policy can narrow it. The capability itself is still bound to the one resource, so the
    /// runtime narrows what IAM cannot.
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

impl CapabilityFunction {
    /// `interface.function`, as the gate, planned calls and the audit record name a call.
    pub fn call_name(&self) -> String {
        format!("{}.{}", self.interface, self.function)
    }

    /// Whether `name` is this function's [`call_name`](Self::call_name). The gate and the
    /// kinds ask this for every planned call, so it does not build the name.
    pub fn is_called(&self, name: &str) -> bool {
        name.strip_prefix(self.interface)
            .and_then(|rest| rest.strip_prefix('.'))
            == Some(self.function)
    }
}

/// How the host confirms a change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The resource reads back changed as soon as the write call returns.
    Immediate,
    /// The change is asynchronous: read back up to `attempts` times, `interval_ms` apart.
    Polled { attempts: u32, interval_ms: u64 },
}

/// What `salve fixer new` writes for a kind: the SDK module a stub imports, an example ARN, and
/// the recorded traffic (with its recording time) of the example case.
#[derive(Debug)]
pub struct Scaffold {
    pub module: &'static str,
    pub example_arn: &'static str,
    pub traffic: &'static str,
    pub recorded_at: &'static str,
}

/// Everything about one resource kind that needs no AWS SDK and no wasm runtime.
#[derive(Debug)]
pub struct KindSpec {
    /// CloudFormation-style name, as in findings: "AWS::S3::Bucket".
    pub name: &'static str,
    /// Security Hub (ASFF) resource types that mean this kind: "AwsS3Bucket".
    pub security_hub_types: &'static [&'static str],
    /// Wiz resource types that mean this kind: "BUCKET".
    pub wiz_types: &'static [&'static str],
    /// The controls the kind's shipped fixer remediates, for the README and `fixer new`.
    pub controls: &'static [&'static str],
    /// The WIT world a fixer of this kind is checked against.
    pub world: &'static str,
    /// The capability interface (the kind's only resource-bound import).
    pub interface: &'static str,
    /// Every function of that interface, with its IAM action.
    pub functions: &'static [CapabilityFunction],
    /// The read-only IAM action the host itself uses to read the resource's tags (for the
    /// eligibility metadata); not a capability a fixer can call.
    pub tags_action: &'static str,
    pub tags_scope: ResourceScope,
    /// Every resource of this kind in one account, for the customer role, which serves every
    /// finding; `{account}` is replaced by the account ID, or `*`.
    pub arn_pattern: &'static str,
    pub verify: VerifyMode,
    /// The first contract version with this kind; fixers of it built against an older one
    /// cannot exist.
    pub since: ContractVersion,
    pub scaffold: Scaffold,
    /// How Terraform's AWS provider declares the kind, so a finding can be traced to its code;
    /// `None` when salve does not trace it.
    pub terraform: Option<Terraform>,
    /// Why no change in the account can fix this kind (an EBS volume cannot be encrypted in
    /// place): the fix is only the Terraform edit. Its fixer exports `check` and `terraform`,
    /// and declares no write. `None`: the fixer plans and applies live calls.
    pub iac_only: Option<&'static str>,
}

/// How a kind appears in Terraform (the AWS provider), in its state and in its code.
#[derive(Debug)]
pub struct Terraform {
    /// The resource type that declares the resource: "aws_s3_bucket".
    pub resource_type: &'static str,
    /// The state attributes that name the resource, compared with the finding's resource name
    /// and ARN: "bucket", "id", "arn".
    pub id_attributes: &'static [&'static str],
    /// The provider names the resource by its region (a per-region setting such as
    /// `aws_ebs_encryption_by_default`): the id attributes are compared with the finding's
    /// region too.
    pub named_by_region: bool,
    /// Resource types that configure the resource from outside, with the attribute that refers
    /// to it: `("aws_s3_bucket_public_access_block", "bucket")`.
    pub configured_by: &'static [(&'static str, &'static str)],
    /// Attributes of `resource_type` whose change destroys and recreates the resource.
    pub forces_replacement: &'static [&'static str],
}

impl KindSpec {
    /// The contract versions a fixer of this kind can be built against.
    pub fn contracts(&self) -> impl Iterator<Item = ContractVersion> + '_ {
        ContractVersion::ALL
            .into_iter()
            .filter(|v| *v >= self.since)
    }

    /// The ARN pattern for the resources of this kind in `account` (`None`: any account).
    pub fn arn_pattern(&self, account: Option<&str>) -> String {
        self.arn_pattern
            .replace("{account}", account.unwrap_or("*"))
    }

    /// The capability function of this kind that performs `iam_action`, if there is one.
    pub fn function_for_action(&self, iam_action: &str) -> Option<&'static CapabilityFunction> {
        self.functions.iter().find(|f| f.iam_action == iam_action)
    }

    /// The host's tag read is a call of its own (S3's `GetBucketTagging`), not the describe a
    /// fixer's `check` already made (EC2 and RDS return tags with the resource). Only such a
    /// kind gains from reading a read group's tags in one Tagging API call.
    pub fn tags_cost_a_call(&self) -> bool {
        self.function_for_action(self.tags_action).is_none()
    }

    /// The function named `function` (its WIT name), if the kind has one.
    pub fn function(&self, function: &str) -> Option<&'static CapabilityFunction> {
        self.functions.iter().find(|f| f.function == function)
    }

    /// Checks what the type system cannot: every function belongs to this kind's interface, and
    /// no IAM action is listed twice.
    pub fn check(&self) -> Result<(), String> {
        let writes = self.functions.iter().any(|f| f.access == Access::Write);
        match (self.iac_only, writes) {
            (Some(_), true) => {
                return Err(format!(
                    "{}: an IaC-only kind declares no write function",
                    self.name
                ))
            }
            (Some(_), false) if self.terraform.is_none() => {
                return Err(format!(
                    "{}: an IaC-only kind needs its Terraform resource type",
                    self.name
                ))
            }
            (None, false) => {
                return Err(format!(
                    "{}: a kind with no write function is IaC-only; say why in iac_only",
                    self.name
                ))
            }
            _ => {}
        }
        for (i, f) in self.functions.iter().enumerate() {
            if f.interface != self.interface {
                return Err(format!(
                    "{}: {} is in interface {}, not {}",
                    self.name, f.function, f.interface, self.interface
                ));
            }
            if self.functions[..i].iter().any(|g| g.function == f.function) {
                return Err(format!(
                    "{}: {} ({}) is listed twice",
                    self.name, f.function, f.iam_action
                ));
            }
            // Two functions may share an action (S3 authorizes DeletePublicAccessBlock with
            // the put's action), but then an action names one access and one scope, so a
            // session policy or a 0.1 plan that names the action means the same thing.
            if let Some(g) = self.functions[..i].iter().find(|g| {
                g.iam_action == f.iam_action && (g.access != f.access || g.scope != f.scope)
            }) {
                return Err(format!(
                    "{}: {} and {} share {} but differ in access or scope",
                    self.name, g.function, f.function, f.iam_action
                ));
            }
        }
        Ok(())
    }
}
