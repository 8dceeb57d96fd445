//! Eligibility: may this finding be fixed automatically?
//!
//! Two stages. `triage` runs before any AWS call: account, severity, resource type, registered
//! exception. `decide` runs after the plan, with the resource's tags: every guardrail again,
//! then the Rego policies. Each check is recorded with its inputs and result. The built-in
//! checks are a floor the policies cannot lower; anything that errors goes to review.

pub mod exceptions;
pub mod metadata;
pub mod rego;
pub mod risk;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::capabilities::Plan;
use crate::finding::{Finding, Severity};
use crate::kinds::{self, Access};
use crate::runtime::LoadedFixer;
use exceptions::{Date, ExceptionStatus, Exceptions};
use metadata::{Metadata, MetadataValue, TagKeys};
use rego::{PolicyVerdict, RegoPolicy};
use risk::RiskScore;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EligibilityConfig {
    pub severities: Vec<Severity>,
    pub restricted_environments: Vec<String>,
    pub resource_types: Vec<String>,
    pub allowed_actions: Vec<String>,
}

/// The kinds a deployment that says nothing about `[eligibility]` approves: the ones salve
/// shipped with. Frozen on purpose: a kind or write action added later is approved only where a
/// deployment lists it, never by upgrading salve.
pub const DEFAULT_RESOURCE_TYPES: &[&str] = &["AWS::S3::Bucket", "AWS::EC2::SecurityGroup"];
/// The write actions approved by default, frozen for the same reason.
pub const DEFAULT_ALLOWED_ACTIONS: &[&str] = &[
    "s3:PutBucketPublicAccessBlock",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupIngress",
];

impl Default for EligibilityConfig {
    fn default() -> Self {
        EligibilityConfig {
            severities: vec![Severity::High, Severity::Critical],
            restricted_environments: vec!["restricted-production".into()],
            resource_types: DEFAULT_RESOURCE_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            allowed_actions: DEFAULT_ALLOWED_ACTIONS
                .iter()
                .map(|a| a.to_string())
                .collect(),
        }
    }
}

impl EligibilityConfig {
    /// Names that match no kind or write action would approve nothing, silently; a typo there
    /// should stop the deployment instead.
    pub fn validate(&self) -> Result<(), String> {
        if self.severities.is_empty() {
            return Err("eligibility.severities is empty, so no finding could ever be fixed; list at least one severity".into());
        }
        for t in &self.resource_types {
            if kinds::resource_type(t).is_none() {
                let known: Vec<&str> = kinds::specs().map(|t| t.name).collect();
                return Err(format!(
                    "eligibility.resource-types: salve has no fixers for {t:?}; the kinds are {}",
                    known.join(", ")
                ));
            }
        }
        for action in &self.allowed_actions {
            let function = kinds::capability_functions().find(|f| f.iam_action == action.as_str());
            match function {
                Some(f) if f.access == Access::Write => {}
                Some(_) => {
                    return Err(format!(
                        "eligibility.allowed-actions: {action:?} only reads; list the write actions a fix may perform"
                    ))
                }
                None => {
                    let known: Vec<&str> = kinds::capability_functions()
                        .filter(|f| f.access == Access::Write)
                        .map(|f| f.iam_action)
                        .collect();
                    return Err(format!(
                        "eligibility.allowed-actions: no capability performs {action:?}; the write actions are {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Remediate,
    Review,
    Skip,
}

/// What a failed check does to the finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFail {
    Skip,
    Review,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: std::borrow::Cow<'static, str>,
    pub passed: bool,
    pub inputs: CheckInputs,
    /// The reason when it failed; what it established when it passed.
    pub detail: String,
    pub on_fail: OnFail,
}

/// What a check looked at, in the shape each built-in check records. Written untagged, so a
/// record holds the same object of the check's own fields as when this was a
/// `serde_json::Value` (only nested objects' key order differs, which `verify` does not care
/// about). Read back by the key only that shape has, not by trying each shape in turn (a failed
/// try builds an error, and `salve report` reads seven checks a record); an object that fits
/// none, written by another version, is kept as it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CheckInputs {
    /// "exception not approved": what the register and the exception tag say.
    Exception(ExceptionStatus),
    Actions(ActionsInputs),
    Account(AccountInputs),
    ResourceType(ResourceTypeInputs),
    Severity(SeverityInputs),
    Environment(EnvironmentInputs),
    Owner(OwnerInputs),
    TagRead(TagReadInputs),
    /// Inputs a record from another version holds that fit none of the shapes above.
    Recorded(Value),
}

/// "every proposed action allowed".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionsInputs {
    pub allowed: Vec<String>,
    pub fixer_imports: Vec<String>,
    pub proposed: Vec<String>,
}

/// "account allowlisted": the account, and how many are allowlisted (not which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInputs {
    pub account_id: String,
    pub allowlisted_accounts: usize,
}

/// "resource type approved".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceTypeInputs {
    pub approved: Vec<String>,
    pub resource_type: String,
}

/// "severity eligible".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityInputs {
    pub eligible: Vec<String>,
    pub severity: Severity,
}

