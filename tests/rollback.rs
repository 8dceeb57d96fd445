//! `salve rollback` against moto: a fix is undone with the rollback data its record keeps, and
//! the resource ends equal to its state before the fix (its whole configuration compared). A
//! resource changed since the fix, a fixer that declares no rollback and an unsafe rollback
//! without `--force` are refused, recorded, and leave the resource as it is.

mod common;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use common::{
    acl_entries, aws_pipeline_config, endpoint, fixer, moto_acl, nacl_finding, process_one,
    public_access_block, s3, s3_finding, sdk_config, unique,
};
use salve::audit::Status;
use salve::pipeline::{Pipeline, ProcessOptions, Processed};
use salve::rollback::{self, RollbackRequest};

fn bob(force: bool) -> RollbackRequest {
    RollbackRequest {
        by: "bob@example.com".into(),
        reason: "the fix broke the nightly export".into(),
        force,
    }
}

/// Fixes `payload`'s finding, then rolls it back, returning the fix's record and the rollback.
async fn fix_then_roll_back(
    p: &Pipeline,
    audit: &std::path::Path,
    payload: &str,
    force: bool,
) -> (serde_json::Value, Processed) {
    let fix = process_one(p, payload.as_bytes(), ProcessOptions::default()).await;
    assert_eq!(fix["status"], "remediated", "{fix:#}");
    let id = fix["finding_id"].as_str().unwrap();
    let fixed = rollback::find(audit, id).unwrap();
    assert_eq!(fixed.record.sequence, fix["sequence"].as_u64().unwrap());
    let undone = p.rollback(&fixed, &bob(force)).await.unwrap();
    (fix, undone)
}

/// The record of a rollback that happened: linked to the fix, read back, and applied through a
/// write session limited to the inverse calls' actions.
fn assert_rolled_back(fix: &serde_json::Value, undone: &Processed, actions: &[&str]) {
    let e = &undone.entry;
    assert_eq!(e.status, Some(Status::RolledBack), "{:?}", e.reason);
    let r = e.reversal.as_ref().expect("the reversal is recorded");
    assert_eq!(r.by, "bob@example.com");
    assert_eq!(r.reverses.sequence, fix["sequence"].as_u64().unwrap());
    assert_eq!(r.reverses.record_hash, fix["record_hash"].as_str().unwrap());
    let record: serde_json::Value =
        serde_json::from_str(&undone.sealed.as_ref().unwrap().line).unwrap();
    let read_back = record["evidence"]["read_back"].as_array().unwrap();
    assert!(!read_back.is_empty());
    assert!(read_back.iter().all(|c| c["holds"] == true), "{record:#}");
    let write = record["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["phase"] == "write")
        .expect("a write session");
    let mut granted: Vec<&str> = write["policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    granted.sort();
    granted.dedup();
    assert_eq!(granted, actions, "{write:#}");
    // The finding is open again: the fixer's own check says so.
    assert_eq!(record["evidence"]["compliant_after"], false, "{record:#}");
}

#[tokio::test]
async fn an_s3_fix_is_undone_to_the_configuration_before_it_or_to_none() {
    let client = s3().await;
    let (p, audit) = aws_pipeline_config(
        "rollback-s3",
        &endpoint(),
        &[fixer("s3-block-public-access")],
        "",
    )
    .await;

    // A bucket that had no configuration: the rollback deletes the one the fix put.
    let bare = unique("rollback-bare");
    client.create_bucket().bucket(&bare).send().await.unwrap();
    let (fix, undone) = fix_then_roll_back(&p, &audit, &s3_finding("rb-bare", &bare), false).await;
    assert_rolled_back(&fix, &undone, &["s3:PutBucketPublicAccessBlock"]);
    let plan = undone.entry.plan.as_ref().unwrap();
    assert_eq!(
        plan.changes[0].call.as_ref().unwrap().function,
        "s3-bucket.delete-public-access-block"
    );
    assert_eq!(public_access_block(&client, &bare).await, None);

    // A bucket with a partial configuration: the rollback puts exactly that back.
    let partial = unique("rollback-partial");
    client
        .create_bucket()
        .bucket(&partial)
        .send()
        .await
        .unwrap();
    client
        .put_public_access_block()
        .bucket(&partial)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(false)
                .block_public_policy(true)
                .restrict_public_buckets(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = public_access_block(&client, &partial).await;
    let (fix, undone) =
        fix_then_roll_back(&p, &audit, &s3_finding("rb-partial", &partial), false).await;
    assert_rolled_back(&fix, &undone, &["s3:PutBucketPublicAccessBlock"]);
    assert_eq!(public_access_block(&client, &partial).await, before);

    // Undone once: nothing is left to undo, and the command says why.
    let again = rollback::find(&audit, "rb-partial")
        .unwrap_err()
        .to_string();
    assert!(
        again.contains("already rolled back by bob@example.com"),
        "{again}"
    );
    // And the report sees the finding open again.
    let report = salve::scorecard::report(
        std::slice::from_ref(&audit),
        salve::scorecard::ReportOptions {
            since: None,
            until: None,
            by: None,
            now: salve::timestamp::now(),
        },
    )
    .unwrap();
    assert_eq!(report.backlog.open, 2, "{:#?}", report.backlog);
}

/// Every ingress permission of a group as comparable text, sorted: the group's whole ingress.
async fn ingress(group: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    let out = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    let mut rules: Vec<String> = out.security_groups()[0]
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                format!(
                    "{} {:?}-{:?} {} {:?}",
                    p.ip_protocol().unwrap_or_default(),
                    p.from_port(),
                    p.to_port(),
                    r.cidr_ip().unwrap_or_default(),
                    r.description()
                )
            })
        })
        .collect();
    rules.sort();
    rules
}

