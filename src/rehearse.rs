//! `cutover rehearse`: a whole cutover on the embedded world, driven by the operator in the
//! cockpit or by the autopilot, ending with what the window cost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::autopilot::{self, Summary};
use crate::event::{Event, SessionMode};
use crate::plan::Plan;
use crate::session::{Session, SessionConfig};
use crate::sim::{Fault, World, WorldOptions};
use crate::source::spawn_pollers_on;
use cutover_runtime::clock::{Clock, ClockKind};

/// How a rehearsal is run.
pub struct Rehearsal {
    pub plan: Arc<Plan>,
    pub faults: Vec<Fault>,
    pub seed: u64,
    pub sessions_dir: Option<PathBuf>,
    pub operator: String,
    /// The operator's key to sign the transcript with; `None`: a per-session key.
    pub sign_key: Option<crate::transcript::SessionKey>,
    /// The wall clock, or simulated time (the autopilot only: the same seed gives the same
    /// run, in a fraction of a second).
    pub clock: ClockKind,
}

/// The figures and step outcomes of a finished rehearsal.
pub fn summarize(
    session: &Session,
    rehearsal: &Rehearsal,
    blocked: Option<String>,
    clock: &Clock,
) -> Summary {
    let state = &session.state;
    let world = state.world.clone().unwrap_or_default();
    Summary {
        completed: state.completed(),
        rolled_back: state.rolled_back(),
        writes_refused: world.writes_refused,
        writes_lost: world.writes_lost,
        rows_diverged: world.rows_diverged,
        downtime_s: world.downtime_s,
        blocked_reason: blocked,
        transcript: session.transcript_path().map(|p| p.display().to_string()),
        transcript_key: session.transcript_key().map(|k| k.to_text()),
        transcript_head: session.transcript_head().map(str::to_string),
        steps: autopilot::step_summaries(state),
        guards: state.guard_figures(),
        faults: rehearsal
            .faults
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        seed: rehearsal.seed,
        clock: clock.kind().as_str().to_string(),
        source_writable: None,
        elapsed_s: clock.elapsed().as_secs_f64(),
    }
}