/// "environment not restricted", with where the environment came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentInputs {
    pub environment: MetadataValue,
    pub restricted: Vec<String>,
}

/// "owner present", with where the owner came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerInputs {
    pub owner: MetadataValue,
}

/// "resource tags read": why the resource's own tags could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagReadInputs {
    pub error: String,
}

impl<'de> Deserialize<'de> for CheckInputs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(CheckInputs::from_recorded(value))
    }
}

impl CheckInputs {
    /// The typed shape of a recorded object, chosen by the key only it has.
    fn from_recorded(value: Value) -> CheckInputs {
        fn read<'a, T: Deserialize<'a>>(
            value: &'a Value,
            shape: fn(T) -> CheckInputs,
        ) -> Option<CheckInputs> {
            T::deserialize(value).ok().map(shape)
        }
        let Some(fields) = value.as_object() else {
            return CheckInputs::Recorded(value);
        };
        // In order: an approved exception has an `owner` too, so `status` is looked for first.
        type ReadAs = fn(&Value) -> Option<CheckInputs>;
        let shapes: [(&str, ReadAs); 8] = [
            ("status", |v| read(v, CheckInputs::Exception)),
            ("proposed", |v| read(v, CheckInputs::Actions)),
            ("account_id", |v| read(v, CheckInputs::Account)),
            ("resource_type", |v| read(v, CheckInputs::ResourceType)),
            ("severity", |v| read(v, CheckInputs::Severity)),
            ("environment", |v| read(v, CheckInputs::Environment)),
            ("owner", |v| read(v, CheckInputs::Owner)),
            ("error", |v| read(v, CheckInputs::TagRead)),
        ];
        let typed = shapes
            .iter()
            .find(|(key, _)| fields.contains_key(*key))
            .and_then(|(_, read_as)| read_as(&value));
        typed.unwrap_or(CheckInputs::Recorded(value))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyVerdict>,
    pub requires_approval: bool,
}

impl Decision {
    /// Whether the only thing between this decision and a fix is a restricted environment: the
    /// one failed check is `environment not restricted` with an environment named, and the
    /// policies add nothing but the same reason (`default.rego` words it as the check does).
    pub fn only_environment_restricted(&self) -> bool {
        let failed: Vec<&Check> = self.checks.iter().filter(|c| !c.passed).collect();
        let [check] = failed.as_slice() else {
            return false;
        };
        let restricted =
            check.name == "environment not restricted" && check.detail.ends_with(" is restricted");
        let policy_agrees = self.policy.as_ref().is_none_or(|p| {
            p.error.is_none()
                && p.skip.is_empty()
                && p.require_approval.is_empty()
                && p.review.iter().all(|r| *r == check.detail)
        });
        restricted && policy_agrees && !self.requires_approval
    }

