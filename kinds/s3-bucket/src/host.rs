//! The `s3-bucket` capability, bound to the finding's bucket, and its backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use salve_contract::{Arn, CapabilityFunction, KindSpec};
use salve_core::{
    internal_error, to_aws_error, AwsError, Binding, BoundResource, BoxFuture, Capabilities,
    FixerError, KindHost, ObservedRead, PlannedCall, ReadBack, SdkConfig, TagRead, Tags,
};
use serde_json::{json, Value};

use crate::{DELETE_PUBLIC_ACCESS_BLOCK, GET_PUBLIC_ACCESS_BLOCK, PUT_PUBLIC_ACCESS_BLOCK, SPEC};
use bindings::salve::fixer::s3_bucket::Host;
pub use bindings::salve::fixer::s3_bucket::PublicAccessBlock;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/since_v0.1.0",
        inline: "
            package salve:kind-s3-bucket;
            world kind { import salve:fixer/s3-bucket@0.1.0; }
        ",
        world: "salve:kind-s3-bucket/kind",
        imports: { default: async | trappable },
        with: { "salve:fixer/types": salve_core::bindings::salve::fixer::types },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// Contract 0.2.0: this kind's own package, with a typed plan.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.2.0", "wit"],
        world: "salve:s3-bucket/s3-bucket-fixer-complete",
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

use v0_2::exports::salve::s3_bucket::fixer as typed;
use v0_2::exports::salve::s3_bucket::rollback as undo;
use v0_2::exports::salve::s3_bucket::terraform as tf;
type PublicAccessBlockV0_2 = v0_2::salve::s3_bucket::capability::PublicAccessBlock;

impl From<PublicAccessBlockV0_2> for PublicAccessBlock {
    fn from(c: PublicAccessBlockV0_2) -> PublicAccessBlock {
        PublicAccessBlock {
            block_public_acls: c.block_public_acls,
            ignore_public_acls: c.ignore_public_acls,
            block_public_policy: c.block_public_policy,
            restrict_public_buckets: c.restrict_public_buckets,
        }
    }
}

impl From<PublicAccessBlock> for PublicAccessBlockV0_2 {
    fn from(c: PublicAccessBlock) -> PublicAccessBlockV0_2 {
        PublicAccessBlockV0_2 {
            block_public_acls: c.block_public_acls,
            ignore_public_acls: c.ignore_public_acls,
            block_public_policy: c.block_public_policy,
            restrict_public_buckets: c.restrict_public_buckets,
        }
    }
}

/// A typed call as the host plans it: the function and the JSON the capability records for it.
fn host_call(call: typed::Call) -> (&'static CapabilityFunction, Value) {
    match call {
        typed::Call::PutPublicAccessBlock(c) => {
            (&PUT_PUBLIC_ACCESS_BLOCK, json!(PublicAccessBlock::from(c)))
        }
        typed::Call::DeletePublicAccessBlock => (&DELETE_PUBLIC_ACCESS_BLOCK, Value::Null),
    }
}

/// The configuration a planned call leaves: a put's, or none after a delete.
fn planned_config(call: &PlannedCall) -> Result<Option<PublicAccessBlock>, String> {
    if DELETE_PUBLIC_ACCESS_BLOCK.is_called(&call.function) {
        return Ok(None);
    }
    if !PUT_PUBLIC_ACCESS_BLOCK.is_called(&call.function) {
        return Err(format!("{} is not an s3-bucket write", call.function));
    }
    serde::Deserialize::deserialize(&call.args)
        .map(Some)
        .map_err(|e| format!("{}: {e}", call.function))
}

