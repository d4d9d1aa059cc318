//! Guards between steps: abort conditions (their `for` windows, freshness, arming) and an
//! interactive drive's step timeouts, through the fold alone.

use std::sync::Arc;

use super::tests::{confirmed, lat};
use super::*;
use crate::event::*;
use crate::plan::{self, GuardAction};

const STEPS: &str = r#"
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
confirm = "go"
[[step]]
id = "two"
action = { kind = "sql", on = "source", statement = "UPDATE flags SET on = 1" }
undo = { kind = "sql", on = "source", statement = "UPDATE flags SET on = 0" }
confirm = "flip"
timeout = "1m"
on_timeout = "rollback"
[[step]]
id = "three"
gates = ["task.status == running fresh 5s"]
action = { kind = "replication", op = "stop" }
undo = { kind = "replication", op = "start" }
confirm = "stop"
timeout = "30s"
"#;

fn state_with(aborts: &str, mode: SessionMode) -> State {
    let text = format!("{STEPS}{aborts}");
    let plan = plan::parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut s = State::new(Arc::new(plan));
    let _ = s.apply(&Event::SessionStarted {
        at: 0,
        mode,
        operator: "op".into(),
    });
    s
}

const LAG_ROLLBACK: &str = r#"
[[abort]]
id = "lag"
when = "cdc.latency_target > 5 for 10s fresh 5s"
from = "two"
until = "three"
then = "rollback"
"#;

const DRIFT_HOLD: &str = r#"
[[abort]]
id = "drift"
when = "drift.rows > 0 fresh 5s"
then = "hold"
"#;

/// Folds `events`, returning every effect asked for.
fn fold(s: &mut State, events: &[Event]) -> Vec<Effect> {
    events.iter().flat_map(|e| s.apply(e)).collect()
}

fn rows(at: Ts, src: u64, tgt: u64) -> Event {
    super::tests::drift(at, src, tgt, ChecksumState::Equal, &[])
}

fn started(at: Ts, step: &str) -> Event {
    Event::ActionStarted {
        at,
        step: step.into(),
        direction: Direction::Do,
        description: "d".into(),
    }
}

fn finished(at: Ts, step: &str) -> Event {
    super::tests::finished(at, step, Direction::Do, true)
}

fn cleared(at: Ts, guard: &str) -> Event {
    Event::HoldCleared {
        at,
        guard: guard.into(),
        by: "op".into(),
    }
}

/// Steps one and two done: `lag` is armed from two's confirmation at 2 s.
fn through_two() -> Vec<Event> {
    vec![
        confirmed(1_000, "one"),
        finished(1_100, "one"),
        confirmed(2_000, "two"),
        started(2_000, "two"),
        finished(2_100, "two"),
    ]
}

