//! Tracing a finding to its Terraform code (`[[iac.terraform]]`): the state maps the resource to
//! an address, local module calls are followed, and hcl-edit finds the `resource` block and the
//! blocks that configure it. The fixture repository (`tests/terraform`) has a local
//! module, a registry module, inline ingress, separate rule resources, a `for_each` resource and
//! a variable-driven value; its state is read from a file and from moto's S3.

mod common;

use std::path::{Path, PathBuf};

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
    let states = iac::StateReader::new(Some(s3));
    iac::trace(config, finding, &states, |w| {
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

/// `salve explain` shows where the resource is declared (address, file, lines) and the edit
/// the fixer proposes, as a diff.
#[tokio::test]
async fn explain_shows_the_located_code_and_the_proposed_edit() {
    let client = common::s3().await;
    let _ = client.create_bucket().bucket("tf-logs-bucket").send().await;
    let dir = common::scratch("iac-explain");
    let fixers = dir.join("fixers");
    std::fs::create_dir_all(&fixers).unwrap();
    std::fs::copy(
        common::fixer("s3-block-public-access"),
        fixers.join("s3-block-public-access.wasm"),
    )
    .unwrap();
    let config = dir.join("salve.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.\"123456789012\"]\nname = \"prod\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve-remediation\"\n\n{}",
            workspace_toml().replace("tests/terraform", &repository().display().to_string())
        ),
    )
    .unwrap();
    let payload = dir.join("finding.json");
    std::fs::write(&payload, common::s3_finding("iac-1", "tf-logs-bucket")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .arg("explain")
        .arg(&payload)
        .arg("--config")
        .arg(&config)
        .arg("--fixers")
        .arg(&fixers)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--endpoint-url")
        .arg(common::endpoint())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("terraform  module.logs.aws_s3_bucket.this (workspace prod)"),
        "{text}\n{err}"
    );
    assert!(
        text.contains("module.logs.aws_s3_bucket.this at modules/bucket/main.tf:5-7"),
        "{text}"
    );
    assert!(
        text.contains(
            "module.logs.aws_s3_bucket_public_access_block.this at modules/bucket/main.tf:10-17"
        ),
        "{text}"
    );
    assert!(text.contains("  proposed edit:"), "{text}");
    assert!(
        text.contains("    +  block_public_acls       = true"),
        "{text}"
    );
}

/// The workspace as `[[iac.terraform]]` TOML, with the fixture's state file.
fn workspace_toml() -> String {
    "[[iac.terraform]]\nname = \"prod\"\naccounts = [\"123456789012\"]\nregions = [\"us-east-1\"]\nrepository = \"tests/terraform\"\nstate = \"tests/terraform/terraform.tfstate\"\n".into()
}

/// A dry run of an S3.8 finding on `bucket` (created in moto, public) with the bucket fixer.
async fn dry_run(name: &str, bucket: &str) -> serde_json::Value {
    let client = common::s3().await;
    let _ = client.create_bucket().bucket(bucket).send().await;
    let finding = common::s3_finding(name, bucket);
    planned(name, "s3-block-public-access", &workspace_toml(), &finding).await
}

/// A dry run of `payload` with `fixer` and the `toml` configuration: its record, planned.
async fn planned(name: &str, fixer: &str, toml: &str, payload: &str) -> serde_json::Value {
    let (p, _) =
        common::aws_pipeline_config(name, &common::endpoint(), &[common::fixer(fixer)], toml).await;
    let options = salve::pipeline::ProcessOptions {
        effect: salve::pipeline::Effect::PlanOnly,
        ..Default::default()
    };
    let r = common::process_one(&p, payload.as_bytes(), options).await;
    assert_eq!(r["status"], "planned", "{r:#}");
    r
}

#[tokio::test]
async fn the_fixer_completes_an_existing_public_access_block() {
    let r = dry_run("iac-complete", "tf-logs-bucket").await;
    let iac = &r["iac"];
    assert_eq!(iac["outcome"], "located", "{iac:#}");
    let change = &iac["change"];
    assert_eq!(change["outcome"], "proposed", "{iac:#}");
    assert_eq!(change["files"][0]["file"], "modules/bucket/main.tf");
    assert_eq!(
        change["files"][0]["diff"],
        "--- a/modules/bucket/main.tf\n+++ b/modules/bucket/main.tf\n@@ -13,4 +13,4 @@\n\
         -  block_public_acls       = false\n-  ignore_public_acls      = false\n\
         -  block_public_policy     = false\n-  restrict_public_buckets = false\n\
         +  block_public_acls       = true\n+  ignore_public_acls      = true\n\
         +  block_public_policy     = true\n+  restrict_public_buckets = true\n"
    );
}

#[tokio::test]
async fn the_fixer_adds_a_public_access_block_after_a_bucket_without_one() {
    let r = dry_run("iac-insert", "tf-assets-bucket").await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    assert!(
        diff.contains(
            "+resource \"aws_s3_bucket_public_access_block\" \"assets\" {\n+  bucket = aws_s3_bucket.assets.id\n"
        ),
        "{diff}"
    );
    assert!(
        diff.contains("+  restrict_public_buckets = true\n+}\n"),
        "{diff}"
    );
}

#[tokio::test]
async fn an_instance_of_a_for_each_block_is_not_edited_for_all() {
    let r = dry_run("iac-each", "tf-prod-bucket").await;
    let iac = &r["iac"];
    assert_eq!(iac["address"], "aws_s3_bucket.per_env[\"prod\"]", "{iac:#}");
    assert_eq!(iac["change"]["outcome"], "refused", "{iac:#}");
    assert!(
        iac["change"]["reason"]
            .as_str()
            .unwrap()
            .contains("whose block declares every instance"),
        "{iac:#}"
    );
}

/// The host's checks of a fixer's edits, whatever the fixer: only located blocks, the result
/// parses, and new text keeps terraform fmt's layout.
#[test]
fn edits_outside_the_located_blocks_or_badly_formed_are_refused() {
    use salve::capabilities::{BlockText, Edit};
    use salve::iac::code::locate;
    use salve::iac::state::Address;
    let repo = repository();
    let address = Address {
        module: vec![],
        resource_type: "aws_s3_bucket".into(),
        name: "assets".into(),
        index: None,
    };
    let location = locate(&repo, &repo, &address, &[]).unwrap();
    let edit = |address: &str, text: &str| {
        Edit::InsertAfter(BlockText {
            address: address.into(),
            text: text.into(),
        })
    };
    let refused = |edits: Vec<Edit>| salve::iac::edit::apply(&repo, &location, &edits).unwrap_err();
    let e = refused(vec![edit("aws_security_group.admin", "# x")]);
    assert!(e.contains("not a located block"), "{e}");
    let e = refused(vec![edit("aws_s3_bucket.assets", "resource \"x\" \"y\" {")]);
    assert!(e.contains("would not parse"), "{e}");
    let e = refused(vec![edit(
        "aws_s3_bucket.assets",
        "resource \"x\" \"y\" {\n  a = 1\n  bbb = 2\n}",
    )]);
    assert!(
        e.contains("not formatted as terraform fmt formats it"),
        "{e}"
    );
    // The files on disk are never touched.
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    assert!(!main.contains("resource \"x\""));
}

/// The fixture repository in a scratch directory, its state naming `groups` (state ID → moto
/// ID) instead: moto chooses security group IDs.
fn repository_with(name: &str, groups: &[(&str, &str)]) -> PathBuf {
    let dir = common::scratch(&format!("{name}-repository"));
    std::fs::create_dir_all(dir.join("modules/bucket")).unwrap();
    for f in [
        "main.tf",
        "variables.tf",
        "terraform.tfvars",
        "modules/bucket/main.tf",
    ] {
        std::fs::copy(repository().join(f), dir.join(f)).unwrap();
    }
    let mut state = std::fs::read_to_string(repository().join("terraform.tfstate")).unwrap();
    for (from, to) in groups {
        state = state.replace(from, to);
    }
    std::fs::write(dir.join("terraform.tfstate"), state).unwrap();
    dir
}

/// A dry run of an EC2.13 finding on moto's `group` with the security group fixer, against
/// the repository at `repo`.
async fn sg_dry_run(name: &str, group: &str, repo: &Path) -> serde_json::Value {
    let toml = workspace_toml().replace("tests/terraform", &repo.display().to_string());
    let finding = common::sg_finding(name, group, "ssh open");
    planned(name, "sg-close-admin-ports", &toml, &finding).await
}

#[tokio::test]
async fn the_security_group_fixer_removes_world_open_admin_rules_where_they_are_declared() {
    let admin = common::open_ssh_group("iac-sg-admin").await;
    let app = common::open_ssh_group("iac-sg-app").await;
    let repo = repository_with(
        "iac-sg",
        &[
            ("sg-0a0d1a2b3c4d5e6f7", &admin),
            ("sg-0a0b1a2b3c4d5e6f7", &app),
        ],
    );

    // Inline ingress: the block goes from the group's own block, its blank line with it.
    let r = sg_dry_run("iac-sg-inline", &admin, &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    assert_eq!(
        diff,
        "--- a/main.tf\n+++ b/main.tf\n@@ -26,8 +26,0 @@\n-\n-  ingress {\n\
         -    description = \"SSH from anywhere\" # the finding\n-    from_port   = 22\n\
         -    to_port     = 22\n-    protocol    = \"tcp\"\n-    cidr_blocks = [\"0.0.0.0/0\"]\n-  }\n"
    );

    // Separate rule resources: each one that opens an admin port is removed.
    let r = sg_dry_run("iac-sg-rules", &app, &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-resource \"aws_security_group_rule\" \"app_ssh\" {\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-resource \"aws_vpc_security_group_ingress_rule\" \"app_rdp\" {\n"),
        "{diff}"
    );
    assert!(
        diff.lines()
            .all(|l| !l.starts_with('+') || l.starts_with("+++")),
        "only removals: {diff}"
    );
}

/// A copy of the fixture repository with a network ACL (inline ingress rules and a rule
/// resource) declared in the root module, its state naming moto's `acl`; `rdp` is the rule
/// resource's port range.
fn repository_with_acl(name: &str, acl: &str, rdp: (i32, i32)) -> PathBuf {
    let repo = repository_with(name, &[]);
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    let declared = format!(
        r#"
# A network ACL with inline ingress rules, and a rule declared as its own resource.
resource "aws_network_acl" "edge" {{
  vpc_id = module.vpc.vpc_id

  ingress {{
    protocol   = "tcp"
    rule_no    = 100
    action     = "allow"
    cidr_block = "0.0.0.0/0"
    from_port  = 22
    to_port    = 22
  }}

  ingress {{
    protocol   = "tcp"
    rule_no    = 120
    action     = "allow"
    cidr_block = "0.0.0.0/0"
    from_port  = 443
    to_port    = 443
  }}
}}

resource "aws_network_acl_rule" "edge_rdp" {{
  network_acl_id = aws_network_acl.edge.id
  rule_number    = 110
  egress         = false
  protocol       = "tcp"
  rule_action    = "allow"
  cidr_block     = "0.0.0.0/0"
  from_port      = {}
  to_port        = {}
}}
"#,
        rdp.0, rdp.1
    );
    std::fs::write(repo.join("main.tf"), main + &declared).unwrap();
    let path = repo.join("terraform.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let provider = "provider[\"registry.terraform.io/hashicorp/aws\"]";
    state["resources"].as_array_mut().unwrap().extend([
        json!({"mode": "managed", "type": "aws_network_acl", "name": "edge", "provider": provider,
               "instances": [{"schema_version": 0, "attributes": {"id": acl,
               "arn": format!("arn:aws:ec2:us-east-1:123456789012:network-acl/{acl}")}}]}),
        json!({"mode": "managed", "type": "aws_network_acl_rule", "name": "edge_rdp", "provider": provider,
               "instances": [{"schema_version": 0, "attributes": {"id": "nacl-110", "network_acl_id": acl}}]}),
    ]);
    std::fs::write(&path, state.to_string()).unwrap();
    repo
}

async fn nacl_dry_run(name: &str, acl: &str, repo: &Path) -> serde_json::Value {
    let toml = workspace_toml().replace("tests/terraform", &repo.display().to_string())
        + "[eligibility]\nresource-types = [\"AWS::EC2::NetworkAcl\"]\nallowed-actions = [\"ec2:DeleteNetworkAclEntry\", \"ec2:ReplaceNetworkAclEntry\"]\n";
    planned(
        name,
        "nacl-close-admin-ports",
        &toml,
        &common::nacl_finding(name, acl),
    )
    .await
}

#[tokio::test]
async fn the_network_acl_fixer_removes_world_open_admin_rules_where_they_are_declared() {
    let acl = common::moto_acl(&[
        (100, false, "6", "allow", "0.0.0.0/0", Some((22, 22))),
        (110, false, "6", "allow", "0.0.0.0/0", Some((3389, 3389))),
        (120, false, "6", "allow", "0.0.0.0/0", Some((443, 443))),
    ])
    .await;
    let repo = repository_with_acl("iac-nacl", &acl, (3389, 3389));
    let r = nacl_dry_run("iac-nacl", &acl, &repo).await;
    let iac = &r["iac"];
    assert_eq!(iac["address"], "aws_network_acl.edge", "{iac:#}");
    let change = &iac["change"];
    assert_eq!(change["outcome"], "proposed", "{iac:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    // The SSH block and the RDP rule go; the HTTPS block stays.
    assert!(
        diff.contains("-    rule_no    = 100\n") && diff.contains("-    from_port  = 22\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-resource \"aws_network_acl_rule\" \"edge_rdp\" {\n"),
        "{diff}"
    );
    assert!(!diff.contains("rule_no    = 120"), "{diff}");
    assert!(
        diff.lines()
            .all(|l| !l.starts_with('+') || l.starts_with("+++")),
        "only removals: {diff}"
    );

    // A rule whose range holds more than admin ports is left to a person, with the reason.
    let repo = repository_with_acl("iac-nacl-range", &acl, (3380, 3390));
    let r = nacl_dry_run("iac-nacl-range", &acl, &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "refused", "{r:#}");
    assert_eq!(
        change["reason"],
        "terraform: unexpected state: aws_network_acl_rule.edge_rdp allows ports 3380-3390 from the internet, administration ports among them; narrowing a range in code is left to a person"
    );
}

/// EBS encryption by default is a per-region setting the provider names by its region: the
/// fixer turns `enabled = false` on where it is declared.
#[tokio::test]
async fn the_ebs_fixer_turns_the_regions_setting_on_where_it_is_declared() {
    let region = "eu-west-3";
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&common::sdk_config().await)
            .region(aws_sdk_ec2::config::Region::new(region))
            .build(),
    );
    ec2.disable_ebs_encryption_by_default()
        .send()
        .await
        .unwrap();
    let repo = repository_with("iac-ebs", &[]);
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    let declared = "\n# The region's EBS default encryption, declared off.\nresource \"aws_ebs_encryption_by_default\" \"this\" {\n  enabled = false\n}\n";
    std::fs::write(repo.join("main.tf"), main + declared).unwrap();
    let path = repo.join("terraform.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["resources"].as_array_mut().unwrap().push(json!({
        "mode": "managed", "type": "aws_ebs_encryption_by_default", "name": "this",
        "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
        "instances": [{"schema_version": 0, "attributes": {"id": region, "enabled": false}}]
    }));
    std::fs::write(&path, state.to_string()).unwrap();
    let toml = workspace_toml()
        .replace("tests/terraform", &repo.display().to_string())
        .replace("us-east-1", region)
        + "[eligibility]\nresource-types = [\"AWS::EC2::EbsEncryptionByDefault\"]\nallowed-actions = [\"ec2:EnableEbsEncryptionByDefault\"]\n";
    let r = planned(
        "iac-ebs",
        "ebs-encryption-by-default",
        &toml,
        &common::ebs_finding("iac-ebs", region),
    )
    .await;
    let iac = &r["iac"];
    assert_eq!(
        iac["address"], "aws_ebs_encryption_by_default.this",
        "{iac:#}"
    );
    let change = &iac["change"];
    assert_eq!(change["outcome"], "proposed", "{iac:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    assert!(
        diff.ends_with("-  enabled = false\n+  enabled = true\n"),
        "{diff}"
    );
}

