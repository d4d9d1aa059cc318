//! `cutover report FILE [--format md|json]`: the postmortem, as a fold over the transcript.
//!
//! The same `State::apply` the cockpit ran rebuilds the steps and the gate states at each
//! decision; alongside it the report collects what a screen forgets: every decision with
//! who and when, the write-downtime window, lag and drift over the whole session, and the
//! anomalies (source failures and stale readings, faults, cancellations, rejected
//! confirmations, timeouts, failed actions, rollbacks, restarts and steps in doubt).
//!
//! It streams the file (memory stays flat for a 24-hour transcript), checks the hash chain
//! as it reads, and says so when it stops at a break. Free text from the transcript goes
//! through [`crate::redact`] once more on its way out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{ChecksumState, Direction, Event, Reading, Side, SourceKind, Ts, WorldMeasures};
use crate::plan::{self, Action, Plan};
use crate::state::{GateState, RollbackStatus, State, StepStatus};
use crate::transcript::{Reader, TranscriptError};

/// Columns of the sparklines (and points of each series in the JSON).
pub const CHART_WIDTH: usize = 60;
/// A source silent this long (and three times its usual interval) is reported as stale.
pub const STALE_GAP_MS: Ts = 5_000;

/// The output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Md,
    Json,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error(
        "{path}:1: the recorded plan does not parse: {errors} (the header was edited; run `cutover verify {path}`)"
    )]
    Plan { path: String, errors: String },
    #[error("cannot render the report as JSON: {0}")]
    Json(String),
}

/// The whole postmortem.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub integrity: Integrity,
    pub session: SessionInfo,
    pub steps: Vec<StepReport>,
    pub decisions: Vec<Decision>,
    pub downtime: Downtime,
    pub series: Vec<SeriesReport>,
    pub anomalies: Vec<Anomaly>,
}

/// How much of the file could be trusted.
#[derive(Clone, Debug, Serialize)]
pub struct Integrity {
    /// Every record chains from the header.
    pub chain_intact: bool,
    pub records: u64,
    pub last_hash: String,
    /// Why the report stopped early (a chain break), if it did.
    pub stopped: Option<String>,
    pub torn_tail: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub plan: String,
    pub plan_hash: String,
    pub mode: String,
    pub operator: String,
    pub host: String,
    pub program_version: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub duration_s: Option<f64>,
    /// completed, rolled back, rollback failed, interrupted, not completed.
    pub outcome: String,
    /// The file this session continues (a `cutover resume`), and restarts inside this file.
    pub resumed_from: Option<String>,
    pub restarts: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub number: usize,
    pub id: String,
    pub title: String,
    pub action: String,
    pub status: String,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the confirmation to the end of the action.
    pub duration_s: Option<f64>,
    /// How long the step waited to become green after the previous one finished.
    pub waited_s: Option<f64>,
    pub message: Option<String>,
    pub undo: Option<String>,
}

/// A gate's state when a decision was taken.
#[derive(Clone, Debug, Serialize)]
pub struct GateAt {
    pub gate: String,
    pub state: GateState,
    pub reason: String,
}

/// Who decided what, when, and what the gates said.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub at: String,
    pub by: String,
    /// confirmed, confirmation refused, rejected, cancelled, approved, rollback, rollback
    /// cancelled, marked done, marked not done.
    pub kind: String,
    pub step: Option<String>,
    pub detail: Option<String>,
    pub gates: Vec<GateAt>,
}

/// When writes were frozen.
#[derive(Clone, Debug, Serialize)]
pub struct Downtime {
    pub freeze_step: Option<String>,
    pub unfreeze_step: Option<String>,
    /// The freeze action started.
    pub from: Option<String>,
    /// The unfreeze action (or the freeze's undo) finished.
    pub to: Option<String>,
    /// What ended the window: `unfreeze finished` or `freeze undone`.
    pub ended_by: Option<String>,
    pub window_s: Option<f64>,
    /// Still frozen when the transcript ends.
    pub open: bool,
    /// What the rehearsal world measured, if it was a rehearsal.
    pub measured: Option<WorldMeasures>,
}

/// A value over the session: min, max, last, and `CHART_WIDTH` buckets (max per bucket).
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    pub name: String,
    pub unit: String,
    pub samples: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub last: Option<f64>,
    pub sparkline: String,
    /// (bucket start, max in bucket; the last value held when the bucket has no sample);
    /// `None` before the first sample.
    pub buckets: Vec<(String, Option<f64>)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub at: String,
    pub kind: String,
    pub text: String,
}

