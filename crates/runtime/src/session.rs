//! A live session: the event channel, the recorder and the fold, with the effect runner.
//! The TUI loop and the autopilot both drive one of these; neither touches the state any
//! other way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::action::{Actuator, spawn_resolved};
use crate::clock::Clock;
use cutover_core::event::{AwsIdentity, Event, now_ms};
use cutover_core::plan::Plan;
use cutover_core::state::{Effect, State};
use cutover_transcript::{Header, Recorder, seek};

/// Subscribers that see every recorded event, in order (pairing streams them to peers),
/// with the hash of the batch's last transcript line (its signed head; `None` without a
/// transcript).
pub type Tap = Box<dyn FnMut(&[Event], Option<&str>) + Send>;

/// Observers of the state after each ingested batch is folded (the replay determinism test
/// draws it; nothing in the program needs it).
pub type FoldHook = Box<dyn FnMut(&State) + Send>;

/// Observers of each ingested batch (as recorded: scrubbed, time-clamped) together with the
/// state after it was folded: the notifier and the status endpoint. Called on the session's
/// own task, so an observer must only hand work off (a bounded queue, a watch channel),
/// never wait.
pub type Observer = Box<dyn FnMut(&[Event], &State) + Send>;

/// The live cockpit without its screen.
pub struct Session {
    pub state: State,
    pub plan: Arc<Plan>,
    recorder: Option<Recorder>,
    /// The exclusive lock on the transcript being written: one driver per session.
    _lock: Option<cutover_transcript::lock::TranscriptLock>,
    /// Seek checkpoints beside the transcript, so a replay of it seeks fast.
    checkpoints: seek::Live,
    actuator: Option<Arc<dyn Actuator>>,
    tx: mpsc::UnboundedSender<Event>,
    taps: Vec<Tap>,
    fold_hooks: Vec<FoldHook>,
    observers: Vec<Observer>,
    /// The plan's passwords (from `password_env` / `password_file`), scrubbed from free text.
    secrets: Vec<String>,
    actions: Vec<tokio::task::JoinHandle<()>>,
    /// What the session and its actions stamp events with.
    clock: Clock,
}

/// Everything needed to open a session.
pub struct SessionConfig {
    pub plan: Arc<Plan>,
    pub mode: cutover_core::event::SessionMode,
    pub operator: String,
    /// Where transcripts go; `None` records nothing (tests, `check`).
    pub sessions_dir: Option<PathBuf>,
    /// `None`: read-only (watch, replay, attach).
    pub actuator: Option<Arc<dyn Actuator>>,
    /// The key the transcript is signed with (the operator's `--sign-key`); `None`: a key
    /// generated for this session, held in memory only.
    pub sign_key: Option<cutover_transcript::SessionKey>,
}

impl Session {
    /// Opens the transcript (if any) and records `SessionStarted`. The inbox receives what
    /// sources, actions and the world send to `sender()`.
    pub fn open(cfg: SessionConfig) -> anyhow::Result<(Session, Inbox)> {
        Self::open_as(cfg, None)
    }

    /// [`Session::open`] on `clock`: `SessionStarted` and the actions' events are stamped
    /// with it (the transcript header keeps the wall clock: it says when the file was made).
    pub fn open_on(cfg: SessionConfig, clock: Clock) -> anyhow::Result<(Session, Inbox)> {
        Self::open_with(cfg, None, clock)
    }

    /// [`Session::open`], recording in the transcript header who the AWS calls are made as.
    pub fn open_as(
        cfg: SessionConfig,
        aws: Option<AwsIdentity>,
    ) -> anyhow::Result<(Session, Inbox)> {
        Self::open_with(cfg, aws, Clock::real())
    }

    fn open_with(
        mut cfg: SessionConfig,
        aws: Option<AwsIdentity>,
        clock: Clock,
    ) -> anyhow::Result<(Session, Inbox)> {
        let key = cfg.sign_key.take();
        let recorder = match &cfg.sessions_dir {
            Some(dir) => Some(new_recorder(&cfg, dir, now_ms(), None, key, aws)?),
            None => None,
        };
        let state = State::new(Arc::clone(&cfg.plan));
        Self::begin(cfg, recorder, seek::Live::default(), state, clock)
    }

