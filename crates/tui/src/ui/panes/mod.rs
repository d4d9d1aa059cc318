//! The panes and what they share: the per-frame context (gates of the next step are
//! evaluated once per draw, here), the symbol vocabulary and the pane frame.

pub mod checklist;
pub mod dns;
pub mod drift;
pub mod footer;
pub mod log;
pub mod metrics;
pub mod replication;
pub mod replication_logical;
pub mod status;
pub mod validation;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Widget};

use super::{Pane, Theme, UiState};
use cutover_core::event::Ts;
use cutover_core::state::{GateState, GateStatus, State, StepStatus};

/// The state vocabulary: every state has a symbol, so colour is never the only signal.
pub mod sym {
    pub const OK: &str = "✔";
    pub const BAD: &str = "✖";
    pub const UNKNOWN: &str = "?";
    pub const RUNNING: &str = "▶";
    pub const UNDOING: &str = "◀";
    pub const UNDONE: &str = "↺";
    pub const FAILED: &str = "!";
    pub const PENDING: &str = "·";
    pub const READY: &str = "●";
    pub const STOPPED: &str = "■";
}

/// How a pane is framed: compact panes spend one row (a titled rule) on chrome; full
/// panes get a rounded box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Compact,
    Full,
}

/// Everything a pane needs, computed once per draw.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub ui: &'a UiState,
    pub theme: &'a Theme,
    pub now: Ts,
    pub next: Option<usize>,
    pub running: Option<usize>,
    pub selected: Option<usize>,
    /// Gates of the next step (evaluated once: drift inputs walk every table).
    pub next_gates: Vec<GateStatus>,
    /// Why the next step cannot be confirmed now.
    pub blocker: Option<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(state: &'a State, ui: &'a UiState, theme: &'a Theme) -> Self {
        let next = state.next_step();
        let next_gates = next.map(|i| state.step_gates(i)).unwrap_or_default();
        let blocker = next.and_then(|i| state.confirm_blocker(i));
        Ctx {
            state,
            ui,
            theme,
            now: state.now,
            next,
            running: state.running_step(),
            selected: ui.selected_step(state),
            next_gates,
            blocker,
        }
    }

    /// The first gate of the next step that is not green, with its index.
    pub fn first_failing(&self) -> Option<(usize, &GateStatus)> {
        self.next_gates
            .iter()
            .enumerate()
            .find(|(_, g)| g.state != GateState::Green)
    }

    pub fn gate_style(&self, s: GateState) -> (&'static str, Style) {
        match s {
            GateState::Green => (sym::OK, self.theme.good),
            GateState::Red => (sym::BAD, self.theme.bad),
            GateState::Unknown => (sym::UNKNOWN, self.theme.unknown),
        }
    }

    /// Symbol and style of a step in the checklist.
    pub fn step_symbol(&self, i: usize) -> (&'static str, Style) {
        let t = self.theme;
        let Some(s) = self.state.steps.get(i) else {
            return (sym::UNKNOWN, t.unknown);
        };
        if s.in_doubt.is_some() {
            return (sym::UNKNOWN, t.warn);
        }
        match s.status {
            StepStatus::Done => (sym::OK, t.good),
            StepStatus::Running => (sym::RUNNING, t.running),
            StepStatus::Undoing => (sym::UNDOING, t.running),
            StepStatus::Undone => (sym::UNDONE, t.undone),
            StepStatus::Failed | StepStatus::UndoFailed => (sym::FAILED, t.bad),
            StepStatus::Pending if s.timed_out.is_some() && self.next == Some(i) => {
                (sym::FAILED, t.warn)
            }
            StepStatus::Pending if self.next == Some(i) => match self.first_failing() {
                None if self.blocker.is_none() => (sym::READY, t.good),
                None => (sym::BAD, t.bad),
                Some((_, g)) => self.gate_style(g.state),
            },
            StepStatus::Pending => (sym::PENDING, t.dim),
        }
    }

    /// The rows a scrolling table pane shows: (first row, how many), with the scroll offset
    /// clamped to the rows there are. `header` rows of the inner area are not for data. When
    /// not every row fits, the pane's title summary gets "first-last/all".
    pub fn scroll_window(
        &self,
        pane: Pane,
        frame: Frame,
        area: Rect,
        rows: usize,
        header: usize,
        summary: &mut Vec<Span<'a>>,
    ) -> (usize, usize) {
        let chrome = match frame {
            Frame::Compact => 1,
            Frame::Full => 2,
        };
        let visible = (area.height.saturating_sub(chrome) as usize).saturating_sub(header);
        let offset = self.ui.scroll[pane.index()].min(rows.saturating_sub(visible));
        if rows > visible {
            let last = (offset + visible).min(rows);
            summary.push(Span::styled(
                format!("  {}-{last}/{rows}", offset + 1),
                self.theme.dim,
            ));
        }
        (offset, visible)
    }

    /// Draws a table pane's frame: the block titled with `summary` (plus the scroll position
    /// when not every row fits), the table's placeholder when there are no rows, else the
    /// column header. Returns where the data rows go, or `None` when there are none to draw.
    pub fn table_frame(
        &self,
        table: &Table,
        frame: Frame,
        area: Rect,
        buf: &mut Buffer,
        mut summary: Vec<Span<'a>>,
        rows: usize,
    ) -> Option<TableBody> {
        let pane = table.pane;
        let (offset, visible) = self.scroll_window(pane, frame, area, rows, 1, &mut summary);
        let inner = framed(self.block(pane, summary, frame), area, buf);
        if inner.is_empty() {
            return None;
        }
        if rows == 0 {
            put_line(&placeholder(self, table.empty), inner, 0, buf);
            return None;
        }
        let fit = fit_columns(table.cols, inner.width as usize, 1, table.flex_max);
        put_line(&table_header(self, table.cols, &fit), inner, 0, buf);
        Some(TableBody {
            inner,
            fit,
            offset,
            visible,
        })
    }

    /// Whether a reading taken at `at` is older than `fresh_ms`.
    pub fn stale(&self, at: Ts, fresh_ms: i64) -> bool {
        self.now - at > fresh_ms
    }

    /// A pane's frame: its block with the title (and a summary after it).
    pub fn block(&self, pane: Pane, summary: Vec<Span<'a>>, frame: Frame) -> Block<'a> {
        let focused = self.ui.focus == pane;
        let (title_style, border_style) = if focused {
            (self.theme.focus, self.theme.focus)
        } else {
            (self.theme.title, self.theme.border)
        };
        let mut spans = Vec::with_capacity(summary.len() + 3);
        // A marker on the focused title, for screens without colour.
        let mark = if focused { "▸" } else { " " };
        spans.push(Span::styled(
            format!("{mark}{} ", pane.title()),
            title_style,
        ));
        spans.extend(summary);
        spans.push(Span::raw(" "));
        let block = Block::new()
            .title(Line::from(spans))
            .border_style(border_style);
        match frame {
            Frame::Compact if pane == Pane::Checklist => block
                .borders(Borders::TOP | Borders::RIGHT)
                .border_set(border::Set {
                    top_right: "┬",
                    ..border::PLAIN
                }),
            Frame::Compact => block.borders(Borders::TOP),
            Frame::Full => block.borders(Borders::ALL).border_type(BorderType::Rounded),
        }
    }
}

