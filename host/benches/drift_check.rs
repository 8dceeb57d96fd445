//! `salve drift check` over many resources on moto: the wall time, and the AWS calls per
//! resource, counted by a proxy between salve and moto.
//!
//! Two workloads, run one after the other in one process:
//! - Terraform: 1,000 security groups a workspace's state declares (one in ten drifted live),
//!   read in batches (`DescribeSecurityGroups` with up to 200 group IDs in one filter);
//! - fixes: 100 buckets salve fixed (one in ten undone by hand), each checked by its fixer's
//!   own `check()` through a per-finding read session;
//! - Terraform buckets: the same buckets declared by a second workspace's state, read one
//!   `GetPublicAccessBlock` each (S3 has no batch read), one at a time and `[drift] concurrency`
//!   (8) at once, with moto's answers as they come and with every call held back by the proxy
//!   for `SALVE_BENCH_LATENCY_MS` (20) first: a round trip moto on loopback does not have.
//!
//! Run: `./scripts/bench.sh drift_check` (starts moto). `SALVE_BENCH_RESOURCES` and
//! `SALVE_BENCH_FIXES` set other counts.

#[path = "../../tests/common/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use salve::audit::AuditLog;
use salve::aws::{AwsBackends, AwsOptions};
use salve::config::SalveConfig;
use salve::drift::{Drift, Scope};
use salve::pipeline::{PipelineBuilder, ProcessOptions};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The operation of one request: the query protocol's `Action=`, else S3's method and
/// sub-resource.
fn operation(seen: &proxy::Seen) -> String {
    if let Some(action) = seen
        .body
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
    {
        return action.to_string();
    }
    let query = seen
        .path_and_query
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("");
    format!(
        "S3 {} ?{}",
        seen.method,
        query.split('&').next().unwrap_or("")
    )
}

fn calls(p: &proxy::CountingProxy, since: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for seen in p.requests().iter().skip(since) {
        *out.entry(operation(seen)).or_default() += 1;
    }
    out
}

fn print_calls(label: &str, resources: usize, wall: f64, calls: &BTreeMap<String, usize>) {
    let total: usize = calls.values().sum();
    println!(
        "{label:<34} {resources:>5} resources  wall {wall:>7.2} s  {:>7.3} ms/resource  AWS calls {total:>5} ({:.3}/resource)",
        wall * 1000.0 / resources as f64,
        total as f64 / resources as f64
    );
    for (op, n) in calls {
        println!("    {op:<40} {n}");
    }
}

