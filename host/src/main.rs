//! The `salve` command line. Everything it does lives in the library; this file only parses
//! arguments and prints.

// The pipeline's futures are deep (see the library's lib.rs).
#![recursion_limit = "256"]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use salve::audit::{self, AuditLog, Status};
use salve::aws::{AwsBackends, AwsOptions};
use salve::config::SalveConfig;
use salve::notify::Notifier;
use salve::pipeline::{
    Effect, FixerSettings, Pipeline, PipelineBuilder, ProcessOptions, Processed,
};
use salve::registry::FixerRegistry;
use salve::report;
use salve::runtime::{Runtime, RuntimeLimits};
use salve::text::escape_control;

#[derive(Parser)]
#[command(
    name = "salve",
    version,
    about = "Closes cloud security findings with sandboxed WebAssembly fixers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process a payload (a finding in any supported format or envelope), from a file or `-`.
    Process(ProcessArgs),
    /// Show how a payload would be decided, without changing anything or writing an audit
    /// record: the source, the normalised finding, every check and Rego rule, the risk score,
    /// the chosen fixer and its plan (a dry run, so read calls do reach AWS).
    Explain(ExplainArgs),
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run as an AWS Lambda function behind an SQS event source mapping (also chosen
    /// automatically when AWS_LAMBDA_RUNTIME_API is set, so the binary can be the `bootstrap`).
    Lambda(LambdaArgs),
    /// Consume an SQS queue until SIGTERM or SIGINT: long polling, bounded concurrency,
    /// visibility extension, delete only after the audit record is durable, /healthz and /metrics.
    Daemon(DaemonArgs),
    /// Take messages off a dead-letter queue: send them back to a queue (--to) or process them
    /// here. The replay is written to the audit log.
    Replay(ReplayArgs),
    /// Work with fixer components.
    Fixer {
        #[command(subcommand)]
        command: FixerCommand,
    },
    /// List the findings waiting for approval: the latest record of each is a review with a
    /// plan. Oldest first, with the plan and why it went to review.
    Pending(PendingArgs),
    /// Approve a finding that waits for approval: check and plan again against the resource as
    /// it is now, refuse if the plan differs from the reviewed one (unless --accept-new-plan),
    /// run every guardrail again (the allowlists cannot be overridden), apply, and record who
    /// approved which review record.
    Approve(ApproveArgs),
    /// Undo a fix salve made, with the rollback data its record keeps: refused when the
    /// resource changed since the fix or the fixer declares no rollback; otherwise the fixer
    /// plans the inverse calls, every guardrail runs again, and the calls are applied through a
    /// write session limited to them and recorded with a link to the fix.
    Rollback(RollbackArgs),
    /// Compare live resources with what salve fixed and what Terraform declares.
    Drift {
        #[command(subcommand)]
        command: DriftCommand,
    },
    /// Terraform: what happened to the pull requests salve opened.
    Iac {
        #[command(subcommand)]
        command: IacCommand,
    },
    /// Let a person change a resource by hand during an incident, for a bounded time.
    BreakGlass {
        #[command(subcommand)]
        command: BreakGlassCommand,
    },
    /// MTTR, recurrence and exception rate, the backlog, the weekly trend and the coverage,
    /// from audit logs (files, or directories of rotated logs).
    Report(ReportArgs),
    /// Print IAM policies (JSON that AWS accepts) for permission reviews.
    Iam {
        #[command(subcommand)]
        command: IamCommand,
    },
}

#[derive(Subcommand)]
enum IacCommand {
    /// Ask the forge about every finding whose latest record is `pull-request-opened`: a merged
    /// pull request is recorded as `pull-request-merged` (remediation ends at the merge), one
    /// closed without merge as `pull-request-closed` (the finding is open again).
    Sync {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
        audit_log: PathBuf,
        #[command(flatten)]
        host: HostArgs,
    },
}

#[derive(Subcommand)]
enum DriftCommand {
    /// Read every fixed and every Terraform-managed resource in scope (read-only sessions) and
    /// record what drifted, what agrees again, and break-glass windows that went overdue.
    Check(DriftArgs),
    /// The pipeline check: `check`, then exit 0 when clean (or every drift is under an open
    /// break-glass window, with a warning), 1 on drift, 2 when something could not be checked.
    Gate(DriftArgs),
}

