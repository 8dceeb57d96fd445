//! The `salve` command line. Everything it does lives in the library; this file only parses
//! arguments and prints.

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
use salve::pipeline::{FixerSettings, Pipeline, PipelineConfig, ProcessOptions, Processed};
use salve::registry::FixerRegistry;
use salve::report;
use salve::runtime::{Runtime, RuntimeLimits};

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
    /// Work with fixer components.
    Fixer {
        #[command(subcommand)]
        command: FixerCommand,
    },
    /// Print IAM policies (JSON that AWS accepts) for permission reviews.
    Iam {
        #[command(subcommand)]
        command: IamCommand,
    },
}

#[derive(Subcommand)]
enum FixerCommand {
    /// Shows a fixer's world, imports, declared resource type and controls, IAM actions and
    /// SHA-256, and whether it passes the link-time least-privilege check (exit 2 if not).
    Inspect {
        fixer: PathBuf,
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
        #[arg(long, env = "SALVE_CACHE_DIR", default_value = ".salve/cache")]
        cache_dir: PathBuf,
        /// The role salve itself runs as (the trust policy's principal).
        #[arg(long)]
        platform_role_arn: String,
        /// Read the external ID from this environment variable; without it the trust policy holds
        /// the placeholder `<external-id>`.
        #[arg(long)]
        external_id_env: Option<String>,
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
    },
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
    #[command(flatten)]
    host: HostArgs,
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
    /// Where compiled fixers are cached, keyed by their SHA-256.
    #[arg(long, env = "SALVE_CACHE_DIR", default_value = ".salve/cache")]
    cache_dir: PathBuf,
    /// Send every AWS call to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// A fixer setting, as `<fixer>.<key>=<value>` (e.g. `sg-close-admin-ports.admin-ports=22,3389`);
    /// overrides the config file's `[fixers.<fixer>]`.
    #[arg(long = "setting", value_name = "FIXER.KEY=VALUE")]
    settings: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args)]
struct LimitArgs {
    /// Linear memory cap per fixer, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// Guest CPU time per phase, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    cpu_ms: u64,
    /// Wall-clock time per finding, host calls included, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
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

fn read_input(input: &str) -> Result<Vec<u8>> {
    let limit = salve::ingest::MAX_PAYLOAD_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if input == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("reading the finding from stdin")?;
    } else {
        std::fs::File::open(input)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("reading the finding from {input}"))?;
    }
    Ok(bytes)
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

async fn build_pipeline(host: &HostArgs, audit: Option<AuditLog>) -> Result<Pipeline> {
    let config = load_config(host.config.as_deref())?;
    let runtime = Runtime::new(host.limits.to_limits()?, Some(host.cache_dir.clone()))?;
    let registry = FixerRegistry::load_dir(&runtime, &host.fixers)?;
    let backends = AwsBackends::load(
        AwsOptions {
            endpoint_url: host.endpoint_url.clone(),
        },
        &config.deployment,
        config.account_roles(),
    )
    .await;
    let notifier = Notifier::new(config.notify.clone(), Some(backends.sdk_config().clone()));
    let mut pipeline_config = PipelineConfig::from_config(&config, notifier)?;
    pipeline_config.settings = parse_settings(&host.settings, pipeline_config.settings)?;
    Ok(Pipeline::new(
        runtime,
        registry,
        Box::new(backends),
        audit,
        pipeline_config,
    ))
}

/// The exit code for a batch: the most serious outcome wins.
fn exit_code(processed: &[Processed]) -> ExitCode {
    let statuses: Vec<Option<Status>> = processed.iter().map(|p| p.entry.status).collect();
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
    let pipeline = build_pipeline(&args.host, Some(audit)).await?;
    let options = ProcessOptions {
        dry_run: args.dry_run,
        explain: false,
    };
    let processed = pipeline.process_payload(&payload, options).await?;
    for (i, p) in processed.iter().enumerate() {
        match args.output {
            Output::Json => {
                if let Some(sealed) = &p.sealed {
                    println!("{}", sealed.line);
                }
            }
            Output::Human => {
                if i > 0 {
                    println!();
                }
                print!("{}", report::render_processed(&p.entry, p.sealed.as_ref()));
            }
        }
    }
    Ok(exit_code(&processed))
}

async fn lambda(args: LambdaArgs) -> Result<ExitCode> {
    let audit = AuditLog::open(&args.audit_log)?;
    let pipeline = std::sync::Arc::new(build_pipeline(&args.host, Some(audit)).await?);
    salve::modes::lambda::run(pipeline, args.max_concurrency).await?;
    Ok(ExitCode::SUCCESS)
}

async fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let payload = read_input(&args.input)?;
    let pipeline = build_pipeline(&args.host, None).await?;
    let options = ProcessOptions {
        dry_run: true,
        explain: true,
    };
    let processed = pipeline.process_payload(&payload, options).await?;
    for (i, p) in processed.iter().enumerate() {
        match args.output {
            Output::Json => println!("{}", serde_json::to_string(&p.entry)?),
            Output::Human => {
                if i > 0 {
                    println!();
                }
                print!("{}", report::render_explanation(&p.entry));
            }
        }
    }
    Ok(exit_code(&processed))
}

fn fixer(command: FixerCommand) -> Result<ExitCode> {
    match command {
        FixerCommand::Inspect { fixer, output } => {
            let bytes =
                std::fs::read(&fixer).with_context(|| format!("reading {}", fixer.display()))?;
            // No cache: inspection compiles afresh, so it reports on exactly these bytes.
            let runtime = Runtime::new(RuntimeLimits::default(), None)?;
            let report = runtime
                .inspect(&bytes)
                .with_context(|| format!("inspecting {}", fixer.display()))?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Human => print!("{}", report::render_fixer(&report)),
            }
            Ok(if report.least_privilege_check.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn iam(command: IamCommand) -> Result<ExitCode> {
    use salve::credentials::iam;
    let document = match command {
        IamCommand::CustomerRole {
            fixers,
            cache_dir,
            platform_role_arn,
            external_id_env,
            only,
        } => {
            let runtime = Runtime::new(RuntimeLimits::default(), Some(cache_dir))?;
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
            let permissions = iam::customer_role_policy(&registry.ready);
            let trust = iam::customer_trust_policy(&platform_role_arn, &external_id);
            match only {
                Some(PolicyPart::Permissions) => permissions,
                Some(PolicyPart::Trust) => trust,
                None => {
                    serde_json::json!({ "permissions_policy": permissions, "trust_policy": trust })
                }
            }
        }
        IamCommand::PlatformRole { config, queue_arns } => {
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
            iam::platform_role_policy(&roles, &queue_arns, &topics)
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
    // As a Lambda `bootstrap` the binary gets no arguments; the runtime API variable says where
    // it is.
    let cli =
        if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            Cli::parse_from(["salve", "lambda"])
        } else {
            Cli::parse()
        };
    // Machine-read logs (CloudWatch) get JSON, one object per line with the finding's span
    // fields, at info; a terminal gets the human format, at warn.
    let lambda_mode = matches!(cli.command, Command::Lambda(_));
    let filter = tracing_subscriber::EnvFilter::try_from_env("SALVE_LOG")
        .unwrap_or_else(|_| if lambda_mode { "info" } else { "warn" }.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if lambda_mode {
        logs.json().with_current_span(true).init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Process(args) => block_on(process(args)),
        Command::Explain(args) => block_on(explain(args)),
        Command::Lambda(args) => block_on(lambda(args)),
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
