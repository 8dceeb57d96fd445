//! Fixing the code: a pull request against the Terraform that declares the resource. git runs
//! against a bare repository on disk; the GitHub API is Prism serving GitHub's own OpenAPI
//! description (started by `scripts/test.sh`), which refuses any request that does not conform.
//! A counting proxy in front of Prism keeps every request, and answers some itself to stand in
//! for the forge's errors and its state (an existing or closed pull request).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::proxy::{CountingProxy, FaultRule, Injected, Seen};
use salve::pipeline::ProcessOptions;
use serde_json::json;

const TOKEN_ENV: &str = "SALVE_TEST_GITHUB_TOKEN";

fn prism() -> String {
    std::env::var("SALVE_PRISM_URL")
        .expect("SALVE_PRISM_URL: run the tests through scripts/test.sh, which starts Prism")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository holding the fixture Terraform on `main`.
fn bare_repository(name: &str) -> PathBuf {
    bare_repository_edited(name, |_| {})
}

/// [`bare_repository`] with the fixture changed by `edit` (given the working copy) first.
fn bare_repository_edited(name: &str, edit: impl Fn(&Path)) -> PathBuf {
    // Not the pipeline's scratch directory, which each run wipes.
    let dir = common::scratch(&format!("{name}-repository"));
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("modules/bucket")).unwrap();
    let src = common::repo_root().join("tests/terraform");
    for f in [
        "main.tf",
        "variables.tf",
        "terraform.tfvars",
        "modules/bucket/main.tf",
    ] {
        std::fs::copy(src.join(f), work.join(f)).unwrap();
    }
    edit(&work);
    git(&work, &["init", "--quiet", "--initial-branch", "main"]);
    git(&work, &["add", "."]);
    git(
        &work,
        &[
            "-c",
            "user.name=infra",
            "-c",
            "user.email=infra@example.com",
            "commit",
            "--quiet",
            "-m",
            "infra",
        ],
    );
    let bare = dir.join("infra.git");
    git(&dir, &["clone", "--quiet", "--bare", "work", "infra.git"]);
    bare
}

fn config(bare: &Path, forge: &str, effect: &str) -> String {
    std::env::set_var(TOKEN_ENV, "test-token-not-a-secret");
    format!(
        r#"
[iac]
effect = "{effect}"
control-docs-url = "https://docs.example.com/controls/{{control}}"

[[iac.terraform]]
name = "prod"
accounts = ["123456789012"]
regions = ["us-east-1"]
repository = "{}"
base-branch = "main"
state = "tests/terraform/terraform.tfstate"
author = {{ name = "salve", email = "salve@example.com" }}
forge = {{ type = "github", api-url = "{forge}", repo = "acme/infra", token-env = "{TOKEN_ENV}", labels = ["security", "salve"] }}
"#,
        bare.display()
    )
}

/// Runs the bucket finding `id` on `tf-logs-bucket` (made public in moto) through a pipeline
/// whose forge is `proxy`.
async fn run(
    name: &str,
    id: &str,
    bare: &Path,
    proxy: &CountingProxy,
    effect: &str,
) -> serde_json::Value {
    run_at(name, id, bare, &proxy.url, effect).await.0
}

/// The tests share moto's `tf-logs-bucket` (the fixture's state names it): one at a time.
static BUCKET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Like [`run`], with the forge at `forge`; also returns the audit log.
async fn run_at(
    name: &str,
    id: &str,
    bare: &Path,
    forge: &str,
    effect: &str,
) -> (serde_json::Value, PathBuf) {
    run_payload(
        name,
        &common::s3_finding(id, "tf-logs-bucket"),
        bare,
        forge,
        effect,
    )
    .await
}

/// `tf-logs-bucket` in moto, public again (the fixture's state names it).
async fn public_tf_bucket() -> aws_sdk_s3::Client {
    let client = common::s3().await;
    let _ = client.create_bucket().bucket("tf-logs-bucket").send().await;
    let _ = client
        .delete_public_access_block()
        .bucket("tf-logs-bucket")
        .send()
        .await;
    client
}

