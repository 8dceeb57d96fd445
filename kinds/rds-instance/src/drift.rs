//! Drift of a DB instance: `publicly_accessible`, from `aws_db_instance` and from
//! `DescribeDBInstances` filtered by identifier, up to 100 instances a call.

use salve_core::state_attributes as attrs;
use salve_core::{
    AwsError, BoxFuture, Declared, KindDrift, LiveOne, LiveRead, SecurityAttributes, StateInstance,
};
use serde_json::json;

use crate::host::RdsInstance;

const BATCH: usize = 100;

impl KindDrift for RdsInstance {
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String> {
        let arn = attrs::arn_or(instance.attributes, || {
            format!(
                "arn:{}:rds:{}:{}:db:{}",
                salve_contract::partition_of(instance.region),
                instance.region,
                instance.account_id,
                instance.id
            )
        })?;
        let mut attributes = SecurityAttributes::new();
        if let Some(public) = attrs::boolean(instance.attributes, "publicly_accessible")? {
            attributes.insert("publicly_accessible".into(), json!(public));
        }
        Ok(Declared { arn, attributes })
    }

    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>> {
        salve_core::live_by_filter!(
            aws_sdk_rds::Client::new(read.session),
            read.ids,
            BATCH,
            aws_sdk_rds::types::Filter,
            "db-instance-id",
            describe_db_instances,
            db_instances,
            |i| (
                i.db_instance_identifier(),
                SecurityAttributes::from([(
                    "publicly_accessible".to_string(),
                    json!(i.publicly_accessible().unwrap_or(false)),
                )])
            ),
        )
    }
}
