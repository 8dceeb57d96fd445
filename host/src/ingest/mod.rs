//! Ingest: unwrap envelopes, recognise the source, normalise to one [`Finding`].
//!
//! `ingest` never fails and never panics: every message in a payload comes out as a finding,
//! a not-actionable note (a resolved Wiz issue, a passed Security Hub control), or a rejection
//! with a precise reason. The pipeline turns each into exactly one audit record.

pub mod envelope;
pub mod security_hub;
pub mod wiz;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::finding::{Finding, Severity};

/// A payload larger than this is rejected before parsing: 6 MiB is the largest event Lambda
/// delivers.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Findings from one payload beyond this are rejected as a whole.
const MAX_FINDINGS_PER_PAYLOAD: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngestConfig {
    pub wiz: wiz::WizConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Canonical,
    Wiz,
    SecurityHub,
    /// A person's approval of a plan (`salve-approval`), e.g. from a chat button.
    SalveApproval,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    Finding(Box<Finding>),
    /// A well-formed finding that says there is nothing to do (resolved, passed, suppressed).
    NotActionable {
        finding_id: String,
        reason: String,
    },
    Rejected {
        reason: String,
    },
    /// A `salve-approval` message, not yet authenticated: the pipeline checks its HMAC.
    Approval(Box<crate::approval::ApprovalMessage>),
}

impl IngestOutcome {
    pub(crate) fn rejected(reason: String) -> IngestOutcome {
        IngestOutcome::Rejected { reason }
    }

    /// The finding's ID, when the message held a recognisable finding.
    pub fn finding_id(&self) -> Option<&str> {
        match self {
            IngestOutcome::Finding(f) => Some(&f.id),
            IngestOutcome::NotActionable { finding_id, .. } => Some(finding_id),
            IngestOutcome::Rejected { .. } | IngestOutcome::Approval(_) => None,
        }
    }
}

/// One message of a payload, normalised.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The envelopes it was found in, outermost first (`lambda-sqs-record[0]`, `sns-notification`).
    pub envelope: Vec<String>,
    /// The recognised source; `None` when the message was not recognised at all.
    pub source: Option<Source>,
    pub outcome: IngestOutcome,
}

// Normalisation shared by every source.

/// Tags as an object of strings or a list of `{key, value}` pairs; anything else is ignored.
pub(crate) fn tags(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if let Some(v) = v.as_str() {
                    out.insert(k.clone(), v.to_string());
                }
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let key = item.get("key").or_else(|| item.get("Key"));
                let value = item.get("value").or_else(|| item.get("Value"));
                if let (Some(Value::String(k)), Some(Value::String(v))) = (key, value) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        _ => {}
    }
    out
}

pub(crate) fn parse_severity(raw: &str) -> Option<Severity> {
    Some(match raw.to_ascii_uppercase().as_str() {
        "INFORMATIONAL" | "INFO" => Severity::Informational,
        "LOW" => Severity::Low,
        "MEDIUM" => Severity::Medium,
        "HIGH" => Severity::High,
        "CRITICAL" => Severity::Critical,
        _ => return None,
    })
}

/// The resource type an ARN itself names, for the types salve has fixers for.
pub(crate) fn type_from_arn(arn: &str) -> Option<&'static str> {
    let parsed = crate::finding::parse_arn(arn).ok()?;
    crate::kinds::for_arn(&parsed).map(|k| k.spec.name)
}

fn describe_unrecognised(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            format!(
                "unrecognised payload: not a canonical finding, a Wiz automation-rule payload or a Security Hub finding (top-level keys: {})",
                keys.join(", ")
            )
        }
        other => format!(
            "unrecognised payload: a JSON {} is not a finding",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            }
        ),
    }
}

fn is_canonical(v: &Value) -> bool {
    v.get("control_id").is_some() && v.pointer("/resource/arn").is_some()
}

fn recognise(body: Value, cfg: &IngestConfig) -> Vec<(Option<Source>, IngestOutcome)> {
    if body.get("type").and_then(Value::as_str) == Some(crate::approval::MESSAGE_TYPE) {
        let outcome = match serde_json::from_value(body) {
            Ok(m) => IngestOutcome::Approval(Box::new(m)),
            Err(e) => IngestOutcome::rejected(format!("malformed salve-approval message: {e}")),
        };
        return vec![(Some(Source::SalveApproval), outcome)];
    }
    if is_canonical(&body) {
        let outcome = match Finding::from_canonical_value(body) {
            Ok(f) => IngestOutcome::Finding(Box::new(f)),
            Err(e) => IngestOutcome::rejected(e.to_string()),
        };
        return vec![(Some(Source::Canonical), outcome)];
    }
    if security_hub::is_event(&body) {
        return security_hub::normalise_event(&body)
            .into_iter()
            .map(|o| (Some(Source::SecurityHub), o))
            .collect();
    }
    if security_hub::is_asff(&body) {
        return vec![(Some(Source::SecurityHub), security_hub::normalise(&body))];
    }
    if wiz::recognise(&body, &cfg.wiz) {
        return vec![(Some(Source::Wiz), wiz::normalise(&body, &cfg.wiz))];
    }
    vec![(None, IngestOutcome::rejected(describe_unrecognised(&body)))]
}

/// Every message in `payload`, normalised. Never empty: a payload with nothing usable yields one
/// rejection that says why.
pub fn ingest(payload: &[u8], cfg: &IngestConfig) -> Vec<Ingested> {
    let whole = |outcome| {
        vec![Ingested {
            envelope: Vec::new(),
            source: None,
            outcome,
        }]
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return whole(IngestOutcome::rejected(format!(
            "payload is {} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit",
            payload.len()
        )));
    }
    let value: Value = match parse_strict(payload) {
        Ok(v) => v,
        Err(e) => return whole(IngestOutcome::rejected(format!("payload is not JSON: {e}"))),
    };
    let mut out = Vec::new();
    for message in envelope::unwrap(value) {
        match message.body {
            Ok(body) => {
                for (source, outcome) in recognise(body, cfg) {
                    out.push(Ingested {
                        envelope: message.envelope.clone(),
                        source,
                        outcome,
                    });
                }
            }
            Err(reason) => out.push(Ingested {
                envelope: message.envelope,
                source: None,
                outcome: IngestOutcome::rejected(reason),
            }),
        }
        if out.len() > MAX_FINDINGS_PER_PAYLOAD {
            return whole(IngestOutcome::rejected(format!(
                "payload holds more than {MAX_FINDINGS_PER_PAYLOAD} findings"
            )));
        }
    }
    out
}

/// Parses JSON like `serde_json::from_slice`, but refuses an object with a repeated key. With
/// two `resource` keys, one reader upstream (the one that decided to publish) and salve would
/// act on different resources; only a payload that means one thing is accepted.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} appears twice in one object"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
