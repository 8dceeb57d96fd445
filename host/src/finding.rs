//! salve's canonical finding, parsed strictly: every field a decision depends on is validated here,
//! so later stages never see a half-formed finding.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kinds;

/// A canonical finding larger than this is rejected before parsing.
pub const MAX_FINDING_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub arn: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub account_id: String,
    pub region: String,
    /// The bucket name or group ID, taken from the ARN.
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub source: String,
    pub control_id: String,
    /// Other identifiers of the same check, such as a Wiz cloud-configuration rule ID. Fixers
    /// are routed by `control_id` or any of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_aliases: Vec<String>,
    /// Wiz projects, when the sender names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    pub title: String,
    pub severity: Severity,
    pub resource: Resource,
    pub correlation_id: String,
    /// When the source first observed the problem (RFC 3339, UTC), where it says: the start of
    /// the exposure that `salve report` measures time to remediation from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_observed_at: Option<String>,
}

/// Why a payload is not a usable finding. The message is what the `rejected` audit record says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FindingError {
    #[error("payload is {size} bytes, over the {MAX_FINDING_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("payload is not a canonical finding: {0}")]
    Malformed(String),
    #[error("field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The unvalidated fields of a finding. Every source normalises into this, and
/// [`Finding::validate`] is the one place they are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResource {
    pub(crate) arn: String,
    #[serde(rename = "type")]
    pub(crate) resource_type: String,
    pub(crate) account_id: String,
    pub(crate) region: String,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFinding {
    pub(crate) id: String,
    #[serde(default = "default_source")]
    pub(crate) source: String,
    pub(crate) control_id: String,
    #[serde(default)]
    pub(crate) control_aliases: Vec<String>,
    #[serde(default)]
    pub(crate) projects: Vec<String>,
    #[serde(default)]
    pub(crate) title: String,
    pub(crate) severity: Severity,
    pub(crate) resource: RawResource,
    #[serde(default)]
    pub(crate) correlation_id: Option<String>,
    /// Any form [`crate::timestamp::parse`] reads; written back as RFC 3339 UTC.
    #[serde(default)]
    pub(crate) first_observed_at: Option<String>,
}

fn default_source() -> String {
    "canonical".to_string()
}

fn invalid(field: &'static str, reason: impl Into<String>) -> FindingError {
    FindingError::Invalid {
        field,
        reason: reason.into(),
    }
}

pub use salve_contract::{parse_arn, partition_of, Arn};

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1
    let parts: Vec<_> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks that the ARN names a resource of `resource_type` and returns its short name.
fn resource_name(
    arn: &Arn<'_>,
    resource_type: &str,
    account: &str,
    region: &str,
) -> Result<String, FindingError> {
    match kinds::get(resource_type) {
        Some(kind) => kind
            .resource_name(arn, account, region)
            .map_err(|reason| invalid("resource.arn", reason)),
        // Types without a fixer are still valid findings; triage skips them.
        None => Ok(arn
            .resource
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(arn.resource)
            .to_string()),
    }
}

/// The one spelling of a known kind's ARN; `None` for kinds without a fixer, whose ARN is kept
/// as given.
fn canonical_arn(
    resource_type: &str,
    arn: &Arn<'_>,
    name: &str,
    account: &str,
    region: &str,
) -> Option<String> {
    kinds::get(resource_type).map(|k| k.canonical_arn(arn, name, account, region))
}

