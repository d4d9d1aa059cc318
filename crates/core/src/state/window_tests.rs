//! The window's own guards through the fold alone: the downtime budget (counted from the
//! freeze's start to the unfreeze's end, warned once at 80 %, the plan's `on_budget` at
//! 100 %) and the deadline (no forward step starts after it; rollback still runs).

use std::sync::Arc;

use super::tests::{confirmed, finished};
use super::*;
use crate::event::*;
use crate::plan::{self, Deadline, GuardAction};

/// `{}` takes the window's top-level keys.
fn plan_text(keys: &str) -> String {
    format!(
        r#"
name = "w"
{keys}
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
id = "freeze"
action = {{ kind = "freeze", on = "source" }}
undo = {{ kind = "unfreeze", on = "source" }}
confirm = "freeze"
timeout = "1h"
[[step]]
id = "switch"
action = {{ kind = "shell", command = "true" }}
undo = {{ kind = "shell", command = "true" }}
confirm = "switch"
timeout = "1h"
[[step]]
id = "unfreeze"
action = {{ kind = "unfreeze", on = "target" }}
undo = {{ kind = "freeze", on = "target" }}
confirm = "open"
timeout = "1h"
"#
    )
}

fn state(keys: &str) -> State {
    let plan = plan::parse("w.toml", &plan_text(keys)).unwrap_or_else(|e| panic!("{e}"));
    let mut s = State::new(Arc::new(plan));
    let _ = s.apply(&Event::SessionStarted {
        at: 0,
        mode: SessionMode::Drive,
        operator: "op".into(),
    });
    s
}

fn started(at: Ts, step: &str, direction: Direction) -> Event {
    Event::ActionStarted {
        at,
        step: step.into(),
        direction,
        description: "d".into(),
    }
}

fn tick(at: Ts) -> Event {
    Event::Tick { at }
}

