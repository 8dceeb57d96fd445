//! Tracing a finding to its Terraform code (`[[iac.terraform]]`): the state maps the resource to
//! an address, local module calls are followed, and hcl-edit finds the `resource` block and the
//! blocks that configure it. The fixture repository (`tests/terraform`) has a local
//! module, a registry module, inline ingress, separate rule resources, a `for_each` resource and
//! a variable-driven value; its state is read from a file and from moto's S3.

mod common;

use std::path::PathBuf;

use salve::config::SalveConfig;
use salve::finding::Finding;
use salve::iac::{self, IacConfig, Traced};
use serde_json::json;

fn repository() -> PathBuf {
    common::repo_root().join("tests/terraform")
}

fn config(state: &str) -> IacConfig {
    let text = format!(
        r#"
[[iac.terraform]]
name = "prod"
accounts = ["123456789012"]
regions = ["us-east-1"]
repository = "{}"
base-branch = "main"
root-module = "."
state = "{state}"
"#,
        repository().display()
    );
    SalveConfig::parse(&text, "test.toml", &repository())
        .unwrap()
        .iac
}

fn finding(kind: &str, arn: &str) -> Finding {
    Finding::from_recorded(json!({
        "id": "f-1", "source": "test", "control_id": "X.1", "title": "t", "severity": "HIGH",
        "resource": {"arn": arn, "type": kind, "account_id": "123456789012", "region": "us-east-1"},
    }))
    .unwrap()
}

async fn trace(config: &IacConfig, finding: &Finding) -> Result<Traced, String> {
    let s3 = salve::aws::s3_client(&common::sdk_config().await, true);
    iac::trace(config, finding, Some(&s3), |w| {
        Ok(PathBuf::from(&w.repository))
    })
    .await
}

const SG: &str = "AWS::EC2::SecurityGroup";

fn sg(id: &str) -> Finding {
    finding(
        SG,
        &format!("arn:aws:ec2:us-east-1:123456789012:security-group/{id}"),
    )
}

/// The located resource: (state address, block address, file, first line, last line).
fn located(t: &Traced) -> (&str, &str, String, usize, usize) {
    match t {
        Traced::Located {
            address, location, ..
        } => (
            address.as_str(),
            location.resource.address.as_str(),
            location.resource.file.display().to_string(),
            location.resource.start_line,
            location.resource.end_line,
        ),
        other => panic!("not located: {other:?}"),
    }
}

