//! Drift of EBS encryption by default: `aws_ebs_encryption_by_default.enabled` against
//! `GetEbsEncryptionByDefault`, one call for the region the setting belongs to.

use salve_core::state_attributes as attrs;
use salve_core::{
    AwsError, BoxFuture, Declared, KindDrift, LiveOne, LiveRead, SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::{AwsEbsEncryption, EbsEncryptionBackend, EbsEncryptionByDefault};
use crate::ARN_RESOURCE;

impl KindDrift for EbsEncryptionByDefault {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        let mut attributes = SecurityAttributes::new();
        // The provider's default is enabled.
        let enabled = attrs::boolean(instance.attributes, "enabled")?.unwrap_or(true);
        attributes.insert("enabled".into(), json!(enabled));
        Ok(Declared {
            arn: format!(
                "arn:{}:ec2:{}:{}:{ARN_RESOURCE}",
                salve_contract::partition_of(instance.region),
                instance.region,
                instance.account_id
            ),
            attributes,
        })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        Box::pin(async move {
            // Every ID is the session's region (the setting's ID is its region): one read.
            let enabled = AwsEbsEncryption(aws_sdk_ec2::Client::new(read.session))
                .get()
                .await?;
            let live = SecurityAttributes::from([("enabled".to_string(), json!(enabled))]);
            Ok(read.ids.iter().map(|_| Ok(Some(live.clone()))).collect())
        })
    }
}
