//! Property: whatever the events, the fold never starts a forward action it should not.
//!
//! Random sequences of readings (database, DNS, drift, heartbeat), ticks, source failures,
//! confirmations of any step (next, not next, unknown), approvals by any peer, presence,
//! action results, rollbacks and timeouts are folded through `State::apply`. Every
//! `Effect::RunAction { direction: Do }` must be for the next step, with every gate green
//! and its approvals in hand, judged twice: by the state's own evaluation just before the
//! confirming event, and by an evaluator in this module that shares nothing with the fold
//! but the plan (its readings, freshness, sustain windows and approvals are its own).
//!
//! The action runner is modelled faithfully: it finishes only the action it was asked to
//! run, one at a time (`ActionStarted` right away, `ActionFinished` when the case says).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use super::*;
use crate::event::*;
use crate::plan::{self, Input, Op, Value};

/// Five steps over only database, DNS, drift and heartbeat inputs, with two sustained gates
/// and a step that needs two approvals.
const PLAN: &str = r#"
name = "props"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "rehearsal"
task = "t"
[dns]
name = "db.example."
type = "CNAME"
ttl = 3
source = "src.example."
target = "tgt.example."
[rehearsal]
tables = ["a", "b"]

[[step]]
id = "warm"
gates = ["lag.heartbeat <= 1 for 3s fresh 5s", "source.read_only == false fresh 5s"]
confirm = "go"

[[step]]
id = "freeze"
gates = ["source.read_only == false fresh 5s", "dns.value == $dns.source"]
action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }
undo = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = OFF" }
confirm = "freeze"
approvals = 2

[[step]]
id = "drain"
gates = [
  "source.read_only == true fresh 5s",
  "lag.heartbeat <= 1 fresh 5s",
  "drift.rows == 0 fresh 5s",
  "drift.mismatched == 0 fresh 5s",
  "drift.unchecked == 0 fresh 5s",
]
confirm = "drained"

[[step]]
id = "flip"
gates = ["dns.value == $dns.source", "target.read_only == true for 2s fresh 5s"]
action = { kind = "dns", to = "target", wait = true }
undo = { kind = "dns", to = "source", wait = true }
confirm = "flip"

[[step]]
id = "open"
gates = ["dns.value == $dns.target", "dns.status == INSYNC", "target.read_only == true fresh 5s"]
action = { kind = "sql", on = "target", statement = "SET GLOBAL read_only = OFF" }
undo = { kind = "sql", on = "target", statement = "SET GLOBAL read_only = ON" }
confirm = "open"
"#;

const T0: Ts = 1_700_000_000_000;
const PEERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const OPERATOR: &str = "op";

fn small_plan() -> Arc<Plan> {
    Arc::new(plan::parse("props.toml", PLAN).expect("the property plan is valid"))
}

/// Which step an event names: one of the plan's, whichever is next when it is folded, or
/// an id the plan does not have.
#[derive(Clone, Debug)]
enum StepSel {
    Index(usize),
    Next,
    Unknown,
}

#[derive(Clone, Debug)]
enum Act {
    Tick,
    /// Fresh readings satisfying every gate of the step that is next when it is folded.
    Satisfy,
    Heartbeat {
        lag_s: f64,
        delay: Ts,
    },
    Database {
        side: Side,
        read_only: Option<bool>,
        delay: Ts,
    },
    Dns {
        value: Option<&'static str>,
        insync: bool,
        delay: Ts,
    },
    Drift {
        table: &'static str,
        diff: u64,
        checksum: ChecksumState,
        delay: Ts,
    },
    SourceFailed(SourceKind),
    ConfirmRequested(StepSel),
    Confirmed(StepSel),
    Approved(StepSel, usize),
    PeerJoined(usize),
    PeerLeft(usize),
    /// The runner finishes the action it is running, if any.
    Finish {
        ok: bool,
    },
    RollbackConfirmed,
    TimedOut(StepSel),
}