/// Runs `payload` once through a moto-backed pipeline with the shipped `fixer` and `config`;
/// the record, and the audit log.
async fn run_with(
    name: &str,
    fixer: &str,
    config: &str,
    payload: &str,
) -> (serde_json::Value, PathBuf) {
    let (p, audit) =
        common::aws_pipeline_config(name, &common::endpoint(), &[common::fixer(fixer)], config)
            .await;
    let r = common::process_one(&p, payload.as_bytes(), ProcessOptions::default()).await;
    (r, audit)
}

/// Runs `payload` (a finding on `tf-logs-bucket`, public in moto).
async fn run_payload(
    name: &str,
    payload: &str,
    bare: &Path,
    forge: &str,
    effect: &str,
) -> (serde_json::Value, PathBuf) {
    public_tf_bucket().await;
    run_with(
        name,
        "s3-block-public-access",
        &config(bare, forge, effect),
        payload,
    )
    .await
}

fn calls(proxy: &CountingProxy) -> Vec<(String, String)> {
    proxy
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path_and_query))
        .collect()
}

const DIFF: &str =
    "--- a/modules/bucket/main.tf\n+++ b/modules/bucket/main.tf\n@@ -13,4 +13,4 @@\n\
-  block_public_acls       = false\n-  ignore_public_acls      = false\n\
-  block_public_policy     = false\n-  restrict_public_buckets = false\n\
+  block_public_acls       = true\n+  ignore_public_acls      = true\n\
+  block_public_policy     = true\n+  restrict_public_buckets = true\n";

#[tokio::test]
async fn a_fixed_bucket_gets_a_pull_request_that_prism_accepts() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-open");
    let proxy = CountingProxy::start(&prism()).await;
    let r = run("pr-open", "pr-1", &bare, &proxy, "both").await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    let pr = &r["pull_request"];
    assert_eq!(pr["outcome"], "opened", "{r:#}");
    assert_eq!(pr["branch"], "salve/pr-1");
    assert!(pr["number"].as_u64().is_some(), "{pr:#}");
    assert_eq!(pr["diff"], DIFF);
    assert!(pr.get("reason").is_none(), "{pr:#}");

    // The branch holds one commit on main, naming the finding, the control and the resource.
    let commit = pr["commit"].as_str().unwrap();
    assert_eq!(git(&bare, &["rev-parse", "salve/pr-1"]), commit);
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main..salve/pr-1"]),
        "1"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "salve/pr-1"]);
    assert!(
        message.starts_with("salve: S3.8 on tf-logs-bucket"),
        "{message}"
    );
    assert!(
        message.contains("Finding: test pr-1 (public bucket)"),
        "{message}"
    );
    assert!(message.contains("Control: S3.8"), "{message}");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "salve/pr-1"]),
        "salve <salve@example.com>"
    );
    let changed = git(&bare, &["diff", "--name-only", "main", "salve/pr-1"]);
    assert_eq!(changed, "modules/bucket/main.tf");

    // Exactly these requests reached Prism, which checked each against GitHub's description.
    let seen = proxy.requests();
    let requests: Vec<(&str, &str)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path_and_query.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            (
                "GET",
                "/repos/acme/infra/pulls?state=all&head=acme:salve%2Fpr-1"
            ),
            ("POST", "/repos/acme/infra/pulls"),
            (
                "POST",
                &*format!("/repos/acme/infra/issues/{}/labels", pr["number"])
            ),
        ]
    );
    let open: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(open["head"], "salve/pr-1");
    assert_eq!(open["base"], "main");
    assert_eq!(open["title"], "salve: S3.8 on tf-logs-bucket");
    let body = open["body"].as_str().unwrap();
    for part in [
        "- Source: test `pr-1`",
        "- Control: [S3.8](https://docs.example.com/controls/S3.8)",
        "- Risk: score",
        "```diff\n--- a/modules/bucket/main.tf",
        "salve has already fixed the resource in the account",
        "Audit: the live change's intent is record #",
        "salve rollback pr-1",
    ] {
        assert!(body.contains(part), "{part:?} not in:\n{body}");
    }
    assert!(
        !body.contains("Warning: merging this destroys"),
        "a public access block replaces nothing: {body}"
    );
    let labels: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(labels, json!({"labels": ["security", "salve"]}));
    // The token is sent as a header and recorded nowhere.
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer test-token-not-a-secret"));
    assert!(!r.to_string().contains("test-token-not-a-secret"));
}

