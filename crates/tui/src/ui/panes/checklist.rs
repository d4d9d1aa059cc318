//! The runbook: every step with its status symbol; the next step opened up with each gate
//! and, standing out, the first failing gate and why (as gh-ost names its throttle reason);
//! a running step's last output line; failures with their message; the phrase to type.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::{Ctx, Frame, framed, put_line, sym, wrap};
use crate::ui::Pane;
use crate::ui::text::{age, clock, truncate};
use cutover_core::state::{GateState, StepStatus};

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let n = ctx.state.steps.len();
    let done = ctx
        .state
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .count();
    let summary = vec![Span::styled(format!("{done}/{n} done"), ctx.theme.dim)];
    let inner = framed(ctx.block(Pane::Checklist, summary, frame), area, buf);
    if inner.is_empty() {
        return;
    }
    let compact = frame == Frame::Compact;
    let (lines, focus) = build(ctx, inner.width as usize, compact);
    let full_h = inner.height as usize;
    // When it overflows, the last row says how much is hidden instead of showing a line.
    let h = if lines.len() > full_h {
        full_h.saturating_sub(1)
    } else {
        full_h
    };
    // Keep the selected step's block in view: its end if it fits, its header always.
    let offset = focus.1.saturating_sub(h).min(focus.0);
    let offset = offset.min(lines.len().saturating_sub(h));
    for (row, line) in lines.iter().skip(offset).take(h).enumerate() {
        put_line(line, inner, row as u16, buf);
    }
    let below = lines.len().saturating_sub(offset + h);
    if h < full_h {
        let mut parts = Vec::with_capacity(2);
        if offset > 0 {
            parts.push(format!("↑ {offset} more"));
        }
        if below > 0 {
            parts.push(format!("↓ {below} more"));
        }
        let text = format!("   {}", parts.join("  "));
        put_line(
            &Line::from(Span::styled(text, ctx.theme.dim)),
            inner,
            h as u16,
            buf,
        );
    }
}

/// The gate as written, or without its `fresh <bound>` qualifier when the line is too
/// narrow for it (the bound reappears in the reason when it matters: "stale: 7s old").
fn gate_text(text: &str, w: usize) -> String {
    if crate::ui::text::width(text) <= w {
        return text.to_string();
    }
    let mut words: Vec<&str> = text.split(' ').collect();
    if let Some(i) = words.iter().position(|x| *x == "fresh") {
        let end = (i + 2).min(words.len());
        words.drain(i..end);
    }
    truncate(&words.join(" "), w)
}

/// The checklist's lines and the (first, end) line range of the selected step.
fn build<'a>(ctx: &Ctx<'a>, w: usize, compact: bool) -> (Vec<Line<'a>>, (usize, usize)) {
    let st = ctx.state;
    let t = ctx.theme;
    let mut lines: Vec<Line<'a>> = Vec::with_capacity(st.steps.len() + 16);
    let mut focus = (0, 0);
    for (i, (step, def)) in st.steps.iter().zip(&st.plan.steps).enumerate() {
        let start = lines.len();
        let selected = ctx.selected == Some(i);
        let (symbol, sym_style) = ctx.step_symbol(i);
        let marker = if selected { "›" } else { " " };
        let head = format!("{marker}{symbol} {}", def.id);
        let title_room = w.saturating_sub(crate::ui::text::width(&head) + 2);
        let mut header = Line::from(vec![
            Span::styled(marker, t.text),
            Span::styled(symbol, sym_style),
            Span::styled(format!(" {}", def.id), t.text.add_modifier(Modifier::BOLD)),
            Span::styled(format!("  {}", truncate(&def.title, title_room)), t.dim),
        ]);
        if selected {
            header = header.style(t.selected);
        }
        lines.push(header);

        let is_next = ctx.next == Some(i) && ctx.running.is_none();
        let is_running = matches!(step.status, StepStatus::Running | StepStatus::Undoing);
        let indent = "   ";
        let detail = |text: String, style| {
            Line::from(Span::styled(truncate(&format!("{indent}{text}"), w), style))
        };

        if let Some(direction) = step.in_doubt {
            let what = match direction {
                cutover_core::event::Direction::Do => "its action",
                cutover_core::event::Direction::Undo => "its undo",
            };
            lines.push(detail(
                format!("{} in doubt: {what} has no result", sym::UNKNOWN),
                t.warn,
            ));
            lines.push(detail(format!("type `done {}`", def.id), t.warn));
            lines.push(detail(format!("  or `not done {}`", def.id), t.warn));
        } else if is_running {
            let since = step.started_at.or(step.confirmed_at).unwrap_or(st.now);
            let action = match step.status {
                StepStatus::Undoing => def.undo.as_ref().unwrap_or(&def.action),
                _ => &def.action,
            };
            lines.push(detail(format!("→ {}", action.describe(&st.plan)), t.dim));
            lines.push(detail(
                format!("{} running {}", sym::RUNNING, age(st.now - since)),
                t.running,
            ));
            if let Some(out) = step.output.back() {
                lines.push(detail(format!("│ {out}"), t.text));
            }
        } else if is_next {
            // Compact screens spend their rows on the gates; the dialog shows the description.
            if let Some(d) = def.description.as_ref().filter(|_| !compact) {
                lines.push(detail(d.clone(), t.dim));
            }
            lines.push(detail(
                format!("→ {}", def.action.describe(&st.plan)),
                t.dim,
            ));
            if step.status == StepStatus::Failed {
                let msg = step.message.as_deref().unwrap_or("no message");
                for l in wrap(
                    &format!("{} failed: {msg}", sym::FAILED),
                    w.saturating_sub(3),
                    3,
                ) {
                    lines.push(detail(l, t.bad));
                }
            }
            if let Some(why) = &step.timed_out {
                lines.push(detail(format!("{} timed out: {why}", sym::FAILED), t.warn));
            }
            gates(ctx, i, w, compact, &mut lines);
            if def.approvals > 0 {
                let have = step.approvals.len();
                let who: Vec<&str> = step.approvals.iter().map(|a| a.by.as_str()).collect();
                let style = if have >= def.approvals as usize {
                    t.good
                } else {
                    t.warn
                };
                let mut text = format!("approvals {have}/{}", def.approvals);
                if !who.is_empty() {
                    text.push_str(&format!(": {}", who.join(", ")));
                }
                lines.push(detail(text, style));
            }
            lines.push(confirm_hint(ctx, &def.confirm, w));
        } else if selected {
            // The selected step, when it is not the next one: what it did or will do.
            match step.status {
                StepStatus::Pending => {
                    lines.push(detail(
                        format!("→ {}", def.action.describe(&st.plan)),
                        t.dim,
                    ));
                    for g in &def.gates {
                        lines.push(detail(format!("{} {}", sym::PENDING, g.text), t.dim));
                    }
                }
                _ => {
                    if let (Some(by), Some(at)) = (&step.confirmed_by, step.confirmed_at) {
                        let took = match (step.started_at, step.finished_at) {
                            (Some(s), Some(f)) => format!(", took {}", age(f - s)),
                            _ => String::new(),
                        };
                        lines.push(detail(
                            format!("confirmed by {by} at {}{took}", clock(at)),
                            t.dim,
                        ));
                    }
                    lines.push(detail(
                        format!("→ {}", def.action.describe(&st.plan)),
                        t.dim,
                    ));
                }
            }
        }
        // A failure or timeout stays visible on its step whether or not it is selected.
        if !is_next && !is_running {
            match step.status {
                StepStatus::Failed | StepStatus::UndoFailed => {
                    let msg = step.message.as_deref().unwrap_or("no message");
                    let what = if step.status == StepStatus::UndoFailed {
                        "undo failed"
                    } else {
                        "failed"
                    };
                    lines.push(detail(format!("{} {what}: {msg}", sym::FAILED), t.bad));
                }
                StepStatus::Done | StepStatus::Undone if selected => {
                    if let Some(msg) = &step.message {
                        lines.push(detail(msg.clone(), t.dim));
                    }
                }
                _ => {}
            }
        }
        if selected {
            focus = (start, lines.len());
        }
    }
    (lines, focus)
}

