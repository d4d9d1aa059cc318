//! Scenario tests: a run of events folded, the resulting state rendered as text and compared
//! with a reviewed snapshot (`snapshots/`). The rendering is this module's, not the state's:
//! it shows what an operator would read (steps, gates with reasons, rollback, the log).

use std::fmt::Write as _;
use std::sync::Arc;

use super::*;
use crate::event::*;
use crate::plan;

const PLAN: &str = r#"
name = "snap"
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
tables = ["orders"]

[[step]]
id = "check"
gates = ["lag.heartbeat <= 1 for 2s fresh 5s", "source.read_only == false fresh 5s"]
confirm = "go"

[[step]]
id = "freeze"
gates = ["source.read_only == false fresh 5s"]
action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }
undo = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = OFF" }
confirm = "freeze"

[[step]]
id = "drain"
gates = ["source.read_only == true fresh 5s", "drift.rows == 0 fresh 5s", "drift.mismatched == 0 fresh 5s"]
confirm = "drained"

[[step]]
id = "flip"
gates = ["dns.value == $dns.source"]
action = { kind = "dns", to = "target", wait = true }
undo = { kind = "dns", to = "source", wait = true }
confirm = "flip"
"#;

const T0: Ts = 1_700_000_000_000;

/// Builds events on a clock that only moves forward, folds them and keeps the effects.
struct Script {
    state: State,
    now: Ts,
    effects: Vec<(Ts, Effect)>,
}

impl Script {
    fn new() -> Script {
        let plan = plan::parse("snap.toml", PLAN).expect("the snapshot plan is valid");
        let mut s = Script {
            state: State::new(Arc::new(plan)),
            now: T0,
            effects: Vec::new(),
        };
        s.fold(Event::SessionStarted {
            at: T0,
            mode: "rehearsal".into(),
            operator: "op".into(),
        });
        s
    }

    fn fold(&mut self, ev: Event) -> &mut Script {
        let at = ev.at();
        for e in self.state.apply(&ev) {
            self.effects.push((at, e));
        }
        self
    }

    fn wait(&mut self, ms: Ts) -> &mut Script {
        self.now += ms;
        let at = self.now;
        self.fold(Event::Tick { at })
    }

    fn observe(&mut self, reading: Reading) -> &mut Script {
        let at = self.now;
        self.fold(Event::Observed { at, reading })
    }

    fn heartbeat(&mut self, lag_s: f64) -> &mut Script {
        let observed_at = self.now;
        self.observe(Reading::Heartbeat { observed_at, lag_s })
    }

    fn source_read_only(&mut self, read_only: bool) -> &mut Script {
        let observed_at = self.now;
        self.observe(Reading::Database(DatabaseReading {
            observed_at,
            side: Side::Source,
            server: None,
            read_only: Some(read_only),
            connections: Some(4),
            longest_trx_s: Some(0.0),
            writes_per_s: None,
        }))
    }

    fn dns(&mut self, value: &str) -> &mut Script {
        let observed_at = self.now;
        self.observe(Reading::Dns(Box::new(DnsReading {
            observed_at,
            name: "db.example.".into(),
            record_type: "CNAME".into(),
            value: Some(value.into()),
            ttl: Some(3),
            change_status: Some("INSYNC".into()),
            change_id: None,
            resolved: Some(value.into()),
            sets: Vec::new(),
            authoritative: None,
            authoritative_error: None,
        })))
    }

    fn drift(
        &mut self,
        source_rows: u64,
        target_rows: u64,
        checksum: ChecksumState,
    ) -> &mut Script {
        let observed_at = self.now;
        self.observe(Reading::Drift(TableDrift {
            observed_at,
            table: "orders".into(),
            source_rows: Some(source_rows),
            target_rows: Some(target_rows),
            checksum,
            chunks_done: Some(4),
            chunks_total: Some(4),
            differing_keys: Vec::new(),
            note: None,
        }))
    }

    /// The readings every step of the plan wants, in the shape each step needs.
    fn healthy(&mut self, read_only: bool) -> &mut Script {
        self.heartbeat(0.2)
            .source_read_only(read_only)
            .dns("src.example.")
            .drift(400, 400, ChecksumState::Equal)
    }

    fn confirm(&mut self, step: &str) -> &mut Script {
        let at = self.now;
        self.fold(Event::StepConfirmed {
            at,
            step: step.into(),
            by: "op".into(),
        })
    }

    /// The runner's report for the action the fold asked for.
    fn run(&mut self, step: &str, direction: Direction, ok: bool, message: &str) -> &mut Script {
        let at = self.now;
        self.fold(Event::ActionStarted {
            at,
            step: step.into(),
            direction,
            description: "scripted".into(),
        });
        self.now += 500;
        let at = self.now;
        self.fold(Event::ActionFinished {
            at,
            step: step.into(),
            direction,
            ok,
            message: message.into(),
        })
    }

    fn rollback(&mut self, reason: &str) -> &mut Script {
        let at = self.now;
        self.fold(Event::RollbackConfirmed {
            at,
            by: "op".into(),
            reason: reason.into(),
        })
    }
}

fn secs(at: Ts) -> String {
    format!("+{:.1}s", (at - T0) as f64 / 1000.0)
}

