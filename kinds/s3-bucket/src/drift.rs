//! Drift of a bucket: its public access block, from the state's
//! `aws_s3_bucket_public_access_block` for the bucket and from `GetPublicAccessBlock`. S3 has
//! no call that reads many buckets' settings, so it is one read per bucket.

use salve_core::state_attributes as attrs;
use salve_core::{
    is_not_found, read_each, AwsError, BoxFuture, Declared, KindDrift, LiveOne, LiveRead,
    SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::{AwsS3Bucket, S3Bucket, S3BucketBackend};

const SETTINGS: [&str; 4] = [
    "block_public_acls",
    "ignore_public_acls",
    "block_public_policy",
    "restrict_public_buckets",
];

impl KindDrift for S3Bucket {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        let mut attributes = SecurityAttributes::new();
        for (resource_type, a) in instance.configured_by {
            if *resource_type != "aws_s3_bucket_public_access_block" {
                continue;
            }
            for key in SETTINGS {
                // Terraform's default for each setting is false.
                let value = attrs::boolean(a, key)
                    .map_err(|e| format!("{resource_type}: {e}"))?
                    .unwrap_or(false);
                attributes.insert(key.to_string(), json!(value));
            }
        }
        Ok(Declared {
            arn: format!(
                "arn:{}:s3:::{}",
                salve_contract::partition_of(instance.region),
                instance.id
            ),
            attributes,
        })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        let client = crate::host::s3_client(read.session, read.path_style);
        // S3 has no batch read: one GetPublicAccessBlock a bucket, several in flight, since a
        // workspace's buckets would otherwise cost a round trip each, one after another.
        Box::pin(async move {
            let bucket = |id: &String| {
                AwsS3Bucket::new(client.clone(), id.clone(), read.account_id.to_string())
            };
            Ok(read_each(read.ids, read.concurrency, |id| live_block(bucket(id))).await)
        })
    }
}

/// One bucket's four settings as drift compares them: no configuration is all four off.
async fn live_block(bucket: AwsS3Bucket) -> LiveOne {
    match bucket.get_public_access_block().await {
        Ok(config) => {
            let c = config.unwrap_or(crate::host::PublicAccessBlock {
                block_public_acls: false,
                ignore_public_acls: false,
                block_public_policy: false,
                restrict_public_buckets: false,
            });
            Ok(Some(SecurityAttributes::from([
                (SETTINGS[0].to_string(), json!(c.block_public_acls)),
                (SETTINGS[1].to_string(), json!(c.ignore_public_acls)),
                (SETTINGS[2].to_string(), json!(c.block_public_policy)),
                (SETTINGS[3].to_string(), json!(c.restrict_public_buckets)),
            ])))
        }
        Err(e) if is_not_found(&e.code) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_declared_public_access_block_is_compared() {
        let bucket = json!({"bucket": "b"});
        let block = json!({"bucket": "b", "block_public_acls": true});
        let none = S3Bucket::declared(StateInstance {
            id: "b",
            attributes: bucket.as_object().unwrap(),
            configured_by: &[],
            account_id: "1",
            region: "us-east-1",
        })
        .unwrap();
        assert!(none.attributes.is_empty());
        assert_eq!(none.arn, "arn:aws:s3:::b");
        let configured = [(
            "aws_s3_bucket_public_access_block",
            block.as_object().unwrap(),
        )];
        let some = S3Bucket::declared(StateInstance {
            id: "b",
            attributes: bucket.as_object().unwrap(),
            configured_by: &configured,
            account_id: "1",
            region: "us-east-1",
        })
        .unwrap();
        assert_eq!(some.attributes["block_public_acls"], json!(true));
        assert_eq!(some.attributes["restrict_public_buckets"], json!(false));
    }
}