    /// Combines the checks and the policy verdict. Precedence: a policy error is review (fail
    /// closed); then skip; then review or approval; only a clean sheet is remediate.
    fn from_parts(checks: Vec<Check>, policy: Option<PolicyVerdict>) -> Decision {
        let mut skip: Vec<String> = Vec::new();
        let mut review: Vec<String> = Vec::new();
        let push = |list: &mut Vec<String>, r: &str| {
            if !list.iter().any(|x| x == r) {
                list.push(r.to_string());
            }
        };
        for c in checks.iter().filter(|c| !c.passed) {
            match c.on_fail {
                OnFail::Skip => push(&mut skip, &c.detail),
                OnFail::Review => push(&mut review, &c.detail),
            }
        }
        let mut requires_approval = false;
        if let Some(p) = &policy {
            if let Some(e) = &p.error {
                return Decision {
                    verdict: Verdict::Review,
                    reason: Some(format!("policy error, failing closed: {e}")),
                    checks,
                    policy,
                    requires_approval: false,
                };
            }
            p.skip.iter().for_each(|r| push(&mut skip, r));
            p.review.iter().for_each(|r| push(&mut review, r));
            for r in &p.require_approval {
                requires_approval = true;
                push(&mut review, &format!("approval required: {r}"));
            }
        }
        let (verdict, reasons) = if !skip.is_empty() {
            (Verdict::Skip, skip)
        } else if !review.is_empty() {
            (Verdict::Review, review)
        } else {
            (Verdict::Remediate, Vec::new())
        };
        Decision {
            verdict,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            checks,
            policy,
            requires_approval,
        }
    }
}

/// Everything `decide` weighs, gathered by the pipeline.
pub struct DecisionInput<'a> {
    pub finding: &'a Finding,
    pub fixer: &'a LoadedFixer,
    pub plan: &'a Plan,
    pub metadata: &'a Metadata,
    pub risk: &'a RiskScore,
    /// Why the resource's tags could not be read, if they could not.
    pub tag_read_error: Option<&'a str>,
    /// Whether and where Terraform manages the resource; `None` without `[[iac.terraform]]`.
    pub iac: Option<&'a crate::iac::IacInput>,
}

/// `input` as the Rego policies see it.
#[derive(Serialize)]
struct PolicyInput<'a> {
    finding: &'a Finding,
    metadata: BTreeMap<&'static str, &'a str>,
    exception: &'a ExceptionStatus,
    plan: &'a Plan,
    fixer: FixerInput<'a>,
    risk: &'a RiskScore,
    iac: Option<&'a crate::iac::IacInput>,
}

#[derive(Serialize)]
struct FixerInput<'a> {
    name: &'a str,
    version: &'a str,
    resource_type: &'a str,
    controls: &'a [String],
}

pub struct EligibilityPolicy {
    config: EligibilityConfig,
    accounts: BTreeSet<String>,
    tag_keys: TagKeys,
    exceptions: Exceptions,
    rego: RegoPolicy,
    /// `data.salve.config` as the policies see it.
    rego_data: Value,
}

fn check(
    name: &'static str,
    passed: bool,
    inputs: CheckInputs,
    detail: String,
    on_fail: OnFail,
) -> Check {
    Check {
        name: name.into(),
        passed,
        inputs,
        detail,
        on_fail,
    }
}

impl EligibilityPolicy {
    pub fn new(
        config: EligibilityConfig,
        accounts: BTreeSet<String>,
        tag_keys: TagKeys,
        exceptions: Exceptions,
        policy_paths: &[PathBuf],
    ) -> Result<EligibilityPolicy> {
        let mut config = config;
        // Environments compare case-insensitively; metadata values reach the policy lowercased.
        for e in &mut config.restricted_environments {
            *e = e.to_ascii_lowercase();
        }
        let data = json!({
            "severities": config.severities,
            "restricted_environments": config.restricted_environments,
            "resource_types": config.resource_types,
            "allowed_actions": config.allowed_actions,
            "accounts": accounts,
        });
        let rego = RegoPolicy::load(policy_paths, data.clone())?;
        Ok(EligibilityPolicy {
            config,
            accounts,
            tag_keys,
            exceptions,
            rego,
            rego_data: data,
        })
    }

