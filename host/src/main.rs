//! The `salve` command line. Everything it does lives in the library; this file only parses
//! arguments and prints.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use salve::audit::{self, AuditLog, Status};
use salve::aws::{AwsBackends, AwsOptions};
use salve::pipeline::{FixerSettings, Pipeline, ProcessOptions};
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
    /// Process one finding in salve's canonical JSON, from a file or `-` for stdin.
    Process(ProcessArgs),
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
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
    /// The finding: a file path, or `-` for stdin.
    input: String,
    /// Stop after the plan and record it; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Directory of fixer components (*.wasm).
    #[arg(long, env = "SALVE_FIXERS", default_value = ".salve/fixers")]
    fixers: PathBuf,
    /// The audit log (JSON Lines, appended and fsynced).
    #[arg(long, env = "SALVE_AUDIT_LOG", default_value = ".salve/audit.jsonl")]
    audit_log: PathBuf,
    /// Where compiled fixers are cached, keyed by their SHA-256.
    #[arg(long, env = "SALVE_CACHE_DIR", default_value = ".salve/cache")]
    cache_dir: PathBuf,
    /// Send every AWS call to this endpoint (a local stand-in such as moto).
    #[arg(long, env = "SALVE_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// A fixer setting, as `<fixer>.<key>=<value>` (e.g. `sg-close-admin-ports.admin-ports=22,3389`).
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

fn parse_settings(raw: &[String]) -> Result<FixerSettings> {
    let mut settings: FixerSettings = BTreeMap::new();
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
    let limit = salve::finding::MAX_FINDING_BYTES as u64 + 1;
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

async fn process(args: ProcessArgs) -> Result<ExitCode> {
    let payload = read_input(&args.input)?;
    let settings = parse_settings(&args.settings)?;
    let runtime = Runtime::new(args.limits.to_limits()?, Some(args.cache_dir.clone()))?;
    let registry = FixerRegistry::load_dir(&runtime, &args.fixers)?;
    let audit = AuditLog::open(&args.audit_log)?;
    let backends = AwsBackends::load(AwsOptions {
        endpoint_url: args.endpoint_url.clone(),
    })
    .await;
    let pipeline = Pipeline::new(runtime, registry, Box::new(backends), settings, audit);
    let processed = pipeline
        .process_payload(
            &payload,
            ProcessOptions {
                dry_run: args.dry_run,
            },
        )
        .await?;
    match args.output {
        Output::Json => println!("{}", processed.sealed.line),
        Output::Human => print!(
            "{}",
            report::render_processed(&processed.entry, &processed.sealed)
        ),
    }
    Ok(match processed.entry.status {
        Some(Status::Failed) => ExitCode::from(3),
        Some(Status::Rejected) => ExitCode::from(4),
        _ => ExitCode::SUCCESS,
    })
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SALVE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Process(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(process(args))),
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