fn non_empty(field: &'static str, value: String, max: usize) -> Result<String, FindingError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(
            field,
            format!("is {} bytes, over the limit of {max}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value)
}

impl Finding {
    /// Parses and validates salve's canonical finding JSON.
    pub fn from_canonical_json(payload: &[u8]) -> Result<Finding, FindingError> {
        if payload.len() > MAX_FINDING_BYTES {
            return Err(FindingError::TooLarge {
                size: payload.len(),
            });
        }
        let raw: RawFinding =
            serde_json::from_slice(payload).map_err(|e| FindingError::Malformed(e.to_string()))?;
        Self::validate(raw)
    }

    /// Validates a canonical finding that ingest has already parsed as JSON.
    pub fn from_canonical_value(value: serde_json::Value) -> Result<Finding, FindingError> {
        let raw: RawFinding =
            serde_json::from_value(value).map_err(|e| FindingError::Malformed(e.to_string()))?;
        Self::validate(raw)
    }

    /// Reads back a finding as an audit record holds it (its serialised form, which adds the
    /// resource's `name`), validating it again like any other input.
    pub fn from_recorded(mut value: serde_json::Value) -> Result<Finding, FindingError> {
        if let Some(resource) = value.get_mut("resource").and_then(|r| r.as_object_mut()) {
            resource.remove("name");
        }
        Self::from_canonical_value(value)
    }

    /// Every identifier a fixer may declare to handle this finding.
    pub fn control_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.control_id.as_str())
            .chain(self.control_aliases.iter().map(String::as_str))
    }

    pub(crate) fn validate(raw: RawFinding) -> Result<Finding, FindingError> {
        let id = non_empty("id", raw.id, 512)?;
        let control_id = non_empty("control_id", raw.control_id, 256)?;
        let mut control_aliases = Vec::with_capacity(raw.control_aliases.len());
        for alias in raw.control_aliases.into_iter().take(16) {
            control_aliases.push(non_empty("control_aliases", alias, 256)?);
        }
        let mut projects = Vec::with_capacity(raw.projects.len());
        for project in raw.projects.into_iter().take(64) {
            projects.push(non_empty("projects", project, 256)?);
        }
        if raw.title.len() > 4096 {
            return Err(invalid("title", "is over the limit of 4096 bytes"));
        }
        if raw.resource.tags.len() > 128 {
            return Err(invalid("resource.tags", "has more than 128 tags"));
        }
        let r = raw.resource;
        if !is_account_id(&r.account_id) {
            return Err(invalid(
                "resource.account_id",
                format!("{:?} is not a 12-digit AWS account ID", r.account_id),
            ));
        }
        if !is_region(&r.region) {
            return Err(invalid(
                "resource.region",
                format!("{:?} is not an AWS region", r.region),
            ));
        }
        let resource_type = non_empty("resource.type", r.resource_type, 256)?;
        let arn = parse_arn(&r.arn).map_err(|e| invalid("resource.arn", e))?;
        let partition = partition_of(&r.region);
        if arn.partition != partition {
            return Err(invalid(
                "resource.arn",
                format!(
                    "partition {} does not match region {} (which is in partition {partition})",
                    arn.partition, r.region
                ),
            ));
        }
        let name = resource_name(&arn, &resource_type, &r.account_id, &r.region)?;
        // Every later comparison (exceptions, sessions, dedup) sees one spelling of the ARN.
        let canonical = canonical_arn(&resource_type, &arn, &name, &r.account_id, &r.region)
            .unwrap_or_else(|| r.arn.clone());
        let correlation_id = match raw.correlation_id {
            Some(c) => non_empty("correlation_id", c, 256)?,
            None => id.clone(),
        };
        let first_observed_at = match raw.first_observed_at {
            None => None,
            Some(t) => Some(crate::timestamp::normalise(&t).ok_or_else(|| {
                invalid(
                    "first_observed_at",
                    "is not a timestamp (RFC 3339, e.g. 2026-11-20T08:00:00Z, or epoch seconds)",
                )
            })?),
        };
        Ok(Finding {
            id,
            source: non_empty("source", raw.source, 256)?,
            control_id,
            control_aliases,
            projects,
            title: raw.title,
            severity: raw.severity,
            resource: Resource {
                arn: canonical,
                resource_type,
                account_id: r.account_id,
                region: r.region,
                name,
                tags: r.tags,
            },
            correlation_id,
            first_observed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_json(arn: &str) -> String {
        format!(
            r#"{{"id":"f-1","control_id":"S3.8","severity":"HIGH",
            "resource":{{"arn":"{arn}","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1"}}}}"#
        )
    }

    #[test]
    fn parses_a_bucket_finding() {
        let f = Finding::from_canonical_json(s3_json("arn:aws:s3:::my-bucket").as_bytes()).unwrap();
        assert_eq!(f.resource.name, "my-bucket");
        assert_eq!(f.correlation_id, "f-1");
        assert_eq!(f.severity, Severity::High);
    }

    #[test]
    fn rejects_bad_arns_precisely() {
        let err = Finding::from_canonical_json(s3_json("arn:aws:s3:::Bad_Bucket").as_bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field resource.arn: \"Bad_Bucket\" is not a valid bucket name"
        );
        let err = Finding::from_canonical_json(s3_json("not-an-arn").as_bytes()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("field resource.arn: \"not-an-arn\" is not an ARN"));
    }

    #[test]
    fn security_group_arn_must_match_account_and_region() {
        let json = r#"{"id":"f","control_id":"EC2.13","severity":"CRITICAL","resource":{
            "arn":"arn:aws:ec2:us-east-1:111111111111:security-group/sg-0abc","type":"AWS::EC2::SecurityGroup",
            "account_id":"123456789012","region":"us-east-1"}}"#;
        let err = Finding::from_canonical_json(json.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field resource.arn: account 111111111111 differs from resource.account_id 123456789012"
        );
    }

    #[test]
    fn s3_arns_have_no_region_or_account_and_partitions_match_regions() {
        let err = Finding::from_canonical_json(
            s3_json("arn:aws:s3:us-east-1:123456789012:name").as_bytes(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("empty region and account"),
            "{err}"
        );
        let err =
            Finding::from_canonical_json(s3_json("arn:aws-cn:s3:::name").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("does not match region"), "{err}");
        let f = Finding::from_canonical_json(s3_json("arn:aws:s3:::name").as_bytes()).unwrap();
        assert_eq!(f.resource.arn, "arn:aws:s3:::name");
    }

    #[test]
    fn rejects_unknown_severity_and_fields() {
        let json = s3_json("arn:aws:s3:::b-1").replace("HIGH", "SEVERE");
        assert!(matches!(
            Finding::from_canonical_json(json.as_bytes()),
            Err(FindingError::Malformed(_))
        ));
        let json = s3_json("arn:aws:s3:::b-1").replace("\"id\"", "\"extra\":1,\"id\"");
        assert!(matches!(
            Finding::from_canonical_json(json.as_bytes()),
            Err(FindingError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_oversized_payloads_before_parsing() {
        let big = vec![b' '; MAX_FINDING_BYTES + 1];
        assert_eq!(
            Finding::from_canonical_json(&big),
            Err(FindingError::TooLarge {
                size: MAX_FINDING_BYTES + 1
            })
        );
    }
}
