//! Whole-screen snapshots on a fixed-size `TestBackend` (80x24 and 120x40) and key tests.
//! Every timestamp is fixed, so a snapshot changes only when the screen does.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::*;
use cutover_core::event::{
    ChecksumState, DatabaseReading, DiffKey, DiffKind, Direction, DnsReading, Event, MetricSeries,
    PeerRole, Reading, Side, SourceKind, TableDrift, TableStat, TaskReading, Ts, WorldMeasures,
};
use cutover_core::state::{OpenDialog, State, StepStatus};

/// 2026-01-01T00:00:00Z.
const T0: Ts = 1_767_225_600_000;

fn t(sec: f64) -> Ts {
    T0 + (sec * 1000.0).round() as Ts
}

/// What one poll of every source sees.
#[derive(Clone)]
struct World {
    source_ro: bool,
    target_ro: bool,
    dns_target: bool,
    dns_status: &'static str,
    lag: f64,
    task_status: &'static str,
    writes_source: f64,
    writes_target: f64,
    refused: f64,
    /// (table, source rows, target rows, checksum, differing key)
    drift: Vec<(&'static str, u64, u64, ChecksumState, Option<&'static str>)>,
    db_fails: bool,
}

impl World {
    fn steady() -> World {
        World {
            source_ro: false,
            target_ro: true,
            dns_target: false,
            dns_status: "INSYNC",
            lag: 0.4,
            task_status: "running",
            writes_source: 40.0,
            writes_target: 0.0,
            refused: 0.0,
            drift: vec![
                ("customers", 400, 400, ChecksumState::Equal, None),
                ("orders", 412, 412, ChecksumState::Equal, None),
                ("payments", 405, 405, ChecksumState::Equal, None),
            ],
            db_fails: false,
        }
    }
}

struct Fx {
    st: State,
}

/// The shipped plan without its `[[abort]]` conditions: the scenarios stage drift and lag
/// to show gates, dialogs and panes, on which the shipped aborts would fire and take the
/// screen over. The guards have scenarios of their own (`held`); the downtime budget and the
/// deadline stay, so every status bar shows their countdowns.
fn plan_text() -> String {
    cutover_core::plan::rehearsal_plan_text_without_aborts()
}

fn scenario_plan() -> cutover_core::plan::Plan {
    cutover_core::plan::rehearsal_plan_without_aborts()
}

impl Fx {
    fn new() -> Fx {
        let mut fx = Fx {
            st: State::new(Arc::new(scenario_plan())),
        };
        fx.ev(Event::SessionStarted {
            at: T0,
            mode: "rehearsal".into(),
            operator: "alice".into(),
        });
        fx
    }

    fn ev(&mut self, e: Event) {
        self.st.apply(&e);
    }

    fn obs(&mut self, at: Ts, reading: Reading) {
        self.ev(Event::Observed { at, reading });
    }

    fn poll(&mut self, at: Ts, w: &World) {
        self.obs(
            at,
            Reading::Task(TaskReading {
                observed_at: at,
                task: "shop-cdc".into(),
                status: w.task_status.into(),
                stop_reason: (w.task_status == "stopped")
                    .then(|| "Stop Reason STOPPED_BY_USER".into()),
                full_load_pct: Some(100.0),
                tables_loaded: Some(3),
                tables_loading: Some(0),
                tables_queued: Some(0),
                tables_errored: Some(0),
            }),
        );
        let stats = w
            .drift
            .iter()
            .map(|(name, ..)| TableStat {
                table: (*name).into(),
                full_load_rows: Some(400),
                inserts: Some(12),
                updates: Some(3),
                deletes: Some(0),
                validation_state: Some("Validated".into()),
                validation_pending: Some(0),
                validation_failed: Some(0),
                validation_suspended: Some(0),
                table_state: Some("Table completed".into()),
            })
            .collect();
        self.obs(
            at,
            Reading::TableStats {
                observed_at: at,
                tables: stats,
            },
        );
        let series = |name: &str, unit: Option<&str>, v: f64| MetricSeries {
            name: name.into(),
            unit: unit.map(Into::into),
            points: vec![(at, v)],
        };
        self.obs(
            at,
            Reading::Metrics {
                observed_at: at,
                series: vec![
                    series("CDCLatencySource", Some("s"), w.lag * 0.8),
                    series("CDCLatencyTarget", Some("s"), w.lag),
                    series("CDCIncomingChanges", None, (w.lag * 30.0).round()),
                    series("WritesSource", None, w.writes_source),
                    series("WritesTarget", None, w.writes_target),
                    series("WritesRefused", None, w.refused),
                ],
            },
        );
        self.obs(
            at,
            Reading::Heartbeat {
                observed_at: at,
                lag_s: w.lag + 0.1,
            },
        );
        let (src, tgt) = (
            "shop-mysql.source.internal.",
            "shop-aurora.target.internal.",
        );
        let value = if w.dns_target { tgt } else { src };
        self.obs(
            at,
            Reading::Dns(Box::new(DnsReading {
                observed_at: at,
                name: "db.shop.internal.".into(),
                record_type: "CNAME".into(),
                value: Some(value.into()),
                ttl: Some(3),
                change_status: Some(w.dns_status.into()),
                change_id: None,
                resolved: Some(if w.dns_status == "INSYNC" { value } else { src }.into()),
                sets: Vec::new(),
                authoritative: None,
                authoritative_error: None,
            })),
        );
        if w.db_fails {
            self.ev(Event::SourceFailed {
                at,
                source: SourceKind::SourceDb,
                error: "connection refused (shop-mysql:3306)".into(),
            });
        } else {
            self.db(
                at,
                Side::Source,
                w.source_ro,
                if w.source_ro { 0.0 } else { w.writes_source },
            );
        }
        self.db(at, Side::Target, w.target_ro, w.writes_target);
        for (name, s, tg, ck, key) in &w.drift {
            let pending = *ck == ChecksumState::Pending;
            self.obs(
                at,
                Reading::Drift(TableDrift {
                    observed_at: at,
                    table: (*name).into(),
                    source_rows: Some(*s),
                    target_rows: Some(*tg),
                    checksum: *ck,
                    chunks_done: Some(if pending { 3 } else { 8 }),
                    chunks_total: Some(8),
                    differing_keys: key
                        .map(|k| {
                            vec![DiffKey {
                                key: k.into(),
                                kind: DiffKind::MissingOnTarget,
                            }]
                        })
                        .unwrap_or_default(),
                    note: None,
                }),
            );
        }
    }