/// Rules a `dynamic "ingress"` block builds come from data the fixer does not edit: the edit is
/// refused with the block's expression, never a partial fix that leaves the finding open.
#[tokio::test]
async fn rules_from_a_dynamic_block_are_refused_with_their_expression() {
    let admin = common::open_ssh_group("iac-sg-dynamic").await;
    let repo = repository_with("iac-sg-dynamic", &[("sg-0a0d1a2b3c4d5e6f7", &admin)]);
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    let inline = "  ingress {\n    description = \"SSH from anywhere\" # the finding\n    from_port   = 22\n    to_port     = 22\n    protocol    = \"tcp\"\n    cidr_blocks = [\"0.0.0.0/0\"]\n  }\n";
    assert!(main.contains(inline));
    let dynamic = "  dynamic \"ingress\" {\n    for_each = local.admin_rules\n    content {\n      from_port   = ingress.value.port\n      to_port     = ingress.value.port\n      protocol    = \"tcp\"\n      cidr_blocks = ingress.value.cidrs\n    }\n  }\n";
    std::fs::write(repo.join("main.tf"), main.replace(inline, dynamic)).unwrap();
    let r = sg_dry_run("iac-sg-dynamic", &admin, &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "refused", "{r:#}");
    assert_eq!(
        change["reason"].as_str().unwrap(),
        "terraform: unexpected state: aws_security_group.admin builds ingress rules with a dynamic \"ingress\" block from local.admin_rules; remove the entries that open administration ports to the internet from that data by hand",
        "{r:#}"
    );
}