fn iso(t: Ts) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.to_string())
}

fn secs(ms: Ts) -> f64 {
    ms as f64 / 1000.0
}

fn clean(s: &str) -> String {
    crate::redact::text(s, &[])
}

/// Per-source reading times, to find failures and silences.
#[derive(Default)]
struct SourceTrack {
    last_ok: Option<Ts>,
    intervals: Vec<Ts>,
    gaps: Vec<(Ts, Ts)>,
    /// An episode of failures: (from, to, count, first error).
    failing: Option<(Ts, Ts, u64, String)>,
    episodes: Vec<(Ts, Ts, u64, String)>,
}

/// A series' unit and its (time, value) samples.
type Points = (String, Vec<(Ts, f64)>);

/// The fold: the cockpit's state plus what the report remembers.
struct Collector {
    state: State,
    decisions: Vec<Decision>,
    anomalies: Vec<Anomaly>,
    sources: BTreeMap<SourceKind, SourceTrack>,
    series: BTreeMap<&'static str, Points>,
    drift_by_table: BTreeMap<String, u64>,
    mismatched: BTreeMap<String, bool>,
    restarts: Vec<String>,
    undo: BTreeMap<usize, String>,
    freeze: Option<usize>,
    unfreeze: Option<usize>,
    freeze_started: Option<Ts>,
    /// When writes were allowed again, and by what (`unfreeze finished`, `freeze undone`).
    thaw: Option<(Ts, String)>,
    first_at: Option<Ts>,
    last_at: Option<Ts>,
}

/// Whether an action sets `read_only` on `side` to on (`true`) or off (`false`).
fn read_only_action(action: &Action) -> Option<(Side, bool)> {
    let Action::Sql { on, statement } = action else {
        return None;
    };
    let s = statement.to_ascii_lowercase().replace(' ', "");
    if !s.contains("read_only") {
        return None;
    }
    if s.contains("read_only=on") || s.contains("read_only=1") || s.contains("read_only=true") {
        Some((*on, true))
    } else if s.contains("read_only=off")
        || s.contains("read_only=0")
        || s.contains("read_only=false")
    {
        Some((*on, false))
    } else {
        None
    }
}

