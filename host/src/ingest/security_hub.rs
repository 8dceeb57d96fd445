//! AWS Security Hub findings in ASFF, usually inside an EventBridge "Security Hub Findings -
//! Imported" event whose `detail.findings` may hold several findings.

use serde_json::Value;

use super::{parse_severity, tags, type_from_arn, IngestOutcome};

use crate::finding::{Finding, RawFinding, RawResource};

/// Findings per event beyond this are rejected: Security Hub sends at most 100 per event.
const MAX_FINDINGS_PER_EVENT: usize = 100;

/// An ASFF finding on its own (as `aws securityhub get-findings` prints one).
pub fn is_asff(v: &Value) -> bool {
    v.get("SchemaVersion").is_some() && v.get("AwsAccountId").is_some()
}

pub fn is_event(v: &Value) -> bool {
    v.get("source").and_then(Value::as_str) == Some("aws.securityhub")
        && v.get("detail-type").is_some()
}

/// Every finding in an EventBridge Security Hub event, one outcome each.
pub fn normalise_event(event: &Value) -> Vec<IngestOutcome> {
    let kind = event.get("detail-type").and_then(Value::as_str);
    if kind != Some("Security Hub Findings - Imported") {
        return vec![IngestOutcome::rejected(format!(
            "Security Hub event of type {kind:?} is not \"Security Hub Findings - Imported\""
        ))];
    }
    let Some(findings) = event.pointer("/detail/findings").and_then(Value::as_array) else {
        return vec![IngestOutcome::rejected(
            "Security Hub event: detail.findings is missing or not an array".into(),
        )];
    };
    if findings.is_empty() {
        return vec![IngestOutcome::rejected(
            "Security Hub event: detail.findings is empty".into(),
        )];
    }
    if findings.len() > MAX_FINDINGS_PER_EVENT {
        return vec![IngestOutcome::rejected(format!(
            "Security Hub event holds {} findings, over the limit of {MAX_FINDINGS_PER_EVENT}",
            findings.len()
        ))];
    }
    findings.iter().map(normalise).collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// ASFF resource types to the CloudFormation-style names salve uses.
fn resource_type(asff_type: &str) -> String {
    crate::kinds::for_security_hub_type(asff_type)
        .map(|k| k.spec.name)
        .unwrap_or(asff_type)
        .to_string()
}

/// The control ID: `Compliance.SecurityControlId` with consolidated findings, otherwise the last
/// segment of a standard's `GeneratorId` (`aws-foundational-security-best-practices/v/1.0.0/S3.8`).
fn control_id(f: &Value) -> Option<String> {
    if let Some(id) = text(f, "/Compliance/SecurityControlId") {
        return Some(id.to_string());
    }
    let generator = text(f, "/GeneratorId")?;
    let last = generator.rsplit('/').next()?;
    (generator.starts_with("security-control/") || generator.contains("/v/"))
        .then(|| last.to_string())
}

pub fn normalise(f: &Value) -> IngestOutcome {
    let Some(id) = text(f, "/Id") else {
        return IngestOutcome::rejected("ASFF finding: required field Id is missing".into());
    };
    let not_actionable = |reason: String| IngestOutcome::NotActionable {
        finding_id: id.to_string(),
        reason,
    };
    let compliance = text(f, "/Compliance/Status").unwrap_or("(none)");
    if compliance != "FAILED" {
        return not_actionable(format!(
            "Security Hub compliance status is {compliance}, not FAILED"
        ));
    }
    let record_state = text(f, "/RecordState").unwrap_or("(none)");
    if record_state != "ACTIVE" {
        return not_actionable(format!(
            "Security Hub record state is {record_state}, not ACTIVE"
        ));
    }
    if let Some(workflow) = text(f, "/Workflow/Status") {
        if matches!(workflow, "SUPPRESSED" | "RESOLVED") {
            return not_actionable(format!("Security Hub workflow status is {workflow}"));
        }
    }
    let Some(account) = text(f, "/AwsAccountId") else {
        return IngestOutcome::rejected(
            "ASFF finding: required field AwsAccountId is missing".into(),
        );
    };
    let Some(label) = text(f, "/Severity/Label") else {
        return IngestOutcome::rejected(
            "ASFF finding: required field Severity.Label is missing".into(),
        );
    };
    let Some(severity) = parse_severity(label) else {
        return IngestOutcome::rejected(format!(
            "ASFF finding: Severity.Label {label:?} is not one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL"
        ));
    };
    let Some(control_id) = control_id(f) else {
        return IngestOutcome::rejected(
            "ASFF finding: neither Compliance.SecurityControlId nor a standard's GeneratorId names the control"
                .into(),
        );
    };
    let Some(resource) = f.pointer("/Resources/0") else {
        return IngestOutcome::rejected("ASFF finding: Resources is missing or empty".into());
    };
    let Some(arn) = text(resource, "/Id") else {
        return IngestOutcome::rejected("ASFF finding: Resources[0].Id is missing".into());
    };
    let Some(region) = text(resource, "/Region").or_else(|| text(f, "/Region")) else {
        return IngestOutcome::rejected(
            "ASFF finding: neither Resources[0].Region nor Region is present".into(),
        );
    };
    let declared = text(resource, "/Type").map(resource_type);
    // Some resources have no ARN (an account: `AWS::::Account:<id>`); the declared kind says
    // how to name it, or validation rejects the ID as it stands.
    let arn = match declared.as_deref().and_then(crate::kinds::get) {
        Some(kind) if !arn.starts_with("arn:") => kind
            .arn_for_id(arn, true, account, region)
            .unwrap_or_else(|| arn.to_string()),
        _ => arn.to_string(),
    };
    let arn = arn.as_str();
    let resource_type = type_from_arn(arn)
        .map(str::to_string)
        .or(declared)
        .unwrap_or_default();
    let raw = RawFinding {
        id: id.to_string(),
        source: "security-hub".into(),
        control_id,
        control_aliases: Vec::new(),
        projects: Vec::new(),
        title: text(f, "/Title").unwrap_or_default().to_string(),
        severity,
        resource: RawResource {
            arn: arn.to_string(),
            resource_type,
            account_id: account.to_string(),
            region: region.to_string(),
            tags: tags(resource.get("Tags")),
        },
        correlation_id: Some(id.to_string()),
        first_observed_at: text(f, "/FirstObservedAt")
            .or_else(|| text(f, "/CreatedAt"))
            .and_then(crate::timestamp::normalise),
    };
    match Finding::validate(raw) {
        Ok(finding) => IngestOutcome::Finding(Box::new(finding)),
        Err(e) => IngestOutcome::rejected(format!("ASFF finding: normalised {e}")),
    }
}