    fn db(&mut self, at: Ts, side: Side, ro: bool, writes: f64) {
        self.obs(
            at,
            Reading::Database(DatabaseReading {
                observed_at: at,
                side,
                server: Some("MySQL 8.0.36".into()),
                read_only: Some(ro),
                connections: Some(if ro { 2 } else { 14 }),
                longest_trx_s: Some(0.0),
                writes_per_s: Some(writes),
            }),
        );
    }

    /// Polls every second from `from` to `to` (inclusive).
    fn polls(&mut self, from: u32, to: u32, w: &World) {
        for s in from..=to {
            self.poll(t(s as f64), w);
        }
    }

    /// The operator confirms a step and its action runs to completion.
    fn run(&mut self, id: &str, at: f64, output: &str, message: &str) {
        let by = "alice".to_string();
        self.ev(Event::StepConfirmRequested {
            at: t(at),
            step: id.into(),
            by: by.clone(),
        });
        self.ev(Event::StepConfirmed {
            at: t(at + 0.1),
            step: id.into(),
            by,
        });
        let desc = {
            let i = self.st.plan.step_index(id).unwrap();
            self.st.plan.steps[i].action.describe(&self.st.plan)
        };
        self.ev(Event::ActionStarted {
            at: t(at + 0.2),
            step: id.into(),
            direction: Direction::Do,
            description: desc,
        });
        if !output.is_empty() {
            self.ev(Event::ActionOutput {
                at: t(at + 0.3),
                step: id.into(),
                direction: Direction::Do,
                line: output.into(),
            });
        }
        self.ev(Event::ActionFinished {
            at: t(at + 0.5),
            step: id.into(),
            direction: Direction::Do,
            ok: true,
            message: message.into(),
        });
    }
}

/// Preflight done, fresh green readings after it: the freeze step is ready.
fn freeze_ready() -> State {
    let mut fx = Fx::new();
    fx.ev(Event::PeerJoined {
        at: t(0.5),
        peer: "bob".into(),
        role: Some(PeerRole::Approver),
    });
    let w = World::steady();
    fx.polls(1, 8, &w);
    fx.run("preflight", 8.3, "", "gates recorded");
    fx.polls(9, 11, &w);
    fx.st
}

/// Writes frozen; the drain is blocked: orders is three rows short and its checksum
/// mismatches, payments is still being compared.
fn mid_cutover() -> State {
    let mut fx = Fx::new();
    fx.ev(Event::PeerJoined {
        at: t(0.5),
        peer: "bob".into(),
        role: Some(PeerRole::Approver),
    });
    let mut w = World::steady();
    fx.polls(1, 8, &w);
    fx.run("preflight", 8.3, "", "gates recorded");
    fx.polls(9, 11, &w);
    fx.run(
        "freeze",
        11.4,
        "SET GLOBAL read_only = ON",
        "source is read-only",
    );
    w.source_ro = true;
    w.writes_source = 0.0;
    w.refused = 38.0;
    for (s, lag) in [
        (12, 0.3),
        (13, 0.1),
        (14, 0.0),
        (15, 0.0),
        (16, 0.0),
        (17, 0.0),
        (18, 0.0),
    ] {
        w.lag = lag;
        if s >= 15 {
            w.drift = vec![
                ("customers", 400, 400, ChecksumState::Equal, None),
                ("orders", 412, 409, ChecksumState::Mismatch, Some("id=407")),
                ("payments", 405, 405, ChecksumState::Pending, None),
            ];
        }
        fx.poll(t(s as f64), &w);
    }
    fx.ev(Event::WorldMeasured {
        at: t(18.2),
        measures: WorldMeasures {
            writes_attempted: 940,
            writes_acked: 728,
            writes_refused: 212,
            writes_lost: 0,
            rows_diverged: 3,
            downtime_s: 6.8,
            authority: Some(Side::Source),
        },
    });
    fx.st
}

