//! Risk score: inherent severity × exposure × data sensitivity, as a priority P1 (act now) to P4.
//!
//! Unknown exposure counts as internet and unknown sensitivity as internal: a missing tag must
//! never make a finding look safer than it may be. Escalation and exception hints, which change
//! who gets paged, use only values that were actually tagged.

use serde::Serialize;

use crate::finding::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exposure {
    Internet,
    Vpn,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sensitivity {
    Pii,
    Payment,
    Health,
    Internal,
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RiskScore {
    pub severity: Severity,
    pub exposure: Exposure,
    /// False when the exposure was not tagged and was assumed.
    pub exposure_known: bool,
    pub sensitivity: Sensitivity,
    pub sensitivity_known: bool,
    pub score: u32,
    pub priority: Priority,
    /// All three factors high: the notifier is told it is urgent.
    pub urgent: bool,
    /// All three factors low: worth documenting an exception instead of fixing.
    pub suggest_exception: bool,
}

pub fn parse_exposure(tag: &str) -> Option<Exposure> {
    Some(match tag.trim().to_ascii_lowercase().as_str() {
        "internet" | "internet-facing" | "public" => Exposure::Internet,
        "vpn" => Exposure::Vpn,
        "private" | "internal" => Exposure::Private,
        _ => return None,
    })
}

pub fn parse_sensitivity(tag: &str) -> Option<Sensitivity> {
    Some(match tag.trim().to_ascii_lowercase().as_str() {
        "pii" => Sensitivity::Pii,
        "payment" | "pci" => Sensitivity::Payment,
        "health" | "phi" => Sensitivity::Health,
        "internal" | "confidential" => Sensitivity::Internal,
        "public" => Sensitivity::Public,
        _ => return None,
    })
}

fn severity_weight(s: Severity) -> u32 {
    match s {
        Severity::Critical => 4,
        Severity::High => 3,
        Severity::Medium => 2,
        Severity::Low | Severity::Informational => 1,
    }
}

pub(crate) fn exposure_weight(e: Exposure) -> u32 {
    match e {
        Exposure::Internet => 3,
        Exposure::Vpn => 2,
        Exposure::Private => 1,
    }
}

pub(crate) fn sensitivity_weight(s: Sensitivity) -> u32 {
    match s {
        Sensitivity::Pii | Sensitivity::Payment | Sensitivity::Health => 3,
        Sensitivity::Internal => 2,
        Sensitivity::Public => 1,
    }
}

pub fn score(
    severity: Severity,
    exposure_tag: Option<&str>,
    sensitivity_tag: Option<&str>,
) -> RiskScore {
    let exposure = exposure_tag.and_then(parse_exposure);
    let sensitivity = sensitivity_tag.and_then(parse_sensitivity);
    let (e, s) = (
        exposure.unwrap_or(Exposure::Internet),
        sensitivity.unwrap_or(Sensitivity::Internal),
    );
    let score = severity_weight(severity) * exposure_weight(e) * sensitivity_weight(s);
    let priority = match score {
        27.. => Priority::P1,
        12..=26 => Priority::P2,
        6..=11 => Priority::P3,
        _ => Priority::P4,
    };
    let high_severity = severity >= Severity::High;
    let low_severity = severity <= Severity::Low;
    RiskScore {
        severity,
        exposure: e,
        exposure_known: exposure.is_some(),
        sensitivity: s,
        sensitivity_known: sensitivity.is_some(),
        score,
        priority,
        urgent: high_severity
            && exposure == Some(Exposure::Internet)
            && sensitivity.is_some_and(|s| sensitivity_weight(s) == 3),
        suggest_exception: low_severity
            && exposure == Some(Exposure::Private)
            && sensitivity == Some(Sensitivity::Public),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_the_product() {
        let p = |sev, e, s| score(sev, e, s).priority;
        assert_eq!(
            p(Severity::Critical, Some("internet"), Some("pii")),
            Priority::P1
        );
        assert_eq!(
            p(Severity::High, Some("internet"), Some("payment")),
            Priority::P1
        );
        assert_eq!(
            p(Severity::High, Some("vpn"), Some("internal")),
            Priority::P2
        );
        assert_eq!(
            p(Severity::Medium, Some("vpn"), Some("internal")),
            Priority::P3
        );
        assert_eq!(
            p(Severity::Low, Some("private"), Some("public")),
            Priority::P4
        );
    }

    #[test]
    fn unknown_factors_are_assumed_high_but_never_escalate() {
        let r = score(Severity::Critical, None, None);
        assert_eq!((r.exposure, r.exposure_known), (Exposure::Internet, false));
        assert_eq!(
            (r.sensitivity, r.sensitivity_known),
            (Sensitivity::Internal, false)
        );
        assert_eq!(r.priority, Priority::P2);
        assert!(!r.urgent);
    }

    #[test]
    fn urgent_and_exception_hints_need_all_three() {
        assert!(score(Severity::High, Some("internet"), Some("health")).urgent);
        assert!(!score(Severity::Medium, Some("internet"), Some("health")).urgent);
        assert!(score(Severity::Low, Some("private"), Some("public")).suggest_exception);
        assert!(!score(Severity::Low, Some("vpn"), Some("public")).suggest_exception);
    }
}
