//! The fold behind the report: the cockpit's `State` plus what the report remembers, one
//! method per family of events, and `finish`, which turns it all into a [`Report`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Anomaly, Bucket, CHART_WIDTH, Decision, Downtime, GateAt, Integrity, Report, STALE_GAP_MS,
    SeriesReport, SessionInfo, StepReport, clean, iso, render::sparkline, secs,
};
use crate::event::{ChecksumState, Direction, Event, Reading, SourceKind, Ts};
use crate::plan::Plan;
use crate::state::{RollbackStatus, State, StepStatus};
use crate::transcript::Header;

/// The series the report charts, in the order it shows them.
const CHARTED: [&str; 5] = [
    APPLY_LAG,
    CAPTURE_LAG,
    "heartbeat lag",
    "row drift",
    "writes refused",
];

/// Replication lag, whatever the engine (format 1–2 transcripts carry it as DMS's
/// `CDCLatencyTarget` / `CDCLatencySource` metric series; format 3 in replication readings).
const APPLY_LAG: &str = "replication lag (apply)";
const CAPTURE_LAG: &str = "replication lag (capture)";

/// An unbroken run of failures of one source.
struct Failures {
    from: Ts,
    to: Ts,
    count: u64,
    first_error: String,
}

/// The time between two consecutive good readings of one source.
struct Interval {
    from: Ts,
    to: Ts,
}

/// Per-source reading times, to find failures and silences.
#[derive(Default)]
struct SourceTrack {
    last_ok: Option<Ts>,
    intervals: Vec<Interval>,
    failing: Option<Failures>,
    episodes: Vec<Failures>,
}

struct Point {
    at: Ts,
    value: f64,
}

/// A charted value's unit and samples.
struct Series {
    unit: String,
    points: Vec<Point>,
}

/// The fold: the cockpit's state plus what the report remembers.
pub(super) struct Collector {
    state: State,
    decisions: Vec<Decision>,
    anomalies: Vec<Anomaly>,
    sources: BTreeMap<SourceKind, SourceTrack>,
    series: BTreeMap<&'static str, Series>,
    drift_by_table: BTreeMap<String, u64>,
    mismatched: BTreeMap<String, bool>,
    restarts: Vec<String>,
    undo: BTreeMap<usize, String>,
    /// Each step's last forward result (`ActionFinished` in the `do` direction).
    did: BTreeMap<usize, String>,
    first_at: Option<Ts>,
    last_at: Option<Ts>,
}

impl Collector {
    pub(super) fn new(plan: Arc<Plan>) -> Collector {
        Collector {
            state: State::new(plan),
            decisions: Vec::new(),
            anomalies: Vec::new(),
            sources: BTreeMap::new(),
            series: BTreeMap::new(),
            drift_by_table: BTreeMap::new(),
            mismatched: BTreeMap::new(),
            restarts: Vec::new(),
            undo: BTreeMap::new(),
            did: BTreeMap::new(),
            first_at: None,
            last_at: None,
        }
    }

