//! The registry of resource kinds: the one list a new kind is added to.
//!
//! Each kind lives in its own crate under `kinds/` and declares everything about itself there (its
//! [`KindSpec`] and its [`KindHost`] implementation). Finding validation, ingest, AWS sessions,
//! the runtime's linkers, `salve iam`, `fixer new` and `fixer inspect` iterate this list instead
//! of matching on type names.

use salve_core::{
    AwsError, Binding, BoundResource, BoxFuture, Declared, FixerPre, KindDrift, KindHost, LiveOne,
    LiveRead, PlannedCall, ReadBack, SdkConfig, StateInstance,
};
use wasmtime::component::{InstancePre, Linker};

pub use salve_contract::{
    qualified_interface, Access, Arn, CapabilityFunction, ContractVersion, KindSpec, ResourceScope,
    VerifyMode, COMMON_INTERFACES, PACKAGE, PACKAGE_VERSION,
};

use crate::runtime::state::SandboxState;

/// Every kind salve can remediate. Adding a kind is one line here.
pub const KINDS: &[Kind] = &[
    kind::<salve_kind_s3_bucket::host::S3Bucket>(),
    kind::<salve_kind_security_group::host::SecurityGroup>(),
    kind::<salve_kind_ebs_encryption_by_default::host::EbsEncryptionByDefault>(),
    kind::<salve_kind_rds_instance::host::RdsInstance>(),
    kind::<salve_kind_network_acl::host::NetworkAcl>(),
    kind::<salve_kind_ebs_volume::host::EbsVolume>(),
];

/// One kind's entry: its spec, and its host behaviour as plain functions.
pub struct Kind {
    pub spec: &'static KindSpec,
    link: fn(&mut Linker<SandboxState>, ContractVersion) -> anyhow::Result<()>,
    fixer_pre_v0_2: FixerPreFn,
    read_back: ReadBackFn,
    aws_backend: fn(&SdkConfig, BoundResource<'_>, bool) -> Binding,
    resource_name: fn(&Arn<'_>, &str, &str) -> Result<String, String>,
    canonical_arn: fn(&Arn<'_>, &str, &str, &str) -> String,
    arn_for_id: fn(&str, bool, &str, &str) -> Option<String>,
    names_arn: fn(&Arn<'_>) -> bool,
    declared: fn(StateInstance<'_>) -> Result<Declared, String>,
    live: LiveFn,
}

type FixerPreFn =
    fn(InstancePre<SandboxState>) -> wasmtime::Result<Box<dyn FixerPre<SandboxState>>>;
type LiveFn = for<'a> fn(LiveRead<'a>) -> BoxFuture<'a, Result<Vec<LiveOne>, AwsError>>;
type ReadBackFn =
    for<'a> fn(&'a PlannedCall, &'a Binding) -> BoxFuture<'a, Result<ReadBack, AwsError>>;

const fn kind<K: KindHost + KindDrift>() -> Kind {
    Kind {
        spec: K::SPEC,
        link: link::<K>,
        fixer_pre_v0_2: K::fixer_pre_v0_2::<SandboxState>,
        read_back: K::read_back,
        aws_backend: K::aws_backend,
        resource_name: K::resource_name,
        canonical_arn: K::canonical_arn,
        arn_for_id: K::arn_for_id,
        names_arn: K::names_arn,
        declared: K::declared,
        live: K::live,
    }
}

fn link<K: KindHost>(
    linker: &mut Linker<SandboxState>,
    version: ContractVersion,
) -> anyhow::Result<()> {
    K::add_to_linker(linker, version, SandboxState::capabilities_mut)
}

impl Kind {
    /// Links the kind's capability interface of `version` (and nothing of any other kind).
    pub fn add_to_linker(
        &self,
        linker: &mut Linker<SandboxState>,
        version: ContractVersion,
    ) -> anyhow::Result<()> {
        (self.link)(linker, version)
    }

    /// The kind's contract 0.2.0 exports of a linked fixer.
    pub fn fixer_pre_v0_2(
        &self,
        pre: InstancePre<SandboxState>,
    ) -> wasmtime::Result<Box<dyn FixerPre<SandboxState>>> {
        (self.fixer_pre_v0_2)(pre)
    }

    /// Whether `call`'s declared outcome holds on the resource, read through `binding`.
    pub fn read_back<'a>(
        &self,
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        (self.read_back)(call, binding)
    }

    pub fn aws_backend(
        &self,
        session: &SdkConfig,
        resource: BoundResource<'_>,
        path_style: bool,
    ) -> Binding {
        (self.aws_backend)(session, resource, path_style)
    }

    pub fn resource_name(
        &self,
        arn: &Arn<'_>,
        account: &str,
        region: &str,
    ) -> Result<String, String> {
        (self.resource_name)(arn, account, region)
    }

    pub fn canonical_arn(&self, arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String {
        (self.canonical_arn)(arn, name, account, region)
    }

    pub fn arn_for_id(&self, id: &str, typed: bool, account: &str, region: &str) -> Option<String> {
        (self.arn_for_id)(id, typed, account, region)
    }

    pub fn names_arn(&self, arn: &Arn<'_>) -> bool {
        (self.names_arn)(arn)
    }

    /// The security-critical attributes a Terraform state declares for one instance.
    pub fn declared(&self, instance: StateInstance<'_>) -> Result<Declared, String> {
        (self.declared)(instance)
    }

    /// The live security-critical attributes of `read.ids`, batched as the kind's API allows.
    pub fn live<'a>(&self, read: LiveRead<'a>) -> BoxFuture<'a, Result<Vec<LiveOne>, AwsError>> {
        (self.live)(read)
    }
}

/// The kind whose CloudFormation type is `name`.
pub fn get(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.spec.name == name)
}

/// The spec of the kind whose CloudFormation type is `name`.
pub fn resource_type(name: &str) -> Option<&'static KindSpec> {
    get(name).map(|k| k.spec)
}

