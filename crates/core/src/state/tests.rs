//! Fold and gate tests: events in, state out, through one helper.

use std::sync::Arc;

use super::*;
use crate::event::*;
use crate::plan::{self, Input};

const PLAN: &str = r#"
name = "t"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "rehearsal"
task = "t"
[rehearsal]
tables = ["a"]
[[step]]
id = "one"
gates = ["cdc.latency_target <= 0 for 10s fresh 5s", "task.status == running"]
confirm = "go"
[[step]]
id = "two"
gates = ["source.read_only == true fresh 5s"]
action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }
undo = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = OFF" }
confirm = "freeze"
[[step]]
id = "three"
gates = ["drift.rows == 0 fresh 5s", "drift.mismatched == 0 fresh 5s"]
action = { kind = "replication", op = "stop" }
undo = { kind = "replication", op = "start" }
confirm = "stop"
"#;

fn state() -> State {
    State::new(Arc::new(
        plan::parse("t.toml", PLAN).expect("test plan is valid"),
    ))
}

/// Folds `events` and returns the state and every effect asked for.
fn check(events: &[Event]) -> (State, Vec<Effect>) {
    let mut s = state();
    let mut effects = Vec::new();
    for e in events {
        effects.extend(s.apply(e));
    }
    (s, effects)
}

pub(super) fn lat(at: Ts, v: f64) -> Event {
    Event::Observed {
        at,
        reading: Reading::Metrics {
            observed_at: at,
            series: vec![MetricSeries {
                name: "CDCLatencyTarget".into(),
                unit: None,
                points: vec![(at, v)],
            }],
        },
    }
}

pub(super) fn task(at: Ts, status: &str) -> Event {
    Event::Observed {
        at,
        reading: Reading::Task(TaskReading {
            observed_at: at,
            task: "t".into(),
            status: status.into(),
            stop_reason: None,
            full_load_pct: Some(100.0),
            tables_loaded: Some(1),
            tables_loading: None,
            tables_queued: None,
            tables_errored: Some(0),
        }),
    }
}

fn ro(at: Ts, read_only: bool) -> Event {
    Event::Observed {
        at,
        reading: Reading::Database(DatabaseReading {
            observed_at: at,
            side: Side::Source,
            server: None,
            read_only: Some(read_only),
            connections: None,
            longest_trx_s: None,
            writes_per_s: None,
        }),
    }
}

pub(super) fn drift(at: Ts, src: u64, tgt: u64, checksum: ChecksumState, keys: &[&str]) -> Event {
    Event::Observed {
        at,
        reading: Reading::Drift(TableDrift {
            observed_at: at,
            table: "a".into(),
            source_rows: Some(src),
            target_rows: Some(tgt),
            checksum,
            chunks_done: Some(1),
            chunks_total: Some(1),
            differing_keys: keys
                .iter()
                .map(|k| DiffKey {
                    key: k.to_string(),
                    kind: DiffKind::Different,
                })
                .collect(),
            note: None,
        }),
    }
}

fn tick(at: Ts) -> Event {
    Event::Tick { at }
}

pub(super) fn confirmed(at: Ts, step: &str) -> Event {
    Event::StepConfirmed {
        at,
        step: step.into(),
        by: "op".into(),
    }
}

pub(super) fn finished(at: Ts, step: &str, direction: Direction, ok: bool) -> Event {
    Event::ActionFinished {
        at,
        step: step.into(),
        direction,
        ok,
        message: "m".into(),
    }
}

/// Readings that make step one green: latency 0 held for 10 s, task running.
fn step_one_green() -> Vec<Event> {
    let mut v = vec![];
    for t in 0..=10 {
        v.push(lat(t * 1000, 0.0));
        v.push(task(t * 1000, "running"));
    }
    v
}

#[test]
fn no_reading_is_unknown_not_green() {
    let (s, _) = check(&[tick(1000)]);
    let g = s.gate_status(0, 0);
    assert_eq!(g.state, GateState::Unknown);
    assert!(
        g.reason.contains("no CDCLatencyTarget datapoints"),
        "{}",
        g.reason
    );
    assert_eq!(s.step_readiness(0).0, GateState::Unknown);
}

#[test]
fn stale_reading_turns_a_green_gate_unknown() {
    let mut events = step_one_green();
    let (s, _) = check(&events);
    assert_eq!(s.step_readiness(0), (GateState::Green, None));
    // 5 s is the bound: at 15.001 s the last readings (10 s) are stale.
    events.push(tick(15_000));
    assert_eq!(check(&events).0.gate_status(0, 0).state, GateState::Green);
    events.push(tick(15_001));
    let (s, _) = check(&events);
    let g = s.gate_status(0, 0);
    assert_eq!(g.state, GateState::Unknown);
    assert!(
        g.reason.starts_with("stale: 5.0s old (limit 5.0s)"),
        "{}",
        g.reason
    );
}

