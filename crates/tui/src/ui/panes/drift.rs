//! Row counts and checksums of both sides, per table. Mismatches first, then count
//! differences, then compares under way; the healthy majority last. Built for 500 tables:
//! one pass to rank and total, one stable sort, and only the visible rows are formatted.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;

use super::{Col, Ctx, Frame, Table, TableBody, put_line, sym, table_row};
use crate::ui::Pane;
use crate::ui::text::{age, num, width};
use cutover_core::event::{ChecksumState, DiffKind, TableDrift};
use cutover_core::plan::Input;

const COLS: [Col; 8] = [
    Col {
        header: "",
        width: 1,
        right: false,
        prio: 0,
    },
    Col {
        header: "table",
        width: 10,
        right: false,
        prio: 0,
    },
    Col {
        header: "source",
        width: 7,
        right: true,
        prio: 1,
    },
    Col {
        header: "target",
        width: 7,
        right: true,
        prio: 1,
    },
    Col {
        header: "diff",
        width: 5,
        right: true,
        prio: 0,
    },
    Col {
        header: "checksum",
        width: 8,
        right: false,
        prio: 0,
    },
    Col {
        header: "done",
        width: 4,
        right: true,
        prio: 3,
    },
    Col {
        header: "first differing key",
        width: 19,
        right: false,
        prio: 2,
    },
];

const TABLE: Table = Table {
    pane: Pane::Drift,
    cols: &COLS,
    flex_max: 28,
    empty: "no table compared yet",
};

/// 0 is the most urgent.
fn rank(d: Option<&TableDrift>) -> u8 {
    match d {
        Some(d) if d.checksum == ChecksumState::Mismatch => 0,
        Some(d) if d.row_diff().unwrap_or(0) > 0 => 1,
        Some(d) if d.checksum == ChecksumState::Equal && d.row_diff().is_some() => 4,
        Some(_) => 2,
        None => 3,
    }
}

fn row_symbol(ctx: &Ctx<'_>, d: Option<&TableDrift>) -> (&'static str, Style) {
    let t = ctx.theme;
    match (rank(d), d.map(|d| d.checksum)) {
        (0, _) => (sym::BAD, t.bad),
        (1, _) => (sym::FAILED, t.warn),
        (4, _) => (sym::OK, t.good),
        (_, Some(ChecksumState::Pending)) => (sym::RUNNING, t.running),
        _ => (sym::UNKNOWN, t.unknown),
    }
}

/// An exact count when it fits the column, else a compact one (1.2M) rather than a cut.
fn fit_count(n: Option<u64>, w: usize) -> String {
    match n {
        None => "?".into(),
        Some(n) => {
            let exact = n.to_string();
            if width(&exact) <= w {
                exact
            } else {
                num(n as f64)
            }
        }
    }
}

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let t = ctx.theme;
    let mut rows: Vec<(u8, &str, Option<&TableDrift>)> = Vec::with_capacity(ctx.state.tables.len());
    let (mut mismatched, mut diff_rows, mut pending, mut equal) = (0usize, 0u64, 0usize, 0usize);
    let mut oldest: Option<i64> = None;
    for (name, view) in &ctx.state.tables {
        let d = view.drift.as_ref();
        let r = rank(d);
        match r {
            0 => mismatched += 1,
            2 | 3 => pending += 1,
            4 => equal += 1,
            _ => {}
        }
        if let Some(d) = d {
            diff_rows += d.row_diff().unwrap_or(0);
            oldest = Some(oldest.map_or(d.observed_at, |o: i64| o.min(d.observed_at)));
        }
        rows.push((r, name.as_str(), d));
    }
    rows.sort_by_key(|r| r.0);

    let mut summary: Vec<Span<'_>> = Vec::with_capacity(3);
    if rows.is_empty() {
        summary.push(Span::styled(
            format!("{} not compared", sym::UNKNOWN),
            t.unknown,
        ));
    } else if mismatched > 0 {
        summary.push(Span::styled(
            format!("{} {mismatched} mismatched", sym::BAD),
            t.bad,
        ));
    } else if diff_rows > 0 {
        summary.push(Span::styled(
            format!("{} {diff_rows} rows differ", sym::FAILED),
            t.warn,
        ));
    } else if pending > 0 {
        summary.push(Span::styled(
            format!("{} {equal}/{} equal", sym::RUNNING, rows.len()),
            t.running,
        ));
    } else {
        summary.push(Span::styled(
            format!("{} {equal}/{} equal", sym::OK, rows.len()),
            t.good,
        ));
    }
    if let Some(o) = oldest
        && ctx.stale(o, Input::DriftRows.default_fresh_ms())
    {
        summary.push(Span::styled(
            format!(" {} oldest {}", sym::UNKNOWN, age(ctx.now - o)),
            t.stale,
        ));
    }
    let Some(TableBody {
        inner,
        fit,
        offset,
        visible,
    }) = ctx.table_frame(&TABLE, frame, area, buf, summary, rows.len())
    else {
        return;
    };
    let col_w = |i: usize| fit.iter().find(|f| f.0 == i).map(|f| f.1).unwrap_or(0);
    for (row, (_, name, d)) in rows.iter().skip(offset).take(visible).enumerate() {
        let (symbol, sym_style) = row_symbol(ctx, *d);
        let line = table_row(&COLS, &fit, &mut |i| match (i, d) {
            (0, _) => (symbol.to_string(), sym_style),
            (1, _) => (name.to_string(), t.text),
            (_, None) if i == 5 => ("not compared".into(), t.unknown),
            (_, None) => (String::new(), t.dim),
            (2, Some(d)) => (fit_count(d.source_rows, col_w(2)), t.text),
            (3, Some(d)) => (fit_count(d.target_rows, col_w(3)), t.text),
            (4, Some(d)) => match d.row_diff() {
                Some(0) => ("0".into(), t.dim),
                Some(n) => (fit_count(Some(n), col_w(4)), t.warn),
                None => ("?".into(), t.unknown),
            },
            (5, Some(d)) => {
                let style = match d.checksum {
                    ChecksumState::Equal => t.good,
                    ChecksumState::Mismatch => t.bad,
                    ChecksumState::Pending => t.running,
                    ChecksumState::NoPrimaryKey | ChecksumState::Skipped => t.unknown,
                };
                (d.checksum.as_str().to_string(), style)
            }
            (6, Some(d)) => match (d.chunks_done, d.chunks_total) {
                (Some(done), Some(total)) if total > 0 => {
                    (format!("{}%", done.saturating_mul(100) / total), t.dim)
                }
                _ => ("-".into(), t.dim),
            },
            (_, Some(d)) => match d.differing_keys.first() {
                Some(k) => {
                    let kind = match k.kind {
                        DiffKind::MissingOnTarget => "missing",
                        DiffKind::ExtraOnTarget => "extra",
                        DiffKind::Different => "differs",
                    };
                    (format!("{} {kind}", k.key), t.bad)
                }
                None => (String::new(), t.dim),
            },
        });
        put_line(&line, inner, row as u16 + 1, buf);
    }
}
