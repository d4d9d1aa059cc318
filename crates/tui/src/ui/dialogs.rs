//! Overlays: the step confirmation (gates, action, undo, the exact phrase), the rollback
//! (the undos in the order they will run), clearing a guard's hold, the quit question, the
//! help (with the plan's abort conditions and their states), and the message
//! for a terminal too small to draw the cockpit in.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Widget};

use super::panes::{Ctx, put_line, sym, wrap};
use super::text::{truncate, width};
use super::{Dialog, MIN_HEIGHT, MIN_WIDTH, Theme};
use cutover_core::state::{CLEAR_PHRASE, GateState, OpenDialog, StepStatus};

/// The phrase that confirms a rollback.
pub const ROLLBACK_PHRASE: &str = "roll back";

pub fn too_small(buf: &mut Buffer, area: Rect, theme: &Theme) {
    let long = format!(
        "terminal too small: {}x{}, the cockpit needs {MIN_WIDTH}x{MIN_HEIGHT}",
        area.width, area.height
    );
    let short = format!(
        "too small {}x{} need {MIN_WIDTH}x{MIN_HEIGHT}",
        area.width, area.height
    );
    let (w, h) = (area.width as usize, area.height as usize);
    let fits = |m: &str| {
        let lines = wrap(m, w, usize::MAX);
        lines.len() <= h && lines.iter().all(|l| !l.ends_with('…'))
    };
    let msg = if fits(&long) { long } else { short };
    let lines = wrap(&msg, w, h);
    let top = area.height.saturating_sub(lines.len() as u16) / 2;
    for (i, l) in lines.iter().enumerate() {
        let line = Line::from(Span::styled(l.clone(), theme.warn));
        let x = area.x + area.width.saturating_sub(width(l) as u16) / 2;
        let r = Rect::new(x, area.y + top + i as u16, area.width - (x - area.x), 1);
        put_line(&line, r, 0, buf);
    }
}

/// Draws whichever overlay is open, topmost last, over a dimmed cockpit.
pub fn render(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let local = ctx.ui.mode.can_act() && ctx.ui.dialog.is_some();
    let remote = !ctx.ui.mode.can_act() && ctx.state.dialog.is_some();
    if local || remote || ctx.ui.quit_confirm || ctx.ui.help {
        dim_background(ctx, area, buf);
    }
    if ctx.ui.mode.can_act() {
        match ctx.ui.dialog {
            Some(Dialog::Confirm { step }) => confirm(ctx, step, None, area, buf),
            Some(Dialog::Rollback) => rollback(ctx, None, area, buf),
            Some(Dialog::Invites) => invites(ctx, area, buf),
            Some(Dialog::ClearHold) => clear_hold(ctx, area, buf),
            None => {}
        }
    } else {
        // Watchers and replays see the driver's dialog as the transcript records it.
        match &ctx.state.dialog {
            Some(OpenDialog::Confirm { step, by }) => confirm(ctx, *step, Some(by), area, buf),
            Some(OpenDialog::Rollback { by }) => rollback(ctx, Some(by), area, buf),
            None => {}
        }
    }
    if ctx.ui.quit_confirm {
        quit(ctx, area, buf);
    }
    if ctx.ui.help {
        help(ctx, area, buf);
    }
}

/// Fades everything drawn so far, so the eye goes to the overlay.
fn dim_background(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let fg = ctx.theme.dim.fg;
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(cell) = buf.cell_mut((x, y)) {
                if let Some(fg) = fg {
                    cell.set_fg(fg);
                }
                cell.modifier.insert(ratatui::style::Modifier::DIM);
            }
        }
    }
}

/// A centred box of `lines` (clipped to the screen), titled.
fn boxed(ctx: &Ctx<'_>, title: String, lines: &[Line<'_>], w: u16, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let w = w.min(area.width.saturating_sub(2)).max(10);
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(1));
    let x = area.x + area.width.saturating_sub(w) / 2;
    let y = area.y + (area.height.saturating_sub(h)) / 2;
    let r = Rect::new(x, y, w, h);
    // Clear a one-cell halo too, so no pane text bleeds against the border.
    let halo = Rect::new(
        x.saturating_sub(1).max(area.x),
        y.saturating_sub(1).max(area.y),
        (w + 2).min(area.width),
        (h + 2).min(area.height),
    )
    .intersection(area);
    Clear.render(halo, buf);
    buf.set_style(halo, t.text);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(t.dialog_border)
        .style(t.dialog)
        .title(Line::from(Span::styled(
            format!(" {title} "),
            t.dialog_border,
        )));
    let inner = block.inner(r);
    block.render(r, buf);
    let inner = Rect::new(
        inner.x + 1,
        inner.y,
        inner.width.saturating_sub(2),
        inner.height,
    );
    for (row, line) in lines.iter().take(inner.height as usize).enumerate() {
        put_line(line, inner, row as u16, buf);
    }
}