    pub(super) fn apply(&mut self, ev: &Event) {
        let at = ev.at();
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        // What the screen showed just before a decision: the fold below changes it.
        let before_blocker = match ev {
            Event::StepConfirmed { step, .. } => {
                self.step_index(step).map(|i| self.state.confirm_blocker(i))
            }
            _ => None,
        };
        if let Event::SessionStarted { mode, operator, .. } = ev
            && self.state.started_at.is_some()
        {
            self.restarted(at, mode.as_str(), operator);
        }
        let approvals_before: Vec<Vec<String>> = self
            .state
            .steps
            .iter()
            .map(|s| s.approvals.iter().map(|a| a.by.clone()).collect())
            .collect();
        // The effects are the live session's to run; the report only reads the state.
        let _ = self.state.apply(ev);
        self.lapsed(at, &approvals_before);
        match ev {
            Event::Observed { reading, .. } => {
                self.seen(reading.source(), at);
                self.observe(at, reading);
            }
            Event::SourceFailed { source, error, .. } => self.source_failed(at, *source, error),
            Event::StepConfirmRejected {
                step, by, reason, ..
            } => self.confirm_rejected(at, step, by, reason),
            Event::StepConfirmCancelled { step, by, .. } => {
                self.decision(at, by, "cancelled", Some(step), None, Vec::new());
                self.anomaly(
                    at,
                    "cancellation",
                    format!("{by} cancelled the confirmation of {step}"),
                );
            }
            Event::StepConfirmed { step, by, .. } => self.confirmed(at, step, by, before_blocker),
            Event::StepApproved { step, by, seen, .. } => {
                self.approved(at, step, by, seen.as_ref())
            }
            Event::StepResolved { step, done, by, .. } => self.resolved(at, step, *done, by),
            Event::ActionFinished {
                step,
                direction,
                ok,
                message,
                ..
            } => self.action_finished(at, step, *direction, *ok, message),
            Event::StepTimedOut { step, reason, .. } => {
                self.anomaly(at, "timeout", format!("{step}: {reason}"));
            }
            Event::GuardWarned { guard, reason, .. } => {
                self.anomaly(at, "guard warning", format!("{guard}: {reason}"));
            }
            Event::RollbackConfirmed { by, reason, .. } => {
                self.decision(at, by, "rollback", None, Some(reason.clone()), Vec::new());
                self.anomaly(at, "rollback", format!("{by} rolled back: {reason}"));
            }
            Event::HoldCleared { guard, by, .. } => {
                self.decision(
                    at,
                    by,
                    "hold cleared",
                    None,
                    Some(guard.clone()),
                    Vec::new(),
                );
            }
            Event::RollbackCancelled { by, .. } => {
                self.decision(at, by, "rollback cancelled", None, None, Vec::new());
                self.anomaly(at, "cancellation", format!("{by} cancelled a rollback"));
            }
            Event::FaultChanged {
                fault,
                active,
                detail,
                ..
            } => {
                let verb = if *active { "injected" } else { "cleared" };
                self.anomaly(at, "fault", format!("{fault} {verb}: {detail}"));
            }
            _ => {}
        }
    }

    fn step_index(&self, id: &str) -> Option<usize> {
        self.state.plan.step_index(id)
    }

    fn anomaly(&mut self, at: Ts, kind: &str, text: String) {
        self.anomalies.push(Anomaly {
            at: iso(at),
            kind: kind.into(),
            text: clean(&text),
        });
    }

    /// An approval as the fold took it: counted (with what the approver saw), or not and
    /// why (the fold's own log line says).
    fn approved(
        &mut self,
        at: Ts,
        step: &str,
        by: &str,
        seen: Option<&cutover_core::event::Evidence>,
    ) {
        let counted = self.step_index(step).is_some_and(|i| {
            self.state.steps[i]
                .approvals
                .iter()
                .any(|a| a.by == by && a.at == at)
        });
        if !counted {
            let why = self
                .state
                .log
                .back()
                .map(|l| l.text.clone())
                .filter(|t| t.contains("does not count"));
            self.decision(
                at,
                by,
                "approval not counted for",
                Some(step),
                why,
                Vec::new(),
            );
            return;
        }
        let Some(seen) = seen else {
            self.decision(at, by, "approved", Some(step), None, Vec::new());
            return;
        };
        let mut detail = match &seen.head {
            Some(h) => format!(
                "as their cockpit showed it at event {} (transcript head {})",
                seen.seq,
                h.get(..12).unwrap_or(h)
            ),
            None => format!("as their cockpit showed it at event {}", seen.seq),
        };
        if let Some(sig) = &seen.signature {
            detail.push_str(&format!("; signed by {}", sig.key));
        }
        let gates = seen
            .gates
            .iter()
            .map(|g| GateAt {
                gate: g.gate.clone(),
                state: g.state,
                reason: "as the approver saw it".into(),
            })
            .collect();
        self.decision(at, by, "approved", Some(step), Some(detail), gates);
    }

