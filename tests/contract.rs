//! Contract 0.2.0: a plan is typed calls with their arguments. The gate lets through only calls
//! equal to a planned call, and the host reads the resource back itself before it believes the
//! fixer. Fixers built against 0.1.0 keep loading.

mod common;

use std::sync::Arc;

use common::*;
use salve::kinds::ContractVersion;
use salve::pipeline::ProcessOptions;
use salve::runtime::{Runtime, RuntimeLimits};
use salve_kind_s3_bucket::host::InMemoryS3Bucket;
use serde_json::Value;

fn finding(id: &str, bucket: &str, behaviour: &str) -> String {
    s3_finding(id, bucket).replace("\"public bucket\"", &format!("\"{behaviour}\""))
}

fn in_memory(name: &str) -> (salve::pipeline::Pipeline, Arc<InMemoryS3Bucket>) {
    let bucket = Arc::new(InMemoryS3Bucket::with(None));
    let audit = scratch(name).join("audit.jsonl");
    let p = pipeline(
        &[fixture("typed-s3")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_s3_bucket::host::bind(
            bucket.clone(),
        ))),
        &audit,
        no_settings(),
    );
    (p, bucket)
}

async fn run(p: &salve::pipeline::Pipeline, id: &str, behaviour: &str) -> Value {
    process_one(
        p,
        finding(id, "typed-bucket", behaviour).as_bytes(),
        ProcessOptions::default(),
    )
    .await
}

