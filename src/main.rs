//! The `cutover` command line: parses flags, sets up logging to a file, and hands over to
//! the library. Errors are printed with what failed and how to fix it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use cutover::plan::{self, Plan};
use cutover::rehearse::{self, Rehearsal};
use cutover::sim::Fault;

/// A terminal cockpit for the maintenance window of a live database migration.
#[derive(Parser)]
#[command(name = "cutover", version, about, long_about = None)]
struct Cli {
    /// Write the program's log here (default: <sessions-dir>/cutover.log). Never to the screen.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rehearse a whole cutover on the embedded world (SQLite, simulated DMS, DNS, clients).
    Rehearse(RehearseArgs),
    /// Drive a real migration window: the cockpit with actions enabled.
    Run(RunArgs),
    /// The same cockpit, read-only: no action can be taken from it.
    Watch(WatchArgs),
    /// One poll of every source, then the gate state of the next step (exit 0 green, 1 red or
    /// unknown, 2 plan or configuration error).
    Check(CheckArgs),
    /// Compare two databases table by table (counts, checksums, differing keys).
    Drift(cutover::db::DriftArgs),
    /// Check a transcript's hash chain and schema: exit 0 intact, 1 tampered or damaged, 2
    /// unreadable; names the first bad line and why.
    Verify(cutover::transcript::verify::VerifyArgs),
    /// Replay a transcript in the cockpit: the same panes, rebuilt from the recorded events.
    Replay {
        #[command(flatten)]
        args: cutover::replay::ReplayArgs,
        /// Colour theme: dark, light, high-contrast, colorblind, or a path to a theme file.
        #[arg(long, value_name = "NAME|PATH")]
        theme: Option<String>,
    },
    /// The postmortem of a transcript, as Markdown or JSON.
    Report(cutover::report::ReportArgs),
    /// Continue a session that died mid-cutover, in a new transcript linked to the old one.
    Resume(cutover::resume::ResumeArgs),
    /// Attach to a shared session: the same cockpit, live, read-only; approve four-eyes steps.
    Attach(cutover::share::AttachArgs),
    /// Create the heartbeat table on the plan's source and write a first beat (needed once
    /// before `run --heartbeat`; print the SQL with --print-sql to run it yourself).
    HeartbeatSetup {
        /// The plan file.
        plan: PathBuf,
        /// Print the CREATE TABLE for the source's engine instead of running it.
        #[arg(long)]
        print_sql: bool,
    },
    /// Work with plan files.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Check plan files; every error is reported with file:line:col, reason and hint.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the gate inputs a plan may test.
    Inputs,
    /// Print the built-in rehearsal plan (a starting point for your own).
    Example,
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// Colour theme: dark, light, high-contrast, colorblind, or a path to a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// Where transcripts are written.
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    sessions_dir: PathBuf,
    /// Who is at the keyboard (recorded with every decision). Default: $USER.
    #[arg(long)]
    operator: Option<String>,
}

#[derive(Args)]
struct RehearseArgs {
    /// Run headless: confirm each step when its gates are green, roll back on timeout.
    #[arg(long)]
    autopilot: bool,
    /// With --autopilot: print the summary as JSON.
    #[arg(long, requires = "autopilot")]
    json: bool,
    /// Faults to inject, comma-separated: lag-spike, drop-change, api-throttle, dns-slow,
    /// replicator-stall.
    #[arg(long, value_name = "FAULT[,FAULT]", value_delimiter = ',', value_parser = parse_fault)]
    chaos: Vec<Fault>,
    /// Seed for the workload and the fault schedule (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A rehearsal plan file instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    share: cutover::share::ShareArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct RunArgs {
    /// The plan file.
    plan: PathBuf,
    /// Write a heartbeat row on the source every second and read it on the target for
    /// end-to-end lag (`cutover heartbeat-setup` creates the table).
    #[arg(long)]
    heartbeat: bool,
    #[command(flatten)]
    aws: cutover::aws::AwsArgs,
    #[command(flatten)]
    share: cutover::share::ShareArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct WatchArgs {
    /// The plan file.
    plan: PathBuf,
    #[command(flatten)]
    aws: cutover::aws::AwsArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// The plan file.
    plan: PathBuf,
    /// Print readings and gates as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: cutover::aws::AwsArgs,
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    s.trim().parse::<Fault>().map_err(|e| e.to_string())
}

fn operator(arg: &Option<String>) -> String {
    arg.clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "operator".into())
}

