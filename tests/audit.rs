//! Audit and postmortem: the transcript as evidence and as the postmortem's source.
//!
//! - tamper evidence: flip one byte, delete a line, swap two lines, truncate mid-line —
//!   `verify` names each at its line;
//! - replay determinism: rehearsals recorded (clean and with faults) while the live `State`
//!   is drawn after every ingested batch; the replay fold at the same event count draws the
//!   same buffer, under the live cockpit's UI state and under the replay's;
//! - the report of a known rehearsal holds its steps, durations and downtime;
//! - no secret reaches a transcript or a report;
//! - kill -9 mid-cutover in a pseudo-terminal, resume, resolve the step in doubt, finish.
//!
//! Waits poll for a condition (screen text, file contents) with a timeout, never blind sleeps.

#[path = "support/pty.rs"]
mod pty;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cutover::autopilot::Summary;
use cutover::event::{Direction, Event};
use cutover::plan::{self, Plan};
use cutover::rehearse::{self, Rehearsal};
use cutover::replay::{Replay, ReplayOptions};
use cutover::report::{self, Format};
use cutover::sim::Fault;
use cutover::state::{State, StepStatus};
use cutover::transcript::verify::{ProblemKind, verify};
use cutover::ui::{self, Mode, Theme, UiState};

const W: u16 = 120;
const H: u16 = 40;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn theme() -> Theme {
    Theme::load(None).expect("the default theme loads")
}

/// Draws `state` and returns a hash of every cell (symbol and style) and the screen's text.
fn draw(
    term: &mut Terminal<TestBackend>,
    state: &State,
    ui_state: &UiState,
    theme: &Theme,
) -> (u64, String) {
    term.draw(|f| ui::draw(f, state, ui_state, theme))
        .expect("draw on the test backend");
    let buf = term.backend().buffer();
    let mut h = DefaultHasher::new();
    buf.content().hash(&mut h);
    let text = buf
        .content()
        .chunks(buf.area.width as usize)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    (h.finish(), text)
}

/// One live frame: after `events` events were folded, the screen under the live cockpit's
/// UI state and under the replay's.
struct Frame {
    events: u64,
    live: u64,
    as_replay: u64,
    text: String,
}

struct Recorded {
    _dir: tempfile::TempDir,
    path: PathBuf,
    frames: Vec<Frame>,
    summary: Summary,
}

fn ui_states(transcript: &str) -> (UiState, UiState) {
    (
        UiState::new(Mode::Rehearsal, "tester".into(), Some(transcript.into())),
        UiState::new(Mode::Replay, "tester".into(), Some(transcript.into())),
    )
}

/// `rehearse::autopilot` with a fold hook that draws the live state after every ingested
/// batch.
async fn rehearse_drawing(dir: &Path, faults: Vec<Fault>, seed: u64) -> (Summary, Vec<Frame>) {
    let rehearsal = Rehearsal {
        plan: Arc::new(plan::rehearsal_plan()),
        faults,
        seed,
        sessions_dir: Some(dir.to_path_buf()),
        operator: "tester".into(),
        sign_key: None,
        clock: cutover::clock::ClockKind::Sim,
    };
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&frames);
    let summary = rehearse::autopilot_observed(rehearsal, move |session| {
        let path = session
            .transcript_path()
            .expect("a transcript")
            .display()
            .to_string();
        let theme = theme();
        let (live_ui, replay_ui) = ui_states(&path);
        let mut term = Terminal::new(TestBackend::new(W, H)).expect("test terminal");
        Some(Box::new(move |state: &State| {
            let (live, _) = draw(&mut term, state, &live_ui, &theme);
            let (as_replay, text) = draw(&mut term, state, &replay_ui, &theme);
            sink.lock().unwrap().push(Frame {
                events: state.events,
                live,
                as_replay,
                text,
            });
        }))
    })
    .await
    .expect("the rehearsal runs");
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (summary, frames)
}

fn record(faults: Vec<Fault>, seed: u64) -> Recorded {
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, frames) = runtime().block_on(rehearse_drawing(dir.path(), faults, seed));
    let path = PathBuf::from(summary.transcript.clone().expect("a transcript path"));
    Recorded {
        _dir: dir,
        path,
        frames,
        summary,
    }
}

/// A clean rehearsal, recorded once for the tests that need one.
fn clean() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| record(Vec::new(), 11))
}

/// A rehearsal with faults: a lag spike, throttled APIs and a lost change (which ends in a
/// rollback).
fn faulty() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| {
        record(
            vec![Fault::LagSpike, Fault::ApiThrottle, Fault::DropChange],
            12,
        )
    })
}

/// Replays `rec` and compares every live frame with the replay's frame at the same event.
fn check_determinism(rec: &Recorded) {
    assert!(
        rec.frames.len() > 20,
        "only {} frames were drawn live",
        rec.frames.len()
    );
    let theme = theme();
    let path = rec.path.display().to_string();
    let (live_ui, replay_ui) = ui_states(&path);
    let mut term = Terminal::new(TestBackend::new(W, H)).expect("test terminal");
    let mut replay = Replay::open_with(
        &rec.path,
        ReplayOptions {
            background: false,
            ..ReplayOptions::default()
        },
    )
    .expect("open for replay");
    let total = replay.len() as u64;
    assert_eq!(
        rec.frames.last().map(|f| f.events),
        Some(total),
        "the last live frame saw every event"
    );
    for f in &rec.frames {
        let state = replay
            .state_at(f.events as usize)
            .expect("replay folds")
            .clone();
        assert_eq!(state.events, f.events);
        let (live, _) = draw(&mut term, &state, &live_ui, &theme);
        let (as_replay, text) = draw(&mut term, &state, &replay_ui, &theme);
        assert!(
            live == f.live && as_replay == f.as_replay,
            "at event {} of {total} the replay draws another screen.\nlive:\n{}\nreplay:\n{text}",
            f.events,
            f.text
        );
    }
    // The replay's own screen differs from the live one only where the mode shows.
    let last = replay
        .state_at(total as usize)
        .expect("replay folds")
        .clone();
    let (_, live_text) = draw(&mut term, &last, &live_ui, &theme);
    let (_, replay_text) = draw(&mut term, &last, &replay_ui, &theme);
    assert!(live_text.contains("[REHEARSAL]") && replay_text.contains("[REPLAY]"));
}

#[test]
fn replay_draws_the_live_screens_of_a_clean_rehearsal() {
    let rec = clean();
    assert!(rec.summary.completed, "{}", rec.summary.render_text());
    check_determinism(rec);
}

#[test]
fn replay_draws_the_live_screens_of_a_rehearsal_with_faults() {
    let rec = faulty();
    check_determinism(rec);
}

#[test]
fn replay_seeks_steps_and_time_on_a_recorded_rehearsal() {
    let rec = clean();
    let mut r = Replay::open(&rec.path).expect("open");
    r.wait_for_checkpoints();
    assert_eq!(r.chain(), cutover::replay::ChainCheck::Intact);
    let n = r.len();
    // ']' walks the step events in order; each lands right after one.
    r.go_start();
    let mut seen = Vec::new();
    loop {
        let before = r.target();
        r.next_step_event();
        if r.target() <= before || r.target() >= n {
            break;
        }
        assert!(r.work(usize::MAX));
        let idx = r.position() - 1;
        let ev = r.index().events(idx..idx + 1).expect("event").remove(0);
        assert!(ev.is_step_event(), "{ev:?}");
        seen.push(ev.name());
    }
    assert!(
        seen.contains(&"step_confirmed") && seen.contains(&"action_finished"),
        "{seen:?}"
    );
    // '[' goes back; 'G' to the end shows the completed cutover; a time seek is monotone.
    r.prev_step_event();
    assert!(r.work(usize::MAX));
    r.go_end();
    assert!(r.work(usize::MAX));
    assert!(r.state().completed());
    let end = r.cursor();
    r.seek_time(end - 10_000);
    assert!(r.work(usize::MAX));
    assert!(r.position() < n);
    assert!(r.state().now <= end - 10_000);
    assert!(r.timeline(100).contains('◆'));
}

