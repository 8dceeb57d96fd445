//! Drift of an EBS volume: `aws_ebs_volume.encrypted` (and its key) against `DescribeVolumes`,
//! 200 volumes a call.

use salve_core::state_attributes as attrs;
use salve_core::{
    AwsError, BoxFuture, Declared, KindDrift, LiveOne, LiveRead, SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::EbsVolume;

/// EC2 takes at most 200 values in one filter.
const BATCH: usize = 200;

fn attributes(encrypted: bool, kms_key_id: Option<&str>) -> SecurityAttributes {
    let mut out = SecurityAttributes::from([("encrypted".to_string(), json!(encrypted))]);
    // Which key encrypts the volume matters only once it is encrypted; an empty key in the state
    // means the account's default.
    if let Some(key) = kms_key_id.filter(|k| encrypted && !k.is_empty()) {
        out.insert("kms_key_id".into(), json!(key));
    }
    out
}

impl KindDrift for EbsVolume {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        // The provider's default is unencrypted (unless the account encrypts by default, which
        // the state then records as true).
        let encrypted = attrs::boolean(instance.attributes, "encrypted")?.unwrap_or(false);
        let key = attrs::string(instance.attributes, "kms_key_id")?;
        Ok(Declared {
            arn: format!(
                "arn:{}:ec2:{}:{}:volume/{}",
                salve_contract::partition_of(instance.region),
                instance.region,
                instance.account_id,
                instance.id
            ),
            attributes: attributes(encrypted, key),
        })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        salve_core::live_by_filter!(
            aws_sdk_ec2::Client::new(read.session),
            read.ids,
            BATCH,
            aws_sdk_ec2::types::Filter,
            "volume-id",
            describe_volumes,
            volumes,
            |v| (
                v.volume_id(),
                attributes(v.encrypted().unwrap_or(false), v.kms_key_id())
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_and_ec2_read_alike() {
        let state = json!({"id": "vol-0a", "encrypted": true, "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/k"});
        let declared = EbsVolume::declared(StateInstance {
            id: "vol-0a",
            attributes: state.as_object().unwrap(),
            configured_by: &[],
            account_id: "123456789012",
            region: "us-east-1",
        })
        .unwrap();
        assert_eq!(
            declared.arn,
            "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a"
        );
        assert_eq!(
            declared.attributes,
            attributes(true, Some("arn:aws:kms:us-east-1:123456789012:key/k"))
        );
        // An unencrypted volume's key is not compared, whatever the state holds.
        let plain = json!({"id": "vol-0b", "encrypted": false, "kms_key_id": ""});
        let declared = EbsVolume::declared(StateInstance {
            id: "vol-0b",
            attributes: plain.as_object().unwrap(),
            configured_by: &[],
            account_id: "123456789012",
            region: "us-east-1",
        })
        .unwrap();
        assert_eq!(declared.attributes, attributes(false, None));
    }
}
