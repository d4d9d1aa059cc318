//! Guards over the window between steps: the plan's `[[abort]]` conditions and, in an
//! interactive drive, step timeouts. Folded on every event (time passes through ticks), so
//! replay, attach and report see a guard fire at the same event the live cockpit did.
//!
//! The window's own guards sit here too: the downtime budget (`max_downtime`, counted over
//! [`DowntimeWindow`], warned at 80 % through a recorded `GuardWarned`, then the plan's
//! `on_budget` at 100 %, decided like an abort) and the deadline (`deadline` / `window`:
//! past it no forward step starts; rollback always may).
//!
//! An abort condition that fires blocks forward steps at once, in the fold. A `hold` stays
//! until the operator clears it (`HoldCleared`, a typed phrase); a `rollback` asks the
//! runtime to record `RollbackConfirmed { by: "abort <id>" }` (`Effect::Record`), so the
//! rollback starts through the recorder like an operator's, and the transcript names the
//! plan's decision and the reading that fired it. A step timeout is first recorded
//! (`StepTimedOut`, asked for the same way) and decided when that record is folded (hold, or
//! `RollbackConfirmed { by: "timeout <step>" }`), so a transcript from before interactive
//! timeouts folds as it did live.

use serde::{Deserialize, Serialize};

use super::gate::compare;
use super::{Effect, InputValue, Level, RollbackStatus, State, StepStatus};
use crate::event::{Direction, Event, Ts};
use crate::plan::{AbortCondition, Deadline, GuardAction, limits};

/// What one abort condition is doing now, for the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortState {
    /// Outside its `from`..`until` steps (or a rollback owns the session).
    Disarmed,
    /// Armed; its condition does not hold.
    Quiet,
    /// Armed; its condition holds, its `for` window not yet full.
    Holding,
    /// Armed; its input is missing or stale (past the freshness bound for as long again, it
    /// holds: inconclusive never proceeds).
    Unknown,
    /// It fired (until a cleared hold re-arms it).
    Fired,
}

impl AbortState {
    pub fn as_str(self) -> &'static str {
        match self {
            AbortState::Disarmed => "disarmed",
            AbortState::Quiet => "armed",
            AbortState::Holding => "holding",
            AbortState::Unknown => "unknown",
            AbortState::Fired => "FIRED",
        }
    }
}

/// The fold's watch over one abort condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AbortWatch {
    /// When it was (re-)armed; `None` while disarmed.
    pub armed_at: Option<Ts>,
    /// Since when its condition has held on fresh readings.
    pub holding_since: Option<Ts>,
    /// When the newest reading that kept the hold was taken (a gap past the freshness bound
    /// breaks the window).
    seen: Option<Ts>,
    /// Since when its input has been missing or stale.
    pub unknown_since: Option<Ts>,
    /// When it fired and why; it fires once (a cleared hold re-arms it).
    pub fired: Option<(Ts, String)>,
    /// What the screen shows beside the state.
    pub reason: String,
}

impl AbortWatch {
    pub fn state(&self) -> AbortState {
        if self.fired.is_some() {
            AbortState::Fired
        } else if self.armed_at.is_none() {
            AbortState::Disarmed
        } else if self.unknown_since.is_some() {
            AbortState::Unknown
        } else if self.holding_since.is_some() {
            AbortState::Holding
        } else {
            AbortState::Quiet
        }
    }
}

/// A guard that fired and blocks forward steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardHold {
    /// `abort <id>` or `timeout <step>`: what the operator clears, and who the transcript
    /// names.
    pub guard: String,
    pub reason: String,
    pub at: Ts,
    /// `Rollback`: the rollback is being recorded; it cannot be cleared, only started.
    pub then: GuardAction,
}

/// The phrase the operator types to clear a hold.
pub const CLEAR_PHRASE: &str = "clear hold";

/// The guard name of the downtime budget, in holds, rollbacks and warnings.
pub const BUDGET_GUARD: &str = "budget";