/// Frozen, drained, replication stopped and the CNAME on the target: three undos to run.
fn flipped() -> State {
    let mut fx = Fx::new();
    let mut w = World::steady();
    fx.polls(1, 8, &w);
    fx.run("preflight", 8.3, "", "gates recorded");
    fx.polls(9, 11, &w);
    fx.run(
        "freeze",
        11.4,
        "SET GLOBAL read_only = ON",
        "source is read-only",
    );
    w.source_ro = true;
    w.lag = 0.0;
    fx.polls(12, 16, &w);
    fx.run("drain", 16.3, "", "drained");
    fx.polls(17, 18, &w);
    fx.run(
        "stop-replication",
        18.3,
        "task shop-cdc stopping",
        "task shop-cdc stopped",
    );
    w.task_status = "stopped";
    fx.polls(19, 20, &w);
    fx.run(
        "flip-dns",
        20.3,
        "change C123 PENDING",
        "db.shop.internal. -> shop-aurora.target.internal. INSYNC",
    );
    w.dns_target = true;
    fx.polls(21, 23, &w);
    fx.st
}

/// The freeze step's gate on the source database has gone stale: its probe fails.
fn stale_gate() -> State {
    let mut fx = Fx::new();
    let mut w = World::steady();
    fx.polls(1, 8, &w);
    fx.run("preflight", 8.3, "", "gates recorded");
    fx.polls(9, 10, &w);
    w.db_fails = true;
    fx.polls(11, 17, &w);
    fx.st
}

/// The freeze action is running and has printed a line.
fn running() -> State {
    let mut fx = Fx::new();
    let w = World::steady();
    fx.polls(1, 8, &w);
    fx.run("preflight", 8.3, "", "gates recorded");
    fx.polls(9, 11, &w);
    fx.ev(Event::StepConfirmRequested {
        at: t(11.4),
        step: "freeze".into(),
        by: "alice".into(),
    });
    fx.ev(Event::StepConfirmed {
        at: t(11.5),
        step: "freeze".into(),
        by: "alice".into(),
    });
    fx.ev(Event::ActionStarted {
        at: t(11.6),
        step: "freeze".into(),
        direction: Direction::Do,
        description: "SQL on source: SET GLOBAL read_only = ON".into(),
    });
    fx.ev(Event::ActionOutput {
        at: t(11.7),
        step: "freeze".into(),
        direction: Direction::Do,
        line: "waiting for 2 open transactions to finish".into(),
    });
    fx.ev(Event::Tick { at: t(13.0) });
    fx.st
}

fn ui(mode: Mode) -> UiState {
    UiState::new(
        mode,
        "alice".into(),
        Some("sessions/2026-01-01T00-00-00Z-rehearsal.jsonl".into()),
    )
}

fn render(st: &State, ui: &UiState, theme: &Theme, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    term.draw(|f| draw(f, st, ui, theme)).expect("draw");
    term
}

fn dark() -> Theme {
    Theme::load(None).expect("default theme")
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_str(ui: &mut UiState, st: &State, s: &str) {
    for c in s.chars() {
        assert!(handle_key(ui, st, key(KeyCode::Char(c)), t(30.0)).is_empty());
    }
}

fn screen(term: &Terminal<TestBackend>) -> String {
    term.backend().to_string()
}

// ---------------------------------------------------------------------------------------
// Snapshots

#[test]
fn snapshot_main_mid_cutover_80x24() {
    let st = mid_cutover();
    insta::assert_snapshot!(
        "main_80x24",
        render(&st, &ui(Mode::Rehearsal), &dark(), 80, 24).backend()
    );
}

#[test]
fn snapshot_main_mid_cutover_120x40() {
    let st = mid_cutover();
    insta::assert_snapshot!(
        "main_120x40",
        render(&st, &ui(Mode::Rehearsal), &dark(), 120, 40).backend()
    );
}

#[test]
fn snapshot_confirm_dialog() {
    let st = freeze_ready();
    let mut u = ui(Mode::Drive);
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    assert!(matches!(
        out.as_slice(),
        [Intent::Record(Event::StepConfirmRequested { .. })]
    ));
    type_str(&mut u, &st, "freeze wr");
    insta::assert_snapshot!("confirm_80x24", render(&st, &u, &dark(), 80, 24).backend());
    insta::assert_snapshot!(
        "confirm_120x40",
        render(&st, &u, &dark(), 120, 40).backend()
    );
}

#[test]
fn snapshot_confirm_dialog_after_a_wrong_phrase() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    type_str(&mut u, &st, "freeze rights");
    handle_key(&mut u, &st, key(KeyCode::Enter), t(12.5));
    insta::assert_snapshot!(
        "confirm_wrong_phrase_80x24",
        render(&st, &u, &dark(), 80, 24).backend()
    );
}

#[test]
fn snapshot_rollback_dialog() {
    let st = flipped();
    let mut u = ui(Mode::Rehearsal);
    let out = handle_key(&mut u, &st, key(KeyCode::Char('R')), t(24.0));
    assert!(matches!(
        out.as_slice(),
        [Intent::Record(Event::RollbackRequested { .. })]
    ));
    type_str(&mut u, &st, "roll");
    insta::assert_snapshot!("rollback_80x24", render(&st, &u, &dark(), 80, 24).backend());
    insta::assert_snapshot!(
        "rollback_120x40",
        render(&st, &u, &dark(), 120, 40).backend()
    );
}