/// Draws one pane into `area`.
pub fn render(ctx: &Ctx<'_>, pane: Pane, area: Rect, frame: Frame, buf: &mut Buffer) {
    match pane {
        Pane::Checklist => checklist::render(ctx, area, frame, buf),
        Pane::Replication => replication::render(ctx, area, frame, buf),
        Pane::Validation => validation::render(ctx, area, frame, buf),
        Pane::Metrics => metrics::render(ctx, area, frame, buf),
        Pane::Drift => drift::render(ctx, area, frame, buf),
        Pane::Dns => dns::render(ctx, area, frame, buf),
        Pane::Log => log::render(ctx, area, frame, buf),
    }
}

/// Draws `block` and returns the area inside it.
pub fn framed(block: Block<'_>, area: Rect, buf: &mut Buffer) -> Rect {
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// Writes lines top to bottom, clipped to `area`.
pub fn put_lines(lines: &[Line<'_>], area: Rect, buf: &mut Buffer) {
    for (row, line) in lines.iter().take(area.height as usize).enumerate() {
        put_line(line, area, row as u16, buf);
    }
}

/// Writes one line at `row` inside `area`, clipped to its width; a line style (selection)
/// fills the whole row.
pub fn put_line(line: &Line<'_>, area: Rect, row: u16, buf: &mut Buffer) {
    if row >= area.height {
        return;
    }
    let y = area.y + row;
    if line.style != Style::default() {
        buf.set_style(Rect::new(area.x, y, area.width, 1), line.style);
    }
    buf.set_line(area.x, y, line, area.width);
}

/// Word-wraps `s` to `w` columns, at most `max` lines (the last one cut with `…`).
pub fn wrap(s: &str, w: usize, max: usize) -> Vec<String> {
    use super::text::{truncate, width};
    let mut out: Vec<String> = Vec::new();
    if w == 0 || max == 0 {
        return out;
    }
    let mut cur = String::new();
    let mut words = s.split(' ').peekable();
    while let Some(word) = words.next() {
        let needed = if cur.is_empty() {
            width(word)
        } else {
            width(&cur) + 1 + width(word)
        };
        if needed <= w {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
            continue;
        }
        if out.len() + 1 == max {
            // Last allowed line: put the rest in and cut it.
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
            for rest in words.by_ref() {
                cur.push(' ');
                cur.push_str(rest);
            }
            break;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        // A word longer than the line is cut rather than split.
        cur = if width(word) > w {
            truncate(word, w)
        } else {
            word.to_string()
        };
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(truncate(&cur, w));
    }
    out
}

/// A "no data yet" line.
pub fn placeholder<'a>(ctx: &Ctx<'a>, text: &'a str) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{} ", sym::UNKNOWN), ctx.theme.unknown),
        Span::styled(text, ctx.theme.dim),
    ])
}