/// Writes a damaged copy of the clean transcript and verifies it.
fn damaged(
    name: &str,
    damage: impl FnOnce(&mut Vec<Vec<u8>>),
) -> (tempfile::TempDir, cutover::transcript::verify::VerifyReport) {
    let text = std::fs::read(&clean().path).expect("read the transcript");
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    assert!(
        lines.last().is_some_and(|l| l.is_empty()),
        "ends with a newline"
    );
    lines.pop();
    damage(&mut lines);
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(name);
    std::fs::write(&p, out).expect("write the damaged copy");
    let r = verify(&p);
    (dir, r)
}

#[test]
fn verify_names_each_kind_of_damage_at_its_line() {
    let intact = verify(&clean().path);
    assert_eq!(intact.exit_code(), 0, "{}", intact.render());
    assert!(intact.ended);

    // Flip one byte: the low bit of a digit of line 40's timestamp (still valid JSON).
    let (_d, r) = damaged("flip.jsonl", |l| {
        let line = &mut l[39];
        let pos = line
            .windows(5)
            .position(|w| w == b"\"at\":")
            .expect("an at field")
            + 8;
        line[pos] ^= 0x01;
    });
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind, r.exit_code()),
        (40, ProblemKind::Edited, 1),
        "{}",
        r.render()
    );
    assert!(r.render().contains(":40: EDITED"), "{}", r.render());

    // Flip a byte that breaks the JSON.
    let (_d, r) = damaged("flip2.jsonl", |l| l[60][0] ^= 0x40);
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind),
        (61, ProblemKind::Edited),
        "{}",
        r.render()
    );

    // Delete a line.
    let (_d, r) = damaged("delete.jsonl", |l| {
        l.remove(49);
    });
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind),
        (50, ProblemKind::Deleted),
        "{}",
        r.render()
    );
    assert!(p.detail.contains("seq 49 was deleted"), "{}", r.render());

    // Swap two lines.
    let (_d, r) = damaged("swap.jsonl", |l| l.swap(70, 71));
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind),
        (71, ProblemKind::Reordered),
        "{}",
        r.render()
    );

    // Insert a forged line.
    let (_d, r) = damaged("insert.jsonl", |l| {
        let forged = l[79].clone();
        l.insert(80, forged);
    });
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind),
        (81, ProblemKind::Inserted),
        "{}",
        r.render()
    );

    // Truncate mid-line: every reader tolerates it, verify names it.
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = dir.path().join("cut.jsonl");
    let text = std::fs::read(&clean().path).expect("read");
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    std::fs::write(&cut, &text[..text.len() - 30]).expect("write");
    let r = verify(&cut);
    let p = r.problem().expect("a problem").clone();
    assert_eq!(
        (p.line, p.kind, r.exit_code()),
        (lines, ProblemKind::Truncated, 1),
        "{}",
        r.render()
    );
    let t = cutover::transcript::read(&cut).expect("a torn tail is tolerated");
    assert!(t.torn_tail.is_some());
    assert_eq!(t.events.len(), lines - 2);
    let replay = Replay::open(&cut).expect("replay opens a torn transcript");
    assert_eq!(replay.len(), lines - 2);
    assert!(
        report::report(&cut, Format::Md)
            .expect("report")
            .contains("Torn tail")
    );

    // An unknown version is unreadable (exit 2), not damage.
    let (_d, r) = damaged("version.jsonl", |l| {
        let h = String::from_utf8(l[0].clone()).expect("utf-8").replacen(
            "\"version\":6",
            "\"version\":99",
            1,
        );
        l[0] = h.into_bytes();
    });
    assert_eq!(r.exit_code(), 2, "{}", r.render());
    assert_eq!(
        r.problem().map(|p| p.kind),
        Some(ProblemKind::UnknownVersion)
    );
}

#[test]
fn the_report_of_a_known_rehearsal_has_its_steps_durations_and_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = runtime()
        .block_on(rehearse::autopilot(Rehearsal {
            plan: Arc::new(plan::rehearsal_plan()),
            faults: Vec::new(),
            seed: 5,
            sessions_dir: Some(dir.path().to_path_buf()),
            operator: "ana".into(),
            sign_key: None,
            clock: cutover::clock::ClockKind::Sim,
        }))
        .expect("the rehearsal runs");
    assert!(summary.completed, "{}", summary.render_text());
    let path = PathBuf::from(summary.transcript.clone().expect("a transcript"));
    let md = report::report(&path, Format::Md).expect("report");
    let r = report::build(&path).expect("report");

    assert_eq!(r.session.outcome, "completed");
    assert!(r.integrity.chain_intact);
    assert_eq!(r.steps.len(), summary.steps.len());
    for (got, want) in r.steps.iter().zip(&summary.steps) {
        assert_eq!(got.id, want.id);
        assert_eq!(got.status, "done");
        assert_eq!(got.confirmed_by.as_deref(), Some("autopilot"));
        let (g, w) = (
            got.duration_s.expect("a duration"),
            want.duration_s.expect("a duration"),
        );
        assert!((g - w).abs() < 1e-9, "{}: {g} vs {w}", got.id);
        assert!(
            md.contains(&format!("| {} | {} | done |", got.number, got.id)),
            "{md}"
        );
    }
    // The write-downtime window: from the freeze action to the unfreeze action, and what the
    // world measured.
    assert_eq!(r.downtime.freeze_step.as_deref(), Some("freeze"));
    assert_eq!(r.downtime.unfreeze_step.as_deref(), Some("unfreeze"));
    let window = r.downtime.window_s.expect("a window");
    assert!(window > 0.0 && !r.downtime.open);
    let measured = r.downtime.measured.as_ref().expect("the world's measures");
    assert_eq!(measured.downtime_s, summary.downtime_s);
    assert!(
        md.contains(&format!("downtime {:.1}s", summary.downtime_s)),
        "{md}"
    );
    assert!(
        md.contains("## Write downtime") && md.contains("(freeze started)"),
        "{md}"
    );
    assert_eq!(r.downtime.ended_by.as_deref(), Some("unfreeze finished"));
    // Who confirmed what, with the gates at that moment.
    let freeze = r
        .decisions
        .iter()
        .find(|d| d.kind == "confirmed" && d.step.as_deref() == Some("freeze"))
        .expect("the freeze decision");
    assert_eq!(freeze.by, "autopilot");
    assert!(!freeze.gates.is_empty());
    assert!(
        freeze
            .gates
            .iter()
            .all(|g| g.state == cutover::state::GateState::Green)
    );
    assert!(
        md.contains("`source.read_only == false fresh 5s` green"),
        "{md}"
    );
    // Lag and drift over time.
    assert!(
        r.series
            .iter()
            .any(|s| s.name == "heartbeat lag" && s.samples > 5)
    );
    assert!(md.contains("heartbeat lag"));
    // JSON carries the same.
    let json: serde_json::Value =
        serde_json::from_str(&report::report(&path, Format::Json).expect("json"))
            .expect("valid JSON");
    assert_eq!(json["session"]["outcome"], "completed");
    assert_eq!(
        json["steps"].as_array().map(Vec::len),
        Some(summary.steps.len())
    );
}