fn writes(record: &Value) -> Vec<&Value> {
    record["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["access"] == "write")
        .collect()
}

/// The shipped fixers are built against 0.2.0; `hostile-fixer` is built with `salve_sdk::v0_1`,
/// pinned to `wit/since_v0.1.0`, and still loads (tests/hardening.rs and tests/sandbox.rs run it
/// end to end).
#[test]
fn both_contract_versions_load() {
    let runtime = Runtime::new(RuntimeLimits::default(), None).unwrap();
    let old = runtime.load_file(&fixture("hostile-fixer")).unwrap();
    assert_eq!(old.contract, ContractVersion::V0_1);
    assert!(old
        .imports
        .interfaces
        .contains(&"salve:fixer/security-group@0.1.0".to_string()));
    for name in ["s3-block-public-access", "sg-close-admin-ports"] {
        let new = runtime.load_file(&fixer(name)).unwrap();
        assert_eq!(new.contract, ContractVersion::V0_2, "{name}");
    }
    let typed = runtime.load_file(&fixture("typed-s3")).unwrap();
    assert_eq!(typed.contract, ContractVersion::V0_2);
}

#[tokio::test]
async fn a_faithful_typed_plan_is_remediated_on_the_hosts_own_read_back() {
    let (p, bucket) = in_memory("typed-faithful");
    let r = run(&p, "typed-faithful", "faithful").await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    let change = &r["plan"]["changes"][0];
    assert_eq!(change["action"], "s3:PutBucketPublicAccessBlock");
    assert_eq!(
        change["call"]["function"],
        "s3-bucket.put-public-access-block"
    );
    assert_eq!(change["call"]["args"]["block_public_policy"], true);
    let read_back = &r["evidence"]["read_back"][0];
    assert_eq!(read_back["holds"], true, "{r:#}");
    assert_eq!(read_back["actual"], read_back["expected"]);
    assert_eq!(r["evidence"]["applied"].as_array().unwrap().len(), 1);
    assert_eq!(writes(&r)[0]["planned"], 0);
    assert_eq!(bucket.writes(), 1);
}

#[tokio::test]
async fn a_fixer_that_skips_its_planned_write_is_failed_by_the_read_back() {
    let (p, bucket) = in_memory("typed-idle");
    let r = run(&p, "typed-idle", "idle").await;
    assert_eq!(r["status"], "failed", "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("did not take effect"), "{reason}");
    // The fixer's own verify said compliant; the host did not believe it.
    assert_eq!(r["evidence"]["compliant_after"], true);
    assert_eq!(r["evidence"]["read_back"][0]["holds"], false);
    assert_eq!(bucket.writes(), 0);
}

#[tokio::test]
async fn a_planned_call_passes_once() {
    let (p, bucket) = in_memory("typed-twice");
    let r = run(&p, "typed-twice", "twice").await;
    let writes = writes(&r);
    assert_eq!(writes.len(), 2, "{r:#}");
    assert_eq!(writes[0]["result"], "ok");
    assert_eq!(writes[1]["result"], "denied");
    assert!(writes[1]["detail"]
        .as_str()
        .unwrap()
        .contains("already made"));
    assert_eq!(bucket.writes(), 1);
    // The one planned call holds, so the fix stands; the denial is in the reason.
    assert_eq!(r["status"], "remediated", "{r:#}");
}

/// The case from the issue: plan "turn on all four settings", apply all four as `false`, say
/// compliant in verify. Against moto, the bucket must be left as it was.
#[tokio::test]
async fn a_two_faced_fixer_ends_failed_and_leaves_the_bucket_as_it_was() {
    let s3 = s3().await;
    let bucket = unique("two-faced");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (p, _audit) =
        aws_pipeline_with("typed-two-faced", &endpoint(), &[fixture("typed-s3")]).await;
    let r = process_one(
        &p,
        finding("typed-two-faced", &bucket, "two-faced").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "failed", "{r:#}");
    let writes = writes(&r);
    assert_eq!(writes.len(), 1, "{r:#}");
    assert_eq!(writes[0]["result"], "denied");
    assert!(writes[0]["detail"]
        .as_str()
        .unwrap()
        .contains("no call of s3-bucket.put-public-access-block with these arguments"));
    assert_eq!(writes[0]["request"]["block_public_acls"], false);
    let read_back = &r["evidence"]["read_back"][0];
    assert_eq!(read_back["holds"], false);
    assert_eq!(read_back["expected"]["block_public_acls"], true);
    assert_eq!(read_back["actual"], Value::Null);
    assert_eq!(public_access_block(&s3, &bucket).await, None);
}

/// A 0.2 fixer imports the 0.2 interfaces only; linking it against 0.1 names would fail, and the
/// host picks the linker from what the component exports.
#[test]
fn a_typed_fixer_imports_only_its_kinds_0_2_interfaces() {
    let runtime = Runtime::new(RuntimeLimits::default(), None).unwrap();
    let f = runtime.load_file(&fixture("typed-s3")).unwrap();
    let salve: Vec<&String> = f
        .imports
        .interfaces
        .iter()
        .filter(|i| i.starts_with("salve:"))
        .collect();
    assert!(salve.iter().all(|i| i.ends_with("@0.2.0")), "{salve:?}");
    assert!(
        salve.contains(&&"salve:s3-bucket/capability@0.2.0".to_string()),
        "{salve:?}"
    );
}

/// A kind whose change applies asynchronously (RDS) is read back until the change shows, within
/// a bound: remediated once the instance reports private.
#[tokio::test]
async fn an_asynchronous_change_is_polled_until_it_holds() {
    use salve_kind_rds_instance::host::InMemoryRdsInstance;
    let db = Arc::new(InMemoryRdsInstance::public("orders", Some(2)));
    let p = rds_pipeline("rds-polled", db.clone());
    let r = process_one(
        &p,
        rds_finding("rds-polled", "orders").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "remediated", "{r:#}");
    let read_back = &r["evidence"]["read_back"][0];
    assert_eq!(read_back["holds"], true);
    assert_eq!(read_back["attempts"], 3, "{r:#}");
    assert_eq!(read_back["actual"]["publicly_accessible"], false);
    assert_eq!(db.writes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// When the bound runs out first, the finding fails with the last state the host read.
#[tokio::test]
async fn an_asynchronous_change_that_never_shows_fails_with_the_last_state() {
    use salve_kind_rds_instance::host::InMemoryRdsInstance;
    let db = Arc::new(InMemoryRdsInstance::public("billing", None));
    let p = rds_pipeline("rds-never", db.clone());
    let r = process_one(
        &p,
        rds_finding("rds-never", "billing").as_bytes(),
        ProcessOptions::default(),
    )
    .await;
    assert_eq!(r["status"], "failed", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("did not take effect"),
        "{r:#}"
    );
    let read_back = &r["evidence"]["read_back"][0];
    assert_eq!(read_back["attempts"], 4, "{r:#}");
    assert_eq!(read_back["actual"]["status"], "modifying");
    assert_eq!(read_back["actual"]["publicly_accessible"], true);
    assert_eq!(read_back["expected"]["publicly_accessible"], false);
}

/// RDS approved, with a short read-back bound so the test does not wait RDS's minutes.
fn rds_pipeline(
    name: &str,
    db: Arc<salve_kind_rds_instance::host::InMemoryRdsInstance>,
) -> salve::pipeline::Pipeline {
    let audit = scratch(name).join("audit.jsonl");
    let config = test_config(
        "[eligibility]\nresource-types = [\"AWS::RDS::DBInstance\"]\nallowed-actions = [\"rds:ModifyDBInstance\"]\n[read-back]\nmax-attempts = 4\ninterval-ms = 10\n",
    );
    pipeline_with(
        &[fixer("rds-private")],
        RuntimeLimits::default(),
        Box::new(FixedBackend(salve_kind_rds_instance::host::bind(db))),
        &audit,
        &config,
        salve::notify::Notifier::disabled(),
    )
}