/// Inner width available for text in a box of width `w`.
fn text_w(ctx_area: Rect, w: u16) -> usize {
    w.min(ctx_area.width.saturating_sub(2)).saturating_sub(4) as usize
}

fn label<'a>(ctx: &Ctx<'a>, name: &'static str, value: String, style: Style, w: usize) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{name:<8}"), ctx.theme.dim),
        Span::styled(truncate(&value, w.saturating_sub(8)), style),
    ])
}

/// The typed text: normal while it is a prefix of the phrase, marked as soon as it is not.
fn input_line<'a>(ctx: &Ctx<'a>, phrase: &str, by: Option<&str>, w: usize) -> Line<'a> {
    let t = ctx.theme;
    match by {
        Some(by) => Line::from(Span::styled(
            format!("{by} is typing the phrase… (read-only)"),
            t.dim,
        )),
        None => {
            let typed = ctx.ui.input.as_str();
            let style = if phrase.starts_with(typed) {
                t.input
            } else {
                t.bad
            };
            let shown = crate::ui::text::truncate_left(typed, w.saturating_sub(4));
            Line::from(vec![
                Span::styled("> ", t.key),
                Span::styled(shown, style),
                Span::styled("█", t.input),
            ])
        }
    }
}

fn confirm(ctx: &Ctx<'_>, step: usize, by: Option<&String>, area: Rect, buf: &mut Buffer) {
    let st = ctx.state;
    let t = ctx.theme;
    let Some(def) = st.plan.steps.get(step) else {
        return;
    };
    let box_w = 78;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(24);
    lines.push(Line::from(Span::styled(
        truncate(&def.title, w),
        t.text.patch(t.title),
    )));
    if let Some(d) = &def.description {
        for l in wrap(d, w, 2) {
            lines.push(Line::from(Span::styled(l, t.dim)));
        }
    }
    lines.push(Line::raw(""));
    lines.push(label(
        ctx,
        "action",
        def.action.describe(&st.plan),
        t.text,
        w,
    ));
    match &def.undo {
        Some(u) => lines.push(label(ctx, "undo", u.describe(&st.plan), t.dim, w)),
        None if def.irreversible => lines.push(label(
            ctx,
            "undo",
            format!(
                "{} irreversible: a rollback cannot undo this step",
                sym::FAILED
            ),
            t.bad,
            w,
        )),
        None => lines.push(label(ctx, "undo", "nothing to undo".into(), t.dim, w)),
    }
    lines.push(Line::raw(""));
    // Live gates: the dialog says what Enter would be judged against right now.
    let gates = if ctx.next == Some(step) {
        ctx.next_gates.clone()
    } else {
        st.step_gates(step)
    };
    lines.push(Line::from(Span::styled("gates", t.dim)));
    // Values line up in a column after the longest gate text.
    let text_w = def
        .gates
        .iter()
        .map(|g| width(&g.text))
        .max()
        .unwrap_or(0)
        .min(w.saturating_sub(3));
    for (g, gd) in gates.iter().zip(&def.gates) {
        let (s, style) = ctx.gate_style(g.state);
        let mut spans = vec![Span::raw(" "), Span::styled(s, style), Span::raw(" ")];
        let text = crate::ui::text::pad(&gd.text, text_w);
        let room = w.saturating_sub(3 + text_w + 2);
        spans.push(Span::styled(text, t.text));
        if g.state == GateState::Green {
            if let Some(v) = &g.value {
                let v = format!("= {v}");
                if width(&v) <= room {
                    spans.push(Span::styled(format!("  {v}"), t.dim));
                }
            }
            lines.push(Line::from(spans));
        } else {
            lines.push(Line::from(spans));
            lines.push(Line::from(vec![
                Span::raw("   "),
                Span::styled(truncate(&g.reason, w.saturating_sub(3)), style),
            ]));
        }
    }
    if def.gates.is_empty() {
        lines.push(Line::from(Span::styled(" (no gates)", t.dim)));
    }
    if def.approvals > 0 {
        let have = st.steps.get(step).map(|s| s.approvals.len()).unwrap_or(0);
        let style = if have >= def.approvals as usize {
            t.good
        } else {
            t.warn
        };
        lines.push(label(
            ctx,
            "approvals",
            format!("{have}/{}", def.approvals),
            style,
            w,
        ));
    }
    if let Some(blocker) = st.confirm_blocker(step) {
        for l in wrap(&format!("{} cannot confirm now: {blocker}", sym::BAD), w, 2) {
            lines.push(Line::from(Span::styled(l, t.bad)));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("type ", t.text),
        Span::styled(format!("`{}`", def.confirm), t.input.patch(t.key)),
        Span::styled(" to confirm:", t.text),
    ]));
    lines.push(input_line(ctx, &def.confirm, by.map(String::as_str), w));
    if by.is_none() {
        if let Some(e) = &ctx.ui.dialog_error {
            for l in wrap(e, w, 2) {
                lines.push(Line::from(Span::styled(l, t.bad)));
            }
        }
        lines.push(keys_line(ctx));
    }
    let n = st.steps.len();
    let title = format!("Confirm step {}/{n}: {}", step + 1, def.id);
    boxed(ctx, title, &lines, box_w, area, buf);
}

