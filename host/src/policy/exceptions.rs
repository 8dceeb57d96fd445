//! Registered exceptions: a file of entries, each with an owner, a reason and an expiry date.
//! An expired entry no longer counts, and the decision says so.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// A calendar date, `YYYY-MM-DD`, checked when the file is read. Dates in this form compare
/// correctly as strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Date(String);

impl Date {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn today() -> Date {
        Date(crate::base::rfc3339(std::time::SystemTime::now())[..10].to_string())
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Date, String> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && digits(0..4)
            && digits(5..7)
            && digits(8..10)
            && (1..=12).contains(&s[5..7].parse::<u8>().unwrap_or(0))
            && (1..=31).contains(&s[8..10].parse::<u8>().unwrap_or(0));
        if ok {
            Ok(Date(s))
        } else {
            Err(format!("{s:?} is not a date in the form YYYY-MM-DD"))
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // TOML has a native date type; accept it as well as a quoted string.
        let value = toml::Value::deserialize(d)?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Datetime(dt) => dt.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a date, found {}",
                    other.type_str()
                )))
            }
        };
        Date::try_from(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExceptionEntry {
    pub resource_arn: String,
    /// The control it covers; absent means every control on the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    pub owner: String,
    pub reason: String,
    /// Last day the exception counts (inclusive, UTC).
    pub expires: Date,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    exception: Vec<ExceptionEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct Exceptions {
    entries: Vec<ExceptionEntry>,
}

/// What the exception register and the exception tag say about one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ExceptionStatus {
    Approved {
        source: String,
        owner: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
    },
    Expired {
        owner: String,
        reason: String,
        expires: String,
    },
    /// The exception tag holds something other than "approved" (say, "requested").
    NotApproved {
        tag_value: String,
    },
    None,
}

impl Exceptions {
    pub fn new(entries: Vec<ExceptionEntry>) -> Exceptions {
        Exceptions { entries }
    }

    pub fn load(path: &Path) -> Result<Exceptions> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the exceptions file {}", path.display()))?;
        let file: ExceptionsFile = toml::from_str(&text)
            .with_context(|| format!("in the exceptions file {}", path.display()))?;
        Ok(Exceptions::new(file.exception))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The register is consulted first; an unexpired entry there wins. Otherwise the exception
    /// tag counts when its value is "approved".
    pub fn status(
        &self,
        finding: &Finding,
        tag_value: Option<&str>,
        today: &Date,
    ) -> ExceptionStatus {
        let mut expired = None;
        for e in &self.entries {
            let matches = e.resource_arn == finding.resource.arn
                && e.control_id
                    .as_deref()
                    .is_none_or(|c| finding.control_ids().any(|id| id == c));
            if !matches {
                continue;
            }
            if &e.expires >= today {
                return ExceptionStatus::Approved {
                    source: "exceptions file".into(),
                    owner: e.owner.clone(),
                    reason: e.reason.clone(),
                    expires: Some(e.expires.as_str().to_string()),
                };
            }
            expired = Some(ExceptionStatus::Expired {
                owner: e.owner.clone(),
                reason: e.reason.clone(),
                expires: e.expires.as_str().to_string(),
            });
        }
        match tag_value {
            Some(v) if v.eq_ignore_ascii_case("approved") => ExceptionStatus::Approved {
                source: "exception tag".into(),
                owner: "(tag)".into(),
                reason: "the resource's exception tag says approved".into(),
                expires: None,
            },
            Some(v) if expired.is_none() => ExceptionStatus::NotApproved {
                tag_value: v.to_string(),
            },
            _ => expired.unwrap_or(ExceptionStatus::None),
        }
    }
}
