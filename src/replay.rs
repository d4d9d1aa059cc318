//! `cutover replay FILE`: the cockpit's own screens rebuilt by folding the recorded events
//! with a time cursor — the panes the operator saw, not a byte recording.
//!
//! Read-only by construction: a replay holds a transcript [`Index`] and a [`State`], never a
//! session or an actuator; the effects the fold asks for are dropped.
//!
//! Large files: opening indexes the lines (offset, time, kind) without parsing the events,
//! and lists the checkpoints of the seek file ([`crate::transcript::seek`]) the live session
//! left beside the transcript (or that an earlier replay kept in the cache). A seek restores
//! the nearest checkpoint at or before the target, after checking it follows the same
//! transcript line, and folds at most [`CHECKPOINT_EVERY`] events: any point of a 24-hour
//! session is on screen in milliseconds right after opening.
//!
//! A background thread folds the whole file once anyway, checking the hash chain, keeping
//! its own checkpoints and comparing them with the seek file's: a checkpoint that differs is
//! replaced, the screen is folded again and the footer says `SEEK FILE WRONG`; while the
//! screen rests on a checkpoint not yet compared, it says `seek file …`. Without a seek file,
//! a seek past the background pass folds forward in bounded slices per frame (the footer
//! shows its progress); when the pass ends, its checkpoints are kept in the cache for next
//! time (never beside the transcript: replay writes nothing next to the evidence).
//!
//! Keys: space pause/play · `+`/`-` speed 0.5×..64× · ←/→ ±10 s · `[`/`]` previous/next step
//! event · `g`/`G` start/end · `s` skip to the next notable event · `a` auto-skip idle
//! stretches · everything else as in the cockpit (Tab, ↑↓, z, ?, q).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use futures::StreamExt;

use crate::event::Ts;
use crate::plan::{self, Plan};
use crate::state::State;
use crate::transcript::index::{Index, Kind};
use crate::transcript::seek::{self, SeekFile};
use crate::transcript::{Reader, TranscriptError};
use crate::ui::{self, Intent, Mode, Theme, UiState};

/// A `State` checkpoint every this many events: a seek folds at most this many.
pub const CHECKPOINT_EVERY: usize = seek::EVERY;
/// Most events folded per frame while a seek catches up (keeps keys responsive).
pub const FOLD_BUDGET: usize = 20_000;
/// The playback speeds `+` and `-` step through.
pub const SPEEDS: [f64; 8] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// What ←/→ move the cursor by.
pub const SEEK_STEP_MS: Ts = 10_000;
/// The default threshold of `a` (auto-skip idle stretches).
pub const DEFAULT_SKIP_IDLE_MS: Ts = 10_000;

/// Why a transcript cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error(
        "{path}:1: the recorded plan does not parse: {errors} (the header was edited; run `cutover verify {path}`)"
    )]
    Plan { path: String, errors: String },
    #[error("{path}: no events to replay (the session recorded nothing after its header)")]
    Empty { path: String },
}

/// How the background pass is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Checked up to this many events.
    Checking(usize),
    Intact,
    /// The first break, as the reader reports it (`file:line: reason`).
    Broken(String),
}

/// A checkpoint slot (one per `every` events).
#[derive(Clone)]
enum Slot {
    Empty,
    /// Listed in the seek file, not read yet (the entry's index).
    Stored(usize),
    Ready {
        state: Arc<State>,
        /// Folded by this process from a checked base, or compared with such a fold.
        checked: bool,
        /// The seek file's digest of it, when it came from there.
        digest: Option<String>,
    },
}

/// What the background builder and the controller share.
struct Shared {
    every: usize,
    index: Arc<Index>,
    plan: Arc<Plan>,
    /// Checkpoints listed in a seek file (see [`crate::transcript::seek`]).
    seek: Option<SeekFile>,
    checkpoints: Mutex<Vec<Slot>>,
    /// Notified when a checkpoint is stored or the background pass ends.
    stored: Condvar,
    chain: Mutex<ChainCheck>,
    stop: AtomicBool,
    /// Events the background pass has folded.
    built: AtomicUsize,
    /// Bumped when the background pass replaces a checkpoint that disagreed with its fold.
    replaced: AtomicUsize,
    /// The first seek-file checkpoint found wrong or unusable, and why.
    seek_problem: Mutex<Option<String>>,
}

impl Shared {
    /// The newest usable checkpoint at or before event `n`: (its event count, state,
    /// checked). Reads a seek-file checkpoint when it is the newest, after checking it
    /// still belongs to this transcript's line.
    fn best_at_or_before(&self, n: usize) -> Option<(usize, Arc<State>, bool)> {
        loop {
            let (k, entry) = {
                let cps = self.checkpoints.lock().ok()?;
                let top = (n / self.every).min(cps.len().saturating_sub(1));
                let (k, slot) = (0..=top).rev().find_map(|k| match &cps[k] {
                    Slot::Empty => None,
                    slot => Some((k, slot.clone())),
                })?;
                match slot {
                    Slot::Ready { state, checked, .. } => {
                        return Some((k * self.every, state, checked));
                    }
                    Slot::Stored(e) => (k, e),
                    Slot::Empty => unreachable!("skipped above"),
                }
            };
            // Read outside the lock: the background pass keeps storing meanwhile.
            let loaded = self.load_stored(entry);
            let mut cps = self.checkpoints.lock().ok()?;
            if matches!(cps[k], Slot::Stored(e) if e == entry) {
                cps[k] = match loaded {
                    Ok(state) => Slot::Ready {
                        state: Arc::new(state),
                        checked: false,
                        digest: self.seek.as_ref().map(|f| f.entries[entry].digest.clone()),
                    },
                    Err(why) => {
                        self.note_seek_problem(why);
                        Slot::Empty
                    }
                };
            }
        }
    }