fn keys_line<'a>(ctx: &Ctx<'a>) -> Line<'a> {
    let t = ctx.theme;
    Line::from(vec![
        Span::styled("Enter", t.key),
        Span::styled(" submit  ", t.dim),
        Span::styled("Esc", t.key),
        Span::styled(" cancel  ", t.dim),
        Span::styled("Backspace", t.key),
        Span::styled(" erase", t.dim),
    ])
}

/// The invites of the running share: who, which role, whether attached; and the command
/// line that issues, revokes and shows them. No token is drawn here.
fn invites(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let Some(share) = &ctx.ui.share else {
        return;
    };
    let box_w = 78;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = Vec::new();
    let list = share.invites();
    if let Some(cmd) = share.shared_command().filter(|_| list.is_empty()) {
        lines.push(Line::from(Span::styled(
            truncate("one shared token, for observers only (T shows it):", w),
            t.dim,
        )));
        lines.push(Line::from(Span::styled(truncate(&cmd, w), t.text)));
    }
    if list.is_empty() {
        lines.push(Line::from(Span::styled(
            "nobody is invited by name yet",
            t.dim,
        )));
    }
    for inv in &list {
        let (status, style) = if inv.revoked {
            ("revoked", t.dim)
        } else if ctx.state.peers.contains(&inv.name) {
            ("attached", t.good)
        } else {
            ("not attached", t.warn)
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<20} ", truncate(&inv.name, 20)), t.text),
            Span::styled(format!("{:<10} ", inv.role.as_str()), t.key),
            Span::styled(status, style),
        ]));
    }
    lines.push(Line::default());
    if let Some(f) = share.invites_file() {
        lines.push(Line::from(Span::styled(
            truncate(&format!("their attach commands: {} (0600)", f.display()), w),
            t.dim,
        )));
    }
    lines.push(Line::from(Span::styled(
        truncate(
            "invite NAME:approver · invite NAME (observer) · revoke NAME · show NAME",
            w,
        ),
        t.dim,
    )));
    let typed = crate::ui::text::truncate_left(&ctx.ui.input, w.saturating_sub(4));
    lines.push(Line::from(vec![
        Span::styled("> ", t.key),
        Span::styled(typed, t.input),
        Span::styled("█", t.input),
    ]));
    if let Some(e) = &ctx.ui.dialog_error {
        lines.push(Line::from(Span::styled(truncate(e, w), t.bad)));
    }
    lines.push(Line::from(vec![
        Span::styled("Enter", t.key),
        Span::styled(" run  ", t.dim),
        Span::styled("Esc", t.key),
        Span::styled(" close", t.dim),
    ]));
    boxed(ctx, "Invites".into(), &lines, box_w, area, buf);
}

