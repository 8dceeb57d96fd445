//! AWS clients for the capabilities, and the translation of SDK errors into the WIT `aws-error`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;

use crate::actions;
use crate::capabilities::s3_bucket::AwsS3Bucket;
use crate::capabilities::security_group::AwsSecurityGroup;
use crate::capabilities::{AwsError, ResourceBackend};
use crate::finding::Finding;

/// Error codes AWS uses for throttling; the queue retries these later.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Converts any SDK error into the WIT error, keeping the code and request ID for the audit log.
pub fn to_aws_error<E>(err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.request_id().map(str::to_string);
    let status = match &err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let (code, message, retryable) = match &err {
        SdkError::TimeoutError(_) => (
            "Timeout".to_string(),
            "the request timed out".to_string(),
            true,
        ),
        SdkError::DispatchFailure(d) => (
            "DispatchFailure".to_string(),
            format!("the request could not be sent: {d:?}"),
            true,
        ),
        SdkError::ResponseError(_) => (
            "ResponseError".to_string(),
            "the response could not be read".to_string(),
            true,
        ),
        SdkError::ConstructionFailure(_) => (
            "ConstructionFailure".to_string(),
            "the request could not be built".to_string(),
            false,
        ),
        _ => {
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = err.message().unwrap_or("").to_string();
            let retryable = THROTTLING_CODES.contains(&code.as_str())
                || code.starts_with("Internal")
                || code == "ServiceUnavailable"
                || status.is_some_and(|s| s >= 500);
            (code, message, retryable)
        }
    };
    AwsError {
        code,
        message,
        request_id,
        retryable,
    }
}

/// Where the AWS clients point. `endpoint_url` sends every call to one endpoint (moto in tests).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub endpoint_url: Option<String>,
}

/// Builds capability backends bound to a finding's resource, with one client per region.
pub struct AwsBackends {
    config: SdkConfig,
    options: AwsOptions,
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
}

impl AwsBackends {
    /// Loads credentials from the default chain (environment, profile, instance role).
    pub async fn load(options: AwsOptions) -> AwsBackends {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        AwsBackends::from_config(loader.load().await, options)
    }

    pub fn from_config(config: SdkConfig, options: AwsOptions) -> AwsBackends {
        AwsBackends {
            config,
            options,
            s3: Mutex::new(HashMap::new()),
            ec2: Mutex::new(HashMap::new()),
        }
    }

    /// The platform's own AWS configuration (for the notifier's SNS topics).
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    fn s3_client(&self, region: &str) -> aws_sdk_s3::Client {
        let mut clients = self.s3.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut b = aws_sdk_s3::config::Builder::from(&self.config)
                    .region(Region::new(region.to_string()));
                if self.options.endpoint_url.is_some() {
                    // Local stand-ins serve buckets by path, not by virtual host.
                    b = b.force_path_style(true);
                }
                aws_sdk_s3::Client::from_conf(b.build())
            })
            .clone()
    }

    fn ec2_client(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut clients = self.ec2.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let b = aws_sdk_ec2::config::Builder::from(&self.config)
                    .region(Region::new(region.to_string()));
                aws_sdk_ec2::Client::from_conf(b.build())
            })
            .clone()
    }

    /// A backend that can touch exactly the finding's resource.
    pub fn bind(&self, finding: &Finding) -> Result<ResourceBackend> {
        let r = &finding.resource;
        match r.resource_type.as_str() {
            t if t == actions::S3_BUCKET.name => Ok(ResourceBackend::S3Bucket(Arc::new(
                AwsS3Bucket::new(self.s3_client(&r.region), r.name.clone()),
            ))),
            t if t == actions::SECURITY_GROUP.name => Ok(ResourceBackend::SecurityGroup(Arc::new(
                AwsSecurityGroup::new(self.ec2_client(&r.region), r.name.clone()),
            ))),
            other => bail!("no capability backend for resource type {other}"),
        }
    }
}