#[test]
fn the_report_of_a_faulty_rehearsal_lists_its_anomalies() {
    let rec = faulty();
    let r = report::build(&rec.path).expect("report");
    let kinds: Vec<&str> = r.anomalies.iter().map(|a| a.kind.as_str()).collect();
    // The lost change is caught by the shipped plan's drift abort (a rollback by `abort
    // drift`), before the drain's timeout would have.
    for k in ["fault", "source failure", "rollback", "checksum mismatch"] {
        assert!(
            kinds.contains(&k),
            "no {k} in {kinds:?}\n{}",
            report::render_md(&r)
        );
    }
    assert_eq!(
        r.session.outcome,
        "rolled back",
        "{}",
        report::render_md(&r)
    );
    let md = report::render_md(&r);
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.kind == "rollback" && a.text.starts_with("abort drift rolled back")),
        "{md}"
    );
    assert!(
        md.contains("## Guards") && md.contains("**Guards fired:** abort drift: rollback"),
        "{md}"
    );
    assert_eq!(
        r.downtime.ended_by.as_deref(),
        Some("freeze undone"),
        "{md}"
    );
    assert!(md.contains("undone"), "{md}");
}

/// The recorded rehearsal shipped in the repository verifies, replays and reports.
#[test]
fn the_shipped_example_session_verifies_replays_and_reports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/example-rehearsal.jsonl");
    let v = verify(&path);
    assert!(v.is_intact(), "{}", v.render());
    assert!(std::fs::metadata(&path).expect("the example exists").len() < 2_000_000);
    let mut r = Replay::open(&path).expect("replay");
    let n = r.len();
    assert!(r.state_at(n).expect("fold").rolled_back());
    let md = report::report(&path, Format::Md).expect("report");
    assert!(
        md.contains("**checksum mismatch**") && md.contains("**fault**"),
        "{md}"
    );
}

/// The example was recorded when plans froze writes with `kind = "sql"` and a `SET GLOBAL
/// read_only` statement: its plan text now reads as the typed freeze, and the report finds
/// the same downtime window it found then.
#[test]
fn the_example_sessions_legacy_sql_freeze_still_bounds_the_downtime_window() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/example-rehearsal.jsonl");
    let header = cutover::transcript::Reader::open(&path)
        .expect("the example opens")
        .header()
        .clone();
    assert!(
        header.plan_text.contains(
            r#"action = { kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }"#
        ),
        "the example should carry the legacy spelling"
    );
    let recorded = plan::parse("example", &header.plan_text).expect("the recorded plan parses");
    let action = |id: &str| &recorded.steps[recorded.step_index(id).expect("step")].action;
    assert!(matches!(
        action("freeze"),
        plan::Action::Freeze {
            on: cutover::event::Side::Source,
            ..
        }
    ));
    assert!(matches!(
        action("unfreeze"),
        plan::Action::Unfreeze {
            on: cutover::event::Side::Target,
            ..
        }
    ));

    let r = report::build(&path).expect("report");
    let d = &r.downtime;
    assert_eq!(d.freeze_step.as_deref(), Some("freeze"));
    assert_eq!(d.unfreeze_step.as_deref(), Some("unfreeze"));
    assert_eq!(d.from.as_deref(), Some("2026-11-21T06:49:10.605Z"));
    assert_eq!(d.to.as_deref(), Some("2026-11-21T06:49:35.628Z"));
    assert_eq!(d.ended_by.as_deref(), Some("freeze undone"));
    assert_eq!(d.window_s, Some(25.023));
    assert!(!d.open);
    let md = report::render_md(&r);
    assert!(
        md.contains(
            "- **Window:** 25.0s from 2026-11-21T06:49:10.605Z (freeze started) to 2026-11-21T06:49:35.628Z (freeze undone)"
        ),
        "{md}"
    );
}

const SECRET: &str = "Zq9-hunter2-secret";

/// The rehearsal plan with a password file on the source and a first step whose script
/// prints the password every way a careless script might.
fn leaky_plan(pw: &Path) -> Plan {
    let pw = pw.display();
    let step = format!(
        r#"
[[step]]
id = "leaky-script"
title = "A script that prints credentials"
gates = ["task.status == running"]
action = {{ kind = "shell", command = 'echo "connecting to mysql://app:$(cat {pw})@db.internal:3306/shop"; echo "password=$(cat {pw})"; echo "the secret is $(cat {pw})"; echo "mysql://root:$(cat {pw})@db" >&2' }}
irreversible = true
confirm = "leak"
timeout = "30s"
"#
    );
    let text = plan::REHEARSAL_PLAN
        .replacen(
            "engine = \"rehearsal\"\nlabel = \"shop-mysql",
            &format!("engine = \"rehearsal\"\npassword_file = \"{pw}\"\nlabel = \"shop-mysql"),
            1,
        )
        .replacen(
            "\n[[step]]\nid = \"preflight\"",
            &format!("{step}\n[[step]]\nid = \"preflight\""),
            1,
        );
    let plan = plan::parse("leaky.toml", &text).expect("the leaky plan parses");
    assert_eq!(plan.steps[0].id, "leaky-script");
    assert!(plan.source.password_file.is_some());
    plan
}

#[test]
fn no_secret_appears_in_any_transcript_or_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{SECRET}\n")).expect("write the password file");
    let sessions = dir.path().join("sessions");
    let summary = runtime()
        .block_on(rehearse::autopilot(Rehearsal {
            plan: Arc::new(leaky_plan(&pw)),
            faults: vec![Fault::ApiThrottle],
            seed: 3,
            sessions_dir: Some(sessions.clone()),
            operator: "ana".into(),
            sign_key: None,
            clock: cutover::clock::ClockKind::Sim,
        }))
        .expect("the rehearsal runs");
    let path = PathBuf::from(summary.transcript.clone().expect("a transcript"));
    let text = std::fs::read_to_string(&path).expect("read the transcript");
    // The script ran and its output was recorded, scrubbed.
    assert!(
        text.contains("mysql://app:***@db.internal:3306/shop"),
        "the script's output is missing"
    );
    assert!(text.contains("password=***"));
    let mut outputs = vec![("transcript".to_string(), text)];
    outputs.push((
        "report md".into(),
        report::report(&path, Format::Md).expect("report"),
    ));
    outputs.push((
        "report json".into(),
        report::report(&path, Format::Json).expect("report"),
    ));
    outputs.push(("verify".into(), verify(&path).render()));
    outputs.push(("summary".into(), summary.render_text()));
    // What a seek checkpoint of this session would hold, and every file the session wrote.
    let folded = fold_file(&path).expect("the transcript folds");
    outputs.push((
        "seek checkpoint".into(),
        String::from_utf8(folded.snapshot().expect("snapshot")).expect("utf-8"),
    ));
    for entry in std::fs::read_dir(&sessions).expect("list the sessions dir") {
        let file = entry.expect("entry").path();
        let bytes = std::fs::read(&file).expect("read a session file");
        outputs.push((
            file.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (what, out) in &outputs {
        assert!(!out.contains(SECRET), "the secret appears in the {what}");
    }
    for rec in [clean(), faulty()] {
        let text = std::fs::read_to_string(&rec.path).expect("read");
        assert!(!text.contains("password=") || text.contains("password=***"));
    }
}

/// Every way a password can be written into an endpoint's URL (issue 18).
fn url_forms(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "userinfo",
            format!("mysql://app:{secret}@db.internal:3306/shop"),
        ),
        (
            "?password=",
            format!("postgres://app@db.internal/shop?password={secret}"),
        ),
        (
            "?PassWord=",
            format!("postgres://app@db.internal/shop?sslmode=require&PassWord={secret}"),
        ),
        (
            "percent-encoded key",
            format!("postgres://app@db.internal/shop?pass%77ord={secret}"),
        ),
        (
            "?sslpassword=",
            format!("postgres://app@db.internal/shop?sslpassword={secret}"),
        ),
        (
            "?pwd=",
            format!("mysql://app@db.internal/shop?pwd={secret}"),
        ),
        (
            "?passwd=",
            format!("mysql://app@db.internal/shop?passwd={secret}"),
        ),
        (
            "?token=",
            format!("mysql://app@db.internal/shop?token={secret}"),
        ),
        (
            "libpq keywords",
            format!("host=db.internal user=app password={secret} dbname=shop"),
        ),
        (
            "ODBC keywords",
            format!("Server=db.internal;Uid=app;Pwd={secret};"),
        ),
    ]
}

