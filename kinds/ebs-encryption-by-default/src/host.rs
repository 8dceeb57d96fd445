//! The `ebs-encryption-by-default` capability, bound to the finding's account and region, and its
//! backends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use salve_contract::{Arn, CapabilityFunction, KindSpec};
use salve_core::{
    internal_error, to_aws_error, AwsError, Binding, BoundResource, BoxFuture, Capabilities,
    FixerError, KindHost, ObservedRead, PlannedCall, ReadBack, SdkConfig, TagRead, Tags,
};
use serde_json::{json, Value};

use crate::{
    ARN_RESOURCE, DISABLE_ENCRYPTION_BY_DEFAULT, ENABLE_ENCRYPTION_BY_DEFAULT,
    GET_ENCRYPTION_BY_DEFAULT, SPEC,
};

/// Contract 0.2.0, the first to have this kind.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:ebs-encryption-by-default/ebs-encryption-by-default-fixer-complete",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "salve:fixer/types@0.2.0": salve_core::bindings::salve::fixer::types,
            "salve:fixer/context@0.2.0": salve_core::v0_2::salve::fixer::context,
            "salve:fixer/results@0.2.0": salve_core::v0_2::salve::fixer::results,
            "salve:fixer/iac@0.2.0": salve_core::v0_2::salve::fixer::iac,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use v0_2::exports::salve::ebs_encryption_by_default::fixer as typed;
use v0_2::exports::salve::ebs_encryption_by_default::rollback as undo;
use v0_2::exports::salve::ebs_encryption_by_default::terraform as tf;
use v0_2::salve::ebs_encryption_by_default::capability;

/// A typed call as the host plans it: the function, and no arguments.
fn host_call(call: typed::Call) -> (&'static CapabilityFunction, Value) {
    match call {
        typed::Call::EnableEncryptionByDefault => (&ENABLE_ENCRYPTION_BY_DEFAULT, Value::Null),
        typed::Call::DisableEncryptionByDefault => (&DISABLE_ENCRYPTION_BY_DEFAULT, Value::Null),
    }
}

/// The setting a planned call leaves.
fn planned_setting(call: &PlannedCall) -> Result<bool, String> {
    if ENABLE_ENCRYPTION_BY_DEFAULT.is_called(&call.function) {
        Ok(true)
    } else if DISABLE_ENCRYPTION_BY_DEFAULT.is_called(&call.function) {
        Ok(false)
    } else {
        Err(format!(
            "{} is not an ebs-encryption-by-default write",
            call.function
        ))
    }
}

fn guest_call(call: &PlannedCall) -> Result<typed::Call, String> {
    Ok(if planned_setting(call)? {
        typed::Call::EnableEncryptionByDefault
    } else {
        typed::Call::DisableEncryptionByDefault
    })
}

salve_core::fixer_exports_v0_2! {
    typed: typed,
    rollback: undo,
    terraform: tf,
    host_call: host_call,
    guest_call: guest_call,
}

/// The kind's entry in the host's registry.
pub struct EbsEncryptionByDefault;

impl KindHost for EbsEncryptionByDefault {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_2: capability,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        Box::pin(async move {
            let setting = bound(binding)?;
            let expected = planned_setting(call).map_err(|e| internal_error(&e))?;
            let enabled = setting.get().await?;
            Ok(ReadBack {
                holds: enabled == expected,
                expected: json!({ "enabled": expected }),
                actual: json!({ "enabled": enabled }),
                observed: ObservedRead::of(&GET_ENCRYPTION_BY_DEFAULT, &enabled),
            })
        })
    }

    fn aws_backend(
        session: &SdkConfig,
        _resource: BoundResource<'_>,
        _path_style: bool,
    ) -> Binding {
        // The session is already in the finding's region: the setting is that region's.
        bind(Arc::new(AwsEbsEncryption(aws_sdk_ec2::Client::new(
            session,
        ))))
    }

    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String> {
        if arn.service != "ec2" || arn.resource != ARN_RESOURCE {
            return Err(format!(
                "an {} ARN looks like arn:aws:ec2:<region>:<account>:{ARN_RESOURCE}",
                SPEC.name
            ));
        }
        arn.require_scope("ec2", account, region)?;
        Ok(account.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, _name: &str, account: &str, region: &str) -> String {
        format!(
            "arn:{}:ec2:{region}:{account}:{ARN_RESOURCE}",
            arn.partition
        )
    }

    fn arn_for_id(id: &str, typed: bool, account: &str, region: &str) -> Option<String> {
        // Security Hub names the account: `AWS::::Account:<id>`. Only a source that named this
        // kind may turn that into its ARN; the account must be the finding's own.
        let named = id.strip_prefix("AWS::::Account:")?;
        (typed && named == account).then(|| {
            format!(
                "arn:{}:ec2:{region}:{account}:{ARN_RESOURCE}",
                salve_contract::partition_of(region)
            )
        })
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "ec2" && arn.resource == ARN_RESOURCE
    }
}

/// What the capability needs from EC2 for one account and region.
pub trait EbsEncryptionBackend: Send + Sync {
    fn get(&self) -> BoxFuture<'_, Result<bool, AwsError>>;
    fn enable(&self) -> BoxFuture<'_, Result<(), AwsError>>;
    fn disable(&self) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The setting has no tags; the payload's tags are the metadata.
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async { Ok(Tags::new().into()) })
    }
}

salve_core::kind_binding!(EbsEncryptionBinding, EbsEncryptionBackend, SPEC);

/// The real backend: the AWS SDK's EC2 client in the finding's region.
pub struct AwsEbsEncryption(pub aws_sdk_ec2::Client);

impl EbsEncryptionBackend for AwsEbsEncryption {
    fn get(&self) -> BoxFuture<'_, Result<bool, AwsError>> {
        Box::pin(async move {
            let out = self
                .0
                .get_ebs_encryption_by_default()
                .send()
                .await
                .map_err(to_aws_error)?;
            Ok(out.ebs_encryption_by_default().unwrap_or(false))
        })
    }

    fn enable(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .enable_ebs_encryption_by_default()
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn disable(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .disable_ebs_encryption_by_default()
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }
}

impl capability::Host for Capabilities {
    async fn get_encryption_by_default(&mut self) -> wasmtime::Result<Result<bool, FixerError>> {
        let backend = match self.backend::<EbsEncryptionBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(&GET_ENCRYPTION_BY_DEFAULT, None, backend.get())
            .await)
    }

    async fn enable_encryption_by_default(&mut self) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = match self.backend::<EbsEncryptionBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        // No arguments: the planned call's `args` are null too.
        Ok(self
            .call(
                &ENABLE_ENCRYPTION_BY_DEFAULT,
                Some(Value::Null),
                backend.enable(),
            )
            .await)
    }

    async fn disable_encryption_by_default(&mut self) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = match self.backend::<EbsEncryptionBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(
                &DISABLE_ENCRYPTION_BY_DEFAULT,
                Some(Value::Null),
                backend.disable(),
            )
            .await)
    }
}

/// In memory, for benchmarks and offline tests; counts writes so a test can prove what reached
/// the "account".
#[derive(Default)]
pub struct InMemoryEbsEncryption {
    pub enabled: AtomicBool,
    pub writes: AtomicUsize,
}

impl EbsEncryptionBackend for InMemoryEbsEncryption {
    fn get(&self) -> BoxFuture<'_, Result<bool, AwsError>> {
        Box::pin(async move { Ok(self.enabled.load(Ordering::SeqCst)) })
    }

    fn enable(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.enabled.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    fn disable(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.enabled.store(false, Ordering::SeqCst);
            Ok(())
        })
    }
}