#[test]
fn snapshot_help_overlay() {
    let st = mid_cutover();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Char('?')), t(20.0));
    assert!(u.help);
    insta::assert_snapshot!("help_80x24", render(&st, &u, &dark(), 80, 24).backend());
}

#[test]
fn snapshot_no_color_has_no_colour_and_keeps_every_symbol() {
    let st = mid_cutover();
    let term = render(&st, &ui(Mode::Rehearsal), &Theme::no_color(), 80, 24);
    for cell in term.backend().buffer().content() {
        assert!(
            matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
            "coloured cell {cell:?}"
        );
    }
    let dark = screen(&render(&st, &ui(Mode::Rehearsal), &dark(), 80, 24));
    assert_eq!(screen(&term), dark, "only colour may differ");
    insta::assert_snapshot!("no_color_80x24", term.backend());
}

#[test]
fn snapshot_stale_gate_is_unknown_with_its_reason() {
    let st = stale_gate();
    let term = render(&st, &ui(Mode::Rehearsal), &dark(), 80, 24);
    let text = screen(&term);
    assert!(text.contains("? source.read_only"), "{text}");
    insta::assert_snapshot!("stale_gate_80x24", term.backend());
    insta::assert_snapshot!(
        "stale_gate_120x40",
        render(&st, &ui(Mode::Rehearsal), &dark(), 120, 40).backend()
    );
}

#[test]
fn snapshot_running_step() {
    let st = running();
    insta::assert_snapshot!(
        "running_80x24",
        render(&st, &ui(Mode::Drive), &dark(), 80, 24).backend()
    );
}

#[test]
fn snapshot_watch_sees_the_drivers_dialog_read_only() {
    let mut st = freeze_ready();
    st.apply(&Event::StepConfirmRequested {
        at: t(12.0),
        step: "freeze".into(),
        by: "alice".into(),
    });
    assert!(matches!(
        st.dialog,
        Some(OpenDialog::Confirm { step: 1, .. })
    ));
    let mut u = UiState::new(Mode::Watch, "bob".into(), None);
    u.footer = Some("▶ 1x  00:00:12 / 00:04:31".into());
    insta::assert_snapshot!(
        "watch_dialog_80x24",
        render(&st, &u, &dark(), 80, 24).backend()
    );
}

#[test]
fn snapshot_drift_zoomed_with_500_tables() {
    let st = bench_state(500, 20);
    let mut u = ui(Mode::Rehearsal);
    u.focus = Pane::Drift;
    handle_key(&mut u, &st, key(KeyCode::Char('z')), t(0.0));
    insta::assert_snapshot!(
        "drift_zoom_500_80x24",
        render(&st, &u, &dark(), 80, 24).backend()
    );
    insta::assert_snapshot!(
        "bench_120x40",
        render(&st, &ui(Mode::Rehearsal), &dark(), 120, 40).backend()
    );
}

#[test]
fn snapshot_too_small() {
    let st = mid_cutover();
    insta::assert_snapshot!(
        "too_small_10x5",
        render(&st, &ui(Mode::Rehearsal), &dark(), 10, 5).backend()
    );
    insta::assert_snapshot!(
        "too_small_50x12",
        render(&st, &ui(Mode::Rehearsal), &dark(), 50, 12).backend()
    );
}

#[test]
fn snapshot_quit_question_while_under_way() {
    let st = mid_cutover();
    let mut u = ui(Mode::Rehearsal);
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('q')), t(20.0)).is_empty());
    insta::assert_snapshot!("quit_80x24", render(&st, &u, &dark(), 80, 24).backend());
}

/// The rollback ran every undo: the steps read undone and the verdict says so.
fn rolled_back() -> State {
    let mut st = flipped();
    let at = t(24.0);
    st.apply(&Event::RollbackConfirmed {
        at,
        by: "alice".into(),
        reason: "operator".into(),
    });
    for (k, id) in ["flip-dns", "stop-replication", "freeze"]
        .into_iter()
        .enumerate()
    {
        let at = at + 1000 * (k as Ts + 1);
        st.apply(&Event::ActionStarted {
            at,
            step: id.into(),
            direction: Direction::Undo,
            description: "undo".into(),
        });
        st.apply(&Event::ActionFinished {
            at: at + 400,
            step: id.into(),
            direction: Direction::Undo,
            ok: true,
            message: format!("{id} undone"),
        });
    }
    st
}

#[test]
fn snapshot_rolled_back() {
    let st = rolled_back();
    assert!(st.rolled_back());
    insta::assert_snapshot!(
        "rolled_back_80x24",
        render(&st, &ui(Mode::Rehearsal), &dark(), 80, 24).backend()
    );
}

#[test]
fn snapshot_smallest_supported_size() {
    let st = mid_cutover();
    insta::assert_snapshot!(
        "min_60x16",
        render(&st, &ui(Mode::Rehearsal), &dark(), 60, 16).backend()
    );
}