/// The write-downtime window, as the plan's freeze and unfreeze steps open and close it
/// (`Plan::downtime_steps`; the report measures the same window), and the budget's
/// progress over it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DowntimeWindow {
    /// The freeze step's action started.
    pub started: Option<Ts>,
    /// When writes were allowed again, and by what: `<step> finished` (the unfreeze) or
    /// `<step> undone` (the freeze's undo).
    pub ended: Option<(Ts, String)>,
    /// When the 80 % warning was given (once).
    pub warned_at: Option<Ts>,
    /// When the budget was spent and its guard fired (once).
    pub spent_at: Option<Ts>,
}

impl DowntimeWindow {
    /// How long writes have been (or were) frozen, as of `now`.
    pub fn used_ms(&self, now: Ts) -> Option<i64> {
        let start = self.started?;
        let end = self.ended.as_ref().map_or(now, |(at, _)| *at);
        Some((end - start).max(0))
    }

    /// Writes are frozen now.
    pub fn open(&self) -> bool {
        self.started.is_some() && self.ended.is_none()
    }
}

/// `1m05s`, `42s`: a countdown as the status bar and the log say it.
pub fn show_countdown(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

impl State {
    /// Evaluates every guard after an event; returns the rollbacks to record.
    pub(super) fn watch_guards(&mut self, at: Ts) -> Vec<Effect> {
        let plan = std::sync::Arc::clone(&self.plan);
        if self.aborts.len() != plan.aborts.len() {
            self.aborts.resize(plan.aborts.len(), AbortWatch::default());
        }
        let mut effects = Vec::new();
        // Rollback is always allowed and nothing guards it; an ended session watches nothing.
        let quiet = self.rollback.is_some() || self.completed() || self.ended.is_some();
        for (i, def) in plan.aborts.iter().enumerate() {
            if quiet || !self.abort_armed(def) {
                let w = &mut self.aborts[i];
                let fired = w.fired.take();
                *w = AbortWatch {
                    fired,
                    ..AbortWatch::default()
                };
                w.reason = "disarmed".into();
                continue;
            }
            if let Some(e) = self.watch_abort(at, i, def) {
                effects.push(e);
            }
        }
        if !quiet && self.mode.as_ref().is_some_and(|m| m.drives_interactively()) {
            effects.extend(self.watch_timeouts(at));
        }
        if !quiet {
            effects.extend(self.watch_budget(at));
            self.watch_deadline(at);
        }
        effects
    }

    /// A step's action started: the downtime window opens at the start of the freeze
    /// step's action.
    pub(super) fn downtime_started(&mut self, at: Ts, i: usize, direction: Direction) {
        let (freeze, _) = self.plan.downtime_steps();
        if direction == Direction::Do && Some(i) == freeze && self.downtime.started.is_none() {
            self.downtime.started = Some(at);
        }
    }

    /// A step's action finished well: the window closes when the unfreeze finishes, or the
    /// freeze is undone.
    pub(super) fn downtime_thawed(&mut self, at: Ts, i: usize, direction: Direction) {
        let (freeze, unfreeze) = self.plan.downtime_steps();
        let thaws = match direction {
            Direction::Do => Some(i) == unfreeze,
            Direction::Undo => Some(i) == freeze,
        };
        if thaws && self.downtime.open() {
            let how = match direction {
                Direction::Do => "finished",
                Direction::Undo => "undone",
            };
            let step = self.plan.steps[i].id.clone();
            self.downtime.ended = Some((at, format!("{step} {how}")));
        }
    }

    /// The downtime budget: a warning at 80 % (recorded, so replay and report see it where
    /// the live cockpit gave it), and the plan's `on_budget` at 100 %.
    fn watch_budget(&mut self, at: Ts) -> Vec<Effect> {
        let Some(budget) = self.plan.budget else {
            return Vec::new();
        };
        let Some(used) = self
            .downtime
            .used_ms(self.now)
            .filter(|_| self.downtime.open())
        else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        let max = limits::show_ms(budget.max_ms);
        if used >= budget.warn_after_ms() && self.downtime.warned_at.is_none() {
            self.downtime.warned_at = Some(at);
            effects.push(Effect::Record(Event::GuardWarned {
                at,
                guard: BUDGET_GUARD.into(),
                reason: format!(
                    "{}% of the downtime budget spent: writes frozen for {} of {max}; at {max} the plan says {}",
                    used * 100 / budget.max_ms.max(1),
                    show_countdown(used),
                    budget.on_budget.as_str()
                ),
            }));
        }
        if used >= budget.max_ms && self.downtime.spent_at.is_none() {
            self.downtime.spent_at = Some(at);
            let reason = format!(
                "the downtime budget is spent: writes frozen for {} (max_downtime {max})",
                show_countdown(used)
            );
            effects.extend(self.trip(at, BUDGET_GUARD.into(), budget.on_budget, reason));
        }
        effects
    }

    /// A recorded budget warning: into the log (the fold asked for it; a transcript carries
    /// it, so its folding marks it given too).
    pub(super) fn guard_warned(&mut self, at: Ts, guard: &str, reason: &str) {
        if guard == BUDGET_GUARD {
            self.downtime.warned_at.get_or_insert(at);
        }
        self.log(at, Level::Warn, format!("{guard} warning: {reason}"));
    }

    /// When the plan's deadline falls: its `deadline`, or `window` after the session began.
    pub fn deadline_at(&self) -> Option<Ts> {
        match self.plan.deadline? {
            Deadline::At(t) => Some(t),
            Deadline::Window(ms) => self.started_at.map(|s| s.saturating_add(ms)),
        }
    }

    /// Why no forward step may start now because the deadline passed.
    pub fn deadline_blocker(&self) -> Option<String> {
        let due = self.deadline_at()?;
        (self.now > due).then(|| {
            format!(
                "the window's deadline passed {} ago: no forward step may start after it (a step begun late would run into the time the window does not have); press R to roll back",
                show_countdown(self.now - due)
            )
        })
    }

    /// Says once, in the log, that the deadline passed.
    fn watch_deadline(&mut self, at: Ts) {
        if self.deadline_passed.is_some() {
            return;
        }
        if let Some(why) = self.deadline_blocker() {
            self.deadline_passed = Some(at);
            self.log(at, Level::Error, why);
        }
    }

    /// Armed from the start of step `from` through the end of step `until`.
    fn abort_armed(&self, def: &AbortCondition) -> bool {
        let started = def
            .from
            .is_none_or(|f| self.steps.get(f).is_some_and(|s| s.confirmed_at.is_some()));
        let not_ended = def.until.is_none_or(|u| {
            self.steps
                .get(u)
                .is_some_and(|s| s.status != StepStatus::Done)
        });
        started && not_ended
    }

    fn watch_abort(&mut self, at: Ts, i: usize, def: &AbortCondition) -> Option<Effect> {
        if self.aborts[i].fired.is_some() {
            return None;
        }
        let gate = &def.when;
        let fresh = gate.fresh_ms();
        let now = self.now;
        let armed_at = *self.aborts[i].armed_at.get_or_insert(at);
        // Only a reading taken since it was (re-)armed counts: after a cleared hold, the
        // reading that fired it proves nothing new.
        let input = match self.input_value(&gate.input) {
            InputValue::Known { observed_at, .. } if observed_at < armed_at => {
                InputValue::Missing("waiting for a reading taken since it was armed".into())
            }
            input => input,
        };
        let stale_since = match &input {
            InputValue::Known {
                value,
                observed_at,
                detail,
            } if now - observed_at <= fresh => {
                let holds = compare(value, gate.op, &gate.value);
                let since = holds.then(|| self.satisfied_since(gate, *observed_at).max(armed_at));
                let w = &mut self.aborts[i];
                w.unknown_since = None;
                let Some(since) = since else {
                    w.holding_since = None;
                    w.seen = None;
                    w.reason = format!("{} = {value}", gate.input);
                    return None;
                };
                if w.seen.is_some_and(|seen| now - seen > fresh) {
                    w.holding_since = None;
                }
                let held_since = *w.holding_since.get_or_insert(since);
                w.seen = Some(*observed_at);
                let held = now - held_since;
                let detail = detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                if held >= gate.sustain_ms {
                    let window = if gate.sustain_ms > 0 {
                        format!(" for {}", limits::show_ms(held))
                    } else {
                        String::new()
                    };
                    let reason =
                        format!("`{}`: {} = {value}{detail}{window}", gate.text, gate.input);
                    return self.fire_abort(at, i, def, def.then, reason);
                }
                w.reason = format!(
                    "{} = {value}{detail}, holding {} of {}",
                    gate.input,
                    limits::show_ms(held),
                    limits::show_ms(gate.sustain_ms)
                );
                return None;
            }
            InputValue::Known { observed_at, .. } => (observed_at + fresh).max(armed_at),
            InputValue::Missing(_) => at.max(armed_at),
        };
        let why = match &input {
            InputValue::Missing(why) => why.clone(),
            InputValue::Known { observed_at, .. } => format!(
                "stale: {} old (limit {})",
                limits::show_ms(now - observed_at),
                limits::show_ms(fresh)
            ),
        };
        let w = &mut self.aborts[i];
        w.holding_since = None;
        w.seen = None;
        let since = *w.unknown_since.get_or_insert(stale_since);
        if now - since > fresh {
            let reason = format!(
                "`{}` is inconclusive: {why} for {} (longer than its freshness bound {})",
                gate.text,
                limits::show_ms(now - since),
                limits::show_ms(fresh)
            );
            return self.fire_abort(at, i, def, GuardAction::Hold, reason);
        }
        w.reason = why;
        None
    }

    fn fire_abort(
        &mut self,
        at: Ts,
        i: usize,
        def: &AbortCondition,
        then: GuardAction,
        reason: String,
    ) -> Option<Effect> {
        self.aborts[i].fired = Some((at, reason.clone()));
        self.aborts[i].reason = reason.clone();
        self.trip(at, format!("abort {}", def.id), then, reason)
    }

    /// A guard fired: the hold that blocks forward steps now, and for a rollback the event
    /// to record.
    fn trip(&mut self, at: Ts, guard: String, then: GuardAction, reason: String) -> Option<Effect> {
        self.log(
            at,
            Level::Error,
            format!("{guard} fired: {}: {reason}", then.as_str()),
        );
        let hold = GuardHold {
            guard: guard.clone(),
            reason: reason.clone(),
            at,
            then,
        };
        self.guards_fired.push(hold.clone());
        self.guard_holds.push(hold);
        match then {
            GuardAction::Hold => None,
            GuardAction::Rollback => Some(Effect::Record(Event::RollbackConfirmed {
                at,
                by: guard,
                reason,
            })),
        }
    }

    /// An interactive drive's step timeouts: the next step's gates not green within its
    /// timeout, or its action running (or failed) past it.
    fn watch_timeouts(&mut self, at: Ts) -> Vec<Effect> {
        let plan = std::sync::Arc::clone(&self.plan);
        let mut effects = Vec::new();
        for (i, def) in plan.steps.iter().enumerate() {
            let s = &self.steps[i];
            if s.timed_out.is_some() || s.timeout_noticed.is_some() || s.in_doubt.is_some() {
                continue;
            }
            let restart = s.timeout_cleared_at.unwrap_or(i64::MIN);
            let over = match s.status {
                StepStatus::Running | StepStatus::Failed => {
                    let Some(start) = s.started_at.or(s.confirmed_at) else {
                        continue;
                    };
                    let end = s.finished_at.unwrap_or(self.now);
                    let took = end - start.max(restart);
                    (took >= def.timeout_ms).then(|| {
                        format!(
                            "its action ran {} (timeout {})",
                            limits::show_ms(took),
                            limits::show_ms(def.timeout_ms)
                        )
                    })
                }
                StepStatus::Pending if self.next_step() == Some(i) => {
                    let Some(since) = self.step_ready_since(i) else {
                        continue;
                    };
                    let waited = self.now - since.max(restart);
                    let blocked = self.blocking_reasons(i);
                    (waited > def.timeout_ms && !blocked.is_empty()).then(|| {
                        format!(
                            "gates not green after {}: {}",
                            limits::show_ms(def.timeout_ms),
                            blocked.join("; ")
                        )
                    })
                }
                _ => None,
            };
            if let Some(reason) = over {
                // Recorded, then decided when folded (`timed_out`): a transcript written
                // before interactive timeouts existed has no such record, so it folds as it
                // did live.
                self.steps[i].timeout_noticed = Some(at);
                effects.push(Effect::Record(Event::StepTimedOut {
                    at,
                    step: def.id.clone(),
                    reason,
                }));
            }
        }
        effects
    }

    /// A recorded `StepTimedOut` in an interactive drive: the step's `on_timeout`.
    pub(super) fn timed_out(&mut self, at: Ts, i: usize, reason: &str) -> Option<Effect> {
        let interactive = self.mode.as_ref().is_some_and(|m| m.drives_interactively());
        if !interactive || self.rollback.is_some() {
            return None;
        }
        let def = &self.plan.steps[i];
        let (guard, then) = (format!("timeout {}", def.id), def.on_timeout);
        self.trip(at, guard, then, reason.to_string())
    }

    /// The operator cleared a hold: forward steps may run again, and its guard re-arms from
    /// now (its `for` window and freshness count again from the clear).
    pub(super) fn clear_hold(&mut self, at: Ts, guard: &str, by: &str) {
        let Some(pos) = self
            .guard_holds
            .iter()
            .position(|h| h.guard == guard && h.then == GuardAction::Hold)
        else {
            self.log(
                at,
                Level::Warn,
                format!("{by} cleared {guard}, which holds nothing; ignored"),
            );
            return;
        };
        let hold = self.guard_holds.remove(pos);
        if let Some(id) = guard.strip_prefix("abort ")
            && let Some(i) = self.plan.aborts.iter().position(|a| a.id == id)
            && let Some(w) = self.aborts.get_mut(i)
        {
            *w = AbortWatch {
                armed_at: Some(at),
                ..AbortWatch::default()
            };
        }
        if let Some(step) = guard.strip_prefix("timeout ")
            && let Some(i) = self.plan.step_index(step)
        {
            self.steps[i].timed_out = None;
            self.steps[i].timeout_noticed = None;
            self.steps[i].timeout_cleared_at = Some(at);
        }
        // A cleared budget hold stays cleared: the budget fired once and is spent.
        self.log(
            at,
            Level::Warn,
            format!("{by} cleared the hold of {guard} ({})", hold.reason),
        );
    }

    /// A rollback started: the holds it resolves go.
    pub(super) fn rollback_started(&mut self) {
        if self
            .rollback
            .as_ref()
            .is_some_and(|r| r.status != RollbackStatus::Done)
        {
            self.guard_holds.clear();
        }
    }

    /// The hold that blocks forward steps now, as the confirm blocker says it.
    pub fn hold_blocker(&self) -> Option<String> {
        let h = self.guard_holds.first()?;
        Some(match h.then {
            GuardAction::Hold => format!(
                "held by {}: {}; press H and type \"{CLEAR_PHRASE}\" to clear it",
                h.guard, h.reason
            ),
            GuardAction::Rollback => {
                format!("{} fired: the rollback is starting ({})", h.guard, h.reason)
            }
        })
    }
}