#[test]
fn a_failing_source_is_named_in_the_stale_reason() {
    let mut events = step_one_green();
    events.push(Event::SourceFailed {
        at: 12_000,
        source: SourceKind::Metrics,
        error: "ThrottlingException".into(),
    });
    events.push(tick(20_000));
    let g = check(&events).0.gate_status(0, 0);
    assert_eq!(g.state, GateState::Unknown);
    assert!(
        g.reason.contains("last error: ThrottlingException"),
        "{}",
        g.reason
    );
}

#[test]
fn sustained_gate_needs_its_whole_window() {
    let mut events = vec![];
    for t in 0..=9 {
        events.push(lat(t * 1000, 0.0));
    }
    let g = check(&events).0.gate_status(0, 0);
    assert_eq!(g.state, GateState::Red);
    assert!(g.reason.contains("holding 9.0s of 10s"), "{}", g.reason);
    events.push(lat(10_000, 0.0));
    assert_eq!(check(&events).0.gate_status(0, 0).state, GateState::Green);
}

#[test]
fn one_bad_reading_restarts_the_sustained_window() {
    let mut events = vec![];
    for t in 0..=8 {
        events.push(lat(t * 1000, 0.0));
    }
    events.push(lat(9_000, 2.0));
    for t in 10..=15 {
        events.push(lat(t * 1000, 0.0));
    }
    let g = check(&events).0.gate_status(0, 0);
    assert_eq!(g.state, GateState::Red);
    assert!(g.reason.contains("holding 5.0s"), "{}", g.reason);
}

#[test]
fn a_stale_gap_restarts_the_sustained_window() {
    let mut events = vec![lat(0, 0.0), tick(6_000)];
    for t in 7..=12 {
        events.push(lat(t * 1000, 0.0));
    }
    let g = check(&events).0.gate_status(0, 0);
    assert_eq!(g.state, GateState::Red, "{}", g.reason);
}

#[test]
fn red_gate_reports_value_and_target() {
    let g = check(&[task(0, "stopped")]).0.gate_status(0, 1);
    assert_eq!(g.state, GateState::Red);
    assert_eq!(g.reason, "task.status = stopped, needs == running");
}

#[test]
fn confirming_a_green_step_runs_its_action_and_a_red_one_is_refused() {
    let mut events = step_one_green();
    events.push(confirmed(10_500, "one"));
    let (s, effects) = check(&events);
    assert_eq!(
        effects,
        vec![Effect::RunAction {
            step: 0,
            direction: Direction::Do
        }]
    );
    assert_eq!(s.steps[0].status, StepStatus::Running);
    assert_eq!(s.steps[0].gates_at_confirm.len(), 2);

    let (s, effects) = check(&[task(0, "running"), confirmed(100, "one")]);
    assert!(effects.is_empty());
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert!(
        s.log
            .back()
            .unwrap()
            .text
            .contains("refused: gates not green")
    );
}

#[test]
fn only_the_next_step_can_be_confirmed() {
    let mut events = step_one_green();
    events.push(ro(10_000, true));
    events.push(confirmed(10_500, "two"));
    let (s, effects) = check(&events);
    assert!(effects.is_empty());
    assert!(s.log.back().unwrap().text.contains("only step 1"));
}

#[test]
fn readings_from_before_the_previous_step_do_not_count() {
    let mut events = step_one_green();
    events.push(ro(10_000, true));
    events.push(confirmed(10_500, "one"));
    events.push(finished(11_000, "one", Direction::Do, true));
    let (s, _) = check(&events);
    assert_eq!(s.next_step(), Some(1));
    let g = s.gate_status(1, 0);
    assert_eq!(g.state, GateState::Unknown);
    assert!(g.reason.contains("after the previous step"), "{}", g.reason);
    events.push(ro(11_500, true));
    assert_eq!(check(&events).0.step_readiness(1).0, GateState::Green);
}