/// What a running rehearsal is made of: the session and its inbox, the world, and the
/// pollers with the token that stops them.
type Running = (
    Session,
    crate::session::Inbox,
    Arc<World>,
    CancellationToken,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Opens the session (and its transcript), starts the world and polls its sources.
async fn start(
    rehearsal: &mut Rehearsal,
    mode: SessionMode,
    clock: Clock,
) -> anyhow::Result<Running> {
    let (mut session, inbox) = Session::open_on(
        SessionConfig {
            plan: Arc::clone(&rehearsal.plan),
            mode,
            operator: rehearsal.operator.clone(),
            sessions_dir: rehearsal.sessions_dir.clone(),
            actuator: None,
            sign_key: rehearsal.sign_key.take(),
        },
        clock,
    )?;
    let world = World::start(
        &rehearsal.plan,
        WorldOptions {
            seed: rehearsal.seed,
            faults: rehearsal.faults.clone(),
            clock,
        },
        session.sender(),
    )
    .await?;
    session.set_actuator(world.actuator());
    let stop = CancellationToken::new();
    let mut sources = world.sources();
    sources.extend(crate::source::probe::sources(&rehearsal.plan.probes));
    let pollers = spawn_pollers_on(clock, sources, session.sender(), stop.clone());
    Ok((session, inbox, world, stop, pollers))
}

/// Runs a rehearsal headless under the autopilot.
pub async fn autopilot(rehearsal: Rehearsal) -> anyhow::Result<Summary> {
    autopilot_observed(rehearsal, |_| None).await
}

/// The autopilot, telling the world outside (`[[notify]]`, `--status-addr`).
pub async fn autopilot_outside(
    rehearsal: Rehearsal,
    outside: crate::outside::Outside,
) -> anyhow::Result<Summary> {
    autopilot_with(rehearsal, outside, |_| None).await
}

/// The autopilot, with a hook (made once the session is open) that sees the state after every
/// folded batch: the replay-determinism tests draw the live screens with it.
pub async fn autopilot_observed(
    rehearsal: Rehearsal,
    observe: impl FnOnce(&Session) -> Option<crate::session::FoldHook> + Send + 'static,
) -> anyhow::Result<Summary> {
    autopilot_with(rehearsal, crate::outside::Outside::default(), observe).await
}

/// Under simulated time the rehearsal runs on a paused single-threaded runtime of its own
/// (`clock::run_simulated`), waited for off this runtime's workers.
async fn autopilot_with(
    rehearsal: Rehearsal,
    outside: crate::outside::Outside,
    observe: impl FnOnce(&Session) -> Option<crate::session::FoldHook> + Send + 'static,
) -> anyhow::Result<Summary> {
    let setup = move |session: &mut Session| {
        if let Some(hook) = observe(session) {
            session.on_folded(hook);
        }
    };
    match rehearsal.clock {
        ClockKind::Real => autopilot_on(Clock::real(), rehearsal, outside, setup).await,
        ClockKind::Sim => {
            if !outside.is_empty() {
                anyhow::bail!(
                    "[[notify]] and --status-addr run on the wall clock; rehearse them with --clock real"
                );
            }
            tokio::task::spawn_blocking(move || autopilot_simulated_with(rehearsal, setup))
                .await
                .map_err(|e| anyhow::anyhow!("the simulated rehearsal's thread failed: {e}"))?
        }
    }
}

/// Runs one autopilot rehearsal on simulated time on this thread (blocking it), with
/// `setup` given the open session first (to observe it): what a sweep runs on each of its
/// threads.
pub fn autopilot_simulated_with(
    rehearsal: Rehearsal,
    setup: impl FnOnce(&mut Session) + Send + 'static,
) -> anyhow::Result<Summary> {
    cutover_runtime::clock::run_simulated(move |clock| async move {
        autopilot_on(clock, rehearsal, crate::outside::Outside::default(), setup).await
    })?
}

async fn autopilot_on(
    clock: Clock,
    mut rehearsal: Rehearsal,
    outside: crate::outside::Outside,
    setup: impl FnOnce(&mut Session),
) -> anyhow::Result<Summary> {
    let (mut session, mut inbox, world, stop, pollers) =
        start(&mut rehearsal, SessionMode::RehearsalAutopilot, clock).await?;
    let outside = outside.attach(&mut session, None)?;
    setup(&mut session);

    // Generous: every step's timeout, plus its action's, plus slack.
    let deadline = Duration::from_millis(
        rehearsal
            .plan
            .steps
            .iter()
            .map(|s| s.timeout_ms as u64 * 2)
            .sum::<u64>()
            + 30_000,
    );
    let outcome = autopilot::drive(
        &mut session,
        &mut inbox,
        Duration::from_millis(200),
        deadline,
    )
    .await;
    finish(
        &mut session,
        &mut inbox,
        &world,
        stop,
        pollers,
        "autopilot finished",
    )
    .await?;
    outside.finish(&mut session, &mut inbox).await?;
    let blocked = outcome?;
    let mut summary = summarize(&session, &rehearsal, blocked, &clock);
    summary.source_writable = Some(!world.read_only(crate::event::Side::Source).await);
    Ok(summary)
}

/// Stops the sources, lets the world settle and records its final figures and the end.
pub async fn finish(
    session: &mut Session,
    inbox: &mut crate::session::Inbox,
    world: &Arc<World>,
    stop: CancellationToken,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    reason: &str,
) -> anyhow::Result<()> {
    stop.cancel();
    for p in pollers {
        // A poller that panicked has nothing more to give; the session still ends cleanly.
        let _ = p.await;
    }
    // The world sends its final figures itself, as its last event.
    world.finish().await;
    world.shutdown().await;
    let mut batch = inbox.pending();
    let at = session.clock().now_ms();
    if session.state.ended.is_none() {
        batch.push(Event::SessionEnded {
            at,
            reason: reason.to_string(),
        });
    }
    session.ingest(batch)
}

/// Runs a rehearsal in the terminal cockpit; returns the summary after the operator quits.
pub async fn interactive(
    mut rehearsal: Rehearsal,
    theme: crate::ui::Theme,
    share: Option<crate::share::ShareOptions>,
    outside: crate::outside::Outside,
) -> anyhow::Result<Summary> {
    // The operator types at wall-clock speed: an interactive rehearsal keeps real time.
    let clock = Clock::real();
    let (mut session, mut inbox, world, stop, pollers) =
        start(&mut rehearsal, SessionMode::Rehearsal, clock).await?;
    let outside = outside.attach(&mut session, None)?;
    let mut ui_state = crate::ui::UiState::new(
        crate::ui::Mode::Rehearsal,
        rehearsal.operator.clone(),
        session.transcript_path().map(|p| p.display().to_string()),
    );
    let sharing = match share {
        Some(opts) => {
            let handle = crate::share::start_share(&mut session, opts).await?;
            announce_share(&handle, &session.plan, &mut ui_state);
            Some(handle)
        }
        None => None,
    };
    let result = crate::app::run(&mut session, &mut inbox, ui_state, &theme).await;
    let reason = match &result {
        Ok(exit) => exit.reason(),
        Err(e) => format!("cockpit error: {e}"),
    };
    finish(&mut session, &mut inbox, &world, stop, pollers, &reason).await?;
    outside.finish(&mut session, &mut inbox).await?;
    if let Some(handle) = sharing {
        handle.shutdown("the session ended").await;
    }
    result?;
    Ok(summarize(&session, &rehearsal, None, &clock))
}

/// Where the transcript is and how to hold it to its author later: the public key and the
/// last hash, printed at the end of a session so they are kept apart from the file (a
/// forger who rewrites the file can recompute its chain and sign with a key of their own,
/// but cannot change what was printed here).
pub fn transcript_lines(session: &Session) -> String {
    let Some(path) = session.transcript_path() else {
        return String::new();
    };
    let mut s = format!("transcript: {}\n", path.display());
    if let (Some(key), Some(head)) = (session.transcript_key(), session.transcript_head()) {
        s.push_str(&format!("transcript key: {key}\ntranscript head: {head}\n"));
        s.push_str(&format!(
            "  keep these apart from the file; check it with: cutover verify {} --key {key} --expect-head {head}\n",
            path.display()
        ));
    }
    s
}

/// Tells the driver how colleagues attach: in the cockpit's notice line only (`T` shows it
/// again), never on stderr, where it would stay in the terminal's scrollback after the
/// session. The token never goes to the transcript or the log.
pub fn announce_share(
    handle: &crate::share::ShareHandle,
    plan: &crate::plan::Plan,
    ui_state: &mut crate::ui::UiState,
) {
    let control = handle.control();
    ui_state.notice = Some(control.summary(plan));
    ui_state.share = Some(control);
}

/// The notes a live session on AWS starts with: who its calls are made as, and any warning
/// (credentials expiring inside the window), so the transcript says so too.
pub fn aws_notes(
    identity: Option<&crate::event::AwsIdentity>,
    warnings: &[String],
) -> Vec<crate::event::Event> {
    let at = crate::event::now_ms();
    let mut out: Vec<crate::event::Event> = identity
        .map(|a| crate::event::Event::Note {
            at,
            text: format!(
                "AWS: account {} as {} (credentials: {})",
                a.account, a.arn, a.credentials
            ),
        })
        .into_iter()
        .collect();
    out.extend(warnings.iter().map(|w| crate::event::Event::Note {
        at,
        text: format!("warning: {w}"),
    }));
    out
}