/// The folded state as an operator reads it: each step with its status and every gate's
/// verdict and reason (as confirmed, or now), the rollback, the effects asked for and the log.
fn render(script: &Script) -> String {
    let s = &script.state;
    let mut out = String::new();
    let _ = writeln!(out, "now {}  next {:?}", secs(s.now), s.next_step());
    for (i, (def, step)) in s.plan.steps.iter().zip(&s.steps).enumerate() {
        let by = step
            .confirmed_by
            .as_ref()
            .map(|b| format!(" (confirmed by {b})"))
            .unwrap_or_default();
        let msg = step
            .message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}. {} [{}]{by}{msg}",
            i + 1,
            def.id,
            step.status_label()
        );
        // A confirmed step shows the verdicts it was confirmed on (the audit), others now.
        let gates: Vec<(String, GateState, String)> = if step.confirmed_by.is_some() {
            step.gates_at_confirm
                .iter()
                .map(|g| (g.gate.clone(), g.state, g.reason.clone()))
                .collect()
        } else {
            def.gates
                .iter()
                .zip(s.step_gates(i))
                .map(|(g, status)| (g.text.clone(), status.state, status.reason))
                .collect()
        };
        let when = if step.confirmed_by.is_some() {
            "at confirm"
        } else {
            "now"
        };
        for (text, state, reason) in gates {
            let _ = writeln!(out, "   {:<7} {text} -- {reason} ({when})", state.as_str());
        }
    }
    match &s.rollback {
        Some(r) => {
            let _ = writeln!(out, "rollback {:?} by {}: {}", r.status, r.by, r.reason);
        }
        None => out.push_str("rollback none\n"),
    }
    out.push_str("effects:\n");
    for (at, effect) in &script.effects {
        let Effect::RunAction { step, direction } = effect else {
            let _ = writeln!(out, "  {} {effect:?}", secs(*at));
            continue;
        };
        let _ = writeln!(
            out,
            "  {} run {} {direction:?}",
            secs(*at),
            s.plan.steps[*step].id
        );
    }
    out.push_str("log:\n");
    for line in &s.log {
        let _ = writeln!(out, "  {} {:?} {}", secs(line.at), line.level, line.text);
    }
    out
}

#[test]
fn a_clean_drive_to_the_end() {
    let mut s = Script::new();
    for _ in 0..3 {
        s.wait(1000).healthy(false);
    }
    s.confirm("check");
    s.run("check", Direction::Do, true, "checked");
    s.wait(500).healthy(false).confirm("freeze");
    s.run("freeze", Direction::Do, true, "read_only = ON");
    s.wait(500).healthy(true).confirm("drain");
    s.run("drain", Direction::Do, true, "drained");
    s.wait(500).healthy(true).confirm("flip");
    s.run("flip", Direction::Do, true, "INSYNC");
    assert!(s.state.completed());
    insta::assert_snapshot!(render(&s));
}

#[test]
fn a_red_gate_blocks_the_confirmation() {
    let mut s = Script::new();
    for _ in 0..3 {
        s.wait(1000).healthy(false);
    }
    s.confirm("check");
    s.run("check", Direction::Do, true, "checked");
    s.wait(500).healthy(false).confirm("freeze");
    s.run("freeze", Direction::Do, true, "read_only = ON");
    // Five rows have not reached the target yet: drain must not pass.
    s.wait(500)
        .heartbeat(0.2)
        .source_read_only(true)
        .drift(400, 395, ChecksumState::Equal)
        .confirm("drain");
    assert_eq!(s.effects.len(), 2, "only check and freeze ran");
    insta::assert_snapshot!(render(&s));
}

#[test]
fn a_rollback_after_a_failed_action() {
    let mut s = Script::new();
    for _ in 0..3 {
        s.wait(1000).healthy(false);
    }
    s.confirm("check");
    s.run("check", Direction::Do, true, "checked");
    s.wait(500).healthy(false).confirm("freeze");
    s.run("freeze", Direction::Do, true, "read_only = ON");
    s.wait(500).healthy(true).confirm("drain");
    s.run("drain", Direction::Do, true, "drained");
    s.wait(500).healthy(true).confirm("flip");
    s.run("flip", Direction::Do, false, "Route 53: throttled");
    s.wait(1000).rollback("dns flip failed");
    s.run("flip", Direction::Undo, true, "points at src.example.");
    s.run("freeze", Direction::Undo, true, "read_only = OFF");
    assert!(s.state.rolled_back());
    insta::assert_snapshot!(render(&s));
}

#[test]
fn a_stale_reading_turns_its_gate_unknown() {
    let mut s = Script::new();
    for _ in 0..3 {
        s.wait(1000).healthy(false);
    }
    // The heartbeat source stops answering; the other readings keep coming.
    for _ in 0..6 {
        s.wait(1000).source_read_only(false).dns("src.example.");
        let at = s.now;
        s.fold(Event::SourceFailed {
            at,
            source: SourceKind::Heartbeat,
            error: "connection refused".into(),
        });
    }
    s.confirm("check");
    assert_eq!(s.effects, Vec::new());
    insta::assert_snapshot!(render(&s));
}