#[tokio::test]
async fn each_declaration_is_located_or_refused_with_the_reason() {
    let c = config("terraform.tfstate");

    // A bucket in a local module, with the public access block that configures it.
    let t = trace(
        &c,
        &finding("AWS::S3::Bucket", "arn:aws:s3:::tf-logs-bucket"),
    )
    .await
    .unwrap();
    assert_eq!(
        located(&t),
        (
            "module.logs.aws_s3_bucket.this",
            "module.logs.aws_s3_bucket.this",
            "modules/bucket/main.tf".into(),
            5,
            7
        )
    );
    let Traced::Located { location, .. } = &t else {
        unreachable!()
    };
    assert!(location
        .resource
        .text
        .starts_with("resource \"aws_s3_bucket\" \"this\" {"));
    let pab = &location.configured_by;
    assert_eq!(pab.len(), 1, "{pab:#?}");
    assert_eq!(
        pab[0].address,
        "module.logs.aws_s3_bucket_public_access_block.this"
    );
    assert_eq!((pab[0].start_line, pab[0].end_line), (10, 17));
    assert!(pab[0].text.contains("block_public_acls       = false"));

    // Inline ingress: the group's own block.
    let t = trace(&c, &sg("sg-0a0d1a2b3c4d5e6f7")).await.unwrap();
    assert_eq!(
        located(&t),
        (
            "aws_security_group.admin",
            "aws_security_group.admin",
            "main.tf".into(),
            22,
            34
        )
    );

    // Rules as separate resources: both kinds are found, and the inline-free group block.
    let t = trace(&c, &sg("sg-0a0b1a2b3c4d5e6f7")).await.unwrap();
    let Traced::Located { location, .. } = &t else {
        panic!("{t:?}")
    };
    let rules: Vec<(&str, usize)> = location
        .configured_by
        .iter()
        .map(|l| (l.address.as_str(), l.start_line))
        .collect();
    assert_eq!(
        rules,
        [
            ("aws_security_group_rule.app_ssh", 42),
            ("aws_vpc_security_group_ingress_rule.app_rdp", 51)
        ]
    );

    // One instance of a for_each block: the state's address keeps the key, the block is shared.
    let t = trace(&c, &sg("sg-0ee11a2b3c4d5e6f7")).await.unwrap();
    assert_eq!(
        located(&t),
        (
            r#"aws_security_group.web["green"]"#,
            "aws_security_group.web",
            "main.tf".into(),
            60,
            71
        )
    );

    // The database whose value comes from a variable.
    let t = trace(
        &c,
        &finding(
            "AWS::RDS::DBInstance",
            "arn:aws:rds:us-east-1:123456789012:db:tf-main-db",
        ),
    )
    .await
    .unwrap();
    assert_eq!(located(&t).0, "aws_db_instance.main");

    // A resource of a registry module: refused, never guessed.
    let t = trace(
        &c,
        &finding(
            "AWS::EC2::NetworkAcl",
            "arn:aws:ec2:us-east-1:123456789012:network-acl/acl-0a1b2c3d4e5f60718",
        ),
    )
    .await
    .unwrap();
    match t {
        Traced::Refused {
            address, reason, ..
        } => {
            assert_eq!(address, "module.vpc.aws_network_acl.this[0]");
            assert!(
                reason.starts_with(
                    "resource is declared in external module terraform-aws-modules/vpc/aws"
                ),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Not in the state (the data source does not count), and not in a covered account.
    let t = trace(&c, &sg("sg-0a0d000000000000")).await.unwrap();
    assert!(
        matches!(&t, Traced::Unmanaged { reason } if reason.contains("not in the state")),
        "{t:?}"
    );
    let mut other = sg("sg-0a0d1a2b3c4d5e6f7");
    other.resource.region = "eu-west-1".into();
    let t = trace(&c, &other).await.unwrap();
    assert!(
        matches!(&t, Traced::Unmanaged { reason } if reason.contains("no [[iac.terraform]] workspace covers")),
        "{t:?}"
    );
}

#[tokio::test]
async fn the_state_is_read_from_s3_with_salves_own_credentials() {
    let s3 = common::s3().await;
    let bucket = common::unique("tf-state");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let state = std::fs::read(repository().join("terraform.tfstate")).unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("prod/terraform.tfstate")
        .body(state.into())
        .send()
        .await
        .unwrap();
    let c = config(&format!("s3://{bucket}/prod/terraform.tfstate"));
    let t = trace(&c, &sg("sg-0a0d1a2b3c4d5e6f7")).await.unwrap();
    assert_eq!(located(&t).0, "aws_security_group.admin");

    // A missing object, a corrupt state and a newer format each say what is wrong.
    let missing = config(&format!("s3://{bucket}/prod/none.tfstate"));
    let e = trace(&missing, &sg("sg-0a0d1a2b3c4d5e6f7"))
        .await
        .unwrap_err();
    assert!(e.contains("NoSuchKey"), "{e}");
    for (key, body, says) in [
        (
            "corrupt",
            "{\"version\": 4, \"resources\": {",
            "is not Terraform state JSON",
        ),
        (
            "newer",
            "{\"version\": 5}",
            "newer than the version 4 salve reads",
        ),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        let c = config(&format!("s3://{bucket}/{key}"));
        let e = trace(&c, &sg("sg-0a0d1a2b3c4d5e6f7")).await.unwrap_err();
        assert!(e.contains(says), "{e}");
        assert!(e.contains("workspace \"prod\""), "{e}");
    }
}

#[test]
fn bad_workspaces_are_refused_with_the_key() {
    let parse = |body: &str| {
        SalveConfig::parse(
            &format!("[[iac.terraform]]\n{body}"),
            "salve.toml",
            std::path::Path::new("."),
        )
        .unwrap_err()
        .to_string()
    };
    let base = "name = \"prod\"\naccounts = [\"123456789012\"]\nregions = [\"us-east-1\"]\nrepository = \"repo\"\n";
    let e = parse(&format!("{base}state = \"s3://bucket-only\"\n"));
    assert!(e.contains("state") && e.contains("s3://bucket/key"), "{e}");
    let e = parse(&format!("{base}state = \"x\"\ncolour = \"red\"\n"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = parse(base);
    assert!(e.contains("missing field `state`"), "{e}");
    let e = parse(&format!(
        "{}state = \"x\"\n",
        base.replace("123456789012", "12345")
    ));
    assert!(e.contains("not a 12-digit account ID"), "{e}");
    let e = parse(&format!(
        "{base}state = \"x\"\nroot-module = \"../elsewhere\"\n"
    ));
    assert!(e.contains("root-module"), "{e}");
}

/// `salve explain` shows where the resource is declared: address, file and lines.
#[test]
fn explain_shows_the_located_code() {
    let dir = common::scratch("iac-explain");
    let config = dir.join("salve.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[accounts."123456789012"]
name = "prod"

[[iac.terraform]]
name = "prod"
accounts = ["123456789012"]
regions = ["us-east-1"]
repository = "{repo}"
state = "{repo}/terraform.tfstate"
"#,
            repo = repository().display()
        ),
    )
    .unwrap();
    let payload = dir.join("finding.json");
    std::fs::write(
        &payload,
        common::sg_finding("iac-1", "sg-0a0d1a2b3c4d5e6f7", "ssh open"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .arg("explain")
        .arg(&payload)
        .arg("--config")
        .arg(&config)
        .arg("--fixers")
        .arg(dir.join("no-fixers"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("terraform  aws_security_group.admin (workspace prod)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("aws_security_group.admin at main.tf:22-34"),
        "{text}"
    );
}
