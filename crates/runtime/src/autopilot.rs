//! The autopilot: drives a session headless, confirming each step itself the moment its
//! gates are green, aborting and rolling back when a step's gates stay red past its timeout
//! or its action fails. Its decisions are events like an operator's, so they are recorded.

use std::time::Duration;

use serde::Serialize;

use crate::session::{Inbox, Session};
use cutover_core::event::{Event, Ts};
use cutover_core::state::{GateState, GuardFigures, RollbackStatus, State, StepStatus};

/// Who the autopilot confirms as.
pub const OPERATOR: &str = "autopilot";

/// One step's outcome, for the summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StepSummary {
    pub id: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_s: Option<f64>,
    pub outcome: String,
}

/// What a run achieved and what the window cost.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub completed: bool,
    pub rolled_back: bool,
    pub writes_refused: u64,
    pub writes_lost: u64,
    pub rows_diverged: u64,
    pub downtime_s: f64,
    pub blocked_reason: Option<String>,
    pub transcript: Option<String>,
    /// The transcript's signing key (`ed25519:<base64>`) and last hash: handed out here so
    /// `cutover verify --key/--expect-head` can later tell the file from a forgery.
    pub transcript_key: Option<String>,
    pub transcript_head: Option<String>,
    pub steps: Vec<StepSummary>,
    /// What the guards measured: detection, rollback, downtime against the budget, which
    /// fired.
    pub guards: GuardFigures,
    pub faults: Vec<String>,
    pub seed: u64,
    /// `real` or `sim`: which clock `elapsed_s` and every timestamp of the run were read
    /// from.
    pub clock: String,
    pub elapsed_s: f64,
    /// Whether the source took application writes when the run ended (the world's own
    /// `read_only`, read after the last step): a rolled-back cutover must leave it so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_writable: Option<bool>,
}

impl Summary {
    /// Completed safely: every step done, nothing lost, nothing diverged.
    pub fn safe(&self) -> bool {
        self.completed && self.writes_lost == 0 && self.rows_diverged == 0
    }

    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let verdict = if self.safe() {
            "COMPLETED"
        } else if self.rolled_back {
            "ROLLED BACK"
        } else if self.completed {
            "COMPLETED WITH DAMAGE"
        } else {
            "ABORTED"
        };
        let sim = if self.clock == "sim" {
            " (simulated)"
        } else {
            ""
        };
        s.push_str(&format!(
            "cutover rehearsal: {verdict} in {:.1}s{sim}\n",
            self.elapsed_s
        ));
        if !self.faults.is_empty() {
            s.push_str(&format!("faults: {}\n", self.faults.join(", ")));
        }
        for st in &self.steps {
            let d = st
                .duration_s
                .map(|d| format!(" ({d:.1}s)"))
                .unwrap_or_default();
            s.push_str(&format!("  {:<18} {}{d}\n", st.id, st.outcome));
        }
        s.push_str(&format!(
            "writes refused {}, writes lost {}, rows diverged {}, write downtime {:.1}s\n",
            self.writes_refused, self.writes_lost, self.rows_diverged, self.downtime_s
        ));
        let guards = self.guards.line();
        if !guards.is_empty() {
            s.push_str(&format!("guards: {guards}\n"));
        }
        if let Some(r) = &self.blocked_reason {
            s.push_str(&format!("blocked: {r}\n"));
        }
        if let Some(t) = &self.transcript {
            s.push_str(&format!("transcript: {t}\n"));
            if let (Some(k), Some(h)) = (&self.transcript_key, &self.transcript_head) {
                s.push_str(&format!("transcript key: {k}\ntranscript head: {h}\n"));
                s.push_str(&format!(
                    "  keep these apart from the file; check it with: cutover verify {t} --key {k} --expect-head {h}\n"
                ));
            }
        }
        s
    }
}

fn iso(ts: Option<Ts>) -> Option<String> {
    ts.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The step summaries of a folded state.
pub fn step_summaries(state: &State) -> Vec<StepSummary> {
    state
        .plan
        .steps
        .iter()
        .zip(&state.steps)
        .map(|(def, st)| {
            let outcome = match (st.status, &st.timed_out) {
                (StepStatus::Pending, Some(_)) => "timed out".to_string(),
                (StepStatus::Pending, None) => "not run".to_string(),
                (s, _) => s.as_str().to_string(),
            };
            StepSummary {
                id: def.id.clone(),
                started: iso(st.started_at.or(st.confirmed_at)),
                finished: iso(st.finished_at),
                duration_s: match (st.confirmed_at, st.finished_at) {
                    (Some(a), Some(b)) => Some((b - a) as f64 / 1000.0),
                    _ => None,
                },
                outcome,
            }
        })
        .collect()
}

/// What the autopilot does next, decided from the state alone.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Wait,
    Confirm(usize),
    Abort { step: Option<usize>, reason: String },
    Finished,
}

