//! The IAM documents, compared as exact JSON: moto does not enforce IAM, so the JSON is the
//! proof of what AWS would allow.

mod common;

use serde_json::{json, Value};

use common::*;
use salve::capabilities::{Change, Plan};
use salve::credentials::{group_read_policy, iam, read_policy, write_policy};
use salve::policy::metadata::TagReadMode;
use salve::runtime::{LoadedFixer, Runtime, RuntimeLimits};

const BUCKET_ARN: &str = "arn:aws:s3:::acme-assets";
const GROUP_ARN: &str = "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0";

fn load(name: &str) -> LoadedFixer {
    let runtime = Runtime::new(RuntimeLimits::default(), None).unwrap();
    runtime.load_file(&fixer(name)).unwrap()
}

fn plan(actions: &[&str]) -> Plan {
    Plan {
        summary: "test".into(),
        changes: actions
            .iter()
            .map(|a| Change {
                action: a.to_string(),
                description: String::new(),
                before: None,
                after: None,
                call: None,
            })
            .collect(),
    }
}

#[test]
fn s3_fixer_session_policies() {
    let f = load("s3-block-public-access");
    assert_eq!(
        read_policy(&f, &[BUCKET_ARN]).to_value(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "SalveRead", "Effect": "Allow",
            "Action": ["s3:GetBucketPublicAccessBlock", "s3:GetBucketTagging"],
            "Resource": BUCKET_ARN
        }]})
    );
    assert_eq!(
        write_policy(&f, &plan(&["s3:PutBucketPublicAccessBlock"]), BUCKET_ARN).to_value(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "SalveWrite", "Effect": "Allow",
            "Action": ["s3:PutBucketPublicAccessBlock"],
            "Resource": BUCKET_ARN
        }]})
    );
}

#[test]
fn security_group_fixer_session_policies() {
    let f = load("sg-close-admin-ports");
    // EC2's Describe calls have no resource-level permissions, so IAM cannot narrow the read
    // session; the capability, bound to the one group, does.
    assert_eq!(
        read_policy(&f, &[GROUP_ARN]).to_value(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "SalveReadUnscoped", "Effect": "Allow",
            "Action": ["ec2:DescribeSecurityGroups"],
            "Resource": "*"
        }]})
    );
    assert_eq!(
        write_policy(&f, &plan(&["ec2:RevokeSecurityGroupIngress"]), GROUP_ARN).to_value(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "SalveWrite", "Effect": "Allow",
            "Action": ["ec2:RevokeSecurityGroupIngress"],
            "Resource": GROUP_ARN
        }]})
    );
    let both = plan(&[
        "ec2:RevokeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
    ]);
    assert_eq!(
        write_policy(&f, &both, GROUP_ARN).to_value()["Statement"][0]["Action"],
        json!([
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupIngress"
        ])
    );
}

#[test]
fn a_write_outside_the_resource_type_is_never_granted() {
    let f = load("s3-block-public-access");
    let sneaky = plan(&["ec2:RevokeSecurityGroupIngress", "s3:DeleteBucket"]);
    assert_eq!(
        write_policy(&f, &sneaky, BUCKET_ARN).to_value(),
        json!({"Version": "2012-10-17", "Statement": []})
    );
}

