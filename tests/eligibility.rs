//! Eligibility end to end through the real S3 fixer, with an in-memory bucket: each test flips
//! one guardrail and checks the outcome, the recorded reason, the recorded check, and that the
//! bucket was written only when remediation was allowed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use common::*;
use salve::config::SalveConfig;
use salve::notify::Notifier;
use salve::pipeline::ProcessOptions;
use salve::runtime::RuntimeLimits;
use salve_kind_s3_bucket::host::InMemoryS3Bucket;

struct Case {
    config: SalveConfig,
    payload_tags: Value,
    resource_tags: BTreeMap<String, String>,
    severity: &'static str,
    bucket: &'static str,
    projects: Vec<&'static str>,
}

impl Case {
    fn new() -> Case {
        Case {
            config: test_config(""),
            payload_tags: json!({ "owner": "platform-team", "environment": "dev" }),
            resource_tags: BTreeMap::new(),
            severity: "HIGH",
            bucket: "acme-assets",
            projects: Vec::new(),
        }
    }

    fn config(mut self, extra: &str) -> Case {
        self.config = test_config(extra);
        self
    }

    /// Runs the finding and returns its record and the number of writes that reached the bucket.
    async fn run(self, name: &str) -> (Value, usize) {
        let bucket = Arc::new(InMemoryS3Bucket {
            tags: self.resource_tags,
            ..InMemoryS3Bucket::with(None)
        });
        let audit = scratch(&format!("eligibility-{name}")).join("audit.jsonl");
        let p = pipeline_with(
            &[fixer("s3-block-public-access")],
            RuntimeLimits::default(),
            Box::new(FixedBackend(salve_kind_s3_bucket::host::bind(
                bucket.clone(),
            ))),
            &audit,
            &self.config,
            Notifier::disabled(),
        );
        let finding = json!({
            "id": format!("elig-{name}"),
            "control_id": "S3.8",
            "severity": self.severity,
            "projects": self.projects,
            "resource": {
                "arn": format!("arn:aws:s3:::{}", self.bucket),
                "type": "AWS::S3::Bucket",
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "tags": self.payload_tags,
            }
        });
        let record = process_one(
            &p,
            finding.to_string().as_bytes(),
            ProcessOptions::default(),
        )
        .await;
        (record, bucket.writes())
    }
}

fn check<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["decision"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {}", record["decision"]))
}

/// An operator's policy said `reason`. (The shipped `default.rego` is not evaluated per
/// finding; `tests/default_policy.rs` holds it and the native checks to the same reasons.)
fn policy_says(record: &Value, set: &str, reason: &str) {
    let reasons = &record["decision"]["policy"][set];
    assert!(
        reasons.as_array().unwrap().iter().any(|r| r == reason),
        "policy.{set} lacks {reason:?}: {reasons}"
    );
}

#[tokio::test]
async fn baseline_is_remediated() {
    let (r, writes) = Case::new().run("baseline").await;
    assert_eq!(r["status"], "remediated", "{r}");
    assert_eq!(writes, 1);
    assert_eq!(r["decision"]["verdict"], "remediate");
    assert_eq!(r["decision"]["checks"].as_array().unwrap().len(), 7);
    assert!(r["decision"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["passed"] == true));
    assert_eq!(
        check(&r, "owner present")["inputs"]["owner"]["source"],
        "payload-tags"
    );
}