impl Collector {
    fn new(plan: Arc<Plan>) -> Collector {
        // The freeze: the first step whose action makes the source read-only; the unfreeze:
        // the first after it making the target (or the source again) writable.
        let mut freeze = None;
        let mut unfreeze = None;
        for (i, s) in plan.steps.iter().enumerate() {
            match read_only_action(&s.action) {
                Some((Side::Source, true)) if freeze.is_none() => freeze = Some(i),
                Some((_, false)) if freeze.is_some() && unfreeze.is_none() => unfreeze = Some(i),
                _ => {}
            }
        }
        let by_id = |word: &str| {
            plan.steps
                .iter()
                .position(|s| s.id.eq_ignore_ascii_case(word))
        };
        let freeze = freeze.or_else(|| by_id("freeze"));
        let unfreeze = unfreeze.or_else(|| by_id("unfreeze"));
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
            freeze,
            unfreeze,
            freeze_started: None,
            thaw: None,
            first_at: None,
            last_at: None,
        }
    }

    fn anomaly(&mut self, at: Ts, kind: &str, text: String) {
        self.anomalies.push(Anomaly {
            at: iso(at),
            kind: kind.into(),
            text: clean(&text),
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

    fn point(&mut self, name: &'static str, unit: &str, at: Ts, v: f64) {
        let entry = self
            .series
            .entry(name)
            .or_insert_with(|| (unit.to_string(), Vec::new()));
        if entry.1.last().is_some_and(|&(t, _)| t >= at) {
            // Metric datapoints are re-sent while CloudWatch revises them: keep the newest.
            if let Some(p) = entry.1.iter_mut().rev().find(|p| p.0 == at) {
                p.1 = v;
            }
            return;
        }
        entry.1.push((at, v));
    }

    fn seen(&mut self, source: SourceKind, at: Ts) {
        let ended = {
            let t = self.sources.entry(source).or_default();
            if let Some(prev) = t.last_ok {
                let gap = at - prev;
                t.intervals.push(gap);
                t.gaps.push((prev, at));
            }
            t.last_ok = Some(at);
            t.failing.take()
        };
        if let Some((from, to, n, err)) = ended {
            self.sources
                .entry(source)
                .or_default()
                .episodes
                .push((from, to, n, err));
        }
    }

    fn step_index(&self, id: &str) -> Option<usize> {
        self.state.plan.step_index(id)
    }

    fn apply(&mut self, ev: &Event) {
        let at = ev.at();
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        // What the screen showed just before a decision.
        let before_blocker = match ev {
            Event::StepConfirmed { step, .. } => {
                self.step_index(step).map(|i| self.state.confirm_blocker(i))
            }
            _ => None,
        };
        match ev {
            Event::SessionStarted { mode, operator, .. } if self.state.started_at.is_some() => {
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
                        format!("{id}: its action had started with no recorded result when the cockpit stopped"),
                    );
                }
            }
            _ => {}
        }
        let _ = self.state.apply(ev);
        match ev {
            Event::Observed { reading, .. } => {
                self.seen(reading.source(), at);
                self.observe(at, reading);
            }
            Event::SourceFailed { source, error, .. } => {
                let t = self.sources.entry(*source).or_default();
                match &mut t.failing {
                    Some((_, to, n, _)) => {
                        *to = at;
                        *n += 1;
                    }
                    None => t.failing = Some((at, at, 1, error.clone())),
                }
            }
            Event::StepConfirmRejected {
                step, by, reason, ..
            } => {
                let gates = self
                    .step_index(step)
                    .map(|i| self.gates_of(i))
                    .unwrap_or_default();
                self.decision(at, by, "rejected", Some(step), Some(reason.clone()), gates);
                self.anomaly(
                    at,
                    "rejected confirmation",
                    format!("{by} on {step}: {reason}"),
                );
            }
            Event::StepConfirmCancelled { step, by, .. } => {
                self.decision(at, by, "cancelled", Some(step), None, Vec::new());
                self.anomaly(
                    at,
                    "cancellation",
                    format!("{by} cancelled the confirmation of {step}"),
                );
            }
            Event::StepConfirmed { step, by, .. } => {
                match (self.step_index(step), before_blocker) {
                    (Some(i), Some(None)) => {
                        let gates = self.state.steps[i]
                            .gates_at_confirm
                            .iter()
                            .map(|g| GateAt {
                                gate: g.gate.clone(),
                                state: g.state,
                                reason: clean(&g.reason),
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
            Event::StepApproved { step, by, .. } => {
                self.decision(at, by, "approved", Some(step), None, Vec::new())
            }
            Event::StepResolved { step, done, by, .. } => {
                let kind = if *done {
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
            Event::ActionStarted {
                step, direction, ..
            } => {
                if let Some(i) = self.step_index(step)
                    && *direction == Direction::Do
                    && Some(i) == self.freeze
                    && self.freeze_started.is_none()
                {
                    self.freeze_started = Some(at);
                }
            }
            Event::ActionFinished {
                step,
                direction,
                ok,
                message,
                ..
            } => {
                if let Some(i) = self.step_index(step) {
                    let thaws = (*direction == Direction::Do && Some(i) == self.unfreeze)
                        || (*direction == Direction::Undo && Some(i) == self.freeze);
                    if *ok && thaws && self.freeze_started.is_some() && self.thaw.is_none() {
                        let how = if *direction == Direction::Do {
                            "finished"
                        } else {
                            "undone"
                        };
                        self.thaw = Some((at, format!("{step} {how}")));
                    }
                    if *direction == Direction::Undo {
                        let verdict = if *ok { "undone" } else { "UNDO FAILED" };
                        self.undo
                            .insert(i, format!("{verdict} at {}: {}", iso(at), clean(message)));
                    }
                }
                if !ok {
                    let what = if *direction == Direction::Do {
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
            Event::StepTimedOut { step, reason, .. } => {
                self.anomaly(at, "timeout", format!("{step}: {reason}"));
            }
            Event::RollbackConfirmed { by, reason, .. } => {
                self.decision(at, by, "rollback", None, Some(reason.clone()), Vec::new());
                self.anomaly(at, "rollback", format!("{by} rolled back: {reason}"));
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

    fn observe(&mut self, at: Ts, reading: &Reading) {
        match reading {
            Reading::Metrics { series, .. } => {
                for s in series {
                    let name: &'static str = match s.name.as_str() {
                        "CDCLatencyTarget" => "CDC latency (target)",
                        "CDCLatencySource" => "CDC latency (source)",
                        "WritesRefused" => "writes refused",
                        _ => continue,
                    };
                    let unit = if name.starts_with("CDC") { "s" } else { "/s" };
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

    fn finish(
        mut self,
        header: &crate::transcript::Header,
        integrity: Integrity,
        file: String,
    ) -> Report {
        let end = self.last_at.unwrap_or(0);
        // Failures still going at the end, and silences longer than a source's usual rhythm.
        let kinds: Vec<SourceKind> = self.sources.keys().copied().collect();
        for k in kinds {
            let Some(mut t) = self.sources.remove(&k) else {
                continue;
            };
            if let Some(f) = t.failing.take() {
                t.episodes.push(f);
            }
            for (from, to, n, err) in &t.episodes {
                self.anomaly(
                    *from,
                    "source failure",
                    format!(
                        "{} failed {n} time(s) over {:.1}s (until {}): {err}",
                        k.as_str(),
                        secs(to - from),
                        iso(*to)
                    ),
                );
            }
            let mut iv = t.intervals.clone();
            iv.sort_unstable();
            let usual = iv.get(iv.len() / 2).copied().unwrap_or(1000);
            let limit = STALE_GAP_MS.max(usual * 3);
            for (a, b) in &t.gaps {
                if b - a > limit {
                    self.anomaly(
                        *a,
                        "stale readings",
                        format!(
                            "no {} reading for {:.1}s (usually every {:.1}s)",
                            k.as_str(),
                            secs(b - a),
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
                        k.as_str(),
                        secs(end - last)
                    ),
                );
            }
        }
        self.anomalies.sort_by(|a, b| a.at.cmp(&b.at));

        let st = &self.state;
        let plan = Arc::clone(&st.plan);
        let steps = plan
            .steps
            .iter()
            .zip(&st.steps)
            .enumerate()
            .map(|(i, (def, s))| {
                let started = s.confirmed_at.or(s.started_at);
                StepReport {
                    number: i + 1,
                    id: def.id.clone(),
                    title: def.title.clone(),
                    action: def.action.describe(&plan),
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
                    message: s.message.as_deref().map(clean),
                    undo: self.undo.get(&i).cloned(),
                }
            })
            .collect();
        let outcome = if st.completed() {
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
        };
        let session = SessionInfo {
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
            outcome: outcome.into(),
            resumed_from: header
                .resumed_from
                .as_ref()
                .map(|r| format!("{} (seq {}, hash {})", r.file, r.last_seq, r.last_hash)),
            restarts: self.restarts.clone(),
        };
        let name = |i: Option<usize>| i.and_then(|i| plan.steps.get(i)).map(|s| s.id.clone());
        let downtime = Downtime {
            freeze_step: name(self.freeze),
            unfreeze_step: name(self.unfreeze),
            from: self.freeze_started.map(iso),
            to: self.thaw.as_ref().map(|(t, _)| iso(*t)),
            ended_by: self.thaw.as_ref().map(|(_, how)| how.clone()),
            window_s: match (self.freeze_started, &self.thaw) {
                (Some(a), Some((b, _))) => Some(secs(b - a)),
                (Some(a), None) => Some(secs(end - a)),
                _ => None,
            },
            open: self.freeze_started.is_some() && self.thaw.is_none(),
            measured: st.world.clone(),
        };
        let (a, b) = (self.first_at.unwrap_or(0), end);
        let series = [
            "CDC latency (target)",
            "CDC latency (source)",
            "heartbeat lag",
            "row drift",
            "writes refused",
        ]
        .iter()
        .filter_map(|n| self.series.get(n).map(|s| (*n, s)))
        .map(|(n, (unit, pts))| chart(n, unit, pts, a, b))
        .collect();
        Report {
            file,
            integrity,
            session,
            steps,
            decisions: self.decisions,
            downtime,
            series,
            anomalies: self.anomalies,
        }
    }
}

/// Buckets a series over `[a, b]` into [`CHART_WIDTH`] columns (max per column).
fn chart(name: &str, unit: &str, pts: &[(Ts, f64)], a: Ts, b: Ts) -> SeriesReport {
    let span = (b - a).max(1);
    let mut buckets: Vec<Option<f64>> = vec![None; CHART_WIDTH];
    for &(t, v) in pts {
        if !v.is_finite() {
            continue;
        }
        let i =
            (((t - a).clamp(0, span) as i128 * (CHART_WIDTH as i128 - 1)) / span as i128) as usize;
        let slot = &mut buckets[i.min(CHART_WIDTH - 1)];
        *slot = Some(slot.map_or(v, |m: f64| m.max(v)));
    }
    // A column without a sample of its own shows the value held since the last one.
    let mut held = None;
    for b in &mut buckets {
        match b {
            Some(v) => held = Some(*v),
            None => *b = held,
        }
    }
    let finite = pts.iter().map(|p| p.1).filter(|v| v.is_finite());
    let min = finite.clone().reduce(f64::min);
    let max = finite.reduce(f64::max);
    SeriesReport {
        name: name.into(),
        unit: unit.into(),
        samples: pts.len(),
        min,
        max,
        last: pts.last().map(|p| p.1),
        sparkline: sparkline(&buckets, max.unwrap_or(0.0)),
        buckets: buckets
            .iter()
            .enumerate()
            .map(|(i, v)| (iso(a + span * i as i64 / CHART_WIDTH as i64), *v))
            .collect(),
    }
}

/// ` ` no sample, `▁` zero (or the bottom), up to `█` the maximum.
pub fn sparkline(buckets: &[Option<f64>], max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    buckets
        .iter()
        .map(|b| match b {
            None => ' ',
            Some(v) if max <= 0.0 || *v <= 0.0 => BARS[0],
            Some(v) => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

/// Folds the transcript at `path` into a [`Report`].
pub fn build(path: &Path) -> Result<Report, ReportError> {
    let mut reader = Reader::open(path)?;
    let header = reader.header().clone();
    let p = path.display().to_string();
    let plan = Arc::new(
        plan::parse(&format!("{p} (recorded plan)"), &header.plan_text).map_err(|e| {
            ReportError::Plan {
                path: p.clone(),
                errors: e.to_string(),
            }
        })?,
    );
    let mut c = Collector::new(plan);
    let mut stopped = None;
    loop {
        match reader.next_event() {
            Ok(Some(ev)) => c.apply(&ev),
            Ok(None) => break,
            Err(e) => {
                stopped = Some(format!("{e}; the report covers the records before it"));
                break;
            }
        }
    }
    let integrity = Integrity {
        chain_intact: stopped.is_none(),
        records: reader.last_seq(),
        last_hash: reader.last_hash().to_string(),
        stopped,
        torn_tail: reader.torn_tail().map(str::to_string),
    };
    Ok(c.finish(&header, integrity, p))
}

/// `cutover report`: the postmortem of `path` as Markdown or JSON.
pub fn report(path: &Path, format: Format) -> Result<String, ReportError> {
    let r = build(path)?;
    Ok(match format {
        Format::Md => render_md(&r),
        Format::Json => {
            serde_json::to_string_pretty(&r).map_err(|e| ReportError::Json(e.to_string()))? + "\n"
        }
    })
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

fn dur(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!(
            "{}h{:02}m{:02}s",
            (s / 3600.0) as u64,
            ((s / 60.0) as u64) % 60,
            (s as u64) % 60
        ),
        Some(s) if s >= 60.0 => format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0),
        Some(s) => format!("{s:.1}s"),
        None => "—".into(),
    }
}

/// Markdown table cells cannot hold `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown.
pub fn render_md(r: &Report) -> String {
    let mut s = String::new();
    let si = &r.session;
    // Writing to a String cannot fail.
    let _ = writeln!(s, "# Cutover report: {}\n", si.plan);
    let _ = writeln!(s, "- **Outcome:** {}", si.outcome);
    let _ = writeln!(
        s,
        "- **Operator:** {} on {} ({} mode, cutover {})",
        si.operator, si.host, si.mode, si.program_version
    );
    let _ = writeln!(
        s,
        "- **Session:** {} → {} ({}){}",
        opt(&si.started_at),
        opt(&si.ended_at),
        dur(si.duration_s),
        si.end_reason
            .as_ref()
            .map(|r| format!(", ended: {r}"))
            .unwrap_or_default()
    );
    if let Some(from) = &si.resumed_from {
        let _ = writeln!(s, "- **Resumed from:** {from}");
    }
    for restart in &si.restarts {
        let _ = writeln!(s, "- **Restarted:** {restart}");
    }
    let i = &r.integrity;
    let chain = if i.chain_intact {
        format!(
            "intact ({} records, last hash `{}`)",
            i.records, i.last_hash
        )
    } else {
        format!("**BROKEN**: {}", opt(&i.stopped))
    };
    let _ = writeln!(s, "- **Transcript:** `{}`, hash chain {chain}", r.file);
    if let Some(t) = &i.torn_tail {
        let _ = writeln!(s, "- **Torn tail:** {t}");
    }
    let _ = writeln!(s, "- **Plan hash:** `{}`\n", si.plan_hash);

    let _ = writeln!(s, "## Steps\n");
    let _ = writeln!(
        s,
        "| # | step | status | confirmed by | start | end | duration | waited | result |"
    );
    let _ = writeln!(
        s,
        "|---|------|--------|--------------|-------|-----|----------|--------|--------|"
    );
    for st in &r.steps {
        let mut result = st.message.clone().unwrap_or_default();
        if let Some(u) = &st.undo {
            result = format!("{result}; {u}");
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            st.number,
            cell(&st.id),
            st.status,
            cell(opt(&st.confirmed_by)),
            opt(&st.confirmed_at),
            opt(&st.finished_at),
            dur(st.duration_s),
            dur(st.waited_s),
            cell(&result)
        );
    }

    let d = &r.downtime;
    let _ = writeln!(s, "\n## Write downtime\n");
    match (&d.from, &d.window_s) {
        (Some(from), Some(w)) => {
            let to = if d.open {
                "the end of the transcript (still frozen)".to_string()
            } else {
                opt(&d.to).to_string()
            };
            let _ = writeln!(
                s,
                "- **Window:** {} from {from} ({} started) to {to}{}",
                dur(Some(*w)),
                opt(&d.freeze_step),
                d.ended_by
                    .as_ref()
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "- **Window:** writes were never frozen (no freeze action ran)"
            );
        }
    }
    if let Some(m) = &d.measured {
        let _ = writeln!(
            s,
            "- **Measured by the rehearsal world:** downtime {:.1}s, writes refused {}, writes lost {}, rows diverged {} (attempted {}, acknowledged {})",
            m.downtime_s,
            m.writes_refused,
            m.writes_lost,
            m.rows_diverged,
            m.writes_attempted,
            m.writes_acked
        );
    }

    let _ = writeln!(s, "\n## Decisions\n");
    if r.decisions.is_empty() {
        let _ = writeln!(s, "No decisions were recorded.");
    }
    for dec in &r.decisions {
        let step = dec
            .step
            .as_ref()
            .map(|st| format!(" **{st}**"))
            .unwrap_or_default();
        let detail = dec
            .detail
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let _ = writeln!(s, "- {} — {} {}{step}{detail}", dec.at, dec.by, dec.kind);
        for g in &dec.gates {
            let _ = writeln!(s, "  - `{}` {}: {}", g.gate, g.state.as_str(), g.reason);
        }
    }

    let _ = writeln!(s, "\n## Lag and drift over time\n");
    if r.series.is_empty() {
        let _ = writeln!(s, "No lag or drift readings were recorded.");
    } else {
        let _ = writeln!(
            s,
            "One column per {} of the session; each shows the column's maximum.\n",
            {
                let secs = si.duration_s.unwrap_or(0.0) / CHART_WIDTH as f64;
                dur(Some(secs))
            }
        );
        let _ = writeln!(s, "```");
        for se in &r.series {
            let range = match (se.min, se.max, se.last) {
                (Some(a), Some(b), Some(l)) => {
                    format!("min {a:.2} max {b:.2} last {l:.2} {}", se.unit)
                }
                _ => "no samples".into(),
            };
            let _ = writeln!(s, "{:<21} │{}│ {range}", se.name, se.sparkline);
        }
        let _ = writeln!(s, "```");
    }

    let _ = writeln!(s, "\n## Anomalies\n");
    if r.anomalies.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for a in &r.anomalies {
        let _ = writeln!(s, "- {} — **{}**: {}", a.at, a.kind, a.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_maximum() {
        assert_eq!(
            sparkline(&[None, Some(0.0), Some(4.0), Some(8.0)], 8.0),
            " ▁▅█"
        );
        assert_eq!(sparkline(&[Some(0.0), Some(0.0)], 0.0), "▁▁");
    }

    #[test]
    fn freeze_and_unfreeze_are_found_by_their_sql() {
        let plan = plan::rehearsal_plan();
        let c = Collector::new(Arc::new(plan));
        let ids: Vec<_> = [c.freeze, c.unfreeze]
            .iter()
            .map(|i| i.map(|i| c.state.plan.steps[i].id.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![Some("freeze".to_string()), Some("unfreeze".to_string())]
        );
    }
}
