//! The playback controller: a time cursor over the transcript, the speed, seeks and the
//! state folded up to the cursor, and the footer's timeline. Pure logic over the index and
//! the checkpoint store: no terminal, no clock (playing advances by the wall time it is given).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::event::Ts;
use crate::plan::{self, Plan};
use crate::state::State;
use crate::transcript::TranscriptError;
use crate::transcript::index::{Index, Kind};

use super::checkpoints::{Shared, spawn_builder};
use super::{
    ChainCheck, DEFAULT_SKIP_IDLE_MS, KeyOutcome, ReplayError, ReplayOptions, SEEK_STEP_MS, SPEEDS,
};

/// The replay controller: a time cursor over a transcript and the state folded up to it.
pub struct Replay {
    index: Arc<Index>,
    shared: Arc<Shared>,
    builder: Option<JoinHandle<()>>,
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
        let state = State::new(Arc::clone(&plan));
        let shared = Arc::new(Shared::new(
            Arc::clone(&index),
            Arc::clone(&plan),
            every,
            opts.seek_cache.as_deref(),
            &state,
        ));
        let (steps, notable) = markers(&index);
        let builder = if opts.background {
            let spawned = spawn_builder(
                Arc::clone(&index),
                Arc::clone(&plan),
                Arc::clone(&shared),
                opts.seek_cache.clone(),
            );
            Some(spawned.map_err(|e| TranscriptError::Bad {
                path: p.clone(),
                line: 0,
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?)
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

/// Indexes of step events and of notable events, for `[`/`]`, `s` and the markers.
fn markers(index: &Index) -> (Vec<u32>, Vec<u32>) {
    let (mut steps, mut notable) = (Vec::new(), Vec::new());
    for (i, k) in index.kinds().iter().enumerate() {
        if k.is_step() {
            steps.push(i as u32);
        }
        if k.is_notable() {
            notable.push(i as u32);
        }
    }
    (steps, notable)
}

fn fmt_hms(ms: Ts) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::test_support::*;
    use crate::replay::{ChainCheck, KeyOutcome, Replay, ReplayError, ReplayOptions, SEEK_STEP_MS};

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