/// The autopilot's policy: pure, so it can be tested on folded states.
pub fn decide(state: &State) -> Decision {
    if state.completed() {
        return Decision::Finished;
    }
    if let Some(r) = &state.rollback {
        return match r.status {
            RollbackStatus::Done | RollbackStatus::Failed => Decision::Finished,
            _ => Decision::Wait,
        };
    }
    if state.running_step().is_some() {
        return Decision::Wait;
    }
    let Some(next) = state.next_step() else {
        return Decision::Wait;
    };
    if state.steps[next].status == StepStatus::Failed {
        let msg = state.steps[next].message.clone().unwrap_or_default();
        return Decision::Abort {
            step: Some(next),
            reason: format!("step {} failed: {msg}", state.plan.steps[next].id),
        };
    }
    let (readiness, _) = state.step_readiness(next);
    if readiness == GateState::Green && state.confirm_blocker(next).is_none() {
        return Decision::Confirm(next);
    }
    let since = state.step_ready_since(next).unwrap_or(state.now);
    let timeout = state.plan.steps[next].timeout_ms;
    if state.now - since > timeout {
        return Decision::Abort {
            step: Some(next),
            reason: format!(
                "step {} not ready after {}: {}",
                state.plan.steps[next].id,
                humantime::format_duration(Duration::from_millis(timeout as u64)),
                {
                    let reasons = state.blocking_reasons(next);
                    if reasons.is_empty() {
                        // Green but held: an abort condition (or its unknown input) says why.
                        state
                            .hold_blocker()
                            .unwrap_or_else(|| "blocked".to_string())
                    } else {
                        reasons.join("; ")
                    }
                }
            ),
        };
    }
    Decision::Wait
}

/// Drives `session` until the cutover completes or is rolled back. Ticks every `tick`.
/// Returns the reason it stopped early, if any.
pub async fn drive(
    session: &mut Session,
    inbox: &mut Inbox,
    tick: Duration,
    deadline: Duration,
) -> anyhow::Result<Option<String>> {
    // The session's clock: under simulated time the deadline and the ticks are simulated.
    let clock = session.clock();
    let started = tokio::time::Instant::now();
    let mut blocked: Option<String> = None;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Biased (events before the tick): a simulated run must not depend on tokio's
        // random branch order.
        let batch = tokio::select! {
            biased;
            b = inbox.next_batch() => b,
            _ = ticker.tick() => {
                let mut b = inbox.pending();
                b.push(Event::Tick { at: clock.now_ms() });
                b
            }
        };
        session.ingest(batch)?;
        if started.elapsed() > deadline && session.state.rollback.is_none() {
            let reason = format!("overall deadline of {}s passed", deadline.as_secs());
            blocked.get_or_insert(reason.clone());
            abort(session, None, &reason)?;
            continue;
        }
        match decide(&session.state) {
            Decision::Wait => {}
            Decision::Finished => return Ok(blocked),
            Decision::Confirm(i) => {
                let id = session.plan.steps[i].id.clone();
                let at = clock.now_ms();
                session.ingest(vec![
                    Event::StepConfirmRequested {
                        at,
                        step: id.clone(),
                        by: OPERATOR.into(),
                    },
                    Event::StepConfirmed {
                        at,
                        step: id,
                        by: OPERATOR.into(),
                    },
                ])?;
            }
            Decision::Abort { step, reason } => {
                blocked.get_or_insert(reason.clone());
                abort(session, step, &reason)?;
            }
        }
    }
}

fn abort(session: &mut Session, step: Option<usize>, reason: &str) -> anyhow::Result<()> {
    let at = session.clock().now_ms();
    let mut events = Vec::new();
    if let Some(i) = step
        && session.state.steps[i].status == StepStatus::Pending
    {
        events.push(Event::StepTimedOut {
            at,
            step: session.plan.steps[i].id.clone(),
            reason: reason.to_string(),
        });
    }
    events.push(Event::RollbackConfirmed {
        at,
        by: OPERATOR.into(),
        reason: reason.to_string(),
    });
    session.ingest(events)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use cutover_core::plan;

    /// A plan whose only abort watches drift, which nobody compares: it holds (inconclusive)
    /// while the step itself is green.
    const PLAN: &str = r#"
name = "t"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[rehearsal]
tables = ["a"]
[[step]]
id = "one"
confirm = "go"
timeout = "30s"
[[abort]]
id = "drift"
when = "drift.rows > 0 fresh 5s"
then = "rollback"
"#;

    #[test]
    fn a_held_step_past_its_timeout_aborts_naming_the_hold() {
        let plan = plan::parse("t.toml", PLAN).unwrap_or_else(|e| panic!("{e}"));
        let mut state = State::new(Arc::new(plan));
        let _ = state.apply(&Event::SessionStarted {
            at: 0,
            mode: cutover_core::event::SessionMode::RehearsalAutopilot,
            operator: OPERATOR.into(),
        });
        assert_eq!(decide(&state), Decision::Confirm(0));
        let _ = state.apply(&Event::Tick { at: 6_000 });
        assert_eq!(decide(&state), Decision::Wait, "held: no confirmation");
        let _ = state.apply(&Event::Tick { at: 31_000 });
        match decide(&state) {
            Decision::Abort { step, reason } => {
                assert_eq!(step, Some(0));
                assert!(reason.contains("held by abort drift"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
