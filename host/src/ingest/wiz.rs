//! Wiz automation-rule payloads (the SNS action's body template), read through configurable
//! JSON pointers because Wiz lets users edit the template.
//!
//! Lenient where Wiz itself is sloppy (its test event's `created` timestamp and `projects`),
//! strict on what decisions depend on: the IDs, the account, the region, the severity.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_severity, tags, type_from_arn, IngestOutcome};

use crate::finding::{Finding, RawFinding, RawResource};

/// A JSON pointer (RFC 6901) into the Wiz payload. Checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(String);

impl JsonPointer {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn get<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        v.pointer(&self.0).filter(|v| !v.is_null())
    }
}

impl TryFrom<String> for JsonPointer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!(
                "{s:?} is not a JSON pointer; it must start with '/', like \"/issue/id\""
            ));
        }
        Ok(JsonPointer(s))
    }
}

impl<'de> Deserialize<'de> for JsonPointer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        JsonPointer::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn ptr(s: &str) -> JsonPointer {
    JsonPointer(s.to_string())
}

/// Where each field lives in the payload. The defaults are Wiz's default SNS body template.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WizFields {
    pub trigger_type: JsonPointer,
    pub issue_id: JsonPointer,
    pub issue_status: JsonPointer,
    pub issue_severity: JsonPointer,
    pub issue_projects: JsonPointer,
    pub issue_created: JsonPointer,
    pub resource_id: JsonPointer,
    pub resource_type: JsonPointer,
    pub resource_cloud_platform: JsonPointer,
    pub resource_account: JsonPointer,
    pub resource_region: JsonPointer,
    pub resource_tags: JsonPointer,
    pub control_id: JsonPointer,
    pub control_name: JsonPointer,
    pub control_severity: JsonPointer,
    pub control_rule_id: JsonPointer,
}