/// One generated event: what happens, and how long after the previous one.
#[derive(Clone, Debug)]
struct Beat {
    dt: Ts,
    op: Act,
}

fn step_sel(n: usize) -> impl Strategy<Value = StepSel> {
    prop_oneof![
        4 => Just(StepSel::Next),
        3 => (0..n).prop_map(StepSel::Index),
        1 => Just(StepSel::Unknown),
    ]
}

fn delay() -> impl Strategy<Value = Ts> {
    prop_oneof![3 => 0..800i64, 1 => 0..7_000i64]
}

fn op(n: usize) -> impl Strategy<Value = Act> {
    let side = prop_oneof![Just(Side::Source), Just(Side::Target)];
    let checksum = prop_oneof![
        6 => Just(ChecksumState::Equal),
        1 => Just(ChecksumState::Mismatch),
        1 => Just(ChecksumState::Pending),
        1 => Just(ChecksumState::Skipped),
    ];
    prop_oneof![
        4 => Just(Act::Tick),
        16 => Just(Act::Satisfy),
        3 => (prop_oneof![3 => Just(0.3), 1 => Just(0.9), 1 => Just(4.0)], delay())
            .prop_map(|(lag_s, delay)| Act::Heartbeat { lag_s, delay }),
        3 => (side, prop_oneof![Just(Some(true)), Just(Some(false)), Just(None)], delay())
            .prop_map(|(side, read_only, delay)| Act::Database { side, read_only, delay }),
        3 => (
            prop_oneof![
                2 => Just(Some("src.example.")),
                2 => Just(Some("tgt.example.")),
                1 => Just(Some("elsewhere.example.")),
                1 => Just(None),
            ],
            any::<bool>(),
            delay()
        )
            .prop_map(|(value, insync, delay)| Act::Dns { value, insync, delay }),
        3 => (
            prop_oneof![Just("a"), Just("b"), Just("c")],
            prop_oneof![4 => Just(0u64), 1 => 1..5u64],
            checksum,
            delay()
        )
            .prop_map(|(table, diff, checksum, delay)| Act::Drift { table, diff, checksum, delay }),
        1 => prop_oneof![
            Just(SourceKind::Heartbeat),
            Just(SourceKind::Dns),
            Just(SourceKind::Drift),
            Just(SourceKind::SourceDb),
            Just(SourceKind::TargetDb),
        ]
        .prop_map(Act::SourceFailed),
        2 => step_sel(n).prop_map(Act::ConfirmRequested),
        12 => step_sel(n).prop_map(Act::Confirmed),
        8 => (step_sel(n), 0..PEERS.len() + 1).prop_map(|(s, p)| Act::Approved(s, p)),
        4 => (0..PEERS.len()).prop_map(Act::PeerJoined),
        1 => (0..PEERS.len()).prop_map(Act::PeerLeft),
        12 => prop_oneof![6 => Just(true), 1 => Just(false)].prop_map(|ok| Act::Finish { ok }),
        1 => Just(Act::RollbackConfirmed),
        1 => step_sel(n).prop_map(Act::TimedOut),
    ]
}

fn case(n: usize, len: usize) -> impl Strategy<Value = Vec<Beat>> {
    let dt = prop_oneof![8 => 0..1_500i64, 1 => 1_500..8_000i64];
    proptest::collection::vec(
        (dt, op(n)).prop_map(|(dt, op)| Beat { dt, op }),
        len / 4..len,
    )
}

// ---------------------------------------------------------------------------------------
// The independent evaluator: its own record of readings, approvals and step results.

/// One input's value and when the source saw it.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    /// When the cockpit had this as the input's current value (the event's time).
    at: Ts,
    value: Option<(Value, Ts)>,
}