    pub fn tag_keys(&self) -> &TagKeys {
        &self.tag_keys
    }

    pub fn restricted_environments(&self) -> &[String] {
        &self.config.restricted_environments
    }

    pub fn policy_files(&self) -> &[String] {
        self.rego.files()
    }

    /// Whether the operator's policies are evaluated at all (none are loaded by default), so
    /// their input need not be gathered.
    pub fn has_operator_policies(&self) -> bool {
        self.rego.evaluates()
    }

    fn severity_check(&self, f: &Finding) -> Check {
        let eligible: Vec<String> = self
            .config
            .severities
            .iter()
            .map(|s| s.to_string())
            .collect();
        let passed = self.config.severities.contains(&f.severity);
        let detail = if passed {
            format!("severity {} is eligible", f.severity)
        } else {
            format!(
                "severity {} is not eligible (eligible: {})",
                f.severity,
                eligible.join(", ")
            )
        };
        check(
            "severity eligible",
            passed,
            CheckInputs::Severity(SeverityInputs {
                eligible,
                severity: f.severity,
            }),
            detail,
            OnFail::Skip,
        )
    }

    fn account_check(&self, f: &Finding) -> Check {
        let account = &f.resource.account_id;
        let passed = self.accounts.contains(account);
        check(
            "account allowlisted",
            passed,
            CheckInputs::Account(AccountInputs {
                account_id: account.clone(),
                allowlisted_accounts: self.accounts.len(),
            }),
            if passed {
                format!("account {account} is allowlisted")
            } else {
                "account not allowlisted".into()
            },
            OnFail::Skip,
        )
    }

    fn resource_type_check(&self, f: &Finding) -> Check {
        let t = &f.resource.resource_type;
        let passed = self.config.resource_types.iter().any(|a| a == t);
        check(
            "resource type approved",
            passed,
            CheckInputs::ResourceType(ResourceTypeInputs {
                approved: self.config.resource_types.clone(),
                resource_type: t.clone(),
            }),
            if passed {
                format!("resource type {t} is approved")
            } else {
                format!("resource type {t} is not approved")
            },
            OnFail::Skip,
        )
    }

    fn exception_status(&self, f: &Finding, metadata_exception: Option<&str>) -> ExceptionStatus {
        self.exceptions
            .status(f, metadata_exception, &Date::today())
    }

    fn exception_check(status: &ExceptionStatus) -> Check {
        let (passed, detail) = match status {
            ExceptionStatus::Approved {
                source,
                owner,
                reason,
                ..
            } => (
                false,
                format!("exception approved ({source}, owner {owner}): {reason}"),
            ),
            ExceptionStatus::Expired { expires, owner, .. } => (
                true,
                format!("an exception (owner {owner}) expired on {expires} and no longer counts"),
            ),
            ExceptionStatus::NotApproved { tag_value } => (
                true,
                format!("the exception tag says {tag_value:?}, not approved"),
            ),
            ExceptionStatus::None => (true, "no exception registered".into()),
        };
        check(
            "exception not approved",
            passed,
            CheckInputs::Exception(status.clone()),
            detail,
            OnFail::Skip,
        )
    }

    /// The checks that need no AWS call. A failure here means the finding is skipped before
    /// salve ever assumes a role.
    /// `payload_metadata` is what the payload's own tags say (no resource tags yet).
    pub fn triage(&self, finding: &Finding, payload_metadata: &Metadata) -> Decision {
        let exception = self.exception_status(finding, payload_metadata.exception.value.as_deref());
        let checks = vec![
            self.account_check(finding),
            self.severity_check(finding),
            self.resource_type_check(finding),
            Self::exception_check(&exception),
        ];
        Decision::from_parts(checks, None)
    }

