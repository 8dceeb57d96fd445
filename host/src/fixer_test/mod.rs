//! `salve fixer test`: runs a fixer's cases through the production pipeline (the real capability
//! code, the real AWS SDK, the per-phase sessions and the runtime's least-privilege checks) with
//! the SDK's HTTP client replaced by a recording, the clock pinned to the recording's time, and
//! no credentials. `--record` runs the same path against a live endpoint and writes the case.
//!
//! A case is a directory:
//! - `case.json`: the finding, fixer settings, when and against what it was recorded, and the
//!   expectations (status, decision, planned changes, capability calls, rollback, any other
//!   audit field);
//! - `traffic.json`: the recorded HTTP exchanges in the smithy DVR format, scrubbed.

pub mod dvr;
pub mod scaffold;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{AuditEntry, AuditLog};
use crate::aws::{AwsBackends, AwsOptions};
use crate::capabilities::CapabilityCall;
use crate::config::SalveConfig;
use crate::credentials::AccountRole;
use crate::pipeline::{Pipeline, PipelineBuilder, ProcessOptions};
use crate::runtime::{Runtime, RuntimeLimits};
use dvr::{NetworkTraffic, RecordingClient, ReplayingClient};

/// `case.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the traffic was recorded (RFC 3339); the replay's clock is pinned to it, so the
    /// recorded session credentials are still valid.
    pub recorded_at: String,
    /// The endpoint the traffic was recorded against; `None` for AWS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The finding, in canonical form.
    pub finding: Value,
    /// Fixer settings, as `[fixers.<name>]` would give them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub expect: Expectations,
}

/// What the case asserts. Every field is optional; an absent one is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The decision's verdict (`remediate`, `review`, `skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The plan's changes: IAM action, and the typed call (0.2) or the after value (0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Value>>,
    /// Every capability call, as `<phase> <action> <result>[: <detail>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Value>,
    /// Any other top-level audit record fields, compared exactly (`reason`, `retryable`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit: BTreeMap<String, Value>,
}

pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub spec: CaseSpec,
}

