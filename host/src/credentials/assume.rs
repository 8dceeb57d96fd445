//! STS AssumeRole into customer accounts, called directly (aws-config's `AssumeRoleProvider`
//! cannot set a source identity), with a credential cache keyed by account, role, session
//! policy and finding.
//!
//! There is no fallback: an account without a role, or a failed AssumeRole, is an error the
//! pipeline records. The host's own credentials never touch a customer resource.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use serde::Serialize;

use super::session_name;
use super::SessionPolicy;
use crate::base::sha256_hex;

/// Sessions are asked for this long; the cache hands one out only while it has at least
/// `REFRESH_BEFORE` left, so a fixer never starts with credentials about to expire.
const SESSION_SECONDS: i32 = 900;
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// Attempts per AssumeRole, throttling and 5xx included (the SDK's standard retry: exponential
/// backoff with jitter).
const MAX_ATTEMPTS: u32 = 4;

/// The most sessions the cache keeps. A session is per finding, so a daemon that never looks a
/// key up again would otherwise keep every one until it exits.
const MAX_CACHED_SESSIONS: usize = 4096;

#[derive(Debug, Clone)]
pub enum ExternalIdSource {
    Env(String),
    File(PathBuf),
}

impl ExternalIdSource {
    /// The external ID. Errors name where it was looked for, never the value.
    fn read(&self) -> Result<String, String> {
        let value = match self {
            ExternalIdSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("the external ID variable ${var} is not set"))?,
            ExternalIdSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("reading the external ID file {}: {e}", path.display()))?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err("the external ID is empty".into());
        }
        Ok(value)
    }
}

#[derive(Debug, Clone)]
pub struct AccountRole {
    pub role_arn: String,
    pub external_id: Option<ExternalIdSource>,
}

/// Whom a session acts for besides the finding it serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionFor<'a> {
    /// The finding alone: the session is named for it.
    #[default]
    Finding,
    /// A write session acting on this person's approval: tagged `salve:approved-by`.
    ApprovedBy(&'a str),
    /// A read session shared by the findings of one payload (`pipeline::read_groups`), named
    /// for the group; each finding's record names it.
    ReadGroup(&'a str),
}

impl<'a> SessionFor<'a> {
    /// What the session is named and cached for: the group, or the finding.
    pub fn session_id(self, finding: &'a crate::finding::Finding) -> &'a str {
        match self {
            SessionFor::ReadGroup(group) => group,
            _ => &finding.id,
        }
    }

    pub fn approved_by(self) -> Option<&'a str> {
        match self {
            SessionFor::ApprovedBy(by) => Some(by),
            _ => None,
        }
    }
}

pub struct SessionRequest<'a> {
    pub account_id: &'a str,
    pub finding_id: &'a str,
    pub correlation_id: &'a str,
    pub policy: &'a SessionPolicy,
    /// The person whose approval the session acts on: tagged `salve:approved-by`, so CloudTrail
    /// names them beside the finding.
    pub approved_by: Option<&'a str>,
}

/// Why no session could be had, as the audit record says it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AssumeRoleFailure {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Worth another delivery from the queue (throttling, 5xx, timeouts).
    pub retryable: bool,
}

fn failure(reason: &str, message: String) -> AssumeRoleFailure {
    AssumeRoleFailure {
        reason: reason.into(),
        code: None,
        message,
        request_id: None,
        retryable: false,
    }
}

/// Session tag values allow letters, digits, spaces and `_.:/=+-@`, up to 256 characters.
fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(256)
        .collect()
}

/// Account, role, policy digest and finding: a session carries its finding in its name and
/// tags, so handing it to another finding would make CloudTrail attribute that finding's calls
/// to the first one, and the record would name a session that was never used.
type CacheKey = (String, String, String, String);

pub struct RoleAssumer {
    sts: aws_sdk_sts::Client,
    source_identity: String,
    accounts: BTreeMap<String, AccountRole>,
    cache: Mutex<HashMap<CacheKey, Credentials>>,
    /// The keys an AssumeRole is under way for.
    in_flight: Mutex<HashMap<CacheKey, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// At most this many sessions are kept ([`MAX_CACHED_SESSIONS`] unless a test lowers it).
    max_cached: usize,
    sts_calls: AtomicUsize,
    /// The SDK's clock, so `salve fixer test` can pin it to a recording's time.
    clock: aws_smithy_async::time::SharedTimeSource,
    /// No region was configured: every session fails with one clear line instead of an SDK
    /// construction error.
    region_missing: bool,
}

impl RoleAssumer {
    /// `sdk` carries the platform's own credentials, used only to call STS.
    pub fn new(
        sdk: &SdkConfig,
        source_identity: &str,
        accounts: BTreeMap<String, AccountRole>,
    ) -> RoleAssumer {
        let conf = aws_sdk_sts::config::Builder::from(sdk)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .build();
        RoleAssumer {
            sts: aws_sdk_sts::Client::from_conf(conf),
            source_identity: session_name::clean(source_identity),
            accounts,
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            max_cached: MAX_CACHED_SESSIONS,
            sts_calls: AtomicUsize::new(0),
            clock: sdk.time_source().unwrap_or_default(),
            region_missing: sdk.region().is_none(),
        }
    }

