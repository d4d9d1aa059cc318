//! `cutover resume FILE`: continues a session after the cockpit died mid-cutover (kill -9, a
//! lost terminal, a crashed laptop).
//!
//! It reads the interrupted transcript (checking its chain; a torn last line is dropped — it
//! was never durable, so nothing acted on it), folds it, and opens a **new** transcript
//! linked to the old one: the header's `resumed_from` names the old file, its last seq and
//! its last hash, and the new file starts by re-recording the old file's events under their
//! original seq numbers. The new file therefore replays, reports and verifies on its own,
//! and `cutover verify` checks the link (hash and identical history) when the old file is
//! next to it. The old file is never written to.
//!
//! The resumed session records a second `SessionStarted`; the fold marks every step whose
//! action (or undo) had started with no recorded result as **in doubt**. Nothing proceeds —
//! the fold refuses confirmations, the autopilot waits, a rollback waits — until the
//! operator has checked each one and typed `done <step>` or `not done <step>`, recorded as
//! `StepResolved`. "Not done" puts a step back to pending, to be confirmed (and run) again.
//! The prompt comes before the cockpit opens; readings are recorded while it waits.
//!
//! Rehearsals: the embedded world does not survive a crash. On resume a fresh world is built
//! and the actions of the completed steps are applied to it again, in order (they are
//! idempotent: setting `read_only`, stopping a stopped task, pointing the CNAME where it
//! points), each recorded as a note; a step marked done after checking is applied too.
//! Faults of the first run are not injected again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use crate::action::Output;
use crate::event::{Direction, Event, SessionMode, now_ms};
use crate::plan::{self, Plan};
use crate::session::{Inbox, Session, SessionConfig};
use crate::sim::{World, WorldOptions};
use crate::state::{State, StepStatus};
use crate::transcript::{self, Header, ResumedFrom, TranscriptError};
use crate::ui::{Mode, Theme, UiState};

/// Why a session cannot be resumed. Each names the file, the reason and the way out.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "cannot resume: {0} (run `cutover verify` on it; a damaged transcript cannot be continued)"
    )]
    Transcript(TranscriptError),
    #[error(
        "{path}:1: cannot resume: the recorded plan does not parse: {errors} (the header was edited; run `cutover verify {path}`)"
    )]
    Plan { path: String, errors: String },
    #[error(
        "{path}:1: cannot resume: the recorded plan does not match its plan_hash (the header was edited; run `cutover verify {path}`)"
    )]
    PlanHash { path: String },
    #[error(
        "{path}: nothing to resume: the cutover {outcome} (replay it with `cutover replay {path}`)"
    )]
    Finished { path: String, outcome: &'static str },
    #[error("{path}: nothing to resume: the transcript holds no events")]
    Empty { path: String },
    #[error(
        "{path}: a {mode} session is read-only and cannot be resumed as a driving one (start `cutover watch` again)"
    )]
    ReadOnly { path: String, mode: String },
}

// Not `#[from]`: that would make the error its own source, and a `{:#}` chain would print
// the same message twice.
impl From<TranscriptError> for ResumeError {
    fn from(e: TranscriptError) -> Self {
        ResumeError::Transcript(e)
    }
}

/// An interrupted session, read and folded.
pub struct Interrupted {
    pub path: PathBuf,
    pub header: Header,
    pub plan: Arc<Plan>,
    pub events: Vec<Event>,
    pub state: State,
    pub last_seq: u64,
    pub last_hash: String,
    pub torn_tail: Option<String>,
}

impl Interrupted {
    /// Steps whose action or undo had started with no recorded result.
    pub fn in_doubt(&self) -> Vec<usize> {
        (0..self.state.steps.len())
            .filter(|&i| {
                matches!(
                    self.state.steps[i].status,
                    StepStatus::Running | StepStatus::Undoing
                )
            })
            .collect()
    }