/// A table column: header, width, alignment and priority (0 is kept first when the
/// pane is too narrow for all of them).
#[derive(Clone, Copy)]
pub struct Col {
    pub header: &'static str,
    pub width: usize,
    pub right: bool,
    pub prio: u8,
}

/// Keeps the most important columns that fit in `total` columns (one space between
/// them), gives column `flex` (the name) the slack up to `flex_max`, and returns
/// `(column index, width)` in display order.
pub fn fit_columns(
    cols: &[Col],
    total: usize,
    flex: usize,
    flex_max: usize,
) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&i| cols[i].prio);
    let mut used = 0;
    let mut keep: Vec<(usize, usize)> = Vec::with_capacity(cols.len());
    for i in order {
        let need = cols[i].width + usize::from(!keep.is_empty());
        if used + need <= total {
            used += need;
            keep.push((i, cols[i].width));
        }
    }
    keep.sort_by_key(|k| k.0);
    let slack = total.saturating_sub(used);
    if let Some(first) = keep.iter_mut().find(|k| k.0 == flex) {
        first.1 += slack.min(flex_max.saturating_sub(first.1));
    }
    keep
}

/// A table pane's fixed description ([`Ctx::table_frame`]).
pub struct Table {
    pub pane: Pane,
    pub cols: &'static [Col],
    /// The widest column 1 (the name) may grow to.
    pub flex_max: usize,
    /// What the pane says when there are no rows.
    pub empty: &'static str,
}

/// Where a table pane's data rows go ([`Ctx::table_frame`]): row `i` of the window is
/// drawn at line `i + 1` of `inner` (under the header).
pub struct TableBody {
    pub inner: Rect,
    /// The columns that fit: (column, width).
    pub fit: Vec<(usize, usize)>,
    /// The first row shown, and how many rows fit.
    pub offset: usize,
    pub visible: usize,
}

/// One table row from per-column cells, laid out by [`fit_columns`].
pub fn table_row<'a>(
    cols: &[Col],
    fit: &[(usize, usize)],
    cells: &mut dyn FnMut(usize) -> (String, Style),
) -> Line<'a> {
    use super::text::{pad, rpad};
    let mut spans = Vec::with_capacity(fit.len() * 2);
    for (n, &(i, w)) in fit.iter().enumerate() {
        if n > 0 {
            spans.push(Span::raw(" "));
        }
        let (text, style) = cells(i);
        let text = if cols[i].right {
            rpad(&text, w)
        } else {
            pad(&text, w)
        };
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

/// The header row of a table.
pub fn table_header<'a>(ctx: &Ctx<'a>, cols: &[Col], fit: &[(usize, usize)]) -> Line<'a> {
    let style = ctx.theme.dim;
    table_row(cols, fit, &mut |i| (cols[i].header.to_string(), style))
}