fn rollback(ctx: &Ctx<'_>, by: Option<&String>, area: Rect, buf: &mut Buffer) {
    let st = ctx.state;
    let t = ctx.theme;
    let box_w = 78;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(20);
    let undos = st.rollback_preview();
    if undos.is_empty() {
        lines.push(Line::from(Span::styled(
            "no step has an undo to run",
            t.dim,
        )));
    } else {
        lines.push(Line::from(Span::styled(
            "these undos run, newest first:",
            t.text,
        )));
        let id_w = undos
            .iter()
            .filter_map(|&i| st.plan.steps.get(i).map(|s| width(&s.id)))
            .max()
            .unwrap_or(4);
        for (k, &i) in undos.iter().enumerate() {
            let def = &st.plan.steps[i];
            let what = def
                .undo
                .as_ref()
                .map(|u| u.describe(&st.plan))
                .unwrap_or_default();
            let head = format!("{:>2}. {} {:<id_w$}  ", k + 1, sym::UNDOING, def.id);
            let room = w.saturating_sub(width(&head));
            lines.push(Line::from(vec![
                Span::styled(head, t.running),
                Span::styled(truncate(&what, room), t.text),
            ]));
        }
    }
    let marks = st.rollback_marks_only();
    if !marks.is_empty() {
        let ids: Vec<&str> = marks
            .iter()
            .filter_map(|&i| st.plan.steps.get(i).map(|s| s.id.as_str()))
            .collect();
        for l in wrap(
            &format!("marked undone, nothing to run: {}", ids.join(", ")),
            w,
            2,
        ) {
            lines.push(Line::from(Span::styled(l, t.dim)));
        }
    }
    let irreversible: Vec<&str> = st
        .steps
        .iter()
        .zip(&st.plan.steps)
        .filter(|(s, d)| d.irreversible && s.status == StepStatus::Done)
        .map(|(_, d)| d.id.as_str())
        .collect();
    if !irreversible.is_empty() {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "{} cannot be undone: {}",
                    sym::FAILED,
                    irreversible.join(", ")
                ),
                w,
            ),
            t.bad,
        )));
    }
    if let Some(r) = ctx.running {
        let id = &st.plan.steps[r].id;
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "{} {id} is running: the rollback waits for it to end",
                    sym::RUNNING
                ),
                w,
            ),
            t.warn,
        )));
    }
    phrase_prompt(
        ctx,
        ROLLBACK_PHRASE,
        " to confirm:",
        by.map(String::as_str),
        w,
        &mut lines,
    );
    boxed(
        ctx,
        "Roll back the cutover".into(),
        &lines,
        box_w,
        area,
        buf,
    );
}

/// The typed-phrase prompt: what to type and why, the input, and for the driver (`by` is
/// `None`) the last error and the keys.
fn phrase_prompt<'a>(
    ctx: &Ctx<'a>,
    phrase: &str,
    purpose: &'static str,
    by: Option<&str>,
    w: usize,
    lines: &mut Vec<Line<'a>>,
) {
    let t = ctx.theme;
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("type ", t.text),
        Span::styled(format!("`{phrase}`"), t.input.patch(t.key)),
        Span::styled(purpose, t.text),
    ]));
    lines.push(input_line(ctx, phrase, by, w));
    if by.is_none() {
        if let Some(e) = &ctx.ui.dialog_error {
            lines.push(Line::from(Span::styled(truncate(e, w), t.bad)));
        }
        lines.push(keys_line(ctx));
    }
}

/// The hold a guard put on forward steps, what fired it, and the phrase that clears it.
fn clear_hold(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let box_w = 78;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(12);
    if let Some(hold) = super::keys::clearable_hold(ctx.state) {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!("{} {} holds every forward step:", sym::FAILED, hold.guard),
                w,
            ),
            t.bad,
        )));
        for l in wrap(&hold.reason, w, 4) {
            lines.push(Line::from(Span::styled(l, t.text)));
        }
        lines.push(Line::from(Span::styled(
            truncate(
                "clearing re-arms it: it fires again on a new reading that holds",
                w,
            ),
            t.dim,
        )));
    }
    phrase_prompt(
        ctx,
        CLEAR_PHRASE,
        " to clear it (R rolls back instead):",
        None,
        w,
        &mut lines,
    );
    boxed(ctx, "Clear the hold".into(), &lines, box_w, area, buf);
}