/// Answers the pull-request lookup with one pull request on the finding's branch.
fn existing(state: &'static str) -> FaultRule {
    Arc::new(move |r: &Seen| {
        (r.method == "GET" && r.path_and_query.contains("/pulls?")).then(|| {
            Injected::Respond(
                200,
                json!([{"number": 7, "html_url": "https://forge.example.com/acme/infra/pull/7",
                        "state": state, "merged_at": null, "head": {"ref": "salve/pr-2"}}])
                .to_string(),
            )
        })
    })
}

#[tokio::test]
async fn the_same_finding_updates_its_branch_and_pull_request() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-update");
    let proxy = CountingProxy::start(&prism()).await;
    let first = run("pr-update", "pr-2", &bare, &proxy, "both").await;
    assert_eq!(first["pull_request"]["outcome"], "opened", "{first:#}");
    proxy.set_fault(Some(existing("open")));
    let again = run("pr-update-2", "pr-2", &bare, &proxy, "pull-request").await;
    assert_eq!(again["status"], "pull-request-opened", "{again:#}");
    let pr = &again["pull_request"];
    assert_eq!(pr["outcome"], "updated", "{pr:#}");
    assert_eq!(pr["number"], 7);
    // One branch, now at the new commit: never a second pull request.
    assert_eq!(
        git(&bare, &["rev-parse", "salve/pr-2"]),
        pr["commit"].as_str().unwrap()
    );
    let last: Vec<(String, String)> = calls(&proxy).into_iter().skip(3).collect();
    assert_eq!(
        last.iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect::<Vec<_>>(),
        [
            "GET /repos/acme/infra/pulls?state=all&head=acme:salve%2Fpr-2",
            "PATCH /repos/acme/infra/pulls/7",
            "POST /repos/acme/infra/issues/7/labels",
        ]
    );
}

#[tokio::test]
async fn a_pull_request_closed_without_merge_sends_the_finding_to_review() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-closed");
    let proxy = CountingProxy::start(&prism()).await;
    proxy.set_fault(Some(existing("closed")));
    let r = run("pr-closed", "pr-2", &bare, &proxy, "pull-request").await;
    assert_eq!(r["status"], "review", "{r:#}");
    assert_eq!(r["pull_request"]["outcome"], "closed-unmerged");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("closed without merge"),
        "{r:#}"
    );
    // Nothing was pushed, and nothing changed in the account.
    assert_eq!(git(&bare, &["branch", "--list", "salve/*"]), "");
    assert_eq!(
        common::public_access_block(&common::s3().await, "tf-logs-bucket").await,
        None
    );
    // With effect = "both" the declined change is not made live either.
    let r = run("pr-closed", "pr-2", &bare, &proxy, "both").await;
    assert_eq!(r["status"], "review", "{r:#}");
    assert_eq!(r["pull_request"]["outcome"], "closed-unmerged");
    assert!(
        r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["access"] != "write"),
        "{r:#}"
    );
    assert_eq!(
        common::public_access_block(&common::s3().await, "tf-logs-bucket").await,
        None
    );
}

