//! How fast the cockpit noticed a fault: from the moment the rehearsal world says a fault
//! began (`FaultChanged { active: true }`, recorded with its time) to the first watched
//! gate or abort condition that went red or unknown after it.
//!
//! Watched: the next step's gates while no step runs (a running step's own gates change
//! with its action), and every armed abort condition. A gate is in alarm when its reading
//! fails its condition or is missing or stale — its `for` window does not matter, and a
//! gate merely waiting for a reading taken after the previous step is not in alarm. An
//! abort condition is in alarm when it holds, is unknown, or fired. What was already in
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
                    InputValue::Known { observed_at, .. }
                        if not_before.is_some_and(|nb| observed_at < nb) =>
                    {
                        None
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
            if matches!(
                state,
                AbortState::Holding | AbortState::Unknown | AbortState::Fired
            ) {
                let key = format!("abort {}", def.id);
                out.push((key.clone(), format!("{key} {}: {}", state.as_str(), w.reason)));
            }
        }
        out
    }
}