#[test]
fn drift_gates_name_the_table_and_key() {
    let mut events = step_one_green();
    events.extend([
        confirmed(10_500, "one"),
        finished(10_600, "one", Direction::Do, true),
        ro(10_700, true),
        confirmed(10_800, "two"),
        finished(11_000, "two", Direction::Do, true),
        drift(11_500, 10, 10, ChecksumState::Mismatch, &["id=7"]),
    ]);
    let (s, _) = check(&events);
    assert_eq!(s.gate_status(2, 0).state, GateState::Green);
    let g = s.gate_status(2, 1);
    assert_eq!(g.state, GateState::Red);
    assert!(g.reason.contains("(a: id=7 different)"), "{}", g.reason);
    assert!(
        s.log
            .iter()
            .any(|l| l.text == "checksum mismatch on a: id=7 different")
    );
}

#[test]
fn rollback_undoes_completed_steps_in_reverse() {
    let mut events = step_one_green();
    events.extend([
        confirmed(10_500, "one"),
        finished(10_600, "one", Direction::Do, true),
        ro(10_700, true),
        confirmed(10_800, "two"),
        finished(11_000, "two", Direction::Do, true),
        drift(11_500, 10, 10, ChecksumState::Equal, &[]),
        confirmed(11_600, "three"),
        finished(12_000, "three", Direction::Do, true),
    ]);
    let (s, _) = check(&events);
    assert!(s.completed());
    assert!(!s.under_way());

    events.push(Event::RollbackConfirmed {
        at: 13_000,
        by: "op".into(),
        reason: "test".into(),
    });
    let (_, effects) = check(&events);
    assert_eq!(
        effects.last(),
        Some(&Effect::RunAction {
            step: 2,
            direction: Direction::Undo
        })
    );
    events.push(finished(13_500, "three", Direction::Undo, true));
    let (s, effects) = check(&events);
    assert_eq!(
        effects.last(),
        Some(&Effect::RunAction {
            step: 1,
            direction: Direction::Undo
        })
    );
    assert!(s.under_way());
    events.push(finished(14_000, "two", Direction::Undo, true));
    let (s, _) = check(&events);
    assert!(s.rolled_back());
    // Step one had no undo: the rollback itself reverts it.
    assert!(s.steps.iter().all(|st| st.status == StepStatus::Undone));
    assert_eq!(s.next_step(), Some(0));
}

#[test]
fn rollback_waits_for_a_running_action_and_halts_on_a_failed_undo() {
    let mut events = step_one_green();
    events.extend([
        confirmed(10_500, "one"),
        finished(10_600, "one", Direction::Do, true),
        ro(10_700, true),
        confirmed(10_800, "two"),
        Event::RollbackConfirmed {
            at: 10_900,
            by: "op".into(),
            reason: "test".into(),
        },
    ]);
    let (s, effects) = check(&events);
    assert_eq!(s.rollback.as_ref().unwrap().status, RollbackStatus::Waiting);
    assert!(!effects.contains(&Effect::RunAction {
        step: 1,
        direction: Direction::Undo
    }));
    events.push(finished(11_000, "two", Direction::Do, true));
    let (_, effects) = check(&events);
    assert_eq!(
        effects.last(),
        Some(&Effect::RunAction {
            step: 1,
            direction: Direction::Undo
        })
    );
    events.push(finished(11_500, "two", Direction::Undo, false));
    let (s, _) = check(&events);
    assert_eq!(s.rollback.as_ref().unwrap().status, RollbackStatus::Failed);
    assert_eq!(s.steps[1].status, StepStatus::UndoFailed);
    assert!(!s.rolled_back());
}

#[test]
fn source_errors_are_logged_once_until_they_change() {
    let fail = |at| Event::SourceFailed {
        at,
        source: SourceKind::Dns,
        error: "boom".into(),
    };
    let (s, _) = check(&[fail(1), fail(2), fail(3)]);
    assert_eq!(s.log.iter().filter(|l| l.text.contains("boom")).count(), 1);
    assert_eq!(s.health[&SourceKind::Dns].failures, 3);
}

#[test]
fn fold_is_deterministic() {
    let mut events = step_one_green();
    events.extend([
        confirmed(10_500, "one"),
        finished(10_600, "one", Direction::Do, true),
    ]);
    let (a, _) = check(&events);
    let (b, _) = check(&events);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.log, b.log);
    assert_eq!(a.holds, b.holds);
}

#[test]
fn the_embedded_rehearsal_plan_is_valid() {
    let p = crate::plan::rehearsal_plan();
    assert_eq!(p.steps.len(), 7);
    assert!(p.is_rehearsal());
}