/// Every file under `dir`, with its text.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// A password written into a URL, in any form, is refused when the plan is validated, so no
/// session starts and nothing it would write (transcript and its `plan_text`, seek file,
/// log) ever holds it; the refusal itself does not repeat it. Before: `?password=` (and the
/// keyword forms) validated, the session ran and the header carried the password in clear.
/// A session given the password the supported way (`password_file`) writes it nowhere.
#[test]
fn a_password_in_any_url_form_never_reaches_a_file_the_session_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_cutover");
    for (i, (form, url)) in url_forms(SECRET).into_iter().enumerate() {
        let plan_file = dir.path().join(format!("plan-{i}.toml"));
        let text = plan::REHEARSAL_PLAN.replacen(
            "engine = \"rehearsal\"\nlabel = \"shop-mysql",
            &format!("engine = \"rehearsal\"\nurl = \"{url}\"\nlabel = \"shop-mysql"),
            1,
        );
        assert_ne!(text, plan::REHEARSAL_PLAN);
        let url_line = text
            .lines()
            .position(|l| l.starts_with("url = "))
            .map(|i| i + 1)
            .expect("the url line");
        std::fs::write(&plan_file, &text).expect("write the plan");
        let sessions = dir.path().join(format!("sessions-{i}"));
        let out = std::process::Command::new(bin)
            .args(["rehearse", "--autopilot", "--json", "--seed", "3", "--plan"])
            .arg(&plan_file)
            .arg("--sessions-dir")
            .arg(&sessions)
            .output()
            .expect("run cutover");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{form}: the plan must be refused\n{stdout}\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "plan-{i}.toml:{url_line}:7: the [source] url contains"
            )),
            "{form}: the refusal names file:line:col and the reason: {stderr}"
        );
        assert!(
            stderr.contains("password_file"),
            "{form}: the fix: {stderr}"
        );
        for (what, text) in [("stdout", &*stdout), ("stderr", &*stderr)] {
            assert!(!text.contains(SECRET), "{form}: the secret is in {what}");
        }
        for (file, text) in files_under(&sessions) {
            assert!(
                !text.contains(SECRET),
                "{form}: the secret is in {}",
                file.display()
            );
        }
        let transcripts = files_under(&sessions)
            .into_iter()
            .filter(|(f, _)| f.extension().is_some_and(|x| x == "jsonl"))
            .count();
        assert_eq!(transcripts, 0, "{form}: no session may start");
    }

    // The supported way: the password in a file the plan names. The session runs and writes
    // its transcript, seek file and log, none holding the password.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{SECRET}\n")).expect("write the password file");
    let plan_file = dir.path().join("good.toml");
    let text = plan::REHEARSAL_PLAN.replacen(
        "engine = \"rehearsal\"\nlabel = \"shop-mysql",
        &format!(
            "engine = \"rehearsal\"\npassword_file = \"{}\"\nlabel = \"shop-mysql",
            pw.display()
        ),
        1,
    );
    std::fs::write(&plan_file, &text).expect("write the plan");
    let sessions = dir.path().join("sessions-good");
    let out = std::process::Command::new(bin)
        .args(["rehearse", "--autopilot", "--json", "--seed", "3", "--plan"])
        .arg(&plan_file)
        .arg("--sessions-dir")
        .arg(&sessions)
        .output()
        .expect("run cutover");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written = files_under(&sessions);
    let has = |ext: &str| {
        written
            .iter()
            .any(|(f, _)| f.to_string_lossy().ends_with(ext))
    };
    assert!(has(".jsonl") && has(".log"), "{written:?}");
    for (file, text) in &written {
        assert!(
            !text.contains(SECRET),
            "the secret is in {}",
            file.display()
        );
    }
    for out in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(out).contains(SECRET));
    }
}

/// Folds whatever the file holds so far (a torn tail is fine).
fn fold_file(path: &Path) -> Option<State> {
    let t = cutover::transcript::read(path).ok()?;
    let plan = plan::parse("recorded", &t.header.plan_text).ok()?;
    let mut s = State::new(Arc::new(plan));
    for e in &t.events {
        s.apply(e);
    }
    Some(s)
}

fn only_jsonl(dir: &Path, except: &[PathBuf]) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl") && !except.contains(p))
}