    /// A seek-file checkpoint's state, if the transcript line it follows is unchanged.
    fn load_stored(&self, entry: usize) -> Result<State, String> {
        let file = self.seek.as_ref().ok_or("no seek file")?;
        let e = &file.entries[entry];
        let line = self
            .index
            .record_hash(e.n - 1)
            .map_err(|err| format!("reading event {}: {err}", e.n))?;
        if line != e.hash {
            return Err(format!(
                "{}: checkpoint at event {} follows a line the transcript no longer has",
                file.path.display(),
                e.n
            ));
        }
        file.load(entry, Arc::clone(&self.plan))
    }

    fn note_seek_problem(&self, why: String) {
        tracing::warn!("seek file: {why}");
        if let Ok(mut p) = self.seek_problem.lock()
            && p.is_none()
        {
            *p = Some(why);
        }
    }

    /// Stores a checkpoint the controller folded (`checked`: from a checked base).
    fn store(&self, n: usize, state: &State, checked: bool) {
        if !n.is_multiple_of(self.every) {
            return;
        }
        if let Ok(mut cps) = self.checkpoints.lock()
            && let Some(slot) = cps.get_mut(n / self.every)
            && matches!(slot, Slot::Empty)
        {
            *slot = Slot::Ready {
                state: Arc::new(state.clone()),
                checked,
                digest: None,
            };
        }
        self.stored.notify_all();
    }

    /// Stores a checkpoint of the background fold, which is the reference: a checkpoint
    /// already there (from the seek file, or folded from one) is compared with it and
    /// replaced when it differs.
    fn store_checked(&self, n: usize, state: &State) {
        if !n.is_multiple_of(self.every) {
            return;
        }
        let k = n / self.every;
        let existing = match self.checkpoints.lock() {
            Ok(cps) => cps.get(k).cloned(),
            Err(_) => return,
        };
        let (expected, keep) = match existing {
            None | Some(Slot::Ready { checked: true, .. }) => return self.stored.notify_all(),
            Some(Slot::Empty) => (None, None),
            Some(Slot::Stored(e)) => (
                self.seek.as_ref().map(|f| f.entries[e].digest.clone()),
                None,
            ),
            Some(Slot::Ready {
                state: s, digest, ..
            }) => (
                digest.or_else(|| s.snapshot().ok().map(|b| seek::digest(&b))),
                Some(s),
            ),
        };
        let mut agrees = expected.is_none();
        if let Some(expected) = &expected {
            agrees = state
                .snapshot()
                .is_ok_and(|b| seek::digest(&b) == *expected);
            if !agrees {
                self.note_seek_problem(format!(
                    "the checkpoint at event {n} differs from the transcript folded from the start; replaced"
                ));
            }
        }
        if let Ok(mut cps) = self.checkpoints.lock() {
            cps[k] = Slot::Ready {
                state: match keep {
                    Some(s) if agrees => s,
                    _ => Arc::new(state.clone()),
                },
                checked: true,
                digest: None,
            };
        }
        if !agrees {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.stored.notify_all();
    }

    /// Whether slot `k` holds a checked checkpoint.
    fn is_checked(&self, k: usize) -> bool {
        self.checkpoints
            .lock()
            .is_ok_and(|cps| matches!(cps.get(k), Some(Slot::Ready { checked: true, .. })))
    }

    /// Waits (at most `timeout`) for a checkpoint past event `pos`.
    fn wait_for_progress(&self, pos: usize, timeout: Duration) {
        let Ok(cps) = self.checkpoints.lock() else {
            return;
        };
        let k = pos / self.every + 1;
        // Spurious wake-ups and timeouts only make the caller look again.
        let _ = self.stored.wait_timeout_while(cps, timeout, |cps| {
            cps.get(k).is_some_and(|c| matches!(c, Slot::Empty))
        });
    }
}

/// Options of [`Replay::open_with`].
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub checkpoint_every: usize,
    /// Where to keep the checkpoints a replay had to build (`None`: keep none). The seek
    /// file beside the transcript is read either way.
    pub seek_cache: Option<PathBuf>,
    /// Build checkpoints and check the chain in a background thread.
    pub background: bool,
    pub speed: f64,
    pub skip_idle_ms: Option<Ts>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            checkpoint_every: CHECKPOINT_EVERY,
            seek_cache: None,
            background: true,
            speed: 1.0,
            skip_idle_ms: None,
        }
    }
}

/// What a key did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// A replay control.
    Handled,
    /// Not a replay key: give it to the cockpit's key handler.
    NotMine,
}

/// The replay controller: a time cursor over a transcript and the state folded up to it.
pub struct Replay {
    index: Arc<Index>,
    shared: Arc<Shared>,
    builder: Option<std::thread::JoinHandle<()>>,
    plan: Arc<Plan>,
    state: State,
    /// Events folded into `state`.
    pos: usize,
    /// The checkpoint slot `state` was folded from (whether it is checked decides the
    /// footer's "seek file …").
    base: usize,
    /// [`Shared::replaced`] when `state` was last rebuilt.
    seen_replaced: usize,
    /// Events the screen should show (a seek in progress when it differs from `pos`).
    target: usize,
    cursor: Ts,
    playing: bool,
    speed: usize,
    skip_idle: Option<Ts>,
    /// Indexes of step events and of notable events, for `[`/`]`, `s` and the markers.
    steps: Vec<u32>,
    notable: Vec<u32>,
    error: Option<String>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.builder.take() {
            // A builder that panicked has nothing left to give; the replay is closing anyway.
            let _ = h.join();
        }
    }
}

impl Replay {
    /// Opens a transcript for replay with the default options.
    pub fn open(path: &Path) -> Result<Replay, ReplayError> {
        Self::open_with(path, ReplayOptions::default())
    }

