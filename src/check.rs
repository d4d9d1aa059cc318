//! `cutover check PLAN [--json]`: one poll of every source, folded into a fresh `State`, then
//! the gates of the next step — for scripts asking "may the next step go?".
//!
//! Exit code 0 when every gate is green, 1 when any is red or unknown (2, for plan or
//! configuration errors, is the CLI's). A one-shot check has no history, so a sustained gate
//! (`for 30s`) can only be green where the input's own history proves it (CloudWatch series
//! carry several datapoints); otherwise it reports how long it has held, and exits 1.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, Reading, SourceKind, Ts, now_ms};
use crate::plan::{Plan, Value};
use crate::source::{Source, poll_once};
use crate::state::{GateState, State};

/// The answer of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    pub plan: String,
    pub plan_hash: String,
    /// When the check evaluated the gates (ms since the epoch, UTC).
    pub checked_at: Ts,
    /// The step whose gates were evaluated; `None` when no step can run.
    pub step: Option<StepRef>,
    /// Green only when every gate is.
    pub state: GateState,
    /// The first gate that is not green, and why.
    pub reason: Option<String>,
    pub exit_code: i32,
    pub gates: Vec<GateReport>,
    pub readings: Vec<ReadingReport>,
    /// Who the AWS calls were made as (`sts:GetCallerIdentity`), when the plan uses AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<cutover_core::event::AwsIdentity>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRef {
    /// 1-based, as the checklist numbers steps.
    pub number: usize,
    pub id: String,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateReport {
    /// The gate as written in the plan.
    pub gate: String,
    pub input: String,
    pub state: GateState,
    pub reason: String,
    pub value: Option<Value>,
    /// When the value was observed (for a metric: the datapoint's own timestamp).
    pub observed_at: Option<Ts>,
    pub age_ms: Option<i64>,
    /// The freshness bound the gate applies.
    pub fresh_ms: i64,
}

/// One source's answer: a reading, or the error it met.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadingReport {
    pub source: SourceKind,
    pub observed_at: Option<Ts>,
    pub age_ms: Option<i64>,
    pub value: Option<Reading>,
    pub error: Option<String>,
}

impl CheckReport {
    pub fn green(&self) -> bool {
        self.state == GateState::Green
    }
}

/// Polls every source once and evaluates the next step's gates.
pub async fn check(plan: Arc<Plan>, sources: &[Arc<dyn Source>]) -> CheckReport {
    let started = now_ms();
    let events = poll_once(sources).await;
    evaluate(plan, started, &events, now_ms())
}

/// A fresh `State` that has seen one poll's events (started at `started`) and the time `now`:
/// what `check` and `plan show --check` evaluate gates on.
pub fn fold_poll(plan: &Arc<Plan>, started: Ts, events: &[Event], now: Ts) -> State {
    let mut state = State::new(Arc::clone(plan));
    state.apply(&Event::SessionStarted {
        at: started,
        mode: "check".into(),
        operator: "check".into(),
    });
    for ev in events {
        state.apply(ev);
    }
    state.apply(&Event::Tick { at: now });
    state
}

/// The pure part of `check`: folds the events of one poll and reports, at `now`.
pub fn evaluate(plan: Arc<Plan>, started: Ts, events: &[Event], now: Ts) -> CheckReport {
    let state = fold_poll(&plan, started, events, now);
    let mut readings: Vec<ReadingReport> = events
        .iter()
        .filter_map(|ev| reading_report(ev, now))
        .collect();
    readings.sort_by_key(|r| r.source);
    report(&state, readings, now)
}

/// One source's answer in an event (a reading or a failure), its age taken at `now`.
pub fn reading_report(ev: &Event, now: Ts) -> Option<ReadingReport> {
    match ev {
        Event::Observed { reading, .. } => Some(ReadingReport {
            source: reading.source(),
            observed_at: Some(reading.observed_at()),
            age_ms: Some(now - reading.observed_at()),
            value: Some(reading.clone()),
            error: None,
        }),
        Event::SourceFailed { source, error, .. } => Some(ReadingReport {
            source: *source,
            observed_at: None,
            age_ms: None,
            value: None,
            error: Some(error.clone()),
        }),
        _ => None,
    }
}

