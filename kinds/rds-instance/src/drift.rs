//! Drift of a DB instance: `publicly_accessible`, from `aws_db_instance` and from
//! `DescribeDBInstances` filtered by identifier, up to 100 instances a call.

use salve_core::state_attributes as attrs;
use salve_core::{
    read_in_batches, to_aws_error, AwsError, BoxFuture, Declared, KindDrift, SdkConfig,
    SecurityAttributes, StateInstance,
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

    fn live<'a>(
        session: &'a SdkConfig,
        _account_id: &'a str,
        ids: &'a [String],
        _path_style: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<SecurityAttributes>>, AwsError>> {
        let client = aws_sdk_rds::Client::new(session);
        Box::pin(read_in_batches(ids, BATCH, move |chunk| {
            let client = client.clone();
            async move {
                let filter = aws_sdk_rds::types::Filter::builder()
                    .name("db-instance-id")
                    .set_values(Some(chunk))
                    .build();
                let mut pages = client
                    .describe_db_instances()
                    .filters(filter)
                    .into_paginator()
                    .send();
                let mut found = Vec::new();
                while let Some(page) = pages.next().await {
                    for i in page.map_err(to_aws_error)?.db_instances() {
                        let live = SecurityAttributes::from([(
                            "publicly_accessible".to_string(),
                            json!(i.publicly_accessible().unwrap_or(false)),
                        )]);
                        found.extend(i.db_instance_identifier().map(|id| (id.to_string(), live)));
                    }
                }
                Ok(found)
            }
        }))
    }
}