fn wait_for_file(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Confirms `step` in the cockpit once the screen says it is ready.
fn confirm(term: &mut pty::Pty, step: &str, phrase: &str) {
    let t = Duration::from_secs(90);
    term.wait_for(&format!("ready: {step}"), t);
    term.send("\r");
    term.wait_for(&format!("type `{phrase}` to confirm"), t);
    term.send(&format!("{phrase}\r"));
}

#[test]
fn a_cutover_killed_mid_step_is_resumed_resolved_and_finished() {
    let t = Duration::from_secs(90);
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = dir.path().join("sessions");
    let s = sessions.to_str().expect("utf-8 path");
    // dns-slow keeps the DNS flip waiting ~15 s: the window to kill the cockpit in.
    let mut term = pty::Pty::spawn(
        &[
            "rehearse",
            "--operator",
            "alice",
            "--sessions-dir",
            s,
            "--chaos",
            "dns-slow",
        ],
        dir.path(),
        W,
        H,
    );
    term.wait_for("[REHEARSAL]", t);
    for (step, phrase) in [
        ("preflight", "ready"),
        ("freeze", "freeze writes"),
        ("drain", "drained"),
        ("stop-replication", "stop replication"),
        ("flip-dns", "flip dns"),
    ] {
        confirm(&mut term, step, phrase);
    }
    let old = only_jsonl(&sessions, &[]).expect("a transcript");
    wait_for_file("the DNS flip to start", t, || {
        fold_file(&old).is_some_and(|s| {
            let i = s.plan.step_index("flip-dns").expect("step");
            s.steps[i].status == StepStatus::Running && s.steps[i].started_at.is_some()
        })
    });
    let pid = term.pid().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    term.wait_exit(t);
    drop(term);

    // The interrupted transcript: intact (perhaps with a torn tail), no end, a step in doubt.
    let v = verify(&old);
    assert!(
        v.is_intact()
            || v.problem()
                .is_some_and(|p| p.kind == ProblemKind::Truncated),
        "{}",
        v.render()
    );
    let interrupted = cutover::resume::load(&old).expect("resumable");
    let flip = interrupted.plan.step_index("flip-dns").expect("step");
    assert_eq!(interrupted.in_doubt(), vec![flip]);

    // Bob signs the resumed transcript with his own SSH key.
    let key_file = dir.path().join("bob_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob", "-f"])
        .arg(&key_file)
        .status()
        .expect("ssh-keygen runs (.ci/run installs openssh-client)");
    assert!(made.success());
    let mut term = pty::Pty::spawn(
        &[
            "resume",
            old.to_str().expect("utf-8"),
            "--operator",
            "bob",
            "--sign-key",
            key_file.to_str().expect("utf-8"),
            "--sessions-dir",
            s,
        ],
        dir.path(),
        W,
        H,
    );
    term.wait_for("IN DOUBT", t);
    term.wait_for("\"done flip-dns\"", t);
    term.send("maybe\r");
    term.wait_for("type exactly", t);
    term.send("done flip-dns\r");
    term.wait_for("[REHEARSAL]", t);
    confirm(&mut term, "unfreeze", "unfreeze target");
    confirm(&mut term, "post-checks", "done");
    let new = only_jsonl(&sessions, std::slice::from_ref(&old)).expect("the resumed transcript");
    wait_for_file("the cutover to complete", t, || {
        fold_file(&new).is_some_and(|s| s.completed())
    });
    term.send("q");
    term.wait_exit(t);

    // The new file replays alone, links to the old one and records the resolution.
    let v = verify(&new);
    assert!(v.is_intact(), "{}", v.render());
    assert!(
        v.notes.iter().any(|n| n.contains("hash matches")),
        "{}",
        v.render()
    );
    let bob_pub = std::fs::read_to_string(dir.path().join("bob_ed25519.pub")).unwrap();
    let signed = cutover::transcript::verify::verify_with(
        &new,
        &cutover::transcript::verify::VerifyOptions {
            key: Some(cutover::transcript::PublicKey::parse(&bob_pub).unwrap()),
            ..Default::default()
        },
    );
    assert!(signed.is_authentic(), "{}", signed.render());
    let tr = cutover::transcript::read(&new).expect("read");
    let from = tr
        .header
        .resumed_from
        .as_ref()
        .expect("linked to the old file");
    assert_eq!(from.last_seq, interrupted.last_seq);
    assert_eq!(from.last_hash, interrupted.last_hash);
    assert!(tr.events.iter().any(|e| matches!(e,
        Event::StepResolved { step, done: true, by, .. } if step == "flip-dns" && by == "bob")));
    assert!(
        !tr.events
            .iter()
            .skip(interrupted.events.len())
            .any(|e| matches!(e,
        Event::ActionStarted { step, direction: Direction::Do, .. } if step == "flip-dns"))
    );
    let r = report::build(&new).expect("report");
    assert_eq!(r.session.outcome, "completed", "{}", report::render_md(&r));
    let md = report::render_md(&r);
    assert!(md.contains("bob marked done **flip-dns**"), "{md}");
    assert!(md.contains("**in doubt**"), "{md}");
    let mut replay = Replay::open(&new).expect("replay");
    assert!(replay.state_at(replay.len()).expect("fold").completed());
}

