//! The `salve` command line: it parses flags (in `flags.rs`), calls the library, and prints what
//! comes back. What a command sets up is in `salve::app`.

// The pipeline's futures are deep (see the library's lib.rs).
#![recursion_limit = "256"]

mod flags;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use salve::app::{self, Input};
use salve::audit::{self, Status};
use salve::pipeline::{Effect, ProcessOptions, Processed};
use salve::report;
use salve::text::escape_control;

use flags::*;

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
    let payload = Input::read(&args.input)?;
    let built = args.run.build().await?;
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
    let print = |p: Processed| {
        if !first && args.output == Output::Human {
            println!();
        }
        print_processed(args.output, &p);
        first = false;
        statuses.push(p.entry.status);
    };
    payload.process(&built.pipeline, options, print).await?;
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
    let waiting = salve::approval::find(&args.run.audit_log, &args.finding_id)?;
    if args.by.trim().is_empty() {
        bail!("--by must name who approves");
    }
    let built = args.run.build().await?;
    let request = salve::approval::ApprovalRequest {
        by: args.by,
        reason: args.reason,
        accept_new_plan: args.accept_new_plan,
    };
    let processed = built.pipeline.approve(&waiting, &request).await?;
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
    let fixed = salve::rollback::find(&args.run.audit_log, &args.finding_id)?;
    let built = args.run.build().await?;
    let request = salve::rollback::RollbackRequest {
        by: args.by,
        reason: args.reason,
        force: args.force,
    };
    let processed = built.pipeline.rollback(&fixed, &request).await?;
    print_processed(args.output, &processed);
    Ok(exit_code(std::slice::from_ref(&processed)))
}

async fn drift(command: DriftCommand) -> Result<ExitCode> {
    let (args, gate) = match command {
        DriftCommand::Check(args) => (args, false),
        DriftCommand::Gate(args) => (args, true),
    };
    let run = async {
        let context = args.run.drift_context().await?;
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
    let IacCommand::Sync { output, run } = command;
    let context = run.drift_context().await?;
    let synced = salve::iac::sync::sync(&context.pipeline, &run.audit_log).await?;
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
            window,
            ticket,
            output,
            run,
        } => {
            let context = run.drift_context().await?;
            let drift = context.drift();
            let request = salve::drift::break_glass::OpenRequest {
                resource_arn: window.resource,
                reason: window.reason,
                by: window.by,
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
        BreakGlassCommand::Close { window, run } => {
            let context = run.drift_context().await?;
            let record = context
                .drift()
                .close_break_glass(&window.resource, &window.by, &window.reason)
                .await?;
            println!(
                "break-glass closed for {} (record {record})",
                escape_control(&window.resource, false)
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
    let options = app::LambdaOptions {
        audit_log: args.audit_log,
        max_concurrency: args.max_concurrency,
        audit_sink: args.audit_sink,
        deadline_margin: Duration::from_millis(
            args.deadline_margin_ms
                .unwrap_or(args.host.limits.wall_ms.saturating_add(3000)),
        ),
    };
    app::lambda(&args.host.options()?, options).await?;
    Ok(ExitCode::SUCCESS)
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
    // Listen for signals before anything slow, so an early SIGTERM still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    let options = app::DaemonOptions {
        audit_log: args.run.audit_log,
        listen: args.listen,
        queue: salve::modes::daemon::DaemonOptions {
            queue_url: args.queue_url,
            max_in_flight: args.max_in_flight,
            max_concurrency: args.max_concurrency,
            wait_time: Duration::from_secs(args.wait_seconds),
            visibility_timeout: args.visibility_timeout_seconds.map(Duration::from_secs),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
            drain: args.drain,
        },
    };
    app::daemon(&args.run.host.options()?, options, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let options = salve::modes::replay::ReplayOptions {
        from: args.from,
        to: args.to,
        max: args.max,
        dry_run: args.dry_run,
    };
    let report = app::replay(&args.run.host.options()?, &args.run.audit_log, &options).await?;
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

async fn report(args: ReportArgs) -> Result<ExitCode> {
    use salve::scorecard::{self, GroupBy, ReportOptions};
    let now = salve::timestamp::now();
    let options = ReportOptions {
        since: args
            .since
            .as_deref()
            .map(|s| app::report_bound("--since", s, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| app::report_bound("--until", s, true))
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
    let report = app::scorecard(&args.audit_logs, args.endpoint_url, options).await?;
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
    let payload = Input::read(&args.input)?;
    let built = app::build(&args.host.options()?, app::Purpose::Explain).await?;
    let options = ProcessOptions {
        effect: Effect::Explain,
        ..ProcessOptions::default()
    };
    let mut processed = Vec::new();
    payload
        .process(&built.pipeline, options, |p| processed.push(p))
        .await?;
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
            app::FixerTest {
                fixer,
                cases,
                cache_dir,
            },
            junit,
            record,
            endpoint_url,
        )),
        FixerCommand::Precompile { fixers, cache_dir } => {
            let done = app::precompile(&fixers, &cache_dir)?;
            for f in &done.registry.ready {
                println!(
                    "{} {} sha256:{} artifact:{}",
                    escape_control(&f.manifest.name, false),
                    escape_control(&f.manifest.version, false),
                    f.sha256,
                    f.artifact_sha256
                );
            }
            for r in &done.registry.refused {
                eprintln!(
                    "refused {}: {}",
                    r.path.display(),
                    escape_control(&r.error, false)
                );
            }
            println!(
                "{} fixer(s) in {} for engine {:016x}; ship it with its key ({})",
                done.registry.ready.len(),
                done.dir.display(),
                done.engine_hash,
                done.key_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            Ok(if done.registry.refused.is_empty() {
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
            let report = app::inspect(&fixer, installed.as_deref())?;
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
    test: app::FixerTest,
    junit: Option<PathBuf>,
    record: bool,
    endpoint_url: Option<String>,
) -> Result<ExitCode> {
    use salve::fixer_test;
    let (under_test, mut cases) = test.load()?;
    if record {
        app::record_cases(&under_test, &mut cases, endpoint_url, |recorded| {
            println!("{recorded}")
        })
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut results = Vec::new();
    for case in &cases {
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
    let document = match command {
        IamCommand::CustomerRole {
            config,
            fixers,
            cache_dir,
            platform_role_arn,
            external_id_env,
            account,
            only,
        } => {
            let external_id = external_id_env
                .map(|var| {
                    std::env::var(&var)
                        .with_context(|| format!("reading the external ID from ${var}"))
                })
                .transpose()?;
            let (permissions, trust) = app::customer_role(
                config.as_deref(),
                &fixers,
                &cache_dir,
                &platform_role_arn,
                external_id.as_deref(),
                account.as_deref(),
            )?;
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
        } => app::platform_role(config.as_deref(), &queue_arns, audit_sink.as_deref())?,
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
