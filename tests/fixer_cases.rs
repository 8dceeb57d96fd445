//! `salve fixer test` and `salve fixer new`, through the real binary:
//! - the shipped fixers' recorded cases pass offline (no moto needed for replay);
//! - a wrong expectation and an unrecorded request fail with exact messages;
//! - a scaffolded fixer builds and its example case passes;
//! - a recording made against moto holds no access key, secret or session token.
//!
//! `record_shipped_fixer_cases` (ignored) is how the checked-in cases were made: it sets up moto,
//! injects the faults through a proxy, and runs `salve fixer test --record`. Re-run it with
//! `cargo test -p salve --test fixer_cases -- --ignored` under scripts/moto.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::proxy::{CountingProxy, FaultRule, Injected, Seen};
use common::*;
use serde_json::{json, Value};

const FIXERS: [&str; 6] = [
    "s3-block-public-access",
    "sg-close-admin-ports",
    "ebs-encryption-by-default",
    "rds-private",
    "nacl-close-admin-ports",
    "ebs-encrypt-volume",
];

/// The cases of a fixer that changes the account.
const LIVE_CASES: [&str; 4] = [
    "fixed",
    "already-compliant",
    "access-denied-on-write",
    "throttled-then-fixed",
];

/// The cases of an IaC-only fixer, which writes nothing: without Terraform the finding goes to
/// review, and a failed read fails it.
const IAC_ONLY_CASES: [&str; 4] = [
    "review-without-terraform",
    "already-compliant",
    "access-denied-on-read",
    "throttled-then-review",
];

fn cases_of(fixer: &str) -> [&'static str; 4] {
    if fixer == "ebs-encrypt-volume" {
        IAC_ONLY_CASES
    } else {
        LIVE_CASES
    }
}