#[test]
fn customer_role_is_the_union_of_the_fixers_scoped_by_kind() {
    let fixers = [load("s3-block-public-access"), load("sg-close-admin-ports")];
    assert_eq!(
        iam::customer_role_policy(&fixers, Some("123456789012"), TagReadMode::PerResource),
        json!({"Version": "2012-10-17", "Statement": [
            {
                "Sid": "SalveUnscoped", "Effect": "Allow",
                "Action": ["ec2:DescribeSecurityGroups"],
                "Resource": "*"
            },
            {
                "Sid": "SalveSecurityGroup", "Effect": "Allow",
                "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                "Resource": "arn:aws:ec2:*:123456789012:security-group/*"
            },
            {
                "Sid": "SalveS3Bucket", "Effect": "Allow",
                "Action": [
                    "s3:GetBucketPublicAccessBlock",
                    "s3:GetBucketTagging",
                    "s3:PutBucketPublicAccessBlock"
                ],
                "Resource": "arn:aws:s3:::*"
            }
        ]})
    );
    let any_account = iam::customer_role_policy(&fixers[1..], None, TagReadMode::PerResource);
    assert_eq!(
        any_account["Statement"][1]["Resource"],
        "arn:aws:ec2:*:*:security-group/*"
    );
}

/// `tag-read = "tagging-api"` adds `tag:GetResources`, which IAM cannot scope, to the role and
/// to a shared read session, and only for a kind whose tag read is a call of its own: a group's
/// describe already carries its tags.
#[test]
fn the_tagging_api_read_is_granted_only_where_it_saves_a_call() {
    let s3 = load("s3-block-public-access");
    let sg = load("sg-close-admin-ports");
    let role = iam::customer_role_policy(
        &[load("s3-block-public-access"), load("sg-close-admin-ports")],
        Some("123456789012"),
        TagReadMode::TaggingApi,
    );
    assert_eq!(
        role["Statement"][0],
        json!({
            "Sid": "SalveUnscoped", "Effect": "Allow",
            "Action": ["ec2:DescribeSecurityGroups", "tag:GetResources"],
            "Resource": "*"
        })
    );
    let sg_only = iam::customer_role_policy(
        &[load("sg-close-admin-ports")],
        None,
        TagReadMode::TaggingApi,
    );
    assert_eq!(
        sg_only["Statement"][0]["Action"],
        json!(["ec2:DescribeSecurityGroups"])
    );

    let buckets = [BUCKET_ARN, "arn:aws:s3:::other"];
    assert_eq!(
        group_read_policy(&s3, &buckets, TagReadMode::TaggingApi).to_value(),
        json!({"Version": "2012-10-17", "Statement": [
            {
                "Sid": "SalveRead", "Effect": "Allow",
                "Action": ["s3:GetBucketPublicAccessBlock", "s3:GetBucketTagging"],
                "Resource": buckets
            },
            {
                "Sid": "SalveReadUnscoped", "Effect": "Allow",
                "Action": ["tag:GetResources"],
                "Resource": "*"
            }
        ]})
    );
    assert_eq!(
        group_read_policy(&s3, &buckets, TagReadMode::PerResource),
        read_policy(&s3, &buckets),
    );
    let groups = [GROUP_ARN, GROUP_ARN];
    assert_eq!(
        group_read_policy(&sg, &groups, TagReadMode::TaggingApi),
        read_policy(&sg, &groups),
    );
}

/// A read group is sized as ARNs join it, by what each adds to the policy's JSON rather than by
/// building the policy again: that must be exactly what it adds, escapes included, for every
/// shape of read policy (the security-group fixer's reads are all unscoped, so nothing).
#[test]
fn a_listed_arn_adds_exactly_its_own_characters_to_a_shared_read_policy() {
    let arns = [
        "arn:aws:s3:::first",
        "arn:aws:s3:::second",
        "arn:aws:s3:::a\"quote",
        "arn:aws:s3:::a\\backslash\ttab\u{1}control",
        "arn:aws:s3:::ünïcödé",
        GROUP_ARN,
    ];
    for (fixer, mode) in [
        ("s3-block-public-access", TagReadMode::PerResource),
        ("s3-block-public-access", TagReadMode::TaggingApi),
        ("sg-close-admin-ports", TagReadMode::PerResource),
    ] {
        let f = load(fixer);
        for n in 2..arns.len() {
            let before = group_read_policy(&f, &arns[..n], mode);
            let after = group_read_policy(&f, &arns[..=n], mode).json().len();
            assert_eq!(
                after - before.json().len(),
                before.chars_added_by(arns[n]),
                "{fixer} {mode:?}: {}",
                arns[n]
            );
        }
    }
}

/// parliament, an IAM policy auditor salve's authors did not write, on every document `salve
/// iam` prints and on the session policies. scripts/test.sh installs it into .venv.
#[test]
fn parliament_finds_nothing_in_any_policy() {
    let parliament = std::env::var("SALVE_PARLIAMENT").expect(
        "SALVE_PARLIAMENT is not set: run scripts/test.sh, which installs parliament into .venv",
    );
    let dir = scratch("iam-parliament");
    let config = dir.join("salve.toml");
    std::fs::write(
        &config,
        "[accounts.\"123456789012\"]\nrole-arn = \"arn:aws:iam::123456789012:role/salve-remediation\"\n",
    )
    .unwrap();
    let salve = |args: &[&str]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tagging = dir.join("tagging.toml");
    std::fs::write(&tagging, "[metadata]\ntag-read = \"tagging-api\"\n").unwrap();
    let fixers = repo_root().join("build/fixers");
    let cache = dir.join("cache");
    let customer = |extra: &[&str]| -> Value {
        let mut args = vec![
            "iam",
            "customer-role",
            "--platform-role-arn",
            "arn:aws:iam::111111111111:role/salve",
            "--fixers",
            fixers.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut documents: Vec<(String, Value, bool)> = vec![
        (
            "customer permissions".into(),
            customer(&["--only", "permissions"]),
            false,
        ),
        (
            "customer permissions, one account".into(),
            customer(&["--only", "permissions", "--account", "123456789012"]),
            false,
        ),
        (
            "customer permissions, tags through the Tagging API".into(),
            customer(&[
                "--only",
                "permissions",
                "--config",
                tagging.to_str().unwrap(),
            ]),
            false,
        ),
        (
            "customer trust".into(),
            customer(&["--only", "trust"]),
            true,
        ),
        (
            "platform role".into(),
            salve(&[
                "iam",
                "platform-role",
                "--queue-arn",
                "arn:aws:sqs:us-east-1:111111111111:salve-findings",
                "--audit-sink",
                "s3://audit/salve/prod/",
            ]),
            false,
        ),
    ];
    let every_action = |f: &LoadedFixer| {
        let actions: Vec<&str> = f.imports.functions.iter().map(|c| c.iam_action).collect();
        plan(&actions)
    };
    for (name, arn) in [
        ("s3-block-public-access", BUCKET_ARN),
        ("sg-close-admin-ports", GROUP_ARN),
        (
            "ebs-encryption-by-default",
            "arn:aws:ec2:us-east-1:123456789012:ebs-encryption-by-default",
        ),
        (
            "rds-private",
            "arn:aws:rds:us-east-1:123456789012:db:orders",
        ),
        (
            "nacl-close-admin-ports",
            "arn:aws:ec2:us-east-1:123456789012:network-acl/acl-0123456789abcdef0",
        ),
        (
            "ebs-encrypt-volume",
            "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0",
        ),
    ] {
        let f = load(name);
        documents.push((
            format!("{name} read session"),
            read_policy(&f, &[arn]).to_value(),
            false,
        ));
        documents.push((
            format!("{name} shared read session, tags through the Tagging API"),
            group_read_policy(&f, &[arn, &format!("{arn}-2")], TagReadMode::TaggingApi).to_value(),
            false,
        ));
        // An IaC-only fixer has no write, so no write session is ever made for it.
        if f.resource_type.iac_only.is_some() {
            continue;
        }
        documents.push((
            format!("{name} write session"),
            write_policy(&f, &every_action(&f), arn).to_value(),
            false,
        ));
    }
    for (name, document, is_trust) in documents {
        let out = std::process::Command::new(&parliament)
            .args(["--json", "--string", &document.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            // A trust policy has a Principal and no Resource, which parliament reads as a
            // malformed identity policy; that one report is expected there and nowhere else.
            .filter(|f: &Value| !(is_trust && f["issue"] == "MALFORMED"))
            .collect();
        assert!(
            findings.is_empty(),
            "parliament on the {name} policy:\n{findings:#?}\n{document:#}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() || is_trust,
            "parliament failed on the {name} policy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn trust_and_platform_policies() {
    let platform = "arn:aws:iam::111111111111:role/salve";
    let trust = iam::customer_trust_policy(platform, "ext-123");
    assert_eq!(trust["Statement"][0]["Principal"], json!({"AWS": platform}));
    assert_eq!(
        trust["Statement"][0]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": "ext-123"}})
    );
    let roles = vec!["arn:aws:iam::123456789012:role/salve-remediation".to_string()];
    let queues = vec!["arn:aws:sqs:us-east-1:111111111111:salve-findings".to_string()];
    let policy = iam::platform_role_policy(&roles, &queues, &[], None);
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        ["AssumeCustomerRoles", "ConsumeFindingQueues", "WriteLogs"]
    );
    assert_eq!(policy["Statement"][0]["Resource"], json!(roles));
    let with_sink = iam::platform_role_policy(&roles, &queues, &[], Some(("audit", "salve/prod/")));
    assert_eq!(
        with_sink["Statement"][2],
        json!({"Sid": "ShipAuditRecords", "Effect": "Allow",
               "Action": ["s3:PutObject", "s3:GetObject"],
               "Resource": "arn:aws:s3:::audit/salve/prod/*"})
    );
    assert_eq!(
        with_sink["Statement"][3],
        json!({"Sid": "ResumeAuditRecords", "Effect": "Allow", "Action": "s3:ListBucket",
               "Resource": "arn:aws:s3:::audit",
               "Condition": {"StringLike": {"s3:prefix": ["salve/prod/*"]}}})
    );
}

#[test]
fn the_cli_prints_a_document_aws_takes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["iam", "customer-role", "--only", "permissions"])
        .arg("--fixers")
        .arg(repo_root().join("build/fixers"))
        .arg("--cache-dir")
        .arg(scratch("iam-cli").join("cache"))
        .args([
            "--platform-role-arn",
            "arn:aws:iam::111111111111:role/salve",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fixers = [
        load("s3-block-public-access"),
        load("sg-close-admin-ports"),
        load("ebs-encryption-by-default"),
        load("rds-private"),
        load("nacl-close-admin-ports"),
        load("ebs-encrypt-volume"),
    ];
    assert_eq!(
        printed,
        iam::customer_role_policy(&fixers, None, TagReadMode::PerResource)
    );
}