    /// What the operator reads before resuming.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "resuming {} ({} events, last seq {}, plan {}, operator {})\n",
            self.path.display(),
            self.events.len(),
            self.last_seq,
            self.plan.name,
            self.header.operator
        );
        if let Some(t) = &self.torn_tail {
            s.push_str(&format!("  {t}\n"));
        }
        for (def, st) in self.plan.steps.iter().zip(&self.state.steps) {
            let status = match st.status {
                StepStatus::Running | StepStatus::Undoing => "IN DOUBT",
                s => s.as_str(),
            };
            s.push_str(&format!("  {:<20} {status}\n", def.id));
        }
        s
    }
}

/// How many of the newest transcripts of a directory are searched for the plan's last DNS
/// change (each is read whole; a directory of old sessions should not slow `check`).
const DNS_CHANGE_SEARCH: usize = 20;

/// The last Route 53 change a session of this plan recorded in `dir`: the newest
/// transcript (names start with their UTC start time) whose plan hash is the plan's and
/// which recorded one. `check` and `watch` make `dns.status` follow it, so a gate on INSYNC
/// answers after the driver's flip as it does inside the driving session.
pub fn last_recorded_dns_change(dir: &Path, plan: &Plan) -> Option<(PathBuf, String)> {
    plan.dns.as_ref()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p.is_file())
        .collect();
    files.sort();
    files.into_iter().rev().take(DNS_CHANGE_SEARCH).find_map(|path| {
        let t = match transcript::read(&path) {
            Ok(t) if t.header.plan_hash == plan.hash => t,
            Ok(_) => return None,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "not searched for a DNS change");
                return None;
            }
        };
        crate::aws::route53::last_change_id(&t.events).map(|id| (path, id))
    })
}

/// Reads and folds the interrupted transcript. Refuses a damaged chain, an edited plan and a
/// session that already completed or rolled back.
pub fn load(path: &Path) -> Result<Interrupted, ResumeError> {
    let t = transcript::read(path)?;
    let p = path.display().to_string();
    if t.header.mode.is_read_only() {
        return Err(ResumeError::ReadOnly {
            path: p,
            mode: t.header.mode.to_string(),
        });
    }
    let mut plan =
        plan::parse(&format!("{p} (recorded plan)"), &t.header.plan_text).map_err(|e| {
            ResumeError::Plan {
                path: p.clone(),
                errors: e.to_string(),
            }
        })?;
    if plan.hash != t.header.plan_hash {
        return Err(ResumeError::PlanHash { path: p });
    }
    // The approvers' keys as the interrupted session read them: the resumed one holds its
    // approvals to the same keys (and records them in its own header).
    plan.share.approvers = t.header.approvers.clone();
    if t.events.is_empty() {
        return Err(ResumeError::Empty { path: p });
    }
    let plan = Arc::new(plan);
    let mut state = State::new(Arc::clone(&plan));
    for ev in &t.events {
        // Folding only: the effects ran (or died) in the interrupted process.
        let _ = state.apply(ev);
    }
    if state.completed() {
        return Err(ResumeError::Finished {
            path: p,
            outcome: "completed",
        });
    }
    if state.rolled_back() {
        return Err(ResumeError::Finished {
            path: p,
            outcome: "was rolled back",
        });
    }
    Ok(Interrupted {
        path: path.to_path_buf(),
        header: t.header,
        plan,
        events: t.events,
        state,
        last_seq: t.last_seq,
        last_hash: t.last_hash,
        torn_tail: t.torn_tail,
    })
}

/// A resumed session with its sources running.
pub struct Resumed {
    pub session: Session,
    pub inbox: Inbox,
    /// The fresh rehearsal world, for rehearsal plans.
    pub world: Option<Arc<World>>,
    pub stop: CancellationToken,
    pub pollers: Vec<tokio::task::JoinHandle<()>>,
    pub operator: String,
    /// Completed steps of a rehearsal whose action is not idempotent (`sql`, `shell`): not
    /// applied to the fresh world again unless the operator types consent.
    pub not_reapplied: Vec<usize>,
}