    pub fn open_with(path: &Path, opts: ReplayOptions) -> Result<Replay, ReplayError> {
        let index = Arc::new(Index::open(path)?);
        let p = path.display().to_string();
        if index.is_empty() {
            return Err(ReplayError::Empty { path: p });
        }
        let plan = Arc::new(
            plan::parse(&format!("{p} (recorded plan)"), &index.header.plan_text).map_err(|e| {
                ReplayError::Plan {
                    path: p.clone(),
                    errors: e.to_string(),
                }
            })?,
        );
        let every = opts.checkpoint_every.max(1);
        let slots = index.len() / every + 1;
        let seek_file = find_seek_file(&index, every, opts.seek_cache.as_deref());
        let mut checkpoints = vec![Slot::Empty; slots];
        if let Some(f) = &seek_file {
            for (i, e) in f.entries.iter().enumerate() {
                if let Some(slot) = checkpoints.get_mut(e.n / every) {
                    *slot = Slot::Stored(i);
                }
            }
        }
        let state = State::new(Arc::clone(&plan));
        checkpoints[0] = Slot::Ready {
            state: Arc::new(state.clone()),
            checked: true,
            digest: None,
        };
        let shared = Arc::new(Shared {
            every,
            index: Arc::clone(&index),
            plan: Arc::clone(&plan),
            seek: seek_file,
            checkpoints: Mutex::new(checkpoints),
            stored: Condvar::new(),
            chain: Mutex::new(ChainCheck::Checking(0)),
            stop: AtomicBool::new(false),
            built: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
            seek_problem: Mutex::new(None),
        });
        let (mut steps, mut notable) = (Vec::new(), Vec::new());
        for (i, k) in index.kinds().iter().enumerate() {
            if k.is_step() {
                steps.push(i as u32);
            }
            if k.is_notable() {
                notable.push(i as u32);
            }
        }
        let builder = if opts.background {
            let (index, plan, shared) =
                (Arc::clone(&index), Arc::clone(&plan), Arc::clone(&shared));
            let cache = opts.seek_cache.clone();
            Some(
                std::thread::Builder::new()
                    .name("replay-checkpoints".into())
                    .spawn(move || {
                        build_checkpoints(&index, plan, &shared);
                        if let Some(dir) = cache {
                            save_checkpoints(&index, &shared, &dir);
                        }
                    })
                    .map_err(|e| TranscriptError::Bad {
                        path: p.clone(),
                        line: 0,
                        reason: format!("cannot start the checkpoint thread: {e}"),
                    })?,
            )
        } else {
            None
        };
        let speed = SPEEDS
            .iter()
            .position(|&s| s >= opts.speed)
            .unwrap_or(SPEEDS.len() - 1);
        let mut replay = Replay {
            index,
            shared,
            builder,
            plan,
            state,
            pos: 0,
            base: 0,
            seen_replaced: 0,
            target: 0,
            cursor: 0,
            playing: false,
            speed,
            skip_idle: opts.skip_idle_ms,
            steps,
            notable,
            error: None,
        };
        replay.go_start();
        replay.work(usize::MAX);
        Ok(replay)
    }

    /// The state the screen shows (folded up to [`Replay::position`]).
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Events folded into [`Replay::state`].
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Where a seek is going (equals the position once it got there).
    pub fn target(&self) -> usize {
        self.target
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn cursor(&self) -> Ts {
        self.cursor
    }

    pub fn playing(&self) -> bool {
        self.playing
    }

    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    pub fn chain(&self) -> ChainCheck {
        self.shared
            .chain
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| ChainCheck::Broken("the checker stopped".into()))
    }

    /// The seek file in use, if one was found for this transcript.
    pub fn seek_file(&self) -> Option<&Path> {
        self.shared.seek.as_ref().map(|f| f.path.as_path())
    }

    /// The first seek-file checkpoint that was wrong or unusable, and why.
    pub fn seek_problem(&self) -> Option<String> {
        self.shared.seek_problem.lock().ok().and_then(|p| p.clone())
    }

    /// Whether the state on screen was folded from checkpoints this process has checked
    /// (false while it rests on a seek-file checkpoint the background pass has not reached).
    pub fn checked(&self) -> bool {
        self.shared.is_checked(self.base)
    }

    /// Events the background pass has folded (checkpoints exist up to here).
    pub fn checkpointed(&self) -> usize {
        self.shared.built.load(Ordering::Relaxed)
    }

    /// Waits until the background pass has built every checkpoint (benchmarks, tests).
    pub fn wait_for_checkpoints(&mut self) {
        if let Some(h) = self.builder.take() {
            // See Drop: a panicked builder leaves fewer checkpoints, never wrong ones.
            let _ = h.join();
        }
    }

    fn first_at(&self) -> Ts {
        self.index.times().first().copied().unwrap_or(0)
    }

    fn last_at(&self) -> Ts {
        self.index.times().last().copied().unwrap_or(0)
    }

    /// Shows the state after the first `n` events.
    pub fn seek_to(&mut self, n: usize) {
        let n = n.min(self.len());
        self.target = n;
        self.cursor = match n {
            0 => self.first_at(),
            n => self.index.times()[n - 1],
        };
    }

    /// Moves the time cursor to `t`: the state after every event at or before it.
    pub fn seek_time(&mut self, t: Ts) {
        let t = t.clamp(self.first_at(), self.last_at());
        self.cursor = t;
        self.target = self.index.count_at_or_before(t);
    }

    pub fn go_start(&mut self) {
        self.seek_time(self.first_at());
    }

    pub fn go_end(&mut self) {
        self.seek_to(self.len());
        self.playing = false;
    }

    /// The state after exactly `n` events, folded now (tests and the benchmark).
    pub fn state_at(&mut self, n: usize) -> Result<&State, String> {
        self.seek_to(n);
        self.work(usize::MAX);
        match &self.error {
            Some(e) if self.pos != self.target => Err(e.clone()),
            _ => Ok(&self.state),
        }
    }

