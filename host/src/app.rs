//! What a command sets up before it runs: the configuration, the fixers, the AWS backends, the
//! pipeline and, for the services, what they serve with. The command line parses its flags into
//! [`HostOptions`] and the arguments here, and prints what comes back; nothing here prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::audit::{AuditLog, Status};
use crate::audit_sink::S3AuditSink;
use crate::aws::{AwsBackends, AwsOptions};
use crate::config::SalveConfig;
use crate::fixer_test::{Case, FixerUnderTest};
use crate::notify::Notifier;
use crate::pipeline::{FixerSettings, Pipeline, PipelineBuilder, ProcessOptions, Processed};
use crate::registry::FixerRegistry;
use crate::runtime::inspect::FixerReport;
use crate::runtime::{Runtime, RuntimeLimits};

/// What every command that runs fixers is given.
pub struct HostOptions {
    /// The config file; without one, ./salve.toml if it exists, else the defaults.
    pub config: Option<PathBuf>,
    /// The directory of fixer components.
    pub fixers: PathBuf,
    /// Where compiled fixers are cached; the per-user default when not given.
    pub cache_dir: Option<PathBuf>,
    /// Every AWS call goes here instead (a local stand-in such as moto).
    pub endpoint_url: Option<String>,
    /// `<fixer>.<key>=<value>`, over the config file's `[fixers.<fixer>]`.
    pub settings: Vec<String>,
    pub limits: RuntimeLimits,
}

/// The cache directory asked for, else the per-user default.
pub fn cache_dir(asked: &Option<PathBuf>) -> Option<PathBuf> {
    asked.clone().or_else(crate::runtime::cache::default_dir)
}

fn parse_settings(raw: &[String], mut settings: FixerSettings) -> Result<FixerSettings> {
    for s in raw {
        let (key, value) = s
            .split_once('=')
            .with_context(|| format!("--setting {s:?} is not FIXER.KEY=VALUE"))?;
        let (fixer, key) = key
            .split_once('.')
            .with_context(|| format!("--setting {s:?} is not FIXER.KEY=VALUE"))?;
        settings
            .entry(fixer.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    Ok(settings)
}

/// The config file named, else ./salve.toml, else the defaults (which allowlist no account).
pub fn load_config(path: Option<&Path>) -> Result<SalveConfig> {
    match path {
        Some(p) => SalveConfig::load(p),
        None if Path::new("salve.toml").exists() => SalveConfig::load(Path::new("salve.toml")),
        None => {
            tracing::warn!("no salve.toml: using the defaults, which allowlist no account");
            Ok(SalveConfig::default())
        }
    }
}

/// A payload as read from a file or stdin: at most the ingest limit is kept, but the whole input
/// is counted and hashed, so an oversized payload's record names its real size and digest.
pub struct Input {
    pub bytes: Vec<u8>,
    pub total: u64,
    pub sha256: String,
}

impl Input {
    /// Reads `input`, a file path or `-` for stdin.
    pub fn read(input: &str) -> Result<Input> {
        use sha2::{Digest, Sha256};
        let limit = crate::ingest::MAX_PAYLOAD_BYTES;
        let mut reader: Box<dyn Read> = if input == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(input)
                    .with_context(|| format!("reading the finding from {input}"))?,
            )
        };
        let mut hasher = Sha256::new();
        let (mut bytes, mut total) = (Vec::new(), 0u64);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reading the finding from {input}"))
                }
            };
            hasher.update(&chunk[..n]);
            total += n as u64;
            let room = (limit + 1).saturating_sub(bytes.len()).min(n);
            bytes.extend_from_slice(&chunk[..room]);
        }
        Ok(Input {
            bytes,
            total,
            sha256: crate::audit::hex(&hasher.finalize()),
        })
    }

    /// Processes the payload, showing `each` every record as soon as it is durable; an oversized
    /// payload is recorded as rejected with its real size, and is not parsed.
    pub async fn process(
        &self,
        pipeline: &Pipeline,
        options: ProcessOptions,
        mut each: impl FnMut(Processed),
    ) -> Result<()> {
        if self.total > crate::ingest::MAX_PAYLOAD_BYTES as u64 {
            let reason = format!(
                "payload is {} bytes, over the {}-byte limit",
                self.total,
                crate::ingest::MAX_PAYLOAD_BYTES
            );
            each(pipeline.reject(&self.sha256, reason, options).await?);
            return Ok(());
        }
        pipeline
            .process_delivery_each(&self.bytes, options, None, each)
            .await
    }
}

