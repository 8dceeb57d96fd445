//! The metadata eligibility depends on: environment, owner, exception, data classification and
//! exposure. Each comes from the payload's tags when present, otherwise from the resource's own
//! tags (read during the plan phase), and records where it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The tag keys each piece of metadata is read from. Keys match case-insensitively, because
/// `Owner` and `owner` both occur in practice.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TagKeys {
    pub environment: String,
    pub owner: String,
    pub exception: String,
    pub data_classification: String,
    pub exposure: String,
}

impl Default for TagKeys {
    fn default() -> Self {
        TagKeys {
            environment: "environment".into(),
            owner: "owner".into(),
            exception: "salve:exception".into(),
            data_classification: "data-classification".into(),
            exposure: "exposure".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataSource {
    PayloadTags,
    ResourceTags,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataValue {
    pub value: Option<String>,
    pub source: MetadataSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    pub environment: MetadataValue,
    pub owner: MetadataValue,
    pub exception: MetadataValue,
    pub data_classification: MetadataValue,
    pub exposure: MetadataValue,
}

fn lookup(tags: &BTreeMap<String, String>, key: &str) -> Option<String> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn pick(
    key: &str,
    payload: &BTreeMap<String, String>,
    resource: Option<&BTreeMap<String, String>>,
) -> MetadataValue {
    if let Some(value) = lookup(payload, key) {
        return MetadataValue {
            value: Some(value),
            source: MetadataSource::PayloadTags,
        };
    }
    match resource.and_then(|tags| lookup(tags, key)) {
        Some(value) => MetadataValue {
            value: Some(value),
            source: MetadataSource::ResourceTags,
        },
        None => MetadataValue {
            value: None,
            source: MetadataSource::Missing,
        },
    }
}

impl Metadata {
    pub fn from_tags(
        keys: &TagKeys,
        payload: &BTreeMap<String, String>,
        resource: Option<&BTreeMap<String, String>>,
    ) -> Metadata {
        Metadata {
            environment: pick(&keys.environment, payload, resource),
            owner: pick(&keys.owner, payload, resource),
            exception: pick(&keys.exception, payload, resource),
            data_classification: pick(&keys.data_classification, payload, resource),
            exposure: pick(&keys.exposure, payload, resource),
        }
    }

    /// Whether anything is still missing, so the resource's own tags are worth reading.
    pub fn incomplete(&self) -> bool {
        [
            &self.environment,
            &self.owner,
            &self.exception,
            &self.data_classification,
            &self.exposure,
        ]
        .iter()
        .any(|m| m.value.is_none())
    }

    /// The values alone, as the policy sees them: absent keys stay absent, so a Rego rule can
    /// test `not input.metadata.owner`.
    pub fn values(&self) -> BTreeMap<&'static str, &str> {
        [
            ("environment", &self.environment),
            ("owner", &self.owner),
            ("exception", &self.exception),
            ("data_classification", &self.data_classification),
            ("exposure", &self.exposure),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.value.as_deref().map(|v| (k, v)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn payload_tags_win_and_keys_ignore_case() {
        let payload = tags(&[("Owner", "team-a")]);
        let resource = tags(&[("owner", "team-b"), ("Environment", "prod")]);
        let m = Metadata::from_tags(&TagKeys::default(), &payload, Some(&resource));
        assert_eq!(m.owner.value.as_deref(), Some("team-a"));
        assert_eq!(m.owner.source, MetadataSource::PayloadTags);
        assert_eq!(m.environment.source, MetadataSource::ResourceTags);
        assert_eq!(m.exposure.source, MetadataSource::Missing);
    }

    #[test]
    fn blank_values_count_as_missing() {
        let m = Metadata::from_tags(&TagKeys::default(), &tags(&[("owner", "  ")]), None);
        assert_eq!(m.owner.value, None);
    }
}