/// The report on a folded state at `now`: the next step's gates and `readings` (the check's
/// one poll, or the status endpoint's latest reading of each source).
pub fn report(state: &State, readings: Vec<ReadingReport>, now: Ts) -> CheckReport {
    let plan = &state.plan;
    let step = state.next_step();
    let (gates, state_now, reason) = match step {
        Some(i) => {
            let defs = &plan.steps[i].gates;
            let gates: Vec<GateReport> = state
                .step_gates(i)
                .into_iter()
                .zip(defs)
                .map(|(g, def)| GateReport {
                    gate: def.text.clone(),
                    input: def.input.to_string(),
                    state: g.state,
                    reason: g.reason,
                    value: g.value,
                    observed_at: g.observed_at,
                    age_ms: g.observed_at.map(|at| now - at),
                    fresh_ms: def.fresh_ms(),
                })
                .collect();
            let (s, reason) = state.step_readiness(i);
            (gates, s, reason)
        }
        None => (
            Vec::new(),
            GateState::Unknown,
            Some("no step can run now".to_string()),
        ),
    };
    CheckReport {
        plan: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        checked_at: now,
        step: step.map(|i| StepRef {
            number: i + 1,
            id: plan.steps[i].id.clone(),
            title: plan.steps[i].title.clone(),
        }),
        state: state_now,
        reason,
        exit_code: i32::from(state_now != GateState::Green),
        gates,
        readings,
        aws: None,
    }
}

/// The report as pretty JSON, or as text for a terminal.
pub fn render_check(report: &CheckReport, json: bool) -> String {
    if json {
        // Every field is plain data; serialization cannot fail.
        return serde_json::to_string_pretty(report)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize the report: {e}\"}}"));
    }
    let mut out = String::new();
    let verdict = report.state.as_str().to_uppercase();
    match &report.step {
        Some(s) => {
            let _ = writeln!(
                out,
                "plan {} · step {} {} ({}): {verdict}",
                report.plan, s.number, s.id, s.title
            );
        }
        None => {
            let _ = writeln!(out, "plan {}: {verdict}", report.plan);
        }
    }
    let width = report
        .gates
        .iter()
        .map(|g| g.gate.chars().count())
        .max()
        .unwrap_or(0);
    for g in &report.gates {
        let _ = writeln!(
            out,
            "  {:<7}  {:<width$}  {}",
            g.state.as_str(),
            g.gate,
            g.reason
        );
    }
    if let (true, Some(r)) = (report.gates.is_empty(), &report.reason) {
        let _ = writeln!(out, "  {r}");
    }
    if let Some(aws) = &report.aws {
        let _ = writeln!(
            out,
            "aws: account {} as {} (credentials: {})",
            aws.account, aws.arn, aws.credentials
        );
    }
    let _ = writeln!(out, "readings:");
    for r in &report.readings {
        let what = match (&r.value, &r.error) {
            (_, Some(e)) => format!("ERROR: {e}"),
            (Some(v), None) => describe_reading(v, report.checked_at),
            (None, None) => "nothing".into(),
        };
        let age = r
            .age_ms
            .map(|a| format!("  ({} ago)", age(a)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:<11}  {what}{age}", r.source.as_str());
    }
    let _ = write!(out, "exit {}", report.exit_code);
    out
}

fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s}s")
    } else {
        format!("{}m", s / 60)
    }
}