    /// Assembles the session around its recorder and (possibly pre-folded) state, then
    /// records `SessionStarted`.
    fn begin(
        cfg: SessionConfig,
        recorder: Option<Recorder>,
        checkpoints: seek::Live,
        state: State,
        clock: Clock,
    ) -> anyhow::Result<(Session, Inbox)> {
        let started = clock.now_ms();
        let (tx, rx) = mpsc::unbounded_channel();
        let secrets = plan_secrets(&cfg.plan);
        let lock = match &recorder {
            Some(r) => Some(
                cutover_transcript::lock::TranscriptLock::acquire(r.path(), &cfg.mode.to_string())
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            None => None,
        };
        let mut session = Session {
            state,
            plan: cfg.plan,
            recorder,
            _lock: lock,
            checkpoints,
            actuator: cfg.actuator,
            tx,
            taps: Vec::new(),
            fold_hooks: Vec::new(),
            observers: Vec::new(),
            secrets,
            actions: Vec::new(),
            clock,
        };
        session.ingest(vec![Event::SessionStarted {
            at: started,
            mode: cfg.mode,
            operator: cfg.operator,
        }])?;
        Ok((session, Inbox { rx }))
    }

    /// A sender for sources, actions and the world.
    pub fn sender(&self) -> mpsc::UnboundedSender<Event> {
        self.tx.clone()
    }

    /// Gives the session the means to act (the rehearsal world's actuator exists only once
    /// the world has the session's sender).
    pub fn set_actuator(&mut self, actuator: std::sync::Arc<dyn Actuator>) {
        self.actuator = Some(actuator);
    }

    /// The clock this session stamps with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn transcript_path(&self) -> Option<&Path> {
        self.recorder.as_ref().map(|r| r.path())
    }

    /// The public key the transcript is signed with, to hand out of band (the end summary,
    /// the share hello) for `cutover verify --key`.
    pub fn transcript_key(&self) -> Option<cutover_transcript::PublicKey> {
        self.recorder.as_ref().map(|r| r.public_key())
    }

    /// The hash of the transcript's last line, for `cutover verify --expect-head`.
    pub fn transcript_head(&self) -> Option<&str> {
        self.recorder.as_ref().map(|r| r.last_hash())
    }

    pub fn add_tap(&mut self, tap: Tap) {
        self.taps.push(tap);
    }

    /// Calls `hook` with the state after every ingested batch is folded and its effects
    /// started.
    pub fn on_folded(&mut self, hook: FoldHook) {
        self.fold_hooks.push(hook);
    }

    /// Calls `observer` after every ingested batch with the batch and the state it left.
    /// The batches before this call (`SessionStarted`, a resumed session's history) are not
    /// shown again: the observer reads what it needs of them from the state.
    pub fn observe(&mut self, observer: Observer) {
        self.observers.push(observer);
    }

    /// The plan's secrets (passwords the plan points at), for scrubbing text produced
    /// outside the session (a webhook receiver's error) before it becomes an event.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Continues an interrupted session in a new transcript linked to the old one: records
    /// `history` (the old file's events, under their original seq numbers) and folds it
    /// without acting on it — its effects ran, or died, in the old process — then records
    /// `SessionStarted`, which marks steps whose action had started with no result as in doubt.
    pub fn resume(
        cfg: SessionConfig,
        resumed_from: cutover_transcript::ResumedFrom,
        history: Vec<Event>,
    ) -> anyhow::Result<(Session, Inbox)> {
        Self::resume_as(cfg, resumed_from, history, None)
    }

    /// [`Session::resume`], recording in the new header who the AWS calls are made as.
    pub fn resume_as(
        mut cfg: SessionConfig,
        resumed_from: cutover_transcript::ResumedFrom,
        history: Vec<Event>,
        aws: Option<AwsIdentity>,
    ) -> anyhow::Result<(Session, Inbox)> {
        let started = now_ms();
        let dir = cfg.sessions_dir.clone().ok_or_else(|| {
            anyhow::anyhow!("a resumed session needs a sessions directory for its new transcript")
        })?;
        let key = cfg.sign_key.take();
        let mut recorder = new_recorder(&cfg, &dir, started, Some(resumed_from), key, aws)?;
        let mut state = State::new(Arc::clone(&cfg.plan));
        let mut checkpoints = seek::Live::default();
        for chunk in history.chunks(seek::EVERY) {
            // Effects of history are not run again: they ran (or died) in the old process.
            record_and_fold(
                Some(&mut recorder),
                &mut checkpoints,
                &mut state,
                &mut [],
                chunk,
                |_| {},
            )?;
        }
        Self::begin(cfg, Some(recorder), checkpoints, state, Clock::real())
    }