fn guest_call(call: &PlannedCall) -> Result<typed::Call, String> {
    Ok(match planned_config(call)? {
        Some(config) => typed::Call::PutPublicAccessBlock(config.into()),
        None => typed::Call::DeletePublicAccessBlock,
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
pub struct S3Bucket;

impl KindHost for S3Bucket {
    const SPEC: &'static KindSpec = &SPEC;

    salve_core::kind_host_bindings! {
        v0_1: bindings::salve::fixer::s3_bucket,
        v0_2: v0_2::salve::s3_bucket::capability,
    }

    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>> {
        Box::pin(async move {
            let bucket = bound(binding)?;
            let expected = planned_config(call).map_err(|e| internal_error(&e))?;
            let actual = bucket.get_public_access_block().await?;
            Ok(ReadBack {
                holds: actual == expected,
                expected: json!(expected),
                actual: json!(actual),
                observed: ObservedRead::of(&GET_PUBLIC_ACCESS_BLOCK, &actual),
            })
        })
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, path_style: bool) -> Binding {
        bind(Arc::new(AwsS3Bucket::new(
            s3_client(session, path_style),
            resource.name.to_string(),
            resource.account_id.to_string(),
        )))
    }

    fn resource_name(arn: &Arn<'_>, _account: &str, _region: &str) -> Result<String, String> {
        if !arn.region.is_empty() || !arn.account.is_empty() {
            return Err(
                "an AWS::S3::Bucket ARN has an empty region and account: arn:aws:s3:::bucket-name"
                    .into(),
            );
        }
        if arn.service != "s3" || arn.resource.contains('/') {
            return Err("an AWS::S3::Bucket ARN looks like arn:aws:s3:::bucket-name".into());
        }
        if !is_bucket_name(arn.resource) {
            return Err(format!("{:?} is not a valid bucket name", arn.resource));
        }
        Ok(arn.resource.to_string())
    }

    fn canonical_arn(arn: &Arn<'_>, name: &str, _account: &str, _region: &str) -> String {
        format!("arn:{}:s3:::{name}", arn.partition)
    }

    fn arn_for_id(id: &str, typed: bool, _account: &str, region: &str) -> Option<String> {
        // A bare bucket name looks like many other IDs; only a source that named the kind says
        // it is one. The name itself is checked when the finding is validated.
        typed.then(|| format!("arn:{}:s3:::{id}", salve_contract::partition_of(region)))
    }

    fn names_arn(arn: &Arn<'_>) -> bool {
        arn.service == "s3" && !arn.resource.contains('/')
    }
}

fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

salve_core::kind_binding!(S3BucketBinding, S3BucketBackend, SPEC);

/// What the capability needs from S3 for one bucket, so tests and benchmarks can swap AWS out.
pub trait S3BucketBackend: Send + Sync {
    fn get_public_access_block(&self)
        -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>>;
    fn put_public_access_block(
        &self,
        config: PublicAccessBlock,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    fn delete_public_access_block(&self) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The bucket's tags (s3:GetBucketTagging), read by the host for eligibility metadata.
    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
}

/// An S3 client for `session`. With an endpoint override (a local stand-in), buckets are
/// addressed by path, since stand-ins do not serve them by virtual host.
pub fn s3_client(session: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(session);
    if path_style {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// The real backend: the AWS SDK's S3 client and the one bucket it may touch.
///
/// Every call names the account the finding says owns the bucket (`ExpectedBucketOwner`): bucket
/// names are global, so a finding for one account must never act on a same-named bucket that
/// another account owns, even through a session that could reach it.
pub struct AwsS3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    owner: String,
}

impl AwsS3Bucket {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, owner: String) -> AwsS3Bucket {
        AwsS3Bucket {
            client,
            bucket,
            owner,
        }
    }
}

impl S3BucketBackend for AwsS3Bucket {
    fn get_public_access_block(
        &self,
    ) -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>> {
        Box::pin(async move {
            let result = self
                .client
                .get_public_access_block()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .send()
                .await;
            match result {
                Ok(out) => Ok(out
                    .public_access_block_configuration()
                    .map(|c| PublicAccessBlock {
                        block_public_acls: c.block_public_acls().unwrap_or(false),
                        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                        block_public_policy: c.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                    })),
                Err(e) => {
                    let error = to_aws_error(e);
                    // A bucket that never had a configuration answers with this code, not with
                    // an empty configuration.
                    if error.code == "NoSuchPublicAccessBlockConfiguration" {
                        Ok(None)
                    } else {
                        Err(error)
                    }
                }
            }
        })
    }

    fn put_public_access_block(
        &self,
        config: PublicAccessBlock,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            let configuration = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(config.block_public_acls)
                .ignore_public_acls(config.ignore_public_acls)
                .block_public_policy(config.block_public_policy)
                .restrict_public_buckets(config.restrict_public_buckets)
                .build();
            self.client
                .put_public_access_block()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .public_access_block_configuration(configuration)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn delete_public_access_block(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .delete_public_access_block()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .send()
                .await
                .map(|_| ())
                .map_err(to_aws_error)
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        // S3 returns no tags with the bucket's other reads: this is always a call of its own.
        Box::pin(async move {
            let tags = match self
                .client
                .get_bucket_tagging()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .send()
                .await
            {
                Ok(out) => Ok(out
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect()),
                Err(e) => {
                    let error = to_aws_error(e);
                    // An untagged bucket answers with this code rather than an empty set.
                    if error.code == "NoSuchTagSet" {
                        Ok(Tags::new())
                    } else {
                        Err(error)
                    }
                }
            };
            tags.map(TagRead::from)
        })
    }
}

/// The capability's calls, shared by every contract version.
async fn get_public_access_block(
    caps: &mut Capabilities,
) -> Result<Option<PublicAccessBlock>, FixerError> {
    let backend = caps.backend::<S3BucketBinding>()?.0;
    caps.call(
        &GET_PUBLIC_ACCESS_BLOCK,
        None,
        backend.get_public_access_block(),
    )
    .await
}

async fn put_public_access_block(
    caps: &mut Capabilities,
    config: PublicAccessBlock,
) -> Result<(), FixerError> {
    let backend = caps.backend::<S3BucketBinding>()?.0;
    let request = json!(config);
    caps.call(
        &PUT_PUBLIC_ACCESS_BLOCK,
        Some(request),
        backend.put_public_access_block(config),
    )
    .await
}

async fn delete_public_access_block(caps: &mut Capabilities) -> Result<(), FixerError> {
    let backend = caps.backend::<S3BucketBinding>()?.0;
    caps.call(
        &DELETE_PUBLIC_ACCESS_BLOCK,
        Some(Value::Null),
        backend.delete_public_access_block(),
    )
    .await
}

impl Host for Capabilities {
    async fn get_public_access_block(
        &mut self,
    ) -> wasmtime::Result<Result<Option<PublicAccessBlock>, FixerError>> {
        Ok(get_public_access_block(self).await)
    }

    async fn put_public_access_block(
        &mut self,
        config: PublicAccessBlock,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(put_public_access_block(self, config).await)
    }
}

impl v0_2::salve::s3_bucket::capability::Host for Capabilities {
    async fn get_public_access_block(
        &mut self,
    ) -> wasmtime::Result<Result<Option<PublicAccessBlockV0_2>, FixerError>> {
        Ok(get_public_access_block(self)
            .await
            .map(|c| c.map(PublicAccessBlockV0_2::from)))
    }

    async fn put_public_access_block(
        &mut self,
        config: PublicAccessBlockV0_2,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(put_public_access_block(self, config.into()).await)
    }

    async fn delete_public_access_block(&mut self) -> wasmtime::Result<Result<(), FixerError>> {
        Ok(delete_public_access_block(self).await)
    }
}

/// In memory, for benchmarks and offline tests of the sandbox; counts writes so a test can prove
/// what reached the "resource".
#[derive(Default)]
pub struct InMemoryS3Bucket {
    pub config: Mutex<Option<PublicAccessBlock>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

impl InMemoryS3Bucket {
    pub fn with(config: Option<PublicAccessBlock>) -> InMemoryS3Bucket {
        InMemoryS3Bucket {
            config: Mutex::new(config),
            writes: AtomicUsize::new(0),
            tags: Tags::new(),
        }
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

impl S3BucketBackend for InMemoryS3Bucket {
    fn get_public_access_block(
        &self,
    ) -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>> {
        Box::pin(async move {
            Ok(*self
                .config
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))?)
        })
    }

    fn put_public_access_block(
        &self,
        config: PublicAccessBlock,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self
                .config
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))? = Some(config);
            Ok(())
        })
    }

    fn delete_public_access_block(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self
                .config
                .lock()
                .map_err(|_| internal_error("in-memory backend lock poisoned"))? = None;
            Ok(())
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone().into()) })
    }
}