/// An engine-neutral replication reading, as every backend now produces.
fn replication(at: Ts, word: &str, lag: Option<f64>) -> ReplicationReading {
    ReplicationReading {
        observed_at: at,
        engine: ReplicationEngine::Rehearsal,
        name: "t".into(),
        status: ReplicationStatus::from_dms(word),
        status_text: word.into(),
        stop_reason: None,
        last_error: None,
        figures_error: None,
        tables_error: None,
        validation_enabled: None,
        lag_s: lag.map(|v| vec![(at, v)]).unwrap_or_default(),
        capture_lag_s: Vec::new(),
        backlog: Vec::new(),
        behind_transactions: None,
        behind_bytes: None,
        full_load_pct: None,
        tables_loaded: None,
        tables_loading: None,
        tables_queued: None,
        tables_errored: None,
        tables: None,
        source_position: None,
        target_position: None,
        source_gtid: None,
        facts: Vec::new(),
        logical: None,
        sequences: None,
        sequences_error: None,
        gap_error: None,
    }
}

fn observed(at: Ts, r: ReplicationReading) -> Event {
    Event::Observed {
        at,
        reading: Reading::Replication(Box::new(r)),
    }
}

#[test]
fn replication_inputs_read_the_engine_neutral_reading_and_the_aliases_agree() {
    let mut r = replication(1_000, "ready", Some(2.0));
    r.behind_transactions = Some(14);
    r.stop_reason = Some("never started".into());
    let (s, _) = check(&[observed(1_000, r)]);
    let value = |name: &str| match s.input_value(&Input::parse(name).expect(name)) {
        InputValue::Known { value, .. } => value.to_string(),
        InputValue::Missing(why) => format!("missing: {why}"),
    };
    // The typed status beside the engine's own word.
    assert_eq!(value("replication.status"), "stopped");
    assert_eq!(value("task.status"), "ready");
    assert_eq!(value("replication.lag_s"), value("cdc.latency_target"));
    assert_eq!(value("replication.lag_s"), "2");
    assert_eq!(value("replication.behind_transactions"), "14");
    assert_eq!(value("replication.stop_reason"), "never started");
    // What the engine does not count is unknown, never 0, and says so.
    assert_eq!(
        value("replication.behind_bytes"),
        "missing: the rehearsal replication reading does not include replication.behind_bytes"
    );
    // No table view in this reading: validation is unknown.
    assert!(value("validation.failed").starts_with("missing"));
}

#[test]
fn a_replication_reading_without_its_lag_names_why_and_the_gate_stays_unknown() {
    let mut r = replication(1_000, "running", None);
    r.figures_error = Some("CloudWatch GetMetricData: AccessDenied".into());
    let (s, _) = check(&[observed(1_000, r)]);
    let g = s.gate_status(0, 0);
    assert_eq!(g.state, GateState::Unknown);
    assert!(
        g.reason.contains("no CDCLatencyTarget datapoints yet")
            && g.reason.contains("AccessDenied"),
        "{}",
        g.reason
    );
    assert_eq!(s.gate_status(0, 1).state, GateState::Green, "task.status");
}

#[test]
fn engine_neutral_lag_samples_fill_a_sustain_window_and_format_1_series_no_longer_feed_it() {
    // Lag 0 for 10 s from replication readings: the window holds.
    let mut events: Vec<Event> = (0..=10)
        .map(|i| observed(i * 1_000, replication(i * 1_000, "running", Some(0.0))))
        .collect();
    let (s, _) = check(&events);
    assert_eq!(
        s.gate_status(0, 0).state,
        GateState::Green,
        "{:?}",
        s.gate_status(0, 0)
    );
    // A format-1 CDC series saying otherwise is ignored once engine-neutral readings came.
    events.push(lat(10_500, 9.0));
    let (s, _) = check(&events);
    assert_eq!(s.gate_status(0, 0).state, GateState::Green);
    assert_eq!(s.replication.lag.points.back(), Some(&(10_000, 0.0)));
}

#[test]
fn a_result_for_an_action_that_never_started_is_ignored() {
    let finished = |at, step: &str| Event::ActionFinished {
        at,
        step: step.into(),
        direction: Direction::Do,
        ok: true,
        message: "done".into(),
    };
    let (s, effects) = check(&[finished(1_000, "one"), finished(1_000, "two")]);
    assert!(effects.is_empty());
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert_eq!(s.next_step(), Some(0), "the first step still has to run");
    assert!(
        s.log
            .iter()
            .any(|l| l.text.contains("not running (pending); ignored")),
        "{:?}",
        s.log
    );
}