    /// Records a batch durably, then folds it and carries out the effects. The order is the
    /// invariant: nothing acts on an event that is not yet on disk.
    pub fn ingest(&mut self, mut batch: Vec<Event>) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Events from different tasks can arrive slightly out of order; the transcript and
        // the fold see them in the order they are recorded, with time never going back.
        let floor = self.state.now;
        for ev in &mut batch {
            clamp_time(ev, floor);
            scrub(ev, &self.secrets);
        }
        let mut effects = Vec::new();
        record_and_fold(
            self.recorder.as_mut(),
            &mut self.checkpoints,
            &mut self.state,
            &mut self.taps,
            &batch,
            |e| effects.push(e),
        )?;
        let mut records = Vec::new();
        for effect in effects {
            match effect {
                Effect::RunAction { step, direction } => self.run(step, direction),
                // A guard's decision is an event like an operator's: recorded, then folded.
                // A read-only session decides nothing (its fold still shows the guard fire).
                Effect::Record(ev) if self.actuator.is_some() => records.push(ev),
                Effect::Record(ev) => {
                    tracing::warn!(
                        event = ev.name(),
                        "effect ignored: this session is read-only"
                    );
                }
            }
        }
        self.actions.retain(|h| !h.is_finished());
        for hook in &mut self.fold_hooks {
            hook(&self.state);
        }
        for observer in &mut self.observers {
            observer(&batch, &self.state);
        }
        // A guard fires once until cleared, so this recursion ends after one round.
        self.ingest(records)
    }

    fn run(&mut self, step: usize, direction: cutover_core::event::Direction) {
        match &self.actuator {
            Some(actuator) => self.actions.push(spawn_resolved(
                self.clock,
                Arc::clone(actuator),
                Arc::clone(&self.plan),
                step,
                direction,
                self.state.action_to_run(step, direction),
                self.tx.clone(),
            )),
            None => {
                tracing::warn!(step, "effect ignored: this session is read-only");
            }
        }
    }

    /// Whether an action task is still running.
    pub fn actions_running(&self) -> bool {
        self.actions.iter().any(|h| !h.is_finished())
    }
}

/// The secret values a plan points at: what `password_env` and `password_file` hold. Read
/// once when the session opens, so free text that echoes one can be scrubbed.
fn plan_secrets(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for ep in [&plan.source, &plan.target] {
        if let Some(v) = ep
            .password_env
            .as_ref()
            .and_then(|name| std::env::var(name).ok())
        {
            out.push(v.trim().to_string());
        }
        // The password exactly as the connection reads it (the first line, `~/` expanded);
        // what it refuses (a FIFO, a device, a huge file) is not read here either.
        if let Some(v) = ep
            .password_file
            .as_ref()
            .and_then(|f| crate::secrets::read_password_file(&crate::secrets::expand_home(f)).ok())
        {
            out.push(v);
        }
    }
    // What the plan's HTTP actions send from the environment or a file.
    for step in &plan.steps {
        for action in std::iter::once(&step.action).chain(step.undo.as_ref()) {
            if let cutover_core::plan::Action::Http(h) = action {
                out.extend(crate::action::http::secrets(h));
            }
        }
    }
    out.retain(|s| s.len() >= 4);
    out
}

