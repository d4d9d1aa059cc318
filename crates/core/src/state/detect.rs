//! How fast the cockpit noticed a fault: from the moment the rehearsal world says a fault
//! began (`FaultChanged { active: true }`, recorded with its time) to the first watched
//! gate or abort condition that went red or unknown after it.
//!
//! Watched: the next step's gates while no step runs (a running step's own gates change
//! with its action), and every armed abort condition. A gate is in alarm when its reading
//! fails its condition or is missing or stale — its `for` window does not matter, and a
//! gate merely waiting for a reading taken after the previous step is not in alarm unless
//! its source is failing. An abort condition is in alarm when it holds, fired, or is
//! unknown (but not while, just armed, it waits for a reading taken since). What was already in
//! alarm when the fault began does not count until it has recovered, so the figure is the
//! cockpit's reaction to the fault, not to the state it found. Folded, so report and replay
//! measure from the transcript what the live session did.

use serde::{Deserialize, Serialize};

use super::gate::compare;
use super::{AbortState, InputValue, State};
use crate::event::Ts;

/// One injected fault and when the cockpit first showed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultDetection {
    pub fault: String,
    pub started_at: Ts,
    /// The first alarm after the fault began: when, and which gate or condition said what.
    pub detected: Option<(Ts, String)>,
    /// Alarms already raised when the fault began (keys), until they recover.
    already: Vec<String>,
}

impl FaultDetection {
    /// Seconds from the fault's start to its detection.
    pub fn detection_s(&self) -> Option<f64> {
        self.detected
            .as_ref()
            .map(|(at, _)| (at - self.started_at).max(0) as f64 / 1000.0)
    }
}

impl State {
    /// A fault began: start measuring its detection.
    pub(super) fn fault_began(&mut self, at: Ts, fault: &str) {
        if self
            .detections
            .iter()
            .any(|d| d.fault == fault && d.detected.is_none())
        {
            return;
        }
        let already = self.alarms().into_iter().map(|(key, _)| key).collect();
        self.detections.push(FaultDetection {
            fault: fault.to_string(),
            started_at: at,
            detected: None,
            already,
        });
    }

    /// After every event: the first new alarm detects every fault still undetected.
    pub(super) fn watch_detection(&mut self, at: Ts) {
        if self.detections.iter().all(|d| d.detected.is_some()) {
            return;
        }
        let alarms = self.alarms();
        for d in self.detections.iter_mut().filter(|d| d.detected.is_none()) {
            d.already.retain(|k| alarms.iter().any(|(key, _)| key == k));
            if let Some((_, text)) = alarms.iter().find(|(key, _)| !d.already.contains(key)) {
                d.detected = Some((at, text.clone()));
            }
        }
    }

    /// Every watched gate and abort condition in alarm now: (key, what it says).
    fn alarms(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.running_step().is_none()
            && let Some(n) = self.next_step()
        {
            let def = &self.plan.steps[n];
            let not_before = self.readings_not_before(n);
            for gate in &def.gates {
                let why = match self.input_value(&gate.input) {
                    InputValue::Missing(why) => Some(format!("unknown: {why}")),
                    InputValue::Known { observed_at, .. }
                        if self.now - observed_at > gate.fresh_ms() =>
                    {
                        Some("unknown: stale".to_string())
                    }
                    // Waiting for a reading taken after the previous step is no alarm,
                    // unless its source is failing (then none is coming).
                    InputValue::Known { observed_at, .. }
                        if not_before.is_some_and(|nb| observed_at < nb) =>
                    {
                        self.source_error_for(&gate.input)
                            .map(|e| format!("unknown: no new reading, last error: {e}"))
                    }
                    InputValue::Known { value, .. } if !compare(&value, gate.op, &gate.value) => {
                        Some(format!("red: {} = {value}", gate.input))
                    }
                    InputValue::Known { .. } => None,
                };
                if let Some(why) = why {
                    let key = format!("{}: {}", def.id, gate.text);
                    out.push((key.clone(), format!("gate {key} {why}")));
                }
            }
        }
        for (def, w) in self.plan.aborts.iter().zip(&self.aborts) {
            let state = w.state();
            let alarm = match state {
                AbortState::Holding | AbortState::Fired => true,
                // Just armed, waiting for a reading taken since: no alarm, as for a gate
                // waiting for a reading taken after the previous step.
                AbortState::Unknown => !matches!(
                    self.input_value(&def.when.input),
                    InputValue::Known { observed_at, .. }
                        if w.armed_at.is_some_and(|a| observed_at < a)
                            && self.now - observed_at <= def.when.fresh_ms()
                ),
                AbortState::Quiet | AbortState::Disarmed => false,
            };
            if alarm {
                let key = format!("abort {}", def.id);
                out.push((
                    key.clone(),
                    format!("{key} {}: {}", state.as_str(), w.reason),
                ));
            }
        }
        out
    }
}

