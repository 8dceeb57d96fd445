//! The command line's flags, parsed by clap. Each command's arguments become the library's
//! options here; what a command does is in the library, and main.rs prints it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use salve::app::{self, HostOptions};
use salve::runtime::RuntimeLimits;

#[derive(Parser)]
#[command(
    name = "salve",
    version,
    about = "Closes cloud security findings with sandboxed WebAssembly fixers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum IacCommand {
    /// Ask the forge about every finding whose latest record is `pull-request-opened`: a merged
    /// pull request is recorded as `pull-request-merged` (remediation ends at the merge), one
    /// closed without merge as `pull-request-closed` (the finding is open again).
    Sync {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
pub enum DriftCommand {
    /// Read every fixed and every Terraform-managed resource in scope (read-only sessions) and
    /// record what drifted, what agrees again, and break-glass windows that went overdue.
    Check(DriftArgs),
    /// The pipeline check: `check`, then exit 0 when clean (or every drift is under an open
    /// break-glass window, with a warning), 1 on drift, 2 when something could not be checked.
    Gate(DriftArgs),
}

#[derive(Args)]
pub struct DriftArgs {
    /// Only this account (repeatable).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Only this region (repeatable).
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// Only this `[[iac.terraform]]` workspace (repeatable).
    #[arg(long = "workspace")]
    pub workspaces: Vec<String>,
    /// Only this kind, e.g. AWS::EC2::SecurityGroup or security-group (repeatable).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Whose break-glass window, who opens or closes it, and why; all three are recorded.
#[derive(Args)]
pub struct WindowArgs {
    /// The resource's ARN.
    #[arg(long)]
    pub resource: String,
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub by: String,
}

#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Record who changes the resource by hand and why, open a reconciliation issue in its
    /// workspace's repository, and let `drift gate` pass for it until the window is due.
    Open {
        #[command(flatten)]
        window: WindowArgs,
        /// The incident ticket's URL.
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[command(flatten)]
        run: RunArgs,
    },
    /// End a resource's window.
    Close {
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        run: RunArgs,
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
pub enum FixerCommand {
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
pub enum IamCommand {
    /// The customer-account role: the union of the installed fixers' actions, and a trust policy
    /// that admits only the platform role with the external ID.
    CustomerRole {
        /// The config whose `[metadata] tag-read` decides whether the role grants the Tagging
        /// API read (`tag:GetResources`).
        #[arg(long, env = "SALVE_CONFIG")]
        config: Option<PathBuf>,
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
pub enum PolicyPart {
    Permissions,
    Trust,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Checks the hash chain and names every edited, removed, inserted or reordered record.
    Verify {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

#[derive(Args)]
pub struct ProcessArgs {
    /// The payload: a file path, or `-` for stdin.
    pub input: String,
    /// Stop after the plan and record it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Findings of the payload processed at the same time (those about one resource always run
    /// one after another).
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 8)]
    pub max_concurrency: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct LambdaArgs {
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(
        long,
        env = "SALVE_AUDIT_LOG",
        default_value = "/tmp/salve/audit.jsonl"
    )]
    pub audit_log: PathBuf,
    /// Messages of one batch processed at the same time.
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 4)]
    pub max_concurrency: usize,
    /// Where the audit records go to be durable (`s3://bucket/prefix`): Lambda's /tmp does not
    /// outlive its environment. A batch is acknowledged only once its records are there.
    #[arg(long, env = "SALVE_AUDIT_SINK")]
    pub audit_sink: Option<String>,
    /// No message is started once less than this is left before the invocation's deadline; the
    /// rest are retried. Default: --wall-ms plus 3 s, enough for one message and the upload.
    #[arg(long, env = "SALVE_DEADLINE_MARGIN_MS")]
    pub deadline_margin_ms: Option<u64>,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Args)]
pub struct DaemonArgs {
    /// The queue to consume.
    #[arg(long, env = "SALVE_QUEUE_URL")]
    pub queue_url: String,
    /// Messages received and not yet deleted or released.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Messages processed at the same time.
    #[arg(long, env = "SALVE_MAX_CONCURRENCY", default_value_t = 8)]
    pub max_concurrency: usize,
    /// Long-poll wait per receive, at most 20.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub wait_seconds: u64,
    /// Visibility timeout to receive with and extend by; the queue's own when not given.
    #[arg(long)]
    pub visibility_timeout_seconds: Option<u64>,
    /// How long in-flight messages may take to finish after SIGTERM/SIGINT before they are
    /// released to the queue.
    #[arg(long, default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// Exit (0) once the queue is empty and nothing is in flight.
    #[arg(long)]
    pub drain: bool,
    /// Address for GET /healthz and GET /metrics; `off` serves neither.
    #[arg(long, env = "SALVE_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: String,
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The dead-letter queue to take messages from.
    #[arg(long)]
    pub from: String,
    /// Send the messages to this queue; without it they are processed here.
    #[arg(long)]
    pub to: Option<String>,
    /// Replay at most this many messages.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// List what would be replayed, leave every message where it is.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal.
    Auto,
    Json,
    Human,
}

#[derive(Args)]
pub struct PendingArgs {
    /// The audit log (JSON Lines).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    pub audit_log: PathBuf,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The finding ID whose fix is undone; its latest record must be `remediated`.
    pub finding_id: String,
    /// Who rolls the fix back: recorded, and set as the write session's salve:approved-by tag.
    #[arg(long)]
    pub by: String,
    /// Why: recorded in the audit record.
    #[arg(long)]
    pub reason: String,
    /// Undo even where the fixer calls undoing unsafe (EBS encryption by default).
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// The finding ID, as `salve pending` shows it.
    pub finding_id: String,
    /// Who approves: recorded in the audit record.
    #[arg(long)]
    pub by: String,
    /// Why: recorded in the audit record.
    #[arg(long)]
    pub reason: Option<String>,
    /// Apply the plan made now even when it differs from the reviewed one.
    #[arg(long)]
    pub accept_new_plan: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Audit logs to read: files, directories whose files are read in name order (rotated
    /// logs), or s3://bucket/prefix where the Lambda's audit sink writes. A record found twice
    /// is counted once.
    #[arg(long = "audit-log", env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl", num_args = 1..)]
    pub audit_logs: Vec<PathBuf>,
    /// Count outcomes from this date (YYYY-MM-DD, or RFC 3339); earlier records still give
    /// each finding its history.
    #[arg(long)]
    pub since: Option<String>,
    /// Ignore records after this date (a date means its end, 23:59:59.999 UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Also split the numbers by this.
    #[arg(long, value_enum)]
    pub by: Option<ReportBy>,
    #[arg(long, value_enum, default_value_t = ReportOutput::Human)]
    pub output: ReportOutput,
    /// Where --output html writes (default report.html); human and json go to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Send the S3 calls for s3:// logs to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportBy {
    Account,
    Owner,
    Control,
    Kind,
    Priority,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    Human,
    Json,
    Html,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The payload: a file path, or `-` for stdin.
    pub input: String,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub host: HostArgs,
}

/// The audit log a command records to, and what it runs fixers with.
#[derive(Args)]
pub struct RunArgs {
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    pub audit_log: PathBuf,
    #[command(flatten)]
    pub host: HostArgs,
}

/// What every command that runs fixers needs.
#[derive(Args)]
pub struct HostArgs {
    /// The config file. Without one, ./salve.toml is used if it exists, else the defaults,
    /// which allowlist no account.
    #[arg(long, env = "SALVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of fixer components (*.wasm).
    #[arg(long, env = "SALVE_FIXERS", default_value = ".salve/fixers")]
    pub fixers: PathBuf,
    /// Where compiled fixers are cached, keyed by their SHA-256 and authenticated with the key
    /// in SALVE_CACHE_KEY_FILE (default: $XDG_CACHE_HOME/salve or ~/.cache/salve, never the
    /// current directory).
    #[arg(long, env = "SALVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Send every AWS call to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
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
    pub settings: Vec<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Args)]
pub struct LimitArgs {
    /// Linear memory cap per fixer, in MiB.
    #[arg(long, env = "SALVE_MEMORY_MIB", default_value_t = 64)]
    pub memory_mib: usize,
    /// Guest CPU time per phase, in milliseconds.
    #[arg(long, env = "SALVE_CPU_MS", default_value_t = 2000)]
    pub cpu_ms: u64,
    /// Wall-clock time per finding, host calls included, in milliseconds.
    #[arg(long, env = "SALVE_WALL_MS", default_value_t = 60_000)]
    pub wall_ms: u64,
    /// Fixer sandboxes alive at once; a finding beyond them waits for one. Each reserves the
    /// address space of its memories at start (virtual, not resident: about 16 GiB each), so
    /// lower it where virtual memory is capped (`ulimit -v`, valgrind).
    #[arg(long, env = "SALVE_MAX_CONCURRENT_FIXERS", default_value_t = 16)]
    pub max_concurrent_fixers: u32,
}

impl LimitArgs {
    pub fn to_limits(&self) -> Result<RuntimeLimits> {
        if self.memory_mib == 0
            || self.cpu_ms == 0
            || self.wall_ms == 0
            || self.max_concurrent_fixers == 0
        {
            bail!("--memory-mib, --cpu-ms, --wall-ms and --max-concurrent-fixers must be greater than zero");
        }
        Ok(RuntimeLimits {
            memory_bytes: self
                .memory_mib
                .checked_mul(1024 * 1024)
                .context("--memory-mib is too large")?,
            cpu_time: Duration::from_millis(self.cpu_ms),
            wall_time: Duration::from_millis(self.wall_ms),
            max_concurrent_fixers: self.max_concurrent_fixers,
            ..RuntimeLimits::default()
        })
    }
}

impl HostArgs {
    /// The library's options for these flags.
    pub fn options(&self) -> Result<HostOptions> {
        Ok(HostOptions {
            config: self.config.clone(),
            fixers: self.fixers.clone(),
            cache_dir: self.cache_dir.clone(),
            endpoint_url: self.endpoint_url.clone(),
            settings: self.settings.clone(),
            limits: self.limits.to_limits()?,
        })
    }
}

impl RunArgs {
    /// The pipeline that runs fixers and records to the audit log.
    pub async fn build(&self) -> Result<app::Built> {
        app::build_to_run(&self.host.options()?, &self.audit_log).await
    }

    /// What drift, break-glass and iac sync read and record with.
    pub async fn drift_context(&self) -> Result<app::DriftContext> {
        app::DriftContext::open(&self.host.options()?, &self.audit_log).await
    }
}

#[cfg(test)]
mod tests {
    /// clap checks a command's definitions only when that command is parsed; this checks every
    /// one (duplicate flags from flattened groups, bad defaults) at once.
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    fn explain_limits(flags: &[&str]) -> anyhow::Result<salve::runtime::RuntimeLimits> {
        use clap::Parser;
        let args = ["salve", "explain", "finding.json"].iter().chain(flags);
        match super::Cli::try_parse_from(args)?.command {
            super::Command::Explain(args) => Ok(args.host.options()?.limits),
            _ => unreachable!("parsed as explain"),
        }
    }

    /// The sandbox pool's size is the operator's (valgrind and `ulimit -v` need a small one),
    /// and zero, which would stall every finding, is refused with the flag's name.
    #[test]
    fn the_sandbox_pool_size_is_a_flag_and_zero_is_refused() {
        assert_eq!(explain_limits(&[]).unwrap().max_concurrent_fixers, 16);
        let two = explain_limits(&["--max-concurrent-fixers", "2"]).unwrap();
        assert_eq!(two.max_concurrent_fixers, 2);
        let zero = explain_limits(&["--max-concurrent-fixers", "0"]).unwrap_err();
        assert!(
            zero.to_string().contains("--max-concurrent-fixers"),
            "{zero}"
        );
    }
}
