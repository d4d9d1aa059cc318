//! The replication pane's body for PostgreSQL logical replication: the subscription and its
//! apply worker, the slot, the LSNs on both sides and the gap, the apply errors, the tables'
//! sync states and the sequences. None of DMS's rows (capture latency, incoming changes,
//! full load), which this engine does not have.

use ratatui::text::{Line, Span};

use super::Ctx;
use crate::ui::text::truncate;
use cutover_core::event::{LogicalFacts, ReplicationReading};
use cutover_core::state::fmt_bytes;

/// The lines after the status line, in order of urgency.
pub fn lines<'a>(
    ctx: &Ctx<'a>,
    r: &ReplicationReading,
    pg: &LogicalFacts,
    w: usize,
) -> Vec<Line<'a>> {
    let t = ctx.theme;
    let mut out = Vec::new();
    let line = |text: String, style| Line::from(Span::styled(truncate(&text, w), style));

    // The gap first: it is what the drain waits on.
    let gap = match (r.behind_bytes, &r.target_position, &r.source_position) {
        (Some(0), Some(tgt), _) => (format!("caught up at LSN {tgt}"), t.good),
        (Some(n), Some(tgt), Some(src)) => (
            format!("{} behind · LSN {tgt} of {src}", fmt_bytes(n)),
            t.warn,
        ),
        _ => ("gap unknown (no slot reading)".to_string(), t.unknown),
    };
    out.push(line(gap.0, gap.1));

    let worker = match pg.worker_pid {
        Some(pid) => format!("worker {pid}"),
        None => "no worker".to_string(),
    };
    let enabled = if pg.enabled { "enabled" } else { "disabled" };
    let style = if pg.enabled && pg.worker_pid.is_some() {
        t.text
    } else {
        t.warn
    };
    out.push(line(
        format!("subscription {} {enabled} · {worker}", pg.subscription),
        style,
    ));

    let slot = match pg.slot_active {
        Some(true) => (format!("slot {} active", pg.slot), t.text),
        Some(false) => (format!("slot {} inactive", pg.slot), t.warn),
        None => (format!("slot {} missing on the source", pg.slot), t.bad),
    };
    out.push(line(
        format!("{} · publication {}", slot.0, pg.publication),
        slot.1,
    ));

    // The engine's own facts: which publisher the subscription connects to, checked
    // against the plan's source (a mismatch fails the reading; "not verified" is a warning).
    for f in &r.facts {
        let style = if f.value.contains("not verified") {
            t.warn
        } else {
            t.dim
        };
        out.push(line(format!("{} {}", f.label, f.value), style));
    }

    match (pg.apply_errors, pg.sync_errors) {
        (Some(a), Some(s)) if a + s > 0 => out.push(line(
            format!("{a} apply error(s) · {s} sync error(s) (target's server log)"),
            t.bad,
        )),
        (Some(_), Some(_)) => out.push(line("no apply or sync errors".into(), t.dim)),
        _ => {}
    }

    // The fold keeps the per-table view in the state's tables, not in the status reading.
    if ctx.state.replication.tables_at.is_some() {
        let mut states: Vec<(String, usize)> = Vec::new();
        let synced = ctx.state.tables.values().filter_map(|t| t.stat.as_ref());
        for s in synced.filter_map(|t| t.table_state.clone()) {
            match states.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => states.push((s, 1)),
            }
        }
        let text: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let all_ready = states.iter().all(|(s, _)| s == "ready");
        out.push(line(
            format!("tables: {}", text.join(" · ")),
            if all_ready { t.dim } else { t.warn },
        ));
    }

    match (r.sequences_behind(), &r.sequences_error) {
        (_, Some(err)) => out.push(line(format!("sequences unread: {err}"), t.bad)),
        (Some(0), _) => out.push(line("sequences: none behind".into(), t.dim)),
        (Some(n), _) => out.push(line(
            format!("sequences: {n} behind the source (sync-sequences sets them)"),
            t.warn,
        )),
        (None, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::ui::{Mode, Pane, Theme, UiState, draw};
    use cutover_core::event::{
        Event, LogicalFacts, Reading, ReplicationEngine, ReplicationReading, ReplicationStatus,
        SequenceStat, TableStat,
    };
    use cutover_core::state::State;

    const T0: i64 = 1_767_225_600_000;

    fn plan() -> Arc<cutover_core::plan::Plan> {
        let text = "name = \"pg\"\n\
            [source]\nengine = \"postgres\"\nurl = \"postgres://u@a:5432/shop\"\n\
            [target]\nengine = \"postgres\"\nurl = \"postgres://u@b:5432/shop\"\n\
            [replication]\nengine = \"postgres\"\npublication = \"shop_pub\"\nsubscription = \"shop_sub\"\n\
            [[step]]\nid = \"drain\"\ntitle = \"drain\"\ngates = [\"replication.behind_bytes == 0\"]\nconfirm = \"go\"\n";
        Arc::new(cutover_core::plan::parse("pg.toml", text).expect("valid plan"))
    }

    fn table(name: &str, state: &str) -> TableStat {
        TableStat {
            table: name.into(),
            full_load_rows: None,
            inserts: None,
            updates: None,
            deletes: None,
            validation_state: None,
            validation_pending: None,
            validation_failed: None,
            validation_suspended: None,
            table_state: Some(state.into()),
        }
    }

    fn reading(enabled: bool, behind: u64) -> ReplicationReading {
        ReplicationReading {
            observed_at: T0,
            engine: ReplicationEngine::Postgres,
            name: "shop_sub".into(),
            status: if enabled {
                ReplicationStatus::Running
            } else {
                ReplicationStatus::Stopped
            },
            status_text: if enabled {
                "enabled, worker 4242".into()
            } else {
                "disabled".into()
            },
            stop_reason: None,
            last_error: None,
            figures_error: None,
            tables_error: None,
            validation_enabled: None,
            lag_s: Vec::new(),
            capture_lag_s: Vec::new(),
            backlog: Vec::new(),
            behind_transactions: None,
            behind_bytes: Some(behind),
            full_load_pct: None,
            tables_loaded: Some(1),
            tables_loading: Some(0),
            tables_queued: Some(0),
            tables_errored: None,
            tables: Some(vec![
                table("public.orders", "ready"),
                table("public.items", "data copy"),
            ]),
            source_position: Some("0/30030A8".into()),
            target_position: Some("0/3000060".into()),
            logical: Some(LogicalFacts {
                publication: "shop_pub".into(),
                subscription: "shop_sub".into(),
                enabled,
                worker_pid: enabled.then_some(4242),
                slot: "shop_sub".into(),
                slot_active: Some(enabled),
                apply_errors: Some(0),
                sync_errors: Some(0),
            }),
            sequences: Some(vec![SequenceStat {
                name: "public.orders_id_seq".into(),
                source: Some(812),
                target: None,
            }]),
            sequences_error: None,
            gap_error: None,
            source_gtid: None,
            facts: Vec::new(),
        }
    }

    fn screen(r: ReplicationReading) -> (String, State) {
        let mut st = State::new(plan());
        st.apply(&Event::Observed {
            at: T0,
            reading: Reading::Replication(Box::new(r)),
        });
        let mut ui = UiState::new(Mode::Watch, "alice".into(), None);
        ui.focus = Pane::Replication;
        ui.zoomed = true;
        let theme = Theme::load(None).expect("theme");
        let mut term = Terminal::new(TestBackend::new(100, 30)).expect("backend");
        term.draw(|f| draw(f, &st, &ui, &theme)).expect("draw");
        (term.backend().to_string(), st)
    }

    #[test]
    fn the_pane_shows_the_subscription_slot_gap_tables_and_sequences_and_no_dms_rows() {
        let (text, st) = screen(reading(false, 12_360));
        for want in [
            "12.4 kB behind · LSN 0/3000060 of 0/30030A8",
            "subscription shop_sub disabled · no worker",
            "slot shop_sub inactive · publication shop_pub",
            "no apply or sync errors",
            "tables: 1 data copy · 1 ready",
            "sequences: 1 behind the source",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        for dms in ["full load", "incoming", "latency source"] {
            assert!(!text.contains(dms), "{dms:?} is DMS's:\n{text}");
        }
        // The gate's reason names the exact gap.
        let gate = st.gate_status(0, 0);
        assert!(
            gate.reason
                .contains("subscriber is 12.4 kB behind (LSN 0/3000060 of 0/30030A8)"),
            "{}",
            gate.reason
        );
        let (text, _) = screen(reading(true, 0));
        assert!(text.contains("caught up at LSN 0/3000060"), "{text}");
        assert!(text.contains("shop_sub enabled · worker 4242"), "{text}");
    }
}