    /// Moves the folded state towards the target, folding at most `budget` events
    /// (`usize::MAX`: until it gets there, waiting for the background pass when it will
    /// get there first). Returns whether it got there.
    pub fn work(&mut self, budget: usize) -> bool {
        let every = self.shared.every;
        let mut left = budget;
        let replaced = self.shared.replaced.load(Ordering::Relaxed);
        if replaced != self.seen_replaced {
            // The background pass replaced a checkpoint that disagreed with its fold: what is
            // on screen may rest on it, so fold to the target again from a good one.
            self.seen_replaced = replaced;
            self.state = State::new(Arc::clone(&self.plan));
            self.pos = 0;
            self.base = 0;
        }
        while self.pos != self.target {
            let target = self.target;
            // Restore a checkpoint when going back, or when one is nearer than folding on.
            if let Some((at, cp, _)) = self.shared.best_at_or_before(target)
                && (target < self.pos || at > self.pos)
            {
                self.state = (*cp).clone();
                self.pos = at;
                self.base = at / every;
            }
            if target < self.pos {
                // Checkpoint 0 is always kept; this is only a guard.
                self.state = State::new(Arc::clone(&self.plan));
                self.pos = 0;
                self.base = 0;
            }
            if self.pos == target {
                break;
            }
            // Far ahead of us and the background pass is on its way: let it fold (two
            // folds of the same events would only share the CPU), and take its checkpoint.
            let builder_running = self.builder.as_ref().is_some_and(|h| !h.is_finished());
            if builder_running && target - self.pos > every {
                if budget != usize::MAX {
                    return false;
                }
                self.shared
                    .wait_for_progress(self.pos, Duration::from_millis(100));
                continue;
            }
            if left == 0 {
                return false;
            }
            let next_cp = (self.pos / every + 1) * every;
            let end = target.min(self.pos + left.min(4096)).min(next_cp);
            match self.index.events(self.pos..end) {
                Ok(events) => {
                    for ev in &events {
                        // Read-only: effects are dropped, there is nothing to run them.
                        let _ = self.state.apply(ev);
                    }
                    left = left.saturating_sub(events.len());
                    self.pos = end;
                    let checked = self.shared.is_checked(self.base);
                    self.shared.store(self.pos, &self.state, checked);
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.target = self.pos;
                    break;
                }
            }
        }
        true
    }

    /// How far a seek in progress has got, in percent.
    pub fn seek_progress(&self) -> Option<usize> {
        if self.pos == self.target {
            return None;
        }
        let reached = if self.target > self.pos {
            self.pos.max(self.checkpointed().min(self.target))
        } else {
            self.pos
        };
        Some((reached * 100 / self.target.max(1)).min(99))
    }

    /// Plays for `wall` of real time: moves the cursor by `wall × speed`, skipping idle
    /// stretches when asked; pauses at the end.
    pub fn advance(&mut self, wall: Duration) {
        if !self.playing {
            return;
        }
        let dt = (wall.as_secs_f64() * 1000.0 * SPEEDS[self.speed]) as Ts;
        let mut t = self.cursor.saturating_add(dt);
        if let Some(threshold) = self.skip_idle {
            let next = self.next_notable_after(self.index.count_at_or_before(self.cursor));
            let next_at = next.map_or(self.last_at(), |i| self.index.times()[i]);
            if next_at - t > threshold {
                // Land a second before it, so the lead-up is seen.
                t = t.max(next_at - 1000);
            }
        }
        if t >= self.last_at() {
            self.seek_to(self.len());
            self.playing = false;
        } else {
            self.seek_time(t);
        }
    }

    fn next_notable_after(&self, n: usize) -> Option<usize> {
        let i = self.notable.partition_point(|&j| (j as usize) < n);
        self.notable.get(i).map(|&j| j as usize)
    }

    /// Jumps to the next event that is not a tick, a reading or a measure.
    pub fn skip_idle(&mut self) {
        match self.next_notable_after(self.target) {
            Some(j) => self.seek_to(j + 1),
            None => self.go_end(),
        }
    }

    /// Jumps to just after the next step event.
    pub fn next_step_event(&mut self) {
        let i = self.steps.partition_point(|&j| (j as usize) < self.target);
        match self.steps.get(i) {
            Some(&j) => self.seek_to(j as usize + 1),
            None => self.go_end(),
        }
    }

    /// Jumps to just after the previous step event (the one before the last shown).
    pub fn prev_step_event(&mut self) {
        let shown_last = self.target.saturating_sub(1);
        let i = self.steps.partition_point(|&j| (j as usize) < shown_last);
        match i.checked_sub(1).and_then(|i| self.steps.get(i)) {
            Some(&j) => self.seek_to(j as usize + 1),
            None => self.go_start(),
        }
    }