    /// How many AssumeRole calls reached STS (for tests and metrics).
    pub fn sts_calls(&self) -> usize {
        self.sts_calls.load(Ordering::SeqCst)
    }

    pub async fn credentials(
        &self,
        request: &SessionRequest<'_>,
    ) -> Result<Credentials, AssumeRoleFailure> {
        let Some(account) = self.accounts.get(request.account_id) else {
            return Err(failure(
                "no role for the account",
                format!(
                    "account {} has no role-arn in salve.toml, and salve never uses its own credentials on a customer resource",
                    request.account_id
                ),
            ));
        };
        if self.region_missing {
            return Err(failure(
                "no AWS region",
                "no AWS region is configured for salve's own STS calls: set AWS_REGION (or a region in the AWS profile)".into(),
            ));
        }
        let key = (
            request.account_id.to_string(),
            account.role_arn.clone(),
            sha256_hex(request.policy.json().as_bytes()),
            match request.approved_by {
                // A session that names an approver is never handed to a run that has none.
                Some(by) => format!("{}\u{0}{by}", request.finding_id),
                None => request.finding_id.to_string(),
            },
        );
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        // One AssumeRole per key at a time: the findings that share a read session start
        // together, and all but the first wait for its session instead of asking STS too.
        let turn = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let assumed = self.assume(request, account, &key).await;
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        assumed
    }

    async fn assume(
        &self,
        request: &SessionRequest<'_>,
        account: &AccountRole,
        key: &CacheKey,
    ) -> Result<Credentials, AssumeRoleFailure> {
        let external_id = match &account.external_id {
            Some(source) => Some(
                source
                    .read()
                    .map_err(|m| failure("external ID unavailable", m))?,
            ),
            None => None,
        };
        let tags = [
            ("salve:finding-id", Some(request.finding_id)),
            ("salve:correlation-id", Some(request.correlation_id)),
            ("salve:approved-by", request.approved_by),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .filter_map(|(k, v)| {
            aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(tag_value(v))
                .build()
                .ok()
        })
        .collect();
        self.sts_calls.fetch_add(1, Ordering::SeqCst);
        let result = self
            .sts
            .assume_role()
            .role_arn(&account.role_arn)
            .role_session_name(session_name(request.finding_id))
            .set_external_id(external_id)
            .source_identity(&self.source_identity)
            .set_tags(Some(tags))
            .policy(request.policy.json())
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await;
        let output = result.map_err(|e| classify(crate::aws::to_aws_error(e)))?;
        let c = output.credentials().ok_or_else(|| {
            failure(
                "assume-role failed",
                "STS answered without credentials".into(),
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "salve-assume-role",
        );
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.max_cached {
            self.evict(&mut cache);
        }
        cache.insert(key.clone(), credentials.clone());
        Ok(credentials)
    }

    /// Drops every session too close to expiry to be handed out again and, if the cache is
    /// still full, the half that expires soonest: memory stays bounded whatever the traffic.
    fn evict(&self, cache: &mut HashMap<CacheKey, Credentials>) {
        let now = self.clock.now();
        let left = |c: &Credentials| {
            c.expiry()
                .and_then(|e| e.duration_since(now).ok())
                .unwrap_or_default()
        };
        cache.retain(|_, c| left(c) > REFRESH_BEFORE);
        if cache.len() >= self.max_cached {
            let mut by_expiry: Vec<(Duration, CacheKey)> =
                cache.iter().map(|(k, c)| (left(c), k.clone())).collect();
            by_expiry.sort_unstable_by_key(|(d, _)| *d);
            for (_, k) in by_expiry.into_iter().take(self.max_cached.div_ceil(2)) {
                cache.remove(&k);
            }
        }
    }

    /// Keeps at most `n` sessions (at least one).
    pub fn limit_cache(mut self, n: usize) -> RoleAssumer {
        self.max_cached = n.max(1);
        self
    }

    /// How many sessions the cache holds (for tests).
    pub fn cached_sessions(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn cached(&self, key: &CacheKey) -> Option<Credentials> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache.get(key).is_some_and(|c| {
            c.expiry()
                .and_then(|e| e.duration_since(self.clock.now()).ok())
                .is_some_and(|left| left > REFRESH_BEFORE)
        });
        if fresh {
            cache.get(key).cloned()
        } else {
            cache.remove(key);
            None
        }
    }
}

/// Names the failure the way an operator thinks about it. STS answers `AccessDenied` for a
/// denied trust policy, a wrong external ID and a role that does not exist alike.
fn classify(e: crate::capabilities::AwsError) -> AssumeRoleFailure {
    let reason = match e.code.as_str() {
        "AccessDenied" => "assume-role denied",
        "ExpiredToken" | "ExpiredTokenException" => "platform credentials expired",
        "InvalidClientTokenId" | "SignatureDoesNotMatch" => "platform credentials rejected",
        "NoSuchEntity" => "assume-role denied: the role does not exist",
        _ if e.retryable => "assume-role unavailable after retries",
        _ => "assume-role failed",
    };
    AssumeRoleFailure {
        reason: reason.into(),
        code: Some(e.code),
        message: e.message,
        request_id: e.request_id,
        retryable: e.retryable,
    }
}