#[tokio::test]
async fn low_severity_is_skipped_before_any_call() {
    let mut case = Case::new();
    case.severity = "MEDIUM";
    let (r, writes) = case.run("severity").await;
    assert_eq!(r["status"], "skipped");
    assert_eq!(
        r["reason"],
        "severity MEDIUM is not eligible (eligible: HIGH, CRITICAL)"
    );
    assert_eq!(r["decision"]["stage"], "triage");
    assert_eq!(check(&r, "severity eligible")["passed"], false);
    assert_eq!(r["calls"].as_array().unwrap().len(), 0);
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn unlisted_account_is_skipped_before_any_call() {
    let case = Case::new();
    let config = SalveConfig::parse("[accounts.\"999999999999\"]\n", "t", Path::new(".")).unwrap();
    let (r, writes) = Case { config, ..case }.run("account").await;
    assert_eq!(r["status"], "skipped");
    assert_eq!(r["reason"], "account not allowlisted");
    assert_eq!(r["calls"].as_array().unwrap().len(), 0);
    assert!(r.get("fixer").is_none_or(Value::is_null));
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn restricted_environment_goes_to_review() {
    let mut case = Case::new();
    case.payload_tags = json!({ "owner": "platform-team", "environment": "restricted-production" });
    let (r, writes) = case.run("environment").await;
    assert_eq!(r["status"], "review");
    assert_eq!(
        r["reason"],
        "environment restricted-production is restricted"
    );
    assert_eq!(check(&r, "environment not restricted")["passed"], false);
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn missing_owner_goes_to_review_and_nothing_changes() {
    let mut case = Case::new();
    case.payload_tags = json!({ "environment": "dev" });
    let (r, writes) = case.run("owner").await;
    assert_eq!(r["status"], "review");
    assert_eq!(r["reason"], "missing owner");
    assert_eq!(check(&r, "owner present")["passed"], false);
    assert_eq!(r["resource_tags"]["action"], "s3:GetBucketTagging");
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn the_resource_tags_fill_in_missing_metadata() {
    let mut case = Case::new();
    case.payload_tags = json!({});
    case.resource_tags = [("Owner", "storage-team"), ("Environment", "staging")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (r, writes) = case.run("resource-tags").await;
    assert_eq!(r["status"], "remediated", "{r}");
    assert_eq!(
        r["metadata"]["owner"],
        json!({"value": "storage-team", "source": "resource-tags", "resource": "storage-team"})
    );
    assert_eq!(writes, 1);
}

#[tokio::test]
async fn approved_exception_tag_skips() {
    let mut case = Case::new();
    case.resource_tags = [("salve:exception".to_string(), "approved".to_string())].into();
    let (r, writes) = case.run("exception-tag").await;
    assert_eq!(r["status"], "skipped");
    let reason = "exception approved (exception tag, owner (tag)): the resource's exception tag says approved";
    assert_eq!(r["reason"], reason);
    assert_eq!(check(&r, "exception not approved")["passed"], false);
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn unapproved_resource_type_is_skipped() {
    let case =
        Case::new().config("[eligibility]\nresource-types = [\"AWS::EC2::SecurityGroup\"]\n");
    let (r, writes) = case.run("resource-type").await;
    assert_eq!(r["status"], "skipped");
    assert_eq!(r["reason"], "resource type AWS::S3::Bucket is not approved");
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn an_action_outside_the_allowed_list_goes_to_review() {
    let case = Case::new()
        .config("[eligibility]\nallowed-actions = [\"ec2:RevokeSecurityGroupIngress\"]\n");
    let (r, writes) = case.run("actions").await;
    assert_eq!(r["status"], "review");
    assert_eq!(
        r["reason"],
        "action s3:PutBucketPublicAccessBlock is not allowed"
    );
    assert_eq!(check(&r, "every proposed action allowed")["passed"], false);
    assert_eq!(writes, 0);
}

fn exceptions_file(name: &str, expires: &str) -> String {
    let dir = scratch(&format!("exceptions-{name}"));
    let path = dir.join("exceptions.toml");
    std::fs::write(
        &path,
        format!(
            "[[exception]]\nresource-arn = \"arn:aws:s3:::acme-assets\"\ncontrol-id = \"S3.8\"\nowner = \"web-team\"\nreason = \"public website\"\nexpires = {expires}\n"
        ),
    )
    .unwrap();
    format!("[policy]\nexceptions = {:?}\n", path.display().to_string())
}

#[tokio::test]
async fn a_registered_exception_skips_until_it_expires() {
    let case = Case::new().config(&exceptions_file("live", "2999-12-31"));
    let (r, writes) = case.run("exception-live").await;
    assert_eq!(r["status"], "skipped");
    assert_eq!(
        r["reason"],
        "exception approved (exceptions file, owner web-team): public website"
    );
    assert_eq!(writes, 0);

    let case = Case::new().config(&exceptions_file("expired", "\"2020-01-31\""));
    let (r, writes) = case.run("exception-expired").await;
    assert_eq!(r["status"], "remediated");
    let c = check(&r, "exception not approved");
    assert_eq!(c["passed"], true);
    assert_eq!(
        c["detail"],
        "an exception (owner web-team) expired on 2020-01-31 and no longer counts"
    );
    assert_eq!(c["inputs"]["status"], "expired");
    assert_eq!(writes, 1);
}

fn policy_config(file: &str) -> String {
    let path = repo_root().join("tests/policies").join(file);
    format!("[policy]\nfiles = [{:?}]\n", path.display().to_string())
}

/// Under contract 0.2.0 a policy sees each planned call and its arguments, and the gate holds
/// the fixer to them, so a rule about what a change does is binding.
#[tokio::test]
async fn a_rego_rule_can_judge_the_typed_plan() {
    let mut case = Case::new().config(&policy_config("keep-website-policies.rego"));
    case.bucket = "acme-website";
    let (r, writes) = case.run("rego-typed-plan").await;
    assert_eq!(r["status"], "review", "{r:#}");
    policy_says(
        &r,
        "review",
        "turning on BlockPublicPolicy would break a public website bucket",
    );
    assert_eq!(writes, 0);
    // The same policy lets a bucket that is not a website through.
    let case = Case::new().config(&policy_config("keep-website-policies.rego"));
    let (r, writes) = case.run("rego-typed-plan-other").await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    assert_eq!(writes, 1);
}

#[tokio::test]
async fn a_rego_rule_can_skip() {
    let mut case = Case::new().config(&policy_config("skip-payments.rego"));
    case.projects = vec!["payments"];
    let (r, writes) = case.run("rego-skip").await;
    assert_eq!(r["status"], "skipped");
    assert_eq!(
        r["reason"],
        "payments project is remediated by its own team"
    );
    policy_says(&r, "skip", "payments project is remediated by its own team");
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_rego_rule_can_send_to_review_or_require_approval() {
    let mut case = Case::new().config(&policy_config("review-log-buckets.rego"));
    case.bucket = "acme-access-logs";
    let (r, writes) = case.run("rego-review").await;
    assert_eq!(r["status"], "review");
    assert_eq!(
        r["reason"],
        "bucket acme-access-logs holds access logs; a human checks who reads them"
    );
    assert_eq!(writes, 0);

    let mut case = Case::new().config(&policy_config("review-log-buckets.rego"));
    case.payload_tags = json!({ "owner": "a", "environment": "dev", "data-classification": "pii" });
    let (r, writes) = case.run("rego-approval").await;
    assert_eq!(r["status"], "review");
    assert_eq!(r["reason"], "approval required: the data is classified pii");
    assert_eq!(r["decision"]["requires_approval"], true);
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_broken_policy_fails_closed() {
    let case = Case::new().config(&policy_config("broken-syntax.rego.txt"));
    let (r, writes) = case.run("rego-broken-syntax").await;
    assert_eq!(r["status"], "review");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("policy error, failing closed: policy did not load: "),
        "{reason}"
    );
    assert!(reason.contains("broken-syntax.rego.txt"), "{reason}");
    assert_eq!(writes, 0);

    let case = Case::new().config(&policy_config("broken-runtime.rego.txt"));
    let (r, writes) = case.run("rego-broken-runtime").await;
    assert_eq!(r["status"], "review");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("policy error, failing closed: evaluating the policy: "),
        "{reason}"
    );
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn risk_is_recorded_and_all_high_is_urgent() {
    let mut case = Case::new();
    case.payload_tags = json!({
        "owner": "a", "environment": "dev", "exposure": "internet",
        "data-classification": "payment", "salve:exception": "none"
    });
    let (r, _) = case.run("risk").await;
    assert_eq!(r["risk"]["priority"], "P1");
    assert_eq!(r["risk"]["score"], 27);
    assert_eq!(r["risk"]["urgent"], true);
    assert_eq!(
        r["resource_tags"]["action"], "s3:GetBucketTagging",
        "the resource's own tags are read even when the payload has every key: a payload's tags are only a claim"
    );
}