/// The forge's errors: each is recorded with what to do, and a pushed branch is said so.
#[tokio::test]
async fn forge_errors_are_recorded_with_their_meaning() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-errors");
    let proxy = CountingProxy::start(&prism()).await;
    let on_open = |status: u16, body: &'static str| -> FaultRule {
        Arc::new(move |r: &Seen| {
            (r.method == "POST" && r.path_and_query == "/repos/acme/infra/pulls")
                .then(|| Injected::Respond(status, body.to_string()))
        })
    };
    for (status, body, says, retryable) in [
        (
            401,
            r#"{"message":"Bad credentials"}"#,
            "HTTP 401: the token is missing, expired or invalid",
            false,
        ),
        (
            403,
            r#"{"message":"Resource not accessible by integration"}"#,
            "HTTP 403: the token may not do this",
            false,
        ),
        (
            404,
            r#"{"message":"Not Found"}"#,
            "HTTP 404: acme/infra does not exist",
            false,
        ),
        (
            429,
            r#"{"message":"API rate limit exceeded"}"#,
            "rate limited (HTTP 429)",
            true,
        ),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"message":"No commits between main and salve/x"}]}"#,
            "HTTP 422: Validation Failed; No commits between",
            false,
        ),
    ] {
        proxy.set_fault(Some(on_open(status, body)));
        let id = format!("pr-err-{status}");
        let r = run(
            &format!("pr-errors-{status}"),
            &id,
            &bare,
            &proxy,
            "pull-request",
        )
        .await;
        assert_eq!(r["status"], "failed", "{r:#}");
        let pr = &r["pull_request"];
        assert_eq!(pr["outcome"], "failed", "{pr:#}");
        let reason = pr["reason"].as_str().unwrap();
        assert!(reason.contains(says), "{status}: {reason}");
        assert!(
            reason.contains(&format!("branch salve/{id} was pushed")),
            "{reason}"
        );
        assert_eq!(
            pr["retryable"].as_bool().unwrap_or(false),
            retryable,
            "{pr:#}"
        );
        assert_eq!(
            r["retryable"].as_bool().unwrap_or(false),
            retryable,
            "{r:#}"
        );
    }
    // A forge that cannot be reached at all: nothing is pushed, and the finding is retried.
    let (dead, _) = run_at(
        "pr-errors-dead",
        "pr-err-dead",
        &bare,
        "http://127.0.0.1:9",
        "pull-request",
    )
    .await;
    assert_eq!(dead["status"], "failed", "{dead:#}");
    assert!(
        dead["pull_request"]["reason"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{dead:#}"
    );
    assert_eq!(dead["retryable"], true);
}

/// With effect = "pull-request" nothing changes in the account, and `salve rollback` says how
/// to revert the pull request instead.
#[tokio::test]
async fn a_pull_request_only_fix_changes_nothing_live_and_rollback_says_how_to_revert() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-only");
    let proxy = CountingProxy::start(&prism()).await;
    let (r, log) = run_at("pr-only", "pr-3", &bare, &proxy.url, "pull-request").await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    assert!(
        r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["access"] != "write"),
        "{r:#}"
    );
    assert_eq!(
        common::public_access_block(&common::s3().await, "tf-logs-bucket").await,
        None
    );
    // The push was announced first: an intent record the pull request's record links to.
    let text = std::fs::read_to_string(&log).unwrap();
    let intent: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["status"] == "intent")
        .expect("an intent record before the push");
    assert!(
        intent["reason"]
            .as_str()
            .unwrap()
            .contains("branch salve/pr-3 is about to be pushed"),
        "{intent:#}"
    );
    assert_eq!(r["intent"]["sequence"], intent["sequence"], "{r:#}");
    let e = salve::rollback::find(&log, "pr-3").unwrap_err().to_string();
    assert!(e.contains("was fixed by a pull request"), "{e}");
    assert!(
        e.contains(&format!(
            "git revert {}",
            r["pull_request"]["commit"].as_str().unwrap()
        )),
        "{e}"
    );
}

/// In a restricted environment live changes are not allowed: the fix becomes a pull request
/// instead of a review.
#[tokio::test]
async fn a_restricted_environment_gets_a_pull_request_instead_of_a_review() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-restricted");
    let proxy = CountingProxy::start(&prism()).await;
    let payload = common::s3_finding("pr-4", "tf-logs-bucket").replace(
        r#""environment":"dev""#,
        r#""environment":"restricted-production""#,
    );
    let (r, _) = run_payload("pr-restricted", &payload, &bare, &proxy.url, "both").await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    assert_eq!(r["pull_request"]["outcome"], "opened");
    assert_eq!(
        common::public_access_block(&common::s3().await, "tf-logs-bucket").await,
        None
    );
    // With effect = "live" it is a review, as before.
    let (r, _) = run_payload("pr-restricted-live", &payload, &bare, &proxy.url, "live").await;
    assert_eq!(r["status"], "review", "{r:#}");
}

