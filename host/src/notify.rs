//! The notifier: review, failed and urgent findings go to humans, through an SNS topic and/or a
//! Slack-compatible webhook, configured per route.
//!
//! A delivery failure is returned to the caller, which writes it into the finding's audit
//! record; nothing here drops a notification silently.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long one delivery may take before it is recorded as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Review,
    Failed,
    Urgent,
    /// `salve drift check` found a fix salve made undone.
    Regression,
    /// A break-glass window passed its due time without reconciliation.
    BreakGlassOverdue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    pub on: Vec<Trigger>,
    #[serde(default)]
    pub sns_topic_arn: Option<String>,
    /// The URL carries its secret in the path, so prefer `webhook-url-env` or
    /// `webhook-url-file`, which keep it out of the config file.
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    #[serde(default)]
    pub webhook_url_file: Option<std::path::PathBuf>,
}

impl RouteConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.on.is_empty() {
            return Err(
                "`on` is empty; list review, failed, urgent, regression and/or break-glass-overdue"
                    .into(),
            );
        }
        let webhooks = [
            self.webhook_url.is_some(),
            self.webhook_url_env.is_some(),
            self.webhook_url_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if webhooks > 1 {
            return Err("set only one of webhook-url, webhook-url-env and webhook-url-file".into());
        }
        if self.sns_topic_arn.is_none() && webhooks == 0 {
            return Err("set sns-topic-arn, webhook-url, or both".into());
        }
        if let Some(arn) = &self.sns_topic_arn {
            let parsed = crate::finding::parse_arn(arn)?;
            if parsed.service != "sns" || parsed.region.is_empty() {
                return Err(format!("sns-topic-arn {arn:?} is not an SNS topic ARN"));
            }
        }
        if webhooks == 1 {
            check_webhook_url(&self.webhook()?)?;
        }
        Ok(())
    }

    /// The webhook URL, from the config, an environment variable or a file.
    pub fn webhook(&self) -> Result<String, String> {
        if let Some(url) = &self.webhook_url {
            return Ok(url.clone());
        }
        if let Some(var) = &self.webhook_url_env {
            return std::env::var(var)
                .map(|v| v.trim().to_string())
                .map_err(|_| {
                    format!("webhook-url-env: the environment variable {var} is not set")
                });
        }
        if let Some(file) = &self.webhook_url_file {
            return std::fs::read_to_string(file)
                .map(|v| v.trim().to_string())
                .map_err(|e| format!("webhook-url-file {}: {e}", file.display()));
        }
        Err("no webhook is configured".into())
    }
}

/// A webhook must be https, so finding details and the URL's own secret never cross a network
/// in clear; plain http is accepted only for a loopback host (a local relay, or a test). Errors
/// never repeat the URL, which holds a secret.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let uri = url
        .parse::<hyper::Uri>()
        .map_err(|e| format!("the webhook URL is not a valid URL ({e})"))?;
    let host = uri.host().unwrap_or("");
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        Some("http") => {
            Err("the webhook URL must use https:// (http:// only for a loopback host)".into())
        }
        _ => Err("the webhook URL must start with https://".into()),
    }
}

/// Slack reads `&`, `<` and `>` as markup (`<!channel>`, `<https://evil|a harmless label>`);
/// finding text must reach people as the text it is.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyConfig {
    pub routes: BTreeMap<String, RouteConfig>,
}

/// What a human needs to act on one finding.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub triggers: Vec<Trigger>,
    pub status: String,
    pub finding_id: String,
    pub correlation_id: String,
    pub resource_arn: String,
    pub reason: Option<String>,
    pub priority: Option<String>,
}

impl Notice {
    fn text(&self) -> String {
        let urgent = if self.triggers.contains(&Trigger::Urgent) {
            "URGENT "
        } else {
            ""
        };
        format!(
            "{urgent}salve: {} {} on {}{}{}",
            self.status,
            self.finding_id,
            self.resource_arn,
            self.priority
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            self.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    }
}

/// One delivery attempt, as recorded in the audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub route: String,
    pub target: String,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

use crate::http::HttpsClient;

pub struct Notifier {
    routes: BTreeMap<String, RouteConfig>,
    sdk: Option<SdkConfig>,
    sns: Mutex<BTreeMap<String, aws_sdk_sns::Client>>,
    http: Mutex<Option<HttpsClient>>,
}

impl Notifier {
    /// `sdk` is the platform's own AWS config (topics live in the platform account); it is only
    /// needed when a route has an SNS topic.
    pub fn new(config: NotifyConfig, sdk: Option<SdkConfig>) -> Notifier {
        Notifier {
            routes: config.routes,
            sdk,
            sns: Mutex::new(BTreeMap::new()),
            http: Mutex::new(None),
        }
    }

    pub fn disabled() -> Notifier {
        Notifier::new(NotifyConfig::default(), None)
    }

    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Sends `notice` on every route whose triggers match. Returns one entry per attempt.
    pub async fn notify(&self, notice: &Notice) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (name, route) in &self.routes {
            if !route.on.iter().any(|t| notice.triggers.contains(t)) {
                continue;
            }
            if let Some(topic) = &route.sns_topic_arn {
                let result = self.publish_sns(topic, notice).await;
                out.push(delivery(name, topic, result));
            }
            if route.webhook_url.is_some()
                || route.webhook_url_env.is_some()
                || route.webhook_url_file.is_some()
            {
                match route
                    .webhook()
                    .and_then(|u| check_webhook_url(&u).map(|()| u))
                {
                    Ok(url) => {
                        let result = self.post_webhook(&url, notice).await;
                        out.push(delivery(name, &redact_url(&url), result));
                    }
                    Err(e) => out.push(delivery(name, "(webhook)", Err(e))),
                }
            }
        }
        for d in out.iter().filter(|d| !d.delivered) {
            tracing::error!(route = %d.route, target = %d.target, "notification failed: {}", d.error.as_deref().unwrap_or(""));
        }
        out
    }

