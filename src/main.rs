//! The `cutover` command line: parses flags, sets up logging to a file, and hands over to
//! the library. Errors are printed with what failed and how to fix it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use cutover::cli::{
    CheckArgs, Cli, Command, CommonArgs, PlanCommand, PlanShowArgs, RehearseArgs, VerifyArgs,
};

use cutover::clock::ClockKind;
use cutover::plan::{self, Plan};
use cutover::rehearse::{self, Rehearsal};

/// Standard output that a closed pipe does not turn into a panic: `cutover plan inputs | head`
/// ends quietly, as other command-line tools do.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(&format!($($arg)*))
    };
}

macro_rules! outln {
    ($($arg:tt)*) => {
        write_stdout(&format!("{}\n", format!($($arg)*)))
    };
}

fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`| head`): nothing left to say to anyone.
            std::process::exit(0);
        }
        eprintln!("cutover: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

fn operator(arg: &Option<String>) -> String {
    arg.clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// A plan file and the approvers' keys it names (`[share] approvers`).
fn load_plan(path: &Path) -> Result<Plan, ExitCode> {
    plan::load(path)
        .and_then(|mut p| {
            cutover::transcript::approval::load_into(&mut p, path)?;
            Ok(p)
        })
        .map_err(|errors| {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), path.display());
            ExitCode::from(2)
        })
}

