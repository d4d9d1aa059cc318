//! The fold: `State::apply` dispatches each event to the method of its family. Pure: no
//! I/O, no clock; "now" is the newest event's time.

use super::{
    Approval, Effect, GateAt, Level, OUTPUT_LINES, OpenDialog, Rollback, RollbackStatus, State,
    StepStatus, push_capped,
};
use crate::event::{DeliveryOutcome, Direction, Event, PeerRole, SourceKind, Ts};
use crate::state::{GateState, InputValue};

impl State {
    /// Folds one event into the state and returns the effects it asks for.
    pub fn apply(&mut self, ev: &Event) -> Vec<Effect> {
        let at = ev.at();
        let before = self.now;
        self.now = self.now.max(at);
        self.events += 1;
        // One method per family; this match is exhaustive, so a new event names its family.
        let effects = match ev {
            Event::SessionStarted { .. }
            | Event::Tick { .. }
            | Event::Note { .. }
            | Event::SessionEnded { .. } => {
                self.apply_session(at, before, ev);
                Vec::new()
            }
            Event::Observed { reading, .. } => {
                self.observe(at, reading);
                Vec::new()
            }
            Event::SourceFailed { source, error, .. } => {
                self.source_failed(at, *source, error);
                Vec::new()
            }
            Event::StepConfirmRequested { .. }
            | Event::StepConfirmCancelled { .. }
            | Event::StepConfirmRejected { .. }
            | Event::StepConfirmed { .. }
            | Event::StepApproved { .. } => self.apply_decision(at, ev),
            Event::ActionStarted { .. }
            | Event::ActionOutput { .. }
            | Event::ActionFinished { .. }
            | Event::StepTimedOut { .. }
            | Event::StepResolved { .. }
            | Event::HoldCleared { .. }
            | Event::GuardWarned { .. } => self.apply_action(at, ev),
            Event::RollbackRequested { .. }
            | Event::RollbackCancelled { .. }
            | Event::RollbackConfirmed { .. } => self.apply_rollback(at, ev),
            Event::FaultChanged { .. }
            | Event::WorldMeasured { .. }
            | Event::PeerJoined { .. }
            | Event::PeerLeft { .. }
            | Event::NotifyDelivered { .. } => {
                self.apply_world(at, ev);
                Vec::new()
            }
        };
        self.refresh_next_gates(at);
        let mut effects = effects;
        effects.extend(self.watch_guards(at));
        self.watch_detection(at);
        effects
    }

    /// The next step's gate inputs, computed once for both the sustain windows and the gate
    /// log (drift inputs walk every table).
    fn refresh_next_gates(&mut self, at: Ts) {
        let next = self.next_step();
        let inputs: Vec<InputValue> = next
            .map(|si| {
                self.plan.steps[si]
                    .gates
                    .iter()
                    .map(|g| self.input_value(&g.input))
                    .collect()
            })
            .unwrap_or_default();
        self.update_holds(next, &inputs);
        self.log_gate_changes(at, next, inputs);
    }

    /// A source failed to read: its health, and one log line per distinct error.
    fn source_failed(&mut self, at: Ts, source: SourceKind, error: &str) {
        let h = self.health.entry(source).or_default();
        let repeated = h.current_error() == Some(error);
        h.last_error = Some((at, error.to_string()));
        h.failures += 1;
        if !repeated {
            self.log(
                at,
                Level::Warn,
                format!("{} reading failed: {error}", source.as_str()),
            );
        }
    }

    /// Session life: start (or restart after a resume), ticks, notes, end.
    /// `before` is the newest event's time before this one (a restart's gap starts there).
    fn apply_session(&mut self, at: Ts, before: Ts, ev: &Event) {
        match ev {
            Event::SessionStarted { mode, operator, .. } => {
                if self.started_at.is_none() {
                    self.started_at = Some(at);
                } else {
                    self.restarted(at, before);
                }
                self.mode = Some(mode.clone());
                self.operator = Some(operator.clone());
                self.log(
                    at,
                    Level::Info,
                    format!("session started ({mode}) by {operator}"),
                );
            }
            Event::Tick { .. } => {}
            Event::Note { text, .. } => self.log(at, Level::Info, text.clone()),
            Event::SessionEnded { reason, .. } => {
                self.ended = Some((at, reason.clone()));
                self.log(at, Level::Info, format!("session ended: {reason}"));
            }
            _ => {}
        }
    }