#[derive(Args)]
struct DriftArgs {
    /// Only this account (repeatable).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Only this region (repeatable).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Only this `[[iac.terraform]]` workspace (repeatable).
    #[arg(long = "workspace")]
    workspaces: Vec<String>,
    /// Only this kind, e.g. AWS::EC2::SecurityGroup or security-group (repeatable).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Subcommand)]
enum BreakGlassCommand {
    /// Record who changes the resource by hand and why, open a reconciliation issue in its
    /// workspace's repository, and let `drift gate` pass for it until the window is due.
    Open {
        /// The resource's ARN.
        #[arg(long)]
        resource: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
        /// The incident ticket's URL.
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
        audit_log: PathBuf,
        #[command(flatten)]
        host: HostArgs,
    },
    /// End a resource's window.
    Close {
        #[arg(long)]
        resource: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
        #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
        audit_log: PathBuf,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Open, overdue and closed windows, newest first.
    List {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
        audit_log: PathBuf,
    },
}

#[derive(Subcommand)]
enum FixerCommand {
    /// Compiles every fixer in a directory into the cache, and prints each artifact's digest:
    /// the one command that fills a cache to ship (run it on the target's CPU architecture).
    Precompile {
        /// Directory of fixer components (*.wasm).
        #[arg(long, env = "SALVE_FIXERS", default_value = ".salve/fixers")]
        fixers: PathBuf,
        /// Where compiled fixers are cached (default: $XDG_CACHE_HOME/salve or ~/.cache/salve).
        #[arg(long, env = "SALVE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Scaffolds a fixer crate: Cargo.toml for wasm32-wasip2, src/lib.rs with check, plan and
    /// apply stubs, and one example case that passes as it is.
    New {
        name: String,
        /// A kind's type or interface name, e.g. AWS::S3::Bucket or s3-bucket; an unknown one lists
        /// every kind.
        #[arg(long)]
        resource_type: String,
        /// The control ID the fixer remediates (more can be added in src/lib.rs).
        #[arg(long, default_value = "CUSTOM.1")]
        control: String,
        /// Where to create the crate's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The salve-sdk crate to depend on (by default the one this salve was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Runs a fixer's cases offline: the real host and AWS SDK, the recorded HTTP traffic, the
    /// clock pinned to the recording. With --record, runs them against a live endpoint and
    /// writes their traffic and observed expectations.
    Test {
        /// A fixer component (.wasm) or a fixer crate directory (built for wasm32-wasip2 first).
        fixer: PathBuf,
        /// Case directories, or directories of them; by default the crate's `cases/`.
        cases: Vec<PathBuf>,
        /// Also write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Record the cases instead of replaying them.
        #[arg(long)]
        record: bool,
        /// The endpoint to record against (default: AWS itself, with the default credentials).
        #[arg(long, requires = "record")]
        endpoint_url: Option<String>,
        /// Where compiled fixers are cached (default: $XDG_CACHE_HOME/salve or ~/.cache/salve).
        #[arg(long, env = "SALVE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Shows a fixer's world, imports, declared resource type and controls, IAM actions and
    /// SHA-256, and whether it passes the link-time least-privilege check (exit 2 if not).
    Inspect {
        fixer: PathBuf,
        /// Also report the controls it shares with the fixers installed in this directory: such
        /// an overlap is refused at load unless `[routing]` in salve.toml names one of them.
        #[arg(long)]
        installed: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum IamCommand {
    /// The customer-account role: the union of the installed fixers' actions, and a trust policy
    /// that admits only the platform role with the external ID.
    CustomerRole {
        /// Directory of fixer components (*.wasm).
        #[arg(long, env = "SALVE_FIXERS", default_value = ".salve/fixers")]
        fixers: PathBuf,
        /// Where compiled fixers are cached (default: $XDG_CACHE_HOME/salve or ~/.cache/salve).
        #[arg(long, env = "SALVE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// The role salve itself runs as (the trust policy's principal).
        #[arg(long)]
        platform_role_arn: String,
        /// Read the external ID from this environment variable; without it the trust policy holds
        /// the placeholder `<external-id>`.
        #[arg(long)]
        external_id_env: Option<String>,
        /// The account the role is created in; its ARN patterns then name it instead of `*`.
        #[arg(long, value_parser = parse_account)]
        account: Option<String>,
        /// Print only one document, exactly as `aws iam` takes it.
        #[arg(long, value_enum)]
        only: Option<PolicyPart>,
    },
    /// The platform role salve runs as: AssumeRole on the configured customer roles, its queues,
    /// its notification topics, and logs.
    PlatformRole {
        #[arg(long, env = "SALVE_CONFIG")]
        config: Option<PathBuf>,
        /// A queue salve consumes (repeatable).
        #[arg(long = "queue-arn")]
        queue_arns: Vec<String>,
        /// The Lambda audit sink (`s3://bucket/prefix`) salve writes records to.
        #[arg(long)]
        audit_sink: Option<String>,
    },
}

fn parse_account(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a 12-digit AWS account ID"))
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PolicyPart {
    Permissions,
    Trust,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks the hash chain and names every edited, removed, inserted or reordered record.
    Verify {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Human,
    Json,
}

#[derive(Args)]
struct ProcessArgs {
    /// The payload: a file path, or `-` for stdin.
    input: String,
    /// Stop after the plan and record it; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    /// Findings of the payload processed at the same time (those about one resource always run
    /// one after another).
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 8)]
    max_concurrency: usize,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct LambdaArgs {
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(
        long,
        env = "SALVE_AUDIT_LOG",
        default_value = "/tmp/salve/audit.jsonl"
    )]
    audit_log: PathBuf,
    /// Messages of one batch processed at the same time.
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 4)]
    max_concurrency: usize,
    /// Where the audit records go to be durable (`s3://bucket/prefix`): Lambda's /tmp does not
    /// outlive its environment. A batch is acknowledged only once its records are there.
    #[arg(long, env = "SALVE_AUDIT_SINK")]
    audit_sink: Option<String>,
    /// No message is started once less than this is left before the invocation's deadline; the
    /// rest are retried. Default: --wall-ms plus 3 s, enough for one message and the upload.
    #[arg(long, env = "SALVE_DEADLINE_MARGIN_MS")]
    deadline_margin_ms: Option<u64>,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct DaemonArgs {
    /// The queue to consume.
    #[arg(long, env = "SALVE_QUEUE_URL")]
    queue_url: String,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    /// Messages received and not yet deleted or released.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Messages processed at the same time.
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 8)]
    max_concurrency: usize,
    /// Long-poll wait per receive, at most 20.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    wait_seconds: u64,
    /// Visibility timeout to receive with and extend by; the queue's own when not given.
    #[arg(long)]
    visibility_timeout_seconds: Option<u64>,
    /// How long in-flight messages may take to finish after SIGTERM/SIGINT before they are
    /// released to the queue.
    #[arg(long, default_value_t = 20)]
    shutdown_grace_seconds: u64,
    /// Exit (0) once the queue is empty and nothing is in flight.
    #[arg(long)]
    drain: bool,
    /// Address for GET /healthz and GET /metrics; `off` serves neither.
    #[arg(long, env = "SALVE_LISTEN", default_value = "127.0.0.1:9464")]
    listen: String,
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct ReplayArgs {
    /// The dead-letter queue to take messages from.
    #[arg(long)]
    from: String,
    /// Send the messages to this queue; without it they are processed here.
    #[arg(long)]
    to: Option<String>,
    /// Replay at most this many messages.
    #[arg(long, default_value_t = 100)]
    max: usize,
    /// List what would be replayed, leave every message where it is.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    /// JSON when stderr is not a terminal.
    Auto,
    Json,
    Human,
}

#[derive(Args)]
struct PendingArgs {
    /// The audit log (JSON Lines).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
}

#[derive(Args)]
struct RollbackArgs {
    /// The finding ID whose fix is undone; its latest record must be `remediated`.
    finding_id: String,
    /// Who rolls the fix back: recorded, and set as the write session's salve:approved-by tag.
    #[arg(long)]
    by: String,
    /// Why: recorded in the audit record.
    #[arg(long)]
    reason: String,
    /// Undo even where the fixer calls undoing unsafe (EBS encryption by default).
    #[arg(long)]
    force: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct ApproveArgs {
    /// The finding ID, as `salve pending` shows it.
    finding_id: String,
    /// Who approves: recorded in the audit record.
    #[arg(long)]
    by: String,
    /// Why: recorded in the audit record.
    #[arg(long)]
    reason: Option<String>,
    /// Apply the plan made now even when it differs from the reviewed one.
    #[arg(long)]
    accept_new_plan: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct ReportArgs {
    /// Audit logs to read: files, directories whose files are read in name order (rotated
    /// logs), or s3://bucket/prefix where the Lambda's audit sink writes. A record found twice
    /// is counted once.
    #[arg(long = "audit-log", env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl", num_args = 1..)]
    audit_logs: Vec<PathBuf>,
    /// Count outcomes from this date (YYYY-MM-DD, or RFC 3339); earlier records still give
    /// each finding its history.
    #[arg(long)]
    since: Option<String>,
    /// Ignore records after this date (a date means its end, 23:59:59.999 UTC).
    #[arg(long)]
    until: Option<String>,
    /// Also split the numbers by this.
    #[arg(long, value_enum)]
    by: Option<ReportBy>,
    #[arg(long, value_enum, default_value_t = ReportOutput::Human)]
    output: ReportOutput,
    /// Where --output html writes (default report.html); human and json go to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Send the S3 calls for s3:// logs to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    endpoint_url: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportBy {
    Account,
    Owner,
    Control,
    Kind,
    Priority,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportOutput {
    Human,
    Json,
    Html,
}

#[derive(Args)]
struct ExplainArgs {
    /// The payload: a file path, or `-` for stdin.
    input: String,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    #[command(flatten)]
    host: HostArgs,
}

/// What every command that runs fixers needs.
#[derive(Args)]
struct HostArgs {
    /// The config file. Without one, ./salve.toml is used if it exists, else the defaults,
    /// which allowlist no account.
    #[arg(long, env = "SALVE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of fixer components (*.wasm).
    #[arg(long, env = "SALVE_FIXERS", default_value = ".salve/fixers")]
    fixers: PathBuf,
    /// Where compiled fixers are cached, keyed by their SHA-256 and authenticated with the key
    /// in SALVE_CACHE_KEY_FILE (default: $XDG_CACHE_HOME/salve or ~/.cache/salve, never the
    /// current directory).
    #[arg(long, env = "SALVE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Send every AWS call to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// A fixer setting, as `<fixer>.<key>=<value>` (e.g. `sg-close-admin-ports.admin-ports=22,3389`);
    /// overrides the config file's `[fixers.<fixer>]`.
    /// From the environment (a Lambda `bootstrap` gets no arguments), separate settings with
    /// `;`: `SALVE_SETTINGS="sg-close-admin-ports.admin-ports=22,3389;other.key=value"`.
    #[arg(
        long = "setting",
        value_name = "FIXER.KEY=VALUE",
        env = "SALVE_SETTINGS",
        value_delimiter = ';'
    )]
    settings: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args)]
struct LimitArgs {
    /// Linear memory cap per fixer, in MiB.
    #[arg(long, env = "SALVE_MEMORY_MIB", default_value_t = 64)]
    memory_mib: usize,
    /// Guest CPU time per phase, in milliseconds.
    #[arg(long, env = "SALVE_CPU_MS", default_value_t = 2000)]
    cpu_ms: u64,
    /// Wall-clock time per finding, host calls included, in milliseconds.
    #[arg(long, env = "SALVE_WALL_MS", default_value_t = 60_000)]
    wall_ms: u64,
}

impl LimitArgs {
    fn to_limits(&self) -> Result<RuntimeLimits> {
        if self.memory_mib == 0 || self.cpu_ms == 0 || self.wall_ms == 0 {
            bail!("--memory-mib, --cpu-ms and --wall-ms must be greater than zero");
        }
        Ok(RuntimeLimits {
            memory_bytes: self
                .memory_mib
                .checked_mul(1024 * 1024)
                .context("--memory-mib is too large")?,
            cpu_time: Duration::from_millis(self.cpu_ms),
            wall_time: Duration::from_millis(self.wall_ms),
            ..RuntimeLimits::default()
        })
    }
}

/// The cache directory asked for, else the per-user default.
fn cache_dir(asked: &Option<PathBuf>) -> Option<PathBuf> {
    asked.clone().or_else(salve::runtime::cache::default_dir)
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

/// A payload as read from a file or stdin: at most the ingest limit is kept, but the whole input
/// is counted and hashed, so an oversized payload's record names its real size and digest.
struct Input {
    bytes: Vec<u8>,
    total: u64,
    sha256: String,
}

fn read_input(input: &str) -> Result<Input> {
    use sha2::{Digest, Sha256};
    let limit = salve::ingest::MAX_PAYLOAD_BYTES;
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
            Err(e) => return Err(e).with_context(|| format!("reading the finding from {input}")),
        };
        hasher.update(&chunk[..n]);
        total += n as u64;
        let room = (limit + 1).saturating_sub(bytes.len()).min(n);
        bytes.extend_from_slice(&chunk[..room]);
    }
    Ok(Input {
        bytes,
        total,
        sha256: salve::audit::hex(&hasher.finalize()),
    })
}

/// Processes what was read, or records an oversized input as rejected with its real size.
async fn run_input(
    pipeline: &Pipeline,
    input: Input,
    options: ProcessOptions,
) -> Result<Vec<Processed>> {
    if input.total > salve::ingest::MAX_PAYLOAD_BYTES as u64 {
        let reason = format!(
            "payload is {} bytes, over the {}-byte limit",
            input.total,
            salve::ingest::MAX_PAYLOAD_BYTES
        );
        return Ok(vec![pipeline.reject(&input.sha256, reason, options).await?]);
    }
    pipeline.process_payload(&input.bytes, options).await
}

fn load_config(path: Option<&Path>) -> Result<SalveConfig> {
    match path {
        Some(p) => SalveConfig::load(p),
        None if Path::new("salve.toml").exists() => SalveConfig::load(Path::new("salve.toml")),
        None => {
            tracing::warn!("no salve.toml: using the defaults, which allowlist no account");
            Ok(SalveConfig::default())
        }
    }
}

/// The pipeline, and the platform's own AWS config (for queues), which never reaches a fixer.
async fn build_pipeline(
    host: &HostArgs,
    audit: Option<AuditLog>,
) -> Result<(Pipeline, aws_config::SdkConfig)> {
    let (pipeline, sdk_config, _, _) = build_pipeline_with(host, audit, false).await?;
    Ok((pipeline, sdk_config))
}

/// [`build_pipeline`], also returning the config and the session maker (for drift reads).
/// `fixers_optional`: a drift check of Terraform alone needs no fixer installed.
async fn build_pipeline_with(
    host: &HostArgs,
    audit: Option<AuditLog>,
    fixers_optional: bool,
) -> Result<(
    Pipeline,
    aws_config::SdkConfig,
    SalveConfig,
    std::sync::Arc<AwsBackends>,
)> {
    let config = load_config(host.config.as_deref())?;
    let mut builder = PipelineBuilder::new(&config)
        .limits(host.limits.to_limits()?)
        .cache_dir(cache_dir(&host.cache_dir))
        .settings(parse_settings(&host.settings, config.fixers.clone())?);
    // `explain` writes nothing and changes nothing, so it still shows ingest and triage on a
    // machine with no fixers installed yet.
    if (audit.is_none() || fixers_optional) && !host.fixers.exists() {
        eprintln!(
            "note: no fixers are installed ({} does not exist); {}",
            host.fixers.display(),
            if fixers_optional {
                "the fixes salve made cannot be checked again"
            } else {
                "explaining ingest and triage only"
            }
        );
    } else {
        builder = builder.fixer_dir(&host.fixers);
    }
    let backends = std::sync::Arc::new(
        AwsBackends::load(
            AwsOptions {
                endpoint_url: host.endpoint_url.clone(),
            },
            &config.deployment,
            config.account_roles(),
        )
        .await,
    );
    let sdk_config = backends.sdk_config().clone();
    builder = builder.notifier(Notifier::new(
        config.notify.clone(),
        Some(sdk_config.clone()),
    ));
    let reconcile = audit.is_some();
    if let Some(log) = audit {
        builder = builder.audit_log(log);
    }
    let mut pipeline = builder.build(Box::new(backends.clone()))?;
    pipeline.read_state_with(salve::aws::s3_client(
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
    Ok((pipeline, sdk_config, config, backends))
}

/// The queue modes call SQS (and S3 for the sink) with salve's own configuration, so they need a
/// region from the start.
fn require_region(sdk: &aws_config::SdkConfig) -> Result<()> {
    if sdk.region().is_none() {
        bail!("no AWS region is configured: set AWS_REGION (or a region in the AWS profile)");
    }
    Ok(())
}

/// The exit code for a batch: the most serious outcome wins.
fn exit_code(processed: &[Processed]) -> ExitCode {
    let statuses: Vec<Option<Status>> = processed.iter().map(|p| p.entry.status).collect();
    exit_code_of(&statuses)
}

fn exit_code_of(statuses: &[Option<Status>]) -> ExitCode {
    if statuses.contains(&Some(Status::Failed)) {
        ExitCode::from(3)
    } else if statuses.contains(&Some(Status::Rejected)) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

async fn process(args: ProcessArgs) -> Result<ExitCode> {
    let payload = read_input(&args.input)?;
    let audit = AuditLog::open(&args.audit_log)?;
    let (pipeline, _) = build_pipeline(&args.host, Some(audit)).await?;
    let options = ProcessOptions {
        effect: if args.dry_run {
            Effect::PlanOnly
        } else {
            Effect::Apply
        },
        concurrency: args.max_concurrency,
        ..ProcessOptions::default()
    };
    // Each record is printed as soon as it is durable, then dropped.
    let mut statuses = Vec::new();
    let mut first = true;
    let mut print = |p: Processed| {
        match args.output {
            Output::Json => {
                if let Some(sealed) = &p.sealed {
                    println!("{}", sealed.line);
                }
            }
            Output::Human => {
                if !first {
                    println!();
                }
                print!(
                    "{}",
                    escape_control(&report::render_processed(&p.entry, p.sealed.as_ref()), true)
                );
            }
        }
        first = false;
        statuses.push(p.entry.status);
    };
    if payload.total > salve::ingest::MAX_PAYLOAD_BYTES as u64 {
        let reason = format!(
            "payload is {} bytes, over the {}-byte limit",
            payload.total,
            salve::ingest::MAX_PAYLOAD_BYTES
        );
        print(pipeline.reject(&payload.sha256, reason, options).await?);
    } else {
        pipeline
            .process_delivery_each(&payload.bytes, options, None, &mut print)
            .await?;
    }
    Ok(exit_code_of(&statuses))
}

fn pending(args: PendingArgs) -> Result<ExitCode> {
    let waiting = salve::approval::pending(&args.audit_log)?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&waiting)?),
        Output::Human => print!(
            "{}",
            escape_control(&report::render_pending(&waiting), true)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn approve(args: ApproveArgs) -> Result<ExitCode> {
    let waiting = salve::approval::find(&args.audit_log, &args.finding_id)?;
    if args.by.trim().is_empty() {
        bail!("--by must name who approves");
    }
    let audit = AuditLog::open(&args.audit_log)?;
    let (pipeline, _) = build_pipeline(&args.host, Some(audit)).await?;
    let request = salve::approval::ApprovalRequest {
        by: args.by,
        reason: args.reason,
        accept_new_plan: args.accept_new_plan,
    };
    let processed = pipeline.approve(&waiting, &request).await?;
    print_processed(args.output, &processed);
    Ok(exit_code(std::slice::from_ref(&processed)))
}

async fn rollback(args: RollbackArgs) -> Result<ExitCode> {
    if args.by.trim().is_empty() {
        bail!("--by must name who rolls the fix back");
    }
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the fix is rolled back");
    }
    let fixed = salve::rollback::find(&args.audit_log, &args.finding_id)?;
    let audit = AuditLog::open(&args.audit_log)?;
    let (pipeline, _) = build_pipeline(&args.host, Some(audit)).await?;
    let request = salve::rollback::RollbackRequest {
        by: args.by,
        reason: args.reason,
        force: args.force,
    };
    let processed = pipeline.rollback(&fixed, &request).await?;
    print_processed(args.output, &processed);
    Ok(exit_code(std::slice::from_ref(&processed)))
}

/// What `drift` and `break-glass` read and record with. No fixer directory is needed: without
/// one, the fixes salve made are reported as unreadable.
struct DriftContext {
    pipeline: Pipeline,
    config: SalveConfig,
    aws: std::sync::Arc<AwsBackends>,
    audit_log: PathBuf,
}

impl DriftContext {
    async fn open(host: &HostArgs, audit_log: &Path) -> Result<DriftContext> {
        let audit = AuditLog::open(audit_log)?;
        let (pipeline, _, config, aws) = build_pipeline_with(host, Some(audit), true).await?;
        Ok(DriftContext {
            pipeline,
            config,
            aws,
            audit_log: audit_log.to_path_buf(),
        })
    }

    fn drift(&self) -> salve::drift::Drift<'_> {
        salve::drift::Drift {
            pipeline: &self.pipeline,
            aws: &self.aws,
            config: &self.config.drift,
            audit_log: &self.audit_log,
        }
    }
}

async fn drift(command: DriftCommand) -> Result<ExitCode> {
    let (args, gate) = match command {
        DriftCommand::Check(args) => (args, false),
        DriftCommand::Gate(args) => (args, true),
    };
    let run = async {
        let context = DriftContext::open(&args.host, &args.audit_log).await?;
        let scope = salve::drift::Scope::new(
            args.accounts.clone(),
            args.regions.clone(),
            args.workspaces.clone(),
            &args.kinds,
            &context.config.iac.terraform,
        )?;
        let drift = context.drift();
        let now = salve::timestamp::now();
        if gate {
            let (report, verdict) = drift.gate(&scope, now).await?;
            Ok::<_, anyhow::Error>((report, Some(verdict)))
        } else {
            Ok((drift.check(&scope, now).await?, None))
        }
    };
    let (report, verdict) = match run.await {
        Ok(r) => r,
        // A gate that cannot check must not pass, and must not look like drift either.
        Err(e) if gate => {
            eprintln!("error: {e:#}\nGATE CANNOT DECIDE: exit 2");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e),
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": report,
                "verdict": verdict,
            }))?
        ),
        Output::Human => print!(
            "{}",
            escape_control(&salve::drift::render(&report, verdict), true)
        ),
    }
    Ok(ExitCode::from(verdict.map(|v| v.exit_code()).unwrap_or(0)))
}

async fn iac(command: IacCommand) -> Result<ExitCode> {
    let IacCommand::Sync {
        output,
        audit_log,
        host,
    } = command;
    let audit = AuditLog::open(&audit_log)?;
    let (pipeline, _, _, _) = build_pipeline_with(&host, Some(audit), true).await?;
    let synced = salve::iac::sync::sync(&pipeline, &audit_log).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&synced)?),
        Output::Human => {
            if synced.is_empty() {
                println!("no pull request is waiting");
            }
            for s in &synced {
                println!(
                    "{} #{} {}{}{}",
                    escape_control(&s.finding_id, false),
                    s.number
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "?".into()),
                    s.state,
                    s.record
                        .map(|r| format!(" (record {r})"))
                        .unwrap_or_default(),
                    s.reason
                        .as_deref()
                        .map(|r| format!(": {}", escape_control(r, false)))
                        .unwrap_or_default()
                );
            }
        }
    }
    // A pull request whose state could not be read is not settled: say so in the exit code.
    Ok(if synced.iter().any(|s| s.state == "unknown") {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

async fn break_glass(command: BreakGlassCommand) -> Result<ExitCode> {
    match command {
        BreakGlassCommand::List { output, audit_log } => {
            let history = salve::drift::history::History::read(&audit_log)?;
            let listed = salve::drift::break_glass::list(&history, salve::timestamp::now());
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
                Output::Human => print!(
                    "{}",
                    escape_control(&salve::drift::break_glass::render(&listed), true)
                ),
            }
        }
        BreakGlassCommand::Open {
            resource,
            reason,
            by,
            ticket,
            output,
            audit_log,
            host,
        } => {
            let context = DriftContext::open(&host, &audit_log).await?;
            let drift = context.drift();
            let request = salve::drift::break_glass::OpenRequest {
                resource_arn: resource,
                reason,
                by,
                ticket,
            };
            let opened = drift
                .open_break_glass(&request, salve::timestamp::now())
                .await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&opened)?),
                Output::Human => {
                    println!(
                        "break-glass open for {} until {} (record {})",
                        escape_control(&request.resource_arn, false),
                        opened.due_at,
                        opened.record
                    );
                    if let Some(i) = &opened.issue {
                        println!("reconciliation issue #{}: {}", i.number, i.html_url);
                    }
                    if let Some(e) = &opened.issue_error {
                        eprintln!(
                            "warning: {}; open a reconciliation ticket by hand",
                            escape_control(e, false)
                        );
                    }
                }
            }
        }
        BreakGlassCommand::Close {
            resource,
            reason,
            by,
            audit_log,
            host,
        } => {
            let context = DriftContext::open(&host, &audit_log).await?;
            let record = context
                .drift()
                .close_break_glass(&resource, &by, &reason)
                .await?;
            println!(
                "break-glass closed for {} (record {record})",
                escape_control(&resource, false)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One run's outcome: its sealed record as JSON, or the terminal report.
fn print_processed(output: Output, processed: &Processed) {
    match output {
        Output::Json => {
            if let Some(sealed) = &processed.sealed {
                println!("{}", sealed.line);
            }
        }
        Output::Human => print!(
            "{}",
            escape_control(
                &report::render_processed(&processed.entry, processed.sealed.as_ref()),
                true
            )
        ),
    }
}

async fn lambda(args: LambdaArgs) -> Result<ExitCode> {
    // Everything is checked at init, so a broken deployment fails there, loudly, and not per
    // batch after fixes were applied.
    let init = lambda_init(&args).await;
    let (pipeline, sink) = match init {
        Ok(ready) => ready,
        Err(e) => {
            salve::modes::lambda_init_error::report(&format!("{e:#}")).await;
            return Err(e);
        }
    };
    let margin = Duration::from_millis(
        args.deadline_margin_ms
            .unwrap_or(args.host.limits.wall_ms.saturating_add(3000)),
    );
    salve::modes::lambda::run(pipeline, args.max_concurrency, margin, sink).await?;
    Ok(ExitCode::SUCCESS)
}

type LambdaReady = (
    std::sync::Arc<Pipeline>,
    Option<std::sync::Arc<salve::audit_sink::S3AuditSink>>,
);

async fn lambda_init(args: &LambdaArgs) -> Result<LambdaReady> {
    let audit = AuditLog::open(&args.audit_log)?;
    let (mut pipeline, sdk_config) = build_pipeline(&args.host, Some(audit)).await?;
    require_region(&sdk_config)?;
    if pipeline.registry().ready.is_empty() {
        bail!(
            "no fixer is ready in {} ({} refused): every finding would fail; ship the fixers in the package and set SALVE_FIXERS",
            args.host.fixers.display(),
            pipeline.registry().refused.len()
        );
    }
    let sink = match &args.audit_sink {
        Some(url) => {
            let sink = std::sync::Arc::new(salve::audit_sink::S3AuditSink::new(
                salve::aws::s3_client(&sdk_config, args.host.endpoint_url.is_some()),
                url,
                &args.audit_log,
            )?);
            // Proves the bucket is there, and picks up after what a crashed process shipped.
            sink.resume().await?;
            pipeline.ship_intents_to(sink.clone());
            Some(sink)
        }
        None => {
            tracing::warn!(
                "no --audit-sink: audit records stay in {}, which does not outlive this environment",
                args.audit_log.display()
            );
            None
        }
    };
    let compiled = pipeline
        .registry()
        .ready
        .iter()
        .filter(|f| f.artifact == salve::runtime::ArtifactSource::Compiled)
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
    Ok((std::sync::Arc::new(pipeline), sink))
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}

async fn daemon(args: DaemonArgs) -> Result<ExitCode> {
    use salve::modes::{daemon, status_endpoint};
    use std::sync::Arc;
    // Listen for signals before anything slow, so an early SIGTERM still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    let audit = AuditLog::open(&args.audit_log)?;
    let (pipeline, sdk_config) = build_pipeline(&args.host, Some(audit)).await?;
    require_region(&sdk_config)?;
    let metrics = Arc::new(salve::metrics::Metrics::default());
    metrics
        .track_program(&args.audit_log)
        .context("reading the audit log for the program gauges on /metrics")?;
    let health = Arc::new(daemon::Health::default());
    let endpoint = if args.listen == "off" {
        None
    } else {
        let listener = status_endpoint::bind(&args.listen).await?;
        tracing::info!(address = %listener.local_addr()?, "serving /healthz and /metrics");
        Some(tokio::spawn(status_endpoint::serve(
            listener,
            metrics.clone(),
            health.clone(),
        )))
    };
    let options = daemon::DaemonOptions {
        queue_url: args.queue_url,
        max_in_flight: args.max_in_flight,
        max_concurrency: args.max_concurrency,
        wait_time: Duration::from_secs(args.wait_seconds),
        visibility_timeout: args.visibility_timeout_seconds.map(Duration::from_secs),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        drain: args.drain,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    daemon::run(Arc::new(pipeline), sqs, options, metrics, health, shutdown).await?;
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    use salve::modes::replay::{self, ReplayOptions};
    let audit = AuditLog::open(&args.audit_log)?;
    let (pipeline, sdk_config) = build_pipeline(&args.host, Some(audit)).await?;
    require_region(&sdk_config)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    let options = ReplayOptions {
        from: args.from,
        to: args.to,
        max: args.max,
        dry_run: args.dry_run,
    };
    let report = replay::replay(std::sync::Arc::new(pipeline), &sqs, &options).await?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => print!("{}", escape_control(&report::render_replay(&report), true)),
    }
    Ok(if report.left > 0 && !report.dry_run {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A `--since`/`--until` bound; a bare date is the start of that day, or with `end_of_day` its
/// last millisecond.
fn report_bound(flag: &str, text: &str, end_of_day: bool) -> Result<i64> {
    let at = salve::timestamp::parse(text).with_context(|| {
        format!("{flag} {text:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-11-20T08:00:00Z)")
    })?;
    Ok(if end_of_day && text.trim().len() == 10 {
        at + 86_400_000 - 1
    } else {
        at
    })
}

async fn report(args: ReportArgs) -> Result<ExitCode> {
    use salve::scorecard::{self, GroupBy, ReportOptions};
    let now = salve::timestamp::now();
    let options = ReportOptions {
        since: args
            .since
            .as_deref()
            .map(|s| report_bound("--since", s, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| report_bound("--until", s, true))
            .transpose()?,
        by: args.by.map(|b| match b {
            ReportBy::Account => GroupBy::Account,
            ReportBy::Owner => GroupBy::Owner,
            ReportBy::Control => GroupBy::Control,
            ReportBy::Kind => GroupBy::Kind,
            ReportBy::Priority => GroupBy::Priority,
        }),
        now,
    };
    let mut builder = scorecard::Builder::new(options);
    let mut s3 = None;
    for log in &args.audit_logs {
        match log.to_str().filter(|l| l.starts_with("s3://")) {
            Some(url) => {
                let client = match &s3 {
                    Some(c) => c,
                    None => {
                        let aws = salve::aws::AwsOptions {
                            endpoint_url: args.endpoint_url.clone(),
                        };
                        let config = salve::aws::platform_config(&aws).await;
                        require_region(&config)?;
                        s3.insert(salve::aws::s3_client(&config, aws.endpoint_url.is_some()))
                    }
                };
                builder.read_s3(client, url).await?;
            }
            None => builder.read_path(log)?,
        }
    }
    let report = builder.finish();
    match args.output {
        ReportOutput::Human => print!("{}", scorecard::text::render(&report)),
        ReportOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportOutput::Html => {
            let out = args.out.unwrap_or_else(|| PathBuf::from("report.html"));
            std::fs::write(&out, scorecard::html::render(&report))
                .with_context(|| format!("writing the report to {}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let payload = read_input(&args.input)?;
    let (pipeline, _) = build_pipeline(&args.host, None).await?;
    let options = ProcessOptions {
        effect: Effect::Explain,
        ..ProcessOptions::default()
    };
    let processed = run_input(&pipeline, payload, options).await?;
    for (i, p) in processed.iter().enumerate() {
        match args.output {
            Output::Json => println!("{}", serde_json::to_string(&p.entry)?),
            Output::Human => {
                if i > 0 {
                    println!();
                }
                print!(
                    "{}",
                    escape_control(&report::render_explanation(&p.entry), true)
                );
            }
        }
    }
    Ok(exit_code(&processed))
}

fn fixer(command: FixerCommand) -> Result<ExitCode> {
    match command {
        FixerCommand::New {
            name,
            resource_type,
            control,
            dir,
            sdk,
        } => {
            use salve::fixer_test::scaffold::{scaffold, ScaffoldOptions};
            let sdk = sdk.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
            let created = scaffold(&ScaffoldOptions {
                name,
                resource_type,
                control,
                parent: dir,
                sdk,
            })?;
            println!(
                "created {0}\n  build: cargo build --release --target wasm32-wasip2 --manifest-path {0}/Cargo.toml\n  test:  salve fixer test {0}",
                created.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        FixerCommand::Test {
            fixer,
            cases,
            junit,
            record,
            endpoint_url,
            cache_dir,
        } => block_on(fixer_test(
            fixer,
            cases,
            junit,
            record,
            endpoint_url,
            cache_dir,
        )),
        FixerCommand::Precompile { fixers, cache_dir } => {
            let dir = self::cache_dir(&cache_dir)
                .context("no cache directory: pass --cache-dir or set HOME")?;
            let runtime = Runtime::new(RuntimeLimits::default(), Some(dir.clone()))?;
            if !runtime.has_disk_cache() {
                bail!(
                    "the cache {} cannot be used (see the warning above); nothing was compiled",
                    dir.display()
                );
            }
            let registry = FixerRegistry::load_dir(&runtime, &fixers)?;
            for f in &registry.ready {
                println!(
                    "{} {} sha256:{} artifact:{}",
                    escape_control(&f.manifest.name, false),
                    escape_control(&f.manifest.version, false),
                    f.sha256,
                    f.artifact_sha256
                );
            }
            for r in &registry.refused {
                eprintln!(
                    "refused {}: {}",
                    r.path.display(),
                    escape_control(&r.error, false)
                );
            }
            println!(
                "{} fixer(s) in {} for engine {:016x}; ship it with its key ({})",
                registry.ready.len(),
                dir.display(),
                runtime.engine_hash(),
                salve::runtime::cache::key_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            Ok(if registry.refused.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        FixerCommand::Inspect {
            fixer,
            installed,
            output,
        } => {
            let bytes =
                std::fs::read(&fixer).with_context(|| format!("reading {}", fixer.display()))?;
            // No cache: inspection compiles afresh, so it reports on exactly these bytes.
            let runtime = Runtime::new(RuntimeLimits::default(), None)?;
            let mut report = runtime
                .inspect(&bytes)
                .with_context(|| format!("inspecting {}", fixer.display()))?;
            if let Some(dir) = installed {
                let registry = FixerRegistry::load_dir(&runtime, &dir)?;
                report.overlaps = registry.claims_shared_with(
                    &report.sha256,
                    &report.name,
                    &report.resource_type,
                    &report.controls,
                );
            }
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Human => print!("{}", escape_control(&report::render_fixer(&report), true)),
            }
            Ok(if report.least_privilege_check.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

async fn fixer_test(
    fixer: PathBuf,
    cases: Vec<PathBuf>,
    junit: Option<PathBuf>,
    record: bool,
    endpoint_url: Option<String>,
    cache_dir: Option<PathBuf>,
) -> Result<ExitCode> {
    use salve::fixer_test::{self, FixerUnderTest};
    let (wasm, cases) = if fixer.is_dir() {
        let wasm = fixer_test::build_crate(&fixer)?;
        let cases = if cases.is_empty() {
            vec![fixer.join("cases")]
        } else {
            cases
        };
        (wasm, cases)
    } else {
        if cases.is_empty() {
            bail!("name the cases to run: salve fixer test <fixer.wasm> <case dir>...");
        }
        (fixer, cases)
    };
    let under_test = FixerUnderTest::load(&wasm, self::cache_dir(&cache_dir))?;
    let mut found = fixer_test::find_cases(&cases)?;
    if record {
        for case in &mut found {
            // Recording sends signed requests with a session token: they go to AWS or to the
            // endpoint named on this command line, never to one a case file names.
            if case.spec.endpoint_url.is_some() && endpoint_url.is_none() {
                eprintln!(
                    "note: {} names an endpoint; recording ignores it and records against AWS (pass --endpoint-url to record elsewhere)",
                    case.dir.display()
                );
            }
            case.spec.endpoint_url = endpoint_url.clone();
            println!("{}", under_test.record(case).await?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut results = Vec::new();
    for case in &found {
        results.push(under_test.replay(case).await);
    }
    print!("{}", fixer_test::render(&results));
    if let Some(path) = junit {
        std::fs::write(&path, fixer_test::junit(&under_test.name, &results))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if results.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn iam(command: IamCommand) -> Result<ExitCode> {
    use salve::credentials::iam;
    let document = match command {
        IamCommand::CustomerRole {
            fixers,
            cache_dir,
            platform_role_arn,
            external_id_env,
            account,
            only,
        } => {
            let runtime = Runtime::new(RuntimeLimits::default(), self::cache_dir(&cache_dir))?;
            let registry = FixerRegistry::load_dir(&runtime, &fixers)?;
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
            let external_id = match external_id_env {
                Some(var) => std::env::var(&var)
                    .with_context(|| format!("reading the external ID from ${var}"))?,
                None => "<external-id>".to_string(),
            };
            let permissions = iam::customer_role_policy(&registry.ready, account.as_deref());
            let trust = iam::customer_trust_policy(&platform_role_arn, &external_id);
            match only {
                Some(PolicyPart::Permissions) => permissions,
                Some(PolicyPart::Trust) => trust,
                None => {
                    serde_json::json!({ "permissions_policy": permissions, "trust_policy": trust })
                }
            }
        }
        IamCommand::PlatformRole {
            config,
            queue_arns,
            audit_sink,
        } => {
            let config = load_config(config.as_deref())?;
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
                .as_deref()
                .map(salve::audit_sink::parse_s3_url)
                .transpose()?;
            iam::platform_role_policy(
                &roles,
                &queue_arns,
                &topics,
                sink.as_ref().map(|(b, p)| (b.as_str(), p.as_str())),
            )
        }
    };
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(ExitCode::SUCCESS)
}

fn verify(file: PathBuf, output: Output) -> Result<ExitCode> {
    let report = audit::verify(&file)?;
    match output {
        Output::Json => println!("{}", serde_json::to_string(&report)?),
        Output::Human => print!(
            "{}",
            report::render_verify(&file.display().to_string(), &report)
        ),
    }
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn block_on(job: impl std::future::Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(job)
}

fn main() -> ExitCode {
    // A file-size limit (ulimit -f) must be an EFBIG write error the audit log handles, not a
    // signal that kills the process in the middle of a record.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // As a Lambda `bootstrap` the binary gets no arguments; the runtime API variable says where
    // it is.
    let cli =
        if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            Cli::parse_from(["salve", "lambda"])
        } else {
            Cli::parse()
        };
    // Services (Lambda, and the daemon unless it writes to a terminal) log JSON, one object per
    // line with the finding's span fields, at info; interactive commands log for humans, at warn.
    let (service, json) = match &cli.command {
        Command::Lambda(_) => (true, true),
        Command::Daemon(args) => (
            true,
            match args.log_format {
                LogFormat::Json => true,
                LogFormat::Human => false,
                LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
            },
        ),
        _ => (false, false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SALVE_LOG")
        .unwrap_or_else(|_| if service { "info" } else { "warn" }.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        logs.json().with_current_span(true).init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Process(args) => block_on(process(args)),
        Command::Explain(args) => block_on(explain(args)),
        Command::Lambda(args) => block_on(lambda(args)),
        Command::Daemon(args) => block_on(daemon(args)),
        Command::Replay(args) => block_on(replay(args)),
        Command::Report(args) => block_on(report(args)),
        Command::Drift { command } => block_on(drift(command)),
        Command::BreakGlass { command } => block_on(break_glass(command)),
        Command::Iac { command } => block_on(iac(command)),
        Command::Pending(args) => pending(args),
        Command::Approve(args) => block_on(approve(args)),
        Command::Rollback(args) => block_on(rollback(args)),
        Command::Iam { command } => iam(command),
        Command::Fixer { command } => fixer(command),
        Command::Audit {
            command: AuditCommand::Verify { file, output },
        } => verify(file, output),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