impl Case {
    pub fn load(dir: &Path) -> Result<Case> {
        let path = dir.join("case.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let spec: CaseSpec =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Case {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
            dir: dir.to_path_buf(),
            spec,
        })
    }

    fn traffic(&self) -> Result<NetworkTraffic> {
        let path = self.dir.join("traffic.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Case directories under the given paths: a path holding `case.json` is a case, any other
/// directory is searched one level down. Sorted by path.
pub fn find_cases(paths: &[PathBuf]) -> Result<Vec<Case>> {
    let mut dirs = Vec::new();
    for p in paths {
        if p.join("case.json").exists() {
            dirs.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p)
            .with_context(|| format!("reading case directory {}", p.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.path().join("case.json").exists() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "no cases (directories with a case.json) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    dirs.iter().map(|d| Case::load(d)).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub duration: Duration,
}

/// What one run of a case produced.
struct Observed {
    entry: AuditEntry,
}

impl Observed {
    fn expectations(&self, keep_audit: &BTreeMap<String, Value>) -> Expectations {
        let e = &self.entry;
        let record = serde_json::to_value(e).unwrap_or(Value::Null);
        Expectations {
            status: e.status.map(|s| s.as_str().to_string()),
            decision: e
                .decision
                .as_ref()
                .and_then(|d| crate::text::spelled(&d.decision.verdict)),
            changes: e.plan.as_ref().map(|p| {
                p.changes
                    .iter()
                    .map(|c| match &c.call {
                        // A typed call (contract 0.2) is the change itself; a 0.1 change is
                        // known by its action and declared after-state.
                        Some(call) => serde_json::json!({ "action": c.action, "call": call }),
                        None => serde_json::json!({ "action": c.action, "after": c.after }),
                    })
                    .collect()
            }),
            calls: Some(e.calls.iter().map(call_line).collect()),
            rollback: e.rollback.clone(),
            // Extra fields a case pins are compared as the record spells them.
            audit: keep_audit
                .keys()
                .map(|k| (k.clone(), record.get(k).cloned().unwrap_or(Value::Null)))
                .collect(),
        }
    }
}

fn call_line(call: &CapabilityCall) -> String {
    let mut line = format!(
        "{} {} {}",
        call.phase.as_str(),
        call.action,
        call.result.as_str()
    );
    if let Some(detail) = &call.detail {
        line.push_str(": ");
        line.push_str(detail);
    }
    line
}

fn pretty(v: &impl Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Every difference between what the case expects and what happened, as readable text.
pub fn compare(expected: &Expectations, actual: &Expectations) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, e: Option<String>, a: String| {
        if let Some(e) = e {
            if e != a {
                out.push(format!(
                    "{name} differs:\n  expected: {}\n  actual:   {}",
                    indent(&e),
                    indent(&a)
                ));
            }
        }
    };
    field(
        "status",
        expected.status.clone(),
        actual.status.clone().unwrap_or_default(),
    );
    field(
        "decision",
        expected.decision.clone(),
        actual.decision.clone().unwrap_or_default(),
    );
    field(
        "changes",
        expected.changes.as_ref().map(pretty),
        pretty(&actual.changes.clone().unwrap_or_default()),
    );
    field(
        "rollback",
        expected.rollback.as_ref().map(pretty),
        pretty(&actual.rollback),
    );
    if let Some(calls) = &expected.calls {
        let actual_calls = actual.calls.clone().unwrap_or_default();
        if *calls != actual_calls {
            let mut text = String::from("calls differ (- expected, + actual):");
            let len = calls.len().max(actual_calls.len());
            for i in 0..len {
                match (calls.get(i), actual_calls.get(i)) {
                    (Some(e), Some(a)) if e == a => {
                        let _ = write!(text, "\n    {e}");
                    }
                    (e, a) => {
                        if let Some(e) = e {
                            let _ = write!(text, "\n  - {e}");
                        }
                        if let Some(a) = a {
                            let _ = write!(text, "\n  + {a}");
                        }
                    }
                }
            }
            out.push(text);
        }
    }
    for (key, e) in &expected.audit {
        let a = actual.audit.get(key).cloned().unwrap_or(Value::Null);
        if *e != a {
            out.push(format!(
                "audit field {key} differs:\n  expected: {}\n  actual:   {}",
                indent(&pretty(e)),
                indent(&pretty(&a))
            ));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n            ")
}

/// How a run talks to AWS.
enum Traffic {
    Replay(ReplayingClient),
    Record(RecordingClient),
}

/// The fixer under test, compiled once and shared by every case.
pub struct FixerUnderTest {
    pub wasm: PathBuf,
    pub name: String,
    /// Its kind and write actions: a case approves exactly these, so a kind that is opt-in in
    /// production is tested the same as the rest.
    kind: &'static str,
    writes: Vec<&'static str>,
    cache_dir: Option<PathBuf>,
}

impl FixerUnderTest {
    /// Loads (and compiles into `cache_dir`) the component, refusing it as production would.
    pub fn load(wasm: &Path, cache_dir: Option<PathBuf>) -> Result<FixerUnderTest> {
        let runtime = Runtime::new(RuntimeLimits::default(), cache_dir.clone())?;
        let fixer = runtime
            .load_file(wasm)
            .with_context(|| format!("loading {}", wasm.display()))?;
        Ok(FixerUnderTest {
            wasm: wasm.to_path_buf(),
            name: fixer.manifest.name.clone(),
            kind: fixer.resource_type.name,
            writes: fixer
                .imports
                .functions
                .iter()
                .filter(|f| f.access == crate::kinds::Access::Write)
                .map(|f| f.iam_action)
                .collect(),
            cache_dir,
        })
    }

    fn pipeline(&self, case: &Case, sdk: SdkConfig, audit: &Path) -> Result<Pipeline> {
        let finding = crate::finding::Finding::from_canonical_value(case.spec.finding.clone())
            .context("the case's finding")?;
        let account = finding.resource.account_id.clone();
        let writes: Vec<String> = self.writes.iter().map(|a| format!("{a:?}")).collect();
        let config = SalveConfig::parse(
            &format!(
                "deployment = \"salve-fixer-test\"\n[accounts.\"{account}\"]\nname = \"case\"\nrole-arn = \"{}\"\n[eligibility]\nresource-types = [{:?}]\nallowed-actions = [{}]\n",
                role_arn(&account),
                self.kind,
                writes.join(", ")
            ),
            "fixer test salve.toml",
            &case.dir,
        )?;
        let roles: BTreeMap<String, AccountRole> = BTreeMap::from([(
            account.clone(),
            AccountRole {
                role_arn: role_arn(&account),
                external_id: None,
            },
        )]);
        let backends = AwsBackends::from_config(
            sdk,
            AwsOptions {
                endpoint_url: case.spec.endpoint_url.clone(),
            },
            "salve-fixer-test",
            roles,
        );
        let mut settings = config.fixers.clone();
        settings.insert(self.name.clone(), case.spec.settings.clone());
        let pipeline = PipelineBuilder::new(&config)
            .cache_dir(self.cache_dir.clone())
            .fixer_files(std::slice::from_ref(&self.wasm))
            .settings(settings)
            .audit_log(AuditLog::open(audit)?)
            .build(Box::new(backends))?;
        // The component loaded once already; one that no longer loads is the case's failure.
        if let Some(refused) = pipeline.registry().refused.first() {
            bail!("{}: {}", self.wasm.display(), refused.error);
        }
        Ok(pipeline)
    }

    async fn run(&self, case: &Case, sdk: SdkConfig) -> Result<Observed> {
        let scratch = std::env::temp_dir().join(format!(
            "salve-fixer-test-{}-{}",
            std::process::id(),
            case.name
        ));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let audit = scratch.join("audit.jsonl");
        let _ = std::fs::remove_file(&audit);
        let result = async {
            let pipeline = self.pipeline(case, sdk, &audit)?;
            let payload = serde_json::to_vec(&case.spec.finding)?;
            let mut processed = pipeline
                .process_payload(&payload, ProcessOptions::default())
                .await?;
            if processed.len() != 1 {
                bail!(
                    "the case's finding produced {} records, not one",
                    processed.len()
                );
            }
            Ok(Observed {
                entry: processed.remove(0).entry,
            })
        }
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// Replays one case and reports every way it differs from its expectations.
    pub async fn replay(&self, case: &Case) -> CaseResult {
        let started = Instant::now();
        let failures = match self.replay_failures(case).await {
            Ok(f) => f,
            Err(e) => vec![format!("{e:#}")],
        };
        CaseResult {
            name: case.name.clone(),
            passed: failures.is_empty(),
            failures,
            duration: started.elapsed(),
        }
    }

    async fn replay_failures(&self, case: &Case) -> Result<Vec<String>> {
        let traffic = case.traffic()?;
        let replay = ReplayingClient::new(&traffic)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("reading {}/traffic.json", case.dir.display()))?;
        let sdk = sdk_config(case, Traffic::Replay(replay.clone())).await?;
        let observed = self.run(case, sdk).await?;
        // An unrecorded request is the root cause of whatever else went wrong; say it alone.
        if let Some(m) = replay.mismatch() {
            return Ok(vec![m.to_string()]);
        }
        let mut failures = compare(
            &case.spec.expect,
            &observed.expectations(&case.spec.expect.audit),
        );
        let unused = replay.unused();
        if !unused.is_empty() {
            failures.push(format!(
                "the fixer made fewer requests than were recorded; never asked for:\n  {}",
                unused.join("\n  ")
            ));
        }
        Ok(failures)
    }

    /// Runs the case against a live endpoint and writes its traffic and observed expectations.
    pub async fn record(&self, case: &mut Case) -> Result<String> {
        let recorder = RecordingClient::new(crate::aws::shared_https_client());
        let sdk = sdk_config(case, Traffic::Record(recorder.clone())).await?;
        case.spec.recorded_at = crate::audit::rfc3339(SystemTime::now());
        let observed = self.run(case, sdk).await?;
        let traffic = recorder.traffic(Some(format!(
            "salve fixer test --record: {} for case {}",
            self.name, case.name
        )));
        let exchanges = traffic.exchanges().map_err(anyhow::Error::msg)?.len();
        std::fs::write(case.dir.join("traffic.json"), pretty(&traffic) + "\n")
            .with_context(|| format!("writing {}/traffic.json", case.dir.display()))?;
        case.spec.expect = observed.expectations(&case.spec.expect.audit);
        std::fs::write(case.dir.join("case.json"), pretty(&case.spec) + "\n")
            .with_context(|| format!("writing {}/case.json", case.dir.display()))?;
        Ok(format!(
            "recorded {}: {exchanges} exchange(s), status {}",
            case.name,
            case.spec.expect.status.as_deref().unwrap_or("?")
        ))
    }
}

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/salve-fixer-test")
}

async fn sdk_config(case: &Case, traffic: Traffic) -> Result<SdkConfig> {
    let region = case
        .spec
        .finding
        .pointer("/resource/region")
        .and_then(Value::as_str)
        .unwrap_or("us-east-1")
        .to_string();
    match traffic {
        Traffic::Replay(client) => {
            let at = aws_smithy_types::DateTime::from_str(
                &case.spec.recorded_at,
                aws_smithy_types::date_time::Format::DateTime,
            )
            .map_err(|e| anyhow::anyhow!("recorded_at {:?}: {e}", case.spec.recorded_at))?;
            let at = SystemTime::try_from(at)
                .map_err(|e| anyhow::anyhow!("recorded_at {:?}: {e}", case.spec.recorded_at))?;
            let mut b = SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region))
                // Never used to reach AWS: only to sign requests nobody checks.
                .credentials_provider(SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(
                        "SALVEFIXERTEST",
                        "salve-fixer-test",
                        None,
                        None,
                        "salve-fixer-test",
                    ),
                ))
                .http_client(client)
                .time_source(aws_smithy_async::time::StaticTimeSource::new(at))
                .sleep_impl(
                    aws_smithy_async::rt::sleep::default_async_sleep()
                        .context("a sleep implementation")?,
                )
                // Recorded retries replay without waiting out their backoff.
                .retry_config(
                    aws_config::retry::RetryConfig::standard()
                        .with_initial_backoff(Duration::from_millis(1))
                        .with_max_backoff(Duration::from_millis(1)),
                );
            if let Some(url) = &case.spec.endpoint_url {
                b = b.endpoint_url(url);
            }
            Ok(b.build())
        }
        Traffic::Record(client) => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region))
                .http_client(client);
            if let Some(url) = &case.spec.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            Ok(loader.load().await)
        }
    }
}