fn recorded_rollbacks(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Record(Event::RollbackConfirmed { by, reason, .. }) => {
                Some((by.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_abort_fires_once_its_window_holds_and_records_a_rollback_naming_the_reading() {
    let mut s = state_with(LAG_ROLLBACK, SessionMode::Drive);
    assert!(recorded_rollbacks(&fold(&mut s, &through_two())).is_empty());
    // A dip restarts the window: 3 s..6 s high, 7 s low, then high from 8 s.
    let mut effects = fold(
        &mut s,
        &[
            lat(3_000, 9.0),
            lat(6_000, 9.0),
            lat(7_000, 1.0),
            lat(8_000, 9.0),
        ],
    );
    assert_eq!(s.aborts[0].state(), AbortState::Holding);
    effects.extend(fold(&mut s, &[lat(12_000, 9.0), lat(17_000, 9.0)]));
    assert!(recorded_rollbacks(&effects).is_empty(), "9 s of 10 s");
    assert_eq!(s.aborts[0].state(), AbortState::Holding);
    assert!(
        s.aborts[0].reason.contains("holding 9s of 10s"),
        "{}",
        s.aborts[0].reason
    );

    let effects = fold(&mut s, &[lat(18_000, 9.0)]);
    let fired = recorded_rollbacks(&effects);
    assert_eq!(fired.len(), 1, "{effects:?}");
    assert_eq!(fired[0].0, "abort lag");
    assert!(
        fired[0].1.contains("cdc.latency_target > 5 for 10s")
            && fired[0].1.contains("cdc.latency_target = 9"),
        "the reason names the gate and the reading: {}",
        fired[0].1
    );
    assert_eq!(s.aborts[0].state(), AbortState::Fired);
    // Forward steps are blocked at once, before the recorded rollback is folded.
    let why = s.confirm_blocker(2).unwrap_or_default();
    assert!(why.contains("abort lag fired"), "{why}");
    // It fires once: more high readings ask for nothing more.
    assert!(recorded_rollbacks(&fold(&mut s, &[lat(19_000, 9.0)])).is_empty());

    // The runtime records the rollback; folding it undoes step two.
    let Some(Effect::Record(ev)) = effects.into_iter().find(|e| matches!(e, Effect::Record(_)))
    else {
        panic!("no recorded event");
    };
    let effects = s.apply(&ev);
    let r = s.rollback.as_ref().expect("a rollback started");
    assert_eq!(r.by, "abort lag");
    assert_eq!(
        effects,
        vec![Effect::RunAction {
            step: 1,
            direction: Direction::Undo
        }]
    );
    assert!(s.guard_holds.is_empty(), "the rollback resolves the guard");
}

#[test]
fn an_abort_is_armed_only_from_its_from_step_through_its_until_step() {
    let mut s = state_with(LAG_ROLLBACK, SessionMode::Drive);
    // High lag for a minute before step two starts: not armed.
    let early: Vec<Event> = (0..60).map(|t| lat(t * 1_000, 9.0)).collect();
    let mut effects = fold(&mut s, &early);
    effects.extend(fold(
        &mut s,
        &[confirmed(60_500, "one"), finished(60_600, "one")],
    ));
    assert!(recorded_rollbacks(&effects).is_empty());
    assert_eq!(s.aborts[0].state(), AbortState::Disarmed);

    // Armed at two's confirmation: its window starts there, not at the earlier readings.
    let effects = fold(
        &mut s,
        &[
            confirmed(61_000, "two"),
            lat(61_000, 9.0),
            lat(65_000, 9.0),
            lat(70_000, 9.0),
        ],
    );
    assert!(recorded_rollbacks(&effects).is_empty());
    assert_eq!(s.aborts[0].state(), AbortState::Holding);
    // Two finishes and three runs; the readings turn good, then three ends: disarmed.
    let task = super::tests::task(70_500, "running");
    let effects = fold(
        &mut s,
        &[
            lat(70_200, 0.0),
            finished(70_300, "two"),
            task,
            confirmed(70_600, "three"),
            finished(70_700, "three"),
            lat(71_000, 9.0),
            lat(90_000, 9.0),
        ],
    );
    assert!(recorded_rollbacks(&effects).is_empty());
    assert_eq!(s.aborts[0].state(), AbortState::Disarmed);
    assert!(s.completed());
}

#[test]
fn an_unknown_abort_input_holds_forward_steps_until_the_operator_clears_it() {
    let mut s = state_with(DRIFT_HOLD, SessionMode::Drive);
    // Nothing compared yet: unknown, and within its freshness bound not yet inconclusive.
    assert!(fold(&mut s, &[Event::Tick { at: 5_000 }]).is_empty());
    assert_eq!(s.aborts[0].state(), AbortState::Unknown);
    assert_eq!(s.confirm_blocker(0), None);
    // Unknown for longer than its bound: hold (never a rollback, never proceed).
    let effects = fold(&mut s, &[Event::Tick { at: 5_001 }]);
    assert!(effects.is_empty(), "a hold records nothing: {effects:?}");
    assert_eq!(s.aborts[0].state(), AbortState::Fired);
    let why = s.confirm_blocker(0).unwrap_or_default();
    assert!(
        why.contains("held by abort drift") && why.contains("inconclusive"),
        "{why}"
    );
    // A confirmation while held starts nothing.
    let effects = fold(&mut s, &[confirmed(5_500, "one")]);
    assert!(effects.is_empty());
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert!(
        s.log
            .iter()
            .any(|l| l.text.contains("abort drift fired: hold"))
    );

    // Cleared with the typed phrase (an event): forward steps run again.
    let effects = fold(&mut s, &[cleared(6_000, "abort drift"), rows(6_000, 5, 5)]);
    assert!(effects.is_empty());
    assert_eq!(s.confirm_blocker(0), None);
    assert_eq!(s.aborts[0].state(), AbortState::Quiet);
    let effects = fold(&mut s, &[confirmed(6_100, "one")]);
    assert_eq!(
        effects,
        vec![Effect::RunAction {
            step: 0,
            direction: Direction::Do
        }]
    );
}

#[test]
fn a_hold_fires_on_its_condition_re_arms_after_a_clear_and_never_blocks_a_rollback() {
    let mut s = state_with(DRIFT_HOLD, SessionMode::Drive);
    let effects = fold(&mut s, &[rows(1_000, 5, 5), rows(2_000, 5, 4)]);
    assert!(effects.is_empty());
    let why = s.confirm_blocker(0).unwrap_or_default();
    assert!(why.contains("drift.rows = 1"), "names the reading: {why}");
    // Clearing a guard that holds nothing changes nothing.
    let _ = fold(&mut s, &[cleared(2_500, "abort lag")]);
    assert!(s.confirm_blocker(0).is_some());
    // Cleared while the drift is still there: it fires again on the next reading.
    let _ = fold(&mut s, &[cleared(3_000, "abort drift")]);
    assert_eq!(s.confirm_blocker(0), None);
    let _ = fold(&mut s, &[rows(3_500, 5, 4)]);
    assert!(
        s.confirm_blocker(0)
            .is_some_and(|w| w.contains("abort drift"))
    );
    // Rollback is always allowed.
    let _ = fold(&mut s, &[confirmed(1, "one")]);
    let effects = fold(
        &mut s,
        &[Event::RollbackConfirmed {
            at: 4_000,
            by: "op".into(),
            reason: "drift".into(),
        }],
    );
    assert!(s.rollback.is_some(), "{effects:?}");
    assert!(s.guard_holds.is_empty());
}

/// Folds `events` as the live session does: every event a guard asks to record is recorded
/// (here: kept) and folded in turn. Returns what was recorded and the other effects.
fn drive(s: &mut State, events: &[Event]) -> (Vec<Event>, Vec<Effect>) {
    let mut recorded = Vec::new();
    let mut others = Vec::new();
    let mut queue: Vec<Event> = events.to_vec();
    while !queue.is_empty() {
        let mut next = Vec::new();
        for e in fold(s, &queue) {
            match e {
                Effect::Record(ev) => next.push(ev),
                e => others.push(e),
            }
        }
        recorded.extend(next.iter().cloned());
        queue = next;
    }
    (recorded, others)
}

#[test]
fn a_drive_mode_step_timeout_is_recorded_then_rolls_back_or_holds_as_the_plan_says() {
    // Step two's action outruns its 1 m timeout: on_timeout = "rollback".
    let mut s = state_with("", SessionMode::Drive);
    let mut events = through_two();
    events.truncate(4); // two confirmed and started, never finished
    events.push(Event::Tick { at: 61_999 });
    let (recorded, _) = drive(&mut s, &events);
    assert!(recorded.is_empty(), "59.999 s of 1 m: {recorded:?}");
    let (recorded, _) = drive(&mut s, &[Event::Tick { at: 62_000 }]);
    match recorded.as_slice() {
        [
            Event::StepTimedOut { step, reason, .. },
            Event::RollbackConfirmed {
                by, reason: why, ..
            },
        ] => {
            assert_eq!(step, "two");
            assert!(reason.contains("its action ran 1m"), "{reason}");
            assert_eq!(by, "timeout two");
            assert_eq!(why, reason);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.steps[1].timed_out.is_some());
    // The rollback waits for the stuck action, then undoes it.
    assert_eq!(
        s.rollback.as_ref().map(|r| r.status),
        Some(RollbackStatus::Waiting)
    );

    // Step three's gates stay unknown past its 30 s timeout: the default, hold.
    let mut s = state_with("", SessionMode::Rehearsal);
    let _ = drive(&mut s, &through_two());
    let (recorded, others) = drive(
        &mut s,
        &[Event::Tick { at: 32_100 }, Event::Tick { at: 32_101 }],
    );
    assert!(
        matches!(recorded.as_slice(), [Event::StepTimedOut { step, .. }] if step == "three"),
        "{recorded:?}"
    );
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(s.guard_holds.len(), 1);
    assert_eq!(s.guard_holds[0].guard, "timeout three");
    assert_eq!(s.guard_holds[0].then, GuardAction::Hold);
    let why = s.confirm_blocker(2).unwrap_or_default();
    assert!(why.contains("held by timeout three"), "{why}");
    // Cleared: its timeout counts again from the clear.
    let _ = drive(&mut s, &[cleared(33_000, "timeout three")]);
    assert!(s.guard_holds.is_empty());
    let (recorded, _) = drive(&mut s, &[Event::Tick { at: 63_000 }]);
    assert!(recorded.is_empty());
    let (recorded, _) = drive(&mut s, &[Event::Tick { at: 63_001 }]);
    assert_eq!(recorded.len(), 1);
    assert_eq!(s.guard_holds.len(), 1);

    // A transcript written before interactive timeouts has no StepTimedOut: folded without
    // the runtime, it holds nothing and runs as it did live.
    let mut s = state_with("", SessionMode::Rehearsal);
    let _ = fold(&mut s, &through_two());
    let _ = fold(&mut s, &[Event::Tick { at: 100_000 }]);
    assert!(s.guard_holds.is_empty());
    assert_eq!(
        s.confirm_blocker(2).map(|w| w.contains("held")),
        Some(false)
    );

    // The autopilot acts on its own timeouts: the fold leaves its session alone.
    let mut s = state_with("", SessionMode::RehearsalAutopilot);
    let _ = fold(&mut s, &through_two());
    let effects = fold(&mut s, &[Event::Tick { at: 100_000 }]);
    assert!(effects.is_empty());
    assert!(s.guard_holds.is_empty());
}

#[test]
fn a_watch_shows_what_a_guard_does_and_old_snapshots_still_restore() {
    let mut s = state_with(DRIFT_HOLD, SessionMode::Drive);
    let _ = fold(&mut s, &[rows(1_000, 5, 4)]);
    let json = s.snapshot().expect("snapshot");
    let back = State::restore(&json, Arc::clone(&s.plan)).expect("restore");
    assert_eq!(back.guard_holds, s.guard_holds);
    assert_eq!(back.aborts, s.aborts);
    // A checkpoint written before guards existed has neither field.
    let mut value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let obj = value.as_object_mut().expect("object");
    obj.remove("aborts");
    obj.remove("guard_holds");
    let old = serde_json::to_vec(&value).expect("json");
    let back = State::restore(&old, Arc::clone(&s.plan)).expect("an old snapshot restores");
    assert!(back.guard_holds.is_empty());
}