    fn metadata_checks(&self, m: &Metadata, tag_read_error: Option<&str>) -> Vec<Check> {
        let missing = |what: &str| match tag_read_error {
            Some(e) => format!("missing {what} (the resource's tags could not be read: {e})"),
            None => format!("missing {what}"),
        };
        let env = m.environment.value.as_deref();
        let restricted = env.is_some_and(|e| {
            self.config
                .restricted_environments
                .iter()
                .any(|r| r.eq_ignore_ascii_case(e))
        });
        let mut checks = Vec::new();
        // The payload's tags are only a claim; without the resource's own, nothing restrictive
        // can be ruled out, so the finding goes to a person.
        if let Some(e) = tag_read_error {
            checks.push(check(
                "resource tags read",
                false,
                CheckInputs::TagRead(TagReadInputs {
                    error: e.to_string(),
                }),
                format!("the resource's own tags could not be read ({e}), so its environment and exception cannot be confirmed"),
                OnFail::Review,
            ));
        }
        checks.extend(vec![
            check(
                "environment not restricted",
                env.is_some() && !restricted,
                CheckInputs::Environment(EnvironmentInputs {
                    environment: m.environment.clone(),
                    restricted: self.config.restricted_environments.clone(),
                }),
                match env {
                    None => missing("environment"),
                    Some(e) if restricted => format!("environment {e} is restricted"),
                    Some(e) => format!("environment {e} is not restricted"),
                },
                OnFail::Review,
            ),
            check(
                "owner present",
                m.owner.value.is_some(),
                CheckInputs::Owner(OwnerInputs {
                    owner: m.owner.clone(),
                }),
                match &m.owner.value {
                    Some(o) => format!("owner is {o}"),
                    None => missing("owner"),
                },
                OnFail::Review,
            ),
        ]);
        checks
    }