    pub fn toggle_play(&mut self) {
        if !self.playing && self.target >= self.len() {
            self.go_start();
        }
        self.playing = !self.playing;
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
    }

    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }

    pub fn toggle_auto_skip(&mut self) {
        self.skip_idle = match self.skip_idle {
            Some(_) => None,
            None => Some(DEFAULT_SKIP_IDLE_MS),
        };
    }

    /// The replay's own keys. Others go to the cockpit's handler.
    pub fn handle_key(&mut self, key: KeyEvent) -> KeyOutcome {
        if key.kind == KeyEventKind::Release || key.modifiers.contains(KeyModifiers::CONTROL) {
            return KeyOutcome::NotMine;
        }
        match key.code {
            KeyCode::Char(' ') => self.toggle_play(),
            KeyCode::Char('+') | KeyCode::Char('=') => self.faster(),
            KeyCode::Char('-') | KeyCode::Char('_') => self.slower(),
            KeyCode::Left => self.seek_time(self.cursor - SEEK_STEP_MS),
            KeyCode::Right => self.seek_time(self.cursor + SEEK_STEP_MS),
            KeyCode::Char('[') => self.prev_step_event(),
            KeyCode::Char(']') => self.next_step_event(),
            KeyCode::Char('g') => self.go_start(),
            KeyCode::Char('G') => self.go_end(),
            KeyCode::Char('s') => self.skip_idle(),
            KeyCode::Char('a') => self.toggle_auto_skip(),
            _ => return KeyOutcome::NotMine,
        }
        KeyOutcome::Handled
    }

    /// The timeline line for the footer, `width` columns wide: play state, speed, the
    /// cursor's time, a bar with step markers (◆ step, ! failure/timeout/rollback, ● cursor),
    /// the event position and the chain check.
    pub fn timeline(&self, width: usize) -> String {
        let play = if self.playing { "▶" } else { "⏸" };
        let speed = match SPEEDS[self.speed] {
            s if s < 1.0 => format!("{s}×"),
            s => format!("{}×", s as u32),
        };
        let clock = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.cursor)
            .map(|d| d.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let elapsed = fmt_hms(self.cursor - self.first_at());
        let total = fmt_hms(self.last_at() - self.first_at());
        let skip = if self.skip_idle.is_some() {
            " skip"
        } else {
            ""
        };
        let left = format!("{play} {speed:>4}{skip} {clock}Z +{elapsed}/{total} ");
        let mut right = format!(" {}/{}", self.target, self.len());
        if let Some(p) = self.seek_progress() {
            right.push_str(&format!(" seeking {p}%"));
        }
        right.push_str(match self.chain() {
            ChainCheck::Intact => " chain ✓",
            ChainCheck::Checking(_) => " chain …",
            ChainCheck::Broken(_) => " CHAIN BROKEN",
        });
        if self.seek_problem().is_some() {
            right.push_str(" SEEK FILE WRONG");
        } else if !self.shared.is_checked(self.base) {
            right.push_str(" seek file …");
        }
        if self.index.torn_tail.is_some() {
            right.push_str(" torn tail");
        }
        if self.error.is_some() || self.index.stopped.is_some() {
            right.push_str(" unreadable past here");
        }
        let keys = "  space ⏯ ←→ ±10s [ ] step g G s skip +- speed";
        let used = left.chars().count() + right.chars().count();
        let (bar_w, keys) = if width >= used + 30 + keys.chars().count() {
            (width - used - keys.chars().count(), keys)
        } else {
            (width.saturating_sub(used).max(10), "")
        };
        format!("{left}{}{right}{keys}", self.bar(bar_w))
    }

    fn bar(&self, width: usize) -> String {
        let inner = width.saturating_sub(2).max(1);
        let (a, b) = (self.first_at(), self.last_at());
        let span = (b - a).max(1) as f64;
        let col = |t: Ts| (((t - a) as f64 / span) * (inner - 1) as f64).round() as usize;
        let mut cells = vec!['─'; inner];
        for &j in &self.steps {
            let j = j as usize;
            let c = col(self.index.times()[j]).min(inner - 1);
            let mark = if self.index.kinds()[j] == Kind::Alarm {
                '!'
            } else {
                '◆'
            };
            if cells[c] != '!' {
                cells[c] = mark;
            }
        }
        cells[col(self.cursor).min(inner - 1)] = '●';
        let mut s = String::with_capacity(width * 3);
        s.push('├');
        s.extend(cells);
        s.push('┤');
        s
    }

    /// What went wrong reading past the position, if anything.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref().or(self.index.stopped.as_deref())
    }
}

fn fmt_hms(ms: Ts) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The background pass: folds every event once, keeping a checkpoint every `every`. A
/// second thread parses ahead and checks the hash chain with the streaming reader; after a
/// break it goes on parsing from the index (the events still replay; the footer says the
/// chain is broken).
fn build_checkpoints(index: &Index, plan: Arc<Plan>, shared: &Shared) {
    const BATCH: usize = 2048;
    let total = index.len();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<crate::event::Event>>(8);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut reader = match Reader::open(index.path()) {
                Ok(r) => Some(r),
                Err(e) => {
                    set_chain(shared, ChainCheck::Broken(e.to_string()));
                    None
                }
            };
            let mut n = 0usize;
            while n < total && !shared.stop.load(Ordering::Relaxed) {
                let mut batch = Vec::with_capacity(BATCH);
                if let Some(r) = reader.as_mut() {
                    while batch.len() < BATCH && n + batch.len() < total {
                        match r.next_event() {
                            Ok(Some(ev)) => batch.push(ev),
                            Ok(None) => break,
                            Err(e) => {
                                set_chain(shared, ChainCheck::Broken(e.to_string()));
                                reader = None;
                                break;
                            }
                        }
                    }
                }
                if batch.is_empty() {
                    // No reader (or it stopped short): parse from the index instead.
                    reader = None;
                    match index.events(n..(n + BATCH).min(total)) {
                        Ok(evs) if !evs.is_empty() => batch = evs,
                        _ => break,
                    }
                }
                n += batch.len();
                if reader.is_some() {
                    set_chain(shared, ChainCheck::Checking(n));
                }
                if tx.send(batch).is_err() {
                    break;
                }
            }
            if reader.is_some() && n >= total {
                set_chain(shared, ChainCheck::Intact);
            }
        });
        let mut state = State::new(plan);
        let mut n = 0usize;
        for batch in rx {
            if shared.stop.load(Ordering::Relaxed) {
                // Dropping the receiver ends the parser at its next send.
                break;
            }
            for ev in &batch {
                let _ = state.apply(ev);
                n += 1;
                shared.store_checked(n, &state);
            }
            shared.built.store(n, Ordering::Relaxed);
        }
    });
}