/// Hardening finding 8: after a resume the status showed the first run's fault as still
/// active and only the fresh world's downtime.
#[test]
fn a_restart_ends_the_first_runs_faults_and_keeps_its_measures() {
    let started = |at| Event::SessionStarted {
        at,
        mode: "rehearsal".into(),
        operator: "op".into(),
    };
    let measured = |at, refused, down| Event::WorldMeasured {
        at,
        measures: WorldMeasures {
            writes_attempted: 100,
            writes_acked: 90,
            writes_refused: refused,
            writes_lost: 0,
            rows_diverged: 0,
            downtime_s: down,
            authority: None,
        },
    };
    let mut events = vec![started(0)];
    events.extend(step_one_green());
    events.push(Event::FaultChanged {
        at: 10_000,
        fault: "lag-spike".into(),
        active: true,
        detail: "lag raised".into(),
    });
    events.push(confirmed(10_500, "one"));
    events.push(finished(10_600, "one", Direction::Do, true));
    events.push(ro(11_000, true));
    events.push(confirmed(11_500, "two"));
    events.push(finished(12_000, "two", Direction::Do, true));
    events.push(measured(20_000, 30, 8.0));
    // The cockpit dies at 20 s; the resume starts at 50 s with a fresh world.
    events.push(started(50_000));
    events.push(measured(51_000, 5, 1.0));
    let (s, _) = check(&events);
    assert_eq!(s.frozen_sides(), vec![Side::Source]);
    assert_eq!(
        s.faults.get("lag-spike").map(|f| f.0),
        Some(false),
        "the fault is not active in the fresh world"
    );
    let w = s.world.expect("measured");
    assert_eq!(w.writes_refused, 35);
    assert_eq!(w.writes_attempted, 200);
    // 8 s measured, 30 s down while the cockpit was dead and writes frozen, 1 s since.
    assert!((w.downtime_s - 39.0).abs() < 1e-9, "{}", w.downtime_s);
}

/// The test plan with step one asking for `n` approvals.
fn approval_state(n: u32) -> State {
    let text = PLAN.replacen(
        "confirm = \"go\"",
        &format!("approvals = {n}\nconfirm = \"go\""),
        1,
    );
    let mut s = State::new(Arc::new(plan::parse("t.toml", &text).expect("valid")));
    s.apply(&Event::SessionStarted {
        at: 0,
        mode: SessionMode::Drive,
        operator: "op".into(),
    });
    s
}

fn joined(at: Ts, peer: &str, role: Option<PeerRole>) -> Event {
    Event::PeerJoined {
        at,
        peer: peer.into(),
        role,
    }
}

fn approved(at: Ts, by: &str) -> Event {
    Event::StepApproved {
        at,
        step: "one".into(),
        by: by.into(),
        seen: None,
    }
}

fn fold_all(s: &mut State, events: &[Event]) {
    for e in events {
        s.apply(e);
    }
}

fn approvers(s: &State) -> Vec<&str> {
    s.steps[0].approvals.iter().map(|a| a.by.as_str()).collect()
}

#[test]
fn observers_the_driver_and_absent_peers_never_count_as_approvers() {
    let mut s = approval_state(1);
    fold_all(&mut s, &step_one_green());
    fold_all(
        &mut s,
        &[
            joined(10_100, "olga", Some(PeerRole::Observer)),
            approved(10_200, "olga"),
            approved(10_300, "op"),
            approved(10_400, "mallory"),
        ],
    );
    assert!(approvers(&s).is_empty(), "{:?}", approvers(&s));
    let log: Vec<&str> = s.log.iter().map(|l| l.text.as_str()).collect();
    for want in [
        "olga's approval of one does not count: an observer cannot approve",
        "op's approval of one does not count: the driver cannot approve their own step",
        "mallory's approval of one does not count: the approver is not attached",
    ] {
        assert!(log.iter().any(|l| l.starts_with(want)), "{want}: {log:#?}");
    }
    assert!(
        s.confirm_blocker(0)
            .is_some_and(|b| b.contains("needs 1 approval"))
    );
    // An approver's counts, and the step can run.
    fold_all(
        &mut s,
        &[
            joined(10_500, "ann", Some(PeerRole::Approver)),
            approved(10_600, "ann"),
        ],
    );
    assert_eq!(approvers(&s), ["ann"]);
    assert_eq!(s.confirm_blocker(0), None);
}

#[test]
fn an_approval_given_while_a_gate_is_not_green_does_not_count() {
    let mut s = approval_state(1);
    fold_all(
        &mut s,
        &[
            lat(0, 5.0),
            task(0, "running"),
            joined(100, "ann", Some(PeerRole::Approver)),
            approved(200, "ann"),
        ],
    );
    assert!(approvers(&s).is_empty());
    assert!(
        s.log.iter().any(|l| l
            .text
            .starts_with("ann's approval of one does not count: its gates are not green")),
        "{:#?}",
        s.log
    );
}