    fn actions_check(&self, fixer: &LoadedFixer, plan: &Plan) -> Check {
        let imported = fixer.actions();
        let proposed: Vec<&str> = plan.changes.iter().map(|c| c.action.as_str()).collect();
        let refused: Vec<&str> = proposed
            .iter()
            .copied()
            .filter(|action| {
                let known = kinds::function_for_action(fixer.resource_type, action);
                let writable = matches!(known, Some(f) if f.access == Access::Write && imported.contains(&f.iam_action));
                !writable || !self.config.allowed_actions.iter().any(|a| a == action)
            })
            .collect();
        check(
            "every proposed action allowed",
            refused.is_empty(),
            CheckInputs::Actions(ActionsInputs {
                allowed: self.config.allowed_actions.clone(),
                fixer_imports: imported.iter().map(|a| a.to_string()).collect(),
                proposed: proposed.iter().map(|a| a.to_string()).collect(),
            }),
            if proposed.is_empty() {
                "proposes no live call".to_string()
            } else if refused.is_empty() {
                format!(
                    "proposed {}; all are allowed write capabilities the fixer imports",
                    proposed.join(", ")
                )
            } else {
                refused
                    .iter()
                    .map(|a| format!("action {a} is not allowed"))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            OnFail::Review,
        )
    }

    /// The input the Rego policies see, typed so it is written once as JSON and read once
    /// into regorus, with no `serde_json::Value` tree between.
    fn policy_input<'a>(
        &self,
        input: &'a DecisionInput<'a>,
        exception: &'a ExceptionStatus,
    ) -> PolicyInput<'a> {
        PolicyInput {
            finding: input.finding,
            metadata: input.metadata.values(),
            exception,
            plan: input.plan,
            fixer: FixerInput {
                name: &input.fixer.manifest.name,
                version: &input.fixer.manifest.version,
                resource_type: input.fixer.resource_type.name,
                controls: &input.fixer.manifest.controls,
            },
            risk: input.risk,
            iac: input.iac,
        }
    }

    /// What the shipped `default.rego` says about `input`: the guardrails written as policy.
    /// The native checks of [`decide`](Self::decide) must give the same reasons; a property
    /// test holds them to it. Builds an engine per call: for tests and reviews, not findings.
    pub fn default_policy_verdict(&self, input: &DecisionInput<'_>) -> Result<PolicyVerdict> {
        let exception =
            self.exception_status(input.finding, input.metadata.exception.value.as_deref());
        let oracle = RegoPolicy::default_policy(self.rego_data.clone())?;
        Ok(oracle.evaluate(&self.policy_input(input, &exception)))
    }

    /// Every guardrail with the full metadata, checked natively, then the operator's policies
    /// (none by default: `default.rego` only restates the guardrails, so it is not evaluated).
    pub fn decide(&self, input: DecisionInput<'_>) -> Decision {
        let exception =
            self.exception_status(input.finding, input.metadata.exception.value.as_deref());
        let mut checks = vec![
            self.account_check(input.finding),
            self.severity_check(input.finding),
            self.resource_type_check(input.finding),
            Self::exception_check(&exception),
        ];
        checks.extend(self.metadata_checks(input.metadata, input.tag_read_error));
        checks.push(self.actions_check(input.fixer, input.plan));
        let verdict = self.rego.evaluate(&self.policy_input(&input, &exception));
        Decision::from_parts(checks, Some(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metadata::MetadataSource;

    fn sourced(value: &str) -> MetadataValue {
        MetadataValue {
            value: Some(value.into()),
            source: MetadataSource::PayloadTags,
            payload: Some(value.into()),
            resource: None,
        }
    }

    /// Every shape reads back as itself: the key each is recognised by is one only it has (an
    /// approved exception has an `owner` too, and must not read as `Owner`).
    #[test]
    fn each_check_inputs_shape_reads_back_as_itself() {
        let shapes = [
            CheckInputs::Exception(ExceptionStatus::Approved {
                source: "register".into(),
                owner: "team".into(),
                reason: "kept public".into(),
                expires: None,
            }),
            CheckInputs::Exception(ExceptionStatus::Expired {
                owner: "team".into(),
                reason: "kept public".into(),
                expires: "2026-01-01".into(),
            }),
            CheckInputs::Exception(ExceptionStatus::NotApproved {
                tag_value: "requested".into(),
            }),
            CheckInputs::Exception(ExceptionStatus::None),
            CheckInputs::Actions(ActionsInputs {
                allowed: vec!["s3:PutBucketPublicAccessBlock".into()],
                fixer_imports: vec!["s3:GetBucketPublicAccessBlock".into()],
                proposed: vec![],
            }),
            CheckInputs::Account(AccountInputs {
                account_id: "123456789012".into(),
                allowlisted_accounts: 1,
            }),
            CheckInputs::ResourceType(ResourceTypeInputs {
                approved: vec!["AWS::S3::Bucket".into()],
                resource_type: "AWS::S3::Bucket".into(),
            }),
            CheckInputs::Severity(SeverityInputs {
                eligible: vec!["HIGH".into()],
                severity: Severity::High,
            }),
            CheckInputs::Environment(EnvironmentInputs {
                environment: sourced("dev"),
                restricted: vec!["production".into()],
            }),
            CheckInputs::Owner(OwnerInputs {
                owner: sourced("team"),
            }),
            CheckInputs::TagRead(TagReadInputs {
                error: "AccessDenied".into(),
            }),
            CheckInputs::Recorded(json!({"written_by": "another version"})),
        ];
        for shape in shapes {
            let text = serde_json::to_string(&shape).unwrap();
            let back: CheckInputs = serde_json::from_str(&text).unwrap();
            assert_eq!(back, shape, "{text}");
        }
    }

    /// The top-level keys stay in the order the `json!` objects had (alphabetical), so a new
    /// record's check reads like an old one's.
    #[test]
    fn check_inputs_are_written_as_the_objects_they_replace() {
        let account = CheckInputs::Account(AccountInputs {
            account_id: "123456789012".into(),
            allowlisted_accounts: 2,
        });
        assert_eq!(
            serde_json::to_string(&account).unwrap(),
            r#"{"account_id":"123456789012","allowlisted_accounts":2}"#
        );
        let severity = CheckInputs::Severity(SeverityInputs {
            eligible: vec!["HIGH".into(), "CRITICAL".into()],
            severity: Severity::Medium,
        });
        assert_eq!(
            serde_json::to_string(&severity).unwrap(),
            r#"{"eligible":["HIGH","CRITICAL"],"severity":"MEDIUM"}"#
        );
    }
}