fn utc(ms: Ts) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// One line for a replication reading: status, lag figures, what is behind, tables.
fn describe_replication(r: &cutover_core::event::ReplicationReading, now: Ts) -> String {
    let mut s = format!("{} {} {}", r.engine.as_str(), r.name, r.status_text);
    if let Some(why) = &r.stop_reason {
        let _ = write!(s, " ({why})");
    }
    for (label, samples) in [
        ("lag", &r.lag_s),
        ("capture lag", &r.capture_lag_s),
        ("backlog", &r.backlog),
    ] {
        if let Some(&(at, v)) = samples.last() {
            let _ = write!(
                s,
                ", {label} {} at {} ({} old)",
                Value::Number(v),
                utc(at),
                age(now - at)
            );
        }
    }
    if let Some(n) = r.behind_transactions {
        let _ = write!(s, ", {n} transactions behind");
    }
    if let Some(n) = r.behind_bytes {
        let _ = write!(s, ", {n} bytes behind");
    }
    if let Some(p) = r.full_load_pct {
        let _ = write!(s, ", full load {p:.0}%");
    }
    if let Some(n) = r.tables_errored.filter(|n| *n > 0) {
        let _ = write!(s, ", {n} tables errored");
    }
    if let Some(pg) = &r.logical {
        if let (Some(src), Some(tgt)) = (&r.source_position, &r.target_position) {
            let _ = write!(s, " (LSN {tgt} of {src})");
        }
        let slot = match pg.slot_active {
            Some(true) => "active",
            Some(false) => "inactive",
            None => "missing",
        };
        let _ = write!(s, ", slot {} {slot}", pg.slot);
        if let Some(tables) = &r.tables {
            let ready = tables
                .iter()
                .filter(|t| t.table_state.as_deref() == Some("ready"))
                .count();
            let _ = write!(s, ", {ready} of {} tables ready", tables.len());
        }
        if let Some(a) = pg.apply_errors {
            let _ = write!(s, ", {a} apply errors");
        }
        match (r.sequences_behind(), &r.sequences_error) {
            (_, Some(err)) => {
                let _ = write!(s, "; sequences unread: {err}");
            }
            (Some(n), None) => {
                let _ = write!(s, ", {n} sequences behind");
            }
            (None, None) => {}
        }
    } else if let Some(tables) = &r.tables {
        let failed: u64 = tables.iter().filter_map(|t| t.validation_failed).sum();
        let _ = write!(
            s,
            ", {} tables, {failed} rows failing validation",
            tables.len()
        );
    }
    if let Some(err) = &r.figures_error {
        let _ = write!(s, "; figures missing: {err}");
    }
    s
}

fn describe_reading(r: &Reading, now: Ts) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
    match r {
        Reading::Probe(p) => match (&p.value, &p.error) {
            (_, Some(e)) => format!("probe {}: {e}", p.name),
            (Some(v), None) => format!("probe {} = {}", p.name, v),
            (None, None) => format!("probe {}: no value", p.name),
        },
        Reading::Replication(r) => describe_replication(r, now),
        Reading::Task(t) => {
            let mut s = format!("task {} {}", t.task, t.status);
            if let Some(p) = t.full_load_pct {
                let _ = write!(s, ", full load {p:.0}%");
            }
            if let Some(n) = t.tables_errored.filter(|n| *n > 0) {
                let _ = write!(s, ", {n} tables errored");
            }
            if let Some(why) = &t.stop_reason {
                let _ = write!(s, " ({why})");
            }
            s
        }
        Reading::TableStats { tables, .. } => {
            let failed: u64 = tables.iter().filter_map(|t| t.validation_failed).sum();
            let validated = tables
                .iter()
                .filter(|t| {
                    t.validation_state
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case("validated"))
                })
                .count();
            format!(
                "{} tables, {validated} validated, {failed} rows failing validation",
                tables.len()
            )
        }
        Reading::Metrics { series, .. } => {
            let parts: Vec<String> = series
                .iter()
                .map(|s| match s.points.last() {
                    Some(&(at, v)) => format!(
                        "{} {}{} at {} ({} old)",
                        s.name,
                        Value::Number(v),
                        s.unit
                            .as_deref()
                            .map(|u| format!(" {u}"))
                            .unwrap_or_default(),
                        utc(at),
                        age(now - at)
                    ),
                    None => format!("{} no datapoints", s.name),
                })
                .collect();
            parts.join("; ")
        }
        Reading::Dns(d) => {
            let mut s = format!(
                "{} {} -> {} (TTL {})",
                d.name,
                d.record_type,
                opt(d.value.clone()),
                opt(d.ttl.map(|t| t.to_string()))
            );
            if let Some(c) = &d.change_status {
                let _ = write!(s, ", change {c}");
            }
            if let Some(r) = &d.resolved {
                let _ = write!(s, ", resolves to {r}");
            }
            s
        }
        Reading::Drift(d) => format!(
            "{}: source {} rows, target {}, checksum {}",
            d.table,
            opt(d.source_rows.map(|n| n.to_string())),
            opt(d.target_rows.map(|n| n.to_string())),
            d.checksum.as_str()
        ),
        Reading::Heartbeat { lag_s, .. } => format!("heartbeat lag {lag_s:.1}s"),
        Reading::TaskLog(l) => format!("{} new line(s) of {}", l.lines.len(), l.stream),
        Reading::Database(db) => format!(
            "{} {} read_only={}",
            db.side.as_str(),
            opt(db.server.clone()),
            opt(db.read_only.map(|b| b.to_string()))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DnsReading, MetricSeries, TaskReading};

    const PLAN: &str = r#"