    fn sns_client(&self, region: &str) -> Result<aws_sdk_sns::Client, String> {
        let sdk = self
            .sdk
            .as_ref()
            .ok_or("no AWS configuration for the SNS notifier")?;
        let mut clients = self.sns.lock().unwrap_or_else(|p| p.into_inner());
        Ok(clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_sns::config::Builder::from(sdk)
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                aws_sdk_sns::Client::from_conf(conf)
            })
            .clone())
    }

    async fn publish_sns(&self, topic: &str, notice: &Notice) -> Result<(), String> {
        let region = crate::finding::parse_arn(topic)?.region.to_string();
        let client = self.sns_client(&region)?;
        let subject: String = format!("salve: {} {}", notice.status, notice.finding_id)
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(100)
            .collect();
        let message = json!({ "text": notice.text(), "salve": notice }).to_string();
        let send = client
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message)
            .send();
        match tokio::time::timeout(DELIVERY_TIMEOUT, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let e = crate::aws::to_aws_error(e);
                Err(format!(
                    "SNS Publish failed: {}",
                    crate::aws::describe_aws_error(&e)
                ))
            }
            Err(_) => Err(format!("SNS Publish timed out after {DELIVERY_TIMEOUT:?}")),
        }
    }

    fn http_client(&self) -> Result<HttpsClient, String> {
        let mut slot = self.http.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = crate::http::https_client()?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn post_webhook(&self, url: &str, notice: &Notice) -> Result<(), String> {
        let client = self.http_client()?;
        let body = json!({ "text": slack_escape(&notice.text()), "salve": notice }).to_string();
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the webhook request: {e}"))?;
        let response = match tokio::time::timeout(DELIVERY_TIMEOUT, client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("webhook request failed: {e}")),
            Err(_) => return Err(format!("webhook timed out after {DELIVERY_TIMEOUT:?}")),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = tokio::time::timeout(DELIVERY_TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(200)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Err(format!("webhook answered HTTP {status}: {body}"))
    }
}

fn delivery(route: &str, target: &str, result: Result<(), String>) -> Delivery {
    Delivery {
        route: route.to_string(),
        target: target.to_string(),
        delivered: result.is_ok(),
        error: result.err(),
    }
}

/// Webhook URLs carry their secret in the path (Slack's do); the audit record keeps only the
/// scheme and host.
/// `user:password@` is dropped as well.
fn redact_url(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => format!(
            "{}://{}{}/…",
            uri.scheme_str().unwrap_or("https"),
            uri.host().unwrap_or(""),
            uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(webhook)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secrets_stay_out_of_the_record() {
        assert_eq!(
            redact_url("https://hooks.example.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example.com:8443/x"),
            "https://hooks.example.com:8443/…"
        );
    }

    #[test]
    fn webhooks_need_https_and_errors_never_echo_the_url() {
        let err = check_webhook_url("http://hooks.example.com/SECRET").unwrap_err();
        assert!(!err.contains("SECRET") && err.contains("https"), "{err}");
        assert!(check_webhook_url("http://127.0.0.1:9/x").is_ok());
        let err = check_webhook_url("ftp://x/SECRET").unwrap_err();
        assert!(!err.contains("SECRET"));
    }

    #[test]
    fn a_webhook_url_can_come_from_the_environment_or_a_file() {
        let var = format!("SALVE_TEST_WEBHOOK_{}", std::process::id());
        std::env::set_var(&var, "https://hooks.example.com/from-env\n");
        let route = RouteConfig {
            on: vec![Trigger::Review],
            sns_topic_arn: None,
            webhook_url: None,
            webhook_url_env: Some(var.clone()),
            webhook_url_file: None,
        };
        assert_eq!(route.validate(), Ok(()));
        assert_eq!(
            route.webhook().unwrap(),
            "https://hooks.example.com/from-env"
        );
        std::env::remove_var(&var);
        let err = route.webhook().unwrap_err();
        assert!(err.contains(&var) && !err.contains("hooks"), "{err}");
        let file = std::env::temp_dir().join(format!("salve-webhook-{}", std::process::id()));
        std::fs::write(&file, "http://hooks.example.com/SECRET").unwrap();
        let route = RouteConfig {
            webhook_url_env: None,
            webhook_url_file: Some(file.clone()),
            ..route
        };
        let err = route.validate().unwrap_err();
        assert!(err.contains("https") && !err.contains("SECRET"), "{err}");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn slack_markup_in_finding_text_is_escaped() {
        assert_eq!(
            slack_escape("<!channel> & <https://evil|docs>"),
            "&lt;!channel&gt; &amp; &lt;https://evil|docs&gt;"
        );
    }

    #[test]
    fn routes_need_a_target_and_a_trigger() {
        let route = RouteConfig {
            on: vec![Trigger::Review],
            sns_topic_arn: None,
            webhook_url: None,
            webhook_url_env: None,
            webhook_url_file: None,
        };
        assert_eq!(
            route.validate(),
            Err("set sns-topic-arn, webhook-url, or both".into())
        );
        let route = RouteConfig {
            on: vec![Trigger::Review],
            sns_topic_arn: Some("arn:aws:s3:::bucket".into()),
            webhook_url: None,
            webhook_url_env: None,
            webhook_url_file: None,
        };
        assert!(route
            .validate()
            .unwrap_err()
            .contains("is not an SNS topic ARN"));
    }
}