    /// Approvals the fold withdrew on this event (a gate left green, the approver left, a
    /// rollback started), each as a decision with the fold's reason.
    fn lapsed(&mut self, at: Ts, before: &[Vec<String>]) {
        let mut gone = Vec::new();
        for (i, names) in before.iter().enumerate() {
            for name in names {
                if !self.state.steps[i].approvals.iter().any(|a| &a.by == name) {
                    gone.push((i, name.clone()));
                }
            }
        }
        for (i, name) in gone {
            let step = self.state.plan.steps[i].id.clone();
            let why = self
                .state
                .log
                .iter()
                .rev()
                .find(|l| {
                    l.text.starts_with(&format!("{step}: approval by")) && l.text.contains(&name)
                })
                .map(|l| l.text.clone());
            self.decision(
                at,
                &name,
                "approval lapsed on",
                Some(&step),
                why,
                Vec::new(),
            );
        }
    }

    fn decision(
        &mut self,
        at: Ts,
        by: &str,
        kind: &str,
        step: Option<&str>,
        detail: Option<String>,
        gates: Vec<GateAt>,
    ) {
        self.decisions.push(Decision {
            at: iso(at),
            by: by.to_string(),
            kind: kind.into(),
            step: step.map(str::to_string),
            detail: detail.map(|d| clean(&d)),
            gates,
        });
    }

    fn gates_of(&self, step: usize) -> Vec<GateAt> {
        self.state
            .step_gates(step)
            .into_iter()
            .zip(&self.state.plan.steps[step].gates)
            .map(|(g, def)| GateAt {
                gate: def.text.clone(),
                state: g.state,
                reason: clean(&g.reason),
            })
            .collect()
    }

    // -- the session ------------------------------------------------------------------

