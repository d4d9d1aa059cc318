//! Per-table validation (DescribeTableStatistics): state, pending, failed, suspended.
//! Tables with failures come first, so the row that matters is never scrolled away.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;

use super::{Col, Ctx, Frame, Table, TableBody, put_line, sym, table_row};
use crate::ui::Pane;
use crate::ui::text::{age, count};
use cutover_core::event::TableStat;
use cutover_core::plan::Input;

const COLS: [Col; 6] = [
    Col {
        header: "",
        width: 1,
        right: false,
        prio: 0,
    },
    Col {
        header: "table",
        width: 9,
        right: false,
        prio: 0,
    },
    Col {
        header: "state",
        width: 10,
        right: false,
        prio: 2,
    },
    Col {
        header: "pending",
        width: 7,
        right: true,
        prio: 1,
    },
    Col {
        header: "failed",
        width: 6,
        right: true,
        prio: 0,
    },
    Col {
        header: "susp",
        width: 4,
        right: true,
        prio: 1,
    },
];

const TABLE: Table = Table {
    pane: Pane::Validation,
    cols: &COLS,
    flex_max: 32,
    empty: "no table statistics yet",
};

/// Engines that do not validate rows (a binlog replica): nothing will ever arrive here.
const NOT_REPORTED: Table = Table {
    empty: "this engine does not validate rows; the drift pane compares them",
    ..TABLE
};

fn is_validated(s: &TableStat) -> bool {
    s.validation_state
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("validated"))
}

/// 0 is the most urgent.
fn rank(s: &TableStat) -> u8 {
    if s.validation_failed.unwrap_or(0) > 0 {
        0
    } else if s.validation_suspended.unwrap_or(0) > 0 {
        1
    } else if s.validation_pending.unwrap_or(0) > 0 {
        2
    } else if !is_validated(s) {
        3
    } else {
        4
    }
}

fn row_symbol(ctx: &Ctx<'_>, s: &TableStat) -> (&'static str, Style) {
    let t = ctx.theme;
    match rank(s) {
        0 => (sym::BAD, t.bad),
        1 => (sym::FAILED, t.warn),
        2 => (sym::RUNNING, t.running),
        3 => (sym::UNKNOWN, t.unknown),
        _ => (sym::OK, t.good),
    }
}

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let t = ctx.theme;
    // One pass: collect, total, and order by urgency (stable: names stay sorted within).
    let mut rows: Vec<&TableStat> = ctx
        .state
        .tables
        .values()
        .filter_map(|v| v.stat.as_ref())
        .collect();
    let (mut failed, mut pending, mut susp, mut validated) = (0u64, 0u64, 0u64, 0usize);
    for s in &rows {
        failed += s.validation_failed.unwrap_or(0);
        pending += s.validation_pending.unwrap_or(0);
        susp += s.validation_suspended.unwrap_or(0);
        validated += usize::from(is_validated(s));
    }
    rows.sort_by_key(|s| rank(s));

    let engine = ctx.state.replication.status().map(|r| r.engine);
    let not_reported = rows.is_empty() && engine.is_some_and(|e| !e.has_cdc_figures());
    let mut summary = if not_reported {
        vec![Span::styled(
            format!("not reported by {}", engine.map_or("", |e| e.as_str())),
            t.dim,
        )]
    } else if rows.is_empty() {
        vec![Span::styled(
            format!("{} no statistics", sym::UNKNOWN),
            t.unknown,
        )]
    } else if failed > 0 {
        vec![Span::styled(format!("{} {failed} failed", sym::BAD), t.bad)]
    } else if validated == rows.len() && pending == 0 && susp == 0 {
        vec![Span::styled(
            format!("{} {validated}/{} validated", sym::OK, rows.len()),
            t.good,
        )]
    } else {
        vec![Span::styled(
            format!("{} {pending} pending", sym::RUNNING),
            t.running,
        )]
    };
    if let Some(at) = ctx.state.replication.tables_at
        && ctx.stale(at, Input::ValidationFailed.default_fresh_ms())
    {
        summary.push(Span::styled(
            format!(" {} {} old", sym::UNKNOWN, age(ctx.now - at)),
            t.stale,
        ));
    }

    let Some(TableBody {
        inner,
        fit,
        offset,
        visible,
    }) = ctx.table_frame(
        if not_reported { &NOT_REPORTED } else { &TABLE },
        frame,
        area,
        buf,
        summary,
        rows.len(),
    )
    else {
        return;
    };
    for (row, s) in rows.iter().skip(offset).take(visible).enumerate() {
        let (symbol, sym_style) = row_symbol(ctx, s);
        let num_style = |n: Option<u64>, bad: Style| if n.unwrap_or(0) > 0 { bad } else { t.dim };
        let line = table_row(&COLS, &fit, &mut |i| match i {
            0 => (symbol.to_string(), sym_style),
            1 => (s.table.clone(), t.text),
            2 => (
                s.validation_state
                    .clone()
                    .unwrap_or_else(|| "?".into())
                    .to_lowercase(),
                if is_validated(s) { t.dim } else { t.text },
            ),
            3 => (
                count(s.validation_pending),
                num_style(s.validation_pending, t.running),
            ),
            4 => (
                count(s.validation_failed),
                num_style(s.validation_failed, t.bad),
            ),
            _ => (
                count(s.validation_suspended),
                num_style(s.validation_suspended, t.warn),
            ),
        });
        put_line(&line, inner, row as u16 + 1, buf);
    }
}
