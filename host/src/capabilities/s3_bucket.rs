//! The `s3-bucket` capability, bound to the finding's bucket.

use serde_json::json;

use super::salve::fixer::s3_bucket::{Host, PublicAccessBlock};
use super::{AwsError, BoxFuture, Capabilities, FixerError, ResourceBackend, Tags};
use crate::actions::{S3_GET_PUBLIC_ACCESS_BLOCK, S3_PUT_PUBLIC_ACCESS_BLOCK};
use crate::aws::to_aws_error;

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

impl Capabilities {
    fn s3_bucket(&self) -> wasmtime::Result<std::sync::Arc<dyn S3BucketBackend>> {
        match &self.backend {
            ResourceBackend::S3Bucket(b) => Ok(b.clone()),
            // Unreachable through the linker, which only links a fixer's own world; trapping keeps
            // it contained if that ever changes.
            _ => Err(wasmtime::format_err!(
                "s3-bucket called on a finding that is not an S3 bucket"
            )),
        }
    }
}

impl Host for Capabilities {
    async fn get_public_access_block(
        &mut self,
    ) -> wasmtime::Result<Result<Option<PublicAccessBlock>, FixerError>> {
        let backend = self.s3_bucket()?;
        Ok(self
            .call(
                &S3_GET_PUBLIC_ACCESS_BLOCK,
                None,
                backend.get_public_access_block(),
            )
            .await)
    }

    async fn put_public_access_block(
        &mut self,
        config: PublicAccessBlock,
    ) -> wasmtime::Result<Result<(), FixerError>> {
        let backend = self.s3_bucket()?;
        let request = json!(config);
        Ok(self
            .call(
                &S3_PUT_PUBLIC_ACCESS_BLOCK,
                Some(request),
                backend.put_public_access_block(config),
            )
            .await)
    }
}