/// A dry run of an RDS.2 finding on moto's `tf-main-db` (the fixture state's instance).
async fn rds_dry_run(name: &str, repo: &Path) -> serde_json::Value {
    common::public_db_once("tf-main-db").await;
    let toml = workspace_toml().replace("tests/terraform", &repo.display().to_string())
        + "[eligibility]\nresource-types = [\"AWS::RDS::DBInstance\"]\nallowed-actions = [\"rds:ModifyDBInstance\"]\n";
    let finding = common::rds_finding(name, "tf-main-db");
    planned(name, "rds-private", &toml, &finding).await
}

#[tokio::test]
async fn the_rds_fixer_sets_the_value_where_it_is_set_a_literal_a_tfvars_line_or_a_default() {
    // The fixture sets publicly_accessible from a variable that terraform.tfvars overrides:
    // the edit is the tfvars line, and the location names where the value is set.
    let r = rds_dry_run("iac-rds-var", &repository()).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    assert_eq!(
        change["files"][0]["diff"],
        "--- a/terraform.tfvars\n+++ b/terraform.tfvars\n@@ -1,1 +1,1 @@\n-db_public = true\n+db_public = false\n"
    );
    let set_by = &r["iac"]["location"]["set_by"][0];
    assert_eq!(set_by["address"], "tfvars.db_public", "{r:#}");
    assert_eq!(set_by["file"], "terraform.tfvars");

    // Without a tfvars line, the variable's default is where the value is set.
    let repo = repository_with("iac-rds-default", &[]);
    std::fs::remove_file(repo.join("terraform.tfvars")).unwrap();
    let vars = std::fs::read_to_string(repo.join("variables.tf")).unwrap();
    std::fs::write(
        repo.join("variables.tf"),
        vars.replace("default     = false", "default     = true"),
    )
    .unwrap();
    let r = rds_dry_run("iac-rds-default", &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    let diff = change["files"][0]["diff"].as_str().unwrap();
    assert!(diff.starts_with("--- a/variables.tf\n"), "{diff}");
    assert!(
        diff.ends_with("-  default     = true\n+  default     = false\n"),
        "{diff}"
    );

    // A value from an expression that is not a variable is refused with the reason.
    let repo = repository_with("iac-rds-local", &[]);
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    std::fs::write(
        repo.join("main.tf"),
        main.replace(
            "publicly_accessible = var.db_public",
            "publicly_accessible = local.public",
        ),
    )
    .unwrap();
    let r = rds_dry_run("iac-rds-local", &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "refused", "{r:#}");
    let reason = change["reason"].as_str().unwrap();
    assert!(
        reason.contains("publicly_accessible in aws_db_instance.main is local.public, not a literal or a variable"),
        "{reason}"
    );

    // Written as a literal, it is set to false in place.
    let repo = repository_with("iac-rds-literal", &[]);
    let main = std::fs::read_to_string(repo.join("main.tf")).unwrap();
    std::fs::write(
        repo.join("main.tf"),
        main.replace(
            "publicly_accessible = var.db_public",
            "publicly_accessible = true",
        ),
    )
    .unwrap();
    let r = rds_dry_run("iac-rds-literal", &repo).await;
    let change = &r["iac"]["change"];
    assert_eq!(change["outcome"], "proposed", "{r:#}");
    assert_eq!(
        change["files"][0]["diff"],
        "--- a/main.tf\n+++ b/main.tf\n@@ -79,1 +79,1 @@\n-  publicly_accessible = true\n+  publicly_accessible = false\n"
    );
}

/// A state is parsed once per version: S3 is asked with the last ETag and answers 304 while it
/// is unchanged; a new upload is read again. A local file is read again when it changes.
#[tokio::test]
async fn states_are_read_again_only_when_they_change() {
    let proxy = common::proxy::CountingProxy::start(&common::endpoint()).await;
    let sdk = common::sdk_config()
        .await
        .into_builder()
        .endpoint_url(&proxy.url)
        .build();
    let s3 = salve::aws::s3_client(&sdk, true);
    let bucket = common::unique("tf-state");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let put = |text: &'static str| {
        s3.put_object()
            .bucket(&bucket)
            .key("prod.tfstate")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(
                text.as_bytes(),
            ))
            .send()
    };
    put(r#"{"version": 4, "resources": []}"#).await.unwrap();
    let states = iac::StateReader::new(Some(s3.clone()));
    let location = iac::StateLocation::S3 {
        bucket: bucket.clone(),
        key: "prod.tfstate".into(),
    };
    let first = states.read(&location).await.unwrap();
    let again = states.read(&location).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "unchanged: the parsed state is reused"
    );
    let asked = proxy.requests();
    let last = asked.last().unwrap();
    assert!(
        last.headers.iter().any(|(k, _)| k == "if-none-match"),
        "the second read names the ETag it has: {:?}",
        last.headers
    );
    put(r#"{"version": 4, "resources": [{"mode": "managed", "type": "aws_s3_bucket", "name": "b", "instances": []}]}"#)
        .await
        .unwrap();
    let changed = states.read(&location).await.unwrap();
    assert_eq!(changed.resources.len(), 1, "a new upload is read again");

    let dir = common::scratch("state-file-cache");
    let file = dir.join("terraform.tfstate");
    std::fs::write(&file, r#"{"version": 4, "resources": []}"#).unwrap();
    let location = iac::StateLocation::File(file.clone());
    let first = states.read(&location).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &states.read(&location).await.unwrap()
    ));
    std::fs::write(
        &file,
        r#"{"version": 4, "resources": [{"mode": "data", "type": "x", "name": "y"}]}"#,
    )
    .unwrap();
    assert_eq!(states.read(&location).await.unwrap().resources.len(), 1);
}
