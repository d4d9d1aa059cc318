//! Actions: the trait every backend implements to carry out a step (or its undo), and the
//! runner that executes a confirmed step in a task and reports it back as events.

pub mod http;
pub mod shell;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::source::BoxFuture;
use cutover_core::event::{Direction, Event};
use cutover_core::plan::{Action, Plan};

/// Why an action failed. The message must already be free of secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

impl ActionError {
    pub fn new(msg: impl Into<String>) -> Self {
        ActionError(msg.into())
    }
}

/// Where an action writes its progress lines; each becomes an `ActionOutput` event.
#[derive(Clone)]
pub struct Output {
    step: String,
    direction: Direction,
    tx: mpsc::UnboundedSender<Event>,
    clock: Clock,
}

impl Output {
    pub fn new(step: String, direction: Direction, tx: mpsc::UnboundedSender<Event>) -> Self {
        Output {
            step,
            direction,
            tx,
            clock: Clock::real(),
        }
    }

    /// The same output, stamping its lines with `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the action's lines are stamped with: an actuator that waits or measures
    /// time reads it too.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Whether the action runs its step forward or undoes it (a rollback): actuators act
    /// more carefully on the way back (e.g. DMS never reloads a task during a rollback).
    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn line(&self, line: impl Into<String>) {
        // The cockpit may already be shutting down; a lost progress line is harmless.
        let _ = self.tx.send(Event::ActionOutput {
            at: self.clock.now_ms(),
            step: self.step.clone(),
            direction: self.direction,
            line: line.into(),
        });
    }
}

/// Carries out actions. `watch` and `replay` have none: read-only by construction.
pub trait Actuator: Send + Sync {
    /// Runs one action to completion; `Ok` carries a one-line result for the transcript.
    /// Implementations make actions idempotent where the backend allows (stopping a stopped
    /// task succeeds).
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>>;
}

/// Runs a confirmed step's action (or undo) in a task: `ActionStarted`, output lines, then
/// `ActionFinished`, bounded by the step's timeout, stamped by `clock`.
pub fn spawn_action(
    clock: Clock,
    actuator: Arc<dyn Actuator>,
    plan: Arc<Plan>,
    step: usize,
    direction: Direction,
    tx: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    let action = plan.steps.get(step).and_then(|s| match direction {
        Direction::Do => Some(s.action.clone()),
        Direction::Undo => s.undo.clone(),
    });
    spawn_resolved(clock, actuator, plan, step, direction, action, tx)
}

/// `spawn_action` with the action already resolved from the folded state
/// (`State::action_to_run`: an undo's `weights = "previous"` made concrete). `None`: the
/// step has nothing to run in this direction.
pub fn spawn_resolved(
    clock: Clock,
    actuator: Arc<dyn Actuator>,
    plan: Arc<Plan>,
    step: usize,
    direction: Direction,
    action: Option<Action>,
    tx: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(s) = plan.steps.get(step) else {
            return;
        };
        let Some(action) = action else {
            return;
        };
        let id = s.id.clone();
        // Send errors below mean the cockpit is gone; nothing is left to tell.
        let _ = tx.send(Event::ActionStarted {
            at: clock.now_ms(),
            step: id.clone(),
            direction,
            description: action.describe(&plan),
        });
        let out = Output::new(id.clone(), direction, tx.clone()).with_clock(clock);
        let timeout = Duration::from_millis(s.timeout_ms.max(1) as u64);
        let result = match action {
            Action::None => Ok("checked".to_string()),
            Action::Manual { .. } => Ok("confirmed done by the operator".to_string()),
            _ => match crate::task::catch(tokio::time::timeout(
                timeout,
                actuator.run(&plan, &action, &out),
            ))
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(ActionError(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                ))),
                Err(panic) => {
                    tracing::error!(step = %id, %panic, "action panicked");
                    Err(ActionError(crate::task::panicked(
                        "the action",
                        &format!(
                            "{panic}; whether it took effect is unknown — check before going on"
                        ),
                    )))
                }
            },
        };
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(e) => (false, e.0),
        };
        let _ = tx.send(Event::ActionFinished {
            at: clock.now_ms(),
            step: id,
            direction,
            ok,
            message,
        });
    })
}

#[cfg(test)]
mod http_tests;
