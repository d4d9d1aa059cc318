//! Gate inputs and gate evaluation. A gate is green only on a fresh reading that satisfies
//! its condition for its whole sustain window; a missing, stale or failed reading is unknown.

use super::State;
use crate::event::{ChecksumState, ReplicationEngine, ReplicationReading, Side, Ts};
use crate::plan::{Gate, Input, Op, ReplicationInput, Value};

/// The three states a gate (and a step) can be in. Unknown blocks like red.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    Green,
    Red,
    Unknown,
}

impl GateState {
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Green => "green",
            GateState::Red => "red",
            GateState::Unknown => "unknown",
        }
    }
}

/// A gate's verdict with its reason, for the checklist and for `check --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct GateStatus {
    pub state: GateState,
    pub reason: String,
    pub value: Option<Value>,
    pub observed_at: Option<Ts>,
}

/// The current value of an input, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum InputValue {
    Missing(String),
    Known {
        value: Value,
        observed_at: Ts,
        /// Context for a red gate, e.g. the first differing key.
        detail: Option<String>,
    },
}

pub fn compare(actual: &Value, op: Op, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => match op {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Ge => a >= b,
            Op::Gt => a > b,
        },
        (Value::Text(a), Value::Text(b)) => {
            // Text compares as DNS names do (no other text input ends in a dot).
            let eq = crate::plan::same_dns_name(a, b);
            match op {
                Op::Eq => eq,
                Op::Ne => !eq,
                _ => false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Bytes as the checklist says them: `812 B`, `12.3 kB`, `4.1 MB` (powers of 1000).
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// What a red replication gate says beyond the number: the exact gap between the positions,
/// the sequences that are behind.
fn replication_detail(r: &ReplicationReading, which: ReplicationInput) -> Option<String> {
    let postgres = r.engine == ReplicationEngine::Postgres;
    match which {
        ReplicationInput::BehindBytes => {
            let n = r.behind_bytes.filter(|n| *n > 0)?;
            let (who, word) = if postgres {
                ("subscriber", "LSN")
            } else {
                ("target", "position")
            };
            let at = match (&r.target_position, &r.source_position) {
                (Some(t), Some(s)) => format!(" ({word} {t} of {s})"),
                _ => String::new(),
            };
            Some(format!("{who} is {} behind{at}", fmt_bytes(n)))
        }
        ReplicationInput::SequencesBehind => {
            const SHOWN: usize = 3;
            let behind: Vec<_> = r
                .sequences
                .as_ref()?
                .iter()
                .filter(|q| q.is_behind())
                .collect();
            if behind.is_empty() {
                return None;
            }
            let value = |v: Option<i64>| v.map_or("unset".to_string(), |v| v.to_string());
            let mut text: Vec<String> = behind
                .iter()
                .take(SHOWN)
                .map(|q| {
                    format!(
                        "{} target {} < source {}",
                        q.name,
                        value(q.target),
                        value(q.source)
                    )
                })
                .collect();
            if behind.len() > SHOWN {
                text.push(format!("{} more", behind.len() - SHOWN));
            }
            Some(text.join(", "))
        }
        _ => None,
    }
}

fn fmt_age(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else {
        format!("{:.0}m", s / 60.0)
    }
}

impl State {
    /// The tables the drift and validation inputs cover.
    fn drift_tables(&self) -> Vec<&str> {
        let planned = &self.plan.rehearsal.tables;
        if self.plan.is_rehearsal() && !planned.is_empty() {
            planned.iter().map(String::as_str).collect()
        } else {
            self.tables.keys().map(String::as_str).collect()
        }
    }

    /// The value of a gate input now.
    pub fn input_value(&self, input: &Input) -> InputValue {
        let missing = |why: &str| InputValue::Missing(why.to_string());
        let known = |value: Value, observed_at: Ts| InputValue::Known {
            value,
            observed_at,
            detail: None,
        };
        match input {
            Input::Replication(r) => self.replication_value(input, *r),
            Input::TaskStatus => match self.replication.status() {
                Some(r) => known(Value::Text(r.status_text.clone()), r.observed_at),
                None => missing("no replication task reading yet"),
            },
            Input::TaskFullLoadPct
            | Input::TaskTablesErrored
            | Input::CdcLatencySource
            | Input::CdcLatencyTarget
            | Input::CdcIncomingChanges
            | Input::ValidationFailed
            | Input::ValidationPending
            | Input::ValidationSuspended
            | Input::ValidationUnvalidated
            | Input::ValidationEnabled
            | Input::TaskStopReason => match input.canonical() {
                Input::Replication(r) => self.replication_value(input, r),
                _ => missing("not a replication input"),
            },
            Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked => {
                let tables = self.drift_tables();
                if tables.is_empty() {
                    return missing("no table has been compared yet");
                }
                let mut total = 0u64;
                let mut oldest = Ts::MAX;
                let mut detail: Option<String> = None;
                for name in tables {
                    let Some(d) = self.tables.get(name).and_then(|t| t.drift.as_ref()) else {
                        return InputValue::Missing(format!("{name} not compared yet"));
                    };
                    oldest = oldest.min(d.observed_at);
                    let n = match input {
                        Input::DriftRows => match d.row_diff() {
                            Some(n) => n,
                            None => {
                                return InputValue::Missing(format!("{name}: row counts unknown"));
                            }
                        },
                        Input::DriftMismatched => u64::from(d.checksum == ChecksumState::Mismatch),
                        _ => u64::from(matches!(
                            d.checksum,
                            ChecksumState::Pending | ChecksumState::Skipped
                        )),
                    };
                    if n > 0 {
                        total += n;
                        if detail.is_none() {
                            detail = Some(match (input, d.differing_keys.first()) {
                                (Input::DriftRows, first) => format!(
                                    "{name}: source {} rows, target {}{}",
                                    d.source_rows.unwrap_or(0),
                                    d.target_rows.unwrap_or(0),
                                    first
                                        .map(|k| format!("; {} {}", k.key, k.kind.as_str()))
                                        .unwrap_or_default()
                                ),
                                (Input::DriftMismatched, Some(k)) => {
                                    format!("{name}: {} {}", k.key, k.kind.as_str())
                                }
                                _ => format!("{name}: {}", d.checksum.as_str()),
                            });
                        }
                    }
                }
                InputValue::Known {
                    value: Value::Number(total as f64),
                    observed_at: oldest,
                    detail,
                }
            }
            Input::HeartbeatLag => match self.heartbeat {
                Some((at, lag)) => known(Value::Number(lag), at),
                None => missing("no heartbeat reading yet"),
            },
            Input::DnsValue | Input::DnsStatus | Input::DnsTtl | Input::DnsResolved => {
                let Some(d) = &self.dns else {
                    return missing("no DNS reading yet");
                };
                let v = match input {
                    Input::DnsValue => d.value.clone().map(Value::Text),
                    Input::DnsStatus => d.change_status.clone().map(Value::Text),
                    Input::DnsTtl => d.ttl.map(|t| Value::Number(t as f64)),
                    _ => d.resolved.clone().map(Value::Text),
                };
                match v {
                    Some(v) => known(v, d.observed_at),
                    None => missing("the DNS reading does not include it"),
                }
            }
            Input::DnsAuthoritative => {
                let Some(d) = &self.dns else {
                    return missing("no DNS reading yet");
                };
                match (&d.authoritative, &d.authoritative_error) {
                    (Some(v), _) => known(Value::Text(v.clone()), d.observed_at),
                    (None, Some(why)) => missing(why),
                    (None, None) => missing(
                        "the authoritative name servers are not asked (set [dns] authoritative = true)",
                    ),
                }
            }
            Input::DnsWeight(side) => {
                let Some(d) = &self.dns else {
                    return missing("no DNS reading yet");
                };
                if !d.sets.iter().any(|s| s.weight.is_some()) {
                    return missing("the record is not weighted (one value carries all traffic)");
                }
                let to = match side {
                    crate::event::Side::Source => crate::plan::DnsTo::Source,
                    crate::event::Side::Target => crate::plan::DnsTo::Target,
                };
                let Some(want) = self.plan.dns_value(&to) else {
                    return missing("the plan has no [dns] section");
                };
                let weight: u64 = d
                    .sets
                    .iter()
                    .filter(|s| crate::plan::same_dns_name(&s.value, &want))
                    .filter_map(|s| s.weight)
                    .sum();
                known(Value::Number(weight as f64), d.observed_at)
            }
            Input::ReadOnly(side) | Input::Connections(side) | Input::LongestTrx(side) => {
                let db = match side {
                    Side::Source => &self.source_db,
                    Side::Target => &self.target_db,
                };
                let Some(db) = db else {
                    return InputValue::Missing(format!(
                        "no {} database reading yet",
                        side.as_str()
                    ));
                };
                let v = match input {
                    Input::ReadOnly(_) => db.read_only.map(Value::Bool),
                    Input::Connections(_) => db.connections.map(|c| Value::Number(c as f64)),
                    _ => db.longest_trx_s.map(Value::Number),
                };
                match v {
                    Some(v) => known(v, db.observed_at),
                    None => missing("the database reading does not include it"),
                }
            }
            Input::Probe(name) => match self.probes.get(name) {
                None => InputValue::Missing(format!("no answer from probe {name} yet")),
                Some(p) => match (&p.value, &p.error) {
                    (Some(v), None) => known(v.clone(), p.observed_at),
                    (_, Some(e)) => InputValue::Missing(format!("probe {name}: {e}")),
                    (None, None) => InputValue::Missing(format!("probe {name} read no value")),
                },
            },
            Input::Metric(name) => {
                let Some(series) = self.metrics.get(name) else {
                    return InputValue::Missing(format!("no {name} datapoints yet"));
                };
                match series.points.back() {
                    Some(&(at, v)) => known(Value::Number(v), at),
                    None => InputValue::Missing(format!("no {name} datapoints yet")),
                }
            }
        }
    }

    /// The value of a replication input. `asked` is the name the gate used (an alias keeps
    /// its own wording in messages).
    fn replication_value(&self, asked: &Input, which: ReplicationInput) -> InputValue {
        use ReplicationInput as R;
        let missing = |why: String| InputValue::Missing(why);
        let known = |value: Value, observed_at: Ts| InputValue::Known {
            value,
            observed_at,
            detail: None,
        };
        if let Some(series) = self.replication.series(which) {
            return match series.points.back() {
                Some(&(at, v)) => known(Value::Number(v), at),
                None => {
                    let what = match asked.dms_metric_name() {
                        Some(metric) => format!("no {metric} datapoints yet"),
                        None => format!("no {asked} reading yet"),
                    };
                    match self
                        .replication
                        .status()
                        .and_then(|r| r.figures_error.as_ref())
                    {
                        Some(err) => missing(format!("{what} ({err})")),
                        None => missing(what),
                    }
                }
            };
        }
        if matches!(
            which,
            R::ValidationFailed
                | R::ValidationPending
                | R::ValidationSuspended
                | R::ValidationUnvalidated
        ) {
            // With validation off the engine reports 0 failures whatever the data: no proof.
            if let Some(r) = self.replication.status()
                && r.validation_enabled == Some(false)
            {
                return missing(format!(
                    "validation is off for {} (its counts are 0 whatever the data); enable it in the task settings",
                    r.name
                ));
            }
            return self.validation_value(which);
        }
        let Some(r) = self.replication.status() else {
            return missing("no replication task reading yet".into());
        };
        let engine = r.engine.as_str();
        let count = |n: Option<u64>| n.map(|n| Value::Number(n as f64));
        if which == R::SourceGtidStableS {
            return match self.replication.gtid_stable_s() {
                Some(s) => known(Value::Number(s), r.observed_at),
                None => missing(format!(
                    "the {engine} replication reading has no source GTID set (GTID is off or the engine has none); gate on replication.behind_bytes or lag instead, or turn GTID on"
                )),
            };
        }
        if which == R::BehindTransactions
            && let Some(n) = r.behind_transactions
        {
            // The exact gap, positions on both sides, for the checklist's reason.
            let detail = (n > 0).then(|| {
                let mut d = format!("replica is {n} transaction{} behind", plural(n));
                if let (Some(t), Some(s)) = (&r.target_position, &r.source_position) {
                    let word = r.engine.position_word();
                    d.push_str(&format!(" ({word}{t} of {s})"));
                }
                d
            });
            return InputValue::Known {
                value: Value::Number(n as f64),
                observed_at: r.observed_at,
                detail,
            };
        }
        let value = match which {
            R::Status => Some(Value::Text(r.status.as_str().to_string())),
            R::StopReason => r.stop_reason.clone().map(Value::Text),
            R::BehindTransactions => count(r.behind_transactions),
            R::BehindBytes => count(r.behind_bytes),
            R::SequencesBehind => count(r.sequences_behind()),
            R::TablesErrored => count(r.tables_errored.map(u64::from)),
            R::FullLoadPct => r.full_load_pct.map(Value::Number),
            R::ValidationEnabled => r.validation_enabled.map(Value::Bool),
            _ => None,
        };
        match value {
            Some(v) => InputValue::Known {
                value: v,
                observed_at: r.observed_at,
                detail: replication_detail(r, which),
            },
            None if which == R::SequencesBehind && r.sequences_error.is_some() => missing(format!(
                "the sequences could not be read: {}",
                r.sequences_error.as_deref().unwrap_or_default()
            )),
            None if which == R::BehindTransactions && r.gap_error.is_some() => {
                missing(r.gap_error.clone().unwrap_or_default())
            }
            None if which == R::StopReason => missing(format!(
                "no stop reason: replication is {}",
                r.status.as_str()
            )),
            None if matches!(asked, Input::Replication(_)) => missing(format!(
                "the {engine} replication reading does not include {asked}"
            )),
            None => missing("the task reading does not include it".into()),
        }
    }

    /// Validation figures over every table the engine reports.
    fn validation_value(&self, which: ReplicationInput) -> InputValue {
        use ReplicationInput as R;
        let missing = |why: &str| InputValue::Missing(why.to_string());
        {
            let tables_error = self
                .replication
                .status()
                .and_then(|r| r.tables_error.as_ref());
            // The newest poll could not read them: what is held is older than the status.
            if let Some(e) = tables_error {
                return InputValue::Missing(format!("the table statistics could not be read: {e}"));
            }
            let Some(at) = self.replication.tables_at else {
                return missing("no table statistics yet");
            };
            let stats: Vec<_> = self
                .tables
                .values()
                .filter_map(|t| t.stat.as_ref())
                .collect();
            if stats.is_empty() {
                return missing("the task reports no tables");
            }
            let mut worst: Option<(u64, &str)> = None;
            let mut total = 0u64;
            for s in &stats {
                let n = match which {
                    R::ValidationFailed => s.validation_failed.unwrap_or(0),
                    R::ValidationPending => s.validation_pending.unwrap_or(0),
                    R::ValidationSuspended => s.validation_suspended.unwrap_or(0),
                    _ => u64::from(
                        !s.validation_state
                            .as_deref()
                            .is_some_and(|v| v.eq_ignore_ascii_case("validated")),
                    ),
                };
                total += n;
                if n > 0 && worst.is_none_or(|(w, _)| n > w) {
                    worst = Some((n, s.table.as_str()));
                }
            }
            InputValue::Known {
                value: Value::Number(total as f64),
                observed_at: at,
                detail: worst.map(|(n, t)| format!("{t}: {n}")),
            }
        }
    }

    /// When the trailing run of readings satisfying `gate` began, as far as the input's
    /// own history shows (metric series carry several datapoints per reading).
    pub(super) fn satisfied_since(&self, gate: &Gate, current_at: Ts) -> Ts {
        let Some(series) = self.history(&gate.input) else {
            return current_at;
        };
        // A gap longer than the freshness bound breaks the run: nothing was known then.
        let fresh = gate.fresh_ms();
        let mut since = current_at;
        for &(at, v) in series.points.iter().rev() {
            if at > since {
                continue;
            }
            if since - at > fresh || !compare(&Value::Number(v), gate.op, &gate.value) {
                break;
            }
            since = at;
        }
        since
    }

    /// The input's own history, where it has one: metric series and the replication lag
    /// figures carry several datapoints per reading.
    fn history(&self, input: &Input) -> Option<&super::Series> {
        match input.canonical() {
            Input::Metric(name) => self.metrics.get(&name),
            Input::Replication(which) => self.replication.series(which),
            _ => None,
        }
    }

    /// Evaluates one gate of one step at the state's current time.
    pub fn gate_status(&self, step: usize, gate_index: usize) -> GateStatus {
        let input = match self
            .plan
            .steps
            .get(step)
            .and_then(|s| s.gates.get(gate_index))
        {
            Some(gate) => self.input_value(&gate.input),
            None => InputValue::Missing("no such gate".into()),
        };
        self.gate_status_of(step, gate_index, input)
    }

    /// [`State::gate_status`] with the gate's input value already computed (the fold computes
    /// the next step's inputs once per event).
    pub(super) fn gate_status_of(
        &self,
        step: usize,
        gate_index: usize,
        input: InputValue,
    ) -> GateStatus {
        let Some(gate) = self
            .plan
            .steps
            .get(step)
            .and_then(|s| s.gates.get(gate_index))
        else {
            return GateStatus {
                state: GateState::Unknown,
                reason: "no such gate".into(),
                value: None,
                observed_at: None,
            };
        };
        let (value, observed_at, detail) = match input {
            InputValue::Missing(why) => {
                let why = match self.source_error_for(&gate.input) {
                    Some(err) => format!("{why}; last error: {err}"),
                    None => why,
                };
                return GateStatus {
                    state: GateState::Unknown,
                    reason: why,
                    value: None,
                    observed_at: None,
                };
            }
            InputValue::Known {
                value,
                observed_at,
                detail,
            } => (value, observed_at, detail),
        };
        let status = |state, reason: String| GateStatus {
            state,
            reason,
            value: Some(value.clone()),
            observed_at: Some(observed_at),
        };
        let age = self.now - observed_at;
        let fresh = gate.fresh_ms();
        if age > fresh {
            let mut reason = format!("stale: {} old (limit {})", fmt_age(age), fmt_age(fresh));
            if let Some(err) = self.source_error_for(&gate.input) {
                reason.push_str(&format!("; last error: {err}"));
            }
            return status(GateState::Unknown, reason);
        }
        if let Some(not_before) = self.readings_not_before(step)
            && observed_at < not_before
        {
            let mut reason = "waiting for a reading taken after the previous step".to_string();
            // A failing source is why no newer reading comes; say so (e.g. API throttling).
            if let Some(err) = self.source_error_for(&gate.input) {
                reason.push_str(&format!("; last error: {err}"));
            }
            return status(GateState::Unknown, reason);
        }
        if !compare(&value, gate.op, &gate.value) {
            let mut reason = format!(
                "{} = {value}, needs {} {}",
                gate.input,
                gate.op.as_str(),
                gate.value
            );
            if let Some(d) = detail {
                reason.push_str(&format!(" ({d})"));
            }
            return status(GateState::Red, reason);
        }
        if gate.sustain_ms > 0 {
            let held = self
                .holds
                .get(&(step, gate_index))
                .map(|since| self.now - since)
                .unwrap_or(0);
            if held < gate.sustain_ms {
                return status(
                    GateState::Red,
                    format!(
                        "{} = {value}, holding {} of {}",
                        gate.input,
                        // Floor, so a window 50 ms short never reads "3.0s of 3.0s".
                        fmt_age(held.max(0) / 100 * 100),
                        fmt_age(gate.sustain_ms)
                    ),
                );
            }
        }
        status(GateState::Green, format!("{} = {value}", gate.input))
    }

    /// All gates of a step.
    pub fn step_gates(&self, step: usize) -> Vec<GateStatus> {
        let n = self
            .plan
            .steps
            .get(step)
            .map(|s| s.gates.len())
            .unwrap_or(0);
        (0..n).map(|g| self.gate_status(step, g)).collect()
    }

    /// The step's overall state: green when every gate is, else the worst, with the first
    /// failing gate's text and reason (as gh-ost names its throttle reason).
    pub fn step_readiness(&self, step: usize) -> (GateState, Option<String>) {
        let Some(s) = self.plan.steps.get(step) else {
            return (GateState::Unknown, Some("no such step".into()));
        };
        for (i, g) in self.step_gates(step).into_iter().enumerate() {
            if g.state != GateState::Green {
                return (g.state, Some(format!("{}: {}", s.gates[i].text, g.reason)));
            }
        }
        (GateState::Green, None)
    }

    /// Every gate of the step that is not green, as "gate: reason".
    pub fn blocking_reasons(&self, step: usize) -> Vec<String> {
        let Some(s) = self.plan.steps.get(step) else {
            return Vec::new();
        };
        self.step_gates(step)
            .into_iter()
            .zip(&s.gates)
            .filter(|(g, _)| g.state != GateState::Green)
            .map(|(g, def)| format!("{}: {}", def.text, g.reason))
            .collect()
    }

    /// Readings for this step's gates must be taken after the previous step finished:
    /// a check before the freeze proves nothing about after it.
    pub fn readings_not_before(&self, step: usize) -> Option<Ts> {
        if step == 0 {
            return None;
        }
        self.steps.get(step - 1).and_then(|s| s.finished_at)
    }

    pub(super) fn source_error_for(&self, input: &Input) -> Option<String> {
        use crate::event::SourceKind as K;
        use ReplicationInput as R;
        let kind = match input.canonical() {
            // Format-1 transcripts carried the lag figures in the metrics source's readings.
            Input::Replication(R::LagS | R::CaptureLagS | R::Backlog) => {
                self.replication.figures_from.unwrap_or(K::Replication)
            }
            Input::TaskStatus
            | Input::Replication(_)
            | Input::TaskFullLoadPct
            | Input::TaskTablesErrored
            | Input::CdcLatencySource
            | Input::CdcLatencyTarget
            | Input::CdcIncomingChanges
            | Input::ValidationFailed
            | Input::ValidationPending
            | Input::ValidationSuspended
            | Input::ValidationUnvalidated
            | Input::ValidationEnabled
            | Input::TaskStopReason => K::Replication,
            Input::Metric(_) => K::Metrics,
            Input::Probe(_) => K::Probe,
            Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked => K::Drift,
            Input::HeartbeatLag => K::Heartbeat,
            Input::DnsValue
            | Input::DnsStatus
            | Input::DnsTtl
            | Input::DnsResolved
            | Input::DnsAuthoritative
            | Input::DnsWeight(_) => K::Dns,
            Input::ReadOnly(s) | Input::Connections(s) | Input::LongestTrx(s) => K::for_side(s),
        };
        let h = self.health.get(&kind)?;
        let (err_at, err) = h.last_error.as_ref()?;
        // Only an error newer than the last success explains a stale reading.
        if h.last_ok.is_none_or(|ok| ok < *err_at) {
            Some(err.clone())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use crate::plan::{Op, Value};

    #[test]
    fn dns_names_compare_with_one_final_dot_and_in_any_case() {
        let t = |s: &str| Value::Text(s.to_string());
        assert!(compare(&t("db.example.com."), Op::Eq, &t("DB.example.com")));
        assert!(compare(&t("db.example.com"), Op::Eq, &t("db.example.com.")));
        assert!(!compare(
            &t("db.example.com.."),
            Op::Eq,
            &t("db.example.com")
        ));
        assert!(compare(
            &t("old.example.com."),
            Op::Ne,
            &t("new.example.com")
        ));
    }
}