/// Logs go to a file, created private (0600: it names hosts, steps and errors); the guard
/// flushes it on exit.
fn init_logging(path: &Path) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    // A log file from an older release may have been created 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
    }
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,aws=warn,hyper=warn")
    });
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
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
        | Command::Plan { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => None,
    };
    let _log_guard = match (&cli.log_file, sessions_dir) {
        // Asked for by name: a log that cannot be written is an error, not a silent loss.
        (Some(path), _) => match init_logging(path) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!(
                    "cutover: --log-file: {e} (give a writable file path, or leave --log-file out to log to <sessions-dir>/cutover.log)"
                );
                return ExitCode::from(2);
            }
        },
        (None, Some(dir)) => match init_logging(&dir.join("cutover.log")) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("cutover: warning: no log file: {e} (pass --log-file FILE)");
                None
            }
        },
        (None, None) => None,
    };
    if let Err(e) = cutover::net::set_connect_timeout(cli.connect_timeout) {
        eprintln!("cutover: {e}");
        return ExitCode::from(2);
    }
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
            let share = args.share.options(args.status.allow_remote)?;
            let status = args.status.listener(share.is_some())?;
            let db = cutover::db::DbOptions {
                heartbeat: args.heartbeat,
                ..Default::default()
            };
            live_cmd(
                args.plan,
                args.aws.overrides(),
                args.common,
                Listeners { share, status },
                db,
                true,
            )
            .await
        }
        Command::Watch(args) => {
            let status = args.status.listener(false)?;
            live_cmd(
                args.plan,
                args.aws.overrides(),
                args.common,
                Listeners {
                    share: None,
                    status,
                },
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
                outln!("{}", cutover::db::heartbeat_setup_sql(plan.source.engine));
                return Ok(ExitCode::SUCCESS);
            }
            let db = cutover::db::connect(&plan, cutover::event::Side::Source).await?;
            cutover::db::heartbeat_setup(&db).await?;
            outln!(
                "heartbeat table {} ready on {}",
                cutover::db::HEARTBEAT_TABLE,
                plan.source.label
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Attach(args) => {
            let theme = cutover::ui::Theme::resolve(args.theme.as_deref())?;
            let sign_key = match &args.sign_key {
                Some(p) => {
                    let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
                    Some(
                        cutover::transcript::approval::Signer::from_file(p, agent.as_deref())
                            .map_err(|e| anyhow::anyhow!("--sign-key {e}"))?,
                    )
                }
                None => None,
            };
            let end = cutover::share::run_attach(
                &args.share_addr()?,
                args.fingerprint.as_ref(),
                &args.token,
                // An invite's token carries its own name; the driver asks for one only
                // with the shared observers' token.
                args.name.as_deref().unwrap_or_default(),
                sign_key.as_ref(),
                &theme,
            )
            .await?;
            if let cutover::share::AttachEnd::Disconnected(why) = end {
                eprintln!("cutover: the shared session ended: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check_cmd(args).await,
        Command::Drift(args) => Ok(ExitCode::from(
            u8::try_from(cutover::drift::drift_command(args).await?).unwrap_or(2),
        )),
        Command::Verify(args) => Ok(ExitCode::from(u8::try_from(verify_cmd(&args)).unwrap_or(2))),
        Command::Replay { args, theme } => {
            let theme = cutover::ui::Theme::resolve(theme.as_deref())?;
            cutover::replay::run_replay_args(&args, &theme).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            out!(
                "{}",
                cutover::report::report_with(
                    &args.file,
                    args.format.into(),
                    &args.anchors.options()?
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume(args) => {
            cutover::resume::run_resume_args(&args, &operator(&args.operator)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            command: PlanCommand::Show(args),
        } => plan_show_cmd(args).await,
        Command::Plan { command } => Ok(plan_cmd(command)),
        Command::Completions { shell } => {
            let mut cmd = <cutover::cli::Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cutover", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man_cmd(out.as_deref()),
    }
}

/// What a live session listens on: `--share` (run) and `--status-addr`.
struct Listeners {
    share: Option<cutover::share::ShareOptions>,
    status: Option<cutover::status::StatusListener>,
}

/// `run` and `watch`: the cockpit on real backends; only `run` builds an actuator (and
/// sends the plan's notifications).
async fn live_cmd(
    path: PathBuf,
    aws: cutover::aws::AwsOverrides,
    common: CommonArgs,
    listeners: Listeners,
    db_opts: cutover::db::DbOptions,
    drive: bool,
) -> anyhow::Result<ExitCode> {
    let Listeners { share, status } = listeners;
    use cutover::session::{Session, SessionConfig};
    let plan = match load_plan(&path) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    cutover::backend::require_real(&plan)?;
    let theme = cutover::ui::Theme::resolve(common.theme.as_deref())?;
    let outside = cutover::outside::Outside::prepare(&plan, drive, status)?;
    let backends = cutover::backend::Backends::connect(&plan, &aws).await?;
    // A watcher started after the driver's flip follows its change (the driver follows its own).
    let followed = if drive {
        None
    } else {
        cutover::resume::last_recorded_dns_change(&common.sessions_dir, &plan)
    };
    if let Some((_, id)) = &followed {
        backends.follow_dns_change_id(&plan, id);
    }
    let sources = backends.sources(&plan, db_opts);
    let actuator = drive.then(|| backends.actuator());
    let operator = operator(&common.operator);
    let aws_identity = backends.aws_identity().cloned();
    let (mut session, mut inbox) = Session::open_as(
        SessionConfig {
            plan: Arc::clone(&plan),
            mode: if drive {
                cutover::event::SessionMode::Drive
            } else {
                cutover::event::SessionMode::Watch
            },
            operator: operator.clone(),
            sessions_dir: Some(common.sessions_dir.clone()),
            actuator,
            sign_key: common.sign_key()?,
        },
        aws_identity.clone(),
    )?;
    let outside = outside.attach(&mut session, aws_identity.clone())?;
    let mut notes = rehearse::aws_notes(aws_identity.as_ref(), &backends.warnings());
    if let Some((file, id)) = &followed {
        notes.push(cutover::event::Event::Note {
            at: cutover::event::now_ms(),
            text: format!(
                "dns.status follows change {id}, the last one recorded in {}",
                file.display()
            ),
        });
    }
    session.ingest(notes)?;
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
    ui_state.aws = aws_identity.as_ref().map(|a| a.label());
    let sharing = match share {
        Some(opts) => {
            let handle = cutover::share::start_share(&mut session, opts).await?;
            rehearse::announce_share(&handle, &session.plan, &mut ui_state);
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
    outside.finish(&mut session, &mut inbox).await?;
    if let Some(handle) = sharing {
        handle.shutdown("the session ended").await;
    }
    result?;
    out!("{}", rehearse::transcript_lines(&session));
    Ok(ExitCode::SUCCESS)
}

/// The read-only sources of a real plan (check, plan show --check), with `dns.status`
/// following the last Route 53 change a driving session recorded in `sessions_dir`.
async fn read_only_sources(
    plan: &Plan,
    aws: &cutover::cli::AwsArgs,
    sessions_dir: &Path,
) -> Result<
    (
        cutover::backend::Backends,
        Vec<Arc<dyn cutover::source::Source>>,
    ),
    ExitCode,
> {
    let backends = match cutover::backend::Backends::connect(plan, &aws.overrides()).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cutover: {e:#}");
            return Err(ExitCode::from(2));
        }
    };
    for w in backends.warnings() {
        eprintln!("cutover: warning: {w}");
    }
    if let Some((_, id)) = cutover::resume::last_recorded_dns_change(sessions_dir, plan) {
        backends.follow_dns_change_id(plan, &id);
    }
    let sources = backends.sources(plan, cutover::db::DbOptions::default());
    Ok((backends, sources))
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
    let (backends, sources) = match read_only_sources(&plan, &args.aws, &args.sessions_dir).await {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let mut report = cutover::check::check(Arc::clone(&plan), &sources).await;
    report.aws = backends.aws_identity().cloned();
    out!("{}", cutover::check::render_check(&report, args.json));
    Ok(ExitCode::from(u8::try_from(report.exit_code).unwrap_or(2)))
}

async fn plan_show_cmd(args: PlanShowArgs) -> anyhow::Result<ExitCode> {
    let plan = match &args.plan {
        Some(path) => match load_plan(path) {
            Ok(p) => Arc::new(p),
            Err(code) => return Ok(code),
        },
        None => Arc::new(plan::rehearsal_plan()),
    };
    if !args.check {
        out!(
            "{}",
            cutover::plan_show::render(&cutover::plan_show::show(&plan, None), args.json)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = cutover::backend::require_real(&plan) {
        eprintln!("cutover: plan show --check: {e} (drop --check to see the dry run)");
        return Ok(ExitCode::from(2));
    }
    let (_backends, sources) = match read_only_sources(&plan, &args.aws, &args.sessions_dir).await {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let started = cutover::event::now_ms();
    let events = cutover::source::poll_once(&sources).await;
    let show = cutover::plan_show::show(&plan, Some((&events, started, cutover::event::now_ms())));
    out!("{}", cutover::plan_show::render(&show, args.json));
    Ok(ExitCode::SUCCESS)
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
    if let Some(n) = args.sweep {
        return sweep_cmd(&args, plan, n).await;
    }
    if args.json && !args.autopilot {
        anyhow::bail!(
            "--json prints the autopilot's summary or a sweep's report: add --autopilot or --sweep N"
        );
    }
    let mut rehearsal = Rehearsal {
        plan: Arc::new(plan),
        faults: args.faults(),
        seed: args.seed,
        sessions_dir: Some(args.common.sessions_dir.clone()),
        operator: operator(&args.common.operator),
        sign_key: args.common.sign_key()?,
        clock: ClockKind::Real,
    };
    let share = args.share.options(args.status.allow_remote)?;
    let outside = cutover::outside::Outside::prepare(
        &rehearsal.plan,
        true,
        args.status.listener(share.is_some())?,
    )?;
    // What talks to the world outside runs on its clock: webhooks, the status endpoint,
    // [[probe]] requests and http actions (their timeouts are real).
    let talks_http = !rehearsal.plan.probes.is_empty()
        || rehearsal.plan.steps.iter().any(|s| {
            matches!(s.action, cutover::plan::Action::Http(_))
                || matches!(s.undo, Some(cutover::plan::Action::Http(_)))
        });
    rehearsal.clock = match (args.clock, args.autopilot) {
        (Some(ClockKind::Sim), false) => anyhow::bail!(
            "--clock sim needs --autopilot: the interactive cockpit runs at the operator's pace, on the wall clock"
        ),
        (Some(ClockKind::Sim), true) if !outside.is_empty() => anyhow::bail!(
            "[[notify]] webhooks and --status-addr run on the wall clock; use --clock real with them"
        ),
        (Some(ClockKind::Sim), true) if talks_http => anyhow::bail!(
            "[[probe]] requests and http actions run on the wall clock; use --clock real with them"
        ),
        (Some(kind), _) => kind,
        (None, true) if outside.is_empty() && !talks_http => ClockKind::Sim,
        (None, _) => ClockKind::Real,
    };
    if args.autopilot && args.share.share.is_some() {
        anyhow::bail!(
            "--share shares the interactive cockpit; drop --autopilot to share a rehearsal"
        );
    }
    let summary = if args.autopilot {
        rehearse::autopilot_outside(rehearsal, outside).await?
    } else {
        let theme = cutover::ui::Theme::resolve(args.common.theme.as_deref())?;
        rehearse::interactive(rehearsal, theme, share, outside).await?
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        out!("{}", summary.render_text());
    }
    Ok(if summary.safe() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `cutover rehearse --sweep N`: many simulated rehearsals, each checked for the safety rules.
async fn sweep_cmd(args: &RehearseArgs, plan: Plan, n: u64) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal, Write};
    if args.clock == Some(ClockKind::Real) {
        anyhow::bail!("--sweep runs on simulated time only (--clock sim)");
    }
    if n == 0 {
        anyhow::bail!("--sweep needs at least one seed");
    }
    let pool = if args.chaos.is_empty() {
        cutover::sim::Fault::ALL.to_vec()
    } else {
        args.faults()
    };
    let opts = cutover::sweep::SweepOptions {
        plan: Arc::new(plan),
        plan_path: args.plan.as_ref().map(|p| p.display().to_string()),
        first_seed: args.seed_from,
        count: n,
        pool,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let tty = std::io::stderr().is_terminal();
    let report = tokio::task::spawn_blocking(move || {
        let mut last_line = 0u64;
        cutover::sweep::run(&opts, |p| {
            let mut err = std::io::stderr().lock();
            // A tty gets a bar redrawn in place; a log gets a line every tenth of the way.
            if tty {
                let width = 30usize;
                let filled =
                    usize::try_from(p.done * width as u64 / p.total.max(1)).unwrap_or(width);
                let _ = write!(
                    err,
                    "\r[{}{}] {}/{} seeds  {} violation(s)  {:.1} seeds/s ",
                    "=".repeat(filled),
                    " ".repeat(width - filled.min(width)),
                    p.done,
                    p.total,
                    p.violations,
                    p.done as f64 / p.elapsed_s.max(1e-9)
                );
                if p.done == p.total {
                    let _ = writeln!(err);
                }
            } else if p.done == p.total || p.done * 10 / p.total.max(1) > last_line {
                last_line = p.done * 10 / p.total.max(1);
                let _ = writeln!(
                    err,
                    "sweep: {}/{} seeds, {} violation(s), {:.1}s",
                    p.done, p.total, p.violations, p.elapsed_s
                );
            }
        })
    })
    .await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.render_text());
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The man page on stdout, or every page (the command's and each subcommand's) in `dir`.
fn man_cmd(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cmd = <cutover::cli::Cli as clap::CommandFactory>::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                anyhow::anyhow!("cannot write the man pages to {}: {e}", dir.display())
            })?;
            outln!(
                "man pages written to {} (read one with: man -l {}/cutover.1)",
                dir.display(),
                dir.display()
            );
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            out!("{}", String::from_utf8_lossy(&buf));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plan_cmd(command: PlanCommand) -> ExitCode {
    match command {
        PlanCommand::Validate { files } => {
            let mut failed = 0;
            for f in &files {
                match plan::load(f).and_then(|mut p| {
                    cutover::transcript::approval::load_into(&mut p, f)?;
                    Ok(p)
                }) {
                    Ok(p) => outln!(
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
            let w = plan::input::names()
                .map(|(n, _)| n.len())
                .max()
                .unwrap_or(0);
            for (name, what) in plan::input::names() {
                outln!("{name:<w$}  {what}");
            }
            outln!(
                "{:<w$}  any metric the plan polls, e.g. metric.CPUUtilization",
                "metric.<Name>"
            );
            ExitCode::SUCCESS
        }
        PlanCommand::Example => {
            out!("{}", plan::REHEARSAL_PLAN);
            ExitCode::SUCCESS
        }
        // Async (it polls sources with --check): dispatched with the other async commands.
        PlanCommand::Show(_) => ExitCode::from(2),
    }
}

/// `cutover verify`: prints the report and returns the exit code (0 intact, 1 tampered or
/// damaged, 2 unreadable).
fn verify_cmd(args: &VerifyArgs) -> i32 {
    let opts = match args.anchors.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cutover verify: {e:#}");
            return 2;
        }
    };
    let report = cutover::transcript::verify::verify_with(&args.file, &opts);
    if args.json {
        outln!("{}", report.render_json());
    } else {
        out!("{}", report.render());
    }
    report.exit_code()
}
