//! The `s3-bucket` capability, bound to the finding's bucket, and its backends.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use salve_contract::{Arn, KindSpec};
use salve_core::{
    internal_error, to_aws_error, AwsError, Binding, BoundResource, BoxFuture, Capabilities,
    FixerError, KindBackend, KindHost, SdkConfig, Tags,
};
use serde_json::json;

use crate::{GET_PUBLIC_ACCESS_BLOCK, PUT_PUBLIC_ACCESS_BLOCK, SPEC};
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

/// The kind's entry in the host's registry.
pub struct S3Bucket;

impl KindHost for S3Bucket {
    const SPEC: &'static KindSpec = &SPEC;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Capabilities,
    ) -> anyhow::Result<()> {
        use wasmtime::component::HasSelf;
        bindings::salve::fixer::s3_bucket::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        Ok(())
    }

    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, path_style: bool) -> Binding {
        let mut b = aws_sdk_s3::config::Builder::from(session);
        if path_style {
            // Local stand-ins do not serve buckets by virtual host.
            b = b.force_path_style(true);
        }
        bind(Arc::new(AwsS3Bucket::new(
            aws_sdk_s3::Client::from_conf(b.build()),
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

/// The kind's backend as the store holds it.
#[derive(Clone)]
pub struct S3BucketBinding(pub Arc<dyn S3BucketBackend>);

/// Binds a backend (AWS or in memory) as this kind's.
pub fn bind(backend: Arc<dyn S3BucketBackend>) -> Binding {
    Arc::new(S3BucketBinding(backend))
}

impl KindBackend for S3BucketBinding {
    fn kind(&self) -> &'static KindSpec {
        &SPEC
    }

    fn read_tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        self.0.tags()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What the capability needs from S3 for one bucket, so tests and benchmarks can swap AWS out.
pub trait S3BucketBackend: Send + Sync {
    fn get_public_access_block(&self)
        -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>>;
    fn put_public_access_block(
        &self,
        config: PublicAccessBlock,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    /// The bucket's tags (s3:GetBucketTagging), read by the host for eligibility metadata.
    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>>;
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

    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        Box::pin(async move {
            match self
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
            }
        })
    }
}

impl Host for Capabilities {
    async fn get_public_access_block(
        &mut self,
    ) -> wasmtime::Result<Result<Option<PublicAccessBlock>, FixerError>> {
        let backend = match self.backend::<S3BucketBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .call(
                &GET_PUBLIC_ACCESS_BLOCK,
                None,
                backend.get_public_access_block(),
            )
            .await)
    }

    async fn put_public_access_block(
        &mut self,
        config: PublicAccessBlock,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = match self.backend::<S3BucketBinding>() {
            Ok(b) => b.0,
            Err(e) => return Ok(Err(e)),
        };
        let request = json!(config);
        Ok(self
            .call(
                &PUT_PUBLIC_ACCESS_BLOCK,
                Some(request),
                backend.put_public_access_block(config),
            )
            .await)
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

    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone()) })
    }
}
