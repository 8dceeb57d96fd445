//! The GitHub REST API, as far as a pull request needs it: find the branch's pull request, open
//! one, update its body, label it. Typed requests and responses over salve's one HTTPS client.
//! The token is read once, sent only as the `Authorization` header, and never logged or recorded.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::HttpsClient;

const TIMEOUT: Duration = Duration::from_secs(30);
/// The REST API version salve is written against.
const API_VERSION: &str = "2022-11-28";

/// `forge` in a `[[iac.terraform]]` workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ForgeConfig {
    #[serde(rename = "type")]
    pub kind: ForgeKind,
    /// The REST API's base URL: GitHub's own, or a GitHub Enterprise Server's `https://<host>/api/v3`.
    pub api_url: String,
    /// `owner/name`.
    pub repo: String,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
}

impl ForgeConfig {
    pub fn validate(&self) -> Result<(), String> {
        match self.repo.split_once('/') {
            Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => {}
            _ => return Err(format!("forge.repo {:?} is not owner/name", self.repo)),
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(format!(
                "forge.api-url {:?} is not an http(s) URL",
                self.api_url
            ));
        }
        match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => Err("forge: set token-env or token-file, not both".into()),
            (None, None) => {
                Err("forge: token-env or token-file must say where the token is".into())
            }
            _ => Ok(()),
        }
    }

    fn token(&self) -> Result<String, String> {
        let token = match (&self.token_env, &self.token_file) {
            (Some(var), _) => std::env::var(var)
                .map_err(|_| format!("the forge token variable {var} is not set"))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("reading the forge token file {}: {e}", path.display()))?,
            (None, None) => return Err("no forge token is configured".into()),
        };
        let token = token.trim().to_string();
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the forge token is empty or not one word".into());
        }
        Ok(token)
    }
}

/// A failed API call, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
    /// Worth trying again later (rate limits, 5xx, the network).
    pub retryable: bool,
}

impl std::fmt::Display for ForgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A pull request as the API returns it; only what salve reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    pub state: String,
    #[serde(default)]
    pub merged_at: Option<String>,
    pub head: Head,
}

/// An issue as the API returns it; only what salve records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Issue {
    pub number: u64,
    pub html_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Head {
    #[serde(rename = "ref")]
    pub branch: String,
}

pub struct GitHub {
    client: HttpsClient,
    base: String,
    repo: String,
    owner: String,
    token: String,
}

impl GitHub {
    pub fn new(config: &ForgeConfig) -> Result<GitHub, String> {
        config.validate()?;
        let owner = config
            .repo
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(GitHub {
            client: crate::http::https_client()?,
            base: config.api_url.trim_end_matches('/').to_string(),
            repo: config.repo.clone(),
            owner,
            token: config.token()?,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ForgeError> {
        let what = format!("{method} {path}");
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json")
            .header("user-agent", "salve")
            .header("x-github-api-version", API_VERSION);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| ForgeError {
                status: None,
                message: format!("{what}: building the request: {e}"),
                retryable: false,
            })?;
        let response = match tokio::time::timeout(TIMEOUT, self.client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(ForgeError {
                    status: None,
                    message: format!("{what}: the forge could not be reached: {e}"),
                    retryable: true,
                })
            }
            Err(_) => {
                return Err(ForgeError {
                    status: None,
                    message: format!("{what}: no answer within {TIMEOUT:?}"),
                    retryable: true,
                })
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let remaining = header("x-ratelimit-remaining");
        let reset = header("x-ratelimit-reset");
        let retry_after = header("retry-after");
        let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| ForgeError {
                status: Some(status),
                message: format!("{what}: the answer is not what the API describes: {e}"),
                retryable: false,
            });
        }
        #[derive(Deserialize, Default)]
        struct Problem {
            #[serde(default)]
            message: String,
            #[serde(default)]
            errors: Vec<serde_json::Value>,
        }
        let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
        let detail: String = std::iter::once(problem.message.clone())
            .chain(problem.errors.iter().filter_map(|e| {
                e.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            }))
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let detail = crate::text::bounded(&detail, 512).into_owned();
        let rate_limited = status == 429
            || (status == 403 && (remaining.as_deref() == Some("0") || retry_after.is_some()));
        let (message, retryable) = match status {
            _ if rate_limited => (
                format!(
                    "{what}: rate limited (HTTP {status}); {}; the finding is retried later",
                    match (retry_after, reset) {
                        (Some(s), _) => format!("retry after {s} s"),
                        (None, Some(r)) => format!("the limit resets at epoch second {r}"),
                        _ => "no reset time was given".into(),
                    }
                ),
                true,
            ),
            401 => (format!("{what}: HTTP 401: the token is missing, expired or invalid; check token-env or token-file ({detail})"), false),
            403 => (format!("{what}: HTTP 403: the token may not do this in {}; it needs pull request and contents write access ({detail})", self.repo), false),
            404 => (format!("{what}: HTTP 404: {} does not exist, or the token cannot see it ({detail})", self.repo), false),
            422 => (format!("{what}: HTTP 422: {detail}"), false),
            s if s >= 500 => (format!("{what}: HTTP {s}: the forge failed; retried later ({detail})"), true),
            s => (format!("{what}: HTTP {s} ({detail})"), false),
        };
        Err(ForgeError {
            status: Some(status),
            message,
            retryable,
        })
    }

    /// The pull request whose head is `branch` in this repository, open or closed.
    pub async fn find_pull(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        let pulls: Vec<PullRequest> = self
            .call(
                hyper::Method::GET,
                &format!(
                    "/repos/{}/pulls?state=all&head={}:{}",
                    self.repo,
                    self.owner,
                    query_escape(branch)
                ),
                None,
            )
            .await?;
        // The API filters by head; the branch name is checked again, whatever it answered.
        Ok(pulls.into_iter().find(|p| p.head.branch == branch))
    }

    pub async fn open_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        self.call(
            hyper::Method::POST,
            &format!("/repos/{}/pulls", self.repo),
            Some(json!({"title": title, "head": branch, "base": base, "body": body})),
        )
        .await
    }

    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        self.call(
            hyper::Method::PATCH,
            &format!("/repos/{}/pulls/{number}", self.repo),
            Some(json!({"title": title, "body": body})),
        )
        .await
    }

    /// Opens an issue (a break-glass reconciliation ticket), labelled at creation.
    pub async fn open_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<Issue, ForgeError> {
        self.call(
            hyper::Method::POST,
            &format!("/repos/{}/issues", self.repo),
            Some(json!({"title": title, "body": body, "labels": labels})),
        )
        .await
    }

    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let _: serde_json::Value = self
            .call(
                hyper::Method::POST,
                &format!("/repos/{}/issues/{number}/labels", self.repo),
                Some(json!({ "labels": labels })),
            )
            .await?;
        Ok(())
    }
}

/// A branch name in a query string: salve's branch names are `salve/` and safe characters.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