/// Every kind's spec.
pub fn specs() -> impl Iterator<Item = &'static KindSpec> {
    KINDS.iter().map(|k| k.spec)
}

/// Every capability function of every kind.
pub fn capability_functions() -> impl Iterator<Item = &'static CapabilityFunction> {
    specs().flat_map(|s| s.functions.iter())
}

/// The functions of one capability interface.
pub fn functions_of(interface: &str) -> impl Iterator<Item = &'static CapabilityFunction> + '_ {
    capability_functions().filter(move |f| f.interface == interface)
}

/// The capability function of `kind` that performs `iam_action`, if there is one.
pub fn function_for_action(
    kind: &KindSpec,
    iam_action: &str,
) -> Option<&'static CapabilityFunction> {
    kind.function_for_action(iam_action)
}

/// The kind a Security Hub (ASFF) resource type means.
pub fn for_security_hub_type(asff_type: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.spec.security_hub_types.contains(&asff_type))
}

/// The kind a Wiz resource type means.
pub fn for_wiz_type(wiz_type: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.spec.wiz_types.contains(&wiz_type))
}

/// The kind an ARN itself names.
pub fn for_arn(arn: &Arn<'_>) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.names_arn(arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_consistent_and_distinct() {
        for (i, k) in KINDS.iter().enumerate() {
            k.spec.check().unwrap();
            for other in &KINDS[..i] {
                assert_ne!(k.spec.name, other.spec.name);
                assert_ne!(k.spec.interface, other.spec.interface);
                assert_ne!(k.spec.world, other.spec.world);
            }
        }
    }

    #[test]
    fn lookup_by_action_respects_the_kind() {
        let s3 = resource_type("AWS::S3::Bucket").unwrap();
        let sg = resource_type("AWS::EC2::SecurityGroup").unwrap();
        assert!(function_for_action(s3, "s3:PutBucketPublicAccessBlock").is_some());
        assert!(function_for_action(sg, "s3:PutBucketPublicAccessBlock").is_none());
    }
}