#[tokio::test]
async fn a_security_group_fix_is_undone_rule_for_rule() {
    let group = common::open_ssh_group("rollback-sg").await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    // A range with SSH inside it: the fix revokes it and authorizes what is left of it, so the
    // rollback has both to undo. A private rule and HTTPS stay as they are throughout.
    for (from, to, cidr) in [
        (20, 30, "0.0.0.0/0"),
        (443, 443, "0.0.0.0/0"),
        (22, 22, "10.0.0.0/8"),
    ] {
        ec2.authorize_security_group_ingress()
            .group_id(&group)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(from)
                    .to_port(to)
                    .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let before = ingress(&group).await;
    let (p, audit) = aws_pipeline_config(
        "rollback-sg",
        &endpoint(),
        &[fixer("sg-close-admin-ports")],
        "",
    )
    .await;
    let payload = common::sg_finding("rb-sg", &group, "ssh open");
    let (fix, undone) = fix_then_roll_back(&p, &audit, &payload, false).await;
    assert_ne!(fix["plan"]["changes"].as_array().unwrap().len(), 0);
    assert_rolled_back(
        &fix,
        &undone,
        &[
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupIngress",
        ],
    );
    assert_eq!(ingress(&group).await, before);
}

#[tokio::test]
async fn a_network_acl_fix_is_undone_entry_for_entry() {
    let acl = moto_acl(&[
        (100, false, "6", "allow", "0.0.0.0/0", Some((22, 22))),
        (110, false, "6", "allow", "0.0.0.0/0", Some((3380, 3389))),
        (120, false, "6", "allow", "0.0.0.0/0", Some((443, 443))),
        (100, true, "-1", "allow", "0.0.0.0/0", None),
    ])
    .await;
    let before = acl_entries(&acl).await;
    let opt_in = "[eligibility]\nresource-types = [\"AWS::EC2::NetworkAcl\"]\nallowed-actions = [\"ec2:DeleteNetworkAclEntry\", \"ec2:ReplaceNetworkAclEntry\", \"ec2:CreateNetworkAclEntry\"]\n";
    let (p, audit) = aws_pipeline_config(
        "rollback-nacl",
        &endpoint(),
        &[fixer("nacl-close-admin-ports")],
        opt_in,
    )
    .await;
    let (fix, undone) = fix_then_roll_back(&p, &audit, &nacl_finding("rb-nacl", &acl), false).await;
    // Entry 100 was deleted (so it is created again), entry 110 narrowed (so it is replaced back).
    let fixed: Vec<&str> = fix["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        fixed,
        [
            "network-acl.delete-ingress-entry",
            "network-acl.replace-ingress-entry"
        ],
        "{fix:#}"
    );
    assert_rolled_back(
        &fix,
        &undone,
        &["ec2:CreateNetworkAclEntry", "ec2:ReplaceNetworkAclEntry"],
    );
    assert_eq!(acl_entries(&acl).await, before);
}

#[tokio::test]
async fn a_bucket_changed_since_the_fix_is_not_rolled_back() {
    let client = s3().await;
    let bucket = unique("rollback-changed");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, audit) = aws_pipeline_config(
        "rollback-changed",
        &endpoint(),
        &[fixer("s3-block-public-access")],
        "",
    )
    .await;
    let fix = process_one(
        &p,
        s3_finding("rb-changed", &bucket).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(fix["status"], "remediated", "{fix:#}");
    // Someone turns one setting off by hand after the fix.
    client
        .put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(false)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fixed = rollback::find(&audit, "rb-changed").unwrap();
    let refused = p.rollback(&fixed, &bob(false)).await.unwrap();
    let e = &refused.entry;
    assert_eq!(e.status, Some(Status::Rejected), "{:?}", e.reason);
    let reason = e.reason.as_deref().unwrap();
    assert!(reason.contains("changed since the fix"), "{reason}");
    assert!(reason.contains("nothing was changed"), "{reason}");
    assert!(e.reversal.is_some());
    assert!(e
        .calls
        .iter()
        .all(|c| c.access != salve::kinds::Access::Write));
    assert_eq!(
        public_access_block(&client, &bucket).await,
        Some([true, true, false, true])
    );
    // The refusal is recorded, and the fix is still the one to undo.
    let records = common::read_records(&audit);
    assert_eq!(records.last().unwrap()["status"], "rejected");
    assert_eq!(
        rollback::find(&audit, "rb-changed").unwrap().record,
        fixed.record
    );
}

/// EBS encryption by default can be turned off again, but only when a person insists.
#[tokio::test]
async fn an_unsafe_rollback_needs_force() {
    let region = "sa-east-1";
    let opt_in = "[eligibility]\nresource-types = [\"AWS::EC2::EbsEncryptionByDefault\"]\nallowed-actions = [\"ec2:EnableEbsEncryptionByDefault\", \"ec2:DisableEbsEncryptionByDefault\"]\n";
    let (p, audit) = aws_pipeline_config(
        "rollback-ebs",
        &endpoint(),
        &[fixer("ebs-encryption-by-default")],
        opt_in,
    )
    .await;
    let fix = process_one(
        &p,
        common::ebs_finding("rb-ebs", region).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(fix["status"], "remediated", "{fix:#}");
    let fixed = rollback::find(&audit, "rb-ebs").unwrap();
    let refused = p.rollback(&fixed, &bob(false)).await.unwrap();
    assert_eq!(refused.entry.status, Some(Status::Rejected));
    let reason = refused.entry.reason.as_deref().unwrap();
    assert!(reason.contains("--force"), "{reason}");
    assert!(common::ebs_encryption(region).await);

    let undone = p.rollback(&fixed, &bob(true)).await.unwrap();
    assert_rolled_back(&fix, &undone, &["ec2:DisableEbsEncryptionByDefault"]);
    assert!(undone.entry.reversal.as_ref().unwrap().force);
    assert!(!common::ebs_encryption(region).await);
}

/// A fixer without a rollback (rds-private declares none) is refused, and the instance stays
/// private.
#[tokio::test]
async fn a_fixer_without_a_rollback_is_refused() {
    let db = unique("rollback-db");
    common::public_db(&db).await;
    let opt_in = "[eligibility]\nresource-types = [\"AWS::RDS::DBInstance\"]\nallowed-actions = [\"rds:ModifyDBInstance\"]\n";
    let (p, audit) =
        aws_pipeline_config("rollback-rds", &endpoint(), &[fixer("rds-private")], opt_in).await;
    let fix = process_one(
        &p,
        common::rds_finding("rb-rds", &db).as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(fix["status"], "remediated", "{fix:#}");
    let fixed = rollback::find(&audit, "rb-rds").unwrap();
    let refused = p.rollback(&fixed, &bob(true)).await.unwrap();
    assert_eq!(refused.entry.status, Some(Status::Rejected));
    let reason = refused.entry.reason.as_deref().unwrap();
    assert!(reason.contains("declares no rollback"), "{reason}");
    assert!(!common::db_is_public(&db).await);
}

/// The command line refuses what cannot be rolled back, with the reason, before any AWS call.
#[tokio::test]
async fn the_command_line_refuses_clearly() {
    let client = s3().await;
    let bucket = unique("rollback-cli");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, audit) = aws_pipeline_config(
        "rollback-cli",
        &endpoint(),
        &[fixer("s3-block-public-access")],
        "",
    )
    .await;
    let payload = s3_finding("rb-cli", &bucket).replace(r#""owner":"platform-team","#, "");
    let review = process_one(&p, payload.as_bytes(), ProcessOptions::default()).await;
    assert_eq!(review["status"], "review", "{review:#}");
    drop(p);
    let salve = env!("CARGO_BIN_EXE_salve");
    let run = |args: &[&str]| {
        std::process::Command::new(salve)
            .arg("rollback")
            .args(args)
            .arg("--audit-log")
            .arg(&audit)
            .output()
            .unwrap()
    };
    let out = run(&["no-such-finding", "--by", "bob", "--reason", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no record in"), "{err}");
    let out = run(&["rb-cli", "--by", "bob", "--reason", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("latest record is review, not remediated"),
        "{err}"
    );
    let out = run(&["rb-cli", "--by", " ", "--reason", "test"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--by must name"));
}