fn quit(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let st = ctx.state;
    let box_w = 60;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = vec![Line::from(Span::styled(
        "the cutover is under way. Quit anyway?",
        t.text,
    ))];
    if let Some(r) = ctx.running {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "{} step {} is still running",
                    sym::RUNNING,
                    st.plan.steps[r].id
                ),
                w,
            ),
            t.warn,
        )));
    } else if let Some(n) = ctx.next {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "step {}/{} {} is next",
                    n + 1,
                    st.steps.len(),
                    st.plan.steps[n].id
                ),
                w,
            ),
            t.dim,
        )));
    }
    for side in st.frozen_sides().iter().map(|s| s.as_str()) {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "{} writes stay frozen on the {side}: apps cannot write",
                    sym::FAILED
                ),
                w,
            ),
            t.bad,
        )));
    }
    let changed: Vec<&str> = st
        .plan
        .steps
        .iter()
        .zip(&st.steps)
        .filter(|(d, s)| s.status == StepStatus::Done && d.action.changes_state())
        .map(|(d, _)| d.id.as_str())
        .collect();
    if !changed.is_empty() {
        lines.push(Line::from(Span::styled(
            truncate(&format!("left as they are: {}", changed.join(", ")), w),
            t.warn,
        )));
    }
    lines.push(Line::from(Span::styled(
        "every event so far is in the transcript",
        t.dim,
    )));
    lines.push(Line::raw(""));
    let mut keys = vec![
        Span::styled("y", t.key),
        Span::styled("/", t.dim),
        Span::styled("Enter", t.key),
        Span::styled(" quit   ", t.dim),
    ];
    if !changed.is_empty() && st.rollback.is_none() {
        keys.push(Span::styled("R", t.key));
        keys.push(Span::styled(" roll back first   ", t.dim));
    }
    keys.extend([
        Span::styled("n", t.key),
        Span::styled("/", t.dim),
        Span::styled("Esc", t.key),
        Span::styled(" stay", t.dim),
    ]);
    lines.push(Line::from(keys));
    boxed(ctx, "Quit?".into(), &lines, box_w, area, buf);
}

/// Every key, and the symbol legend.
pub const HELP: &[(&str, &str)] = &[
    ("?", "this help (any key closes it)"),
    ("Tab  S-Tab", "focus the next / previous pane"),
    (
        "↑ ↓  j k",
        "scroll the focused pane; checklist: select a step",
    ),
    ("PgUp PgDn", "scroll a page"),
    ("Home End g G", "top / bottom (End: the log follows again)"),
    ("z", "zoom the focused pane to full screen"),
    ("Esc", "back: close, unzoom, follow the next step again"),
    ("Enter", "confirm the next step: opens it, type its phrase"),
    ("R", "roll back: run the undos, newest first"),
    (
        "H",
        "clear a hold (an abort condition or step timeout fired)",
    ),
    (
        "q  Ctrl-C",
        "quit (asks first while a cutover is under way)",
    ),
    ("T", "how colleagues attach (sharing; any key hides it)"),
    ("I", "invites: invite NAME:approver, revoke NAME, show NAME"),
    (
        "in a dialog",
        "type · Backspace · Ctrl-U clear · Enter · Esc",
    ),
];

fn help(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    let t = ctx.theme;
    let box_w = 78;
    let w = text_w(area, box_w);
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(HELP.len() + 8);
    for (k, what) in HELP {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:<13}"), t.key),
            Span::styled(truncate(what, w.saturating_sub(13)), t.text),
        ]));
    }
    // The plan's abort conditions and what each is doing now.
    for (def, watch) in ctx.state.plan.aborts.iter().zip(&ctx.state.aborts) {
        let state = watch.state();
        let style = super::panes::status::abort_style(t, state);
        lines.push(Line::from(vec![
            Span::styled(format!("{:<13}", format!("abort {}", def.id)), t.key),
            Span::styled(
                truncate(
                    &format!(
                        "{}: `{}` → {}",
                        state.as_str(),
                        def.when.text,
                        def.then.as_str()
                    ),
                    w.saturating_sub(13),
                ),
                style,
            ),
        ]));
    }
    if !ctx.ui.mode.can_act() {
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "{}: read-only, Enter and R only explain why",
                    ctx.ui.mode.label()
                ),
                w,
            ),
            t.warn,
        )));
    }
    lines.push(Line::raw(""));
    let legend: [(&str, &str, Style); 10] = [
        (sym::OK, "green, done", t.good),
        (sym::BAD, "red", t.bad),
        (sym::UNKNOWN, "unknown, stale", t.unknown),
        (sym::READY, "ready", t.good),
        (sym::RUNNING, "running", t.running),
        (sym::UNDOING, "undoing", t.running),
        (sym::UNDONE, "undone", t.undone),
        (sym::FAILED, "failed, attention", t.warn),
        (sym::STOPPED, "stopped, read-only", t.text),
        (sym::PENDING, "pending", t.dim),
    ];
    let mut row: Vec<Span<'_>> = Vec::new();
    let mut used = 0;
    for (s, what, style) in legend {
        let item = 1 + 1 + width(what) + 2;
        if used + item > w && !row.is_empty() {
            lines.push(Line::from(std::mem::take(&mut row)));
            used = 0;
        }
        used += item;
        row.push(Span::styled(s, style));
        row.push(Span::styled(format!(" {what}  "), t.dim));
    }
    if !row.is_empty() {
        lines.push(Line::from(row));
    }
    boxed(ctx, "Keys".into(), &lines, box_w, area, buf);
}