#[test]
fn an_approval_lapses_when_a_gate_leaves_green_and_must_be_given_again() {
    let mut s = approval_state(1);
    fold_all(&mut s, &step_one_green());
    fold_all(
        &mut s,
        &[
            joined(10_100, "ann", Some(PeerRole::Approver)),
            approved(10_200, "ann"),
        ],
    );
    assert_eq!(s.confirm_blocker(0), None);
    // Lag jumps after the approval: it lapses, recorded in the log everyone folds.
    s.apply(&lat(10_500, 40.0));
    assert!(approvers(&s).is_empty());
    assert!(
        s.log.iter().any(|l| l.text.starts_with(
            "one: approval by ann lapsed: gate `cdc.latency_target <= 0 for 10s fresh 5s` is red"
        )),
        "{:#?}",
        s.log
    );
    // Green again (after its sustain window): still blocked until a new approval.
    for t in 11..=21 {
        fold_all(&mut s, &[lat(t * 1000, 0.0), task(t * 1000, "running")]);
    }
    assert_eq!(s.step_readiness(0).0, GateState::Green);
    assert!(
        s.confirm_blocker(0)
            .is_some_and(|b| b.contains("needs 1 approval"))
    );
    s.apply(&approved(21_100, "ann"));
    assert_eq!(s.confirm_blocker(0), None);
}

#[test]
fn an_approval_lapses_when_its_approver_leaves_or_a_rollback_starts() {
    let mut s = approval_state(2);
    fold_all(&mut s, &step_one_green());
    fold_all(
        &mut s,
        &[
            joined(10_100, "ann", Some(PeerRole::Approver)),
            joined(10_100, "bob", Some(PeerRole::Approver)),
            approved(10_200, "ann"),
            approved(10_300, "bob"),
            Event::PeerLeft {
                at: 10_400,
                peer: "bob".into(),
            },
        ],
    );
    assert_eq!(approvers(&s), ["ann"]);
    assert!(
        s.log
            .iter()
            .any(|l| l.text == "one: approval by bob lapsed: bob left; approve it again")
    );
    fold_all(
        &mut s,
        &[
            joined(10_500, "bob", Some(PeerRole::Approver)),
            approved(10_600, "bob"),
            Event::RollbackConfirmed {
                at: 10_700,
                by: "op".into(),
                reason: "test".into(),
            },
        ],
    );
    assert!(approvers(&s).is_empty(), "{:?}", approvers(&s));
}

