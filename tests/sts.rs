//! AssumeRole against moto's STS with two customer accounts: the session is in the right
//! account, acts in that account only, is cached per session policy, and an account that is not
//! allowlisted never reaches STS. Nothing secret ends up in the failure records.

mod common;

use std::collections::BTreeMap;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use serde_json::json;

use common::*;
use salve::credentials::{
    session_policy::PolicyStatement, AccountRole, ExternalIdSource, PolicyDocument, RoleAssumer,
    SessionPolicy, SessionRequest,
};

const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

fn roles() -> BTreeMap<String, AccountRole> {
    std::env::set_var("SALVE_TEST_EXTERNAL_ID", "ext-secret-7f3a");
    [ACCOUNT_A, ACCOUNT_B]
        .into_iter()
        .map(|a| {
            (
                a.to_string(),
                AccountRole {
                    role_arn: format!("arn:aws:iam::{a}:role/salve-remediation"),
                    external_id: Some(ExternalIdSource::Env("SALVE_TEST_EXTERNAL_ID".into())),
                },
            )
        })
        .collect()
}

fn policy(bucket: &str) -> SessionPolicy {
    SessionPolicy {
        document: PolicyDocument {
            version: "2012-10-17".into(),
            statement: vec![PolicyStatement {
                sid: "SalveRead".into(),
                effect: "Allow".into(),
                action: vec!["s3:GetBucketPublicAccessBlock".into()],
                resource: format!("arn:aws:s3:::{bucket}").into(),
            }],
        },
    }
}

async fn as_session(credentials: Credentials) -> aws_config::SdkConfig {
    sdk_config()
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

fn request<'a>(
    account: &'a str,
    finding: &'a str,
    policy: &'a SessionPolicy,
) -> SessionRequest<'a> {
    SessionRequest {
        account_id: account,
        finding_id: finding,
        correlation_id: "corr-1",
        policy,
        approved_by: None,
    }
}

#[tokio::test]
async fn each_session_is_in_its_own_account_and_acts_only_there() {
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", roles());
    let p = policy("b");
    let a = assumer
        .credentials(&request(ACCOUNT_A, "sts-a", &p))
        .await
        .unwrap();
    let b = assumer
        .credentials(&request(ACCOUNT_B, "sts-b", &p))
        .await
        .unwrap();

    for (creds, account) in [(a.clone(), ACCOUNT_A), (b.clone(), ACCOUNT_B)] {
        let sts = aws_sdk_sts::Client::new(&as_session(creds).await);
        let who = sts.get_caller_identity().send().await.unwrap();
        assert_eq!(who.account(), Some(account));
        assert!(
            who.arn()
                .unwrap()
                .contains("assumed-role/salve-remediation/salve-sts-"),
            "{:?}",
            who.arn()
        );
    }

    // A bucket made in account A is not there for account B's session.
    let bucket = unique("sts-only-a");
    let s3 = |conf: aws_config::SdkConfig| {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
    };
    let in_a = s3(as_session(a).await);
    let in_b = s3(as_session(b).await);
    in_a.create_bucket().bucket(&bucket).send().await.unwrap();
    let listed = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        out.buckets()
            .iter()
            .any(|x| x.name() == Some(bucket.as_str()))
    };
    assert!(listed(in_a.list_buckets().send().await.unwrap()));
    assert!(!listed(in_b.list_buckets().send().await.unwrap()));
}

#[tokio::test]
async fn sessions_are_cached_per_policy_and_finding() {
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", roles());
    let (p1, p2) = (policy("one"), policy("two"));
    for _ in 0..2 {
        assumer
            .credentials(&request(ACCOUNT_A, "cache-1", &p1))
            .await
            .unwrap();
    }
    assert_eq!(
        assumer.sts_calls(),
        1,
        "same account, role, policy and finding: cached"
    );
    assumer
        .credentials(&request(ACCOUNT_A, "cache-2", &p1))
        .await
        .unwrap();
    assert_eq!(
        assumer.sts_calls(),
        2,
        "another finding gets its own session, so the name CloudTrail shows is its own"
    );
    assumer
        .credentials(&request(ACCOUNT_A, "cache-1", &p2))
        .await
        .unwrap();
    assert_eq!(
        assumer.sts_calls(),
        3,
        "a different session policy is a different session"
    );
}

#[tokio::test]
async fn the_session_cache_stays_bounded() {
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", roles()).limit_cache(8);
    let p = policy("bounded");
    for i in 0..20 {
        assumer
            .credentials(&request(ACCOUNT_A, &format!("bounded-{i}"), &p))
            .await
            .unwrap();
        assert!(
            assumer.cached_sessions() <= 8,
            "{}",
            assumer.cached_sessions()
        );
    }
    assert_eq!(assumer.sts_calls(), 20);
    // The newest session is still served from the cache.
    assumer
        .credentials(&request(ACCOUNT_A, "bounded-19", &p))
        .await
        .unwrap();
    assert_eq!(assumer.sts_calls(), 20);
}