/// What a pipeline is built for, which decides what it needs.
pub enum Purpose {
    /// Runs fixers and records every outcome (process, approve, rollback, the queue modes):
    /// the fixer directory must exist, and intents an earlier run left open are settled first.
    Run(AuditLog),
    /// Reads and records without fixing (drift, break-glass, iac sync): a check of Terraform
    /// alone needs no fixer installed.
    Check(AuditLog),
    /// Writes nothing and changes nothing (explain): ingest and triage still work on a machine
    /// with no fixers installed yet.
    Explain,
}

/// A built pipeline and what was built beside it.
pub struct Built {
    pub pipeline: Pipeline,
    /// salve's own AWS config (queues, the audit sink), which never reaches a fixer.
    pub sdk_config: aws_config::SdkConfig,
    pub config: SalveConfig,
    /// The session maker, which drift reads with.
    pub aws: Arc<AwsBackends>,
}

/// Builds the pipeline for `purpose` from `host`.
pub async fn build(host: &HostOptions, purpose: Purpose) -> Result<Built> {
    let config = load_config(host.config.as_deref())?;
    let mut builder = PipelineBuilder::new(&config)
        .limits(host.limits.clone())
        .cache_dir(cache_dir(&host.cache_dir))
        .settings(parse_settings(&host.settings, config.fixers.clone())?);
    let fixers_optional = !matches!(purpose, Purpose::Run(_));
    if fixers_optional && !host.fixers.exists() {
        tracing::warn!(
            "no fixers are installed ({} does not exist); {}",
            host.fixers.display(),
            if matches!(purpose, Purpose::Explain) {
                "explaining ingest and triage only"
            } else {
                "the fixes salve made cannot be checked again"
            }
        );
    } else {
        builder = builder.fixer_dir(&host.fixers);
    }
    let aws = Arc::new(
        AwsBackends::load(
            AwsOptions {
                endpoint_url: host.endpoint_url.clone(),
            },
            &config.deployment,
            config.account_roles(),
        )
        .await,
    );
    let sdk_config = aws.sdk_config().clone();
    builder = builder.notifier(Notifier::new(
        config.notify.clone(),
        Some(sdk_config.clone()),
    ));
    let reconcile = !matches!(purpose, Purpose::Explain);
    if let Purpose::Run(log) | Purpose::Check(log) = purpose {
        builder = builder.audit_log(log);
    }
    let mut pipeline = builder.build(Box::new(aws.clone()))?;
    pipeline.read_state_with(crate::aws::s3_client(
        &sdk_config,
        host.endpoint_url.is_some(),
    ));
    if reconcile {
        for p in pipeline.reconcile_open_intents().await? {
            tracing::warn!(
                finding_id = p.entry.finding_id.as_deref().unwrap_or("?"),
                status = p.entry.status.map(Status::as_str).unwrap_or("?"),
                "settled an intent an earlier run left without a terminal record"
            );
        }
    }
    Ok(Built {
        pipeline,
        sdk_config,
        config,
        aws,
    })
}

/// Builds the pipeline that runs fixers and writes to `audit_log`.
pub async fn build_to_run(host: &HostOptions, audit_log: &Path) -> Result<Built> {
    build(host, Purpose::Run(AuditLog::open(audit_log)?)).await
}

/// [`build_to_run`] for the queue modes (Lambda, the daemon, replay): they call SQS (and S3 for
/// the sink) with salve's own configuration, so they need a region from the start.
async fn build_for_queue(host: &HostOptions, audit_log: &Path) -> Result<Built> {
    let built = build_to_run(host, audit_log).await?;
    require_region(&built.sdk_config)?;
    Ok(built)
}

/// salve's own AWS calls (queues, the audit sink, `s3://` logs) have no finding to take a
/// region from.
fn require_region(sdk: &aws_config::SdkConfig) -> Result<()> {
    if sdk.region().is_none() {
        bail!("no AWS region is configured: set AWS_REGION (or a region in the AWS profile)");
    }
    Ok(())
}

/// What `drift`, `break-glass` and `iac sync` read and record with. No fixer directory is
/// needed: without one, the fixes salve made are reported as unreadable.
pub struct DriftContext {
    pub pipeline: Pipeline,
    pub config: SalveConfig,
    aws: Arc<AwsBackends>,
    audit_log: PathBuf,
}

