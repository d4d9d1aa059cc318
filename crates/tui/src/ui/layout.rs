//! Where each pane goes for a terminal size. Plain arithmetic rather than the constraint
//! solver: it is cheap, deterministic, and states the priorities (which pane keeps its rows
//! on a small screen) in one place.

use ratatui::layout::Rect;

use super::panes::{Ctx, Frame};
use super::{Pane, PerPane};

/// At and above this size every pane gets a full box and room to breathe.
pub const WIDE_WIDTH: u16 = 120;
pub const WIDE_HEIGHT: u16 = 36;

pub struct Areas {
    pub status: Rect,
    pub footer: Rect,
    pub frame: Frame,
    /// Every pane with its area; an empty area means hidden (no room).
    pub panes: PerPane<(Pane, Rect)>,
}

/// Rows of chrome a compact pane spends (its titled rule).
const TITLE: u16 = 1;

/// The compact layout stacks every pane but the checklist on the right.
const STACKED: usize = Pane::ALL.len() - 1;

pub fn compute(area: Rect, ctx: &Ctx<'_>) -> Areas {
    let footer_h = 1 + u16::from(ctx.ui.footer.is_some());
    let status = Rect::new(area.x, area.y, area.width, 2.min(area.height));
    let footer_y = area.bottom().saturating_sub(footer_h);
    let footer = Rect::new(area.x, footer_y, area.width, footer_h);
    let main_y = status.bottom();
    let main = Rect::new(area.x, main_y, area.width, footer_y.saturating_sub(main_y));

    let mut panes = Pane::ALL.map(|p| (p, Rect::default()));
    if let Some(z) = ctx.ui.zoom() {
        panes[z.index()].1 = main;
        return Areas {
            status,
            footer,
            frame: Frame::Full,
            panes,
        };
    }
    let wide = area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT;
    if wide {
        wide_layout(main, ctx, &mut panes);
    } else {
        compact_layout(main, ctx, &mut panes);
    }
    Areas {
        status,
        footer,
        frame: if wide { Frame::Full } else { Frame::Compact },
        panes,
    }
}

fn set(panes: &mut PerPane<(Pane, Rect)>, pane: Pane, r: Rect) {
    panes[pane.index()].1 = r;
}

/// Checklist on the left (~34 columns at 80), the other panes stacked on the right with
/// minimum heights; when rows run out the least urgent panes are hidden (still reachable
/// with Tab and `z`).
fn compact_layout(main: Rect, ctx: &Ctx<'_>, panes: &mut PerPane<(Pane, Rect)>) {
    let left_w = (main.width * 43 / 100).clamp(30, 56).min(main.width);
    set(
        panes,
        Pane::Checklist,
        Rect::new(main.x, main.y, left_w, main.height),
    );
    let right = Rect::new(main.x + left_w, main.y, main.width - left_w, main.height);

    let tables = ctx.state.tables.len() as u16;
    let metrics = ctx.state.metrics.len() as u16;
    // (pane, min content rows, max useful content rows); visual order top to bottom.
    let specs: [(Pane, u16, u16); STACKED] = [
        (Pane::Replication, 3, 6),
        (Pane::Dns, 2, 5),
        (Pane::Metrics, 2, metrics.max(1)),
        (Pane::Validation, 3, tables.saturating_add(1).max(2)),
        (Pane::Drift, 3, tables.saturating_add(1).max(2)),
        (Pane::Log, 2, u16::MAX),
    ];
    // Which panes keep their place when rows are short, most important first.
    let priority: [Pane; STACKED] = [
        Pane::Replication,
        Pane::Drift,
        Pane::Dns,
        Pane::Log,
        Pane::Validation,
        Pane::Metrics,
    ];
    let mut shown = [false; STACKED];
    let mut budget = right.height;
    for p in priority {
        if let Some(k) = specs.iter().position(|s| s.0 == p) {
            let need = specs[k].1 + TITLE;
            if need <= budget {
                budget -= need;
                shown[k] = true;
            }
        }
    }
    let mut rows = [0u16; STACKED];
    for k in 0..STACKED {
        if shown[k] {
            rows[k] = specs[k].1;
        }
    }
    // Hand out the spare rows one at a time so every pane grows together; the log (not in
    // this list) takes whatever is left once the others have all they can use.
    let grow_order: [Pane; STACKED - 1] = [
        Pane::Drift,
        Pane::Validation,
        Pane::Metrics,
        Pane::Replication,
        Pane::Dns,
    ];
    while budget > 0 {
        let mut gave = false;
        for p in grow_order {
            if budget == 0 {
                break;
            }
            if let Some(k) = specs.iter().position(|s| s.0 == p)
                && shown[k]
                && rows[k] < specs[k].2
            {
                rows[k] += 1;
                budget -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    if let Some(k) = specs.iter().position(|s| s.0 == Pane::Log)
        && shown[k]
    {
        rows[k] += budget;
    }
    let mut y = right.y;
    for k in 0..STACKED {
        if shown[k] {
            let h = rows[k] + TITLE;
            set(panes, specs[k].0, Rect::new(right.x, y, right.width, h));
            y += h;
        }
    }
}

/// Checklist and validation on the left; replication and DNS side by side, metrics and
/// drift on the right; the log across the bottom, where long lines fit.
fn wide_layout(main: Rect, ctx: &Ctx<'_>, panes: &mut PerPane<(Pane, Rect)>) {
    let log_h = (main.height / 4).clamp(6, 14);
    let upper_h = main.height.saturating_sub(log_h);
    set(
        panes,
        Pane::Log,
        Rect::new(main.x, main.y + upper_h, main.width, log_h),
    );

    let left_w = (main.width * 38 / 100).clamp(44, 64);
    let tables = ctx.state.tables.len() as u16;
    let val_h = tables
        .saturating_add(3)
        .clamp(5, (upper_h * 2 / 5).max(5))
        .min(upper_h / 2);
    let check_h = upper_h - val_h;
    set(
        panes,
        Pane::Checklist,
        Rect::new(main.x, main.y, left_w, check_h),
    );
    set(
        panes,
        Pane::Validation,
        Rect::new(main.x, main.y + check_h, left_w, val_h),
    );

    let rx = main.x + left_w;
    let rw = main.width - left_w;
    let top_h = 8.min(upper_h / 3).max(5);
    let rep_w = rw / 2;
    set(
        panes,
        Pane::Replication,
        Rect::new(rx, main.y, rep_w, top_h),
    );
    set(
        panes,
        Pane::Dns,
        Rect::new(rx + rep_w, main.y, rw - rep_w, top_h),
    );
    let rest = upper_h - top_h;
    let metrics = ctx.state.metrics.len() as u16;
    let met_h = metrics.max(1).saturating_add(2).min(rest / 2);
    set(
        panes,
        Pane::Metrics,
        Rect::new(rx, main.y + top_h, rw, met_h),
    );
    set(
        panes,
        Pane::Drift,
        Rect::new(rx, main.y + top_h + met_h, rw, rest - met_h),
    );
}