#[test]
fn every_size_draws_without_panicking() {
    let states = [
        mid_cutover(),
        flipped(),
        stale_gate(),
        running(),
        bench_state(500, 20),
    ];
    let themes = [dark(), Theme::no_color()];
    for st in &states {
        for (w, h) in [
            (0, 0),
            (1, 1),
            (10, 5),
            (59, 15),
            (60, 16),
            (61, 17),
            (80, 24),
            (100, 30),
            (119, 35),
            (120, 36),
            (200, 60),
        ] {
            let mut u = ui(Mode::Rehearsal);
            render(st, &u, &themes[0], w, h);
            u.help = true;
            u.dialog = Some(Dialog::Rollback);
            u.quit_confirm = true;
            render(st, &u, &themes[1], w, h);
            u = ui(Mode::Replay);
            u.zoomed = true;
            u.footer = Some("timeline".into());
            render(st, &u, &themes[0], w, h);
        }
    }
}

#[test]
fn drawing_is_pure_the_same_state_draws_the_same_frame() {
    let st = mid_cutover();
    let before = format!("{:?}", st.steps);
    let a = screen(&render(&st, &ui(Mode::Rehearsal), &dark(), 120, 40));
    let b = screen(&render(&st, &ui(Mode::Rehearsal), &dark(), 120, 40));
    assert_eq!(a, b);
    assert_eq!(before, format!("{:?}", st.steps));
}

// ---------------------------------------------------------------------------------------
// Keys

fn records(out: &[Intent]) -> Vec<&Event> {
    out.iter()
        .filter_map(|i| match i {
            Intent::Record(e) => Some(e),
            Intent::Quit | Intent::Share(_) => None,
        })
        .collect()
}

#[test]
fn wrong_phrase_is_rejected_and_the_dialog_stays_open() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    type_str(&mut u, &st, "freeze");
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(13.0));
    match records(&out).as_slice() {
        [
            Event::StepConfirmRejected {
                step,
                by,
                reason,
                at,
            },
        ] => {
            assert_eq!(
                (step.as_str(), by.as_str(), reason.as_str(), *at),
                ("freeze", "alice", "wrong phrase", t(13.0))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(u.dialog, Some(Dialog::Confirm { step: 1 }));
    assert!(u.dialog_error.is_some());
}

#[test]
fn exact_phrase_confirms_and_the_fold_runs_the_step() {
    let mut st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    for i in handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0)) {
        if let Intent::Record(e) = i {
            st.apply(&e);
        }
    }
    assert!(matches!(
        st.dialog,
        Some(OpenDialog::Confirm { step: 1, .. })
    ));
    type_str(&mut u, &st, " freeze writes ");
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(12.5));
    let evs = records(&out);
    assert!(
        matches!(evs.as_slice(), [Event::StepConfirmed { step, by, .. }] if step == "freeze" && by == "alice"),
        "{evs:?}"
    );
    assert_eq!(u.dialog, None);
    assert!(u.input.is_empty());
    for e in evs {
        st.apply(e);
    }
    assert_eq!(st.steps[1].status, StepStatus::Running);
    assert_eq!(st.dialog, None);
}

#[test]
fn esc_cancels_the_dialog() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    type_str(&mut u, &st, "fre");
    let out = handle_key(&mut u, &st, key(KeyCode::Esc), t(12.2));
    assert!(
        matches!(records(&out).as_slice(), [Event::StepConfirmCancelled { step, .. }] if step == "freeze")
    );
    assert_eq!(u.dialog, None);
    assert!(u.input.is_empty());
}

#[test]
fn backspace_edits_and_q_is_typed_not_quit() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    type_str(&mut u, &st, "qx");
    handle_key(&mut u, &st, key(KeyCode::Backspace), t(12.1));
    assert_eq!(u.input, "q");
    assert!(!u.quit_confirm);
}

#[test]
fn a_blocked_step_explains_instead_of_opening() {
    let st = mid_cutover();
    let mut u = ui(Mode::Rehearsal);
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(20.0));
    assert!(out.is_empty());
    assert_eq!(u.dialog, None);
    let n = u.notice.clone().unwrap_or_default();
    assert!(
        n.contains("cannot confirm drain") && n.contains("drift.rows"),
        "{n}"
    );
}

#[test]
fn a_step_that_is_not_next_explains_instead_of_opening() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    u.focus = Pane::Checklist;
    handle_key(&mut u, &st, key(KeyCode::Down), t(12.0));
    assert_eq!(u.selected, Some(2));
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(12.0));
    assert!(out.is_empty());
    let n = u.notice.clone().unwrap_or_default();
    assert!(n.contains("only step 2 freeze can run next"), "{n}");
    // Esc follows the next step again.
    handle_key(&mut u, &st, key(KeyCode::Esc), t(12.0));
    assert_eq!(u.selected_step(&st), Some(1));
}