#[tokio::test]
async fn an_account_that_is_not_allowlisted_makes_no_sts_call() {
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", roles());
    let p = policy("b");
    let err = assumer
        .credentials(&request("333333333333", "nope", &p))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "no role for the account");
    assert_eq!(assumer.sts_calls(), 0);
}

#[tokio::test]
async fn a_missing_external_id_fails_without_naming_a_secret() {
    let mut r = roles();
    r.get_mut(ACCOUNT_A).unwrap().external_id =
        Some(ExternalIdSource::Env("SALVE_TEST_NO_SUCH_VARIABLE".into()));
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", r);
    let p = policy("b");
    let err = assumer
        .credentials(&request(ACCOUNT_A, "x", &p))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "external ID unavailable");
    assert_eq!(
        err.message,
        "the external ID variable $SALVE_TEST_NO_SUCH_VARIABLE is not set"
    );
    assert_eq!(assumer.sts_calls(), 0);
    let text = serde_json::to_string(&err).unwrap();
    assert!(!text.contains("ext-secret-7f3a"));
}

fn sts_error(code: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} from the test</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
}

const STS_OK: &str = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIATESTONLY</AccessKeyId><SecretAccessKey>not-a-secret</SecretAccessKey><SessionToken>not-a-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/salve-remediation/salve-x</Arn><AssumedRoleId>AROATEST:salve-x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>req-ok</RequestId></ResponseMetadata></AssumeRoleResponse>";

/// A RoleAssumer whose STS is a local server answering with `responses` in turn.
async fn fake_sts(
    responses: Vec<(u16, String)>,
) -> (RoleAssumer, tokio::task::JoinHandle<Vec<String>>) {
    let (addr, server) = serve_http(responses).await;
    let conf = sdk_config()
        .await
        .into_builder()
        .endpoint_url(format!("http://{addr}"))
        .build();
    (RoleAssumer::new(&conf, "salve-tests", roles()), server)
}

#[tokio::test]
async fn access_denied_is_recorded_with_its_code_and_request_id_and_not_retried() {
    let (assumer, server) = fake_sts(vec![(403, sts_error("AccessDenied", "req-denied-1"))]).await;
    let p = policy("b");
    let err = assumer
        .credentials(&request(ACCOUNT_A, "sts-denied", &p))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "assume-role denied");
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert_eq!(err.request_id.as_deref(), Some("req-0"));
    assert!(!err.retryable);
    let requests = server.await.unwrap();
    assert_eq!(requests.len(), 1);
    // What the session asked for: the external ID, a traceable name, source identity, tags and
    // the session policy.
    let sent = &requests[0];
    for part in [
        "Action=AssumeRole",
        "RoleSessionName=salve-sts-denied",
        "ExternalId=ext-secret-7f3a",
        "SourceIdentity=salve-tests",
        "Tags.member.1.Key=salve%3Afinding-id",
        "Tags.member.1.Value=sts-denied",
        "Tags.member.2.Key=salve%3Acorrelation-id",
        "Policy=",
    ] {
        assert!(sent.contains(part), "{part} missing from {sent}");
    }
    assert!(!serde_json::to_string(&err)
        .unwrap()
        .contains("ext-secret-7f3a"));
}

#[tokio::test]
async fn expired_platform_credentials_are_named() {
    let (assumer, _server) = fake_sts(vec![(403, sts_error("ExpiredToken", "req-exp"))]).await;
    let p = policy("b");
    let err = assumer
        .credentials(&request(ACCOUNT_A, "x", &p))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "platform credentials expired");
    assert_eq!(err.request_id.as_deref(), Some("req-0"));
}