impl DriftContext {
    pub async fn open(host: &HostOptions, audit_log: &Path) -> Result<DriftContext> {
        let built = build(host, Purpose::Check(AuditLog::open(audit_log)?)).await?;
        Ok(DriftContext {
            pipeline: built.pipeline,
            config: built.config,
            aws: built.aws,
            audit_log: audit_log.to_path_buf(),
        })
    }

    pub fn drift(&self) -> crate::drift::Drift<'_> {
        crate::drift::Drift {
            pipeline: &self.pipeline,
            aws: &self.aws,
            config: &self.config.drift,
            audit_log: &self.audit_log,
        }
    }
}

/// How the Lambda runs, beside the host's options.
pub struct LambdaOptions {
    pub audit_log: PathBuf,
    pub max_concurrency: usize,
    /// `s3://bucket/prefix`, where records go to outlive the environment.
    pub audit_sink: Option<String>,
    /// No message is started once less than this is left before the deadline.
    pub deadline_margin: Duration,
}

/// Runs the Lambda: everything is checked at init, so a broken deployment fails there, loudly
/// (and is reported to the runtime API), and not per batch after fixes were applied.
pub async fn lambda(host: &HostOptions, options: LambdaOptions) -> Result<()> {
    let (pipeline, sink) = match lambda_init(host, &options).await {
        Ok(ready) => ready,
        Err(e) => {
            crate::modes::lambda_init_error::report(&format!("{e:#}")).await;
            return Err(e);
        }
    };
    crate::modes::lambda::run(
        pipeline,
        options.max_concurrency,
        options.deadline_margin,
        sink,
    )
    .await
}

async fn lambda_init(
    host: &HostOptions,
    options: &LambdaOptions,
) -> Result<(Arc<Pipeline>, Option<Arc<S3AuditSink>>)> {
    let Built {
        mut pipeline,
        sdk_config,
        ..
    } = build_for_queue(host, &options.audit_log).await?;
    if pipeline.registry().ready.is_empty() {
        bail!(
            "no fixer is ready in {} ({} refused): every finding would fail; ship the fixers in the package and set SALVE_FIXERS",
            host.fixers.display(),
            pipeline.registry().refused.len()
        );
    }
    let sink = match &options.audit_sink {
        Some(url) => {
            let sink = Arc::new(S3AuditSink::new(
                crate::aws::s3_client(&sdk_config, host.endpoint_url.is_some()),
                url,
                &options.audit_log,
            )?);
            // Proves the bucket is there, and picks up after what a crashed process shipped.
            sink.resume().await?;
            pipeline.ship_intents_to(sink.clone());
            Some(sink)
        }
        None => {
            tracing::warn!(
                "no --audit-sink: audit records stay in {}, which does not outlive this environment",
                options.audit_log.display()
            );
            None
        }
    };
    let compiled = pipeline
        .registry()
        .ready
        .iter()
        .filter(|f| f.artifact == crate::runtime::ArtifactSource::Compiled)
        .count();
    if compiled > 0 {
        // A shipped cache built on another CPU (its key includes the CPU features) or by
        // another build is not used, and /var/task is read-only: every cold start compiles.
        tracing::warn!(
            compiled,
            engine = format!("{:016x}", pipeline.engine_hash()),
            "fixers were compiled at init, not loaded from the cache: build the cache with `salve fixer precompile` on the Lambda's architecture, with this binary, and ship it with its key"
        );
    }
    tracing::info!(
        fixers = pipeline.registry().ready.len(),
        refused = pipeline.registry().refused.len(),
        "init done; waiting for invocations"
    );
    Ok((Arc::new(pipeline), sink))
}

/// How the daemon runs, beside the host's options.
pub struct DaemonOptions {
    pub audit_log: PathBuf,
    /// Address for GET /healthz and GET /metrics; `off` serves neither.
    pub listen: String,
    pub queue: crate::modes::daemon::DaemonOptions,
}