/// Opens the new transcript, re-records the history, starts the sources (and, for a
/// rehearsal, a fresh world with the completed steps applied again).
pub async fn reopen(
    old: &Interrupted,
    sessions_dir: &Path,
    operator: &str,
    aws: &crate::aws::AwsOverrides,
    sign_key: Option<crate::transcript::SessionKey>,
) -> anyhow::Result<Resumed> {
    let rehearsal = old.plan.is_rehearsal();
    let mode = if rehearsal {
        SessionMode::RehearsalResumed
    } else {
        SessionMode::DriveResumed
    };
    let backends = if rehearsal {
        None
    } else {
        Some(crate::backend::Backends::connect(&old.plan, aws).await?)
    };
    let actuator = backends.as_ref().map(|b| b.actuator());
    let aws_identity = backends.as_ref().and_then(|b| b.aws_identity().cloned());
    if let Some(b) = &backends {
        // The change the interrupted session made: `dns.status` follows it again, so a gate
        // on INSYNC (the unfreeze) can turn green without a new change.
        b.follow_dns_change(&old.plan, &old.events);
    }
    let (mut session, inbox) = Session::resume_as(
        SessionConfig {
            plan: Arc::clone(&old.plan),
            mode,
            operator: operator.to_string(),
            sessions_dir: Some(sessions_dir.to_path_buf()),
            actuator,
            sign_key,
        },
        ResumedFrom {
            file: old.path.display().to_string(),
            last_seq: old.last_seq,
            last_hash: old.last_hash.clone(),
        },
        old.events.clone(),
        aws_identity.clone(),
    )?;
    if let Some(b) = &backends {
        session.ingest(crate::rehearse::aws_notes(
            aws_identity.as_ref(),
            &b.warnings(),
        ))?;
    }
    let stop = CancellationToken::new();
    let (world, sources, not_reapplied) = if rehearsal {
        let seed = u64::from_str_radix(old.last_hash.get(..16).unwrap_or("1"), 16).unwrap_or(1);
        let world = World::start(
            &old.plan,
            WorldOptions {
                seed,
                faults: Vec::new(),
                // A resumed rehearsal is driven by an operator: the wall clock.
                clock: Default::default(),
            },
            session.sender(),
        )
        .await?;
        session.set_actuator(world.actuator());
        let mut notes = vec![Event::Note {
            at: now_ms(),
            text: "rehearsal world rebuilt after the restart: applying the completed steps again"
                .into(),
        }];
        let mut not_reapplied = Vec::new();
        for i in 0..old.plan.steps.len() {
            if session.state.steps[i].status != StepStatus::Done {
                continue;
            }
            if old.plan.steps[i].action.is_idempotent() {
                notes.push(reapply(&world, &old.plan, i).await);
            } else {
                notes.push(not_reapplied_note(&old.plan, i));
                not_reapplied.push(i);
            }
        }
        session.ingest(notes)?;
        let mut sources = world.sources();
        sources.extend(crate::source::probe::sources(&old.plan.probes));
        (Some(world), sources, not_reapplied)
    } else {
        let sources = backends
            .as_ref()
            .map(|b| b.sources(&old.plan, crate::db::DbOptions::default()))
            .unwrap_or_default();
        (None, sources, Vec::new())
    };
    let pollers = crate::source::spawn_pollers(sources, session.sender(), stop.clone());
    Ok(Resumed {
        session,
        inbox,
        world,
        stop,
        pollers,
        operator: operator.to_string(),
        not_reapplied,
    })
}

/// The note for a completed step whose action is not run again without consent.
fn not_reapplied_note(plan: &Plan, i: usize) -> Event {
    let step = &plan.steps[i];
    Event::Note {
        at: now_ms(),
        text: format!(
            "not re-applied: {} ({}) is not idempotent and already ran in the interrupted session",
            step.id,
            step.action.describe(plan)
        ),
    }
}

/// Applies step `i`'s action to a fresh rehearsal world; returns the note that records it.
async fn reapply(world: &Arc<World>, plan: &Plan, i: usize) -> Event {
    let step = &plan.steps[i];
    let actuator = world.actuator();
    // Progress lines of a re-application are not the step's output: they go nowhere.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let out = Output::new(step.id.clone(), Direction::Do, tx);
    let result = actuator.run(plan, &step.action, &out).await;
    let text = match result {
        Ok(m) => format!(
            "re-applied {} ({}) to the fresh world: {m}",
            step.id,
            step.action.describe(plan)
        ),
        Err(e) => format!("re-applying {} to the fresh world FAILED: {e}", step.id),
    };
    Event::Note { at: now_ms(), text }
}