/// Folds `events` as the live session does: what a guard asks to record is recorded and
/// folded in turn. Returns the recorded events and the other effects.
fn drive(s: &mut State, events: &[Event]) -> (Vec<Event>, Vec<Effect>) {
    let mut recorded = Vec::new();
    let mut others = Vec::new();
    let mut queue: Vec<Event> = events.to_vec();
    while !queue.is_empty() {
        let mut next = Vec::new();
        for e in queue.iter().flat_map(|e| s.apply(e)) {
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

/// The freeze confirmed at 1 s, its action started at 1 s and done at 1.1 s: the window
/// opens at 1 s.
fn frozen() -> Vec<Event> {
    vec![
        confirmed(1_000, "freeze"),
        started(1_000, "freeze", Direction::Do),
        finished(1_100, "freeze", Direction::Do, true),
    ]
}

#[test]
fn the_budget_warns_once_at_80_percent_then_holds_at_100_by_default() {
    let mut s = state("max_downtime = \"5m\"");
    assert_eq!(
        s.plan.budget.map(|b| (b.max_ms, b.on_budget)),
        Some((300_000, GuardAction::Hold))
    );
    let (recorded, _) = drive(&mut s, &frozen());
    assert!(recorded.is_empty());
    assert_eq!(s.downtime.started, Some(1_000));
    // 80 % of 5 m is 4 m: at 4 m minus 1 ms after the freeze's start, nothing.
    let (recorded, _) = drive(&mut s, &[tick(240_999)]);
    assert!(recorded.is_empty(), "{recorded:?}");
    let (recorded, _) = drive(&mut s, &[tick(241_000)]);
    match recorded.as_slice() {
        [Event::GuardWarned { guard, reason, .. }] => {
            assert_eq!(guard, BUDGET_GUARD);
            assert!(
                reason.contains("80% of the downtime budget")
                    && reason.contains("4m00s of 5m")
                    && reason.contains("the plan says hold"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.log
            .iter()
            .any(|l| l.level == Level::Warn && l.text.starts_with("budget warning: 80%"))
    );
    // Once: later ticks ask for nothing more, and a warning is no hold.
    let (recorded, _) = drive(&mut s, &[tick(250_000), tick(300_999)]);
    assert!(recorded.is_empty(), "{recorded:?}");
    assert_eq!(s.confirm_blocker(1), None);

    // 100 %: a hold, in the fold, with nothing to record.
    let (recorded, others) = drive(&mut s, &[tick(301_000)]);
    assert!(recorded.is_empty() && others.is_empty(), "{recorded:?}");
    assert_eq!(s.guard_holds.len(), 1);
    assert_eq!(s.guard_holds[0].guard, BUDGET_GUARD);
    let why = s.confirm_blocker(1).unwrap_or_default();
    assert!(
        why.contains("held by budget") && why.contains("writes frozen for 5m00s"),
        "{why}"
    );
    let (_, others) = drive(&mut s, &[confirmed(302_000, "switch")]);
    assert!(others.is_empty(), "no forward step while held");

    // Cleared: forward steps run again, and a spent budget does not fire twice.
    let (_, _) = drive(
        &mut s,
        &[Event::HoldCleared {
            at: 303_000,
            guard: BUDGET_GUARD.into(),
            by: "op".into(),
        }],
    );
    assert_eq!(s.confirm_blocker(1), None);
    let (recorded, _) = drive(&mut s, &[tick(400_000)]);
    assert!(recorded.is_empty() && s.guard_holds.is_empty());
}

#[test]
fn a_spent_budget_rolls_back_when_the_plan_says_so_and_the_undo_closes_the_window() {
    let mut s = state("max_downtime = \"1m\"\non_budget = \"rollback\"");
    let _ = drive(&mut s, &frozen());
    let (recorded, _) = drive(&mut s, &[tick(48_999)]);
    assert!(recorded.is_empty(), "{recorded:?}");
    // One event past both marks at once: the warning and the rollback, in that order.
    let (recorded, others) = drive(&mut s, &[tick(61_000)]);
    match recorded.as_slice() {
        [
            Event::GuardWarned { guard, .. },
            Event::RollbackConfirmed { by, reason, .. },
        ] => {
            assert_eq!(guard, BUDGET_GUARD);
            assert_eq!(by, BUDGET_GUARD);
            assert!(reason.contains("downtime budget is spent"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        others,
        vec![Effect::RunAction {
            step: 0,
            direction: Direction::Undo
        }]
    );
    assert_eq!(s.rollback.as_ref().map(|r| r.by.as_str()), Some("budget"));
    // The freeze's undo ends the window; the budget counts no further.
    let _ = drive(
        &mut s,
        &[
            started(61_100, "freeze", Direction::Undo),
            finished(61_200, "freeze", Direction::Undo, true),
        ],
    );
    assert_eq!(
        s.downtime.ended,
        Some((61_200, "freeze undone".to_string()))
    );
    assert_eq!(s.downtime.used_ms(999_999), Some(60_200));
    assert!(s.rolled_back());
}

#[test]
fn the_budget_counts_only_while_writes_are_frozen() {
    let mut s = state("max_downtime = \"1m\"");
    // An hour before the freeze counts nothing.
    let (recorded, _) = drive(&mut s, &[tick(3_600_000)]);
    assert!(recorded.is_empty());
    let mut events = vec![
        confirmed(3_601_000, "freeze"),
        started(3_601_000, "freeze", Direction::Do),
        finished(3_601_100, "freeze", Direction::Do, true),
    ];
    for (at, step) in [(3_610_000, "switch"), (3_620_000, "unfreeze")] {
        events.push(confirmed(at, step));
        events.push(started(at, step, Direction::Do));
        events.push(finished(at + 100, step, Direction::Do, true));
    }
    let (recorded, _) = drive(&mut s, &events);
    assert!(recorded.is_empty(), "{recorded:?}");
    assert_eq!(
        s.downtime.ended,
        Some((3_620_100, "unfreeze finished".to_string()))
    );
    // Long after the unfreeze: the window is closed, nothing fires.
    let (recorded, _) = drive(&mut s, &[tick(9_000_000)]);
    assert!(recorded.is_empty());
    assert!(s.completed());
    assert_eq!(s.downtime.used_ms(9_000_000), Some(19_100));
}

#[test]
fn no_forward_step_starts_after_the_deadline_and_a_rollback_still_runs() {
    let mut s = state("window = \"45m\"");
    assert_eq!(s.plan.deadline, Some(Deadline::Window(2_700_000)));
    assert_eq!(s.deadline_at(), Some(2_700_000));
    let (_, others) = drive(&mut s, &frozen());
    assert_eq!(others.len(), 1, "the freeze ran before the deadline");
    // At the deadline itself a step may still start; one millisecond after, none.
    assert_eq!(s.confirm_blocker(1), None);
    let _ = drive(&mut s, &[tick(2_700_000)]);
    assert_eq!(s.confirm_blocker(1), None);
    let _ = drive(&mut s, &[tick(2_700_001)]);
    let why = s.confirm_blocker(1).unwrap_or_default();
    assert!(why.contains("deadline passed"), "{why}");
    assert_eq!(
        s.log
            .iter()
            .filter(|l| l.text.contains("deadline passed"))
            .count(),
        1,
        "said once"
    );
    let (_, others) = drive(&mut s, &[confirmed(2_800_000, "switch")]);
    assert!(
        others.is_empty(),
        "a forward step started after the deadline"
    );
    assert_eq!(s.steps[1].status, StepStatus::Pending);
    assert!(s.log.iter().any(|l| {
        l.text
            .starts_with("confirmation of switch refused: the window's deadline")
    }));
    assert_eq!(
        s.log
            .iter()
            .filter(|l| l.text.contains("deadline passed"))
            .count(),
        2,
        "the refusal says why; the passing itself was said once"
    );

    // Rollback is always allowed.
    let (_, others) = drive(
        &mut s,
        &[Event::RollbackConfirmed {
            at: 2_900_000,
            by: "op".into(),
            reason: "out of time".into(),
        }],
    );
    assert_eq!(
        others,
        vec![Effect::RunAction {
            step: 0,
            direction: Direction::Undo
        }]
    );
}

#[test]
fn a_deadline_is_an_instant_independent_of_the_session_start() {
    let mut s = state("deadline = \"2026-12-01T23:00:00+01:00\"");
    let due = 1_796_162_400_000;
    assert_eq!(s.plan.deadline, Some(Deadline::At(due)));
    assert_eq!(s.deadline_at(), Some(due));
    let _ = drive(&mut s, &[tick(due - 1)]);
    assert_eq!(s.confirm_blocker(0), None);
    let (_, others) = drive(&mut s, &[tick(due + 1), confirmed(due + 2, "freeze")]);
    assert!(others.is_empty());
    assert!(
        s.confirm_blocker(0)
            .is_some_and(|w| w.contains("deadline passed"))
    );
}

fn fault(at: Ts, name: &str) -> Event {
    Event::FaultChanged {
        at,
        fault: name.into(),
        active: true,
        detail: "d".into(),
    }
}

#[test]
fn a_fault_is_detected_by_the_first_alarm_raised_after_it_began() {
    let abort = "\n[[abort]]\nid = \"drift\"\nwhen = \"drift.rows > 0 for 3s fresh 5s\"\nfrom = \"freeze\"\nthen = \"rollback\"\n";
    let text = format!("{}{abort}", plan_text("max_downtime = \"5m\""));
    let plan = plan::parse("w.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut s = State::new(Arc::new(plan));
    let mut events = vec![Event::SessionStarted {
        at: 0,
        mode: SessionMode::RehearsalAutopilot,
        operator: "op".into(),
    }];
    events.extend(frozen());
    let rows = |at, tgt| super::tests::drift(at, 5, tgt, ChecksumState::Equal, &[]);
    // The abort's input is unknown until the first compare: already in alarm when the
    // first fault begins, so it cannot detect it until it has been quiet.
    events.extend([fault(1_500, "lag-spike"), rows(2_000, 5), rows(3_000, 5)]);
    events.extend([fault(5_000, "late-drift"), rows(6_000, 5), rows(7_200, 4)]);
    let (recorded, _) = drive(&mut s, &events);
    assert!(recorded.is_empty(), "{recorded:?}");
    let d: Vec<(&str, Option<f64>)> = s
        .detections
        .iter()
        .map(|d| (d.fault.as_str(), d.detection_s()))
        .collect();
    assert_eq!(d, vec![("lag-spike", Some(5.7)), ("late-drift", Some(2.2))]);
    let (_, by) = s.detections[1].detected.clone().unwrap_or_default();
    assert!(
        by.starts_with("abort drift holding: drift.rows = 1"),
        "{by}"
    );

    // It fires 3 s later and the guard stays named after the rollback resolved its hold.
    let (recorded, _) = drive(&mut s, &[rows(10_200, 4)]);
    assert!(
        matches!(recorded.as_slice(), [Event::RollbackConfirmed { by, .. }] if by == "abort drift"),
        "{recorded:?}"
    );
    assert!(s.guard_holds.is_empty());
    assert_eq!(
        s.guards_fired
            .iter()
            .map(|g| g.guard.as_str())
            .collect::<Vec<_>>(),
        vec!["abort drift"]
    );
}