/// `N passed, M failed`.
pub fn summary(results: &[CaseResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    format!("{passed} passed, {} failed", results.len() - passed)
}

pub fn render(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for r in results {
        let _ = writeln!(
            out,
            "{} {} ({:.0} ms)",
            if r.passed { "PASS" } else { "FAIL" },
            r.name,
            r.duration.as_secs_f64() * 1000.0
        );
        for f in &r.failures {
            for line in f.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let _ = writeln!(out, "{}", summary(results));
    out
}

/// JUnit XML, the common denominator of CI systems.
pub fn junit(fixer: &str, results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| !r.passed).count();
    let total: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"salve fixer test {}\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        xml(fixer),
        results.len()
    );
    for r in results {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(fixer),
            xml(&r.name),
            r.duration.as_secs_f64()
        );
        if r.passed {
            out.push_str("/>\n");
        } else {
            let text = r.failures.join("\n");
            let first = r
                .failures
                .first()
                .map(|f| f.lines().next().unwrap_or(""))
                .unwrap_or("");
            let _ = write!(
                out,
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                xml(first),
                xml(&text)
            );
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fixer crate built for wasm32-wasip2 (release), and the component it produced.
pub fn build_crate(dir: &Path) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let output =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running cargo build for {}", manifest.display()))?;
    if !output.status.success() {
        bail!("cargo build failed for {}", manifest.display());
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(files) = message["filenames"].as_array() {
            for f in files.iter().filter_map(Value::as_str) {
                if f.ends_with(".wasm") {
                    wasm = Some(PathBuf::from(f));
                }
            }
        }
    }
    wasm.with_context(|| format!("cargo build for {} produced no .wasm", manifest.display()))
}
