//! The `ebs-volume` capability, bound to the finding's one volume, and its backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use salve_contract::{is_hex_id, Arn, KindSpec};
use salve_core::{
    internal_error, tags_from, to_aws_error, AwsError, Binding, BoundResource, BoxFuture,
    Capabilities, DescribedTags, FixerError, KindHost, PlannedCall, ReadBack, SdkConfig, TagRead,
    Tags,
};

use crate::{DESCRIBE_VOLUME, IAC_ONLY, SPEC};

/// Contract 0.2.0, the first to have this kind.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:ebs-volume/ebs-volume-fixer-complete",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "salve:fixer/types@0.2.0": salve_core::bindings::salve::fixer::types,
            "salve:fixer/context@0.2.0": salve_core::v0_2::salve::fixer::context,
            "salve:fixer/iac@0.2.0": salve_core::v0_2::salve::fixer::iac,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use v0_2::exports::salve::ebs_volume::fixer as typed;
use v0_2::exports::salve::ebs_volume::terraform as tf;
use v0_2::salve::ebs_volume::capability;
pub use v0_2::salve::ebs_volume::capability::Volume;

salve_core::fixer_exports_v0_2_iac_only! {
    typed: typed,
    terraform: tf,
    reason: IAC_ONLY,
}

/// The kind's entry in the host's registry.
pub struct EbsVolume;

impl KindHost for EbsVolume {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_2: capability,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        _binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        // The kind declares no write, so the gate lets none through and nothing is read back.
        Box::pin(async move {
            Err(internal_error(&format!(
                "{} has no write to read back, yet {} was planned",
                SPEC.name, call.function
            )))
        })
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, _path_style: bool) -> Binding {
        bind(Arc::new(AwsEbsVolume {
            client: aws_sdk_ec2::Client::new(session),
            volume_id: resource.name.to_string(),
            described: DescribedTags::default(),
        }))
    }

    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String> {
        let Some(id) = arn
            .resource
            .strip_prefix("volume/")
            .filter(|id| is_hex_id(id, "vol-"))
        else {
            return Err(format!(
                "an {} ARN looks like arn:aws:ec2:<region>:<account>:volume/vol-<hex>",
                SPEC.name
            ));
        };
        arn.require_scope("ec2", account, region)?;
        Ok(id.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String {
        format!("arn:{}:ec2:{region}:{account}:volume/{name}", arn.partition)
    }

    fn arn_for_id(id: &str, _typed: bool, account: &str, region: &str) -> Option<String> {
        // The `vol-` prefix says what the ID is, whatever type the source named.
        is_hex_id(id, "vol-").then(|| {
            format!(
                "arn:{}:ec2:{region}:{account}:volume/{id}",
                salve_contract::partition_of(region)
            )
        })
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "ec2" && arn.resource.starts_with("volume/")
    }
}

salve_core::kind_binding!(EbsVolumeBinding, EbsVolumeBackend, SPEC);

/// What the capability needs from EC2 for one volume.
pub trait EbsVolumeBackend: Send + Sync {
    fn describe(&self) -> BoxFuture<'_, Result<Volume, AwsError>>;
    /// The volume's tags (ec2:DescribeVolumes), read by the host for eligibility metadata.
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
}

/// The real backend: the AWS SDK's EC2 client and the one volume it may read.
pub struct AwsEbsVolume {
    client: aws_sdk_ec2::Client,
    volume_id: String,
    described: DescribedTags,
}

impl AwsEbsVolume {
    async fn read(&self) -> Result<aws_sdk_ec2::types::Volume, AwsError> {
        let out = self
            .client
            .describe_volumes()
            .volume_ids(&self.volume_id)
            .send()
            .await
            .map_err(to_aws_error)?;
        self.described.pick(
            out.volumes(),
            &self.volume_id,
            |v| v.volume_id(),
            tags_of,
            ("InvalidVolume.NotFound", "volume"),
        )
    }
}

/// The tags EC2 returned with the volume.
fn tags_of(volume: &aws_sdk_ec2::types::Volume) -> Tags {
    tags_from(volume.tags().iter().map(|t| (t.key(), t.value())))
}

/// What a fixer may know of a volume as EC2 describes it.
pub fn volume_of(v: &aws_sdk_ec2::types::Volume) -> Volume {
    Volume {
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        attached_to: v
            .attachments()
            .iter()
            .filter_map(|a| a.instance_id().map(str::to_string))
            .collect(),
    }
}

impl EbsVolumeBackend for AwsEbsVolume {
    fn describe(&self) -> BoxFuture<'_, Result<Volume, AwsError>> {
        Box::pin(async move { Ok(volume_of(&self.read().await?)) })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        // read() keeps the tags it saw; they are read again only if none are kept.
        Box::pin(self.described.read_or(self.read()))
    }
}

impl capability::Host for Capabilities {
    async fn describe_volume(&mut self) -> wasmtime::Result<Result<Volume, FixerError>> {
        let backend = match self.backend::<EbsVolumeBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.call(&DESCRIBE_VOLUME, None, backend.describe()).await)
    }
}

/// In memory, for benchmarks and offline tests; counts reads so a test can prove what reached
/// the "account".
pub struct InMemoryEbsVolume {
    pub volume: Mutex<Volume>,
    pub tags: Tags,
    pub reads: AtomicUsize,
}

impl InMemoryEbsVolume {
    pub fn new(encrypted: bool) -> Self {
        InMemoryEbsVolume {
            volume: Mutex::new(Volume {
                encrypted,
                kms_key_id: None,
                attached_to: Vec::new(),
            }),
            tags: Tags::new(),
            reads: AtomicUsize::new(0),
        }
    }
}

impl EbsVolumeBackend for InMemoryEbsVolume {
    fn describe(&self) -> BoxFuture<'_, Result<Volume, AwsError>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.volume
                .lock()
                .map(|v| v.clone())
                .map_err(|_| internal_error("the in-memory volume's lock is poisoned"))
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone().into()) })
    }
}