/// The next step's gates: symbol and text each; under every failing gate its reason, the
/// first one wrapped in full and emphasised, the others cut to one line.
fn gates<'a>(ctx: &Ctx<'a>, step: usize, w: usize, compact: bool, lines: &mut Vec<Line<'a>>) {
    let t = ctx.theme;
    let defs = &ctx.state.plan.steps[step].gates;
    let first = ctx.first_failing().map(|(gi, _)| gi);
    for (gi, (g, def)) in ctx.next_gates.iter().zip(defs).enumerate() {
        let (symbol, style) = ctx.gate_style(g.state);
        let is_first = first == Some(gi);
        let text_style = if is_first {
            t.text.add_modifier(Modifier::BOLD)
        } else {
            t.text
        };
        lines.push(Line::from(vec![
            Span::raw("   "),
            Span::styled(symbol, style),
            Span::styled(
                format!(" {}", gate_text(&def.text, w.saturating_sub(5))),
                text_style,
            ),
        ]));
        if g.state == GateState::Green {
            continue;
        }
        if is_first {
            for (k, l) in wrap(&g.reason, w.saturating_sub(7), 4)
                .into_iter()
                .enumerate()
            {
                let lead = if k == 0 { "     └ " } else { "       " };
                lines.push(Line::from(vec![Span::raw(lead), Span::styled(l, style)]));
            }
        } else if !compact {
            lines.push(Line::from(vec![
                Span::raw("       "),
                Span::styled(truncate(&g.reason, w.saturating_sub(7)), t.dim),
            ]));
        }
    }
}

fn confirm_hint<'a>(ctx: &Ctx<'a>, phrase: &str, w: usize) -> Line<'a> {
    let t = ctx.theme;
    let ready = ctx.blocker.is_none();
    let phrase_style = if ready { t.input } else { t.dim };
    let spans = if ctx.ui.mode.can_act() {
        vec![
            Span::raw("   "),
            Span::styled("Enter", if ready { t.key } else { t.dim }),
            Span::styled(" to confirm: type ", t.dim),
            Span::styled(format!("`{phrase}`"), phrase_style),
        ]
    } else {
        vec![
            Span::raw("   "),
            Span::styled("the driver types ", t.dim),
            Span::styled(format!("`{phrase}`"), phrase_style),
        ]
    };
    let line = Line::from(spans);
    if line.width() <= w {
        line
    } else {
        // Narrow: fewer words, same phrase.
        Line::from(vec![
            Span::raw("   "),
            Span::styled(
                if ctx.ui.mode.can_act() {
                    "Enter"
                } else {
                    "driver"
                },
                if ready { t.key } else { t.dim },
            ),
            Span::styled(", type ", t.dim),
            Span::styled(
                truncate(&format!("`{phrase}`"), w.saturating_sub(16)),
                phrase_style,
            ),
        ])
    }
}