/// `cutover replay` in a terminal: the cockpit's screens with the timeline, the replay's
/// keys, quit, the terminal restored.
#[test]
fn the_example_session_replays_in_a_terminal() {
    let t = Duration::from_secs(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/example-rehearsal.jsonl");
    let mut term = pty::Pty::spawn(
        &["replay", example.to_str().expect("utf-8"), "--paused"],
        dir.path(),
        W,
        H,
    );
    term.wait_for("[REPLAY]", t);
    term.wait_for("⏸", t);
    term.wait_for("chain ✓", t);
    // To the end: the rollback is on screen; back to the start; step by step.
    term.send("G");
    term.wait_for("rollback complete", t);
    term.send("g");
    term.wait_until("the start", t, |s| s.contains("+00:00:00/"));
    term.send("]");
    term.wait_until("the first step event", t, |s| !s.contains("+00:00:00/"));
    // A confirmation key does nothing in a replay: read-only by construction.
    term.send("\r");
    term.wait_for("cannot confirm", t);
    term.send(" ");
    term.wait_for("▶", t);
    term.send("q");
    let status = term.wait_exit(t);
    assert!(status.success(), "{status:?}");
    term.wait_until("the alternate screen to be left", t, |s| {
        !s.contains("[REPLAY]")
    });
}

/// A long live session leaves seek checkpoints beside its transcript (and a resumed one
/// beside its new file); a replay of either seeks from them, and its background pass finds
/// every one equal to its own fold.
#[test]
fn a_live_session_leaves_seek_checkpoints_that_replay_uses_and_confirms() {
    use cutover::session::{Session, SessionConfig};
    use cutover::transcript::index::Index;
    use cutover::transcript::seek::{self, SeekFile};

    let dir = tempfile::tempdir().unwrap();
    let cfg = || SessionConfig {
        plan: Arc::new(plan::rehearsal_plan()),
        mode: "test".into(),
        operator: "op".into(),
        sessions_dir: Some(dir.path().to_path_buf()),
        actuator: None,
        sign_key: None,
    };
    let _rt = runtime().enter();
    let (mut session, _inbox) = Session::open(cfg()).unwrap();
    let t0 = session.state.now;
    // Batches of awkward sizes, so checkpoints fall inside batches.
    let mut at = t0;
    for size in [1, 3_333, 9_999, 7_001, 4_667] {
        let batch: Vec<Event> = (0..size)
            .map(|_| {
                at += 10;
                Event::Tick { at }
            })
            .collect();
        session.ingest(batch).unwrap();
    }
    let path = session.transcript_path().unwrap().to_path_buf();
    let total = session.state.events as usize;
    assert_eq!(total, 25_002);
    let live_end = session.state.snapshot().unwrap();
    drop(session);

    let check_file = |path: &Path, total: usize| {
        let index = Index::open(path).unwrap();
        assert_eq!(index.len(), total);
        let file = SeekFile::open(&seek::beside(path), &index.root_hash, seek::EVERY)
            .unwrap()
            .expect("a seek file beside the transcript");
        let at: Vec<usize> = file.entries.iter().map(|e| e.n).collect();
        assert_eq!(at, [10_000, 20_000]);
        for e in &file.entries {
            assert_eq!(e.hash, index.record_hash(e.n - 1).unwrap(), "at {}", e.n);
        }
        let mut r = Replay::open_with(path, ReplayOptions::default()).unwrap();
        assert_eq!(r.seek_file(), Some(seek::beside(path).as_path()));
        let end = r.state_at(total).unwrap().snapshot().unwrap();
        r.wait_for_checkpoints();
        assert_eq!(r.seek_problem(), None);
        assert_eq!(r.chain(), cutover::replay::ChainCheck::Intact);
        let t = cutover::transcript::read(path).unwrap();
        let plan = Arc::new(plan::parse("recorded", &t.header.plan_text).unwrap());
        let (mut folded, mut done) = (State::new(plan), 0);
        for n in [5, 10_001, 19_999, 20_000, total] {
            for e in &t.events[done..n] {
                let _ = folded.apply(e);
            }
            done = n;
            assert_eq!(
                r.state_at(n).unwrap().snapshot().unwrap(),
                folded.snapshot().unwrap(),
                "at {n}"
            );
        }
        end
    };
    assert_eq!(check_file(&path, total), live_end);

    let interrupted = cutover::resume::load(&path).unwrap();
    let (resumed, _inbox) = Session::resume(
        cfg(),
        cutover::transcript::ResumedFrom {
            file: path.display().to_string(),
            last_seq: interrupted.last_seq,
            last_hash: interrupted.last_hash.clone(),
        },
        interrupted.events.clone(),
    )
    .unwrap();
    let new = resumed.transcript_path().unwrap().to_path_buf();
    let resumed_total = resumed.state.events as usize;
    drop(resumed);
    assert_eq!(resumed_total, total + 1, "history, then its own start");
    check_file(&new, resumed_total);
}

/// A report without what this release added to its integrity part (verify's verdict, the
/// authorship status, the signing key, the plan-hash check): the one other intended change
/// to the reports of old transcripts.
fn without_audit_lines(report: &str, ext: &str) -> String {
    if ext == "md" {
        return report
            .lines()
            .filter(|l| {
                !["- **Verify:**", "- **Authorship:**", "- **Signed by:**"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(|l| l.replace(" (matches the recorded plan)", ""))
            .collect::<Vec<_>>()
            .join("\n")
            + if report.ends_with('\n') { "\n" } else { "" };
    }
    // JSON: the integrity object's added fields, which follow its `torn_tail`.
    let mut out = Vec::new();
    let mut skipping = false;
    for l in report.lines() {
        if l.starts_with("    \"torn_tail\":") {
            out.push(l.trim_end_matches(',').to_string());
            skipping = true;
            continue;
        }
        if skipping {
            if l == "  }," {
                skipping = false;
            } else {
                continue;
            }
        }
        out.push(l.to_string());
    }
    out.join("\n") + if report.ends_with('\n') { "\n" } else { "" }
}

/// The report without what the guards added (the budget fields of the downtime, the
/// guards' figures: detection, rollback, which fired), which the previous release did not
/// measure.
fn without_guard_figures(report: &str, ext: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for l in report.lines() {
        if ext == "md" {
            if l == "## Guards" {
                skipping = true;
                // The blank line before the heading goes with it.
                if out.last().is_some_and(|p: &&str| p.is_empty()) {
                    out.pop();
                }
                continue;
            }
            if skipping && l.starts_with("## ") {
                skipping = false;
                out.push("");
            }
        } else {
            let t = l.trim_start();
            if [
                "\"max_downtime_s\"",
                "\"budget_warned_at\"",
                "\"budget_spent_at\"",
            ]
            .iter()
            .any(|k| t.starts_with(k))
            {
                continue;
            }
            if l == "  \"guards\": {" {
                skipping = true;
                continue;
            }
            if skipping {
                skipping = l != "  },";
                continue;
            }
        }
        if !skipping {
            out.push(l);
        }
    }
    out.join("\n") + if report.ends_with('\n') { "\n" } else { "" }
}

/// Transcripts the previous release wrote (format 1: DMS-shaped `task` / `table_stats`
/// readings and the lag as `CDC*` metric series) verify, replay and report exactly as that
/// release reported them (its Markdown and JSON are kept beside them), but for the two
/// intended changes: the freeze steps' typed description, and the lag charts' engine-neutral
/// names.
#[test]
fn format_1_transcripts_report_as_the_previous_release_did() {
    let intended = |old: String| {
        old.replace("CDC latency (target)", "replication lag (apply)")
            .replace("CDC latency (source)", "replication lag (capture)")
            .replace(
                "SQL on source: SET GLOBAL read_only = ON",
                "freeze writes on source (SET GLOBAL read_only = ON)",
            )
            .replace(
                "SQL on target: SET GLOBAL read_only = OFF",
                "unfreeze writes on target (SET GLOBAL read_only = OFF)",
            )
            // A fix: a rolled-back step's result is its action's, not its undo's a second
            // time (the undo keeps its own part of the cell / field).
            .replace(
                "| source read_only = OFF (was ON); undone at",
                "| source read_only = ON (was OFF); undone at",
            )
            .replace(
                "\"message\": \"source read_only = OFF (was ON)\"",
                "\"message\": \"source read_only = ON (was OFF)\"",
            )
    };
    for (transcript, golden, completed) in [
        (
            "sessions/example-rehearsal.jsonl",
            "tests/fixtures/example-rehearsal",
            false,
        ),
        (
            "tests/fixtures/format1-completed-rehearsal.jsonl",
            "tests/fixtures/format1-completed-rehearsal",
            true,
        ),
    ] {
        // Relative paths, as the previous release was given them (the report names its file).
        let path = Path::new(transcript);
        let v = verify(path);
        assert!(v.is_intact(), "{}", v.render());
        assert_eq!(v.version, Some(1), "{transcript} is a format-1 file");
        let mut r = Replay::open(path).expect("replay");
        let n = r.len();
        let end = r.state_at(n).expect("fold");
        assert_eq!(end.completed(), completed, "{transcript}");
        assert_eq!(end.rolled_back(), !completed, "{transcript}");
        // The format-1 readings fill the engine-neutral view.
        let repl = end
            .replication
            .status()
            .expect("the task readings fold into the view");
        assert_eq!(repl.name, "shop-cdc");
        assert!(
            !end.replication.lag.points.is_empty(),
            "CDC series feed the lag"
        );
        assert!(
            end.replication.tables_at.is_some(),
            "table stats feed the tables"
        );
        for (format, ext) in [(Format::Json, "json"), (Format::Md, "md")] {
            let now = without_guard_figures(
                &without_audit_lines(&report::report(path, format).expect("report"), ext),
                ext,
            );
            let before = std::fs::read_to_string(format!("{golden}.report-before.{ext}"))
                .expect("the previous release's report");
            // The chart labels are padded to the longest; the new names are longer.
            let unpad = |text: &str| {
                text.lines()
                    .map(|l| match l.split_once('│') {
                        Some((label, rest)) => format!("{}│{rest}", label.trim_end()),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(
                unpad(&now),
                unpad(&intended(before)),
                "{transcript} as {ext}"
            );
        }
    }
}

/// A format-4 transcript (signed, written before guards recorded warnings; this fixture is
/// a clean autopilot rehearsal the last format-4 writer made) still reads, verifies with its
/// signatures, replays and reports under the format-5 reader.
#[test]
fn format_4_transcripts_still_read_verify_and_report() {
    let path = Path::new("tests/fixtures/format4-completed-rehearsal.jsonl");
    let v = verify(path);
    assert!(v.is_intact(), "{}", v.render());
    assert_eq!(v.version, Some(4));
    let t = cutover::transcript::read(path).expect("a format-4 file reads");
    assert!(t.torn_tail.is_none());
    assert!(
        !t.events
            .iter()
            .any(|e| matches!(e, Event::GuardWarned { .. } | Event::HoldCleared { .. })),
        "format 4 has no guard records"
    );
    let mut r = Replay::open(path).expect("replay");
    let n = r.len();
    let end = r.state_at(n).expect("fold");
    assert!(end.completed());
    let rep = report::build(path).expect("report");
    assert_eq!(rep.session.outcome, "completed");
    assert!(rep.downtime.window_s.is_some_and(|w| w > 0.0));
    assert_eq!(rep.guards.fired, Vec::<String>::new());
}

/// Hardening findings 2 and 6: one driver per session, and resume without side effects.
/// A running cockpit holds its transcript's lock, so `resume` from a second process is
/// refused, naming the pid; once that cockpit is dead, `resume` without a terminal refuses
/// before it creates or applies anything; and in a terminal it does not run a completed
/// `shell` step again without the operator typing consent.
#[test]
fn resume_is_refused_while_the_cockpit_runs_and_never_reruns_a_shell_step_unasked() {
    let t = Duration::from_secs(90);
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = dir.path().join("sessions");
    let resumed = dir.path().join("resumed");
    let ran = dir.path().join("ran.txt");
    let plan = dir.path().join("shell.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
name = "shell-resume"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "rehearsal"
task = "t"
[rehearsal]
tables = ["a"]
rows_per_table = 10
[[step]]
id = "note"
title = "Write a line"
action = {{ kind = "shell", command = "echo ran >> {}" }}
irreversible = true
confirm = "note"
[[step]]
id = "later"
title = "Never reached here"
confirm = "later"
"#,
            ran.display()
        ),
    )
    .expect("plan");
    let s = sessions.to_str().expect("utf-8");
    let r = resumed.to_str().expect("utf-8");
    let lines_in = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };

    let mut a = pty::Pty::spawn(
        &[
            "rehearse",
            "--plan",
            plan.to_str().expect("utf-8"),
            "--sessions-dir",
            s,
        ],
        dir.path(),
        W,
        H,
    );
    a.wait_for("[REHEARSAL]", t);
    confirm(&mut a, "note", "note");
    wait_for_file("the shell step to run", t, || lines_in(&ran) == 1);
    let old = only_jsonl(&sessions, &[]).expect("a transcript");
    wait_for_file("the step to be recorded done", t, || {
        fold_file(&old).is_some_and(|st| st.steps[0].status == StepStatus::Done)
    });
    let pid = a.pid().expect("pid");

    // A second cockpit while the first still runs: refused, naming the holder.
    let old_s = old.to_str().expect("utf-8");
    let mut b = pty::Pty::spawn(&["resume", old_s, "--sessions-dir", r], dir.path(), W, H);
    b.wait_for(&format!("in use by pid {pid}"), t);
    b.wait_for("--force", t);
    let status = b.wait_exit(t);
    assert_eq!(status.exit_code(), 2, "{status:?}");
    assert!(only_jsonl(&resumed, &[]).is_none(), "nothing was created");

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    a.wait_exit(t);
    drop(a);

    // No terminal: refused before anything is created or applied.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["resume", old_s, "--sessions-dir", r])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs a terminal"), "{stderr}");
    assert!(only_jsonl(&resumed, &[]).is_none(), "nothing was created");
    assert_eq!(lines_in(&ran), 1);

    // In a terminal: the shell step is not run again without consent.
    let mut c = pty::Pty::spawn(&["resume", old_s, "--sessions-dir", r], dir.path(), W, H);
    c.wait_for("is not idempotent", t);
    c.send("rerun later\r");
    c.wait_for("type exactly", t);
    c.send("skip note\r");
    c.wait_for("[REHEARSAL]", t);
    c.send("q");
    c.wait_for("Quit anyway?", t);
    c.send("y");
    c.wait_exit(t);
    assert_eq!(lines_in(&ran), 1, "the shell command ran once only");
    let new = only_jsonl(&resumed, &[]).expect("the resumed transcript");
    let tr = cutover::transcript::read(&new).expect("read");
    assert!(tr.events.iter().any(|e| matches!(e,
        Event::Note { text, .. } if text.contains("chose not to run note again"))));
    assert!(
        !cutover::transcript::lock::record_path(&new).exists(),
        "the lock record goes when the cockpit ends"
    );
}

/// A rehearsal's transcript rewritten as an attacker would: the confirmer of every step
/// "mallory", the world's lost writes 0 → 7, then the chain recomputed — once in place
/// (the real header and key kept, the signatures dropped: the forger cannot make them),
/// once re-recorded under the forger's own key (a file as consistent as the real one).
/// The chain alone cannot tell; the key and head handed out at the session's end can, and
/// the report shows the verdict.
#[test]
fn a_forged_rechained_transcript_fails_under_the_sessions_key_and_the_report_says_so() {
    use cutover::transcript::verify::{AuthorshipStatus, VerifyOptions, verify_with};
    use cutover::transcript::{PublicKey, Recorder, SessionKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = runtime()
        .block_on(rehearse::autopilot(Rehearsal {
            plan: Arc::new(plan::rehearsal_plan()),
            faults: Vec::new(),
            seed: 5,
            sessions_dir: Some(dir.path().to_path_buf()),
            operator: "ana".into(),
            sign_key: None,
            clock: cutover::clock::ClockKind::Sim,
        }))
        .expect("the rehearsal runs");
    let real = PathBuf::from(summary.transcript.clone().expect("a transcript"));
    let key_text = summary
        .transcript_key
        .clone()
        .expect("the summary hands out the key");
    let head = summary.transcript_head.clone().expect("and the head");
    assert!(
        summary
            .render_text()
            .contains(&format!("--key {key_text} --expect-head {head}"))
    );
    let key = PublicKey::parse(&key_text).expect("the printed key parses");
    let anchors = VerifyOptions {
        key: Some(key),
        expect_head: Some(head.clone()),
        follow: None,
    };

    // The real file: authentic under both anchors, in verify and in every report format.
    let v = verify_with(&real, &anchors);
    assert_eq!(v.exit_code(), 0, "{}", v.render());
    assert!(v.is_authentic(), "{}", v.render());
    let md = report::report_with(&real, Format::Md, &anchors).expect("report");
    assert!(md.contains("- **Authorship:** AUTHENTIC"), "{md}");
    assert!(md.contains("- **Outcome:** completed\n"), "{md}");

    // The forgery's events.
    let forge = |ev: Event| match ev {
        Event::StepConfirmed { at, step, .. } => Event::StepConfirmed {
            at,
            step,
            by: "mallory".into(),
        },
        Event::WorldMeasured { at, mut measures } => {
            measures.writes_lost = 7;
            Event::WorldMeasured { at, measures }
        }
        ev => ev,
    };
    let original = cutover::transcript::read(&real).expect("read");
    assert!(
        original.events.iter().any(
            |e| matches!(e, Event::WorldMeasured { measures, .. } if measures.writes_lost == 0)
        )
    );

    // 1. Rewritten in place and re-chained.
    let text = std::fs::read_to_string(&real).expect("read");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for i in 1..lines.len() {
        let mut v: serde_json::Value = serde_json::from_str(&lines[i]).expect("a record");
        let ev: Event = serde_json::from_value(v["event"].clone()).expect("an event");
        let o = v.as_object_mut().expect("an object");
        o.insert(
            "event".into(),
            serde_json::to_value(forge(ev)).expect("json"),
        );
        o.remove("sig");
        o.insert(
            "prev".into(),
            serde_json::Value::String(cutover::transcript::line_hash(lines[i - 1].as_bytes())),
        );
        lines[i] = serde_json::to_string(&v).expect("json");
    }
    let in_place = dir.path().join("in-place.jsonl");
    std::fs::write(&in_place, lines.join("\n") + "\n").expect("write");
    let alone = verify(&in_place);
    assert!(
        alone.is_intact(),
        "the chain alone cannot tell: {}",
        alone.render()
    );
    let v = verify_with(&in_place, &anchors);
    assert_ne!(v.exit_code(), 0, "{}", v.render());
    assert!(
        matches!(
            v.authorship.status,
            AuthorshipStatus::Forged | AuthorshipStatus::Untrusted
        ),
        "{}",
        v.render()
    );
    assert!(v.render().contains("carry no signature"), "{}", v.render());

    // 2. Re-recorded under the forger's own key.
    let mut header = original.header.clone();
    header.operator = "mallory".into();
    let forged = dir.path().join("forged.jsonl");
    let mut rec =
        Recorder::create_at_signed(&forged, header, SessionKey::generate().expect("a key"))
            .expect("create");
    let events: Vec<Event> = original.events.iter().cloned().map(forge).collect();
    for batch in events.chunks(50) {
        rec.append(batch).expect("append");
    }
    drop(rec);

    let alone = verify(&forged);
    assert_eq!(alone.exit_code(), 0, "{}", alone.render());
    assert_eq!(alone.authorship.status, AuthorshipStatus::IntegrityOnly);
    let out = alone.render();
    assert!(
        out.contains("proves integrity against accidents, not authorship"),
        "{out}"
    );
    assert!(
        out.contains("proves nothing against someone who rewrote the whole file"),
        "{out}"
    );

    let by_key = verify_with(
        &forged,
        &VerifyOptions {
            key: Some(key),
            ..VerifyOptions::default()
        },
    );
    assert_eq!(
        by_key.authorship.status,
        AuthorshipStatus::Forged,
        "{}",
        by_key.render()
    );
    assert_eq!(by_key.exit_code(), 1);
    assert!(
        by_key.render().contains(": FORGED: signed by "),
        "{}",
        by_key.render()
    );
    let by_head = verify_with(
        &forged,
        &VerifyOptions {
            expect_head: Some(head.clone()),
            ..VerifyOptions::default()
        },
    );
    assert_eq!(
        by_head.authorship.status,
        AuthorshipStatus::Forged,
        "{}",
        by_head.render()
    );

    // The report shows the verdict in every format, and does not call the lost writes a
    // completed run.
    let md = report::report_with(&forged, Format::Md, &anchors).expect("report");
    assert!(md.contains("- **Authorship:** FORGED: signed by "), "{md}");
    assert!(md.contains("- **WARNING:**"), "{md}");
    assert!(
        md.contains("- **Outcome:** completed WITH DATA LOSS: 7 acknowledged write(s) lost"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &report::report_with(&forged, Format::Json, &anchors).expect("report"),
    )
    .expect("json");
    assert_eq!(
        json["integrity"]["authorship"]["status"], "forged",
        "{json}"
    );
    assert_eq!(json["integrity"]["plan_hash_matches"], true);
    let md = report::report(&forged, Format::Md).expect("report");
    assert!(md.contains("- **Authorship:** INTEGRITY ONLY"), "{md}");

    // The command line: the same verdicts and exit codes.
    let bin = env!("CARGO_BIN_EXE_cutover");
    let out = std::process::Command::new(bin)
        .args([
            "verify",
            forged.to_str().expect("utf-8"),
            "--key",
            &key_text,
        ])
        .output()
        .expect("run cutover verify");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FORGED"));
    let out = std::process::Command::new(bin)
        .args([
            "verify",
            real.to_str().expect("utf-8"),
            "--key",
            &key_text,
            "--expect-head",
            &head,
        ])
        .output()
        .expect("run cutover verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("authorship: AUTHENTIC"));
    let out = std::process::Command::new(bin)
        .args([
            "verify",
            real.to_str().expect("utf-8"),
            "--key",
            "not-a-key",
        ])
        .output()
        .expect("run cutover verify");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key: not an Ed25519 public key"));
}

/// The plan hash is re-checked by report too: an edited plan text says so in every format.
#[test]
fn report_rechecks_the_plan_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = runtime()
        .block_on(rehearse::autopilot(Rehearsal {
            plan: Arc::new(plan::rehearsal_plan()),
            faults: Vec::new(),
            seed: 2,
            sessions_dir: Some(dir.path().to_path_buf()),
            operator: "ana".into(),
            sign_key: None,
            clock: cutover::clock::ClockKind::Sim,
        }))
        .expect("the rehearsal runs");
    let real = PathBuf::from(summary.transcript.expect("a transcript"));
    let text = std::fs::read_to_string(&real).expect("read");
    let (head, rest) = text.split_once('\n').expect("a header line");
    let mut v: serde_json::Value = serde_json::from_str(head).expect("json");
    let plan = v["header"]["plan_text"]
        .as_str()
        .expect("plan text")
        .to_string();
    v["header"]["plan_text"] = serde_json::Value::String(plan.replace("# ", "#  "));
    assert_ne!(
        v["header"]["plan_text"].as_str(),
        Some(plan.as_str()),
        "the plan has a comment"
    );
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        format!("{}\n{rest}", serde_json::to_string(&v).expect("json")),
    )
    .expect("write");
    let r = report::build(&edited).expect("report");
    assert!(!r.integrity.plan_hash_matches);
    let md = report::render_md(&r);
    assert!(
        md.contains("**DOES NOT MATCH** the recorded plan text"),
        "{md}"
    );
    assert!(md.contains("- **Verify:** edited at line 1"), "{md}");
}

/// Report and replay go through the transcript crate's capped readers: 4 GiB of NULs (a
/// sparse file, no disk) and a FIFO give a clear error at once, no abort, no hang.
#[test]
fn report_and_replay_refuse_a_huge_line_and_a_fifo_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zeros = dir.path().join("zeros.jsonl");
    std::fs::File::create(&zeros)
        .and_then(|f| f.set_len(4 << 30))
        .expect("a sparse file");
    let pipe = dir.path().join("pipe.jsonl");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .expect("mkfifo")
            .success()
    );
    let e = report::build(&zeros).expect_err("refused").to_string();
    assert!(
        e.contains("zeros.jsonl:1: line 1 longer than 16 MiB"),
        "{e}"
    );
    let e = Replay::open(&zeros).err().expect("refused").to_string();
    assert!(e.contains("line 1 longer than 16 MiB"), "{e}");
    let e = report::build(&pipe).expect_err("refused").to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = Replay::open(&pipe).err().expect("refused").to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

/// `report --format html`: one self-contained page that parses, holds a chart per plotted
/// series with the step markers, names no URL, and renders in a real browser.
#[test]
fn the_html_report_parses_draws_every_series_and_renders_in_chromium() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/example-rehearsal.jsonl");
    for path in [example.as_path(), faulty().path.as_path()] {
        let r = report::build(path).expect("report");
        let html = report::render_html(&r);
        let doc = scraper::Html::parse_document(&html);
        assert!(
            doc.errors.is_empty(),
            "{}: {:?}",
            path.display(),
            doc.errors
        );
        let sel = |s: &str| scraper::Selector::parse(s).unwrap();
        let plotted = r.series.iter().filter(|s| s.samples > 0).count();
        let charts: Vec<_> = doc.select(&sel("figure.chart")).collect();
        assert_eq!(charts.len(), plotted, "{}", path.display());
        assert!(plotted >= 3, "{plotted} series");
        let started = r.steps.iter().filter(|s| s.started_at.is_some()).count();
        for c in &charts {
            assert_eq!(c.select(&sel("svg.series")).count(), 1);
            assert_eq!(c.select(&sel("desc.step-marker")).count(), started);
        }
        let bars = doc.select(&sel("svg.gantt rect.action")).count();
        assert_eq!(bars, started, "one action bar per step that ran");
        if r.session.outcome.contains("rolled back") {
            assert!(doc.select(&sel("svg.gantt line.rollback")).count() >= 1);
        }
        // Self-contained: no script, no external stylesheet, image or font, no URL at all.
        for forbidden in ["<script", "<link", " src=", "http://", "https://", "url("] {
            assert!(!html.contains(forbidden), "{}: {forbidden}", path.display());
        }
    }

    // Headless Chromium renders it to a PNG of the asked size, not blank.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let r = report::build(&example).expect("report");
    std::fs::write(&page, report::render_html(&r)).unwrap();
    let png_path = dir.path().join("report.png");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--hide-scrollbars",
            "--window-size=1000,1600",
        ])
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", page.display()))
        .env("HOME", dir.path())
        .output()
        .expect("chromium is needed to render the HTML report (.ci/run installs it)");
    assert!(
        png_path.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (1000, 1600));
    let px = info.color_type.samples();
    let first = &buf[..px];
    let differing = buf[..info.buffer_size()]
        .chunks(px)
        .filter(|p| *p != first)
        .count();
    let total = (info.width * info.height) as usize;
    assert!(
        differing * 50 > total,
        "the rendered page is (nearly) blank: {differing} of {total} pixels differ"
    );
}