/// `salve iac sync`: a merged pull request ends the finding's remediation at its merge; one
/// closed without merge opens the finding again. Prism answers the lookups the proxy does not.
#[tokio::test]
async fn iac_sync_records_merges_and_closes_and_the_report_counts_them() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-sync");
    let proxy = CountingProxy::start(&prism()).await;
    let (r, audit) = run_at("pr-sync", "pr-sync-1", &bare, &proxy.url, "pull-request").await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    let config = common::test_config(&config(&bare, &proxy.url, "pull-request"));
    let endpoint = common::endpoint();
    let pipeline = common::pipeline_with(
        &[common::fixer("s3-block-public-access")],
        salve::runtime::RuntimeLimits::default(),
        Box::new(salve::aws::AwsBackends::from_config(
            common::sdk_config()
                .await
                .into_builder()
                .endpoint_url(&endpoint)
                .build(),
            salve::aws::AwsOptions {
                endpoint_url: Some(endpoint.clone()),
            },
            "salve-tests",
            config.account_roles(),
        )),
        &audit,
        &config,
        salve::notify::Notifier::disabled(),
    );

    // Still open (Prism's own example answer names another branch): nothing is recorded.
    let synced = salve::iac::sync::sync(&pipeline, &audit).await.unwrap();
    assert_eq!(synced[0].state, "unknown", "{synced:?}");
    assert!(synced[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("no pull request for salve/pr-sync-1"));

    let merged_at = salve::timestamp::format(salve::timestamp::now());
    let answer = move |state: &'static str, merged: Option<String>| -> FaultRule {
        Arc::new(move |r: &Seen| {
            (r.method == "GET" && r.path_and_query.contains("/pulls?")).then(|| {
                // `head=owner:branch`, the branch escaped.
                let head = r.path_and_query.split("head=").nth(1).unwrap_or("");
                let branch = head
                    .split_once(':')
                    .or_else(|| head.split_once("%3A"))
                    .map_or("", |(_, b)| b)
                    .replace("%2F", "/");
                Injected::Respond(
                    200,
                    json!([{"number": 9, "html_url": "https://forge.example.com/acme/infra/pull/9",
                            "state": state, "merged_at": merged, "head": {"ref": branch}}])
                    .to_string(),
                )
            })
        })
    };
    proxy.set_fault(Some(answer("closed", Some(merged_at.clone()))));
    let synced = salve::iac::sync::sync(&pipeline, &audit).await.unwrap();
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].state, "merged", "{synced:?}");
    let records = common::read_records(&audit);
    let last = records.last().unwrap();
    assert_eq!(last["status"], "pull-request-merged");
    assert_eq!(last["finding_id"], "pr-sync-1");
    assert_eq!(last["pull_request"]["outcome"], "merged");
    assert_eq!(last["pull_request"]["merged_at"], merged_at.as_str());
    // Settled: nothing left to ask about.
    assert!(salve::iac::sync::sync(&pipeline, &audit)
        .await
        .unwrap()
        .is_empty());

    // A second finding's pull request is closed without merge: open again.
    proxy.set_fault(None);
    let r = common::process_one(
        &pipeline,
        common::s3_finding("pr-sync-2", "tf-logs-bucket").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    proxy.set_fault(Some(answer("closed", None)));
    let synced = salve::iac::sync::sync(&pipeline, &audit).await.unwrap();
    assert_eq!(synced[0].state, "closed-unmerged", "{synced:?}");
    assert_eq!(
        common::read_records(&audit).last().unwrap()["status"],
        "pull-request-closed"
    );

    let now = salve::timestamp::now();
    let report = salve::scorecard::report(
        std::slice::from_ref(&audit),
        salve::scorecard::ReportOptions {
            now,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        report.recurrence.remediated_pairs, 1,
        "the merge is the fix"
    );
    assert_eq!(report.mttr.by_severity["HIGH"].count, 1);
    assert_eq!(report.backlog.open, 1, "the closed one is open");
}

/// `[iac] effect-by-environment`: the resource's environment picks how its fix lands; here
/// `dev` (any case) gets only a pull request although the default is `both`.
#[tokio::test]
async fn an_environment_can_take_its_fixes_as_pull_requests_only() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-by-env");
    let proxy = CountingProxy::start(&prism()).await;
    let client = public_tf_bucket().await;
    let config = config(&bare, &proxy.url, "both").replace(
        "effect = \"both\"",
        "effect = \"both\"\neffect-by-environment = { DEV = \"pull-request\" }",
    );
    let (r, _) = run_with(
        "pr-by-env",
        "s3-block-public-access",
        &config,
        &common::s3_finding("pr-env-1", "tf-logs-bucket"),
    )
    .await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    assert_eq!(
        common::public_access_block(&client, "tf-logs-bucket").await,
        None,
        "nothing changed live"
    );
}