#[test]
fn read_only_modes_record_nothing() {
    let st = freeze_ready();
    for mode in [Mode::Watch, Mode::Replay] {
        let mut u = ui(mode);
        for code in [KeyCode::Enter, KeyCode::Char('R')] {
            let out = handle_key(&mut u, &st, key(code), t(12.0));
            assert!(out.is_empty(), "{mode:?} {code:?}");
            assert!(u.notice.as_deref().unwrap_or("").contains("read-only"));
            assert_eq!(u.dialog, None);
        }
        // Leaving a watch changes nothing, so it does not ask.
        let mid = mid_cutover();
        assert_eq!(
            handle_key(&mut u, &mid, key(KeyCode::Char('q')), t(12.0)),
            vec![Intent::Quit]
        );
    }
}

#[test]
fn quit_asks_while_under_way() {
    let st = mid_cutover();
    assert!(st.under_way());
    let mut u = ui(Mode::Rehearsal);
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('q')), t(20.0)).is_empty());
    assert!(u.quit_confirm);
    // Anything but yes stays.
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('n')), t(20.0)).is_empty());
    assert!(!u.quit_confirm);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(handle_key(&mut u, &st, ctrl_c, t(20.0)).is_empty());
    assert_eq!(
        handle_key(&mut u, &st, key(KeyCode::Char('y')), t(20.0)),
        vec![Intent::Quit]
    );

    // After the freeze, the question says the source stays frozen and offers the rollback.
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Char('q')), t(20.0));
    let shown = screen(&render(&st, &u, &dark(), 120, 40));
    assert!(
        shown.contains("writes stay frozen on the source"),
        "{shown}"
    );
    assert!(shown.contains("R roll back first"), "{shown}");
    let out = handle_key(&mut u, &st, key(KeyCode::Char('R')), t(20.0));
    assert!(
        matches!(records(&out)[..], [Event::RollbackRequested { .. }]),
        "{out:?}"
    );
    assert_eq!(u.dialog, Some(Dialog::Rollback));
    assert!(!u.quit_confirm);

    // Before anything ran, q quits at once.
    let fresh = Fx::new().st;
    let mut u = ui(Mode::Rehearsal);
    assert_eq!(
        handle_key(&mut u, &fresh, key(KeyCode::Char('q')), t(1.0)),
        vec![Intent::Quit]
    );
}

#[test]
fn rollback_needs_its_own_phrase() {
    let st = flipped();
    let mut u = ui(Mode::Rehearsal);
    let out = handle_key(&mut u, &st, key(KeyCode::Char('R')), t(24.0));
    assert!(
        matches!(records(&out).as_slice(), [Event::RollbackRequested { by, .. }] if by == "alice")
    );
    type_str(&mut u, &st, "rollback");
    assert!(handle_key(&mut u, &st, key(KeyCode::Enter), t(25.0)).is_empty());
    assert_eq!(u.dialog, Some(Dialog::Rollback));
    u.input.clear();
    type_str(&mut u, &st, "roll back");
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(26.0));
    assert!(
        matches!(records(&out).as_slice(), [Event::RollbackConfirmed { reason, .. }] if reason == "operator")
    );
    assert_eq!(st.rollback_preview(), vec![4, 3, 1]);
    assert_eq!(st.rollback_marks_only(), vec![0, 2]);
}

#[test]
fn rollback_with_nothing_run_is_a_notice() {
    let st = Fx::new().st;
    let mut u = ui(Mode::Rehearsal);
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('R')), t(1.0)).is_empty());
    assert!(u.notice.is_some());
}

#[test]
fn focus_zoom_and_scroll_stay_in_bounds() {
    let st = bench_state(500, 20);
    let mut u = ui(Mode::Rehearsal);
    for _ in 0..7 {
        handle_key(&mut u, &st, key(KeyCode::Tab), 0);
    }
    assert_eq!(u.focus, Pane::Checklist);
    handle_key(
        &mut u,
        &st,
        KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        0,
    );
    assert_eq!(u.focus, Pane::Log);
    handle_key(&mut u, &st, key(KeyCode::PageUp), 0);
    assert_eq!(u.scroll[Pane::Log.index()], 10);
    handle_key(&mut u, &st, key(KeyCode::End), 0);
    assert_eq!(u.scroll[Pane::Log.index()], 0);
    u.focus = Pane::Drift;
    handle_key(&mut u, &st, key(KeyCode::End), 0);
    assert_eq!(u.scroll[Pane::Drift.index()], 499);
    handle_key(&mut u, &st, key(KeyCode::Char('z')), 0);
    assert_eq!(u.zoom(), Some(Pane::Drift));
    handle_key(&mut u, &st, key(KeyCode::Esc), 0);
    assert_eq!(u.zoom(), None);
}

#[test]
fn help_swallows_the_key_that_closes_it() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    handle_key(&mut u, &st, key(KeyCode::Char('?')), 0);
    assert!(handle_key(&mut u, &st, key(KeyCode::Enter), 0).is_empty());
    assert!(!u.help);
    assert_eq!(u.dialog, None);
}

#[test]
fn key_releases_are_ignored() {
    let st = freeze_ready();
    let mut u = ui(Mode::Rehearsal);
    let mut k = key(KeyCode::Enter);
    k.kind = crossterm::event::KeyEventKind::Release;
    assert!(handle_key(&mut u, &st, k, 0).is_empty());
    assert_eq!(u.dialog, None);
}