/// Parses the operator's answer for a step in doubt: exactly `done <step>` or
/// `not done <step>`, naming a step that is in doubt.
pub fn parse_resolution(input: &str, state: &State) -> Result<(String, bool), String> {
    let doubt: Vec<String> = state
        .in_doubt_steps()
        .into_iter()
        .map(|i| state.plan.steps[i].id.clone())
        .collect();
    let line = input.trim();
    let (done, id) = if let Some(id) = line.strip_prefix("not done ") {
        (false, id.trim())
    } else if let Some(id) = line.strip_prefix("done ") {
        (true, id.trim())
    } else {
        return Err(format!(
            "type exactly \"done <step>\" or \"not done <step>\" (in doubt: {})",
            doubt.join(", ")
        ));
    };
    if !doubt.iter().any(|d| d == id) {
        return Err(format!(
            "\"{id}\" is not in doubt (in doubt: {})",
            doubt.join(", ")
        ));
    }
    Ok((id.to_string(), done))
}

/// Records the operator's answer; in a rehearsal, a step that is done after it is applied
/// to the fresh world.
pub async fn resolve(r: &mut Resumed, step: &str, done: bool) -> anyhow::Result<()> {
    let mut batch = r.inbox.pending();
    batch.push(Event::StepResolved {
        at: now_ms(),
        step: step.to_string(),
        done,
        by: r.operator.clone(),
    });
    r.session.ingest(batch)?;
    if let (Some(world), Some(i)) = (&r.world, r.session.plan.step_index(step))
        && r.session.state.steps[i].status == StepStatus::Done
    {
        let plan = Arc::clone(&r.session.plan);
        let note = if plan.steps[i].action.is_idempotent() {
            reapply(world, &plan, i).await
        } else {
            r.not_reapplied.push(i);
            not_reapplied_note(&plan, i)
        };
        r.session.ingest(vec![note])?;
    }
    Ok(())
}

/// Asks on the terminal (before the cockpit opens) for each step in doubt until every one
/// is resolved; records readings meanwhile. `Ok(false)` when the input ended first.
pub async fn prompt_in_doubt(r: &mut Resumed, lines: &mut Lines) -> anyhow::Result<bool> {
    loop {
        let doubt = r.session.state.in_doubt_steps();
        let Some(&i) = doubt.first() else {
            return Ok(true);
        };
        let plan = Arc::clone(&r.session.plan);
        let def = &plan.steps[i];
        let st = &r.session.state.steps[i];
        let (what, action) = match st.in_doubt {
            Some(Direction::Undo) => (
                "undo",
                def.undo
                    .as_ref()
                    .map(|a| a.describe(&plan))
                    .unwrap_or_default(),
            ),
            _ => ("action", def.action.describe(&plan)),
        };
        let since = st
            .started_at
            .or(st.confirmed_at)
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
            .map(|t| t.format("%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "?".into());
        eprintln!();
        eprintln!("Step {} \"{}\" is IN DOUBT.", def.id, def.title);
        eprintln!(
            "  Its {what} ({action}) started at {since}; no result was recorded before the cockpit stopped."
        );
        for line in st.output.iter().rev().take(5).rev() {
            eprintln!("  | {line}");
        }
        eprintln!(
            "  Check whether it took effect, then type \"done {0}\" or \"not done {0}\":",
            def.id
        );
        let answer = read_answer(r, lines, parse_resolution).await?;
        let Some((step, done)) = answer else {
            return Ok(false);
        };
        resolve(r, &step, done).await?;
    }
}

/// The operator's answers, read from the terminal before the cockpit opens.
pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>;

/// Reads lines from the terminal until `parse` accepts one, recording readings meanwhile.
/// `Ok(None)` when the input ended first.
async fn read_answer<T>(
    r: &mut Resumed,
    lines: &mut Lines,
    parse: impl Fn(&str, &State) -> Result<T, String>,
) -> anyhow::Result<Option<T>> {
    eprint!("> ");
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else {
                    return Ok(None);
                };
                match parse(&line, &r.session.state) {
                    Ok(answer) => return Ok(Some(answer)),
                    Err(why) => {
                        eprintln!("  {why}");
                        eprint!("> ");
                    }
                }
            }
            batch = r.inbox.next_batch() => {
                r.session.ingest(batch)?;
            }
        }
    }
}