/// A pipeline whose forge is `proxy`, with `effect`, and the Rego `policy` as the operator's file.
async fn pipeline_with_policy(
    name: &str,
    bare: &Path,
    proxy: &CountingProxy,
    effect: &str,
    policy: &str,
) -> salve::pipeline::Pipeline {
    let file = common::scratch(&format!("{name}-rego")).join("policy.rego");
    std::fs::write(&file, policy).unwrap();
    let config = format!(
        "{}\n[policy]\nfiles = [{:?}]\n",
        config(bare, &proxy.url, effect),
        file.display().to_string()
    );
    common::aws_pipeline_config(
        name,
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        &config,
    )
    .await
    .0
}

/// A policy sees where Terraform declares the resource (`input.iac`) and can choose how its fix
/// lands (`effect`): here every fix of a module's resource becomes a pull request only, whatever
/// salve.toml says.
#[tokio::test]
async fn a_policy_sees_input_iac_and_can_choose_the_effect() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("pr-by-policy");
    let proxy = CountingProxy::start(&prism()).await;
    let client = public_tf_bucket().await;
    let policy = r#"package salve.eligibility

effect := "pull-request" if {
	input.iac.managed
	startswith(input.iac.module, "module.")
}
"#;
    let p = pipeline_with_policy("pr-by-policy", &bare, &proxy, "both", policy).await;
    let r = common::process_one(
        &p,
        common::s3_finding("pr-policy-1", "tf-logs-bucket").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    assert_eq!(r["decision"]["policy"]["effect"], "pull-request", "{r:#}");
    assert_eq!(
        common::public_access_block(&client, "tf-logs-bucket").await,
        None,
        "nothing changed live"
    );
}

/// What `input.iac` holds: the workspace, the address and its module, or why the resource is
/// not managed; a policy can act on it.
#[tokio::test]
async fn input_iac_names_the_workspace_address_and_module() {
    let _one = BUCKET.lock().await;
    let bare = bare_repository("iac-input");
    let proxy = CountingProxy::start(&prism()).await;
    let _client = public_tf_bucket().await;
    let policy = r#"package salve.eligibility

review contains sprintf("managed: %s %s %s", [input.iac.workspace, input.iac.address, input.iac.module]) if {
	input.iac.managed
}

review contains sprintf("unmanaged: %s", [input.iac.reason]) if {
	input.iac.managed == false
}
"#;
    let p = pipeline_with_policy("iac-input", &bare, &proxy, "both", policy).await;
    let dry_run = ProcessOptions {
        effect: salve::pipeline::Effect::PlanOnly,
        ..ProcessOptions::default()
    };
    let r = common::process_one(
        &p,
        common::s3_finding("iac-input-1", "tf-logs-bucket").as_bytes(),
        dry_run,
    )
    .await;
    assert_eq!(
        r["reason"], "managed: prod module.logs.aws_s3_bucket.this module.logs",
        "{r:#}"
    );
    let s3 = common::s3().await;
    let other = common::unique("not-in-terraform");
    s3.create_bucket().bucket(&other).send().await.unwrap();
    let r = common::process_one(
        &p,
        common::s3_finding("iac-input-2", &other).as_bytes(),
        dry_run,
    )
    .await;
    assert_eq!(
        r["reason"],
        format!("unmanaged: no workspace's state names arn:aws:s3:::{other} in account 123456789012 (us-east-1)"),
        "{r:#}"
    );
}