#[derive(Default)]
struct Model {
    heartbeat: Option<(Ts, f64)>,
    db: BTreeMap<Side, DatabaseReading>,
    dns: Option<DnsReading>,
    drift: BTreeMap<String, TableDrift>,
    /// Each gate input's value after every event, oldest first.
    history: BTreeMap<String, Vec<Sample>>,
    approvers: BTreeMap<usize, BTreeSet<String>>,
    peers: BTreeSet<String>,
    /// The action the runner is running.
    in_flight: Option<(usize, Direction)>,
    /// Steps whose forward action last ended well (and was not undone or rolled back).
    done: BTreeSet<usize>,
    /// When each step's forward action last ended (ok or not).
    finished_at: BTreeMap<usize, Ts>,
}

fn same(a: &Value, op: Op, b: &Value) -> bool {
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    let text_or_bool = !matches!(a, Value::Number(_));
    match op {
        Op::Eq => ord.is_eq(),
        Op::Ne => ord.is_ne(),
        _ if text_or_bool => false,
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Ge => ord.is_ge(),
        Op::Gt => ord.is_gt(),
    }
}

impl Model {
    fn observe(&mut self, reading: &Reading) {
        match reading {
            Reading::Heartbeat { observed_at, lag_s } => {
                self.heartbeat = Some((*observed_at, *lag_s));
            }
            Reading::Database(d) => {
                self.db.insert(d.side, d.clone());
            }
            Reading::Dns(d) => self.dns = Some(d.as_ref().clone()),
            Reading::Drift(d) => {
                self.drift.insert(d.table.clone(), d.clone());
            }
            _ => {}
        }
    }

    /// The input's value now, from this model's own readings.
    fn value(&self, plan: &Plan, input: &Input) -> Option<(Value, Ts)> {
        match input {
            Input::HeartbeatLag => self.heartbeat.map(|(at, lag)| (Value::Number(lag), at)),
            Input::ReadOnly(side) => {
                let d = self.db.get(side)?;
                Some((Value::Bool(d.read_only?), d.observed_at))
            }
            Input::DnsValue => {
                let d = self.dns.as_ref()?;
                Some((Value::Text(d.value.clone()?), d.observed_at))
            }
            Input::DnsStatus => {
                let d = self.dns.as_ref()?;
                Some((Value::Text(d.change_status.clone()?), d.observed_at))
            }
            Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked => {
                let mut total = 0u64;
                let mut oldest = Ts::MAX;
                for table in &plan.rehearsal.tables {
                    let d = self.drift.get(table)?;
                    oldest = oldest.min(d.observed_at);
                    total += match input {
                        Input::DriftRows => d.source_rows?.abs_diff(d.target_rows?),
                        Input::DriftMismatched => u64::from(d.checksum == ChecksumState::Mismatch),
                        _ => u64::from(matches!(
                            d.checksum,
                            ChecksumState::Pending | ChecksumState::Skipped
                        )),
                    };
                }
                Some((Value::Number(total as f64), oldest))
            }
            // This property sends no task, statistics or metric readings.
            _ => None,
        }
    }

    /// Records every gate input's value after an event at `at`.
    fn sample(&mut self, plan: &Plan, at: Ts) {
        for step in &plan.steps {
            for g in &step.gates {
                let value = self.value(plan, &g.input);
                let h = self.history.entry(g.input.to_string()).or_default();
                if h.last().is_none_or(|s| s.value != value) {
                    h.push(Sample { at, value });
                }
            }
        }
    }

    /// Why gate `gi` of `step` is not green at `now`, judged on this model's own history:
    /// every instant of the sustain window (or just `now`) must have had a fresh value,
    /// taken after the previous step ended, that satisfies the gate.
    fn gate_blocker(&self, plan: &Plan, step: usize, gi: usize, now: Ts) -> Option<String> {
        let g = &plan.steps[step].gates[gi];
        let not_before = step
            .checked_sub(1)
            .and_then(|p| self.finished_at.get(&p).copied());
        let history = self.history.get(&g.input.to_string());
        let samples = history.map(Vec::as_slice).unwrap_or_default();
        let fresh = g.fresh_ms();
        // Walk back from the current value while each one held until the next replaced it.
        let mut until = now;
        let mut since = None;
        for s in samples.iter().rev() {
            let Some((v, observed_at)) = &s.value else {
                break;
            };
            let ok = until - observed_at <= fresh
                && not_before.is_none_or(|nb| *observed_at >= nb)
                && same(v, g.op, &g.value);
            if !ok {
                break;
            }
            since = Some(*observed_at);
            if now - observed_at >= g.sustain_ms {
                break;
            }
            until = s.at;
        }
        let Some(since) = since else {
            return Some(format!("`{}` not satisfied on a fresh reading", g.text));
        };
        let since = not_before.map_or(since, |nb| since.max(nb));
        (now - since < g.sustain_ms).then(|| {
            format!(
                "`{}` held {} ms of {} ms on fresh readings",
                g.text,
                now - since,
                g.sustain_ms
            )
        })
    }
}

