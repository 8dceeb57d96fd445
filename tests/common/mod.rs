//! Shared helpers for the integration tests: where the built components are, scratch
//! directories, and a pipeline wired to whatever backend a test needs.
#![allow(dead_code)]

pub mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use salve::audit::AuditLog;
use salve::capabilities::{Binding, BoxFuture};
use salve::config::SalveConfig;
use salve::credentials::{AssumeRoleFailure, SessionPolicy};
use salve::finding::Finding;
use salve::notify::Notifier;
use salve::pipeline::{
    BackendBinder, FixerSettings, Pipeline, PipelineBuilder, ProcessOptions, SessionFor,
};
use salve::runtime::RuntimeLimits;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built(kind: &str, name: &str) -> PathBuf {
    let path = repo_root()
        .join("build")
        .join(kind)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-fixers.sh (scripts/test.sh does this for you)",
        path.display()
    );
    path
}

pub fn fixer(name: &str) -> PathBuf {
    built("fixers", name)
}

pub fn fixture(name: &str) -> PathBuf {
    built("fixtures", name)
}

/// A fresh scratch directory under target/, removed when the test starts again.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo_root().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}

/// Hands every finding the same backend, so the test can look at it afterwards.
pub struct FixedBackend(pub Binding);

impl BackendBinder for FixedBackend {
    fn bind<'a>(
        &'a self,
        _finding: &'a Finding,
        _policy: &'a SessionPolicy,
        _on_behalf: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// The account every test finding lives in, allowlisted by [`test_config`].
pub const ACCOUNT: &str = "123456789012";

/// A config that allowlists [`ACCOUNT`], plus whatever TOML a test adds.
pub fn test_config(extra: &str) -> SalveConfig {
    let text = format!(
        "deployment = \"salve-tests\"\n[accounts.\"{ACCOUNT}\"]\nname = \"test\"\nrole-arn = \"arn:aws:iam::{ACCOUNT}:role/salve-remediation\"\n{extra}"
    );
    SalveConfig::parse(&text, "test salve.toml", &repo_root()).expect("test config")
}

pub fn pipeline(
    fixers: &[PathBuf],
    limits: RuntimeLimits,
    binder: Box<dyn BackendBinder>,
    audit: &Path,
    settings: FixerSettings,
) -> Pipeline {
    let mut config = test_config("");
    config.fixers = settings;
    pipeline_with(fixers, limits, binder, audit, &config, Notifier::disabled())
}

pub fn pipeline_with(
    fixers: &[PathBuf],
    limits: RuntimeLimits,
    binder: Box<dyn BackendBinder>,
    audit: &Path,
    config: &SalveConfig,
    notifier: Notifier,
) -> Pipeline {
    PipelineBuilder::new(config)
        .limits(limits)
        .fixer_files(fixers)
        .notifier(notifier)
        .audit_log(AuditLog::open(audit).expect("audit log"))
        .build(binder)
        .expect("pipeline")
}

/// Processes a payload that holds exactly one message and returns its audit record as written.
pub async fn process_one(
    p: &Pipeline,
    payload: &[u8],
    options: ProcessOptions,
) -> serde_json::Value {
    let mut processed = p
        .process_payload(payload, options)
        .await
        .expect("audit write");
    assert_eq!(processed.len(), 1, "expected one message in the payload");
    let sealed = processed.remove(0).sealed.expect("a sealed record");
    serde_json::from_str(&sealed.line).expect("record JSON")
}

pub fn no_settings() -> FixerSettings {
    BTreeMap::new()
}

pub fn s3_finding(id: &str, bucket: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"S3.8","title":"public bucket","severity":"HIGH",
        "resource":{{"arn":"arn:aws:s3:::{bucket}","type":"AWS::S3::Bucket","account_id":"123456789012","region":"us-east-1",
        "tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

pub fn sg_finding(id: &str, group_id: &str, title: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"EC2.13","title":"{title}","severity":"CRITICAL",
        "resource":{{"arn":"arn:aws:ec2:us-east-1:123456789012:security-group/{group_id}","type":"AWS::EC2::SecurityGroup",
        "account_id":"123456789012","region":"us-east-1","tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

/// The audit log's records about outcomes: every record but the `intent` records written before
/// a fix's first write call (tests that look at intents read the file themselves).
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("record"))
        .filter(|r| r["status"] != "intent")
        .collect()
}

/// moto's address; scripts/test.sh starts moto and sets it.
pub fn endpoint() -> String {
    std::env::var("SALVE_MOTO_ENDPOINT").expect(
        "SALVE_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto server and sets it",
    )
}

/// The SDK pointed at moto with its fixed test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "salve-tests",
        ))
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .load()
        .await
}

/// A pipeline with both shipped fixers against AWS at `url` (moto, or the counting proxy in front
/// of it), with the audit log in a fresh scratch directory.
pub async fn aws_pipeline(name: &str, url: &str) -> (Pipeline, PathBuf) {
    aws_pipeline_with(
        name,
        url,
        &[
            fixer("s3-block-public-access"),
            fixer("sg-close-admin-ports"),
        ],
    )
    .await
}

/// A pipeline of `fixers` against `url` (moto, or a proxy in front of it).
pub async fn aws_pipeline_with(name: &str, url: &str, fixers: &[PathBuf]) -> (Pipeline, PathBuf) {
    aws_pipeline_config(name, url, fixers, "").await
}

/// Like [`aws_pipeline_with`], with `extra` TOML in the config.
pub async fn aws_pipeline_config(
    name: &str,
    url: &str,
    fixers: &[PathBuf],
    extra: &str,
) -> (Pipeline, PathBuf) {
    let (p, audit, _) = aws_pipeline_counted(name, url, fixers, extra).await;
    (p, audit)
}

/// Like [`aws_pipeline_config`], and the backends, whose STS calls a test can count.
pub async fn aws_pipeline_counted(
    name: &str,
    url: &str,
    fixers: &[PathBuf],
    extra: &str,
) -> (Pipeline, PathBuf, std::sync::Arc<salve::aws::AwsBackends>) {
    let audit = scratch(name).join("audit.jsonl");
    let sdk = sdk_config().await.into_builder().endpoint_url(url).build();
    let backends = std::sync::Arc::new(salve::aws::AwsBackends::from_config(
        sdk,
        salve::aws::AwsOptions {
            endpoint_url: Some(url.to_string()),
        },
        "salve-tests",
        test_config("").account_roles(),
    ));
    let p = pipeline_with(
        fixers,
        RuntimeLimits::default(),
        Box::new(backends.clone()),
        &audit,
        &test_config(extra),
        Notifier::disabled(),
    );
    (p, audit, backends)
}

/// A canonical RDS.2 finding for the DB instance `identifier` in us-east-1.
pub fn rds_finding(id: &str, identifier: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"RDS.2","title":"public DB instance","severity":"CRITICAL",
        "resource":{{"arn":"arn:aws:rds:us-east-1:123456789012:db:{identifier}","type":"AWS::RDS::DBInstance",
        "account_id":"123456789012","region":"us-east-1","tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

/// A public moto DB instance named `identifier`.
/// [`public_db`], unless moto already has an instance `identifier` (tests share the fixture's).
pub async fn public_db_once(identifier: &str) {
    let rds = aws_sdk_rds::Client::new(&sdk_config().await);
    let exists = rds
        .describe_db_instances()
        .db_instance_identifier(identifier)
        .send()
        .await
        .is_ok();
    if !exists {
        public_db(identifier).await;
    }
}

pub async fn public_db(identifier: &str) {
    let rds = aws_sdk_rds::Client::new(&sdk_config().await);
    rds.create_db_instance()
        .db_instance_identifier(identifier)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("salve")
        .master_user_password("not-a-real-password")
        .allocated_storage(20)
        .publicly_accessible(true)
        .send()
        .await
        .unwrap();
}

/// Whether moto's DB instance `identifier` is publicly accessible.
pub async fn db_is_public(identifier: &str) -> bool {
    let rds = aws_sdk_rds::Client::new(&sdk_config().await);
    rds.describe_db_instances()
        .db_instance_identifier(identifier)
        .send()
        .await
        .unwrap()
        .db_instances()[0]
        .publicly_accessible()
        .unwrap()
}

/// A canonical EC2.21 finding for the network ACL `acl_id` in us-east-1.
pub fn nacl_finding(id: &str, acl_id: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"EC2.21","title":"admin ports open in a network ACL","severity":"HIGH",
        "resource":{{"arn":"arn:aws:ec2:us-east-1:123456789012:network-acl/{acl_id}","type":"AWS::EC2::NetworkAcl",
        "account_id":"123456789012","region":"us-east-1","tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

/// A canonical EC2.3 finding for the EBS volume `volume_id` in us-east-1.
pub fn volume_finding(id: &str, volume_id: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"EC2.3","title":"EBS volume is not encrypted","severity":"HIGH",
        "resource":{{"arn":"arn:aws:ec2:us-east-1:123456789012:volume/{volume_id}","type":"AWS::EC2::Volume",
        "account_id":"123456789012","region":"us-east-1","tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

/// A moto EBS volume in us-east-1a, encrypted or not; its ID.
pub async fn moto_volume(encrypted: bool) -> String {
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    ec2.create_volume()
        .availability_zone("us-east-1a")
        .size(8)
        .encrypted(encrypted)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string()
}

/// One network ACL entry to create: rule number, egress, protocol, action, CIDR, ports.
pub type AclSpec<'a> = (i32, bool, &'a str, &'a str, &'a str, Option<(i32, i32)>);

/// A moto network ACL with `entries`.
pub async fn moto_acl(entries: &[AclSpec<'_>]) -> String {
    use aws_sdk_ec2::types::{PortRange, RuleAction};
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let acl = ec2
        .create_network_acl()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .network_acl
        .unwrap()
        .network_acl_id
        .unwrap();
    for (n, egress, protocol, action, cidr, ports) in entries {
        let mut e = ec2
            .create_network_acl_entry()
            .network_acl_id(&acl)
            .rule_number(*n)
            .egress(*egress)
            .protocol(*protocol)
            .rule_action(RuleAction::from(*action))
            .set_port_range(ports.map(|(f, t)| PortRange::builder().from(f).to(t).build()));
        e = if cidr.contains(':') {
            e.ipv6_cidr_block(*cidr)
        } else {
            e.cidr_block(*cidr)
        };
        e.send().await.unwrap();
    }
    acl
}

/// The ACL's entries as (rule number, egress, CIDR, ports), sorted.
pub async fn acl_entries(acl: &str) -> Vec<(i32, bool, String, Option<(i32, i32)>)> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    let out = ec2
        .describe_network_acls()
        .network_acl_ids(acl)
        .send()
        .await
        .unwrap();
    let mut entries: Vec<_> = out.network_acls()[0]
        .entries()
        .iter()
        .map(|e| {
            (
                e.rule_number().unwrap(),
                e.egress().unwrap(),
                e.cidr_block()
                    .or(e.ipv6_cidr_block())
                    .unwrap_or_default()
                    .to_string(),
                e.port_range().map(|p| (p.from().unwrap(), p.to().unwrap())),
            )
        })
        .collect();
    entries.sort();
    entries
}

/// A canonical EC2.7 finding: EBS encryption by default is off in `region`.
pub fn ebs_finding(id: &str, region: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"test","control_id":"EC2.7","title":"EBS default encryption is off","severity":"HIGH",
        "resource":{{"arn":"arn:aws:ec2:{region}:123456789012:ebs-encryption-by-default","type":"AWS::EC2::EbsEncryptionByDefault",
        "account_id":"123456789012","region":"{region}","tags":{{"owner":"platform-team","environment":"dev"}}}}}}"#
    )
}

/// Whether EBS encryption by default is on in `region`, as moto says.
pub async fn ebs_encryption(region: &str) -> bool {
    let config = sdk_config()
        .await
        .into_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build();
    aws_sdk_ec2::Client::new(&config)
        .get_ebs_encryption_by_default()
        .send()
        .await
        .unwrap()
        .ebs_encryption_by_default()
        .unwrap()
}

/// A moto security group (named from `prefix`) with SSH open to the world.
pub async fn open_ssh_group(prefix: &str) -> String {
    use aws_sdk_ec2::types::{IpPermission, IpRange};
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config().await);
    let group = ec2
        .create_security_group()
        .group_name(unique(prefix))
        .description("ssh open to the world")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    group
}

/// S3 in moto, buckets addressed by path.
/// `n` new moto buckets named `<prefix>-<i>` (made unique), in order.
pub async fn moto_buckets(s3: &aws_sdk_s3::Client, prefix: &str, n: usize) -> Vec<String> {
    let buckets: Vec<String> = (0..n).map(|i| unique(&format!("{prefix}-{i}"))).collect();
    for b in &buckets {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    buckets
}

/// Asserts that a shared read session's policy (a record's `sessions[].policy`) lists exactly
/// `buckets`, in any order (one resource is written as a string, as IAM allows).
pub fn assert_lists_exactly(policy: &serde_json::Value, buckets: &[String]) {
    let resource = &policy["Statement"][0]["Resource"];
    let listed: Vec<&str> = match resource.as_str() {
        Some(one) => vec![one],
        None => resource
            .as_array()
            .unwrap_or_else(|| panic!("a resource or a list of them: {policy}"))
            .iter()
            .map(|a| a.as_str().unwrap_or_default())
            .collect(),
    };
    assert_same_buckets(listed, buckets);
}

/// Asserts that every one of `records` read through one shared read session (`salve-read-…`),
/// whose policy lists exactly `buckets`.
pub fn assert_one_shared_read_session<'a>(
    records: impl IntoIterator<Item = &'a serde_json::Value>,
    buckets: &[String],
) {
    let sessions: Vec<&serde_json::Value> =
        records.into_iter().map(|r| &r["sessions"][0]).collect();
    let name = sessions[0]["session_name"].as_str().unwrap();
    assert!(name.starts_with("salve-read-"), "{name}");
    for s in &sessions {
        assert_eq!(s["phase"], "read", "{s}");
        assert_eq!(s["session_name"], name, "{s}");
    }
    assert_lists_exactly(&sessions[0]["policy"], buckets);
}

/// Asserts that `arns` are exactly the ARNs of `buckets`, in any order.
pub fn assert_same_buckets<S: AsRef<str>>(arns: Vec<S>, buckets: &[String]) {
    let mut listed: Vec<&str> = arns.iter().map(AsRef::as_ref).collect();
    listed.sort_unstable();
    let mut expected: Vec<String> = buckets
        .iter()
        .map(|b| format!("arn:aws:s3:::{b}"))
        .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "exactly these buckets");
}

pub async fn s3() -> aws_sdk_s3::Client {
    salve::aws::s3_client(&sdk_config().await, true)
}

/// A bucket's four public access block settings, or `None` when it has no configuration.
pub async fn public_access_block(client: &aws_sdk_s3::Client, bucket: &str) -> Option<[bool; 4]> {
    match client.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().map(|c| {
            [
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ]
        }),
        Err(_) => None,
    }
}

/// A name no earlier test run used, so tests against a long-lived moto do not collide.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A tiny HTTP/1.1 server for tests: answers one request per connection with each of
/// `responses` (status, body) in turn, then returns the request bodies it saw. Like AWS, it
/// names each response with an `x-amzn-requestid` header: `req-0`, `req-1`, ...
pub async fn serve_http(
    responses: Vec<(u16, String)>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (i, (status, body)) in responses.into_iter().enumerate() {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the headers, then exactly content-length bytes of body.
            let request_body = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break text[end + 4..end + 4 + length].to_string();
                    }
                }
                assert!(n > 0, "connection closed mid-request");
            };
            bodies.push(request_body);
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\nx-amzn-requestid: req-{i}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
        }
        bodies
    });
    (addr, handle)
}