/// Parses the operator's answer for a step not re-applied: exactly `rerun <step>` or
/// `skip <step>`. `Ok(true)` runs it again.
pub fn parse_rerun(input: &str, step: &str) -> Result<bool, String> {
    match input.trim() {
        l if l == format!("rerun {step}") => Ok(true),
        l if l == format!("skip {step}") => Ok(false),
        _ => Err(format!("type exactly \"rerun {step}\" or \"skip {step}\"")),
    }
}

/// Asks, for each completed rehearsal step whose action is not idempotent, whether to run
/// it again against the fresh world. Nothing runs again without `rerun <step>` typed.
/// `Ok(false)` when the input ended first.
pub async fn prompt_not_reapplied(r: &mut Resumed, lines: &mut Lines) -> anyhow::Result<bool> {
    while let Some(i) = r.not_reapplied.first().copied() {
        let plan = Arc::clone(&r.session.plan);
        let def = &plan.steps[i];
        eprintln!();
        eprintln!(
            "Step {} \"{}\" completed in the interrupted session. Its action ({}) is not idempotent:",
            def.id,
            def.title,
            def.action.describe(&plan)
        );
        eprintln!(
            "  running it again may repeat its effect. The fresh rehearsal world did not get it."
        );
        eprintln!(
            "  Type \"rerun {0}\" to run it again now, or \"skip {0}\" to go on without it:",
            def.id
        );
        let step = def.id.clone();
        let Some(rerun) = read_answer(r, lines, |line, _| parse_rerun(line, &step)).await? else {
            return Ok(false);
        };
        r.not_reapplied.remove(0);
        let note = match (&r.world, rerun) {
            (Some(world), true) => {
                let mut note = reapply(world, &plan, i).await;
                if let Event::Note { text, .. } = &mut note {
                    text.push_str(&format!(" (run again with {}'s typed consent)", r.operator));
                }
                note
            }
            _ => Event::Note {
                at: now_ms(),
                text: format!(
                    "{} chose not to run {} again on the fresh world",
                    r.operator, def.id
                ),
            },
        };
        r.session.ingest(vec![note])?;
    }
    Ok(true)
}

/// Stops the sources and records the end (with the world's final figures in a rehearsal).
pub async fn finish(r: Resumed, reason: &str) -> anyhow::Result<Session> {
    finish_telling(r, reason, crate::outside::Attached::default()).await
}

/// [`finish`], letting the session's last notifications out and stopping its status
/// endpoint after the end is recorded.
async fn finish_telling(
    mut r: Resumed,
    reason: &str,
    outside: crate::outside::Attached,
) -> anyhow::Result<Session> {
    match &r.world {
        Some(world) => {
            let world = Arc::clone(world);
            crate::rehearse::finish(
                &mut r.session,
                &mut r.inbox,
                &world,
                r.stop,
                r.pollers,
                reason,
            )
            .await?;
        }
        None => {
            r.stop.cancel();
            for p in r.pollers {
                // A poller that failed has already reported through the session.
                let _ = p.await;
            }
            let mut batch = r.inbox.pending();
            if r.session.state.ended.is_none() {
                batch.push(Event::SessionEnded {
                    at: now_ms(),
                    reason: reason.to_string(),
                });
            }
            r.session.ingest(batch)?;
        }
    }
    outside.finish(&mut r.session, &mut r.inbox).await?;
    Ok(r.session)
}