    /// A second `SessionStarted`: the cockpit stopped and `cutover resume` took over.
    fn restarted(&mut self, at: Ts, mode: &str, operator: &str) {
        self.restarts
            .push(format!("{} by {operator} ({mode})", iso(at)));
        let in_doubt: Vec<String> = self
            .state
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.status, StepStatus::Running | StepStatus::Undoing))
            .map(|(i, _)| self.state.plan.steps[i].id.clone())
            .collect();
        self.anomaly(
            at,
            "restart",
            format!("the session was resumed by {operator} after an interruption"),
        );
        for id in in_doubt {
            self.anomaly(
                at,
                "in doubt",
                format!(
                    "{id}: its action had started with no recorded result when the cockpit stopped"
                ),
            );
        }
    }

    // -- readings and sources -----------------------------------------------------------

    fn seen(&mut self, source: SourceKind, at: Ts) {
        let t = self.sources.entry(source).or_default();
        if let Some(prev) = t.last_ok {
            t.intervals.push(Interval { from: prev, to: at });
        }
        t.last_ok = Some(at);
        if let Some(ended) = t.failing.take() {
            t.episodes.push(ended);
        }
    }

    fn source_failed(&mut self, at: Ts, source: SourceKind, error: &str) {
        let t = self.sources.entry(source).or_default();
        match &mut t.failing {
            Some(f) => {
                f.to = at;
                f.count += 1;
            }
            None => {
                t.failing = Some(Failures {
                    from: at,
                    to: at,
                    count: 1,
                    first_error: error.to_string(),
                })
            }
        }
    }

    fn point(&mut self, name: &'static str, unit: &str, at: Ts, value: f64) {
        let series = self.series.entry(name).or_insert_with(|| Series {
            unit: unit.to_string(),
            points: Vec::new(),
        });
        if series.points.last().is_some_and(|p| p.at >= at) {
            // Metric datapoints are re-sent while CloudWatch revises them: keep the newest.
            if let Some(p) = series.points.iter_mut().rev().find(|p| p.at == at) {
                p.value = value;
            }
            return;
        }
        series.points.push(Point { at, value });
    }

    fn observe(&mut self, at: Ts, reading: &Reading) {
        match reading {
            Reading::Replication(r) => {
                for &(t, v) in &r.lag_s {
                    self.point(APPLY_LAG, "s", t, v);
                }
                for &(t, v) in &r.capture_lag_s {
                    self.point(CAPTURE_LAG, "s", t, v);
                }
            }
            Reading::Metrics { series, .. } => {
                for s in series {
                    let (name, unit) = match s.name.as_str() {
                        "CDCLatencyTarget" => (APPLY_LAG, "s"),
                        "CDCLatencySource" => (CAPTURE_LAG, "s"),
                        "WritesRefused" => ("writes refused", "/s"),
                        _ => continue,
                    };
                    for &(t, v) in &s.points {
                        self.point(name, unit, t, v);
                    }
                }
            }
            Reading::Heartbeat { observed_at, lag_s } => {
                self.point("heartbeat lag", "s", *observed_at, *lag_s)
            }
            Reading::Drift(d) => {
                if let Some(diff) = d.row_diff() {
                    self.drift_by_table.insert(d.table.clone(), diff);
                }
                let total: u64 = self.drift_by_table.values().sum();
                self.point("row drift", "rows", d.observed_at, total as f64);
                let mismatch = d.checksum == ChecksumState::Mismatch;
                let was = self
                    .mismatched
                    .insert(d.table.clone(), mismatch)
                    .unwrap_or(false);
                if mismatch && !was {
                    let key = d
                        .differing_keys
                        .first()
                        .map(|k| format!(", first differing row {} ({})", k.key, k.kind.as_str()))
                        .unwrap_or_default();
                    self.anomaly(at, "checksum mismatch", format!("{}{key}", d.table));
                }
            }
            _ => {}
        }
    }

    // -- decisions ----------------------------------------------------------------------

    fn confirm_rejected(&mut self, at: Ts, step: &str, by: &str, reason: &str) {
        let gates = self
            .step_index(step)
            .map(|i| self.gates_of(i))
            .unwrap_or_default();
        self.decision(at, by, "rejected", Some(step), Some(reason.into()), gates);
        self.anomaly(
            at,
            "rejected confirmation",
            format!("{by} on {step}: {reason}"),
        );
    }

    /// `blocker`: what stood in the way just before the confirmation arrived, if anything;
    /// `None` when the step is unknown.
    fn confirmed(&mut self, at: Ts, step: &str, by: &str, blocker: Option<Option<String>>) {
        match (self.step_index(step), blocker) {
            (Some(i), Some(None)) => {
                let gates = self.state.steps[i]
                    .gates_at_confirm
                    .iter()
                    .map(|g| GateAt {
                        reason: clean(&g.reason),
                        ..g.clone()
                    })
                    .collect();
                self.decision(at, by, "confirmed", Some(step), None, gates);
            }
            (Some(i), Some(Some(why))) => {
                let gates = self.gates_of(i);
                self.decision(
                    at,
                    by,
                    "confirmation refused",
                    Some(step),
                    Some(why.clone()),
                    gates,
                );
                self.anomaly(
                    at,
                    "rejected confirmation",
                    format!("the cockpit refused {by}'s confirmation of {step}: {why}"),
                );
            }
            _ => self.anomaly(
                at,
                "rejected confirmation",
                format!("{by} confirmed unknown step {step}"),
            ),
        }
    }

    fn resolved(&mut self, at: Ts, step: &str, done: bool, by: &str) {
        let kind = if done {
            "marked done"
        } else {
            "marked not done"
        };
        self.decision(
            at,
            by,
            kind,
            Some(step),
            Some("after a restart left it in doubt".into()),
            Vec::new(),
        );
    }

    // -- actions ------------------------------------------------------------------------

    fn action_finished(
        &mut self,
        at: Ts,
        step: &str,
        direction: Direction,
        ok: bool,
        message: &str,
    ) {
        if let Some(i) = self.step_index(step) {
            if direction == Direction::Do {
                self.did.insert(i, clean(message));
            }
            if direction == Direction::Undo {
                let verdict = if ok { "undone" } else { "UNDO FAILED" };
                self.undo
                    .insert(i, format!("{verdict} at {}: {}", iso(at), clean(message)));
            }
        }
        if !ok {
            let what = if direction == Direction::Do {
                "action"
            } else {
                "undo"
            };
            self.anomaly(
                at,
                "failed action",
                format!("{step} {what} failed: {message}"),
            );
        }
    }

    // -- the report ---------------------------------------------------------------------

    pub(super) fn finish(mut self, header: &Header, integrity: Integrity, file: String) -> Report {
        let end = self.last_at.unwrap_or(0);
        self.source_anomalies(end);
        self.anomalies.sort_by(|a, b| a.at.cmp(&b.at));
        Report {
            file,
            integrity,
            session: self.session(header),
            steps: self.steps(),
            downtime: self.downtime(end),
            guards: self.state.guard_figures(),
            series: self.series(end),
            decisions: self.decisions,
            anomalies: self.anomalies,
        }
    }

    /// Failures still going at the end, and silences longer than a source's usual rhythm.
    fn source_anomalies(&mut self, end: Ts) {
        for (kind, mut t) in std::mem::take(&mut self.sources) {
            if let Some(f) = t.failing.take() {
                t.episodes.push(f);
            }
            for f in &t.episodes {
                self.anomaly(
                    f.from,
                    "source failure",
                    format!(
                        "{} failed {} time(s) over {:.1}s (until {}): {}",
                        kind.as_str(),
                        f.count,
                        secs(f.to - f.from),
                        iso(f.to),
                        f.first_error
                    ),
                );
            }
            let mut gaps: Vec<Ts> = t.intervals.iter().map(|iv| iv.to - iv.from).collect();
            gaps.sort_unstable();
            let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(1000);
            let limit = STALE_GAP_MS.max(usual * 3);
            for iv in &t.intervals {
                if iv.to - iv.from > limit {
                    self.anomaly(
                        iv.from,
                        "stale readings",
                        format!(
                            "no {} reading for {:.1}s (usually every {:.1}s)",
                            kind.as_str(),
                            secs(iv.to - iv.from),
                            secs(usual)
                        ),
                    );
                }
            }
            if let Some(last) = t.last_ok
                && end - last > limit
            {
                self.anomaly(
                    last,
                    "stale readings",
                    format!(
                        "no {} reading for the last {:.1}s of the session",
                        kind.as_str(),
                        secs(end - last)
                    ),
                );
            }
        }
    }

    fn steps(&self) -> Vec<StepReport> {
        let st = &self.state;
        let plan = &st.plan;
        plan.steps
            .iter()
            .zip(&st.steps)
            .enumerate()
            .map(|(i, (def, s))| {
                let started = s.confirmed_at.or(s.started_at);
                StepReport {
                    number: i + 1,
                    id: def.id.clone(),
                    title: def.title.clone(),
                    action: def.action.describe(plan),
                    status: match (s.status, &s.timed_out) {
                        (StepStatus::Pending, Some(_)) => "timed out".into(),
                        (StepStatus::Pending, None) => "not run".into(),
                        _ => s.status_label().into(),
                    },
                    confirmed_by: s.confirmed_by.clone(),
                    confirmed_at: s.confirmed_at.map(iso),
                    started_at: s.started_at.map(iso),
                    finished_at: s.finished_at.map(iso),
                    duration_s: match (started, s.finished_at) {
                        (Some(a), Some(b)) => Some(secs(b - a)),
                        _ => None,
                    },
                    waited_s: match (st.step_ready_since(i), s.confirmed_at) {
                        (Some(a), Some(b)) if b >= a => Some(secs(b - a)),
                        _ => None,
                    },
                    // The action's own result: the fold's message is the latest of the step's
                    // (an undo's replaces it), and the undo has its own column.
                    message: self
                        .did
                        .get(&i)
                        .cloned()
                        .or_else(|| s.message.as_deref().map(clean)),
                    undo: self.undo.get(&i).cloned(),
                }
            })
            .collect()
    }

    /// The outcome, and what the window cost when the rehearsal world measured a loss: a
    /// run whose steps all finished but that lost an acknowledged write is not "completed".
    fn outcome(&self) -> String {
        let base = self.step_outcome();
        let Some(m) = self.state.world.as_ref() else {
            return base.into();
        };
        let mut harm = Vec::new();
        if m.writes_lost > 0 {
            harm.push(format!("{} acknowledged write(s) lost", m.writes_lost));
        }
        // Rows that differ on a target the run rolled back from are not a loss: the source
        // stayed authoritative.
        if m.rows_diverged > 0 && base == "completed" {
            harm.push(format!("{} row(s) diverged", m.rows_diverged));
        }
        match (harm.is_empty(), base) {
            (true, _) => base.into(),
            (false, "completed") => format!("completed WITH DATA LOSS: {}", harm.join(", ")),
            (false, _) => format!("{base}, with data loss: {}", harm.join(", ")),
        }
    }

    fn step_outcome(&self) -> &'static str {
        let st = &self.state;
        if st.completed() {
            "completed"
        } else if st.rolled_back() {
            "rolled back"
        } else if st
            .rollback
            .as_ref()
            .is_some_and(|r| r.status == RollbackStatus::Failed)
        {
            "rollback failed"
        } else if st.ended.is_none() {
            "interrupted"
        } else {
            "not completed"
        }
    }

    fn session(&self, header: &Header) -> SessionInfo {
        let st = &self.state;
        SessionInfo {
            plan: header.plan_name.clone(),
            plan_hash: header.plan_hash.clone(),
            mode: header.mode.to_string(),
            operator: header.operator.clone(),
            host: header.host.clone(),
            program_version: header.program_version.clone(),
            started_at: st.started_at.map(iso),
            ended_at: st.ended.as_ref().map(|(t, _)| iso(*t)),
            end_reason: st.ended.as_ref().map(|(_, r)| clean(r)),
            duration_s: match (st.started_at, self.last_at) {
                (Some(a), Some(b)) => Some(secs(b - a)),
                _ => None,
            },
            outcome: self.outcome(),
            resumed_from: header
                .resumed_from
                .as_ref()
                .map(|r| format!("{} (seq {}, hash {})", r.file, r.last_seq, r.last_hash)),
            restarts: self.restarts.clone(),
        }
    }

    fn downtime(&self, end: Ts) -> Downtime {
        let plan = &self.state.plan;
        let name = |i: Option<usize>| i.and_then(|i| plan.steps.get(i)).map(|s| s.id.clone());
        let (freeze, unfreeze) = plan.downtime_steps();
        // The fold's window, the one the budget counts.
        let w = &self.state.downtime;
        Downtime {
            freeze_step: name(freeze),
            unfreeze_step: name(unfreeze),
            from: w.started.map(iso),
            to: w.ended.as_ref().map(|(at, _)| iso(*at)),
            ended_by: w.ended.as_ref().map(|(_, by)| by.clone()),
            window_s: w.used_ms(end).map(secs),
            max_downtime_s: plan.budget.map(|b| secs(b.max_ms)),
            budget_warned_at: w.warned_at.map(iso),
            budget_spent_at: w.spent_at.map(iso),
            open: w.open(),
            measured: self.state.world.clone(),
        }
    }

    fn series(&self, end: Ts) -> Vec<SeriesReport> {
        let a = self.first_at.unwrap_or(0);
        CHARTED
            .iter()
            .filter_map(|n| self.series.get(n).map(|s| chart(n, s, a, end)))
            .collect()
    }
}