// ---------------------------------------------------------------------------------------
// The fold under the property.

fn dns(observed_at: Ts, value: Option<String>, insync: bool) -> Reading {
    Reading::Dns(Box::new(DnsReading {
        observed_at,
        name: "db.example.".into(),
        record_type: "CNAME".into(),
        resolved: value.clone(),
        sets: Vec::new(),
        authoritative: None,
        authoritative_error: None,
        value,
        ttl: Some(3),
        change_status: Some(if insync { "INSYNC" } else { "PENDING" }.into()),
        change_id: None,
    }))
}

fn drift(observed_at: Ts, table: &str, diff: u64, checksum: ChecksumState) -> Reading {
    Reading::Drift(TableDrift {
        observed_at,
        table: table.into(),
        source_rows: Some(100 + diff),
        target_rows: Some(100),
        checksum,
        chunks_done: Some(1),
        chunks_total: Some(1),
        differing_keys: Vec::new(),
        note: None,
    })
}

struct Run {
    state: State,
    model: Model,
    now: Ts,
    /// Every event folded, for the failure message.
    events: Vec<Event>,
}

impl Run {
    fn new(plan: Arc<Plan>) -> Run {
        let mut run = Run {
            state: State::new(plan),
            model: Model::default(),
            now: T0,
            events: Vec::new(),
        };
        let started = Event::SessionStarted {
            at: T0,
            mode: "rehearsal".into(),
            operator: OPERATOR.into(),
        };
        run.fold(started)
            .expect("starting a session starts nothing");
        run
    }

    fn id(&self, sel: &StepSel) -> String {
        let plan = &self.state.plan;
        match sel {
            StepSel::Index(i) => plan.steps[*i].id.clone(),
            StepSel::Next => match self.state.next_step() {
                Some(i) => plan.steps[i].id.clone(),
                None => plan.steps[0].id.clone(),
            },
            StepSel::Unknown => "no-such-step".into(),
        }
    }

    /// Readings at `at` that satisfy every gate of the next step (or of the first).
    fn satisfying(&self, at: Ts) -> Vec<Event> {
        let plan = &self.state.plan;
        let step = &plan.steps[self.state.next_step().unwrap_or(0)];
        let mut readings = Vec::new();
        let dns_value = step.gates.iter().find_map(|g| match (&g.input, &g.value) {
            (Input::DnsValue, Value::Text(v)) => Some(v.clone()),
            _ => None,
        });
        for g in &step.gates {
            match (&g.input, &g.value) {
                (Input::HeartbeatLag, _) => readings.push(Reading::Heartbeat {
                    observed_at: at,
                    lag_s: 0.3,
                }),
                (Input::ReadOnly(side), Value::Bool(read_only)) => {
                    readings.push(Reading::Database(DatabaseReading {
                        observed_at: at,
                        side: *side,
                        server: None,
                        read_only: Some(*read_only),
                        connections: Some(3),
                        longest_trx_s: Some(0.0),
                        writes_per_s: None,
                    }));
                }
                (Input::DnsValue | Input::DnsStatus, _) => readings.push(dns(
                    at,
                    Some(dns_value.clone().unwrap_or_else(|| "src.example.".into())),
                    true,
                )),
                (Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked, _) => {
                    for table in &plan.rehearsal.tables {
                        readings.push(drift(at, table, 0, ChecksumState::Equal));
                    }
                }
                _ => {}
            }
        }
        readings.dedup();
        readings
            .into_iter()
            .map(|reading| Event::Observed { at, reading })
            .collect()
    }

