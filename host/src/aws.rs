//! AWS clients for the capabilities, and the translation of SDK errors into the WIT `aws-error`.

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

pub use salve_core::{describe_aws_error, to_aws_error};

use crate::capabilities::{Binding, BoundResource};
use crate::credentials::{
    AccountRole, AssumeRoleFailure, RoleAssumer, SessionFor, SessionPolicy, SessionRequest,
};
use crate::finding::Finding;
use crate::kinds;

/// An S3 client for a session; with an endpoint override, buckets are addressed by path. The
/// s3-bucket kind's, so the audit sink, the report and the kind address buckets alike.
pub use salve_kind_s3_bucket::host::s3_client;

/// One S3 object, whole, read with `client`'s credentials. The error names the object and the
/// AWS error.
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Vec<u8>> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "reading s3://{bucket}/{key}: {}",
                describe_aws_error(&to_aws_error(e))
            )
        })?;
    let body = object
        .body
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {e}"))?;
    Ok(body.into_bytes().to_vec())
}

/// salve's own AWS configuration from the default chains (environment, profile, instance role),
/// for the calls salve makes as itself: STS, the notifier, queues, the audit sink.
pub async fn platform_config(options: &AwsOptions) -> SdkConfig {
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
        return SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
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
        let config = platform_config(&options).await;
        AwsBackends::from_config(config, options, source_identity, roles)
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

    /// An assumed-role session in `region` for `request`: the only credentials a backend or a
    /// drift read ever gets.
    pub async fn session(
        &self,
        request: &SessionRequest<'_>,
        region: &str,
    ) -> Result<SdkConfig, AssumeRoleFailure> {
        let credentials = self.assumer.credentials(request).await?;
        Ok(self
            .config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .region(Region::new(region.to_string()))
            .build())
    }

    /// Whether every call goes to one endpoint override (a local stand-in such as moto).
    pub fn path_style(&self) -> bool {
        self.options.endpoint_url.is_some()
    }

    /// The session limited by `policy` for `finding`'s account and region. A shared read
    /// session carries its group, not one finding, like a drift session.
    async fn finding_session(
        &self,
        finding: &Finding,
        policy: &SessionPolicy,
        on_behalf: SessionFor<'_>,
    ) -> Result<SdkConfig, AssumeRoleFailure> {
        let r = &finding.resource;
        let (finding_id, correlation_id) = match on_behalf {
            SessionFor::ReadGroup(group) => (group, group),
            _ => (finding.id.as_str(), finding.correlation_id.as_str()),
        };
        self.session(
            &SessionRequest {
                account_id: &r.account_id,
                finding_id,
                correlation_id,
                policy,
                approved_by: on_behalf.approved_by(),
            },
            &r.region,
        )
        .await
    }

    /// The tags of `arns`, read through the session `policy` allows with one Resource Groups
    /// Tagging API `GetResources` per 100 ARNs (its limit). A resource the answer leaves out
    /// (never tagged, or not known to the API) is not in the map. The error says which call
    /// failed and why.
    pub async fn tags_of(
        &self,
        finding: &Finding,
        policy: &SessionPolicy,
        on_behalf: SessionFor<'_>,
        arns: &[String],
    ) -> Result<BTreeMap<String, salve_core::Tags>, String> {
        let session = self
            .finding_session(finding, policy, on_behalf)
            .await
            .map_err(|f| format!("read session: {}: {}", f.reason, f.message))?;
        let client = aws_sdk_resourcegroupstagging::Client::new(&session);
        let mut tags = BTreeMap::new();
        for chunk in arns.chunks(100) {
            // AWS answers an ARN list in one page; a stand-in that pages anyway is followed,
            // by its token alone, a bounded number of times.
            let mut token: Option<String> = None;
            for _ in 0..100 {
                let request = match &token {
                    None => client
                        .get_resources()
                        .set_resource_arn_list(Some(chunk.to_vec())),
                    Some(t) => client.get_resources().pagination_token(t),
                };
                let page = request.send().await.map_err(|e| {
                    format!("tag:GetResources: {}", describe_aws_error(&to_aws_error(e)))
                })?;
                for mapping in page.resource_tag_mapping_list() {
                    let Some(arn) = mapping.resource_arn() else {
                        continue;
                    };
                    let read = salve_core::tags_from(
                        mapping
                            .tags()
                            .iter()
                            .map(|t| (Some(t.key()), Some(t.value()))),
                    );
                    tags.insert(arn.to_string(), read);
                }
                token = page
                    .pagination_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            if token.is_some() {
                return Err("tag:GetResources: the answer did not end after 100 pages".into());
            }
        }
        Ok(tags)
    }

    /// A backend that can touch exactly the finding's resource, through a session limited by
    /// `policy`.
    pub async fn bind_session(
        &self,
        finding: &Finding,
        policy: &SessionPolicy,
        on_behalf: SessionFor<'_>,
    ) -> Result<Binding, AssumeRoleFailure> {
        let r = &finding.resource;
        let session = self.finding_session(finding, policy, on_behalf).await?;
        let Some(kind) = kinds::get(&r.resource_type) else {
            return Err(AssumeRoleFailure {
                reason: "no capability backend".into(),
                code: None,
                message: format!(
                    "no capability backend for resource type {}",
                    r.resource_type
                ),
                request_id: None,
                retryable: false,
            });
        };
        Ok(kind.aws_backend(
            &session,
            BoundResource {
                name: &r.name,
                account_id: &r.account_id,
                region: &r.region,
            },
            self.options.endpoint_url.is_some(),
        ))
    }
}