fn salve(args: &[&str], paths: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_salve"));
    command.args(args);
    for p in paths {
        command.arg(p);
    }
    command
        .arg("--cache-dir")
        .arg(repo_root().join("target/test-scratch/fixer-cases-cache"))
        .output()
        .expect("running salve")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn cases_dir(fixer: &str) -> PathBuf {
    repo_root().join("fixers").join(fixer).join("cases")
}

/// Copies a case into a scratch directory so a test can break it.
fn copy_case(fixer: &str, case: &str, scratch_name: &str) -> PathBuf {
    let from = cases_dir(fixer).join(case);
    let to = scratch(scratch_name).join(case);
    std::fs::create_dir_all(&to).unwrap();
    for f in ["case.json", "traffic.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to
}

#[test]
fn shipped_fixers_pass_their_recorded_cases() {
    for name in FIXERS {
        let out = salve(&["fixer", "test"], &[&fixer(name), &cases_dir(name)]);
        let report = text(&out);
        assert!(out.status.success(), "{name}:\n{report}");
        assert!(report.contains("4 passed, 0 failed"), "{name}:\n{report}");
        for case in cases_of(name) {
            assert!(
                report.contains(&format!("PASS {case} (")),
                "{name}: {case}\n{report}"
            );
        }
    }
}

#[test]
fn junit_report_names_every_case() {
    let junit = scratch("fixer-cases-junit").join("report.xml");
    let out = salve(
        &["fixer", "test"],
        &[
            &fixer("s3-block-public-access"),
            &cases_dir("s3-block-public-access"),
            Path::new("--junit"),
            &junit,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"salve fixer test s3-block-public-access\" tests=\"4\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"throttled-then-fixed\""), "{xml}");
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let case = copy_case(
        "s3-block-public-access",
        "fixed",
        "fixer-cases-wrong-expectation",
    );
    let path = case.join("case.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["expect"]["status"] = json!("already-compliant");
    spec["expect"]["calls"][0] = json!("check s3:GetBucketPublicAccessBlock denied");
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let out = salve(
        &["fixer", "test"],
        &[&fixer("s3-block-public-access"), &case],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    let expected = "FAIL fixed (";
    assert!(report.starts_with(expected), "{report}");
    let body: String = report.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        body,
        "    status differs:\n      expected: already-compliant\n      actual:   remediated\n    calls differ (- expected, + actual):\n      - check s3:GetBucketPublicAccessBlock denied\n      + check s3:GetBucketPublicAccessBlock ok\n        plan s3:GetBucketPublicAccessBlock cached\n        apply s3:GetBucketPublicAccessBlock cached\n        apply s3:PutBucketPublicAccessBlock ok\n        verify s3:GetBucketPublicAccessBlock cached\n0 passed, 1 failed"
    );
}

#[test]
fn an_unrecorded_request_fails_with_the_request_it_made() {
    let case = copy_case("s3-block-public-access", "fixed", "fixer-cases-unrecorded");
    let path = case.join("traffic.json");
    let mut traffic: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Drop the last exchange (the verify read): the fixer then asks for something not recorded.
    let events = traffic["events"].as_array_mut().unwrap();
    let last = events.last().unwrap()["connection_id"].clone();
    events.retain(|e| e["connection_id"] != last);
    let remaining = events
        .iter()
        .filter(|e| e["action"].get("Request").is_some())
        .count();
    std::fs::write(&path, serde_json::to_string_pretty(&traffic).unwrap()).unwrap();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let endpoint = spec["endpoint_url"].as_str().unwrap();
    let bucket = spec["finding"]["resource"]["arn"]
        .as_str()
        .unwrap()
        .trim_start_matches("arn:aws:s3:::");

    let out = salve(
        &["fixer", "test"],
        &[&fixer("s3-block-public-access"), &case],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    let body: String = report.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        body,
        format!(
            "    request {} is not in the recording (it holds {remaining} request(s)):\n      actual:   GET {endpoint}/{bucket}/?publicAccessBlock\n                body: (empty)\n0 passed, 1 failed",
            remaining + 1
        ),
        "{report}"
    );
}

/// Every kind `fixer new` offers scaffolds a crate that builds and whose example case passes.
#[test]
fn a_scaffolded_fixer_builds_and_its_example_case_passes_for_every_kind() {
    let dir = scratch("fixer-new");
    // One target directory for every scaffold, so the SDK's dependencies build once.
    let target = dir.join("target");
    for kind in salve::kinds::specs() {
        let name = format!("{}-example", kind.interface);
        let created = Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(["fixer", "new", &name, "--resource-type", kind.name])
            .args(["--control", "TEST.99", "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", text(&created));
        let crate_dir = dir.join(&name);
        for f in [
            "Cargo.toml",
            "src/lib.rs",
            "cases/not-implemented/case.json",
            "cases/not-implemented/traffic.json",
        ] {
            assert!(crate_dir.join(f).exists(), "{name}: {f} was not written");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(["fixer", "test"])
            .arg(&crate_dir)
            .arg("--cache-dir")
            .arg(repo_root().join("target/test-scratch/fixer-cases-cache"))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("running salve");
        let report = text(&out);
        assert!(out.status.success(), "{name}: {report}");
        // The stub fails with "not implemented", and its case expects exactly that: an
        // installed scaffold can never record a resource as compliant.
        assert!(
            report.contains("PASS not-implemented ("),
            "{name}: {report}"
        );
        assert!(report.contains("1 passed, 0 failed"), "{name}: {report}");
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(
            !lib.contains("Ok(true)"),
            "the scaffold's check() claims compliance:\n{lib}"
        );
    }
    let again = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args([
            "fixer",
            "new",
            "security-group-example",
            "--resource-type",
            "security-group",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
}

#[test]
fn a_recording_holds_no_credentials() {
    // Distinctive platform credentials, so any leak is found by name.
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";
    let case = copy_case("s3-block-public-access", "fixed", "fixer-cases-scrub");
    let path = case.join("case.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let bucket = unique("scrub");
    spec["finding"]["resource"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = sdk_config().await;
        salve::aws::s3_client(&sdk, true)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["fixer", "test", "--record", "--endpoint-url", &endpoint()])
        .arg(fixer("s3-block-public-access"))
        .arg(&case)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in ["traffic.json", "case.json"] {
        let recorded = std::fs::read_to_string(case.join(f)).unwrap();
        for secret in [KEY_ID, SECRET, TOKEN, "AKIA", "ASIA", "testing"] {
            assert!(!recorded.contains(secret), "{f} holds {secret:?}");
        }
    }
    let traffic = std::fs::read_to_string(case.join("traffic.json")).unwrap();
    assert!(traffic.contains("<AccessKeyId>SCRUBBED-ACCESS-KEY-ID</AccessKeyId>"));
    assert!(traffic.contains("<SessionToken>scrubbed-session-token</SessionToken>"));
    // The fresh recording replays.
    let replayed = salve(
        &["fixer", "test"],
        &[&fixer("s3-block-public-access"), &case],
    );
    assert!(replayed.status.success(), "{}", text(&replayed));
}

// ---------------------------------------------------------------------------------------------
// Recording the checked-in cases.

fn write_case(dir: &Path, description: &str, finding: Value) {
    std::fs::create_dir_all(dir).unwrap();
    let spec = json!({
        "description": description,
        "recorded_at": "1970-01-01T00:00:00Z",
        "finding": finding,
    });
    std::fs::write(
        dir.join("case.json"),
        serde_json::to_string_pretty(&spec).unwrap(),
    )
    .unwrap();
}

fn record(fixer_name: &str, case: &Path, proxy: &CountingProxy) {
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["fixer", "test", "--record", "--endpoint-url", &proxy.url])
        .arg(fixer(fixer_name))
        .arg(case)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

fn access_denied(action_marker: &'static str) -> FaultRule {
    Arc::new(move |s: &Seen| {
        let hit = s.path_and_query.contains(action_marker) && s.method == "PUT";
        hit.then(|| {
            Injected::Respond(
                403,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>denied-1</RequestId></Error>".into(),
            )
        })
    })
}

/// An EC2 error answer (query protocol): the write denied.
const EC2_DENIED: (u16, &str) = (
    403,
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>denied-1</RequestID></Response>",
);
/// An EC2 error answer (query protocol): the read throttled.
const EC2_THROTTLED: (u16, &str) = (
    503,
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>throttled-1</RequestID></Response>",
);

/// The faults of the query-protocol cases (EC2, RDS): every request naming `write` is answered
/// `denied` in the access-denied case, and the first naming `read` is answered `throttled` in the
/// throttled case; no fault in the others.
fn query_faults(
    case: &str,
    write: &'static str,
    denied: (u16, &'static str),
    read: &'static str,
    throttled: (u16, &'static str),
) -> Option<FaultRule> {
    match case {
        "access-denied-on-write" => Some(body_fault(write, denied, false)),
        "throttled-then-fixed" => Some(body_fault(read, throttled, true)),
        _ => None,
    }
}

/// Answers every request whose body names `marker` with `answer`, or only the first (`once`).
fn body_fault(marker: &'static str, answer: (u16, &'static str), once: bool) -> FaultRule {
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    Arc::new(move |s: &Seen| {
        (s.body.contains(marker)
            && !(once && answered.swap(true, std::sync::atomic::Ordering::SeqCst)))
        .then(|| Injected::Respond(answer.0, answer.1.into()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates fixers/*/cases against moto"]
async fn record_shipped_fixer_cases() {
    let proxy = CountingProxy::start(&endpoint()).await;
    let sdk = sdk_config().await;
    let s3 = salve::aws::s3_client(&sdk, true);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);

    // S3: one bucket per case, named for it.
    let s3_cases = cases_dir("s3-block-public-access");
    let _ = std::fs::remove_dir_all(&s3_cases);
    for case in [
        "fixed",
        "already-compliant",
        "access-denied-on-write",
        "throttled-then-fixed",
    ] {
        let bucket = format!("salve-case-{case}");
        let _ = s3.create_bucket().bucket(&bucket).send().await;
        let _ = s3.delete_public_access_block().bucket(&bucket).send().await;
        if case == "already-compliant" {
            s3.put_public_access_block()
                .bucket(&bucket)
                .public_access_block_configuration(
                    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let description = match case {
            "fixed" => "A bucket with no public access block gets all four settings.",
            "already-compliant" => {
                "A bucket that already blocks all public access: nothing to change."
            }
            "access-denied-on-write" => {
                "PutBucketPublicAccessBlock is denied: the finding fails cleanly, not retryable."
            }
            _ => {
                "The first read is throttled (503 SlowDown); the SDK retries it and the fix lands."
            }
        };
        let finding: Value =
            serde_json::from_str(&s3_finding(&format!("case-{case}"), &bucket)).unwrap();
        let dir = s3_cases.join(case);
        write_case(&dir, description, finding);
        let throttled_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
        proxy.set_fault(match case {
            "access-denied-on-write" => Some(access_denied("publicAccessBlock")),
            "throttled-then-fixed" => {
                let b = bucket.clone();
                Some(Arc::new(move |s: &Seen| {
                    (s.path_and_query.starts_with(&format!("/{b}/"))
                        && s.path_and_query.contains("publicAccessBlock")
                        && s.method == "GET"
                        && !throttled_once.swap(true, std::sync::atomic::Ordering::SeqCst))
                    .then(|| {
                        Injected::Respond(
                            503,
                            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".into(),
                        )
                    })
                }))
            }
            _ => None,
        });
        record("s3-block-public-access", &dir, &proxy);
    }

    // Security groups: SSH open to the world (or not), plus a rule that must stay.
    let sg_cases = cases_dir("sg-close-admin-ports");
    let _ = std::fs::remove_dir_all(&sg_cases);
    for case in [
        "fixed",
        "already-compliant",
        "access-denied-on-write",
        "throttled-then-fixed",
    ] {
        let group = ec2
            .create_security_group()
            .group_name(unique(&format!("salve-case-{case}")))
            .description("salve fixer case")
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap();
        let cidr = if case == "already-compliant" {
            "10.0.0.0/8"
        } else {
            "0.0.0.0/0"
        };
        ec2.authorize_security_group_ingress()
            .group_id(&group)
            .ip_permissions(
                aws_sdk_ec2::types::IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip(cidr).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let description = match case {
            "fixed" => "SSH open to 0.0.0.0/0 is revoked.",
            "already-compliant" => "SSH open only to 10.0.0.0/8: nothing to change.",
            "access-denied-on-write" => "RevokeSecurityGroupIngress is denied: the finding fails cleanly, not retryable.",
            _ => "The first DescribeSecurityGroups is throttled (RequestLimitExceeded); the SDK retries it and the fix lands.",
        };
        let finding: Value = serde_json::from_str(&sg_finding(
            &format!("case-sg-{case}"),
            &group,
            "admin ports open",
        ))
        .unwrap();
        let dir = sg_cases.join(case);
        write_case(&dir, description, finding);
        proxy.set_fault(query_faults(
            case,
            "Action=RevokeSecurityGroupIngress",
            EC2_DENIED,
            "Action=DescribeSecurityGroups",
            EC2_THROTTLED,
        ));
        record("sg-close-admin-ports", &dir, &proxy);
    }

    // EBS encryption by default: the account's setting in us-east-1, off unless the case says.
    let ebs_cases = cases_dir("ebs-encryption-by-default");
    let _ = std::fs::remove_dir_all(&ebs_cases);
    for case in [
        "fixed",
        "already-compliant",
        "access-denied-on-write",
        "throttled-then-fixed",
    ] {
        if case == "already-compliant" {
            ec2.enable_ebs_encryption_by_default().send().await.unwrap();
        } else {
            ec2.disable_ebs_encryption_by_default()
                .send()
                .await
                .unwrap();
        }
        let description = match case {
            "fixed" => "Encryption by default is off and gets turned on.",
            "already-compliant" => "Encryption by default is already on: nothing to change.",
            "access-denied-on-write" => "EnableEbsEncryptionByDefault is denied: the finding fails cleanly, not retryable.",
            _ => "The first GetEbsEncryptionByDefault is throttled (RequestLimitExceeded); the SDK retries it and the fix lands.",
        };
        let finding: Value =
            serde_json::from_str(&ebs_finding(&format!("case-ebs-{case}"), "us-east-1")).unwrap();
        let dir = ebs_cases.join(case);
        write_case(&dir, description, finding);
        proxy.set_fault(query_faults(
            case,
            "Action=EnableEbsEncryptionByDefault",
            EC2_DENIED,
            "Action=GetEbsEncryptionByDefault",
            EC2_THROTTLED,
        ));
        record("ebs-encryption-by-default", &dir, &proxy);
    }
    ec2.disable_ebs_encryption_by_default()
        .send()
        .await
        .unwrap();

    // RDS: one public instance per case (private for already-compliant).
    let rds_cases = cases_dir("rds-private");
    let _ = std::fs::remove_dir_all(&rds_cases);
    let rds = aws_sdk_rds::Client::new(&sdk);
    for case in [
        "fixed",
        "already-compliant",
        "access-denied-on-write",
        "throttled-then-fixed",
    ] {
        let db = format!("salve-case-{case}");
        let _ = rds
            .delete_db_instance()
            .db_instance_identifier(&db)
            .skip_final_snapshot(true)
            .send()
            .await;
        public_db(&db).await;
        if case == "already-compliant" {
            rds.modify_db_instance()
                .db_instance_identifier(&db)
                .publicly_accessible(false)
                .apply_immediately(true)
                .send()
                .await
                .unwrap();
        }
        let description = match case {
            "fixed" => "A publicly accessible DB instance is made private.",
            "already-compliant" => "A private DB instance: nothing to change.",
            "access-denied-on-write" => {
                "ModifyDBInstance is denied: the finding fails cleanly, not retryable."
            }
            _ => {
                "The first DescribeDBInstances is throttled; the SDK retries it and the fix lands."
            }
        };
        let finding: Value =
            serde_json::from_str(&rds_finding(&format!("case-rds-{case}"), &db)).unwrap();
        let dir = rds_cases.join(case);
        write_case(&dir, description, finding);
        proxy.set_fault(query_faults(
            case,
            "Action=ModifyDBInstance",
            (403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform rds:ModifyDBInstance</Message></Error><RequestId>denied-1</RequestId></ErrorResponse>"),
            "Action=DescribeDBInstances",
            (400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>throttled-1</RequestId></ErrorResponse>"),
        ));
        record("rds-private", &dir, &proxy);
    }

    // Network ACLs: SSH open to the world in entry 100 (10.0.0.0/8 for already-compliant), and an
    // HTTPS entry that must stay.
    let nacl_cases = cases_dir("nacl-close-admin-ports");
    let _ = std::fs::remove_dir_all(&nacl_cases);
    for case in [
        "fixed",
        "already-compliant",
        "access-denied-on-write",
        "throttled-then-fixed",
    ] {
        let source = if case == "already-compliant" {
            "10.0.0.0/8"
        } else {
            "0.0.0.0/0"
        };
        let acl = moto_acl(&[
            (100, false, "6", "allow", source, Some((22, 22))),
            (120, false, "6", "allow", "0.0.0.0/0", Some((443, 443))),
        ])
        .await;
        let description = match case {
            "fixed" => "Ingress entry 100 allows SSH from 0.0.0.0/0 and is deleted; entry 120 (HTTPS) stays.",
            "already-compliant" => "SSH is allowed only from 10.0.0.0/8: nothing to change.",
            "access-denied-on-write" => "DeleteNetworkAclEntry is denied: the finding fails cleanly, not retryable.",
            _ => "The first DescribeNetworkAcls is throttled (RequestLimitExceeded); the SDK retries it and the fix lands.",
        };
        let finding: Value =
            serde_json::from_str(&nacl_finding(&format!("case-nacl-{case}"), &acl)).unwrap();
        let dir = nacl_cases.join(case);
        write_case(&dir, description, finding);
        proxy.set_fault(query_faults(
            case,
            "Action=DeleteNetworkAclEntry",
            EC2_DENIED,
            "Action=DescribeNetworkAcls",
            EC2_THROTTLED,
        ));
        record("nacl-close-admin-ports", &dir, &proxy);
    }
    record_ebs_volume_cases(&proxy).await;
}

/// EBS volumes: one per case, encrypted only where the case says. The fixer writes nothing, so
/// the faults are on the one read.
async fn record_ebs_volume_cases(proxy: &CountingProxy) {
    let volume_cases = cases_dir("ebs-encrypt-volume");
    let _ = std::fs::remove_dir_all(&volume_cases);
    for case in IAC_ONLY_CASES {
        let volume = moto_volume(case == "already-compliant").await;
        let description = match case {
            "review-without-terraform" => "An unencrypted volume that no Terraform workspace covers: it cannot be encrypted in place, so the finding goes to review and nothing changes.",
            "already-compliant" => "An encrypted volume: nothing to change.",
            "access-denied-on-read" => "DescribeVolumes is denied: the finding fails cleanly, not retryable.",
            _ => "The first DescribeVolumes is throttled (RequestLimitExceeded); the SDK retries it and the finding goes to review.",
        };
        let finding: Value =
            serde_json::from_str(&volume_finding(&format!("case-volume-{case}"), &volume)).unwrap();
        let dir = volume_cases.join(case);
        write_case(&dir, description, finding);
        proxy.set_fault(match case {
            "access-denied-on-read" => {
                Some(body_fault("Action=DescribeVolumes", EC2_DENIED, false))
            }
            "throttled-then-review" => {
                Some(body_fault("Action=DescribeVolumes", EC2_THROTTLED, true))
            }
            _ => None,
        });
        record("ebs-encrypt-volume", &dir, proxy);
        if case.contains("review") {
            // The reason is the point of these cases: pin it, so a replay compares it too.
            let path = dir.join("case.json");
            let mut spec: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            spec["expect"]["audit"]["reason"] = json!(format!(
                "nothing was changed: {}; no Terraform workspace with a forge covers this account and region; a person migrates it or declares it in Terraform",
                salve_kind_ebs_volume::IAC_ONLY
            ));
            std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        }
    }
}

/// Only the EBS volume cases, re-recorded without touching the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates fixers/ebs-encrypt-volume/cases against moto"]
async fn record_ebs_volume_fixer_cases() {
    let proxy = CountingProxy::start(&endpoint()).await;
    record_ebs_volume_cases(&proxy).await;
}