    /// The events a generated step stands for: none when the runner has nothing to finish,
    /// several for `Satisfy`.
    fn events(&mut self, step: &Beat) -> Vec<Event> {
        self.now += step.dt;
        if let Act::Satisfy = step.op {
            return self.satisfying(self.now);
        }
        self.event(step).into_iter().collect()
    }

    fn event(&self, step: &Beat) -> Option<Event> {
        let at = self.now;
        let observed = |reading: Reading| Event::Observed { at, reading };
        Some(match &step.op {
            Act::Tick | Act::Satisfy => Event::Tick { at },
            Act::Heartbeat { lag_s, delay } => observed(Reading::Heartbeat {
                observed_at: at - delay,
                lag_s: *lag_s,
            }),
            Act::Database {
                side,
                read_only,
                delay,
            } => observed(Reading::Database(DatabaseReading {
                observed_at: at - delay,
                side: *side,
                server: None,
                read_only: *read_only,
                connections: Some(3),
                longest_trx_s: Some(0.0),
                writes_per_s: None,
            })),
            Act::Dns {
                value,
                insync,
                delay,
            } => observed(Reading::Dns(Box::new(DnsReading {
                observed_at: at - delay,
                name: "db.example.".into(),
                record_type: "CNAME".into(),
                value: value.map(String::from),
                ttl: Some(3),
                change_status: Some(if *insync { "INSYNC" } else { "PENDING" }.into()),
                change_id: None,
                resolved: value.map(String::from),
                sets: Vec::new(),
                authoritative: None,
                authoritative_error: None,
            }))),
            Act::Drift {
                table,
                diff,
                checksum,
                delay,
            } => observed(Reading::Drift(TableDrift {
                observed_at: at - delay,
                table: (*table).into(),
                source_rows: Some(100 + diff),
                target_rows: Some(100),
                checksum: *checksum,
                chunks_done: Some(1),
                chunks_total: Some(1),
                differing_keys: Vec::new(),
                note: None,
            })),
            Act::SourceFailed(source) => Event::SourceFailed {
                at,
                source: *source,
                error: "connection refused".into(),
            },
            Act::ConfirmRequested(sel) => Event::StepConfirmRequested {
                at,
                step: self.id(sel),
                by: OPERATOR.into(),
            },
            Act::Confirmed(sel) => Event::StepConfirmed {
                at,
                step: self.id(sel),
                by: OPERATOR.into(),
            },
            Act::Approved(sel, peer) => Event::StepApproved {
                at,
                step: self.id(sel),
                by: PEERS.get(*peer).copied().unwrap_or(OPERATOR).into(),
                seen: None,
            },
            Act::PeerJoined(p) => Event::PeerJoined {
                at,
                peer: PEERS[*p].into(),
                role: None,
            },
            Act::PeerLeft(p) => Event::PeerLeft {
                at,
                peer: PEERS[*p].into(),
            },
            Act::Finish { ok } => {
                let (i, direction) = self.model.in_flight?;
                Event::ActionFinished {
                    at,
                    step: self.state.plan.steps[i].id.clone(),
                    direction,
                    ok: *ok,
                    message: if *ok { "ok" } else { "boom" }.into(),
                }
            }
            Act::RollbackConfirmed => Event::RollbackConfirmed {
                at,
                by: OPERATOR.into(),
                reason: "property".into(),
            },
            Act::TimedOut(sel) => Event::StepTimedOut {
                at,
                step: self.id(sel),
                reason: "gates not green".into(),
            },
        })
    }