/// Buckets a series over `[a, b]` into [`CHART_WIDTH`] columns (max per column).
fn chart(name: &str, series: &Series, a: Ts, b: Ts) -> SeriesReport {
    let pts = &series.points;
    let span = (b - a).max(1);
    let mut buckets: Vec<Option<f64>> = vec![None; CHART_WIDTH];
    for p in pts {
        if !p.value.is_finite() {
            continue;
        }
        let i = (((p.at - a).clamp(0, span) as i128 * (CHART_WIDTH as i128 - 1)) / span as i128)
            as usize;
        let slot = &mut buckets[i.min(CHART_WIDTH - 1)];
        *slot = Some(slot.map_or(p.value, |m: f64| m.max(p.value)));
    }
    // A column without a sample of its own shows the value held since the last one.
    let mut held = None;
    for b in &mut buckets {
        match b {
            Some(v) => held = Some(*v),
            None => *b = held,
        }
    }
    let finite = pts.iter().map(|p| p.value).filter(|v| v.is_finite());
    let min = finite.clone().reduce(f64::min);
    let max = finite.reduce(f64::max);
    SeriesReport {
        name: name.into(),
        unit: series.unit.clone(),
        samples: pts.len(),
        min,
        max,
        last: pts.last().map(|p| p.value),
        sparkline: sparkline(&buckets, max.unwrap_or(0.0)),
        buckets: buckets
            .iter()
            .enumerate()
            .map(|(i, v)| Bucket {
                start: iso(a + span * i as i64 / CHART_WIDTH as i64),
                max: *v,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan;

    fn window_steps(text: &str) -> [Option<String>; 2] {
        let plan = plan::parse("p.toml", text).unwrap_or_else(|e| panic!("{e}"));
        let (freeze, unfreeze) = plan.downtime_steps();
        [freeze, unfreeze].map(|i| i.map(|i| plan.steps[i].id.clone()))
    }

    #[test]
    fn freeze_and_unfreeze_are_found_by_their_typed_actions() {
        let text = plan::rehearsal_plan_text_without_aborts()
            .replace("id = \"freeze\"", "id = \"stop-writes\"")
            .replace("id = \"unfreeze\"", "id = \"open-target\"");
        assert_eq!(
            window_steps(&text),
            [Some("stop-writes".into()), Some("open-target".into())]
        );
    }

    #[test]
    fn the_legacy_sql_spelling_is_found_too() {
        let text = plan::rehearsal_plan_text_without_aborts()
            .replace(
                r#"action = { kind = "freeze", on = "source" }"#,
                r#"action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }"#,
            )
            .replace(
                r#"action = { kind = "unfreeze", on = "target" }"#,
                r#"action = { kind = "sql", on = "target", statement = "set global read_only = 0" }"#,
            )
            .replace("id = \"freeze\"", "id = \"a\"")
            .replace("id = \"unfreeze\"", "id = \"b\"");
        assert!(text.contains("statement = \"set global read_only = 0\""));
        assert_eq!(window_steps(&text), [Some("a".into()), Some("b".into())]);
    }

    #[test]
    fn a_plan_without_freeze_actions_falls_back_to_the_step_ids() {
        let text = plan::rehearsal_plan_text_without_aborts()
            .replace(
                r#"action = { kind = "freeze", on = "source" }"#,
                r#"action = { kind = "shell", command = "true" }"#,
            )
            .replace(
                r#"action = { kind = "unfreeze", on = "target" }"#,
                r#"action = { kind = "shell", command = "true" }"#,
            );
        assert_eq!(
            window_steps(&text),
            [Some("freeze".into()), Some("unfreeze".into())]
        );
    }
}
