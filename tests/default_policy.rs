//! `default.rego` states the built-in guardrails as policy. The host checks them natively and
//! does not evaluate it per finding, so this property test is what keeps the two the same: for
//! generated findings, tags, exceptions and plans, the native checks and `default.rego` give the
//! same skip and review reasons.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;

use salve::capabilities::{Change, Plan};
use salve::config::SalveConfig;
use salve::finding::Finding;
use salve::policy::metadata::Metadata;
use salve::policy::{risk, DecisionInput, OnFail};
use salve::runtime::{LoadedFixer, Runtime, RuntimeLimits};

const CONFIG: &str = r#"
[accounts."123456789012"]
[eligibility]
severities = ["HIGH", "CRITICAL"]
resource-types = ["AWS::S3::Bucket"]
allowed-actions = ["s3:PutBucketPublicAccessBlock"]
restricted-environments = ["production", "PCI"]
"#;

fn fixer() -> &'static LoadedFixer {
    static FIXER: std::sync::OnceLock<(Runtime, LoadedFixer)> = std::sync::OnceLock::new();
    &FIXER
        .get_or_init(|| {
            let runtime = Runtime::new(RuntimeLimits::default(), None).unwrap();
            let fixer = runtime
                .load_file(&common::fixer("s3-block-public-access"))
                .expect("run scripts/build-fixers.sh first");
            (runtime, fixer)
        })
        .1
}

fn finding(severity: &str, account: &str, kind: &str) -> Finding {
    let arn = if kind == "AWS::S3::Bucket" {
        "arn:aws:s3:::prop-bucket".to_string()
    } else {
        format!("arn:aws:ec2:us-east-1:{account}:security-group/sg-0123456789abcdef0")
    };
    let json = serde_json::json!({
        "id": "prop", "control_id": "S3.8", "severity": severity,
        "resource": {"arn": arn, "type": kind, "account_id": account, "region": "us-east-1"}
    });
    Finding::from_canonical_json(json.to_string().as_bytes()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_native_guardrails_and_default_rego_give_the_same_reasons(
        severity in prop::sample::select(vec!["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]),
        account in prop::sample::select(vec!["123456789012", "210987654321"]),
        kind in prop::sample::select(vec!["AWS::S3::Bucket", "AWS::EC2::SecurityGroup"]),
        environment in prop::option::of(prop::sample::select(vec!["dev", "production", "Production", "pci", "staging"])),
        owner in prop::option::of(prop::sample::select(vec!["platform-team", "payments"])),
        exception in prop::option::of(prop::sample::select(vec!["approved", "pending", "Approved"])),
        actions in prop::collection::vec(
            prop::sample::select(vec!["s3:PutBucketPublicAccessBlock", "s3:DeleteBucketPolicy", "ec2:RevokeSecurityGroupIngress"]),
            0..3,
        ),
    ) {
        let config = SalveConfig::parse(CONFIG, "property salve.toml", Path::new(".")).unwrap();
        let policy = config.eligibility_policy().unwrap();
        let finding = finding(severity, account, kind);
        let mut tags = BTreeMap::new();
        for (key, value) in [("environment", environment), ("owner", owner), ("salve:exception", exception)] {
            if let Some(v) = value {
                tags.insert(key.to_string(), v.to_string());
            }
        }
        let metadata = Metadata::from_tags(policy.tag_keys(), &BTreeMap::new(), Some(&tags), policy.restricted_environments());
        let plan = Plan {
            changes: actions.iter().map(|a| Change {
                action: a.to_string(),
                description: String::new(),
                before: None,
                after: None,
                call: None,
            }).collect(),
            summary: String::new(),
        };
        let risk = risk::score(finding.severity, None, None);
        let input = DecisionInput {
            finding: &finding,
            fixer: fixer(),
            plan: &plan,
            metadata: &metadata,
            risk: &risk,
            tag_read_error: None,
            iac: None,
        };
        let oracle = policy.default_policy_verdict(&input).unwrap();
        prop_assert!(oracle.error.is_none(), "{:?}", oracle.error);
        let decision = policy.decide(input);
        let native = |on_fail: OnFail| -> BTreeSet<String> {
            decision.checks.iter()
                .filter(|c| !c.passed && c.on_fail == on_fail)
                .flat_map(|c| c.detail.split("; ").map(str::to_string).collect::<Vec<_>>())
                .collect()
        };
        let rego = |reasons: &[String]| -> BTreeSet<String> { reasons.iter().cloned().collect() };
        prop_assert_eq!(native(OnFail::Skip), rego(&oracle.skip));
        prop_assert_eq!(native(OnFail::Review), rego(&oracle.review));
        prop_assert!(oracle.require_approval.is_empty());
        // With no policy files of the operator's, nothing but the native checks decides.
        let p = decision.policy.as_ref().unwrap();
        prop_assert!(p.skip.is_empty() && p.review.is_empty() && p.error.is_none());
    }
}