    /// Why a forward run of `step` on `ev` breaks the rule, judged on this model (the fold's
    /// state is taken as it was before `ev`).
    fn model_blocker(&self, step: usize, ev: &Event) -> Option<String> {
        let plan = &self.state.plan;
        if !matches!(ev, Event::StepConfirmed { step: id, .. } if *id == plan.steps[step].id) {
            return Some(format!("started by {}, not by its confirmation", ev.name()));
        }
        if let Some((i, d)) = self.model.in_flight {
            return Some(format!("step {i} ({d:?}) is still running"));
        }
        if let Some(j) = (0..step).find(|j| !self.model.done.contains(j)) {
            return Some(format!("step {j} before it has not completed"));
        }
        let now = self.now.max(ev.at());
        for gi in 0..plan.steps[step].gates.len() {
            if let Some(why) = self.model.gate_blocker(plan, step, gi, now) {
                return Some(why);
            }
        }
        let needed = plan.steps[step].approvals as usize;
        let have = self.model.approvers.get(&step).map_or(0, BTreeSet::len);
        if have < needed {
            return Some(format!("{have} of {needed} approvals"));
        }
        if self.model.peers.len() < needed {
            return Some(format!(
                "{} peers present for {needed} approvals",
                self.model.peers.len()
            ));
        }
        None
    }

    /// Why the fold's own view, just before `ev`, forbids a forward run of `step`.
    fn state_blocker(&self, step: usize, ev: &Event) -> Option<String> {
        let mut before = self.state.clone();
        before.now = before.now.max(ev.at());
        if before.next_step() != Some(step) {
            return Some(format!("next step is {:?}", before.next_step()));
        }
        if let Some(r) = before.running_step() {
            return Some(format!("step {r} is running"));
        }
        if let (state, Some(why)) = before.step_readiness(step)
            && state != GateState::Green
        {
            return Some(format!("gates {}: {why}", state.as_str()));
        }
        let needed = before.plan.steps[step].approvals as usize;
        if before.steps[step].approvals.len() < needed || before.peers.len() < needed {
            return Some("approvals missing".into());
        }
        None
    }

    /// Folds one event, checking its effects; `Err` names the broken rule.
    fn fold(&mut self, ev: Event) -> Result<(), String> {
        let plan = Arc::clone(&self.state.plan);
        // The runner's side: the action it reports on is no longer running.
        if let Event::ActionFinished {
            step,
            direction,
            ok,
            at,
            ..
        } = &ev
            && let Some(i) = plan.step_index(step)
        {
            self.model.in_flight = None;
            match direction {
                Direction::Do => {
                    self.model.finished_at.insert(i, *at);
                    if *ok {
                        self.model.done.insert(i);
                    }
                }
                Direction::Undo => {
                    self.model.done.remove(&i);
                }
            }
        }
        let mut verdicts = Vec::new();
        if let Event::StepConfirmed { step, .. } = &ev
            && let Some(i) = plan.step_index(step)
        {
            verdicts = vec![(i, self.state_blocker(i, &ev), self.model_blocker(i, &ev))];
        }
        let effects = self.state.apply(&ev);
        self.events.push(ev.clone());
        match &ev {
            Event::Observed { reading, .. } => self.model.observe(reading),
            Event::StepApproved { step, by, .. } => {
                if let Some(i) = plan.step_index(step) {
                    self.model
                        .approvers
                        .entry(i)
                        .or_default()
                        .insert(by.clone());
                }
            }
            Event::PeerJoined { peer, .. } => {
                self.model.peers.insert(peer.clone());
            }
            Event::PeerLeft { peer, .. } => {
                self.model.peers.remove(peer);
            }
            // A rollback reverts every step, whether or not it has an undo.
            Event::RollbackConfirmed { .. } => self.model.done.clear(),
            _ => {}
        }
        self.model.sample(&plan, ev.at());
        if effects.len() > 1 {
            return Err(format!(
                "{} effects from one event: {effects:?}",
                effects.len()
            ));
        }
        let mut records = Vec::new();
        for effect in effects {
            let (step, direction) = match effect {
                Effect::RunAction { step, direction } => (step, direction),
                // The runtime records a guard's decision and folds it, as here.
                Effect::Record(ev) => {
                    records.push(ev);
                    continue;
                }
            };
            if let Some((i, d)) = self.model.in_flight {
                return Err(format!(
                    "{direction:?} of step {step} asked for while step {i} ({d:?}) runs"
                ));
            }
            if direction == Direction::Do {
                let (state_why, model_why) = match verdicts.iter().find(|v| v.0 == step) {
                    Some((_, s, m)) => (s.clone(), m.clone()),
                    None => (None, self.model_blocker(step, &ev)),
                };
                if let Some(why) = state_why.or(model_why) {
                    return Err(format!(
                        "RunAction Do for step {step} ({}) on {}: {why}",
                        plan.steps[step].id,
                        ev.name()
                    ));
                }
            }
            self.model.in_flight = Some((step, direction));
            let started = Event::ActionStarted {
                at: self.now,
                step: plan.steps[step].id.clone(),
                direction,
                description: "property".into(),
            };
            self.state.apply(&started);
            self.events.push(started);
        }
        for ev in records {
            self.fold(ev)?;
        }
        Ok(())
    }
}