fn main() {
    let endpoint = std::env::var("SALVE_MOTO_ENDPOINT")
        .expect("SALVE_MOTO_ENDPOINT is not set: run scripts/bench.sh, which starts moto");
    let resources = count("SALVE_BENCH_RESOURCES", 1_000);
    let fixes = count("SALVE_BENCH_FIXES", 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .load()
            .await;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("salve-bench-drift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch");

        // The Terraform workload: groups with no ingress, declared so; one in ten drifted.
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let mut instances = Vec::new();
        for i in 0..resources {
            let id = ec2
                .create_security_group()
                .group_name(format!("bench-drift-{}-{i}", std::process::id()))
                .description("bench")
                .send()
                .await
                .expect("group")
                .group_id
                .expect("group ID");
            if i % 10 == 0 {
                ec2.authorize_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(
                        aws_sdk_ec2::types::IpPermission::builder()
                            .ip_protocol("tcp")
                            .from_port(22)
                            .to_port(22)
                            .ip_ranges(
                                aws_sdk_ec2::types::IpRange::builder()
                                    .cidr_ip("0.0.0.0/0")
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .expect("drift");
            }
            instances.push(serde_json::json!({
                "index_key": i, "attributes": {"id": id, "ingress": []}
            }));
        }
        let bucket_names: Vec<String> = (0..fixes)
            .map(|i| format!("bench-drift-{}-{i}", std::process::id()))
            .collect();
        let bucket_state = dir.join("buckets.tfstate");
        std::fs::write(&bucket_state, buckets_state(&bucket_names)).expect("bucket state");
        let state = dir.join("terraform.tfstate");
        std::fs::write(
            &state,
            serde_json::to_vec(&serde_json::json!({"version": 4, "resources": [{
                "mode": "managed", "type": "aws_security_group", "name": "fleet",
                "instances": instances}]}))
            .expect("state JSON"),
        )
        .expect("state");

        // The fix workload: public buckets, fixed through the pipeline, one in ten undone.
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let buckets = bucket_names;
        for b in &buckets {
            s3.create_bucket().bucket(b).send().await.expect("bucket");
        }

        let proxy = proxy::CountingProxy::start(&endpoint).await;
        let text = format!(
            "deployment = \"bench\"\n[accounts.\"123456789012\"]\nname = \"bench\"\nrole-arn = \"arn:aws:iam::123456789012:role/salve\"\n\
             [[iac.terraform]]\nname = \"fleet\"\naccounts = [\"123456789012\"]\nregions = [\"us-east-1\"]\nrepository = \"{}\"\nstate = \"{}\"\n\
             [[iac.terraform]]\nname = \"buckets\"\naccounts = [\"123456789012\"]\nregions = [\"us-east-1\"]\nrepository = \"{}\"\nstate = \"{}\"\n",
            root.display(),
            state.display(),
            root.display(),
            bucket_state.display()
        );
        let config = SalveConfig::parse(&text, "bench salve.toml", &root).expect("config");
        let backends = || {
            AwsBackends::from_config(
                sdk.clone().into_builder().endpoint_url(&proxy.url).build(),
                AwsOptions {
                    endpoint_url: Some(proxy.url.clone()),
                },
                "bench",
                config.account_roles(),
            )
        };
        let audit = dir.join("audit.jsonl");
        let pipeline = PipelineBuilder::new(&config)
            .cache_dir(Some(std::env::temp_dir().join("salve-bench-fixer-cache")))
            .fixer_files(&[root.join("build/fixers/s3-block-public-access.wasm")])
            .audit_log(AuditLog::open(&audit).expect("audit log"))
            .build(Box::new(backends()))
            .expect("pipeline");
        for (i, b) in buckets.iter().enumerate() {
            let finding = serde_json::json!({"id": format!("bench-drift-{i}"), "source": "bench",
                "control_id": "S3.8", "title": "public bucket", "severity": "HIGH",
                "resource": {"arn": format!("arn:aws:s3:::{b}"), "type": "AWS::S3::Bucket",
                    "account_id": "123456789012", "region": "us-east-1",
                    "tags": {"owner": "platform-team", "environment": "dev"}}});
            pipeline
                .process_payload(finding.to_string().as_bytes(), ProcessOptions::default())
                .await
                .expect("fix");
            if i % 10 == 0 {
                s3.delete_public_access_block()
                    .bucket(b)
                    .send()
                    .await
                    .expect("undo");
            }
        }
        let aws = backends();
        let drift = Drift {
            pipeline: &pipeline,
            aws: &aws,
            config: &config.drift,
            audit_log: &audit,
        };
        println!(
            "drift check on moto: {resources} Terraform-managed security groups, {fixes} fixed buckets (1 in 10 drifted)"
        );
        // The fix workload is scoped to the groups' workspace, which declares no bucket, so it
        // reads the fixes alone.
        for (label, kinds) in [
            ("terraform: security groups", vec!["security-group".to_string()]),
            ("fixes: buckets (fixer check)", vec!["s3-bucket".to_string()]),
        ] {
            for run in ["first run", "again"] {
                let scope = Scope::new(
                    vec![],
                    vec![],
                    vec!["fleet".into()],
                    &kinds,
                    &config.iac.terraform,
                )
                .expect("scope");
                check(&format!("{label}, {run}"), &drift, &scope, &proxy).await;
            }
        }

        // Terraform buckets: an audit log of their own holds no fixes, so only the state's
        // buckets are read. Each row starts from an empty log and writes the same records.
        let latency = std::time::Duration::from_millis(count("SALVE_BENCH_LATENCY_MS", 20) as u64);
        let scope = Scope::new(
            vec![],
            vec![],
            vec!["buckets".into()],
            &["s3-bucket".to_string()],
            &config.iac.terraform,
        )
        .expect("scope");
        for delay in [None, Some(latency)] {
            proxy.set_fault(delay.map(|d| -> proxy::FaultRule {
                std::sync::Arc::new(move |_: &proxy::Seen| Some(proxy::Injected::Delay(d)))
            }));
            for concurrency in [1, config.drift.concurrency] {
                let log = dir.join(format!("tf-buckets-{concurrency}-{delay:?}.jsonl"));
                let drift_config = salve::drift::DriftConfig {
                    concurrency,
                    ..config.drift.clone()
                };
                let drift = Drift {
                    pipeline: &pipeline,
                    aws: &aws,
                    config: &drift_config,
                    audit_log: &log,
                };
                let held = delay.map_or("as moto answers".to_string(), |d| {
                    format!("+{} ms a call", d.as_millis())
                });
                let label = format!("terraform: buckets, {concurrency} at once, {held}");
                check(&label, &drift, &scope, &proxy).await;
            }
        }
        proxy.set_fault(None);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// One drift check, timed, with the calls it made and what it found.
async fn check(label: &str, drift: &Drift<'_>, scope: &Scope, proxy: &proxy::CountingProxy) {
    let before = proxy.requests().len();
    let t = Instant::now();
    let report = drift
        .check(scope, salve::timestamp::now())
        .await
        .expect("check");
    let wall = t.elapsed().as_secs_f64();
    print_calls(label, report.resources.len(), wall, &calls(proxy, before));
    println!(
        "    drifted {}, records written {}, problems {}",
        report.drifted().count(),
        report.records.len(),
        report.problems.len()
    );
}

/// A state declaring each bucket and a public access block with all four settings on, as
/// salve's fix leaves it.
fn buckets_state(buckets: &[String]) -> Vec<u8> {
    let instances = |with_block: bool| -> Vec<serde_json::Value> {
        buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut attributes = serde_json::json!({"id": b, "bucket": b});
                if with_block {
                    for setting in [
                        "block_public_acls",
                        "ignore_public_acls",
                        "block_public_policy",
                        "restrict_public_buckets",
                    ] {
                        attributes[setting] = serde_json::json!(true);
                    }
                }
                serde_json::json!({"index_key": i, "attributes": attributes})
            })
            .collect()
    };
    serde_json::to_vec(&serde_json::json!({"version": 4, "resources": [
        {"mode": "managed", "type": "aws_s3_bucket", "name": "data",
            "instances": instances(false)},
        {"mode": "managed", "type": "aws_s3_bucket_public_access_block", "name": "data",
            "instances": instances(true)},
    ]}))
    .expect("state JSON")
}