fn load_plan(path: &Path) -> Result<Plan, ExitCode> {
    plan::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in {}", errors.0.len(), path.display());
        ExitCode::from(2)
    })
}

/// Logs go to a file; the guard flushes it on exit.
fn init_logging(path: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,aws=warn,hyper=warn")
    });
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sessions_dir = match &cli.command {
        Command::Rehearse(a) => Some(a.common.sessions_dir.clone()),
        Command::Run(a) => Some(a.common.sessions_dir.clone()),
        Command::Watch(a) => Some(a.common.sessions_dir.clone()),
        Command::Resume(a) => Some(a.sessions_dir.clone()),
        Command::Check(_)
        | Command::Drift(_)
        | Command::Attach(_)
        | Command::Verify(_)
        | Command::Replay { .. }
        | Command::Report(_)
        | Command::HeartbeatSetup { .. }
        | Command::Plan { .. } => None,
    };
    let log_path = cli
        .log_file
        .clone()
        .or_else(|| sessions_dir.map(|d| d.join("cutover.log")));
    let _log_guard = log_path.as_deref().and_then(init_logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    // Background tasks (pollers, the world) are done by now; don't wait on stragglers.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cutover: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Rehearse(args) => rehearse_cmd(args).await,
        Command::Run(args) => {
            let share = args.share.options()?;
            let db = cutover::db::DbOptions {
                heartbeat: args.heartbeat,
                ..Default::default()
            };
            live_cmd(args.plan, args.aws, args.common, share, db, true).await
        }
        Command::Watch(args) => {
            live_cmd(
                args.plan,
                args.aws,
                args.common,
                None,
                Default::default(),
                false,
            )
            .await
        }
        Command::HeartbeatSetup { plan, print_sql } => {
            let plan = match load_plan(&plan) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            if print_sql {
                println!("{}", cutover::db::heartbeat_setup_sql(plan.source.engine));
                return Ok(ExitCode::SUCCESS);
            }
            let db = cutover::db::connect(&plan, cutover::event::Side::Source).await?;
            cutover::db::heartbeat_setup(&db).await?;
            println!(
                "heartbeat table {} ready on {}",
                cutover::db::HEARTBEAT_TABLE,
                plan.source.label
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Attach(args) => {
            let theme = cutover::ui::Theme::resolve(args.theme.as_deref())?;
            let end =
                cutover::share::run_attach(&args.share_addr()?, &args.token, &args.name, &theme)
                    .await?;
            if let cutover::share::AttachEnd::Disconnected(why) = end {
                eprintln!("cutover: the shared session ended: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check_cmd(args).await,
        Command::Drift(args) => Ok(ExitCode::from(
            u8::try_from(cutover::db::drift_command(args).await?).unwrap_or(2),
        )),
        Command::Verify(args) => Ok(ExitCode::from(
            u8::try_from(cutover::transcript::verify::verify_command(&args)).unwrap_or(2),
        )),
        Command::Replay { args, theme } => {
            let theme = cutover::ui::Theme::resolve(theme.as_deref())?;
            cutover::replay::run_replay_args(&args, &theme).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            print!("{}", cutover::report::report(&args.file, args.format)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume(args) => {
            cutover::resume::run_resume_args(&args, &operator(&args.operator)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { command } => Ok(plan_cmd(command)),
    }
}

/// `run` and `watch`: the cockpit on real backends; only `run` builds an actuator.
async fn live_cmd(
    path: PathBuf,
    aws: cutover::aws::AwsArgs,
    common: CommonArgs,
    share: Option<cutover::share::ShareOptions>,
    db_opts: cutover::db::DbOptions,
    drive: bool,
) -> anyhow::Result<ExitCode> {
    use cutover::session::{Session, SessionConfig};
    let plan = match load_plan(&path) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    cutover::backend::require_real(&plan)?;
    let theme = cutover::ui::Theme::resolve(common.theme.as_deref())?;
    let backends = cutover::backend::Backends::connect(&plan, &aws).await?;
    let sources = backends.sources(&plan, db_opts);
    let actuator = drive.then(|| backends.actuator());
    let operator = operator(&common.operator);
    let (mut session, mut inbox) = Session::open(SessionConfig {
        plan: Arc::clone(&plan),
        mode: if drive { "drive" } else { "watch" }.into(),
        operator: operator.clone(),
        sessions_dir: Some(common.sessions_dir.clone()),
        actuator,
    })?;
    let stop = tokio_util::sync::CancellationToken::new();
    let pollers = cutover::source::spawn_pollers(sources, session.sender(), stop.clone());
    let mode = if drive {
        cutover::ui::Mode::Drive
    } else {
        cutover::ui::Mode::Watch
    };
    let mut ui_state = cutover::ui::UiState::new(
        mode,
        operator,
        session.transcript_path().map(|p| p.display().to_string()),
    );
    let sharing = match share {
        Some(opts) => {
            let handle = cutover::share::start_share(&mut session, opts).await?;
            rehearse::announce_share(&handle, &mut ui_state);
            Some(handle)
        }
        None => None,
    };
    let result = cutover::app::run(&mut session, &mut inbox, ui_state, &theme).await;
    stop.cancel();
    for p in pollers {
        // A poller that failed has already reported through the session.
        let _ = p.await;
    }
    let reason = match &result {
        Ok(exit) => exit.reason(),
        Err(e) => format!("cockpit error: {e}"),
    };
    let mut batch = inbox.pending();
    batch.push(cutover::event::Event::SessionEnded {
        at: cutover::event::now_ms(),
        reason,
    });
    session.ingest(batch)?;
    if let Some(handle) = sharing {
        handle.shutdown("the session ended").await;
    }
    result?;
    if let Some(p) = session.transcript_path() {
        println!("transcript: {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn check_cmd(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(&args.plan) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    if let Err(e) = cutover::backend::require_real(&plan) {
        eprintln!("cutover: {e}");
        return Ok(ExitCode::from(2));
    }
    let sources = match cutover::backend::Backends::connect(&plan, &args.aws).await {
        Ok(b) => b.sources(&plan, cutover::db::DbOptions::default()),
        Err(e) => {
            eprintln!("cutover: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = cutover::check::check(Arc::clone(&plan), &sources).await;
    print!("{}", cutover::check::render_check(&report, args.json));
    Ok(ExitCode::from(u8::try_from(report.exit_code).unwrap_or(2)))
}

async fn rehearse_cmd(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    let plan = match &args.plan {
        Some(path) => match load_plan(path) {
            Ok(p) => p,
            Err(code) => return Ok(code),
        },
        None => plan::rehearsal_plan(),
    };
    if !plan.is_rehearsal() {
        anyhow::bail!(
            "plan \"{}\" names real endpoints; rehearse needs engine = \"rehearsal\" everywhere (use `cutover run` for a real migration)",
            plan.name
        );
    }
    let rehearsal = Rehearsal {
        plan: Arc::new(plan),
        faults: args.chaos.clone(),
        seed: args.seed,
        sessions_dir: Some(args.common.sessions_dir.clone()),
        operator: operator(&args.common.operator),
    };
    if args.autopilot && args.share.share.is_some() {
        anyhow::bail!(
            "--share shares the interactive cockpit; drop --autopilot to share a rehearsal"
        );
    }
    let summary = if args.autopilot {
        rehearse::autopilot(rehearsal).await?
    } else {
        let theme = cutover::ui::Theme::resolve(args.common.theme.as_deref())?;
        rehearse::interactive(rehearsal, theme, args.share.options()?).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render_text());
    }
    Ok(if summary.safe() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plan_cmd(command: PlanCommand) -> ExitCode {
    match command {
        PlanCommand::Validate { files } => {
            let mut failed = 0;
            for f in &files {
                match plan::load(f) {
                    Ok(p) => println!(
                        "{}: ok — plan \"{}\", {} steps, {} gates",
                        f.display(),
                        p.name,
                        p.steps.len(),
                        p.steps.iter().map(|s| s.gates.len()).sum::<usize>()
                    ),
                    Err(errors) => {
                        failed += 1;
                        eprintln!("{errors}");
                        eprintln!("{} error(s) in {}", errors.0.len(), f.display());
                    }
                }
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        PlanCommand::Inputs => {
            for (name, what) in plan::input::NAMES {
                println!("{name:<24} {what}");
            }
            println!(
                "{:<24} any metric the plan polls, e.g. metric.CPUUtilization",
                "metric.<Name>"
            );
            ExitCode::SUCCESS
        }
        PlanCommand::Example => {
            print!("{}", plan::REHEARSAL_PLAN);
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn chaos_takes_a_comma_separated_list() {
        use clap::Parser;
        let cli =
            super::Cli::try_parse_from(["cutover", "rehearse", "--chaos", "lag-spike,drop-change"])
                .unwrap();
        match cli.command {
            super::Command::Rehearse(a) => assert_eq!(a.chaos.len(), 2),
            _ => panic!("parsed the wrong command"),
        }
    }
}
