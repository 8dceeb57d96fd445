//! The cost of ingest plus decision per finding, with no AWS and no fixer run:
//!
//! - `ingest`: JSON parse, SNS envelope, Wiz normalisation and validation;
//! - `triage`: the checks that run before any AWS call;
//! - `decide`: every guardrail, checked natively, plus the operator's Rego policies;
//! - `ingest + decision`: all of it, with metadata and the risk score, as the pipeline does it.
//!
//! Three configurations, in one run so their ratios are fair: no policy files (the default:
//! the guardrails are checked natively and `default.rego` is not evaluated), `default.rego`
//! loaded as an operator's file (what every finding paid before: Rego re-checking the
//! guardrails), and one typical operator policy (`tests/policies/keep-website-policies.rego`).
//!
//! Run: `cargo bench -p salve --bench decision_cost` (after `scripts/build-fixers.sh`; the S3
//! fixer is loaded only so the decision sees its real imports).

mod support;

use std::path::Path;
use std::time::Instant;

use salve::capabilities::{Change, Plan};
use salve::config::SalveConfig;
use salve::ingest::{ingest, IngestOutcome};
use salve::policy::metadata::Metadata;
use salve::policy::{risk, DecisionInput, Verdict};
use salve::runtime::{Runtime, RuntimeLimits};
use support::report;

const ITERATIONS: usize = 20_000;
const WARMUP: usize = 1_000;

fn main() {
    for (label, policy_file) in [
        ("no policy files", None),
        (
            "default.rego as a policy file",
            Some("host/policy/default.rego"),
        ),
        (
            "one operator policy",
            Some("tests/policies/keep-website-policies.rego"),
        ),
    ] {
        println!("-- {label}");
        measure(policy_file);
    }
}

fn measure(policy_file: Option<&str>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let payload =
        std::fs::read(root.join("tests/payloads/sns-notification-wiz.json")).expect("payload");
    let mut text = "[accounts.\"123456789012\"]\n".to_string();
    if let Some(file) = policy_file {
        text.push_str(&format!("[policy]\nfiles = [{:?}]\n", file));
    }
    let config = SalveConfig::parse(&text, "bench", &root).expect("config");
    let policy = config.eligibility_policy().expect("policy");
    let runtime = Runtime::new(RuntimeLimits::default(), None).expect("runtime");
    let fixer = runtime
        .load_file(&root.join("build/fixers/s3-block-public-access.wasm"))
        .expect("run scripts/build-fixers.sh first");
    let plan = Plan {
        changes: vec![Change {
            action: "s3:PutBucketPublicAccessBlock".into(),
            description: "block all public access".into(),
            before: None,
            after: Some(r#"{"block_public_acls":true}"#.into()),
            call: None,
        }],
        summary: "block public access".into(),
    };

    let (mut t_ingest, mut t_triage, mut t_decide, mut t_all) = (vec![], vec![], vec![], vec![]);
    for i in 0..(ITERATIONS + WARMUP) {
        let t0 = Instant::now();
        let items = ingest(&payload, &config.ingest);
        let t1 = Instant::now();
        let IngestOutcome::Finding(finding) = &items[0].outcome else {
            panic!("the bench payload must ingest");
        };
        let metadata = Metadata::from_tags(
            policy.tag_keys(),
            &finding.resource.tags,
            None,
            policy.restricted_environments(),
        );
        let triage = policy.triage(finding, &metadata);
        let t2 = Instant::now();
        let risk = risk::score(
            finding.severity,
            metadata.exposure.value.as_deref(),
            metadata.data_classification.value.as_deref(),
        );
        let t3 = Instant::now();
        let decision = policy.decide(DecisionInput {
            finding,
            fixer: &fixer,
            plan: &plan,
            metadata: &metadata,
            risk: &risk,
            tag_read_error: None,
            iac: None,
        });
        let t4 = Instant::now();
        assert_eq!(triage.verdict, Verdict::Remediate);
        assert_eq!(
            decision.verdict,
            Verdict::Remediate,
            "{:?}",
            decision.reason
        );
        if i >= WARMUP {
            t_ingest.push(t1 - t0);
            t_triage.push(t2 - t1);
            t_decide.push(t4 - t3);
            t_all.push(t4 - t0);
        }
    }
    report("ingest (SNS-wrapped Wiz)", t_ingest);
    report("triage", t_triage);
    report("decide (guardrails + policies)", t_decide);
    report("ingest + decision", t_all);
}