#[test]
fn mode_labels() {
    assert_eq!(Mode::Rehearsal.label(), "[REHEARSAL]");
    assert_eq!(Mode::Drive.label(), "[DRIVE]");
    assert_eq!(Mode::Watch.label(), "[WATCH]");
    assert_eq!(Mode::Replay.label(), "[REPLAY]");
    assert!(Mode::Drive.can_act() && !Mode::Watch.can_act() && !Mode::Replay.can_act());
}

#[test]
fn a_step_in_doubt_after_a_crash_says_so_and_how_to_settle_it() {
    let mut st = running();
    let i = st.running_step().expect("a step is running");
    st.steps[i].in_doubt = Some(cutover_core::event::Direction::Do);
    let id = st.plan.steps[i].id.clone();
    let term = render(&st, &ui(Mode::Drive), &dark(), 120, 40);
    let s = screen(&term);
    assert!(s.contains("in doubt: its action has no result"), "{s}");
    assert!(
        s.contains(&format!("type `done {id}`")) && s.contains(&format!("or `not done {id}`")),
        "{s}"
    );
    assert!(
        s.contains(&format!("{id} is in doubt: its result was never recorded")),
        "{s}"
    );
    assert!(
        !s.contains(&format!("running {id}")),
        "an in-doubt step is not shown as running:\n{s}"
    );
}

/// The shipped plan with a drift abort that holds, fired by a poll with a row missing.
fn held() -> State {
    let text = format!(
        "{}\n[[abort]]\nid = \"drift\"\nwhen = \"drift.rows > 0 fresh 10s\"\nthen = \"hold\"\n",
        plan_text()
    );
    let plan = cutover_core::plan::parse("rehearsal.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut fx = Fx {
        st: State::new(Arc::new(plan)),
    };
    fx.ev(Event::SessionStarted {
        at: T0,
        mode: "rehearsal".into(),
        operator: "alice".into(),
    });
    let mut w = World::steady();
    fx.polls(1, 3, &w);
    w.drift[1] = ("orders", 412, 411, ChecksumState::Equal, None);
    fx.polls(4, 4, &w);
    fx.st
}

#[test]
fn a_fired_hold_shows_in_the_status_bar_and_help_and_h_clears_it_with_its_phrase() {
    let st = held();
    let mut u = ui(Mode::Rehearsal);
    let shown = screen(&render(&st, &u, &dark(), 120, 40));
    assert!(shown.contains("abort drift FIRED"), "{shown}");
    assert!(shown.contains("held by abort drift"), "{shown}");
    // The help lists the key and the plan's abort conditions with their states.
    handle_key(&mut u, &st, key(KeyCode::Char('?')), t(5.0));
    let shown = screen(&render(&st, &u, &dark(), 120, 40));
    assert!(shown.contains("clear a hold"), "{shown}");
    assert!(
        shown.contains("FIRED: `drift.rows > 0 fresh 10s` → hold"),
        "{shown}"
    );
    handle_key(&mut u, &st, key(KeyCode::Char('x')), t(5.0));

    // H opens the dialog (recording nothing); a wrong phrase keeps it open.
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('H')), t(5.0)).is_empty());
    assert_eq!(u.dialog, Some(Dialog::ClearHold));
    let shown = screen(&render(&st, &u, &dark(), 120, 40));
    assert!(
        shown.contains("abort drift holds every forward step"),
        "{shown}"
    );
    type_str(&mut u, &st, "clear");
    assert!(handle_key(&mut u, &st, key(KeyCode::Enter), t(6.0)).is_empty());
    assert_eq!(u.dialog, Some(Dialog::ClearHold));
    u.input.clear();
    type_str(&mut u, &st, "clear hold");
    let out = handle_key(&mut u, &st, key(KeyCode::Enter), t(7.0));
    assert!(
        matches!(records(&out).as_slice(), [Event::HoldCleared { guard, by, .. }] if guard == "abort drift" && by == "alice"),
        "{out:?}"
    );
    assert_eq!(u.dialog, None);

    // Nothing held: H only says so; a watcher cannot clear.
    let fresh = Fx::new().st;
    let mut u = ui(Mode::Rehearsal);
    assert!(handle_key(&mut u, &fresh, key(KeyCode::Char('H')), t(1.0)).is_empty());
    assert_eq!(u.dialog, None);
    assert!(
        u.notice
            .as_deref()
            .unwrap_or("")
            .contains("nothing is held")
    );
    let mut u = ui(Mode::Watch);
    assert!(handle_key(&mut u, &st, key(KeyCode::Char('H')), t(1.0)).is_empty());
    assert_eq!(u.dialog, None);
}

