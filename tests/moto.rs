//! Both shipped fixers against moto server: the resource really changes, everything else stays as
//! it was, a second run is already compliant, and a dry run changes nothing.
//!
//! scripts/test.sh starts moto and sets SALVE_MOTO_ENDPOINT.

mod common;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use common::*;

use salve::pipeline::{Effect, Pipeline, ProcessOptions};

use serde_json::Value;

async fn ec2() -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config().await)
}

async fn moto_pipeline(name: &str) -> (Pipeline, std::path::PathBuf) {
    aws_pipeline(name, &endpoint()).await
}

async fn process(p: &Pipeline, payload: &str, dry_run: bool) -> Value {
    let options = ProcessOptions {
        effect: if dry_run {
            Effect::PlanOnly
        } else {
            Effect::Apply
        },
        ..ProcessOptions::default()
    };
    process_one(p, payload.as_bytes(), options).await
}

#[tokio::test]
async fn s3_block_public_access_fixes_only_its_bucket() {
    let client = s3().await;
    let target = unique("public");
    let bystander = unique("bystander");
    let dry = unique("dry");
    for b in [&target, &bystander, &dry] {
        client.create_bucket().bucket(b).send().await.unwrap();
    }
    let (p, audit) = moto_pipeline("moto-s3").await;

    let planned = process(&p, &s3_finding("s3-dry", &dry), true).await;
    assert_eq!(planned["status"], "planned", "{}", planned["reason"]);
    assert_eq!(
        planned["plan"]["changes"][0]["action"],
        "s3:PutBucketPublicAccessBlock"
    );
    assert_eq!(
        public_access_block(&client, &dry).await,
        None,
        "a dry run must change nothing"
    );

    let first = process(&p, &s3_finding("s3-1", &target), false).await;
    assert_eq!(first["status"], "remediated", "{}", first["reason"]);
    assert_eq!(public_access_block(&client, &target).await, Some([true; 4]));
    assert_eq!(
        first["rollback"],
        serde_json::json!({ "previous_public_access_block": null })
    );
    assert_eq!(
        public_access_block(&client, &bystander).await,
        None,
        "other buckets stay untouched"
    );

    let second = process(&p, &s3_finding("s3-1", &target), false).await;
    assert_eq!(second["status"], "already-compliant");
    let writes = second["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["access"] == "write")
        .count();
    assert_eq!(writes, 0);
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}

fn rules_of(group: &aws_sdk_ec2::types::SecurityGroup) -> Vec<(i32, String)> {
    let mut rules: Vec<(i32, String)> =
        salve_kind_security_group::host::flatten_permissions(group.ip_permissions())
            .into_iter()
            .map(|r| (r.from_port.unwrap_or(-1), format!("{:?}", r.source)))
            .collect();
    rules.sort();
    rules
}

async fn group_rules(client: &aws_sdk_ec2::Client, id: &str) -> Vec<(i32, String)> {
    let out = client
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .unwrap();
    rules_of(&out.security_groups()[0])
}

async fn open_group(client: &aws_sdk_ec2::Client, name: &str) -> String {
    let id = client
        .create_security_group()
        .group_name(name)
        .description("salve test")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let ssh = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
        .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
        .build();
    let https = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    client
        .authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(ssh)
        .ip_permissions(https)
        .send()
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn sg_close_admin_ports_revokes_only_world_open_admin_rules() {
    let client = ec2().await;
    let target = open_group(&client, &unique("target")).await;
    let bystander = open_group(&client, &unique("bystander")).await;
    let dry = open_group(&client, &unique("dry")).await;
    let before_bystander = group_rules(&client, &bystander).await;
    let (p, audit) = moto_pipeline("moto-sg").await;

    let planned = process(&p, &sg_finding("sg-dry", &dry, "ssh open"), true).await;
    assert_eq!(planned["status"], "planned", "{}", planned["reason"]);
    assert_eq!(
        group_rules(&client, &dry).await,
        before_bystander,
        "a dry run must change nothing"
    );

    let first = process(&p, &sg_finding("sg-1", &target, "ssh open"), false).await;
    assert_eq!(first["status"], "remediated", "{}", first["reason"]);
    assert_eq!(
        group_rules(&client, &target).await,
        vec![
            (22, "RuleSource::Ipv4Cidr(\"10.0.0.0/8\")".to_string()),
            (443, "RuleSource::Ipv4Cidr(\"0.0.0.0/0\")".to_string()),
        ],
        "the restricted SSH rule and the HTTPS rule must stay"
    );
    let revoked = first["rollback"]["revoked"].as_array().unwrap();
    assert_eq!(
        revoked.len(),
        2,
        "rollback lists the revoked rules: {}",
        first["rollback"]
    );
    assert_eq!(
        group_rules(&client, &bystander).await,
        before_bystander,
        "other groups stay untouched"
    );

    let second = process(&p, &sg_finding("sg-1", &target, "ssh open"), false).await;
    assert_eq!(second["status"], "already-compliant");
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}

/// EC2 returns a group's tags with the group, so the host's tag read takes them from the
/// describe the fixer's `check` made: one DescribeSecurityGroups before the write instead of
/// two. They are still the group's own tags, read in this finding: an exception tag on the
/// group, absent from the payload, still stops the fix.
#[tokio::test]
async fn the_tag_read_reuses_the_checks_describe_and_still_sees_an_exception_tag() {
    let client = ec2().await;
    let fixed = open_group(&client, &unique("reuse")).await;
    let excepted = open_group(&client, &unique("excepted")).await;
    let exception = aws_sdk_ec2::types::Tag::builder()
        .key("salve:exception")
        .value("approved")
        .build();
    client
        .create_tags()
        .resources(&excepted)
        .tags(exception)
        .send()
        .await
        .unwrap();
    let proxy = common::proxy::CountingProxy::start(&endpoint()).await;
    let (p, _audit) = aws_pipeline("moto-tag-reuse", &proxy.url).await;
    let describes = || {
        proxy
            .requests()
            .iter()
            .filter(|r| r.body.contains("Action=DescribeSecurityGroups"))
            .count()
    };

    let remediated = process(&p, &sg_finding("sg-reuse", &fixed, "ssh open"), false).await;
    assert_eq!(
        remediated["status"], "remediated",
        "{}",
        remediated["reason"]
    );
    assert_eq!(remediated["resource_tags"]["reused"], true);
    // check()'s describe (plan() and the tag read reuse it) and the host's read-back after the
    // write (verify() reuses that one).
    assert_eq!(describes(), 2);

    let before = group_rules(&client, &excepted).await;
    let skipped = process(&p, &sg_finding("sg-excepted", &excepted, "ssh open"), false).await;
    assert_eq!(skipped["status"], "skipped", "{}", skipped["reason"]);
    let tags = &skipped["resource_tags"];
    assert_eq!(tags["tags"]["salve:exception"], "approved", "{tags}");
    assert_eq!(tags["reused"], true);
    assert_eq!(describes(), 3, "a skipped finding describes the group once");
    assert_eq!(group_rules(&client, &excepted).await, before);
}

#[tokio::test]
async fn explain_shows_the_decision_and_changes_nothing() {
    let client = s3().await;
    let bucket = unique("explain");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = scratch("explain-cli");
    let payload = serde_json::json!({
        "trigger": {"source": "CLOUD_EVENTS", "type": "Created", "ruleId": "r", "ruleName": "r"},
        "issue": {"id": "explain-1", "status": "OPEN", "severity": "HIGH", "created": "2021-07-01M01:01:01Z", "projects": null},
        "resource": {"id": bucket, "type": "BUCKET", "cloudPlatform": "AWS", "subscriptionId": ACCOUNT,
                     "region": "us-east-1", "tags": {"owner": "team", "environment": "dev"}},
        "control": {"id": "S3.8", "name": "block public access", "severity": "HIGH"}
    });
    std::fs::write(dir.join("finding.json"), payload.to_string()).unwrap();
    std::fs::write(
        dir.join("salve.toml"),
        format!("[accounts.\"{ACCOUNT}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\n"),
    )
    .unwrap();
    let run = |output: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .current_dir(&dir)
            .args([
                "explain",
                "finding.json",
                "--config",
                "salve.toml",
                "--output",
                output,
            ])
            .arg("--fixers")
            .arg(repo_root().join("build/fixers"))
            .args(["--cache-dir", "cache", "--endpoint-url", &endpoint()])
            .output()
            .expect("running salve explain")
    };

    let out = run("json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["source"], "wiz");
    assert_eq!(
        record["finding"]["resource"]["arn"],
        format!("arn:aws:s3:::{bucket}")
    );
    assert_eq!(record["status"], "planned");
    assert_eq!(record["fixer"]["name"], "s3-block-public-access");
    assert_eq!(
        record["plan"]["changes"][0]["action"],
        "s3:PutBucketPublicAccessBlock"
    );
    assert_eq!(record["decision"]["checks"].as_array().unwrap().len(), 7);
    assert_eq!(record["risk"]["priority"], "P2");

    let out = run("human");
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "source     wiz",
        "[pass] severity eligible",
        "rego rules that fired",
        "risk      P2",
        "status    planned",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    assert_eq!(
        public_access_block(&client, &bucket).await,
        None,
        "explain changed the bucket"
    );
    assert!(!dir.join(".salve").exists(), "explain wrote an audit log");
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log_or_the_logs() {
    let client = s3().await;
    let bucket = unique("secrets");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = scratch("secrets-cli");
    std::fs::write(dir.join("finding.json"), s3_finding("secrets-1", &bucket)).unwrap();
    std::fs::write(
        dir.join("salve.toml"),
        format!(
            "[accounts.\"{ACCOUNT}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\nexternal-id-env = \"SALVE_SECRET_TEST_EXTERNAL_ID\"\n"
        ),
    )
    .unwrap();
    let external_id = "ext-id-must-not-leak-8c1f";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .current_dir(&dir)
        .args([
            "process",
            "finding.json",
            "--config",
            "salve.toml",
            "--output",
            "json",
        ])
        .args(["--audit-log", "audit.jsonl", "--cache-dir", "cache"])
        .arg("--fixers")
        .arg(repo_root().join("build/fixers"))
        .args(["--endpoint-url", &endpoint()])
        .env("SALVE_SECRET_TEST_EXTERNAL_ID", external_id)
        .env("SALVE_LOG", "debug")
        .output()
        .expect("running salve process");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let record: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(record["status"], "remediated");
    assert_eq!(record["sessions"][0]["phase"], "read");
    assert_eq!(record["sessions"][0]["session_name"], "salve-secrets-1");
    assert_eq!(record["sessions"][1]["phase"], "write");
    assert_eq!(
        record["sessions"][1]["policy"]["Statement"][0]["Action"],
        serde_json::json!(["s3:PutBucketPublicAccessBlock"])
    );

    let logs = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("finding processed"),
        "debug logs were on: {logs}"
    );
    for (name, text) in [
        ("audit log", audit.as_str()),
        ("logs", &logs),
        ("stdout", &stdout),
    ] {
        assert!(
            !text.contains(external_id),
            "the external ID is in the {name}"
        );
        // The SDK's debug logs name credentials only with the secret redacted and without the
        // token; STS's raw answer (with both) must never be logged.
        let unredacted = text
            .match_indices("secret_access_key")
            .any(|(i, _)| !text[i..].starts_with("secret_access_key: \"** redacted **\""));
        assert!(!unredacted, "a secret access key is in the {name}");
        for field in [
            "<SecretAccessKey>",
            "<SessionToken>",
            "session_token",
            "SessionToken\"",
        ] {
            assert!(!text.contains(field), "{field} is in the {name}");
        }
    }
    // The audit log names sessions, never their credentials, not even the access key ID.
    assert!(
        !audit.contains("ASIA"),
        "an access key ID is in the audit log"
    );
}

/// A Security Hub EC2.7 finding on the account, as Security Hub sends it: no ARN, just
/// `AWS::::Account:<id>` and the region.
fn asff_ebs(id: &str, region: &str) -> String {
    serde_json::json!({
        "SchemaVersion": "2018-10-08",
        "Id": id,
        "AwsAccountId": ACCOUNT,
        "Title": "EC2.7 EBS default encryption should be enabled",
        "Severity": {"Label": "HIGH"},
        "Compliance": {"Status": "FAILED", "SecurityControlId": "EC2.7"},
        "RecordState": "ACTIVE",
        "Resources": [{
            "Type": "AwsAccount",
            "Id": format!("AWS::::Account:{ACCOUNT}"),
            "Region": region,
            "Tags": {"owner": "platform-team", "environment": "dev"}
        }]
    })
    .to_string()
}

/// A kind added after the first release is opt-in: the same finding is skipped under the
/// default eligibility and fixed once the deployment lists the kind and its write.
#[tokio::test]
async fn ebs_encryption_by_default_is_opt_in_and_turned_on_from_security_hub() {
    // A region no other test touches: the setting is the whole region's.
    let region = "ap-southeast-2";
    let fixers = [fixer("ebs-encryption-by-default")];
    let (default, _) = aws_pipeline_config("moto-ebs-default", &endpoint(), &fixers, "").await;
    let r = process(&default, &asff_ebs("ebs-default", region), false).await;
    assert_eq!(r["status"], "skipped", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("AWS::EC2::EbsEncryptionByDefault"),
        "{r:#}"
    );
    assert!(!common::ebs_encryption(region).await);

    let opt_in = "[eligibility]\nresource-types = [\"AWS::EC2::EbsEncryptionByDefault\"]\nallowed-actions = [\"ec2:EnableEbsEncryptionByDefault\"]\n";
    let (p, _) = aws_pipeline_config("moto-ebs", &endpoint(), &fixers, opt_in).await;
    let r = process(&p, &asff_ebs("ebs-on", region), false).await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    assert_eq!(
        r["finding"]["resource"]["arn"],
        format!("arn:aws:ec2:{region}:{ACCOUNT}:ebs-encryption-by-default")
    );
    assert_eq!(r["evidence"]["read_back"][0]["holds"], true);
    assert_eq!(r["rollback"], serde_json::json!({"was_enabled": false}));
    assert!(common::ebs_encryption(region).await);

    let again = process(&p, &asff_ebs("ebs-again", region), false).await;
    assert_eq!(again["status"], "already-compliant", "{again:#}");
}

/// RDS.2 against moto: the instance becomes private, and only after the deployment opted in.
#[tokio::test]
async fn rds_private_makes_a_public_instance_private() {
    let db = unique("public-db");
    public_db(&db).await;
    let fixers = [fixer("rds-private")];
    let opt_in = "[eligibility]\nresource-types = [\"AWS::RDS::DBInstance\"]\nallowed-actions = [\"rds:ModifyDBInstance\"]\n";
    let (p, _) = aws_pipeline_config("moto-rds", &endpoint(), &fixers, opt_in).await;
    let r = process(&p, &rds_finding("rds-moto", &db), false).await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    assert_eq!(r["plan"]["changes"][0]["call"]["args"], false);
    assert_eq!(r["evidence"]["read_back"][0]["holds"], true);
    assert!(!db_is_public(&db).await);
    let again = process(&p, &rds_finding("rds-moto-again", &db), false).await;
    assert_eq!(again["status"], "already-compliant", "{again:#}");
}

/// EC2.21 against moto: world-open admin ports are closed by deleting or narrowing exactly the
/// entries that decide them; other sources, other ports and egress stay as they were.
#[tokio::test]
async fn nacl_close_admin_ports_changes_only_the_deciding_ingress_entries() {
    let acl = moto_acl(&[
        (100, false, "6", "allow", "0.0.0.0/0", Some((22, 22))),
        (105, false, "6", "allow", "::/0", Some((22, 22))),
        (110, false, "6", "allow", "0.0.0.0/0", Some((3380, 3389))),
        (120, false, "6", "allow", "0.0.0.0/0", Some((443, 443))),
        (130, false, "6", "allow", "10.0.0.0/8", Some((22, 22))),
        (100, true, "-1", "allow", "0.0.0.0/0", None),
    ])
    .await;
    let fixers = [fixer("nacl-close-admin-ports")];
    let opt_in = "[eligibility]\nresource-types = [\"AWS::EC2::NetworkAcl\"]\nallowed-actions = [\"ec2:DeleteNetworkAclEntry\", \"ec2:ReplaceNetworkAclEntry\"]\n";
    let (p, _) = aws_pipeline_config("moto-nacl", &endpoint(), &fixers, opt_in).await;
    let r = process(&p, &nacl_finding("nacl-moto", &acl), false).await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    assert_eq!(r["plan"]["changes"].as_array().unwrap().len(), 3, "{r:#}");
    assert!(r["evidence"]["read_back"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["holds"] == true));
    assert_eq!(
        acl_entries(&acl).await,
        vec![
            (100, true, "0.0.0.0/0".to_string(), None),
            (110, false, "0.0.0.0/0".to_string(), Some((3380, 3388))),
            (120, false, "0.0.0.0/0".to_string(), Some((443, 443))),
            (130, false, "10.0.0.0/8".to_string(), Some((22, 22))),
        ]
    );
    let again = process(&p, &nacl_finding("nacl-moto-again", &acl), false).await;
    assert_eq!(again["status"], "already-compliant", "{again:#}");
}

/// An entry whose remaining ports would need two entries, or that allows every protocol, is
/// left to a human: nothing changes.
#[tokio::test]
async fn nacl_close_admin_ports_leaves_what_one_entry_cannot_hold_to_a_human() {
    let acl = moto_acl(&[(100, false, "6", "allow", "0.0.0.0/0", Some((0, 65535)))]).await;
    let fixers = [fixer("nacl-close-admin-ports")];
    let opt_in = "[eligibility]\nresource-types = [\"AWS::EC2::NetworkAcl\"]\nallowed-actions = [\"ec2:DeleteNetworkAclEntry\", \"ec2:ReplaceNetworkAclEntry\"]\n";
    let (p, _) = aws_pipeline_config("moto-nacl-human", &endpoint(), &fixers, opt_in).await;
    let r = process(&p, &nacl_finding("nacl-wide", &acl), false).await;
    assert_eq!(r["status"], "failed", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("a human picks the rule numbers"),
        "{r:#}"
    );
    assert_eq!(
        acl_entries(&acl).await,
        vec![(100, false, "0.0.0.0/0".to_string(), Some((0, 65535)))]
    );
}

/// A payload's findings run concurrently, but two about one bucket run one after another (the
/// second finds the first's fix), and the outcomes and terminal records come in payload order.
#[tokio::test]
async fn a_payload_runs_concurrently_one_resource_at_a_time_and_in_order() {
    let (p, audit, backends) = common::aws_pipeline_counted(
        "payload-concurrency",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    let s3 = common::s3().await;
    let buckets = common::moto_buckets(&s3, "conc", 5).await;
    // Six findings: one per bucket, and a second one about the first bucket.
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    for (i, b) in buckets
        .iter()
        .chain(std::iter::once(&buckets[0]))
        .enumerate()
    {
        let id = format!("conc-{i}");
        messages.push(serde_json::json!({
            "MessageId": id, "Body": common::s3_finding(&id, b)
        }));
        ids.push(id);
    }
    // And one triage skips (its account is not allowlisted): it opens no session, so its
    // bucket is in no session policy.
    let outsider = common::unique("conc-outsider");
    let skipped =
        common::s3_finding("conc-outsider", &outsider).replace("123456789012", "333333333333");
    messages.push(serde_json::json!({ "MessageId": "conc-outsider", "Body": skipped }));
    ids.push("conc-outsider".into());
    let payload = serde_json::json!({ "Messages": messages }).to_string();
    let mut seen = Vec::new();
    p.process_delivery_each(
        payload.as_bytes(),
        salve::pipeline::ProcessOptions {
            concurrency: 4,
            ..Default::default()
        },
        None,
        |processed| {
            seen.push((
                processed.entry.finding_id.clone().unwrap_or_default(),
                processed.entry.status.map(|s| s.as_str()).unwrap_or("?"),
            ))
        },
    )
    .await
    .unwrap();
    let order: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ids, "outcomes in payload order");
    assert!(
        seen[..5].iter().all(|(_, s)| *s == "remediated"),
        "{seen:?}"
    );
    assert_eq!(
        seen[5].1, "already-compliant",
        "the second finding about a bucket ran after the first fixed it: {seen:?}"
    );
    assert_eq!(seen[6].1, "skipped", "{seen:?}");
    let records: Vec<serde_json::Value> = common::read_records(&audit)
        .into_iter()
        .filter(|r| r["status"] != "intent")
        .collect();
    let terminal: Vec<&str> = records
        .iter()
        .map(|r| r["finding_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(terminal, ids, "terminal records in payload order");

    // The six findings read through one session, whose policy lists exactly their five
    // buckets; each wrote through its own.
    common::assert_one_shared_read_session(&records[..6], &buckets);
    let writes = records[..5]
        .iter()
        .map(|r| {
            r["sessions"][1]["session_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(writes.len(), 5, "one write session per fix: {writes:?}");
    assert_eq!(
        backends.assumer().sts_calls(),
        6,
        "one shared read session and five write sessions"
    );
    for b in &buckets {
        assert_eq!(common::public_access_block(&s3, b).await, Some([true; 4]));
    }
}

/// Each message's record statuses, in batch order.
fn statuses(results: &[salve::modes::batch::MessageResult]) -> Vec<Vec<&str>> {
    results
        .iter()
        .map(|r| r.statuses.iter().map(|s| s.as_str()).collect())
        .collect()
}

/// A queue delivers one finding a message. The findings of one batch's messages (a Lambda's
/// SQS batch, a daemon's receive) share one read session all the same, whose policy lists
/// exactly their buckets; a message triage skips, and a malformed one, join no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_batchs_messages_share_one_read_session() {
    let (p, audit, backends) = common::aws_pipeline_counted(
        "batch-read-groups",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    let s3 = common::s3().await;
    let buckets = common::moto_buckets(&s3, "qbatch", 4).await;
    let mut messages: Vec<salve::modes::batch::QueueMessage> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| salve::modes::batch::QueueMessage {
            id: format!("qbatch-{i}"),
            body: common::s3_finding(&format!("qbatch-{i}"), b).into_bytes(),
        })
        .collect();
    let outsider = common::unique("qbatch-outsider");
    messages.insert(
        2,
        salve::modes::batch::QueueMessage {
            id: "qbatch-outsider".into(),
            body: common::s3_finding("qbatch-outsider", &outsider)
                .replace("123456789012", "333333333333")
                .into_bytes(),
        },
    );
    messages.push(salve::modes::batch::QueueMessage {
        id: "qbatch-malformed".into(),
        body: b"{ not json".to_vec(),
    });
    let results = salve::modes::batch::process_batch(std::sync::Arc::new(p), messages, 3).await;
    let statuses = statuses(&results);
    assert_eq!(
        statuses,
        [
            vec!["remediated"],
            vec!["remediated"],
            vec!["skipped"],
            vec!["remediated"],
            vec!["remediated"],
            vec!["rejected"],
        ]
    );
    let fixed: Vec<Value> = common::read_records(&audit)
        .into_iter()
        .filter(|r| r["status"] == "remediated")
        .collect();
    assert_eq!(fixed.len(), 4);
    common::assert_one_shared_read_session(&fixed, &buckets);
    for r in &fixed {
        assert_eq!(r["delivery"]["via"], "sqs", "{r}");
    }
    assert_eq!(
        backends.assumer().sts_calls(),
        5,
        "one read session for the batch and one write session per fix"
    );
    for b in &buckets {
        assert_eq!(common::public_access_block(&s3, b).await, Some([true; 4]));
    }
}

/// Two findings about one bucket in one batch (two sources reporting it) share a read session
/// that lists that bucket alone. They run one after another, and the second reads the bucket
/// fresh: it finds the first one's fix in place.
#[tokio::test]
async fn findings_about_one_resource_share_a_read_session() {
    let (p, audit, backends) = common::aws_pipeline_counted(
        "batch-one-resource",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    let s3 = common::s3().await;
    let buckets = common::moto_buckets(&s3, "qsame", 1).await;
    let messages: Vec<salve::modes::batch::QueueMessage> = ["qsame-wiz", "qsame-hub"]
        .iter()
        .map(|id| salve::modes::batch::QueueMessage {
            id: id.to_string(),
            body: common::s3_finding(id, &buckets[0]).into_bytes(),
        })
        .collect();
    let results = salve::modes::batch::process_batch(std::sync::Arc::new(p), messages, 2).await;
    let statuses = statuses(&results);
    assert_eq!(statuses, [vec!["remediated"], vec!["already-compliant"]]);
    let records: Vec<Value> = common::read_records(&audit)
        .into_iter()
        .filter(|r| r["status"] != "intent")
        .collect();
    assert_eq!(records.len(), 2);
    common::assert_one_shared_read_session(&records, &buckets);
    assert_eq!(
        backends.assumer().sts_calls(),
        2,
        "one read session for both findings and one write session for the fix"
    );
}

/// A payload too large for one session policy is split: every shared read session's policy
/// stays within STS's limit, and together they list each finding's bucket once.
#[tokio::test]
async fn shared_read_sessions_stay_within_the_session_policy_limit() {
    let (p, audit, backends) = common::aws_pipeline_counted(
        "payload-read-groups",
        &common::endpoint(),
        &[common::fixer("s3-block-public-access")],
        "",
    )
    .await;
    let s3 = common::s3().await;
    let buckets = common::moto_buckets(&s3, "grp", 120).await;
    let mut messages = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        let id = format!("grp-{i}");
        messages.push(serde_json::json!({ "MessageId": id, "Body": common::s3_finding(&id, b) }));
    }
    let payload = serde_json::json!({ "Messages": messages }).to_string();
    let options = ProcessOptions {
        effect: Effect::PlanOnly,
        concurrency: 8,
        ..Default::default()
    };
    p.process_delivery_each(payload.as_bytes(), options, None, |_| {})
        .await
        .unwrap();
    let mut sessions = std::collections::BTreeMap::new();
    for r in common::read_records(&audit) {
        assert_eq!(r["status"], "planned", "{r}");
        let s = &r["sessions"][0];
        sessions.insert(
            s["session_name"].as_str().unwrap().to_string(),
            s["policy"].clone(),
        );
    }
    assert!(sessions.len() > 1, "120 buckets do not fit one policy");
    let mut listed = Vec::new();
    for policy in sessions.values() {
        let text = serde_json::to_string(policy).unwrap();
        assert!(text.len() <= 2048, "{} characters: {text}", text.len());
        for arn in policy["Statement"][0]["Resource"].as_array().unwrap() {
            listed.push(arn.as_str().unwrap().to_string());
        }
    }
    common::assert_same_buckets(listed, &buckets);
    assert_eq!(backends.assumer().sts_calls(), sessions.len());
    // Nothing changed: a dry run plans.
    assert_eq!(common::public_access_block(&s3, &buckets[0]).await, None);
}

/// Puts `tags` on `bucket` (moto indexes them for the Tagging API too).
async fn tag_bucket(s3: &aws_sdk_s3::Client, bucket: &str, tags: &[(&str, &str)]) {
    let mut set = aws_sdk_s3::types::Tagging::builder();
    for (k, v) in tags {
        set = set.tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap(),
        );
    }
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(set.build().unwrap())
        .send()
        .await
        .unwrap();
}

/// `[metadata] tag-read = "tagging-api"`: the buckets of one read group have their tags read in
/// one Tagging API call instead of one GetBucketTagging each. Only an answer that names the
/// bucket is taken: an untagged bucket, absent from it, is read on its own. When the group's
/// read fails, every bucket is read on its own and the record says why; an exception tag stops
/// its fix either way.
#[tokio::test]
async fn a_read_group_reads_its_bucket_tags_in_one_tagging_api_call() {
    let s3 = common::s3().await;
    let proxy = common::proxy::CountingProxy::start(&endpoint()).await;
    let (p, audit, _backends) = common::aws_pipeline_counted(
        "tagging-api",
        &proxy.url,
        &[common::fixer("s3-block-public-access")],
        "[metadata]\ntag-read = \"tagging-api\"\n",
    )
    .await;
    let governed = [("owner", "platform-team"), ("environment", "dev")];
    let excepted = [
        ("owner", "platform-team"),
        ("environment", "dev"),
        ("salve:exception", "approved"),
    ];
    // A round of four buckets: two tagged as governed, one also excepted, one untagged.
    let round = |prefix: &'static str| {
        let s3 = s3.clone();
        async move {
            let buckets = common::moto_buckets(&s3, prefix, 4).await;
            tag_bucket(&s3, &buckets[0], &governed).await;
            tag_bucket(&s3, &buckets[1], &governed).await;
            tag_bucket(&s3, &buckets[2], &excepted).await;
            buckets
        }
    };
    let calls = |target: &str, query: &str| {
        proxy
            .requests()
            .iter()
            .filter(|r| r.target.ends_with(target) && r.path_and_query.contains(query))
            .count()
    };
    let run = |buckets: Vec<String>| {
        let p = &p;
        let audit = &audit;
        async move {
            let messages: Vec<Value> = buckets
                .iter()
                .map(|b| serde_json::json!({ "MessageId": b, "Body": common::s3_finding(b, b) }))
                .collect();
            let payload = serde_json::json!({ "Messages": messages }).to_string();
            let options = ProcessOptions {
                concurrency: 4,
                ..Default::default()
            };
            p.process_delivery_each(payload.as_bytes(), options, None, |_| {})
                .await
                .unwrap();
            let by_id: std::collections::BTreeMap<String, Value> = common::read_records(audit)
                .into_iter()
                .map(|r| (r["finding_id"].as_str().unwrap_or("").to_string(), r))
                .collect();
            let records: Vec<Value> = buckets.iter().map(|b| by_id[b].clone()).collect();
            // Either way the governed buckets are fixed, the excepted one is not, and the
            // untagged one is fixed on its payload's tags.
            let statuses: Vec<&str> = records
                .iter()
                .map(|r| r["status"].as_str().unwrap())
                .collect();
            assert_eq!(
                statuses,
                ["remediated", "remediated", "skipped", "remediated"],
                "{records:#?}"
            );
            records
        }
    };

    let records = run(round("bulk").await).await;
    assert_eq!(
        calls("GetResources", ""),
        1,
        "one Tagging API read for the group"
    );
    assert_eq!(
        calls("", "?tagging"),
        1,
        "only the untagged bucket is read on its own"
    );
    for r in &records[..3] {
        let tags = &r["resource_tags"];
        assert_eq!(tags["action"], "tag:GetResources", "{tags}");
        assert_eq!(
            tags["read_group"],
            r["sessions"][0]["session_name"]
                .as_str()
                .unwrap()
                .trim_start_matches("salve-"),
            "{tags}"
        );
        assert!(tags.get("group_miss").is_none(), "{tags}");
    }
    assert_eq!(
        records[2]["resource_tags"]["tags"]["salve:exception"],
        "approved"
    );
    let untagged = &records[3]["resource_tags"];
    assert_eq!(untagged["action"], "s3:GetBucketTagging", "{untagged}");
    assert!(
        untagged["group_miss"]
            .as_str()
            .unwrap()
            .contains("is not in the read group's Tagging API answer"),
        "{untagged}"
    );
    // The shared read session, and only it, may call the Tagging API.
    let read = &records[0]["sessions"][0]["policy"]["Statement"];
    assert_eq!(
        read[1]["Action"],
        serde_json::json!(["tag:GetResources"]),
        "{read}"
    );
    assert_eq!(read[1]["Resource"], "*");

    // A role without tag:GetResources: the group's read is refused, each bucket is read on its
    // own, and the exception still stops its fix.
    proxy.set_fault(Some(std::sync::Arc::new(|seen: &common::proxy::Seen| {
        seen.target.ends_with("GetResources").then(|| {
            common::proxy::Injected::Respond(
                400,
                r#"{"__type":"AccessDeniedException","message":"not authorized to perform: tag:GetResources"}"#.into(),
            )
        })
    })));
    let before = calls("", "?tagging");
    let records = run(round("denied").await).await;
    assert_eq!(
        calls("", "?tagging") - before,
        4,
        "every bucket read on its own"
    );
    assert_eq!(
        calls("GetResources", ""),
        2,
        "the group asked once, not once per bucket"
    );
    for r in &records {
        let tags = &r["resource_tags"];
        assert_eq!(tags["action"], "s3:GetBucketTagging", "{tags}");
        assert!(
            tags["group_miss"]
                .as_str()
                .unwrap()
                .contains("AccessDenied"),
            "{tags}"
        );
    }
    assert_eq!(
        records[2]["resource_tags"]["tags"]["salve:exception"],
        "approved"
    );
    assert!(salve::audit::verify(&audit).unwrap().is_intact());
}