#[tokio::test]
async fn throttling_is_retried_with_a_bound_then_marked_retryable() {
    let (assumer, server) = fake_sts(vec![(400, sts_error("Throttling", "req-throttle")); 4]).await;
    let p = policy("b");
    let err = assumer
        .credentials(&request(ACCOUNT_A, "x", &p))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "assume-role unavailable after retries");
    assert_eq!(err.code.as_deref(), Some("Throttling"));
    assert!(err.retryable);
    assert_eq!(
        server.await.unwrap().len(),
        4,
        "four attempts, then give up"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_and_can_succeed() {
    let (assumer, server) = fake_sts(vec![
        (503, sts_error("ServiceUnavailable", "req-503")),
        (200, STS_OK.to_string()),
    ])
    .await;
    let p = policy("b");
    let creds = assumer
        .credentials(&request(ACCOUNT_A, "x", &p))
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "ASIATESTONLY");
    assert_eq!(server.await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_denied_read_session_fails_the_finding_with_the_code_and_request_id() {
    let (addr, server) = serve_http(vec![(403, sts_error("AccessDenied", "ignored"))]).await;
    let conf = sdk_config()
        .await
        .into_builder()
        .endpoint_url(format!("http://{addr}"))
        .build();
    let config = test_config("");
    let backends = salve::aws::AwsBackends::from_config(
        conf,
        salve::aws::AwsOptions {
            endpoint_url: Some(format!("http://{addr}")),
        },
        "salve-tests",
        config.account_roles(),
    );
    let audit = scratch("sts-denied-pipeline").join("audit.jsonl");
    let p = pipeline_with(
        &[fixer("s3-block-public-access")],
        salve::runtime::RuntimeLimits::default(),
        Box::new(backends),
        &audit,
        &config,
        salve::notify::Notifier::disabled(),
    );
    let record = process_one(
        &p,
        s3_finding("denied-1", "acme-assets").as_bytes(),
        salve::pipeline::ProcessOptions::default(),
    )
    .await;
    assert_eq!(record["status"], "failed");
    assert_eq!(
        record["reason"],
        "read session: assume-role denied: AccessDenied from the test (AccessDenied, request ID req-0)"
    );
    let failure = &record["sessions"][0]["failure"];
    assert_eq!(failure["code"], "AccessDenied");
    assert_eq!(failure["retryable"], false);
    assert_eq!(
        record["calls"].as_array().map_or(0, Vec::len),
        0,
        "the fixer never ran"
    );
    assert_eq!(server.await.unwrap().len(), 1);
}

async fn two_account_pipeline(
    name: &str,
) -> (
    salve::pipeline::Pipeline,
    std::sync::Arc<salve::aws::AwsBackends>,
) {
    let config = salve::config::SalveConfig::parse(
        &format!(
            "[accounts.\"{ACCOUNT_A}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT_A}:role/salve-remediation\"\n\
             [accounts.\"{ACCOUNT_B}\"]\nrole-arn = \"arn:aws:iam::{ACCOUNT_B}:role/salve-remediation\"\n"
        ),
        "test",
        std::path::Path::new("."),
    )
    .unwrap();
    let backends = std::sync::Arc::new(salve::aws::AwsBackends::from_config(
        sdk_config().await,
        salve::aws::AwsOptions {
            endpoint_url: Some(endpoint()),
        },
        "salve-tests",
        config.account_roles(),
    ));
    let p = pipeline_with(
        &[fixer("sg-close-admin-ports")],
        salve::runtime::RuntimeLimits::default(),
        Box::new(backends.clone()),
        &scratch(name).join("audit.jsonl"),
        &config,
        salve::notify::Notifier::disabled(),
    );
    (p, backends)
}

fn sg_finding_in(id: &str, account: &str, group: &str) -> Vec<u8> {
    json!({
        "id": id, "control_id": "EC2.13", "severity": "CRITICAL",
        "resource": {"arn": format!("arn:aws:ec2:us-east-1:{account}:security-group/{group}"),
                     "type": "AWS::EC2::SecurityGroup", "account_id": account, "region": "us-east-1",
                     "tags": {"owner": "net", "environment": "dev"}}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn the_fixer_acts_in_the_findings_account_only() {
    // An SSH-open group in account A, made through A's own session.
    let assumer = RoleAssumer::new(&sdk_config().await, "salve-tests", roles());
    let p = policy("setup");
    let a = assumer
        .credentials(&request(ACCOUNT_A, "setup", &p))
        .await
        .unwrap();
    let ec2_a = aws_sdk_ec2::Client::new(&as_session(a).await);
    let group = ec2_a
        .create_security_group()
        .group_name(unique("two-accounts"))
        .description("salve test")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2_a
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let open_in_a = || async {
        ec2_a
            .describe_security_groups()
            .group_ids(&group)
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .ip_permissions()
            .len()
    };

    let (pipeline, _) = two_account_pipeline("two-accounts").await;
    // The same group ID claimed for account B: B's session cannot see A's group.
    let record = process_one(
        &pipeline,
        &sg_finding_in("in-b", ACCOUNT_B, &group),
        Default::default(),
    )
    .await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(
        open_in_a().await,
        1,
        "account B's session changed account A"
    );
    // The finding for account A fixes A's group.
    let record = process_one(
        &pipeline,
        &sg_finding_in("in-a", ACCOUNT_A, &group),
        Default::default(),
    )
    .await;
    assert_eq!(record["status"], "remediated", "{record}");
    assert_eq!(open_in_a().await, 0);
}

#[tokio::test]
async fn a_finding_for_an_unlisted_account_never_reaches_sts() {
    let (pipeline, backends) = two_account_pipeline("unlisted").await;
    let record = process_one(
        &pipeline,
        &sg_finding_in("unlisted", "333333333333", "sg-0123456789abcdef0"),
        Default::default(),
    )
    .await;
    assert_eq!(record["status"], "skipped");
    assert_eq!(record["reason"], "account not allowlisted");
    assert_eq!(backends.assumer().sts_calls(), 0);
}