/// `cutover resume` from the command line's arguments: checks for a terminal and takes the
/// interrupted transcript's lock before touching anything, folds it, continues it in a new
/// transcript, asks for every step in doubt (and, in a rehearsal, for consent before running
/// a non-idempotent action again), then opens the cockpit.
pub async fn run_resume_args(args: &crate::cli::ResumeArgs, operator: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Before anything is read, created or applied: the prompts and the cockpit need a
    // terminal, and failing after the new transcript exists would leave half a resume.
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        anyhow::bail!(
            "cutover resume needs a terminal: it asks about steps in doubt, then opens the cockpit. Nothing was done; run it in a terminal (ssh -t, tmux)"
        );
    }
    let theme = Theme::resolve(args.theme.as_deref())?;
    let share = args.share.options(args.status.allow_remote)?;
    let status = args.status.listener(share.is_some())?;
    let sign_key = args.sign_key()?;
    let _old_lock = lock_interrupted(&args.file, args.force)?;
    let old = load(&args.file)?;
    let outside = crate::outside::Outside::prepare(&old.plan, true, status)?;
    eprint!("{}", old.describe());
    let mut r = reopen(
        &old,
        &args.sessions_dir,
        operator,
        &args.aws.overrides(),
        sign_key,
    )
    .await?;
    // Peers catch up on the interrupted session too: its events are kept while sharing.
    let prior = if share.is_some() {
        old.events.clone()
    } else {
        Vec::new()
    };
    drop(old);
    let outside = outside.attach(&mut r.session, None)?;
    if let Some(p) = r.session.transcript_path() {
        eprintln!("continuing in {}", p.display());
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let answered = prompt_in_doubt(&mut r, &mut lines).await?
        && prompt_not_reapplied(&mut r, &mut lines).await?;
    if !answered {
        let session = finish_telling(
            r,
            "resume abandoned: the questions before the cockpit opens were not answered",
            outside,
        )
        .await?;
        anyhow::bail!(
            "the input ended before every question was answered; nothing was done (transcript: {})",
            session
                .transcript_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let mode = if r.world.is_some() {
        Mode::Rehearsal
    } else {
        Mode::Drive
    };
    let mut ui_state = UiState::new(
        mode,
        operator.to_string(),
        r.session.transcript_path().map(|p| p.display().to_string()),
    );
    let sharing = match share {
        Some(opts) => {
            let handle = crate::share::start_share_after(&mut r.session, opts, &prior).await?;
            crate::rehearse::announce_share(&handle, &r.session.plan, &mut ui_state);
            Some(handle)
        }
        None => None,
    };
    drop(prior);
    let result = crate::app::run(&mut r.session, &mut r.inbox, ui_state, &theme).await;
    let reason = match &result {
        Ok(exit) => exit.reason(),
        Err(e) => format!("cockpit error: {e}"),
    };
    let session = finish_telling(r, &reason, outside).await?;
    if let Some(handle) = sharing {
        handle.shutdown("the session ended").await;
    }
    result?;
    print!("{}", crate::rehearse::transcript_lines(&session));
    Ok(())
}

/// Takes the interrupted transcript's lock, so no second cockpit drives the same session:
/// refused while the process that wrote it (or another resume) still runs. `force` takes it
/// anyway and says what that risks.
pub fn lock_interrupted(
    path: &Path,
    force: bool,
) -> anyhow::Result<transcript::lock::TranscriptLock> {
    use transcript::lock::TranscriptLock;
    if !force {
        return TranscriptLock::acquire(path, "resume")
            .map_err(|e| anyhow::anyhow!("cannot resume: {e}"));
    }
    let (lock, overridden) =
        TranscriptLock::force(path, "resume").map_err(|e| anyhow::anyhow!("cannot resume: {e}"))?;
    if let Some(h) = overridden {
        eprintln!(
            "WARNING: --force: taking over {} from {h}. If that cockpit is still running, it and this one can both act on the same systems: stop it (kill {} on {}) before confirming anything here.",
            path.display(),
            h.pid,
            h.host
        );
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DatabaseReading, Reading, Side, Ts};
    use crate::state::{Effect, RollbackStatus};
    use crate::transcript::verify::{ProblemKind, verify};

    const PLAN: &str = r#"
name = "t"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "rehearsal"
task = "t"
[rehearsal]
tables = ["a"]
[[step]]
id = "one"
gates = ["source.read_only == false fresh 5s"]
action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }
undo = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = OFF" }
confirm = "go"
[[step]]
id = "two"
gates = ["source.read_only == true fresh 5s"]
confirm = "two"
"#;

    fn plan() -> Arc<Plan> {
        Arc::new(plan::parse("t.toml", PLAN).expect("test plan is valid"))
    }

    fn started(at: Ts) -> Event {
        Event::SessionStarted {
            at,
            mode: "test".into(),
            operator: "op".into(),
        }
    }

    fn ro(at: Ts, read_only: bool) -> Event {
        Event::Observed {
            at,
            reading: Reading::Database(DatabaseReading {
                observed_at: at,
                side: Side::Source,
                server: None,
                read_only: Some(read_only),
                connections: None,
                longest_trx_s: None,
                writes_per_s: None,
            }),
        }
    }

    fn confirmed(at: Ts, step: &str) -> Event {
        Event::StepConfirmed {
            at,
            step: step.into(),
            by: "op".into(),
        }
    }

    fn action(at: Ts, step: &str, direction: Direction) -> Event {
        Event::ActionStarted {
            at,
            step: step.into(),
            direction,
            description: "x".into(),
        }
    }

    fn resolved(at: Ts, step: &str, done: bool) -> Event {
        Event::StepResolved {
            at,
            step: step.into(),
            done,
            by: "bob".into(),
        }
    }

    /// Folds `events` and returns the state and every effect asked for.
    fn check(events: &[Event]) -> (State, Vec<Effect>) {
        let mut s = State::new(plan());
        let mut effects = Vec::new();
        for e in events {
            effects.extend(s.apply(e));
        }
        (s, effects)
    }

    /// A session that died while step one's action ran, then restarted.
    fn died_running() -> Vec<Event> {
        vec![
            started(0),
            ro(100, false),
            confirmed(200, "one"),
            action(210, "one", Direction::Do),
            started(5_000),
        ]
    }

    #[test]
    fn a_restart_leaves_a_started_action_in_doubt_and_blocks_everything() {
        let (s, _) = check(&died_running());
        assert_eq!(s.steps[0].in_doubt, Some(Direction::Do));
        assert_eq!(s.steps[0].status_label(), "in doubt");
        assert_eq!(s.in_doubt_steps(), vec![0]);
        assert!(s.log.iter().any(|l| l.text.contains("one is IN DOUBT")));
        assert!(s.confirm_blocker(1).unwrap().contains("in doubt"));
        // A confirmation while in doubt starts nothing.
        let mut events = died_running();
        events.extend([ro(5_100, true), confirmed(5_200, "two")]);
        let (s, effects) = check(&events);
        assert_eq!(effects.len(), 1, "only the first run's effect: {effects:?}");
        assert_eq!(s.steps[1].status, StepStatus::Pending);
    }

    #[test]
    fn done_completes_the_step_and_not_done_makes_it_next_again() {
        let mut events = died_running();
        events.extend([
            resolved(6_000, "one", true),
            ro(6_100, true),
            confirmed(6_200, "two"),
        ]);
        let (s, effects) = check(&events);
        assert_eq!(s.steps[0].status, StepStatus::Done);
        assert_eq!(s.steps[0].in_doubt, None);
        assert_eq!(s.steps[0].finished_at, Some(6_000));
        assert_eq!(s.steps[1].status, StepStatus::Running);
        assert_eq!(
            effects.last(),
            Some(&Effect::RunAction {
                step: 1,
                direction: Direction::Do
            })
        );

        let mut events = died_running();
        events.extend([
            resolved(6_000, "one", false),
            ro(6_100, false),
            confirmed(6_200, "one"),
        ]);
        let (s, effects) = check(&events);
        assert_eq!(s.steps[0].status, StepStatus::Running);
        assert_eq!(s.steps[0].confirmed_at, Some(6_200));
        assert_eq!(effects.len(), 2, "the step runs again: {effects:?}");
    }

    #[test]
    fn an_undo_in_doubt_holds_the_rollback_until_resolved() {
        let base = vec![
            started(0),
            ro(100, false),
            confirmed(200, "one"),
            action(210, "one", Direction::Do),
            Event::ActionFinished {
                at: 300,
                step: "one".into(),
                direction: Direction::Do,
                ok: true,
                message: "ok".into(),
            },
            Event::RollbackConfirmed {
                at: 400,
                by: "op".into(),
                reason: "test".into(),
            },
            action(410, "one", Direction::Undo),
            started(5_000),
        ];
        let (s, _) = check(&base);
        assert_eq!(s.steps[0].in_doubt, Some(Direction::Undo));
        let mut again = base.clone();
        again.push(resolved(6_000, "one", false));
        let (s, effects) = check(&again);
        assert_eq!(
            s.steps[0].status,
            StepStatus::Undoing,
            "the undo runs again"
        );
        assert_eq!(
            effects.last(),
            Some(&Effect::RunAction {
                step: 0,
                direction: Direction::Undo
            })
        );
        let mut done = base;
        done.push(resolved(6_000, "one", true));
        let (s, _) = check(&done);
        assert_eq!(s.steps[0].status, StepStatus::Undone);
        assert_eq!(
            s.rollback.as_ref().map(|r| r.status),
            Some(RollbackStatus::Done)
        );
    }

    #[test]
    fn a_resolution_needs_the_exact_phrase_and_a_step_in_doubt() {
        let (s, _) = check(&died_running());
        assert_eq!(parse_resolution("done one", &s), Ok(("one".into(), true)));
        assert_eq!(
            parse_resolution("  not done one\n", &s),
            Ok(("one".into(), false))
        );
        assert!(
            parse_resolution("done two", &s)
                .unwrap_err()
                .contains("not in doubt")
        );
        assert!(
            parse_resolution("yes", &s)
                .unwrap_err()
                .contains("type exactly")
        );
        // The fold ignores a resolution of a step that is not in doubt.
        let mut events = died_running();
        events.push(resolved(6_000, "two", true));
        let (s, _) = check(&events);
        assert_eq!(s.steps[1].status, StepStatus::Pending);
        assert_eq!(s.steps[0].in_doubt, Some(Direction::Do));
    }

    #[test]
    fn a_resumed_transcript_replays_alone_and_verify_checks_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || SessionConfig {
            plan: plan(),
            mode: "test".into(),
            operator: "op".into(),
            sessions_dir: Some(dir.path().to_path_buf()),
            actuator: None,
            sign_key: None,
        };
        let (mut session, _inbox) = Session::open(cfg()).unwrap();
        let t0 = session.state.now;
        session
            .ingest(vec![
                ro(t0 + 1, false),
                confirmed(t0 + 2, "one"),
                action(t0 + 3, "one", Direction::Do),
            ])
            .unwrap();
        let old = session.transcript_path().unwrap().to_path_buf();
        drop(session); // the cockpit dies: no SessionEnded

        let interrupted = load(&old).unwrap();
        assert_eq!(interrupted.in_doubt(), vec![0]);
        assert!(interrupted.describe().contains("IN DOUBT"));
        let (mut resumed, _inbox) = Session::resume(
            cfg(),
            ResumedFrom {
                file: old.display().to_string(),
                last_seq: interrupted.last_seq,
                last_hash: interrupted.last_hash.clone(),
            },
            interrupted.events.clone(),
        )
        .unwrap();
        assert_eq!(resumed.state.in_doubt_steps(), vec![0]);
        resumed
            .ingest(vec![resolved(now_ms(), "one", true)])
            .unwrap();
        let new = resumed.transcript_path().unwrap().to_path_buf();
        drop(resumed);
        assert_ne!(old, new);
        assert!(new.display().to_string().ends_with("-resumed.jsonl"));

        let v = verify(&new);
        assert!(v.is_intact(), "{}", v.render());
        assert_eq!(v.version, Some(crate::transcript::VERSION));
        assert!(
            v.notes.iter().any(|n| n.contains("hash matches")),
            "{}",
            v.render()
        );
        let again = load(&new).unwrap();
        assert_eq!(again.state.steps[0].status, StepStatus::Done);

        // Changing the old file after the fact breaks the link.
        let text = std::fs::read_to_string(&old).unwrap();
        std::fs::write(
            &old,
            text.replacen("\"operator\":\"op\"", "\"operator\":\"eve\"", 1),
        )
        .unwrap();
        let v = verify(&new);
        assert_eq!(
            v.problem().map(|p| p.kind),
            Some(ProblemKind::LinkBroken),
            "{}",
            v.render()
        );
    }
}