    /// The operator's and the peers' decisions on a step: the confirmation dialog, the confirmation itself (re-checked here: a confirmation of a step that is not next, whose gates are not green or that lacks approvals starts nothing), approvals.
    fn apply_decision(&mut self, at: Ts, ev: &Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match ev {
            Event::StepConfirmRequested { step, by, .. } => {
                if let Some(i) = self.plan.step_index(step) {
                    self.dialog = Some(OpenDialog::Confirm {
                        step: i,
                        by: by.clone(),
                    });
                }
            }
            Event::StepConfirmCancelled { step, by, .. } => {
                self.dialog = None;
                self.log(
                    at,
                    Level::Info,
                    format!("{by} cancelled the confirmation of {step}"),
                );
            }
            Event::StepConfirmRejected {
                step, by, reason, ..
            } => {
                self.log(
                    at,
                    Level::Warn,
                    format!("confirmation of {step} by {by} refused: {reason}"),
                );
            }
            Event::StepConfirmed { step, by, .. } => {
                self.dialog = None;
                match self.plan.step_index(step) {
                    Some(i) => match self.confirm_blocker(i) {
                        None => {
                            let gates = self
                                .step_gates(i)
                                .into_iter()
                                .zip(&self.plan.steps[i].gates)
                                .map(|(g, def)| GateAt {
                                    gate: def.text.clone(),
                                    state: g.state,
                                    reason: g.reason,
                                })
                                .collect();
                            let s = &mut self.steps[i];
                            s.confirmed_by = Some(by.clone());
                            s.confirmed_at = Some(at);
                            s.gates_at_confirm = gates;
                            s.status = StepStatus::Running;
                            s.message = None;
                            s.timed_out = None;
                            self.log(at, Level::Info, format!("{by} confirmed {step}"));
                            effects.push(Effect::RunAction {
                                step: i,
                                direction: Direction::Do,
                            });
                        }
                        Some(why) => {
                            self.log(
                                at,
                                Level::Error,
                                format!("confirmation of {step} refused: {why}"),
                            );
                        }
                    },
                    None => self.log(
                        at,
                        Level::Error,
                        format!("confirmation of unknown step {step}"),
                    ),
                }
            }
            Event::StepApproved { step, by, seen, .. } => match self.plan.step_index(step) {
                Some(i) => match self.approval_refusal(i, by) {
                    None => {
                        self.steps[i].approvals.push(Approval {
                            by: by.clone(),
                            at,
                            seen: seen.clone(),
                        });
                        self.log(at, Level::Good, format!("{by} approved {step}"));
                    }
                    Some(why) => self.log(
                        at,
                        Level::Warn,
                        format!("{by}'s approval of {step} does not count: {why}"),
                    ),
                },
                None => self.log(
                    at,
                    Level::Error,
                    format!("approval of unknown step {step} by {by}"),
                ),
            },
            _ => {}
        }
        effects
    }

    /// A step's action running, its output, its end, its timeout, its resolution after a
    /// resume, and the clearing of a guard's hold.
    fn apply_action(&mut self, at: Ts, ev: &Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match ev {
            Event::ActionStarted {
                step,
                direction,
                description,
                ..
            } => {
                if let Some(i) = self.plan.step_index(step) {
                    let s = &mut self.steps[i];
                    match direction {
                        Direction::Do => {
                            s.status = StepStatus::Running;
                            s.started_at = Some(at);
                        }
                        Direction::Undo => s.status = StepStatus::Undoing,
                    }
                    self.downtime_started(at, i, *direction);
                    let verb = if *direction == Direction::Do {
                        "running"
                    } else {
                        "undoing"
                    };
                    self.log(at, Level::Info, format!("{step}: {verb} {description}"));
                }
            }
            Event::ActionOutput {
                step,
                line,
                direction,
                ..
            } => {
                if let Some(i) = self.plan.step_index(step) {
                    // The first run's reading counts: a stage run again (resume re-runs an
                    // idempotent action) reads its own weights, which are not what to restore.
                    if *direction == Direction::Do
                        && self.steps[i].weights_before.is_none()
                        && let Some(w) = crate::plan::Weights::parse_before_line(line)
                    {
                        self.steps[i].weights_before = Some(w);
                    }
                    push_capped(&mut self.steps[i].output, line.clone(), OUTPUT_LINES);
                    self.log(at, Level::Info, format!("{step} | {line}"));
                }
            }
            Event::ActionFinished {
                step,
                direction,
                ok,
                message,
                ..
            } => {
                if let Some(i) = self.plan.step_index(step) {
                    // Restored: a later forward run reads the weights anew.
                    if *direction == Direction::Undo && *ok {
                        self.steps[i].weights_before = None;
                    }
                    effects.extend(self.action_finished(at, i, *direction, *ok, message));
                }
            }
            Event::StepTimedOut { step, reason, .. } => {
                self.log(at, Level::Error, format!("{step} timed out: {reason}"));
                if let Some(i) = self.plan.step_index(step) {
                    self.steps[i].timed_out = Some(reason.clone());
                    effects.extend(self.timed_out(at, i, reason));
                }
            }
            Event::StepResolved { step, done, by, .. } => {
                effects.extend(self.resolve(at, step, *done, by));
            }
            Event::HoldCleared { guard, by, .. } => self.clear_hold(at, guard, by),
            Event::GuardWarned { guard, reason, .. } => self.guard_warned(at, guard, reason),
            _ => {}
        }
        effects
    }