/// Folds a generated case; `Err` carries the broken rule and the events that led there.
fn check(plan: Arc<Plan>, steps: &[Beat]) -> Result<(), String> {
    let mut run = Run::new(plan);
    for step in steps {
        for ev in run.events(step) {
            let Err(why) = run.fold(ev) else { continue };
            let trail: Vec<String> = run
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap_or_default())
                .collect();
            return Err(format!("{why}\nevents:\n{}", trail.join("\n")));
        }
    }
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn no_forward_action_without_its_turn_gates_and_approvals(steps in case(5, 160)) {
        if let Err(why) = check(small_plan(), &steps) {
            prop_assert!(false, "{}", why);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// The shipped plan's first step waits on the replication task, which these events never
    /// report: nothing may start, whatever else happens.
    #[test]
    fn rehearsal_plan_starts_nothing_without_task_readings(steps in case(7, 120)) {
        let plan = Arc::new(plan::rehearsal_plan());
        if let Err(why) = check(plan, &steps) {
            prop_assert!(false, "{}", why);
        }
    }
}

/// Found by the property (seed in `proptest-regressions/state/props.txt`): a sustain window
/// counted a stretch during which its reading was stale, because no event fell inside it.
/// The heartbeat seen at T0 goes stale at T0+5s; the next one comes at T0+60s. Nothing was
/// known for 55 s, yet the hold begun at T0 survived and `for 3s` read as held for 60 s.
/// Had a `Tick` landed in the gap the hold would have been dropped: the verdict depended on
/// how events happened to sample time, not on the readings.
#[test]
fn a_sustain_window_does_not_span_a_stale_gap() {
    let mut run = Run::new(small_plan());
    let heartbeat = |at| Event::Observed {
        at,
        reading: Reading::Heartbeat {
            observed_at: at,
            lag_s: 0.3,
        },
    };
    let later = T0 + 60_000;
    let events = [
        heartbeat(T0),
        heartbeat(later),
        Event::Observed {
            at: later,
            reading: Reading::Database(DatabaseReading {
                observed_at: later,
                side: Side::Source,
                server: None,
                read_only: Some(false),
                connections: None,
                longest_trx_s: None,
                writes_per_s: None,
            }),
        },
    ];
    for ev in events {
        run.fold(ev).expect("readings start nothing");
    }
    let gate = run.state.gate_status(0, 0);
    assert_eq!(gate.state, GateState::Red, "{}", gate.reason);
    assert_eq!(gate.reason, "lag.heartbeat = 0.30, holding 0.0s of 3.0s");
    let confirmed = run.state.apply(&Event::StepConfirmed {
        at: later,
        step: "warm".into(),
        by: OPERATOR.into(),
    });
    assert_eq!(confirmed, Vec::new());
}