/// A value that comes from a variable is changed where it is set (`terraform.tfvars`), and the
/// pull request says so at the top, since every reader of the variable changes with it.
#[tokio::test]
async fn a_variable_is_changed_where_it_is_set_and_the_pull_request_says_so() {
    let bare = bare_repository("pr-tfvars");
    let proxy = CountingProxy::start(&prism()).await;
    common::public_db_once("tf-main-db").await;
    let config = config(&bare, &proxy.url, "pull-request")
        + "[eligibility]\nresource-types = [\"AWS::RDS::DBInstance\"]\nallowed-actions = [\"rds:ModifyDBInstance\"]\n";
    let (r, _) = run_with(
        "pr-tfvars",
        "rds-private",
        &config,
        &common::rds_finding("pr-tfvars-1", "tf-main-db"),
    )
    .await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    let changed = git(&bare, &["diff", "--name-only", "main", "salve/pr-tfvars-1"]);
    assert_eq!(changed, "terraform.tfvars");
    let seen = proxy.requests();
    let open = seen
        .iter()
        .find(|r| r.method == "POST" && r.path_and_query == "/repos/acme/infra/pulls")
        .expect("the pull request was opened");
    let body: serde_json::Value = serde_json::from_str(&open.body).unwrap();
    let body = body["body"].as_str().unwrap();
    assert!(
        body.contains("**The value comes from variable `db_public`.** The change is made where Terraform takes it from: `terraform.tfvars` line 1, which overrides the variable's default. Every resource that reads `var.db_public` changes with it."),
        "{body}"
    );
}

/// The fixture's state with `aws_ebs_volume.data` as the moto volume `volume`, in scratch.
fn state_with_volume(name: &str, volume: &str) -> PathBuf {
    let mut state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("tests/terraform/terraform.tfstate"))
            .unwrap(),
    )
    .unwrap();
    state["resources"].as_array_mut().unwrap().push(json!({
        "mode": "managed",
        "type": "aws_ebs_volume",
        "name": "data",
        "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
        "instances": [{"schema_version": 0, "attributes": {
            "id": volume,
            "arn": format!("arn:aws:ec2:us-east-1:123456789012:volume/{volume}"),
            "availability_zone": "us-east-1a",
            "encrypted": false,
            "kms_key_id": "",
            "size": 40,
        }}],
    }));
    let path = common::scratch(&format!("{name}-state")).join("terraform.tfstate");
    std::fs::write(&path, state.to_string()).unwrap();
    path
}

/// Runs the EC2.3 finding `id` on `volume` through a pipeline with the volume fixer, the state
/// at `state` and the forge at `proxy`.
async fn run_volume(
    name: &str,
    id: &str,
    volume: &str,
    state: &Path,
    proxy: &CountingProxy,
    effect: &str,
) -> serde_json::Value {
    run_volume_in(
        &bare_repository(name),
        name,
        id,
        volume,
        state,
        proxy,
        effect,
    )
    .await
}

/// [`run_volume`] against the repository `bare`.
async fn run_volume_in(
    bare: &Path,
    name: &str,
    id: &str,
    volume: &str,
    state: &Path,
    proxy: &CountingProxy,
    effect: &str,
) -> serde_json::Value {
    // No write action to allow: the kind has none.
    let config = config(bare, &proxy.url, effect).replace(
        "tests/terraform/terraform.tfstate",
        &state.display().to_string(),
    ) + "[eligibility]\nresource-types = [\"AWS::EC2::Volume\"]\n";
    let finding = common::volume_finding(id, volume);
    run_with(name, "ebs-encrypt-volume", &config, &finding)
        .await
        .0
}

/// Whether moto's `volume` is encrypted.
async fn volume_encrypted(volume: &str) -> bool {
    let ec2 = aws_sdk_ec2::Client::new(&common::sdk_config().await);
    let out = ec2
        .describe_volumes()
        .volume_ids(volume)
        .send()
        .await
        .unwrap();
    out.volumes()[0].encrypted().unwrap()
}