/// A weighted record: the DNS pane lists every set with its side, weight and share, and
/// the databases' lines stay on screen below them.
#[test]
fn the_dns_pane_lists_every_weighted_set_with_its_share() {
    let mut fx = Fx::new();
    let w = World::steady();
    fx.polls(1, 4, &w);
    let at = t(4.5);
    let set = |value: &str, id: &str, weight: u64| cutover_core::event::DnsSet {
        value: value.into(),
        set_identifier: Some(id.into()),
        weight: Some(weight),
        failover: None,
        alias: false,
        ttl: Some(3),
    };
    fx.obs(
        at,
        Reading::Dns(Box::new(DnsReading {
            observed_at: at,
            name: "db.shop.internal.".into(),
            record_type: "CNAME".into(),
            value: Some("shop-aurora.target.internal.,shop-mysql.source.internal.".into()),
            ttl: Some(3),
            change_status: None,
            change_id: None,
            resolved: Some("shop-mysql.source.internal.".into()),
            authoritative: None,
            authoritative_error: None,
            sets: vec![
                set("shop-mysql.source.internal.", "blue", 95),
                set("shop-aurora.target.internal.", "green", 5),
                set("shop-old.source.internal.", "old", 0),
            ],
        })),
    );
    let text = screen(&render(&fx.st, &ui(Mode::Rehearsal), &dark(), 120, 40));
    assert!(
        text.contains("→ source 95% · target 5% · other 0%"),
        "the pane's first line is the split:\n{text}"
    );
    assert!(
        text.contains("writable"),
        "the database lines stay:\n{text}"
    );
    let mut zoomed = ui(Mode::Rehearsal);
    zoomed.focus = Pane::Dns;
    zoomed.zoomed = true;
    let text = screen(&render(&fx.st, &zoomed, &dark(), 120, 40));
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
            .to_string()
    };
    assert!(line("id blue").contains("source") && line("id blue").contains("w 95 (95%)"));
    assert!(line("id green").contains("target") && line("id green").contains("w 5 (5%)"));
    assert!(line("id old").contains("other") && line("id old").contains("w 0 (0%)"));
}

// ---------------------------------------------------------------------------------------
// A native engine: the replication pane shows the engine's own facts, no DMS row

const MYSQL_PLAN: &str = r#"name = "binlog"
[source]
engine = "mysql"
url = "mysql://cutover@db-a.internal:3306/shop"
[target]
engine = "mysql"
url = "mysql://cutover@db-b.internal:3306/shop"
[replication]
engine = "mysql"
[[step]]
id = "drain"
title = "Replica caught up by GTID"
gates = ["replication.behind_transactions == 0", "source.gtid_stable_s >= 5"]
confirm = "drained"
"#;

fn mysql_replica_behind() -> State {
    use cutover_core::event::{
        EngineFact, ReplicationEngine, ReplicationReading, ReplicationStatus,
    };
    let plan = cutover_core::plan::parse("binlog.toml", MYSQL_PLAN).expect("valid plan");
    let mut st = State::new(Arc::new(plan));
    st.apply(&Event::SessionStarted {
        at: T0,
        mode: "watch".into(),
        operator: "alice".into(),
    });
    let fact = |label: &str, value: &str| EngineFact {
        label: label.into(),
        value: value.into(),
    };
    for (i, seq) in [(1, 5026), (2, 5026), (3, 5026)] {
        let at = t(f64::from(i));
        st.apply(&Event::Observed {
            at,
            reading: Reading::Replication(Box::new(ReplicationReading {
                observed_at: at,
                engine: ReplicationEngine::Mysql,
                name: "default channel".into(),
                status: ReplicationStatus::Stopped,
                status_text: "IO Yes, SQL No".into(),
                stop_reason: Some("IO thread Yes, SQL thread No".into()),
                last_error: None,
                figures_error: None,
                tables_error: None,
                validation_enabled: None,
                lag_s: Vec::new(),
                capture_lag_s: Vec::new(),
                backlog: Vec::new(),
                behind_transactions: Some(14),
                behind_bytes: None,
                full_load_pct: None,
                tables_loaded: None,
                tables_loading: None,
                tables_queued: None,
                tables_errored: None,
                tables: None,
                source_position: Some(format!("0-11-{seq}")),
                target_position: Some("0-11-5012".into()),
                source_gtid: Some(format!("0-11-{seq}")),
                facts: vec![
                    fact("IO thread", "Yes"),
                    fact("SQL thread", "No"),
                    fact("IO state", "Waiting for master to send event"),
                    fact("relay log space", "20431 bytes"),
                ],
                logical: None,
                sequences: None,
                sequences_error: None,
                gap_error: None,
            })),
        });
    }
    st.apply(&Event::Tick { at: t(3.5) });
    st
}

#[test]
fn a_binlog_replica_shows_its_threads_and_gtid_gap_and_no_dms_rows() {
    let st = mysql_replica_behind();
    let term = render(&st, &ui(Mode::Watch), &dark(), 120, 40);
    let text = screen(&term);
    for want in [
        "IO Yes, SQL No",
        "14 transactions behind",
        "0-11-5012",
        "0-11-5026",
        "source still 2s",
        "(replica is 14",
        "not reported by mysql",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    // The checklist's reason names the gap exactly (wrapped on screen).
    let (_, reason) = st.step_readiness(0);
    assert!(
        reason.as_deref().is_some_and(
            |r| r.contains("replica is 14 transactions behind (GTID 0-11-5012 of 0-11-5026)")
        ),
        "{reason:?}"
    );
    for dms_only in ["full load", "latency source", "incoming changes"] {
        assert!(!text.contains(dms_only), "{dms_only:?} shown:\n{text}");
    }
    insta::assert_snapshot!("mysql_replica_120x40", term.backend());
}