    /// A step's action (or undo) ended: its status, the log, and the rollback's next undo.
    fn action_finished(
        &mut self,
        at: Ts,
        i: usize,
        direction: Direction,
        ok: bool,
        message: &str,
    ) -> Vec<Effect> {
        let step = self.plan.steps[i].id.clone();
        // Only a running action can finish: a result for a step that never
        // started (or already ended) would mark it done and let the next run.
        let expected = match direction {
            Direction::Do => StepStatus::Running,
            Direction::Undo => StepStatus::Undoing,
        };
        if self.steps[i].status != expected {
            let was = self.steps[i].status.as_str();
            self.log(
                at,
                Level::Error,
                format!(
                    "{step}: a result arrived for an action that was not running ({was}); ignored"
                ),
            );
            return Vec::new();
        }
        if ok {
            self.downtime_thawed(at, i, direction);
        }
        let s = &mut self.steps[i];
        s.message = Some(message.to_string());
        match (direction, ok) {
            (Direction::Do, true) => {
                s.status = StepStatus::Done;
                s.finished_at = Some(at);
            }
            (Direction::Do, false) => {
                s.status = StepStatus::Failed;
                s.finished_at = Some(at);
            }
            (Direction::Undo, true) => s.status = StepStatus::Undone,
            (Direction::Undo, false) => s.status = StepStatus::UndoFailed,
        }
        let (level, verb) = match (direction, ok) {
            (Direction::Do, true) => (Level::Good, "done"),
            (Direction::Do, false) => (Level::Error, "FAILED"),
            (Direction::Undo, true) => (Level::Warn, "undone"),
            (Direction::Undo, false) => (Level::Error, "UNDO FAILED"),
        };
        self.log(at, level, format!("{step}: {verb}: {message}"));
        match self.rollback.as_ref().map(|r| r.status) {
            Some(RollbackStatus::Waiting) | Some(RollbackStatus::Running) => {
                if direction == Direction::Undo && !ok {
                    if let Some(r) = &mut self.rollback {
                        r.status = RollbackStatus::Failed;
                    }
                    self.log(
                        at,
                        Level::Error,
                        "rollback halted: fix the cause, then press R to retry",
                    );
                } else {
                    return self.continue_rollback(at);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// The rollback dialog and the rollback itself.
    fn apply_rollback(&mut self, at: Ts, ev: &Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match ev {
            Event::RollbackRequested { by, .. } => {
                self.dialog = Some(OpenDialog::Rollback { by: by.clone() });
            }
            Event::RollbackCancelled { by, .. } => {
                self.dialog = None;
                self.log(at, Level::Info, format!("{by} cancelled the rollback"));
            }
            Event::RollbackConfirmed { by, reason, .. } => {
                self.dialog = None;
                let retry = self
                    .rollback
                    .as_ref()
                    .is_some_and(|r| r.status == RollbackStatus::Failed);
                let busy = self.rollback.as_ref().is_some_and(|r| {
                    matches!(r.status, RollbackStatus::Running | RollbackStatus::Waiting)
                });
                if busy {
                    self.log(at, Level::Warn, "rollback already under way");
                } else {
                    self.log(
                        at,
                        Level::Warn,
                        format!("{by} started a rollback: {reason}"),
                    );
                    self.lapse_approvals(at, |_| true, "a rollback started");
                    self.rollback = Some(Rollback {
                        confirmed_at: at,
                        by: by.clone(),
                        reason: reason.clone(),
                        status: RollbackStatus::Waiting,
                        finished_at: None,
                    });
                    self.rollback_started();
                    if retry {
                        for s in &mut self.steps {
                            if s.status == StepStatus::UndoFailed {
                                s.status = StepStatus::Done;
                            }
                        }
                    }
                    if self.running_step().is_none() {
                        effects.extend(self.continue_rollback(at));
                    } else {
                        self.log(
                            at,
                            Level::Info,
                            "rollback waits for the running action to end",
                        );
                    }
                }
            }
            _ => {}
        }
        effects
    }

    /// The rehearsal world's faults and measures, and who is watching.
    fn apply_world(&mut self, at: Ts, ev: &Event) {
        match ev {
            Event::FaultChanged {
                fault,
                active,
                detail,
                ..
            } => {
                self.faults.insert(fault.clone(), (*active, detail.clone()));
                if *active {
                    self.fault_began(at, fault);
                }
                let verb = if *active { "injected" } else { "cleared" };
                self.log(at, Level::Warn, format!("fault {fault} {verb}: {detail}"));
            }
            Event::WorldMeasured { measures, .. } => self.world = Some(self.measured(measures)),
            Event::PeerJoined { peer, role, .. } => {
                self.peers.insert(peer.clone());
                let text = match role {
                    Some(PeerRole::Observer) => {
                        self.observers.insert(peer.clone());
                        format!("{peer} is watching (observer)")
                    }
                    Some(PeerRole::Approver) => {
                        self.observers.remove(peer);
                        format!("{peer} is watching (approver)")
                    }
                    None => {
                        self.observers.remove(peer);
                        format!("{peer} is watching")
                    }
                };
                self.log(at, Level::Info, text);
            }
            Event::PeerLeft { peer, .. } => {
                self.peers.remove(peer);
                self.observers.remove(peer);
                self.log(at, Level::Info, format!("{peer} left"));
                self.lapse_approvals(at, |a| &a.by == peer, &format!("{peer} left"));
            }
            Event::NotifyDelivered {
                notify,
                on,
                outcome,
                status,
                attempts,
                error,
                ..
            } => {
                let (level, mut text) = match outcome {
                    DeliveryOutcome::Delivered => (
                        Level::Info,
                        format!("notify {notify}: {} sent", on.as_str()),
                    ),
                    DeliveryOutcome::Failed => (
                        Level::Warn,
                        format!(
                            "notify {notify}: {} not delivered after {attempts} attempt{}",
                            on.as_str(),
                            if *attempts == 1 { "" } else { "s" }
                        ),
                    ),
                    DeliveryOutcome::Dropped => (
                        Level::Warn,
                        format!("notify {notify}: {} dropped (queue full)", on.as_str()),
                    ),
                };
                if let Some(code) = status.filter(|_| *outcome != DeliveryOutcome::Delivered) {
                    text.push_str(&format!(", HTTP {code}"));
                }
                if let Some(e) = error {
                    text.push_str(&format!(": {e}"));
                }
                self.log(at, level, text);
            }
            _ => {}
        }
    }
}

impl State {
    /// Why `by` may not approve step `i` now; `None` when the approval counts. The share
    /// hub checks the same before it records one; the fold re-checks, so a transcript
    /// edited to add an approval (or an older driver) never makes a step runnable.
    pub fn approval_refusal(&self, i: usize, by: &str) -> Option<String> {
        let def = &self.plan.steps[i];
        let st = &self.steps[i];
        if def.approvals == 0 {
            return Some("the step does not ask for approvals".into());
        }
        if self.operator.as_deref() == Some(by) {
            return Some("the driver cannot approve their own step".into());
        }
        if !self.peers.contains(by) {
            return Some("the approver is not attached".into());
        }
        if self.observers.contains(by) {
            return Some("an observer cannot approve (invite them as NAME:approver)".into());
        }
        if st.status != StepStatus::Pending {
            return Some(format!("the step is {}", st.status.as_str()));
        }
        if self.next_step() != Some(i) {
            return Some("it is not the next step".into());
        }
        if st.approvals.iter().any(|a| a.by == by) {
            return Some("already approved".into());
        }
        if let (state, Some(reason)) = self.step_readiness(i)
            && state != GateState::Green
        {
            return Some(format!("its gates are not green ({reason})"));
        }
        None
    }

    /// Withdraws the pending steps' approvals that `which` selects, saying why in the log.
    pub(super) fn lapse_approvals(&mut self, at: Ts, which: impl Fn(&Approval) -> bool, why: &str) {
        let mut lapsed = Vec::new();
        for (i, s) in self.steps.iter_mut().enumerate() {
            if s.status != StepStatus::Pending {
                continue;
            }
            let (gone, kept): (Vec<Approval>, Vec<Approval>) =
                s.approvals.drain(..).partition(|a| which(a));
            s.approvals = kept;
            if !gone.is_empty() {
                let by: Vec<String> = gone.into_iter().map(|a| a.by).collect();
                lapsed.push((i, by));
            }
        }
        for (i, by) in lapsed {
            let id = self.plan.steps[i].id.clone();
            self.log(
                at,
                Level::Warn,
                format!(
                    "{id}: approval by {} lapsed: {why}; approve it again",
                    by.join(", ")
                ),
            );
        }
    }
}