/// EC2.3 is IaC-only: a volume cannot be encrypted in place. Terraform manages this one, so the
/// finding becomes a pull request that says first that merging it replaces the volume, and
/// nothing changes in the account.
#[tokio::test]
async fn an_unencrypted_volume_gets_a_pull_request_that_warns_it_replaces_the_volume() {
    let volume = common::moto_volume(false).await;
    let state = state_with_volume("pr-volume", &volume);
    let proxy = CountingProxy::start(&prism()).await;
    let r = run_volume("pr-volume", "pr-vol-1", &volume, &state, &proxy, "both").await;
    assert_eq!(r["status"], "pull-request-opened", "{r:#}");
    assert_eq!(r["decision"]["verdict"], "remediate", "{r:#}");
    assert!(
        r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["access"] == "read"),
        "{r:#}"
    );
    assert!(!volume_encrypted(&volume).await);
    assert_eq!(
        r["reason"],
        "merging it destroys and recreates aws_ebs_volume.data (encrypted cannot change in place); the pull request says so first"
    );
    let pr = &r["pull_request"];
    assert_eq!(pr["outcome"], "opened", "{r:#}");
    assert_eq!(
        pr["diff"],
        "--- a/main.tf\n+++ b/main.tf\n@@ -98,0 +98,1 @@\n+  encrypted         = true\n"
    );
    let seen = proxy.requests();
    let open: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    let body = open["body"].as_str().unwrap();
    assert!(
        body.starts_with(
            "> **Warning: merging this destroys `aws_ebs_volume.data` and creates it again.**"
        ),
        "the warning must come first:\n{body}"
    );
    assert!(
        body.contains("Terraform cannot change `encrypted` in place"),
        "{body}"
    );
    assert!(!body.contains("salve has already fixed"), "{body}");
}

/// Where the volume is not in Terraform, or the effect allows no pull request, nothing can fix
/// it: review, with why, and no pull request.
#[tokio::test]
async fn an_unencrypted_volume_terraform_does_not_manage_goes_to_review() {
    let managed = common::moto_volume(false).await;
    let state = state_with_volume("pr-volume-unmanaged", &managed);
    let proxy = CountingProxy::start(&prism()).await;
    let stray = common::moto_volume(false).await;
    let r = run_volume(
        "pr-volume-unmanaged",
        "pr-vol-2",
        &stray,
        &state,
        &proxy,
        "both",
    )
    .await;
    assert_eq!(r["status"], "review", "{r:#}");
    assert_eq!(
        r["reason"],
        format!(
            "nothing was changed: {}; Terraform workspace \"prod\" does not manage it; a person migrates it or declares it in Terraform",
            salve_kind_ebs_volume::IAC_ONLY
        )
    );
    let r = run_volume(
        "pr-volume-live",
        "pr-vol-3",
        &managed,
        &state,
        &proxy,
        "live",
    )
    .await;
    assert_eq!(r["status"], "review", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the effect for this resource is live, so no pull request is opened"),
        "{r:#}"
    );
    assert!(r.get("pull_request").is_none(), "{r:#}");
    assert!(!volume_encrypted(&stray).await && !volume_encrypted(&managed).await);
}

/// Code that already declares the volume encrypted, over a volume that is not (an apply still
/// to come, or a stale state): nothing to push, and a person looks, instead of a failure.
#[tokio::test]
async fn a_volume_whose_code_is_already_fixed_goes_to_review() {
    let volume = common::moto_volume(false).await;
    let state = state_with_volume("pr-volume-code-fixed", &volume);
    let bare = bare_repository_edited("pr-volume-code-fixed", |work| {
        let main = work.join("main.tf");
        let text = std::fs::read_to_string(&main).unwrap().replace(
            "  size              = 40\n",
            "  size              = 40\n  encrypted         = true\n",
        );
        std::fs::write(&main, text).unwrap();
    });
    let proxy = CountingProxy::start(&prism()).await;
    let r = run_volume_in(
        &bare,
        "pr-volume-code-fixed",
        "pr-vol-4",
        &volume,
        &state,
        &proxy,
        "both",
    )
    .await;
    assert_eq!(r["status"], "review", "{r:#}");
    assert_eq!(r["pull_request"]["outcome"], "code-already-fixed", "{r:#}");
    assert_eq!(
        r["reason"],
        "aws_ebs_volume.data already declares the fix, but the resource is not fixed: a terraform apply is pending or the state is stale, so nothing was pushed"
    );
    assert_eq!(git(&bare, &["branch", "--list", "salve/*"]), "");
    assert!(!volume_encrypted(&volume).await);
}
