//! AWS clients for the capabilities, and the translation of SDK errors into the WIT `aws-error`.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;

use crate::actions;
use crate::capabilities::s3_bucket::AwsS3Bucket;
use crate::capabilities::security_group::AwsSecurityGroup;
use crate::capabilities::{AwsError, ResourceBackend};
use crate::credentials::{
    AccountRole, AssumeRoleFailure, RoleAssumer, SessionPolicy, SessionRequest,
};
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

/// `code: message (request ID …)`, the way records and reasons name an AWS error.
pub fn describe_aws_error(e: &AwsError) -> String {
    let id = e
        .request_id
        .as_deref()
        .map(|r| format!(" (request ID {r})"))
        .unwrap_or_default();
    format!("{}: {}{id}", e.code, e.message)
}

/// An S3 client for `config`. With an endpoint override (a local stand-in), buckets are addressed
/// by path, since stand-ins do not serve them by virtual host.
pub fn s3_client(config: &SdkConfig, endpoint_override: bool) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(config);
    if endpoint_override {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

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

/// The HTTPS client the SDK would build by default (rustls with aws-lc, proxy settings from the
/// environment), built once so its connection pool is shared by every session's clients.
pub(crate) fn shared_https_client() -> aws_sdk_sts::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Builds capability backends bound to a finding's resource, each with the credentials of one
/// assumed-role session. There is no other way to get a backend: the host's own credentials are
/// used only to call STS.
pub struct AwsBackends {
    config: SdkConfig,
    options: AwsOptions,
    assumer: RoleAssumer,
}

impl AwsBackends {
    /// Loads the platform's credentials from the default chain (environment, profile, instance
    /// role); they are used for STS and the notifier only.
    pub async fn load(
        options: AwsOptions,
        source_identity: &str,
        roles: BTreeMap<String, AccountRole>,
    ) -> AwsBackends {
        use aws_config::meta::region::RegionProviderChain;
        // The region comes from the environment or the profile, never from instance metadata:
        // a lookup there, on a machine that is not in AWS, costs seconds and prints the SDK's
        // internal errors on every command, even one that makes no AWS call.
        let region = RegionProviderChain::first_try(
            aws_config::environment::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::ProfileFileRegionProvider::new());
        let Some(region) = region.region().await else {
            // Without a region nothing can be called, and loading the default chains would
            // look the region up in instance metadata (seconds, and the SDK's internal errors on
            // stderr). A command that needs AWS says so in one line when it gets there.
            tracing::debug!("no AWS region configured (set AWS_REGION)");
            let config = SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build();
            return AwsBackends::from_config(config, options, source_identity, roles);
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        AwsBackends::from_config(loader.load().await, options, source_identity, roles)
    }

    pub fn from_config(
        config: SdkConfig,
        options: AwsOptions,
        source_identity: &str,
        roles: BTreeMap<String, AccountRole>,
    ) -> AwsBackends {
        // Every session builds its own clients; without one shared HTTP client each would get
        // a fresh connection pool, and every finding would pay new TLS handshakes.
        let config = if config.http_client().is_some() {
            config
        } else {
            config
                .into_builder()
                .http_client(shared_https_client())
                .build()
        };
        let assumer = RoleAssumer::new(&config, source_identity, roles);
        AwsBackends {
            config,
            options,
            assumer,
        }
    }

    /// The platform's own AWS configuration (for the notifier's SNS topics).
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn assumer(&self) -> &RoleAssumer {
        &self.assumer
    }

    /// A backend that can touch exactly the finding's resource, through a session limited by
    /// `policy`.
    pub async fn bind_session(
        &self,
        finding: &Finding,
        policy: &SessionPolicy,
    ) -> Result<ResourceBackend, AssumeRoleFailure> {
        let r = &finding.resource;
        let credentials = self
            .assumer
            .credentials(&SessionRequest {
                account_id: &r.account_id,
                finding_id: &finding.id,
                correlation_id: &finding.correlation_id,
                policy,
            })
            .await?;
        let session = self
            .config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .region(Region::new(r.region.clone()))
            .build();
        match r.resource_type.as_str() {
            t if t == actions::S3_BUCKET.name => {
                let client = s3_client(&session, self.options.endpoint_url.is_some());
                Ok(ResourceBackend::S3Bucket(Arc::new(AwsS3Bucket::new(
                    client,
                    r.name.clone(),
                    r.account_id.clone(),
                ))))
            }
            t if t == actions::SECURITY_GROUP.name => {
                let client = aws_sdk_ec2::Client::new(&session);
                Ok(ResourceBackend::SecurityGroup(Arc::new(
                    AwsSecurityGroup::new(client, r.name.clone()),
                )))
            }
            other => Err(AssumeRoleFailure {
                reason: "no capability backend".into(),
                code: None,
                message: format!("no capability backend for resource type {other}"),
                request_id: None,
                retryable: false,
            }),
        }
    }
}