name = "check-test"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "dms"
task = "shop-cdc"
[dns]
name = "db.shop.example.com."
source = "old.example.com."
target = "new.example.com."
[[step]]
id = "preflight"
gates = [
  "task.status == running",
  "cdc.latency_target <= 1 for 2m",
  "dns.value == $dns.source",
]
confirm = "ready"
"#;

    fn plan() -> Arc<Plan> {
        Arc::new(crate::plan::parse("check-test.toml", PLAN).expect("test plan parses"))
    }

    fn task(at: Ts, status: &str) -> Event {
        Event::Observed {
            at,
            reading: Reading::Task(TaskReading {
                observed_at: at,
                task: "shop-cdc".into(),
                status: status.into(),
                stop_reason: None,
                full_load_pct: Some(100.0),
                tables_loaded: Some(3),
                tables_loading: Some(0),
                tables_queued: Some(0),
                tables_errored: Some(0),
            }),
        }
    }

    fn metrics(at: Ts, points: Vec<(Ts, f64)>) -> Event {
        Event::Observed {
            at,
            reading: Reading::Metrics {
                observed_at: at,
                series: vec![MetricSeries {
                    name: "CDCLatencyTarget".into(),
                    unit: Some("s".into()),
                    points,
                }],
            },
        }
    }

    fn dns(at: Ts, value: &str) -> Event {
        Event::Observed {
            at,
            reading: Reading::Dns(Box::new(DnsReading {
                observed_at: at,
                name: "db.shop.example.com.".into(),
                record_type: "CNAME".into(),
                value: Some(value.into()),
                ttl: Some(60),
                change_status: None,
                change_id: None,
                resolved: None,
                sets: Vec::new(),
                authoritative: None,
                authoritative_error: None,
            })),
        }
    }

    const NOW: Ts = 1_800_000_000_000;

    #[test]
    fn green_when_every_gate_holds_on_fresh_readings() {
        // Three minutes of datapoints at 0 prove "for 2m" in one poll.
        let points = vec![
            (NOW - 180_000, 0.0),
            (NOW - 120_000, 0.0),
            (NOW - 60_000, 0.0),
        ];
        let events = [
            task(NOW, "running"),
            metrics(NOW, points),
            dns(NOW, "old.example.com."),
        ];
        let r = evaluate(plan(), NOW - 1000, &events, NOW + 500);
        assert_eq!(r.state, GateState::Green, "{r:#?}");
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.step.as_ref().map(|s| s.id.as_str()), Some("preflight"));
        assert_eq!(
            r.gates[1].observed_at,
            Some(NOW - 60_000),
            "the datapoint's own time"
        );
        let text = render_check(&r, false);
        assert!(text.contains("GREEN"), "{text}");
        assert!(text.ends_with("exit 0"), "{text}");
    }

    #[test]
    fn a_failed_source_makes_its_gates_unknown_and_exit_one() {
        let events = [
            task(NOW, "running"),
            Event::SourceFailed {
                at: NOW,
                source: SourceKind::Metrics,
                error: "CloudWatch GetMetricData: throttled by AWS".into(),
            },
            dns(NOW, "old.example.com."),
        ];
        let r = evaluate(plan(), NOW - 1000, &events, NOW);
        assert_eq!(r.state, GateState::Unknown);
        assert_eq!(r.exit_code, 1);
        assert_eq!(r.gates[1].state, GateState::Unknown);
        assert!(
            r.gates[1].reason.contains("throttled"),
            "{}",
            r.gates[1].reason
        );
        let failed = r
            .readings
            .iter()
            .find(|r| r.error.is_some())
            .expect("the error is listed");
        assert_eq!(failed.source, SourceKind::Metrics);
        let json: serde_json::Value =
            serde_json::from_str(&render_check(&r, true)).expect("valid JSON");
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["gates"][1]["state"], "unknown");
        assert_eq!(json["readings"][1]["source"], "metrics");
    }

    #[test]
    fn red_names_the_value_and_the_condition() {
        let events = [task(NOW, "stopped"), dns(NOW, "old.example.com.")];
        let r = evaluate(plan(), NOW - 1000, &events, NOW);
        assert_eq!(r.state, GateState::Red);
        assert!(
            r.reason
                .as_deref()
                .unwrap_or("")
                .contains("task.status = stopped"),
            "{r:?}"
        );
        assert_eq!(r.exit_code, 1);
    }
}
