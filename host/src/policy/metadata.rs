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

/// How the host reads the tags of a resource whose describe does not carry them (an S3 bucket),
/// when several findings of one payload or queue batch share a read session (`[metadata]
/// tag-read`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagReadMode {
    /// One read per resource with the kind's own action, on exactly that resource.
    #[default]
    PerResource,
    /// One Resource Groups Tagging API `GetResources` per 100 resources of the read group. IAM
    /// cannot scope `tag:GetResources` to resources, so the shared read session may read any
    /// resource's tags in its account and region; salve asks only for the group's ARNs.
    TaggingApi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataSource {
    PayloadTags,
    ResourceTags,
    Missing,
}

/// One piece of metadata: the value decided with, where it came from, and what each source
/// said, so a reviewer sees when the payload and the resource disagreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataValue {
    pub value: Option<String>,
    pub source: MetadataSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub environment: MetadataValue,
    pub owner: MetadataValue,
    pub exception: MetadataValue,
    pub data_classification: MetadataValue,
    pub exposure: MetadataValue,
}

impl Metadata {
    /// Each piece by the name the record gives it, in the record's (alphabetical) order.
    pub fn fields(&self) -> [(&'static str, &MetadataValue); 5] {
        [
            ("data_classification", &self.data_classification),
            ("environment", &self.environment),
            ("exception", &self.exception),
            ("exposure", &self.exposure),
            ("owner", &self.owner),
        ]
    }
}

fn lookup(tags: &BTreeMap<String, String>, key: &str) -> Option<String> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// How restrictive a value is for one kind of metadata; the higher rank wins when the payload
/// and the resource disagree. Equal ranks go to the resource, whose tags are its own truth.
type Rank<'a> = &'a dyn Fn(&str) -> u8;

fn pick(
    key: &str,
    payload: &BTreeMap<String, String>,
    resource: Option<&BTreeMap<String, String>>,
    rank: Rank<'_>,
    lowercase: bool,
) -> MetadataValue {
    let p = lookup(payload, key);
    let r = resource.and_then(|tags| lookup(tags, key));
    let (value, source) = match (&p, &r) {
        (Some(p), Some(r)) if rank(p) > rank(r) => (Some(p.clone()), MetadataSource::PayloadTags),
        (_, Some(r)) => (Some(r.clone()), MetadataSource::ResourceTags),
        (Some(p), None) => (Some(p.clone()), MetadataSource::PayloadTags),
        (None, None) => (None, MetadataSource::Missing),
    };
    // Values compare case-insensitively everywhere (`Restricted-Production` is restricted), so
    // the policy sees them in one case.
    let value = value.map(|v| if lowercase { v.to_ascii_lowercase() } else { v });
    MetadataValue {
        value,
        source,
        payload: p,
        resource: r,
    }
}

impl Metadata {
    /// Combines the payload's tags with the resource's own. A payload can be written by anyone
    /// who can publish to the topic, so for every restrictive check the more restrictive answer
    /// wins: a restricted environment, an approved exception, the more sensitive data class and
    /// the wider exposure, from whichever source says so. `restricted` names the restricted
    /// environments.
    pub fn from_tags(
        keys: &TagKeys,
        payload: &BTreeMap<String, String>,
        resource: Option<&BTreeMap<String, String>>,
        restricted: &[String],
    ) -> Metadata {
        let environment = |v: &str| u8::from(restricted.iter().any(|r| r.eq_ignore_ascii_case(v)));
        let exception = |v: &str| u8::from(v.eq_ignore_ascii_case("approved"));
        let classification = |v: &str| match super::risk::parse_sensitivity(v) {
            Some(s) => super::risk::sensitivity_weight(s) as u8,
            // Unknown words are treated as sensitive, as the risk score treats them.
            None => 3,
        };
        let exposure = |v: &str| match super::risk::parse_exposure(v) {
            Some(e) => super::risk::exposure_weight(e) as u8,
            None => 3,
        };
        let owner = |_: &str| 0;
        Metadata {
            environment: pick(&keys.environment, payload, resource, &environment, true),
            owner: pick(&keys.owner, payload, resource, &owner, false),
            exception: pick(&keys.exception, payload, resource, &exception, true),
            data_classification: pick(
                &keys.data_classification,
                payload,
                resource,
                &classification,
                true,
            ),
            exposure: pick(&keys.exposure, payload, resource, &exposure, true),
        }
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
    fn the_more_restrictive_source_wins_and_keys_ignore_case() {
        let restricted = vec!["restricted-production".to_string()];
        let payload = tags(&[("Owner", "team-a"), ("environment", "dev")]);
        let resource = tags(&[
            ("owner", "team-b"),
            ("Environment", "Restricted-Production"),
        ]);
        let m = Metadata::from_tags(&TagKeys::default(), &payload, Some(&resource), &restricted);
        assert_eq!(
            m.environment.value.as_deref(),
            Some("restricted-production")
        );
        assert_eq!(m.environment.source, MetadataSource::ResourceTags);
        assert_eq!(m.environment.payload.as_deref(), Some("dev"));
        assert_eq!(m.owner.value.as_deref(), Some("team-b"));
        assert_eq!(m.exposure.source, MetadataSource::Missing);

        // A payload cannot talk a restricted resource out of being restricted, nor can a
        // resource's tag undo a payload that says restricted.
        let payload = tags(&[
            ("environment", "RESTRICTED-PRODUCTION"),
            ("exposure", "internet"),
        ]);
        let resource = tags(&[("environment", "dev"), ("exposure", "private")]);
        let m = Metadata::from_tags(&TagKeys::default(), &payload, Some(&resource), &restricted);
        assert_eq!(
            m.environment.value.as_deref(),
            Some("restricted-production")
        );
        assert_eq!(m.environment.source, MetadataSource::PayloadTags);
        assert_eq!(m.exposure.value.as_deref(), Some("internet"));
    }

    #[test]
    fn blank_values_count_as_missing() {
        let m = Metadata::from_tags(&TagKeys::default(), &tags(&[("owner", "  ")]), None, &[]);
        assert_eq!(m.owner.value, None);
    }
}
