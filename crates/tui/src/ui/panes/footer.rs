//! The bottom line(s): the replay timeline when there is one, then either the notice (why
//! the last key did nothing) or the key hints for this mode.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{Ctx, put_line};
use crate::ui::text::truncate;

pub fn render(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let w = area.width as usize;
    let mut row = 0;
    if let Some(f) = &ctx.ui.footer {
        put_line(
            &Line::from(Span::styled(truncate(&format!(" {f}"), w), t.text)),
            area,
            row,
            buf,
        );
        row += 1;
    }
    let line = match &ctx.ui.notice {
        Some(n) => Line::from(Span::styled(truncate(&format!(" {n}"), w), t.notice)),
        None => hints(ctx, w),
    };
    put_line(&line, area, row, buf);
}

fn hints<'a>(ctx: &Ctx<'a>, w: usize) -> Line<'a> {
    let t = ctx.theme;
    let mut keys: Vec<(&str, &str)> = Vec::with_capacity(9);
    keys.push(("?", "help"));
    if ctx.ui.mode.can_act() {
        keys.push(("Enter", "confirm step"));
        keys.push(("R", "roll back"));
    } else {
        keys.push(("", "read-only"));
    }
    keys.push(("Tab", "pane"));
    keys.push(("↑↓", "scroll"));
    keys.push(("z", if ctx.ui.zoomed { "unzoom" } else { "zoom" }));
    keys.push(("q", "quit"));
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (k, what) in keys {
        let item = k.chars().count() + what.chars().count() + 3;
        if used + item > w {
            break;
        }
        used += item;
        if !k.is_empty() {
            spans.push(Span::styled(k, t.key));
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(what, t.dim));
        spans.push(Span::raw("  "));
    }
    Line::from(spans)
}