#[test]
fn a_peer_of_an_older_transcript_without_a_role_still_approves() {
    let mut s = approval_state(1);
    fold_all(&mut s, &step_one_green());
    fold_all(
        &mut s,
        &[joined(10_100, "ann", None), approved(10_200, "ann")],
    );
    assert_eq!(approvers(&s), ["ann"]);
    // The old JSON, without the new fields, still parses.
    let old: Event =
        serde_json::from_str(r#"{"type":"step_approved","at":1,"step":"one","by":"ann"}"#)
            .expect("an older approval parses");
    assert!(matches!(old, Event::StepApproved { seen: None, .. }));
}

/// `dns.weight.<side>`: the weight of the sets pointing at that side (names compared with
/// or without the final dot, any case); a plain record has no weights: unknown, not 0 or 100.
#[test]
fn dns_weights_sum_the_sets_of_each_side_and_a_plain_record_is_unknown() {
    let plan = plan::rehearsal_plan();
    let dns = plan.dns.clone().expect("the rehearsal plan has [dns]");
    let mut s = State::new(Arc::new(plan));
    let set = |value: &str, weight: Option<u64>| DnsSet {
        value: value.into(),
        set_identifier: Some(value.into()),
        weight,
        failover: None,
        alias: false,
        ttl: Some(3),
    };
    let reading = |sets: Vec<DnsSet>| Event::Observed {
        at: 1_000,
        reading: Reading::Dns(Box::new(DnsReading {
            observed_at: 1_000,
            name: dns.name.clone(),
            record_type: "CNAME".into(),
            value: Some(dns.source.clone()),
            ttl: Some(3),
            change_status: None,
            change_id: None,
            resolved: None,
            sets,
            authoritative: None,
            authoritative_error: None,
        })),
    };
    let weight = |s: &State, side: Side| s.input_value(&Input::DnsWeight(side));
    s.apply(&reading(Vec::new()));
    assert!(
        matches!(weight(&s, Side::Target), InputValue::Missing(ref why) if why.contains("not weighted")),
        "{:?}",
        weight(&s, Side::Target)
    );
    s.apply(&reading(vec![
        set(&dns.source.to_ascii_uppercase(), Some(90)),
        set(dns.source.trim_end_matches('.'), Some(5)),
        set(&dns.target, Some(5)),
        set("elsewhere.example.", Some(100)),
    ]));
    let number = |v: InputValue| match v {
        InputValue::Known {
            value: crate::plan::Value::Number(n),
            ..
        } => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(number(weight(&s, Side::Source)), 95.0);
    assert_eq!(number(weight(&s, Side::Target)), 5.0);
}

#[test]
fn source_gtid_stable_s_counts_from_the_last_change_and_is_unknown_without_gtid() {
    let gtid = |at: Ts, set: Option<&str>| {
        let mut r = replication(at, "running", None);
        r.engine = ReplicationEngine::Mysql;
        r.source_gtid = set.map(str::to_string);
        observed(at, r)
    };
    let input = Input::parse("source.gtid_stable_s").expect("listed");
    let value = |events: &[Event]| match check(events).0.input_value(&input) {
        InputValue::Known { value, .. } => value.to_string(),
        InputValue::Missing(why) => format!("missing: {why}"),
    };
    // Still since the first reading of 0-1-7: 3 s at the last one.
    let still = [
        gtid(1_000, Some("0-1-5")),
        gtid(2_000, Some("0-1-7")),
        gtid(3_500, Some("0-1-7")),
        gtid(5_000, Some("0-1-7")),
    ];
    assert_eq!(value(&still), "3");
    // A move starts the count again.
    let moved = [gtid(1_000, Some("0-1-5")), gtid(4_000, Some("0-1-6"))];
    assert_eq!(value(&moved), "0");
    // GTID off (or a reading without it) is unknown, and says what to do.
    let off = [gtid(1_000, Some("0-1-5")), gtid(4_000, None)];
    let v = value(&off);
    assert!(v.starts_with("missing:") && v.contains("GTID"), "{v}");
}

#[test]
fn the_transaction_gap_names_both_gtid_positions_in_the_gate_reason() {
    let mut r = replication(1_000, "running", None);
    r.engine = ReplicationEngine::Mysql;
    r.behind_transactions = Some(14);
    r.source_position = Some("0-11-5026".into());
    r.target_position = Some("0-11-5012".into());
    let (s, _) = check(&[observed(1_000, r)]);
    let input = Input::parse("replication.behind_transactions").expect("listed");
    let value = s.input_value(&input);
    let InputValue::Known { detail, .. } = value else {
        panic!("known: {value:?}")
    };
    assert_eq!(
        detail.as_deref(),
        Some("replica is 14 transactions behind (GTID 0-11-5012 of 0-11-5026)")
    );
}

#[test]
fn with_gtid_off_the_transaction_gap_is_unknown_and_says_why_with_the_fix() {
    let mut r = replication(1_000, "running", None);
    r.engine = ReplicationEngine::Mysql;
    r.gap_error = Some("the replica follows the source by binlog file:pos, not by GTID (Using_Gtid = No): the gap cannot be counted in transactions (fix: CHANGE MASTER TO MASTER_USE_GTID = slave_pos)".into());
    let (s, _) = check(&[observed(1_000, r)]);
    let input = Input::parse("replication.behind_transactions").expect("listed");
    match s.input_value(&input) {
        InputValue::Missing(why) => {
            assert!(
                why.contains("Using_Gtid = No") && why.contains("MASTER_USE_GTID"),
                "{why}"
            )
        }
        other => panic!("unknown, not {other:?}"),
    }
}

/// A native engine's lag and gap go stale after a few polls unless a gate says otherwise;
/// DMS's (CloudWatch's, minute-grained) after 3 minutes.
#[test]
fn the_default_freshness_of_lag_inputs_follows_the_engine() {
    let plan = |engine: &str| {
        let extra = match engine {
            "dms" => "task = \"t\"",
            "postgres" => "publication = \"p\"\nsubscription = \"s\"",
            _ => "",
        };
        let db = if engine == "postgres" {
            "postgres"
        } else {
            "mysql"
        };
        let text = format!(
            "name = \"x\"\n[source]\nengine = \"{db}\"\nurl = \"{db}://u@a/x\"\n[target]\nengine = \"{db}\"\nurl = \"{db}://u@b/x\"\n[replication]\nengine = \"{engine}\"\n{extra}\n[[step]]\nid = \"s\"\ngates = [\"replication.lag_s <= 1\", \"replication.behind_bytes == 0 fresh 2s\", \"replication.status == running\"]\nconfirm = \"go\"\n"
        );
        crate::plan::parse("p.toml", &text).unwrap_or_else(|e| panic!("{engine}: {e}"))
    };
    for (engine, lag) in [("mysql", 5_000), ("postgres", 5_000), ("dms", 180_000)] {
        let p = plan(engine);
        let g = &p.steps[0].gates;
        assert_eq!(g[0].fresh_ms(), lag, "{engine}");
        assert_eq!(g[1].fresh_ms(), 2_000, "{engine}: a gate's own fresh wins");
        assert_eq!(
            g[2].fresh_ms(),
            30_000,
            "{engine}: status keeps its default"
        );
    }
}

#[test]
fn sequences_behind_counts_from_the_reading_and_is_unknown_when_unread() {
    use crate::event::SequenceStat;
    let value = |r: ReplicationReading| {
        let (s, _) = check(&[observed(1_000, r)]);
        match s.input_value(&Input::parse("sequences.behind").expect("listed")) {
            InputValue::Known { value, detail, .. } => format!("{value} {detail:?}"),
            InputValue::Missing(why) => format!("missing: {why}"),
        }
    };
    let unread = replication(1_000, "running", None);
    assert_eq!(
        value(unread.clone()),
        "missing: the rehearsal replication reading does not include sequences.behind"
    );
    let mut failed = unread.clone();
    failed.sequences_error = Some("target: the user cannot read sequence public.s".into());
    assert_eq!(
        value(failed),
        "missing: the sequences could not be read: target: the user cannot read sequence public.s"
    );
    let mut read = unread;
    read.sequences = Some(vec![
        SequenceStat {
            name: "public.a".into(),
            source: Some(10),
            target: Some(3),
        },
        SequenceStat {
            name: "public.b".into(),
            source: Some(10),
            target: Some(10),
        },
        SequenceStat {
            name: "public.c".into(),
            source: Some(5),
            target: None,
        },
        // Never used on the source: nothing to be behind.
        SequenceStat {
            name: "public.d".into(),
            source: None,
            target: None,
        },
    ]);
    assert_eq!(
        value(read),
        "2 Some(\"public.a target 3 < source 10, public.c target unset < source 5\")"
    );
}

#[test]
fn the_weights_an_undo_restores_are_the_first_runs_and_a_finished_undo_forgets_them() {
    use crate::plan::{Action, DnsWeights, Weights};
    let text = "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
                [dns]\nname = \"db.x.internal\"\nsource = \"a.x.internal\"\ntarget = \"b.x.internal\"\n\
                [[step]]\nid = \"canary\"\nconfirm = \"go\"\n\
                action = { kind = \"dns\", weights = { source = 95, target = 5 } }\n\
                undo = { kind = \"dns\", weights = \"previous\" }\n";
    let plan = Arc::new(plan::parse("p.toml", text).unwrap_or_else(|e| panic!("{e}")));
    let mut s = State::new(Arc::clone(&plan));
    let out = |at: Ts, direction: Direction, line: String| Event::ActionOutput {
        at,
        step: "canary".into(),
        direction,
        line,
    };
    let w = |source, target| Weights { source, target };
    let set = |source, target| Action::DnsWeights {
        weights: DnsWeights::Set(w(source, target)),
        wait: true,
    };
    // Nothing read yet: the undo stays `previous` (the actuator then changes nothing).
    assert_eq!(
        s.action_to_run(0, Direction::Undo),
        Some(Action::DnsWeights {
            weights: DnsWeights::Previous,
            wait: true
        })
    );
    s.apply(&out(1, Direction::Do, w(100, 0).before_line()));
    // A second run (resume) reads the stage's own weights: the first reading stands.
    s.apply(&out(2, Direction::Do, w(95, 5).before_line()));
    assert_eq!(s.action_to_run(0, Direction::Undo), Some(set(100, 0)));
    assert_eq!(s.action_to_run(0, Direction::Do), Some(set(95, 5)));
    // An undo's own reading is not a forward one.
    s.apply(&out(3, Direction::Undo, w(95, 5).before_line()));
    assert_eq!(s.action_to_run(0, Direction::Undo), Some(set(100, 0)));
    s.apply(&Event::ActionFinished {
        at: 4,
        step: "canary".into(),
        direction: Direction::Undo,
        ok: true,
        message: "restored".into(),
    });
    assert_eq!(
        s.steps[0].weights_before, None,
        "restored: read anew next time"
    );
}