/// The seek file for this transcript: the one a previous replay built and checked (in the
/// cache) before the one the live session wrote beside it.
fn find_seek_file(index: &Index, every: usize, cache: Option<&Path>) -> Option<SeekFile> {
    let candidates = cache
        .and_then(|dir| seek::in_cache(dir, index).ok())
        .into_iter()
        .chain([seek::beside(index.path())]);
    for path in candidates {
        match SeekFile::open(&path, &index.root_hash, every) {
            Ok(Some(f)) if !f.entries.is_empty() => return Some(f),
            Ok(_) => {}
            Err(e) => tracing::warn!("seek file {}: {e}; not used", path.display()),
        }
    }
    None
}

/// After a complete background pass over an intact chain, keeps its checkpoints in the cache
/// when no seek file had them all (or one was wrong), so the next replay seeks at once.
fn save_checkpoints(index: &Index, shared: &Shared, dir: &Path) {
    let total = index.len();
    let every = shared.every;
    let complete = shared
        .seek
        .as_ref()
        .is_some_and(|f| f.entries.len() >= total / every);
    if shared.stop.load(Ordering::Relaxed)
        || total < every
        || shared.built.load(Ordering::Relaxed) < total
        || !matches!(
            *shared.chain.lock().unwrap_or_else(|e| e.into_inner()),
            ChainCheck::Intact
        )
        || (complete && shared.seek_problem.lock().is_ok_and(|p| p.is_none()))
    {
        return;
    }
    let save = || -> std::io::Result<PathBuf> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let to = seek::in_cache(dir, index)?;
        let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
        let mut w = seek::Writer::create(&tmp, &index.root_hash, every)?;
        let cleanup = RemoveOnDrop(Some(tmp.clone()));
        for k in 1..=total / every {
            let state = match shared.checkpoints.lock() {
                Ok(cps) => match &cps[k] {
                    Slot::Ready {
                        state,
                        checked: true,
                        ..
                    } => Arc::clone(state),
                    _ => break,
                },
                Err(_) => break,
            };
            let n = k * every;
            let bytes = state.snapshot().map_err(std::io::Error::other)?;
            w.write_snapshot(n, &index.record_hash(n - 1)?, &bytes)?;
        }
        w.finish_as(&to)?;
        cleanup.disarm();
        Ok(to)
    };
    match save() {
        Ok(to) => tracing::info!("seek checkpoints kept in {}", to.display()),
        Err(e) => tracing::warn!("cannot keep seek checkpoints in {}: {e}", dir.display()),
    }
}

/// Removes a half-written file unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn set_chain(shared: &Shared, c: ChainCheck) {
    if let Ok(mut chain) = shared.chain.lock() {
        // The first break is the one to report.
        if !matches!(*chain, ChainCheck::Broken(_)) {
            *chain = c;
        }
    }
}

/// Replays `path` on the terminal until the viewer quits.
pub async fn run_replay(path: &Path, theme: &Theme) -> anyhow::Result<()> {
    run_replay_with(path, theme, ReplayOptions::default(), true).await
}

/// [`run_replay`] with the command line's options.
pub async fn run_replay_args(args: &crate::cli::ReplayArgs, theme: &Theme) -> anyhow::Result<()> {
    run_replay_with(
        &args.file,
        theme,
        ReplayOptions {
            speed: args.speed,
            skip_idle_ms: args.skip_idle.map(|s| s as Ts * 1000),
            seek_cache: seek::default_cache_dir(),
            ..ReplayOptions::default()
        },
        !args.paused,
    )
    .await
}