/// Runs the daemon until `shutdown` resolves (or, draining, until the queue is empty).
pub async fn daemon(
    host: &HostOptions,
    options: DaemonOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    use crate::modes::{daemon, status_endpoint};
    let Built {
        pipeline,
        sdk_config,
        ..
    } = build_for_queue(host, &options.audit_log).await?;
    let metrics = Arc::new(crate::metrics::Metrics::default());
    metrics
        .track_program(&options.audit_log)
        .context("reading the audit log for the program gauges on /metrics")?;
    let health = Arc::new(daemon::Health::default());
    let endpoint = if options.listen == "off" {
        None
    } else {
        let listener = status_endpoint::bind(&options.listen).await?;
        tracing::info!(address = %listener.local_addr()?, "serving /healthz and /metrics");
        Some(tokio::spawn(status_endpoint::serve(
            listener,
            metrics.clone(),
            health.clone(),
        )))
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    daemon::run(
        Arc::new(pipeline),
        sqs,
        options.queue,
        metrics,
        health,
        shutdown,
    )
    .await?;
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    Ok(())
}

/// Replays a dead-letter queue's messages (see [`crate::modes::replay`]).
pub async fn replay(
    host: &HostOptions,
    audit_log: &Path,
    options: &crate::modes::replay::ReplayOptions,
) -> Result<crate::modes::replay::ReplayReport> {
    let Built {
        pipeline,
        sdk_config,
        ..
    } = build_for_queue(host, audit_log).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    crate::modes::replay::replay(Arc::new(pipeline), &sqs, options).await
}

/// A `--since`/`--until` bound; a bare date is the start of that day, or with `end_of_day` its
/// last millisecond.
pub fn report_bound(flag: &str, text: &str, end_of_day: bool) -> Result<i64> {
    let at = crate::timestamp::parse(text).with_context(|| {
        format!("{flag} {text:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-11-20T08:00:00Z)")
    })?;
    Ok(if end_of_day && text.trim().len() == 10 {
        at + 86_400_000 - 1
    } else {
        at
    })
}

/// Reads every audit log named (files, directories, or `s3://bucket/prefix`) into a scorecard.
pub async fn scorecard(
    logs: &[PathBuf],
    endpoint_url: Option<String>,
    options: crate::scorecard::ReportOptions,
) -> Result<crate::scorecard::Report> {
    let mut builder = crate::scorecard::Builder::new(options);
    let mut s3 = None;
    for log in logs {
        match log.to_str().filter(|l| l.starts_with("s3://")) {
            Some(url) => {
                let client = match &s3 {
                    Some(c) => c,
                    None => {
                        let aws = AwsOptions {
                            endpoint_url: endpoint_url.clone(),
                        };
                        let config = crate::aws::platform_config(&aws).await;
                        require_region(&config)?;
                        s3.insert(crate::aws::s3_client(&config, aws.endpoint_url.is_some()))
                    }
                };
                builder.read_s3(client, url).await?;
            }
            None => builder.read_path(log)?,
        }
    }
    Ok(builder.finish())
}

/// The fixers `salve fixer precompile` compiled into the cache, and the cache's identity.
pub struct Precompiled {
    pub registry: crate::registry::FixerRegistry,
    pub dir: PathBuf,
    pub engine_hash: u64,
    /// The key the cache is authenticated with, to ship beside it.
    pub key_file: Option<PathBuf>,
}

/// Compiles every fixer in `fixers` into the cache (the asked-for one, else the default).
pub fn precompile(fixers: &Path, cache_dir: &Option<PathBuf>) -> Result<Precompiled> {
    let dir =
        self::cache_dir(cache_dir).context("no cache directory: pass --cache-dir or set HOME")?;
    let runtime = Runtime::new(RuntimeLimits::default(), Some(dir.clone()))?;
    if !runtime.has_disk_cache() {
        bail!(
            "the cache {} cannot be used (see the warning above); nothing was compiled",
            dir.display()
        );
    }
    Ok(Precompiled {
        registry: FixerRegistry::load_dir(&runtime, fixers)?,
        dir,
        engine_hash: runtime.engine_hash(),
        key_file: crate::runtime::cache::key_file(),
    })
}

/// What a fixer component claims and is allowed, compiled afresh (no cache), so the report is
/// about exactly these bytes; with `installed`, which installed fixers claim the same findings.
pub fn inspect(fixer: &Path, installed: Option<&Path>) -> Result<FixerReport> {
    let bytes = std::fs::read(fixer).with_context(|| format!("reading {}", fixer.display()))?;
    let runtime = Runtime::new(RuntimeLimits::default(), None)?;
    let mut report = runtime
        .inspect(&bytes)
        .with_context(|| format!("inspecting {}", fixer.display()))?;
    if let Some(dir) = installed {
        let registry = FixerRegistry::load_dir(&runtime, dir)?;
        report.overlaps = registry.claims_shared_with(
            &report.sha256,
            &report.name,
            &report.resource_type,
            &report.controls,
        );
    }
    Ok(report)
}

/// The customer-account role for the fixers in `fixers`: its permissions policy (the union of
/// their actions, on `account`'s ARNs when named, and the Tagging API read when `config`'s
/// `[metadata] tag-read` uses it) and its trust policy (the platform role, with the external
/// ID, or the placeholder `<external-id>` when none is given).
pub fn customer_role(
    config: Option<&Path>,
    fixers: &Path,
    cache_dir: &Option<PathBuf>,
    platform_role_arn: &str,
    external_id: Option<&str>,
    account: Option<&str>,
) -> Result<(serde_json::Value, serde_json::Value)> {
    use crate::credentials::iam;
    let tag_read = load_config(config)?.metadata.tag_read;
    let runtime = Runtime::new(RuntimeLimits::default(), self::cache_dir(cache_dir))?;
    let registry = FixerRegistry::load_dir(&runtime, fixers)?;
    // A refused fixer's actions cannot be reviewed, so no policy is written without them.
    if let Some(r) = registry.refused.first() {
        bail!(
            "fixer {} was refused, so its actions cannot be reviewed: {}",
            r.path.display(),
            r.error
        );
    }
    if registry.ready.is_empty() {
        bail!("no fixers in {}", fixers.display());
    }
    Ok((
        iam::customer_role_policy(&registry.ready, account, tag_read),
        iam::customer_trust_policy(platform_role_arn, external_id.unwrap_or("<external-id>")),
    ))
}

/// The platform role's policy: AssumeRole on the configured customer roles, the queues, the
/// configured notification topics, and the audit sink.
pub fn platform_role(
    config: Option<&Path>,
    queue_arns: &[String],
    audit_sink: Option<&str>,
) -> Result<serde_json::Value> {
    let config = load_config(config)?;
    let roles: Vec<String> = config
        .accounts
        .values()
        .filter_map(|a| a.role_arn.clone())
        .collect();
    let topics: Vec<String> = config
        .notify
        .routes
        .values()
        .filter_map(|r| r.sns_topic_arn.clone())
        .collect();
    let sink = audit_sink
        .map(crate::audit_sink::parse_s3_url)
        .transpose()?;
    Ok(crate::credentials::iam::platform_role_policy(
        &roles,
        queue_arns,
        &topics,
        sink.as_ref().map(|(b, p)| (b.as_str(), p.as_str())),
    ))
}

/// What `salve fixer test` runs: a fixer crate (built first, its `cases` directory by default)
/// or a built component with the case directories named.
pub struct FixerTest {
    pub fixer: PathBuf,
    pub cases: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

impl FixerTest {
    /// The fixer, loaded, and its cases.
    pub fn load(&self) -> Result<(FixerUnderTest, Vec<Case>)> {
        let (wasm, cases) = if self.fixer.is_dir() {
            let wasm = crate::fixer_test::build_crate(&self.fixer)?;
            let cases = if self.cases.is_empty() {
                vec![self.fixer.join("cases")]
            } else {
                self.cases.clone()
            };
            (wasm, cases)
        } else {
            if self.cases.is_empty() {
                bail!("name the cases to run: salve fixer test <fixer.wasm> <case dir>...");
            }
            (self.fixer.clone(), self.cases.clone())
        };
        let under_test = FixerUnderTest::load(&wasm, cache_dir(&self.cache_dir))?;
        Ok((under_test, crate::fixer_test::find_cases(&cases)?))
    }
}

/// Records each case's traffic against AWS, or against `endpoint_url` when given, showing `each`
/// what was recorded as each case finishes.
pub async fn record_cases(
    under_test: &FixerUnderTest,
    cases: &mut [Case],
    endpoint_url: Option<String>,
    mut each: impl FnMut(String),
) -> Result<()> {
    for case in cases {
        // Recording sends signed requests with a session token: they go to AWS or to the
        // endpoint named on the command line, never to one a case file names.
        if case.spec.endpoint_url.is_some() && endpoint_url.is_none() {
            tracing::warn!(
                "{} names an endpoint; recording ignores it and records against AWS (pass --endpoint-url to record elsewhere)",
                case.dir.display()
            );
        }
        case.spec.endpoint_url = endpoint_url.clone();
        each(under_test.record(case).await?);
    }
    Ok(())
}
