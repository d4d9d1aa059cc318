//! The cockpit's state and the pure fold that builds it from events.
//!
//! `State::apply` never reads the clock, the network or the disk: "now" is the newest event
//! timestamp. Live, replay, attach and report all run this same fold.

mod detect;
mod fold;
pub mod gate;
pub mod guard;
mod replication;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::event::{
    DatabaseReading, Direction, DnsReading, Reading, Side, SourceKind, TableDrift, TableStat, Ts,
    WorldMeasures,
};
use crate::plan::{Action, Plan};
pub use detect::{FaultDetection, FaultFigure, GuardFigures};
pub use gate::{GateState, GateStatus, InputValue, fmt_bytes};
pub use guard::{
    AbortState, AbortWatch, BUDGET_GUARD, CLEAR_PHRASE, DowntimeWindow, GuardHold, show_countdown,
};
pub use replication::ReplicationView;
use serde::{Deserialize, Serialize};

/// How many points each chart keeps.
pub const HISTORY: usize = 240;
/// How many lines the event log keeps.
pub const LOG_LINES: usize = 1000;
/// How many output lines each step keeps.
pub const OUTPUT_LINES: usize = 50;

/// An intent the fold asks the runner to carry out. Replay and watch ignore them.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    RunAction {
        step: usize,
        direction: Direction,
    },
    /// Record (then fold) this event: a guard's decision, e.g. the rollback an abort
    /// condition starts, so the transcript names it like an operator's.
    Record(crate::event::Event),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    Undoing,
    Undone,
    UndoFailed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Undoing => "undoing",
            StepStatus::Undone => "undone",
            StepStatus::UndoFailed => "undo failed",
        }
    }
}

/// A gate's state when a decision was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateAt {
    /// The gate as the plan writes it.
    pub gate: String,
    pub state: GateState,
    pub reason: String,
}

/// A peer's approval of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: Ts,
    /// What the approver's cockpit showed (absent in older transcripts).
    #[serde(default)]
    pub seen: Option<crate::event::Evidence>,
}

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<Ts>,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub message: Option<String>,
    pub output: VecDeque<String>,
    pub approvals: Vec<Approval>,
    pub timed_out: Option<String>,
    /// The gate states when the operator confirmed (for the audit).
    pub gates_at_confirm: Vec<GateAt>,
    /// Set when the session restarted (`cutover resume`) while this step's action (or undo)
    /// had started with no recorded result: nobody knows whether it took effect. The status
    /// stays `Running`/`Undoing` (so nothing else proceeds) until a `StepResolved`.
    pub in_doubt: Option<Direction>,
    /// When the operator last cleared this step's timeout hold: its timeout counts again
    /// from there.
    #[serde(default)]
    pub timeout_cleared_at: Option<Ts>,
    /// When the fold asked for this step's `StepTimedOut` to be recorded (asked once).
    #[serde(default)]
    pub timeout_noticed: Option<Ts>,
    /// The weights a weighted DNS stage read before it changed them (its
    /// `Weights::before_line`, folded from the output): what `weights = "previous"` restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_before: Option<crate::plan::Weights>,
}

impl StepState {
    fn new() -> Self {
        StepState {
            status: StepStatus::Pending,
            confirmed_by: None,
            confirmed_at: None,
            started_at: None,
            finished_at: None,
            message: None,
            output: VecDeque::new(),
            approvals: Vec::new(),
            timed_out: None,
            gates_at_confirm: Vec::new(),
            in_doubt: None,
            timeout_cleared_at: None,
            timeout_noticed: None,
            weights_before: None,
        }
    }

    /// The status as the operator should read it: "in doubt" overrides running/undoing.
    pub fn status_label(&self) -> &'static str {
        match self.in_doubt {
            Some(Direction::Do) => "in doubt",
            Some(Direction::Undo) => "undo in doubt",
            None => self.status.as_str(),
        }
    }
}

/// One table's rows in the validation and drift panes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableView {
    pub stat: Option<TableStat>,
    pub drift: Option<TableDrift>,
}

