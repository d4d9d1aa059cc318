//! The event log, newest at the bottom, each line stamped with its event's UTC time and
//! marked by level (symbol and colour). Scrolling up pins the view; End follows again.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{Ctx, Frame, framed, placeholder, put_line, sym};
use crate::ui::Pane;
use crate::ui::text::{clock, truncate};
use cutover_core::state::Level;

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let t = ctx.theme;
    let log = &ctx.state.log;
    let inner_h = area.height.saturating_sub(match frame {
        Frame::Compact => 1,
        Frame::Full => 2,
    }) as usize;
    let back = ctx.ui.scroll[Pane::Log.index()].min(log.len().saturating_sub(inner_h));
    let summary = if back > 0 {
        vec![Span::styled(
            format!("↑ {back} newer below · End follows"),
            t.warn,
        )]
    } else {
        vec![Span::styled(format!("{} lines", log.len()), t.dim)]
    };
    let inner = framed(ctx.block(Pane::Log, summary, frame), area, buf);
    if inner.is_empty() {
        return;
    }
    if log.is_empty() {
        put_line(&placeholder(ctx, "nothing has happened yet"), inner, 0, buf);
        return;
    }
    let h = inner.height as usize;
    let end = log.len() - back;
    let start = end.saturating_sub(h);
    let w = inner.width as usize;
    for (row, l) in log.range(start..end).enumerate() {
        let (symbol, style) = match l.level {
            Level::Info => (" ", t.text),
            Level::Good => (sym::OK, t.good),
            Level::Warn => (sym::FAILED, t.warn),
            Level::Error => (sym::BAD, t.bad),
        };
        let line = Line::from(vec![
            Span::styled(clock(l.at), t.dim),
            Span::styled(format!(" {symbol} "), style),
            Span::styled(truncate(&l.text, w.saturating_sub(11)), style),
        ]);
        put_line(&line, inner, row as u16, buf);
    }
}