async fn run_replay_with(
    path: &Path,
    theme: &Theme,
    opts: ReplayOptions,
    play: bool,
) -> anyhow::Result<()> {
    let mut replay = Replay::open_with(path, opts)?;
    if play {
        replay.toggle_play();
    }
    let mut ui_state = UiState::new(
        Mode::Replay,
        replay.index().header.operator.clone(),
        Some(path.display().to_string()),
    );
    let (mut terminal, _guard) = crate::app::enter_terminal()?;
    let mut keys = EventStream::new();
    let frame = Duration::from_millis(1000 / 30);
    let mut ticker = tokio::time::interval(frame);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut signals = crate::app::Signals::new()?;
    let mut last = Instant::now();
    let mut drawn: Option<(usize, String)> = None;
    let mut dirty = true;
    loop {
        let now = Instant::now();
        replay.advance(now - last);
        last = now;
        replay.work(FOLD_BUDGET);
        let width = terminal.size().map(|s| s.width as usize).unwrap_or(80);
        let footer = replay.timeline(width.saturating_sub(1));
        let key = (replay.position(), footer.clone());
        if dirty || drawn.as_ref() != Some(&key) {
            ui_state.footer = Some(footer);
            terminal.draw(|f| ui::draw(f, replay.state(), &ui_state, theme))?;
            drawn = Some(key);
            dirty = false;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            term = keys.next() => match term {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    dirty = true;
                    if replay.handle_key(key) == KeyOutcome::Handled {
                        ui_state.notice = None;
                        continue;
                    }
                    let now = replay.state().now;
                    for intent in ui::handle_key(&mut ui_state, replay.state(), key, now) {
                        match intent {
                            Intent::Quit => return Ok(()),
                            // Read-only: nothing is recorded (the replay mode refuses it anyway).
                            Intent::Record(_) => {}
                        }
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => return Ok(()),
            },
            _ = signals.next() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::transcript::{Header, Recorder};

    const T0: Ts = 1_767_225_600_000;

    /// A transcript of the rehearsal plan: ticks, a note every 100 events, a confirmation
    /// now and then; returns its path and events.
    fn transcript(dir: &Path, n: usize) -> (PathBuf, Vec<Event>) {
        transcript_created(dir, n, T0)
    }

    fn transcript_created(dir: &Path, n: usize, created_at: Ts) -> (PathBuf, Vec<Event>) {
        let plan = plan::rehearsal_plan();
        let mut r = Recorder::create(
            dir,
            Header {
                created_at,
                mode: "test".into(),
                operator: "op".into(),
                host: "h".into(),
                program_version: "0".into(),
                plan_name: plan.name.clone(),
                plan_hash: plan.hash.clone(),
                plan_text: plan.source_text.clone(),
                resumed_from: None,
            },
        )
        .unwrap();
        let mut events = vec![Event::SessionStarted {
            at: T0,
            mode: "test".into(),
            operator: "op".into(),
        }];
        for i in 1..n as i64 {
            let at = T0 + i * 500;
            events.push(match i % 100 {
                50 => Event::Note {
                    at,
                    text: format!("note {i}"),
                },
                99 => Event::StepConfirmed {
                    at,
                    step: "preflight".into(),
                    by: "op".into(),
                },
                _ => Event::Tick { at },
            });
        }
        r.append(&events).unwrap();
        (r.path().to_path_buf(), events)
    }

    fn fold(events: &[Event]) -> State {
        let mut s = State::new(Arc::new(plan::rehearsal_plan()));
        for e in events {
            let _ = s.apply(e);
        }
        s
    }

    fn same(a: &State, b: &State) {
        assert_eq!(a.events, b.events);
        assert_eq!(a.now, b.now);
        assert_eq!(a.log, b.log);
        assert_eq!(a.steps, b.steps);
        assert!(
            a.snapshot().unwrap() == b.snapshot().unwrap(),
            "states differ at event {}",
            a.events
        );
    }

    /// Writes the seek file a live session would have written beside `path` (a checkpoint
    /// every `every` events), folding `states_from` instead of the recorded events when given
    /// (a forged file whose digests and line hashes are right).
    fn write_seek(path: &Path, every: usize, events: &[Event], states_from: Option<&[Event]>) {
        let index = Index::open(path).unwrap();
        let mut w = seek::Writer::create(&seek::beside(path), &index.root_hash, every).unwrap();
        for n in (every..=events.len()).step_by(every) {
            let state = fold(&states_from.unwrap_or(events)[..n]);
            w.checkpoint(&index.record_hash(n - 1).unwrap(), &state)
                .unwrap();
        }
    }

    fn opts(every: usize, background: bool) -> ReplayOptions {
        ReplayOptions {
            checkpoint_every: every,
            background,
            ..ReplayOptions::default()
        }
    }

    #[test]
    fn seeks_from_a_seek_file_equal_a_fold_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 2_345);
        write_seek(&path, 100, &events, None);
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        assert_eq!(r.seek_file(), Some(seek::beside(&path).as_path()));
        for n in [2_345, 2_300, 7, 1_999, 1_000, 0, 2_200, 150] {
            let got = r.state_at(n).unwrap().clone();
            same(&got, &fold(&events[..n]));
            // Without a background pass nothing checked the file's checkpoints.
            assert_eq!(r.checked(), n < 100, "at {n}");
        }
        // The only folding done was from the nearest checkpoint: at most 99 events a seek.
        assert!(r.timeline(200).contains("seek file …"));
        assert_eq!(r.seek_problem(), None);

        // With the background pass every checkpoint gets compared and found right.
        let mut r = Replay::open_with(&path, opts(100, true)).unwrap();
        same(r.state_at(2_250).unwrap(), &fold(&events[..2_250]));
        r.wait_for_checkpoints();
        assert_eq!(r.seek_problem(), None);
        assert!(r.checked());
        assert!(!r.timeline(200).contains("seek file"));
    }

    #[test]
    fn a_forged_seek_file_is_caught_by_the_background_fold_and_the_screen_refolded() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 1_000);
        // Right digests and line hashes, wrong states: notes that never happened.
        let mut forged = events.clone();
        for e in &mut forged {
            if let Event::Note { text, .. } = e {
                *text = "all good, nothing to see".into();
            }
        }
        write_seek(&path, 100, &events, Some(&forged));
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        let shown = r.state_at(950).unwrap().clone();
        assert!(
            shown.log.iter().any(|l| l.text.contains("nothing to see")),
            "without a check the forged checkpoint is what a seek restores"
        );
        drop(r);

        let mut r = Replay::open_with(&path, opts(100, true)).unwrap();
        r.state_at(950).unwrap();
        r.wait_for_checkpoints();
        let problem = r.seek_problem().expect("the forgery is reported");
        assert!(problem.contains("differs from the transcript"), "{problem}");
        assert!(r.timeline(200).contains("SEEK FILE WRONG"));
        // The next frame folds the screen again from checked checkpoints.
        r.work(usize::MAX);
        same(r.state(), &fold(&events[..950]));
        for n in [100, 500, 999] {
            same(r.state_at(n).unwrap(), &fold(&events[..n]));
        }
    }

    #[test]
    fn a_seek_file_is_not_used_for_lines_that_changed_or_another_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 1_000);
        write_seek(&path, 100, &events, None);
        // Another interval: the file is not for this replay.
        let r = Replay::open_with(&path, opts(50, false)).unwrap();
        assert_eq!(r.seek_file(), None);
        drop(r);
        // Rewrite event 800's line (whitespace only, still the same event): the checkpoint
        // taken right after it no longer follows a line of this file.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[800] = lines[800].replacen("\"at\":", "\"at\" :", 1);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        assert!(r.seek_file().is_some());
        same(r.state_at(750).unwrap(), &fold(&events[..750]));
        assert_eq!(
            r.seek_problem(),
            None,
            "checkpoints before the edit are fine"
        );
        same(r.state_at(850).unwrap(), &fold(&events[..850]));
        let problem = r.seek_problem().expect("the stale checkpoint is reported");
        assert!(problem.contains("no longer has"), "{problem}");
        same(r.state_at(950).unwrap(), &fold(&events[..950]));
        // A transcript with another header: the file names another root.
        let (other, _) = transcript_created(&dir.path().join("other"), 1_000, T0 + 1);
        std::fs::copy(seek::beside(&path), seek::beside(&other)).unwrap();
        let r = Replay::open_with(&other, opts(100, false)).unwrap();
        assert_eq!(r.seek_file(), None);
    }

    #[test]
    fn a_replay_that_built_its_checkpoints_keeps_them_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let (path, events) = transcript(dir.path(), 1_234);
        let with_cache = || ReplayOptions {
            seek_cache: Some(cache.clone()),
            ..opts(100, true)
        };
        let mut r = Replay::open_with(&path, with_cache()).unwrap();
        assert_eq!(r.seek_file(), None);
        r.wait_for_checkpoints();
        drop(r);
        let kept = seek::in_cache(&cache, &Index::open(&path).unwrap()).unwrap();
        assert!(kept.exists(), "{}", kept.display());
        assert!(
            !seek::beside(&path).exists(),
            "nothing is written beside the evidence"
        );
        let mut r = Replay::open_with(
            &path,
            ReplayOptions {
                background: false,
                ..with_cache()
            },
        )
        .unwrap();
        assert_eq!(r.seek_file(), Some(kept.as_path()));
        for n in [1_234, 1_200, 345] {
            same(r.state_at(n).unwrap(), &fold(&events[..n]));
        }
    }

    #[test]
    fn every_seek_equals_a_fold_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 2_345);
        for background in [false, true] {
            let mut r = Replay::open_with(
                &path,
                ReplayOptions {
                    checkpoint_every: 100,
                    background,
                    ..ReplayOptions::default()
                },
            )
            .unwrap();
            assert_eq!(r.len(), events.len());
            for n in [2_345, 7, 1_000, 999, 1_001, 0, 2_200, 150, 2_345] {
                let got = r.state_at(n).unwrap().clone();
                same(&got, &fold(&events[..n]));
            }
            r.wait_for_checkpoints();
            if background {
                assert_eq!(r.chain(), ChainCheck::Intact);
                assert_eq!(r.checkpointed(), events.len());
            }
            // Bounded work per frame: a long seek takes several slices.
            r.seek_to(0);
            assert!(r.work(usize::MAX));
            r.seek_to(2_000);
            let mut slices = 0;
            while !r.work(40) {
                slices += 1;
                assert!(slices < 1_000);
            }
            same(r.state(), &fold(&events[..2_000]));
        }
    }

    #[test]
    fn keys_move_the_cursor_and_playback_pauses_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 1_000);
        let mut r = Replay::open_with(
            &path,
            ReplayOptions {
                background: false,
                ..ReplayOptions::default()
            },
        )
        .unwrap();
        let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
        assert_eq!(r.position(), 1, "opens on the first instant");
        assert_eq!(r.handle_key(key(KeyCode::Right)), KeyOutcome::Handled);
        assert_eq!(r.cursor(), T0 + SEEK_STEP_MS);
        assert_eq!(r.target(), 21);
        r.handle_key(key(KeyCode::Left));
        r.handle_key(key(KeyCode::Left));
        assert_eq!(r.cursor(), T0, "clamped at the start");
        r.handle_key(key(KeyCode::Char(']')));
        assert_eq!(r.target(), 100, "just after the first confirmation");
        r.handle_key(key(KeyCode::Char(']')));
        assert_eq!(r.target(), 200);
        r.handle_key(key(KeyCode::Char('[')));
        assert_eq!(r.target(), 100);
        r.handle_key(key(KeyCode::Char('s')));
        assert_eq!(r.target(), 151, "skips to the next note");
        r.handle_key(key(KeyCode::Char('G')));
        assert_eq!(r.target(), events.len());
        assert_eq!(r.handle_key(key(KeyCode::Char('x'))), KeyOutcome::NotMine);
        assert_eq!(r.handle_key(key(KeyCode::Tab)), KeyOutcome::NotMine);
        // Speed steps and clamps.
        for _ in 0..10 {
            r.handle_key(key(KeyCode::Char('+')));
        }
        assert_eq!(r.speed(), 64.0);
        for _ in 0..10 {
            r.handle_key(key(KeyCode::Char('-')));
        }
        assert_eq!(r.speed(), 0.5);
        // Play from the end restarts; 64x for 2 s of wall time moves 128 s.
        r.handle_key(key(KeyCode::Char(' ')));
        assert!(r.playing());
        assert_eq!(r.cursor(), T0);
        for _ in 0..7 {
            r.faster();
        }
        r.advance(Duration::from_secs(2));
        assert_eq!(r.cursor(), T0 + 128_000);
        r.advance(Duration::from_secs(60));
        assert!(!r.playing(), "pauses at the end");
        assert_eq!(r.target(), events.len());
        // Auto-skip jumps idle stretches to a second before the next notable event.
        r.go_start();
        r.toggle_auto_skip();
        r.slower();
        r.slower();
        r.slower();
        r.slower();
        r.slower();
        r.slower();
        r.toggle_play();
        r.advance(Duration::from_millis(100));
        assert_eq!(r.cursor(), T0 + 50 * 500 - 1000);
        let line = r.timeline(120);
        assert!(line.starts_with("▶"), "{line}");
        assert!(line.contains("◆") && line.contains("●"), "{line}");
        assert!(line.contains("skip"), "{line}");
    }

    #[test]
    fn a_transcript_with_no_events_or_a_bad_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = transcript(dir.path(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let header_only = dir.path().join("h.jsonl");
        std::fs::write(
            &header_only,
            text.lines().next().unwrap().to_string() + "\n",
        )
        .unwrap();
        assert!(matches!(
            Replay::open(&header_only),
            Err(ReplayError::Empty { .. })
        ));
        let missing = Replay::open(&dir.path().join("nope.jsonl"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("nope.jsonl: cannot open"), "{missing}");
    }
}