/// A chart's data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub unit: Option<String>,
    pub points: VecDeque<(Ts, f64)>,
    /// When the source last polled it (datapoints may be older).
    pub polled_at: Ts,
}

impl Series {
    /// Appends the points newer than the newest one and revises those of the same time
    /// (CloudWatch revises its newest datapoints as data arrives).
    pub fn merge(&mut self, polled_at: Ts, unit: Option<&str>, points: &[(Ts, f64)]) {
        self.polled_at = polled_at;
        if let Some(unit) = unit {
            self.unit = Some(unit.to_string());
        }
        let newest = self.points.back().map(|p| p.0).unwrap_or(Ts::MIN);
        for &(t, v) in points {
            if t > newest {
                push_capped(&mut self.points, (t, v), HISTORY);
            } else if let Some(p) = self.points.iter_mut().rev().find(|p| p.0 == t) {
                p.1 = v;
            }
        }
    }
}

/// A source's recent health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub last_ok: Option<Ts>,
    pub last_error: Option<(Ts, String)>,
    pub failures: u64,
}

impl Health {
    /// The error to show, when it is newer than the last success.
    pub fn current_error(&self) -> Option<&str> {
        let (at, e) = self.last_error.as_ref()?;
        if self.last_ok.is_none_or(|ok| ok < *at) {
            Some(e)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollbackStatus {
    /// Waiting for a running action to end before undoing.
    Waiting,
    Running,
    Done,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    pub confirmed_at: Ts,
    pub by: String,
    pub reason: String,
    pub status: RollbackStatus,
    pub finished_at: Option<Ts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Info,
    Good,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: Ts,
    pub level: Level,
    pub text: String,
}

/// A dialog the transcript knows about (opened by a recorded request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpenDialog {
    Confirm { step: usize, by: String },
    Rollback { by: String },
}

/// Declares [`State`] and [`Snapshot`] from one field list, so the two cannot drift apart:
/// the state is the plan plus these fields; a snapshot is these fields alone.
macro_rules! folded_state {
    ($($(#[$meta:meta])* $vis:vis $name:ident : $ty:ty,)*) => {
        /// Everything the cockpit shows, folded from events.
        ///
        /// Serializable for the seek checkpoints (the transcript crate's seek file):
        /// [`State::snapshot`] writes every field but the plan (the transcript's header
        /// carries it); [`State::restore`] reads a [`Snapshot`] and gives it the plan, so a
        /// state never exists without its real plan.
        #[derive(Clone, Debug, Serialize)]
        pub struct State {
            #[serde(skip)]
            pub plan: Arc<Plan>,
            $($(#[$meta])* $vis $name: $ty,)*
        }

        /// A [`State`] without its plan, as a seek checkpoint holds it.
        #[derive(Clone, Debug, Deserialize)]
        pub struct Snapshot {
            $($(#[$meta])* $name: $ty,)*
        }

        impl Snapshot {
            /// The state this snapshot is of, under the transcript's plan.
            fn with_plan(self, plan: Arc<Plan>) -> State {
                State { plan, $($name: self.$name,)* }
            }

            fn steps(&self) -> usize {
                self.steps.len()
            }
        }
    };
}

folded_state! {
    pub mode: Option<crate::event::SessionMode>,
    pub operator: Option<String>,
    pub now: Ts,
    pub started_at: Option<Ts>,
    pub replication: ReplicationView,
    pub tables: BTreeMap<String, TableView>,
    pub metrics: BTreeMap<String, Series>,
    pub heartbeat: Option<(Ts, f64)>,
    pub heartbeat_history: VecDeque<(Ts, f64)>,
    pub dns: Option<DnsReading>,
    /// The newest answer of each `[[probe]]`, by name.
    #[serde(default)]
    pub probes: BTreeMap<String, crate::event::ProbeReading>,
    pub source_db: Option<DatabaseReading>,
    pub target_db: Option<DatabaseReading>,
    pub health: BTreeMap<SourceKind, Health>,
    pub steps: Vec<StepState>,
    /// (step, gate) -> since when its condition has held on fresh readings.
    #[serde(with = "holds_as_list")]
    pub holds: HashMap<(usize, usize), Ts>,
    /// (step, gate) -> when the newest reading that kept its hold was taken. A hold whose
    /// reading went stale before the next one arrived is broken, even if no event fell in
    /// the gap to notice.
    #[serde(with = "holds_as_list", default)]
    hold_seen: HashMap<(usize, usize), Ts>,
    /// The next step's gate states, to log their changes.
    next_gates: Vec<GateState>,
    next_gates_step: Option<usize>,
    pub rollback: Option<Rollback>,
    pub dialog: Option<OpenDialog>,
    pub faults: BTreeMap<String, (bool, String)>,
    /// The rehearsal world's figures for the whole session: after a resume, what the earlier
    /// run(s) measured plus the fresh world's figures.
    pub world: Option<WorldMeasures>,
    /// What the world(s) measured before the last restart (a resumed rehearsal builds a
    /// fresh world that counts from zero), and the writes refused while the cockpit was down.
    world_before: Option<WorldMeasures>,
    pub peers: BTreeSet<String>,
    /// The attached peers invited to watch only: their approvals never count.
    #[serde(default)]
    pub observers: BTreeSet<String>,
    pub log: VecDeque<LogLine>,
    pub ended: Option<(Ts, String)>,
    pub events: u64,
    /// The fold's watch over each of the plan's abort conditions (plan order).
    #[serde(default)]
    pub aborts: Vec<AbortWatch>,
    /// Guards that fired and block forward steps (oldest first).
    #[serde(default)]
    pub guard_holds: Vec<GuardHold>,
    /// The write-downtime window and the budget's progress over it.
    #[serde(default)]
    pub downtime: DowntimeWindow,
    /// When the fold first saw the plan's deadline passed (said once in the log).
    #[serde(default)]
    pub deadline_passed: Option<Ts>,
    /// Every guard that fired (abort, timeout, budget), oldest first, kept after its hold
    /// is cleared or resolved by the rollback: the report and the summary name them.
    #[serde(default)]
    pub guards_fired: Vec<GuardHold>,
    /// Each rehearsal fault and when the cockpit first showed it (`detect.rs`).
    #[serde(default)]
    pub detections: Vec<FaultDetection>,
}

/// `holds` as a sorted list of `[[step, gate], since]` (JSON maps need string keys, and a
/// sorted list serializes the same state to the same bytes).
mod holds_as_list {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::event::Ts;

    pub fn serialize<S: Serializer>(
        holds: &HashMap<(usize, usize), Ts>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list: Vec<(&(usize, usize), &Ts)> = holds.iter().collect();
        list.sort_unstable();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<(usize, usize), Ts>, D::Error> {
        Ok(Vec::<((usize, usize), Ts)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(item);
}

impl State {
    /// The action a step runs in this direction, as the runner must carry it out: the
    /// plan's, with an undo's `weights = "previous"` replaced by the weights the step's
    /// action read before its change (kept in the fold, so a resumed session knows them).
    /// Still `Previous` when none were read: the action then never got to change anything.
    pub fn action_to_run(&self, step: usize, direction: Direction) -> Option<crate::plan::Action> {
        use crate::plan::{Action, DnsWeights};
        let s = self.plan.steps.get(step)?;
        let action = match direction {
            Direction::Do => s.action.clone(),
            Direction::Undo => s.undo.clone()?,
        };
        Some(match action {
            Action::DnsWeights {
                weights: DnsWeights::Previous,
                wait,
            } => match self.steps.get(step).and_then(|st| st.weights_before) {
                Some(w) => Action::DnsWeights {
                    weights: DnsWeights::Set(w),
                    wait,
                },
                None => action,
            },
            other => other,
        })
    }

    pub fn new(plan: Arc<Plan>) -> Self {
        let n = plan.steps.len();
        let n_aborts = plan.aborts.len();
        let mut metrics = BTreeMap::new();
        // The plan's metrics chart from the start, empty until their first datapoints.
        for m in &plan.metrics {
            metrics.insert(
                m.name.clone(),
                Series {
                    unit: m.unit.clone(),
                    ..Series::default()
                },
            );
        }
        State {
            plan,
            mode: None,
            operator: None,
            now: 0,
            started_at: None,
            replication: ReplicationView::default(),
            tables: BTreeMap::new(),
            metrics,
            heartbeat: None,
            heartbeat_history: VecDeque::new(),
            dns: None,
            probes: BTreeMap::new(),
            source_db: None,
            target_db: None,
            health: BTreeMap::new(),
            steps: (0..n).map(|_| StepState::new()).collect(),
            holds: HashMap::new(),
            hold_seen: HashMap::new(),
            next_gates: Vec::new(),
            next_gates_step: None,
            rollback: None,
            dialog: None,
            faults: BTreeMap::new(),
            world: None,
            world_before: None,
            peers: BTreeSet::new(),
            observers: BTreeSet::new(),
            log: VecDeque::new(),
            ended: None,
            events: 0,
            aborts: vec![AbortWatch::default(); n_aborts],
            guard_holds: Vec::new(),
            downtime: DowntimeWindow::default(),
            deadline_passed: None,
            guards_fired: Vec::new(),
            detections: Vec::new(),
        }
    }

    /// The state as JSON, for a seek checkpoint. The same state always gives the same bytes
    /// (maps are ordered), so two snapshots compare by digest.
    pub fn snapshot(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// A state from [`State::snapshot`]'s bytes, under `plan` (the transcript's).
    pub fn restore(json: &[u8], plan: Arc<Plan>) -> Result<State, String> {
        let snap: Snapshot =
            serde_json::from_slice(json).map_err(|e| format!("not a state snapshot: {e}"))?;
        if snap.steps() != plan.steps.len() {
            return Err(format!(
                "the snapshot has {} steps, the plan {}: it belongs to another plan",
                snap.steps(),
                plan.steps.len()
            ));
        }
        Ok(snap.with_plan(plan))
    }

    fn log(&mut self, at: Ts, level: Level, text: impl Into<String>) {
        push_capped(
            &mut self.log,
            LogLine {
                at,
                level,
                text: text.into(),
            },
            LOG_LINES,
        );
    }

    fn step_id(&self, i: usize) -> String {
        self.plan
            .steps
            .get(i)
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    /// The step the operator may take next: the first not done, unless a rollback owns the
    /// session or an action is running.
    pub fn next_step(&self) -> Option<usize> {
        if self
            .rollback
            .as_ref()
            .is_some_and(|r| r.status != RollbackStatus::Done)
        {
            return None;
        }
        self.steps.iter().position(|s| s.status != StepStatus::Done)
    }

    /// The step whose action is running, if any.
    pub fn running_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| matches!(s.status, StepStatus::Running | StepStatus::Undoing))
    }

    /// True once every step is done.
    pub fn completed(&self) -> bool {
        !self.steps.is_empty()
            && self.steps.iter().all(|s| s.status == StepStatus::Done)
            && self.rollback.is_none()
    }

    /// True once a rollback has undone everything it could.
    pub fn rolled_back(&self) -> bool {
        self.rollback
            .as_ref()
            .is_some_and(|r| r.status == RollbackStatus::Done)
    }

    /// Whether a cutover is under way: some step has run and the session has not reached an
    /// end state (completed or rolled back).
    pub fn under_way(&self) -> bool {
        let touched = self.steps.iter().any(|s| s.status != StepStatus::Pending);
        touched && !self.completed() && !self.rolled_back()
    }

    /// When the step became the next one (the previous step finished, or the session began).
    pub fn step_ready_since(&self, step: usize) -> Option<Ts> {
        if step == 0 {
            self.started_at
        } else {
            self.steps.get(step - 1).and_then(|s| s.finished_at)
        }
    }

    /// The steps left in doubt by a restart, in plan order.
    pub fn in_doubt_steps(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.steps[i].in_doubt.is_some())
            .collect()
    }

    /// Why the operator cannot confirm `step` now, if they cannot.
    pub fn confirm_blocker(&self, step: usize) -> Option<String> {
        if let Some(d) = self.in_doubt_steps().first() {
            let id = self.step_id(*d);
            return Some(format!(
                "step {id} is in doubt after a restart: check whether its action took effect, then type \"done {id}\" or \"not done {id}\""
            ));
        }
        if let Some(r) = self.running_step() {
            return Some(format!("step {} is still running", self.step_id(r)));
        }
        if let Some(hold) = self.hold_blocker() {
            return Some(hold);
        }
        if let Some(late) = self.deadline_blocker() {
            return Some(late);
        }
        match self.next_step() {
            Some(n) if n == step => {}
            Some(n) => {
                return Some(format!(
                    "only step {} \"{}\" can run next",
                    n + 1,
                    self.step_id(n)
                ));
            }
            None => return Some("no step can run now".into()),
        }
        if let (state, Some(reason)) = self.step_readiness(step)
            && state != GateState::Green
        {
            return Some(format!("gates not green: {reason}"));
        }
        let needed = self.plan.steps[step].approvals as usize;
        let have = self.steps[step].approvals.len();
        if have < needed {
            return Some(format!("needs {needed} approval(s) from peers, has {have}"));
        }
        // Approvals lapse when their approver leaves; this holds even so.
        let present = self.steps[step]
            .approvals
            .iter()
            .filter(|a| self.peers.contains(&a.by) && !self.observers.contains(&a.by))
            .count();
        if present < needed {
            return Some(format!(
                "needs {needed} approver(s) present, {present} of those who approved are attached"
            ));
        }
        None
    }

    /// The steps a rollback undoes, newest first: completed (or failed) steps with an undo.
    fn next_undo(&self) -> Option<usize> {
        (0..self.steps.len()).rev().find(|&i| {
            matches!(
                self.steps[i].status,
                StepStatus::Done | StepStatus::Failed | StepStatus::UndoFailed
            ) && self.steps[i].confirmed_at.is_some()
                && self.plan.steps[i].undo.is_some()
        })
    }

    fn continue_rollback(&mut self, at: Ts) -> Vec<Effect> {
        match self.next_undo() {
            Some(i) => {
                if let Some(r) = &mut self.rollback {
                    r.status = RollbackStatus::Running;
                }
                self.steps[i].status = StepStatus::Undoing;
                vec![Effect::RunAction {
                    step: i,
                    direction: Direction::Undo,
                }]
            }
            None => {
                // Steps without an undo (checks, manual) are reverted by the rollback itself.
                for s in &mut self.steps {
                    if s.status == StepStatus::Done || s.status == StepStatus::Failed {
                        s.status = StepStatus::Undone;
                    }
                }
                if let Some(r) = &mut self.rollback {
                    r.status = RollbackStatus::Done;
                    r.finished_at = Some(at);
                }
                self.log(at, Level::Warn, "rollback complete");
                Vec::new()
            }
        }
    }

    /// A second `SessionStarted`: the session was resumed after the cockpit died. Actions
    /// that had started with no recorded result died with it or finished unseen: in doubt.
    fn restarted(&mut self, at: Ts, last_before: Ts) {
        self.ended = None;
        self.dialog = None;
        // A resumed rehearsal runs a fresh world without the first run's faults.
        let active: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, (on, _))| *on)
            .map(|(name, _)| name.clone())
            .collect();
        for name in active {
            self.faults.insert(
                name.clone(),
                (false, "not injected again after the restart".into()),
            );
            self.log(
                at,
                Level::Info,
                format!("fault {name} ended with the restart (not injected again)"),
            );
        }
        // The fresh world counts from zero: keep what the earlier run measured, and the
        // window the cockpit was down for while writes were frozen (clients were refused).
        if let Some(mut before) = self.world.take() {
            if !self.frozen_sides().is_empty() {
                before.downtime_s += (at - last_before).max(0) as f64 / 1000.0;
            }
            self.world = Some(before.clone());
            self.world_before = Some(before);
        }
        for i in 0..self.steps.len() {
            let direction = match self.steps[i].status {
                StepStatus::Running => Direction::Do,
                StepStatus::Undoing => Direction::Undo,
                _ => continue,
            };
            self.steps[i].in_doubt = Some(direction);
            let id = self.step_id(i);
            let what = if direction == Direction::Do {
                "action"
            } else {
                "undo"
            };
            self.log(
                at,
                Level::Error,
                format!(
                    "{id} is IN DOUBT: its {what} started before the restart and no result was recorded; check it, then type \"done {id}\" or \"not done {id}\""
                ),
            );
        }
    }

    /// The sides whose last completed freeze or unfreeze step left them frozen.
    pub fn frozen_sides(&self) -> Vec<Side> {
        let mut done: Vec<(Ts, &Action)> = self
            .plan
            .steps
            .iter()
            .zip(&self.steps)
            .filter(|(_, s)| s.status == StepStatus::Done)
            .map(|(d, s)| (s.finished_at.unwrap_or(0), &d.action))
            .collect();
        done.sort_by_key(|(at, _)| *at);
        let mut frozen: Vec<Side> = Vec::new();
        for (_, action) in done {
            match action {
                Action::Freeze { on, .. } if !frozen.contains(on) => frozen.push(*on),
                Action::Unfreeze { on, .. } => frozen.retain(|s| s != on),
                _ => {}
            }
        }
        frozen
    }

    /// The world's figures after a restart: the earlier run's counts plus the fresh world's.
    pub(crate) fn measured(&self, fresh: &WorldMeasures) -> WorldMeasures {
        match &self.world_before {
            None => fresh.clone(),
            Some(b) => WorldMeasures {
                writes_attempted: b.writes_attempted + fresh.writes_attempted,
                writes_acked: b.writes_acked + fresh.writes_acked,
                writes_refused: b.writes_refused + fresh.writes_refused,
                writes_lost: b.writes_lost + fresh.writes_lost,
                rows_diverged: fresh.rows_diverged,
                downtime_s: b.downtime_s + fresh.downtime_s,
                authority: fresh.authority,
            },
        }
    }

    /// The operator's answer for a step in doubt.
    fn resolve(&mut self, at: Ts, step: &str, done: bool, by: &str) -> Vec<Effect> {
        let Some(i) = self.plan.step_index(step) else {
            self.log(
                at,
                Level::Error,
                format!("resolution of unknown step {step}"),
            );
            return Vec::new();
        };
        let Some(direction) = self.steps[i].in_doubt.take() else {
            self.log(
                at,
                Level::Warn,
                format!("resolution of {step} by {by} ignored: it is not in doubt"),
            );
            return Vec::new();
        };
        let s = &mut self.steps[i];
        match (direction, done) {
            (Direction::Do, true) => {
                s.status = StepStatus::Done;
                s.finished_at = Some(at);
                s.message = Some(format!("marked done by {by} after a restart"));
            }
            (Direction::Do, false) => {
                // It never took effect: the step is next again and needs a new confirmation.
                s.status = StepStatus::Pending;
                s.confirmed_by = None;
                s.confirmed_at = None;
                s.started_at = None;
                s.finished_at = None;
                s.gates_at_confirm.clear();
                s.message = Some(format!("marked not done by {by} after a restart"));
            }
            (Direction::Undo, true) => {
                s.status = StepStatus::Undone;
                s.message = Some(format!("undo marked done by {by} after a restart"));
            }
            (Direction::Undo, false) => {
                s.status = StepStatus::Done;
                s.message = Some(format!("undo marked not done by {by} after a restart"));
            }
        }
        let verdict = if done { "done" } else { "not done" };
        let what = if direction == Direction::Do {
            ""
        } else {
            " (undo)"
        };
        self.log(
            at,
            Level::Warn,
            format!("{by} marked {step}{what} {verdict} after checking it"),
        );
        match self.rollback.as_ref().map(|r| r.status) {
            Some(RollbackStatus::Waiting) | Some(RollbackStatus::Running)
                if self.running_step().is_none() =>
            {
                self.continue_rollback(at)
            }
            _ => Vec::new(),
        }
    }

    fn observe(&mut self, at: Ts, reading: &Reading) {
        let h = self.health.entry(reading.source()).or_default();
        let recovered = h.current_error().is_some();
        h.last_ok = Some(at);
        if recovered {
            self.log(
                at,
                Level::Good,
                format!("{} readings recovered", reading.source().as_str()),
            );
        }
        match reading {
            Reading::Replication(r) => self.observe_replication(at, r),
            Reading::Task(t) => self.observe_legacy_task(at, t),
            Reading::TableStats {
                observed_at,
                tables,
            } => self.observe_legacy_tables(*observed_at, tables),
            Reading::Metrics {
                observed_at,
                series,
            } => {
                for s in series {
                    self.metrics.entry(s.name.clone()).or_default().merge(
                        *observed_at,
                        s.unit.as_deref(),
                        &s.points,
                    );
                    self.observe_legacy_cdc(*observed_at, s);
                }
            }
            Reading::Drift(d) => {
                let view = self.tables.entry(d.table.clone()).or_default();
                let was = view.drift.as_ref().map(|x| x.checksum);
                if d.checksum == crate::event::ChecksumState::Mismatch
                    && was != Some(crate::event::ChecksumState::Mismatch)
                {
                    let key = d
                        .differing_keys
                        .first()
                        .map(|k| format!(": {} {}", k.key, k.kind.as_str()))
                        .unwrap_or_default();
                    let table = d.table.clone();
                    view.drift = Some(d.clone());
                    self.log(
                        at,
                        Level::Error,
                        format!("checksum mismatch on {table}{key}"),
                    );
                } else {
                    view.drift = Some(d.clone());
                }
            }
            Reading::Probe(p) => {
                let was_ok = self.probes.get(&p.name).map(|o| o.error.is_none());
                let now_ok = p.error.is_none();
                if was_ok != Some(now_ok) {
                    let (level, text) = match &p.error {
                        None => (Level::Good, format!("probe {} answers", p.name)),
                        Some(e) => (Level::Warn, format!("probe {}: {e}", p.name)),
                    };
                    self.log(at, level, text);
                }
                self.probes.insert(p.name.clone(), p.clone());
            }
            Reading::Heartbeat { observed_at, lag_s } => {
                self.heartbeat = Some((*observed_at, *lag_s));
                push_capped(&mut self.heartbeat_history, (*observed_at, *lag_s), HISTORY);
            }
            // The task's own words, into the log: errors and warnings stand out there.
            Reading::TaskLog(l) => {
                for line in &l.lines {
                    let level = match line.severity() {
                        crate::event::TaskLogSeverity::Error => Level::Error,
                        crate::event::TaskLogSeverity::Warning => Level::Warn,
                        crate::event::TaskLogSeverity::Other => Level::Info,
                    };
                    self.log(line.at, level, format!("task log: {}", line.text));
                }
            }
            Reading::Dns(d) => {
                if let Some(prev) = &self.dns
                    && prev.value != d.value
                {
                    self.log(
                        at,
                        Level::Info,
                        format!(
                            "{} now points at {}",
                            d.name,
                            d.value.as_deref().unwrap_or("?")
                        ),
                    );
                }
                self.dns = Some(d.as_ref().clone());
            }
            Reading::Database(db) => {
                let slot = match db.side {
                    Side::Source => &mut self.source_db,
                    Side::Target => &mut self.target_db,
                };
                let changed = slot.as_ref().map(|p| p.read_only) != Some(db.read_only);
                let had = slot.is_some();
                *slot = Some(db.clone());
                if changed && had {
                    let ro = match db.read_only {
                        Some(true) => "read-only",
                        Some(false) => "writable",
                        None => "in an unknown mode",
                    };
                    self.log(
                        at,
                        Level::Info,
                        format!("{} database is {ro}", db.side.as_str()),
                    );
                }
            }
        }
    }

    /// Keeps each gate's "held since" current: set when its condition first holds on a
    /// fresh reading, cleared as soon as it does not. Only the next step's windows matter: a
    /// later step's window cannot start before the step before it finishes.
    fn update_holds(&mut self, next: Option<usize>, inputs: &[InputValue]) {
        let Some(si) = next else {
            self.holds.clear();
            self.hold_seen.clear();
            return;
        };
        self.holds.retain(|(s, _), _| *s == si);
        self.hold_seen.retain(|(s, _), _| *s == si);
        let plan = Arc::clone(&self.plan);
        let not_before = self.readings_not_before(si);
        for ((gi, gate), input) in plan.steps[si].gates.iter().enumerate().zip(inputs) {
            let holding = match input {
                InputValue::Known {
                    value, observed_at, ..
                } => {
                    let fresh = self.now - observed_at <= gate.fresh_ms();
                    let after = not_before.is_none_or(|nb| *observed_at >= nb);
                    (fresh && after && gate::compare(value, gate.op, &gate.value))
                        .then_some(*observed_at)
                }
                InputValue::Missing(_) => None,
            };
            match holding {
                Some(observed_at) => {
                    let gap = self
                        .hold_seen
                        .get(&(si, gi))
                        // Stale by the time this reading arrived: nothing fresh was known
                        // in between.
                        .is_some_and(|seen| self.now - seen > gate.fresh_ms());
                    if gap {
                        self.holds.remove(&(si, gi));
                    }
                    let since = self.satisfied_since(gate, observed_at);
                    let since = not_before.map_or(since, |nb| since.max(nb));
                    self.holds.entry((si, gi)).or_insert(since);
                    // The reading the cockpit holds now (a late, older one replaces it too).
                    self.hold_seen.insert((si, gi), observed_at);
                }
                None => {
                    self.holds.remove(&(si, gi));
                    self.hold_seen.remove(&(si, gi));
                }
            }
        }
    }

    /// The next step's gate states as the last fold computed them, while that step is
    /// still the next one (a guard folded after them may have changed it).
    pub fn next_gates(&self) -> Option<(usize, &[GateState])> {
        self.next_gates_step
            .filter(|s| Some(*s) == self.next_step())
            .map(|s| (s, self.next_gates.as_slice()))
    }

    fn log_gate_changes(&mut self, at: Ts, next: Option<usize>, inputs: Vec<InputValue>) {
        let Some(step) = next else {
            self.next_gates_step = None;
            return;
        };
        let now: Vec<GateStatus> = inputs
            .into_iter()
            .enumerate()
            .map(|(gi, input)| self.gate_status_of(step, gi, input))
            .collect();
        let states: Vec<GateState> = now.iter().map(|g| g.state).collect();
        if self.next_gates_step == Some(step) && states != self.next_gates {
            let plan = Arc::clone(&self.plan);
            let s = &plan.steps[step];
            for (i, g) in now.iter().enumerate() {
                if self.next_gates.get(i) != Some(&g.state) {
                    let level = match g.state {
                        GateState::Green => Level::Good,
                        GateState::Red => Level::Warn,
                        GateState::Unknown => Level::Warn,
                    };
                    self.log(
                        at,
                        level,
                        format!(
                            "{}: gate `{}` is {}: {}",
                            s.id,
                            s.gates[i].text,
                            g.state.as_str(),
                            g.reason
                        ),
                    );
                }
            }
        }
        if let Some(i) = states.iter().position(|g| *g != GateState::Green)
            && !self.steps[step].approvals.is_empty()
        {
            let why = format!(
                "gate `{}` is {}: {}",
                self.plan.steps[step].gates[i].text,
                now[i].state.as_str(),
                now[i].reason
            );
            self.lapse_approvals(at, |_| true, &why);
        }
        self.next_gates_step = Some(step);
        self.next_gates = states;
    }

    /// The action a step runs in a direction.
    pub fn action(&self, step: usize, direction: Direction) -> Option<&Action> {
        let s = self.plan.steps.get(step)?;
        match direction {
            Direction::Do => Some(&s.action),
            Direction::Undo => s.undo.as_ref(),
        }
    }
}

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod snap_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