/// What the guards measured over the session: detection, rollback, downtime against the
/// budget, and which guards fired. The rehearsal summary and `cutover report` show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GuardFigures {
    /// The first fault's detection (`faults` has each).
    pub detection_s: Option<f64>,
    pub detected_by: Option<String>,
    pub faults: Vec<FaultFigure>,
    /// From the rollback's decision to the end of its last undo.
    pub rollback_s: Option<f64>,
    /// Who decided the rollback: an operator, `autopilot`, `abort <id>`, `timeout <step>`,
    /// `budget`.
    pub rollback_by: Option<String>,
    /// From the start of the freeze to the end of the unfreeze (or the freeze's undo), or
    /// to the end of the session while still frozen.
    pub downtime_s: Option<f64>,
    pub max_downtime_s: Option<f64>,
    pub budget_warned: bool,
    pub budget_spent: bool,
    /// Every guard that fired: `abort drift: rollback`.
    pub fired: Vec<String>,
}

/// One fault's detection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultFigure {
    pub fault: String,
    pub detection_s: Option<f64>,
    pub detected_by: Option<String>,
}

impl State {
    pub fn guard_figures(&self) -> GuardFigures {
        let secs = |ms: Ts| ms as f64 / 1000.0;
        let faults: Vec<FaultFigure> = self
            .detections
            .iter()
            .map(|d| FaultFigure {
                fault: d.fault.clone(),
                detection_s: d.detection_s(),
                detected_by: d.detected.as_ref().map(|(_, by)| by.clone()),
            })
            .collect();
        let first = faults.first();
        GuardFigures {
            detection_s: first.and_then(|f| f.detection_s),
            detected_by: first.and_then(|f| f.detected_by.clone()),
            rollback_s: self
                .rollback
                .as_ref()
                .and_then(|r| r.finished_at.map(|end| secs(end - r.confirmed_at))),
            rollback_by: self.rollback.as_ref().map(|r| r.by.clone()),
            downtime_s: self.downtime.used_ms(self.now).map(secs),
            max_downtime_s: self.plan.budget.map(|b| secs(b.max_ms)),
            budget_warned: self.downtime.warned_at.is_some(),
            budget_spent: self.downtime.spent_at.is_some(),
            fired: self
                .guards_fired
                .iter()
                .map(|g| format!("{}: {}", g.guard, g.then.as_str()))
                .collect(),
            faults,
        }
    }
}

impl GuardFigures {
    /// One line for the rehearsal summary and the report: what the guards measured.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        match (&self.faults.is_empty(), self.detection_s, &self.detected_by) {
            (true, _, _) => {}
            (false, Some(d), Some(by)) => parts.push(format!("detection {d:.1}s ({by})")),
            (false, _, _) => parts.push("fault not detected".to_string()),
        }
        if let Some(r) = self.rollback_s {
            let by = self.rollback_by.as_deref().unwrap_or("?");
            parts.push(format!("rollback {r:.1}s (by {by})"));
        }
        match (self.downtime_s, self.max_downtime_s) {
            (Some(d), Some(m)) => {
                let over = if d > m { ", OVER BUDGET" } else { "" };
                parts.push(format!("downtime {d:.1}s of {m:.0}s budget{over}"))
            }
            (Some(d), None) => parts.push(format!("downtime {d:.1}s (no budget)")),
            _ => {}
        }
        if !self.fired.is_empty() {
            parts.push(format!("fired: {}", self.fired.join(", ")));
        }
        parts.join("; ")
    }
}
