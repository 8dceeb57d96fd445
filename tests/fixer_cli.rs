//! The fixer authoring commands, run as the binary: `salve fixer inspect`.

mod common;

use serde_json::{json, Value};

use common::*;

fn inspect(path: &std::path::Path) -> (Option<i32>, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["fixer", "inspect", "--output", "json"])
        .arg(path)
        .output()
        .expect("running salve fixer inspect");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn inspect_shows_what_a_reviewer_needs() {
    let path = fixer("sg-close-admin-ports");
    let (code, r) = inspect(&path);
    assert_eq!(code, Some(0));
    assert_eq!(r["name"], "sg-close-admin-ports");
    assert_eq!(r["resource_type"], "AWS::EC2::SecurityGroup");
    assert_eq!(r["world"], "security-group-fixer");
    assert_eq!(
        r["controls"],
        json!(["EC2.13", "EC2.14", "EC2.53", "EC2.54"])
    );
    assert_eq!(r["contract"], "0.2.0");
    assert_eq!(
        r["capability_interfaces"],
        json!(["salve:security-group/capability@0.2.0"])
    );
    let actions: Vec<(&str, &str)> = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["iam_action"].as_str().unwrap(),
                a["access"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("ec2:DescribeSecurityGroups", "read"),
            ("ec2:RevokeSecurityGroupIngress", "write"),
            ("ec2:AuthorizeSecurityGroupIngress", "write"),
        ]
    );
    assert_eq!(
        r["sha256"],
        salve::audit::sha256_hex(&std::fs::read(&path).unwrap())
    );
    assert_eq!(r["least_privilege_check"]["passed"], true);
}

#[test]
fn inspect_reports_a_fixer_that_fails_the_link_check() {
    let (code, r) = inspect(&fixture("forbidden-import"));
    assert_eq!(code, Some(2));
    assert_eq!(r["least_privilege_check"]["passed"], false);
    assert_eq!(r["contract"], "0.1.0");
    assert_eq!(
        r["least_privilege_check"]["detail"],
        "fixer forbidden-import refused at link time: fixer imports salve:fixer/security-group@0.1.0, which is outside the s3-bucket-fixer world of AWS::S3::Bucket; a fixer may only use the capability interface of its own resource type"
    );
    // Its own interface and the forbidden one, both shown.
    assert_eq!(
        r["capability_interfaces"],
        json!([
            "salve:fixer/s3-bucket@0.1.0",
            "salve:fixer/security-group@0.1.0"
        ])
    );
}