impl Default for WizFields {
    fn default() -> Self {
        WizFields {
            trigger_type: ptr("/trigger/type"),
            issue_id: ptr("/issue/id"),
            issue_status: ptr("/issue/status"),
            issue_severity: ptr("/issue/severity"),
            issue_projects: ptr("/issue/projects"),
            issue_created: ptr("/issue/created"),
            resource_id: ptr("/resource/id"),
            resource_type: ptr("/resource/type"),
            resource_cloud_platform: ptr("/resource/cloudPlatform"),
            resource_account: ptr("/resource/subscriptionId"),
            resource_region: ptr("/resource/region"),
            resource_tags: ptr("/resource/tags"),
            control_id: ptr("/control/id"),
            control_name: ptr("/control/name"),
            control_severity: ptr("/control/severity"),
            control_rule_id: ptr("/control/sourceCloudConfigurationRuleId"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WizConfig {
    pub fields: WizFields,
    /// Wiz resource types to AWS resource types, for findings whose resource ID is not an ARN.
    pub resource_types: BTreeMap<String, String>,
}

impl Default for WizConfig {
    fn default() -> Self {
        WizConfig {
            fields: WizFields::default(),
            resource_types: crate::kinds::specs()
                .flat_map(|k| {
                    k.wiz_types
                        .iter()
                        .map(|w| (w.to_string(), k.name.to_string()))
                })
                .collect(),
        }
    }
}

/// Whether this looks like a Wiz payload: the configured issue ID resolves and the document has
/// Wiz's shape.
pub fn recognise(v: &Value, cfg: &WizConfig) -> bool {
    cfg.fields.issue_id.get(v).is_some()
        && (v.get("trigger").is_some() || cfg.fields.resource_id.get(v).is_some())
}

struct Reader<'a> {
    payload: &'a Value,
}

impl Reader<'_> {
    /// A string field, or a number written as a string (Wiz sometimes sends account IDs bare).
    fn text(&self, p: &JsonPointer) -> Option<String> {
        match p.get(self.payload)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn required(&self, p: &JsonPointer) -> Result<String, IngestOutcome> {
        self.text(p).ok_or_else(|| {
            IngestOutcome::rejected(format!(
                "Wiz payload: required field {} is missing or not a string",
                p.as_str()
            ))
        })
    }
}

/// `projects` arrives as null, an array of names or `{id, name}` objects, or a comma-separated
/// string with stray separators.
fn projects(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Object(o) => o
                    .get("name")
                    .or_else(|| o.get("id"))
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    out.retain(|p| !p.is_empty() && p.len() <= 256 && !p.chars().any(char::is_control));
    out.truncate(64);
    out
}

pub fn normalise(payload: &Value, cfg: &WizConfig) -> IngestOutcome {
    match normalise_inner(payload, cfg) {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

fn normalise_inner(payload: &Value, cfg: &WizConfig) -> Result<IngestOutcome, IngestOutcome> {
    let f = &cfg.fields;
    let r = Reader { payload };
    let id = r.required(&f.issue_id)?;
    let not_actionable = |reason: String| IngestOutcome::NotActionable {
        finding_id: id.clone(),
        reason,
    };
    if let Some(kind) = r.text(&f.trigger_type) {
        if kind.eq_ignore_ascii_case("RESOLVED") {
            return Ok(not_actionable(
                "Wiz trigger type is RESOLVED: the issue is closed, so there is nothing to fix"
                    .into(),
            ));
        }
    }
    let status = r.required(&f.issue_status)?;
    if !status.eq_ignore_ascii_case("OPEN") {
        return Ok(not_actionable(format!(
            "Wiz issue status is {status}, not OPEN"
        )));
    }
    if let Some(platform) = r.text(&f.resource_cloud_platform) {
        if !platform.eq_ignore_ascii_case("AWS") {
            return Ok(not_actionable(format!(
                "cloud platform {platform} is not AWS"
            )));
        }
    }
    let severity_text = r
        .text(&f.issue_severity)
        .or_else(|| r.text(&f.control_severity))
        .ok_or_else(|| {
            IngestOutcome::rejected(format!(
                "Wiz payload: required field {} (or {}) is missing or not a string",
                f.issue_severity.as_str(),
                f.control_severity.as_str()
            ))
        })?;
    let severity = parse_severity(&severity_text).ok_or_else(|| {
        IngestOutcome::rejected(format!(
            "Wiz payload: severity {severity_text:?} is not one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL"
        ))
    })?;
    let account = r.required(&f.resource_account)?;
    let region = r.required(&f.resource_region)?;
    let resource_id = r.required(&f.resource_id)?;
    let wiz_type = r.text(&f.resource_type);
    let mapped_type = wiz_type
        .as_deref()
        .and_then(|t| cfg.resource_types.get(t).cloned());
    let (arn, resource_type) = if resource_id.starts_with("arn:") {
        let ty = type_from_arn(&resource_id)
            .map(str::to_string)
            .or(mapped_type)
            .or(wiz_type.clone())
            .unwrap_or_default();
        (resource_id, ty)
    } else if let Some((arn, kind)) = crate::kinds::KINDS.iter().find_map(|k| {
        let typed = mapped_type.as_deref() == Some(k.spec.name);
        k.arn_for_id(&resource_id, typed, &account, &region)
            .map(|arn| (arn, k.spec.name))
    }) {
        (arn, kind.to_string())
    } else {
        return Ok(not_actionable(format!(
            "resource {resource_id:?} of Wiz type {} is not an ARN, and salve cannot build one for that type",
            wiz_type.as_deref().unwrap_or("(none)")
        )));
    };
    let control_id = r.required(&f.control_id)?;
    let raw = RawFinding {
        id: id.clone(),
        source: "wiz".into(),
        control_id,
        control_aliases: r.text(&f.control_rule_id).into_iter().collect(),
        projects: projects(f.issue_projects.get(payload)),
        title: r.text(&f.control_name).unwrap_or_default(),
        severity,
        resource: RawResource {
            arn,
            resource_type,
            account_id: account,
            region,
            tags: tags(f.resource_tags.get(payload)),
        },
        correlation_id: Some(id),
        // Wiz's own formats are loose (its test event's is not a timestamp at all): one that
        // cannot be read falls back to salve's first record, never rejects the finding.
        first_observed_at: f.issue_created.get(payload).and_then(|v| match v {
            Value::String(s) => crate::timestamp::normalise(s),
            Value::Number(n) => crate::timestamp::normalise(&n.to_string()),
            _ => None,
        }),
    };
    Ok(match Finding::validate(raw) {
        Ok(finding) => IngestOutcome::Finding(Box::new(finding)),
        Err(e) => IngestOutcome::rejected(format!("Wiz payload: normalised {e}")),
    })
}