/// The last line of defence for "secrets never enter an event": free text from actions,
/// sources and notes is scrubbed of URL passwords, `password=` pairs and the plan's known
/// secrets before it is recorded or folded (sources redact at the source too).
fn scrub(ev: &mut Event, secrets: &[String]) {
    let text = match ev {
        Event::ActionOutput { line, .. } => line,
        Event::ActionFinished { message, .. } => message,
        Event::SourceFailed { error, .. } => error,
        Event::Note { text, .. } => text,
        Event::StepTimedOut { reason, .. }
        | Event::StepConfirmRejected { reason, .. }
        | Event::RollbackConfirmed { reason, .. }
        | Event::SessionEnded { reason, .. } => reason,
        _ => return,
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let clean = cutover_core::redact::text(text, &secrets);
    if clean != *text {
        *text = clean;
    }
}

/// Raises an event's `at` to `floor` so the recorded timeline never goes backwards.
fn clamp_time(ev: &mut Event, floor: i64) {
    let at = ev.at_mut();
    if *at < floor {
        *at = floor;
    }
}

/// Creates a session's transcript under `dir`, its header describing `cfg`.
/// Records `batch` durably, shows it to the taps, then folds it (effects go to `effect`).
/// A seek checkpoint is left at every multiple of [`seek::EVERY`] events: the batch is
/// split there, so the checkpoint names the exact line it follows.
fn record_and_fold(
    mut recorder: Option<&mut Recorder>,
    checkpoints: &mut seek::Live,
    state: &mut State,
    taps: &mut [Tap],
    mut batch: &[Event],
    mut effect: impl FnMut(Effect),
) -> anyhow::Result<()> {
    while !batch.is_empty() {
        let to_boundary = seek::EVERY - (state.events as usize % seek::EVERY);
        let (part, rest) = batch.split_at(to_boundary.min(batch.len()));
        batch = rest;
        if let Some(r) = recorder.as_deref_mut() {
            r.append(part).map_err(|e| {
                anyhow::anyhow!(
                    "cannot append to the transcript {}: {e}",
                    r.path().display()
                )
            })?;
        }
        let head = recorder.as_deref().map(Recorder::last_hash);
        for tap in taps.iter_mut() {
            tap(part, head);
        }
        for ev in part {
            for e in state.apply(ev) {
                effect(e);
            }
        }
        if let Some(r) = recorder.as_deref() {
            checkpoints.after_fold(r, state);
        }
    }
    Ok(())
}

fn new_recorder(
    cfg: &SessionConfig,
    dir: &Path,
    started: i64,
    resumed_from: Option<cutover_transcript::ResumedFrom>,
    key: Option<cutover_transcript::SessionKey>,
    aws: Option<AwsIdentity>,
) -> anyhow::Result<Recorder> {
    let key = match key {
        Some(k) => k,
        None => cutover_transcript::SessionKey::generate()
            .map_err(|e| anyhow::anyhow!("cannot make the session's signing key: {e}"))?,
    };
    Recorder::create_signed(
        dir,
        Header {
            created_at: started,
            mode: cfg.mode.clone(),
            operator: cfg.operator.clone(),
            host: cutover_transcript::host_name(),
            program_version: env!("CARGO_PKG_VERSION").to_string(),
            plan_name: cfg.plan.name.clone(),
            plan_hash: cfg.plan.hash.clone(),
            plan_text: cfg.plan.source_text.clone(),
            resumed_from,
            approvers: cfg.plan.share.approvers.clone(),
            aws,
        },
        key,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot create a transcript in {}: {e} (pass --sessions-dir to write elsewhere)",
            dir.display()
        )
    })
}

/// The receiving end of a session's channel, kept apart so a loop can wait on it while it
/// reads the session's state.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Inbox {
    /// Waits for the next event, then takes every other pending one (drain, then draw once).
    pub async fn next_batch(&mut self) -> Vec<Event> {
        let mut batch = Vec::new();
        if let Some(ev) = self.rx.recv().await {
            batch.push(ev);
        }
        batch.extend(self.pending());
        batch
    }

    /// Takes whatever is pending without waiting.
    pub fn pending(&mut self) -> Vec<Event> {
        let mut batch = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            batch.push(ev);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrubber_hides_the_password_a_connection_reads_from_a_multi_line_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        // The connection uses the first line; the scrubber must hide exactly that.
        std::fs::write(&pw, "s3cr3t-first-line\n# rotated 2026-11-30\n").unwrap();
        let text = format!(
            "name = \"p\"\n[source]\nengine = \"mysql\"\nurl = \"mysql://app@db:3306/shop\"\n\
             password_file = \"{}\"\n[target]\nengine = \"rehearsal\"\n[[step]]\nid = \"s\"\n\
             confirm = \"go\"\n",
            pw.display()
        );
        let plan = cutover_core::plan::parse("p.toml", &text).expect("a valid plan");
        let secrets = plan_secrets(&plan);
        assert_eq!(secrets, ["s3cr3t-first-line"]);
        let mut ev = Event::Note {
            at: 1,
            text: "login as app with s3cr3t-first-line failed".into(),
        };
        scrub(&mut ev, &secrets);
        let Event::Note { text, .. } = ev else {
            unreachable!()
        };
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
