//! The status bar: who and where (mode, plan, elapsed, step n/N, watchers, the rehearsal's
//! cost so far, the downtime budget's and the deadline's countdowns, the abort conditions'
//! states, the transcript) on the first line; the verdict — what happens next, or why
//! it cannot — across the whole second line, because that is the line people read.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::{Ctx, put_line, sym};
use crate::ui::Mode;
use crate::ui::text::{age, clock, hms, truncate, truncate_left, width};
use cutover_core::state::{AbortState, GateState, RollbackStatus, StepStatus, show_countdown};

pub fn render(ctx: &Ctx<'_>, area: Rect, buf: &mut Buffer) {
    buf.set_style(area, ctx.theme.status);
    put_line(&first_line(ctx, area.width as usize), area, 0, buf);
    let (text, style) = verdict(ctx);
    let line = Line::from(Span::styled(
        truncate(&format!(" {text}"), area.width as usize),
        style,
    ));
    put_line(&line, area, 1, buf);
}

/// A segment of the first line, with the priority that decides what stays when it is
/// narrow (0 stays longest).
struct Seg<'a> {
    prio: u8,
    spans: Vec<Span<'a>>,
}

fn first_line<'a>(ctx: &Ctx<'a>, w: usize) -> Line<'a> {
    let st = ctx.state;
    let t = ctx.theme;
    let mode_style = match ctx.ui.mode {
        Mode::Rehearsal => t.mode_rehearsal,
        Mode::Drive => t.mode_drive,
        Mode::Watch => t.mode_watch,
        Mode::Replay => t.mode_replay,
    };
    let mut segs: Vec<Seg<'a>> = Vec::with_capacity(8);
    segs.push(Seg {
        prio: 0,
        spans: vec![Span::styled(ctx.ui.mode.label(), mode_style)],
    });
    segs.push(Seg {
        prio: 3,
        spans: vec![Span::styled(st.plan.name.clone(), t.title)],
    });
    let elapsed = match st.started_at {
        Some(s) => format!("T+{}", hms(st.now - s)),
        None => "T+--:--:--".into(),
    };
    segs.push(Seg {
        prio: 1,
        spans: vec![Span::styled(elapsed, t.text)],
    });
    let n = st.steps.len();
    let at = ctx.running.or(ctx.next).map(|i| i + 1).unwrap_or(n);
    segs.push(Seg {
        prio: 0,
        spans: vec![Span::styled(format!("step {at}/{n}"), t.text)],
    });
    if let Some(aws) = &ctx.ui.aws {
        // Which account this cockpit acts in: the first thing to check on the night.
        segs.push(Seg {
            prio: 1,
            spans: vec![Span::styled(aws.clone(), t.text)],
        });
    }
    let watchers = st.peers.len();
    segs.push(Seg {
        prio: 4,
        spans: vec![Span::styled(
            format!("watchers {watchers}"),
            if watchers > 0 { t.text } else { t.dim },
        )],
    });
    let active: Vec<&str> = st
        .faults
        .iter()
        .filter(|(_, (on, _))| *on)
        .map(|(name, _)| name.as_str())
        .collect();
    if !active.is_empty() {
        segs.push(Seg {
            prio: 2,
            spans: vec![Span::styled(
                format!("{} fault {}", sym::FAILED, active.join(",")),
                t.warn,
            )],
        });
    }
    if let Some(seg) = budget_segment(ctx) {
        segs.push(seg);
    }
    if let Some(seg) = deadline_segment(ctx) {
        segs.push(seg);
    }
    if let Some(seg) = aborts_segment(ctx) {
        segs.push(seg);
    }
    if let Some(wm) = &st.world {
        let lost_style = if wm.writes_lost > 0 { t.bad } else { t.good };
        let lost_sym = if wm.writes_lost > 0 {
            sym::BAD
        } else {
            sym::OK
        };
        segs.push(Seg {
            prio: 2,
            spans: vec![
                Span::styled(format!("refused {}", wm.writes_refused), t.text),
                Span::styled(format!(" {lost_sym} lost {}", wm.writes_lost), lost_style),
                Span::styled(format!(" down {:.1}s", wm.downtime_s), t.text),
            ],
        });
    }

    // Drop the least important segments until the rest fit with two-space separators.
    let seg_w = |s: &Seg<'_>| s.spans.iter().map(Span::width).sum::<usize>();
    let mut keep = vec![true; segs.len()];
    let total = |keep: &[bool]| {
        segs.iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(s, _)| seg_w(s) + 2)
            .sum::<usize>()
            + 1
    };
    for prio in (1..=4).rev() {
        if total(&keep) <= w {
            break;
        }
        for (i, s) in segs.iter().enumerate() {
            if s.prio == prio {
                keep[i] = false;
            }
        }
    }
    let used = total(&keep);
    let mut spans: Vec<Span<'a>> = vec![Span::raw(" ")];
    for (s, k) in segs.into_iter().zip(&keep) {
        if *k {
            spans.extend(s.spans);
            spans.push(Span::raw("  "));
        }
    }
    // The transcript path fills what is left, cut from the left to keep the file name.
    if let Some(path) = &ctx.ui.transcript {
        let room = w.saturating_sub(used + 1);
        if room >= 12 {
            let label = if ctx.ui.mode == Mode::Replay {
                "from "
            } else {
                "rec "
            };
            let shown = truncate_left(path, room - label.len());
            let pad = room - label.len() - width(&shown);
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(label, t.dim));
            spans.push(Span::styled(shown, t.dim));
        }
    }
    Line::from(spans)
}

/// The downtime budget's countdown while writes are frozen (and what was used after):
/// `budget 42s left`, amber from 80 %, red and counting up past 100 %.
fn budget_segment<'a>(ctx: &Ctx<'a>) -> Option<Seg<'a>> {
    let st = ctx.state;
    let t = ctx.theme;
    let budget = st.plan.budget?;
    let used = st.downtime.used_ms(st.now)?;
    let style = if used >= budget.max_ms {
        t.bad
    } else if used >= budget.warn_after_ms() {
        t.warn
    } else {
        t.good
    };
    let text = match (st.downtime.open(), used >= budget.max_ms) {
        (true, false) => format!("budget {} left", show_countdown(budget.max_ms - used)),
        (true, true) => format!("budget {} OVER", show_countdown(used - budget.max_ms)),
        (false, _) => format!(
            "downtime {} of {}",
            show_countdown(used),
            show_countdown(budget.max_ms)
        ),
    };
    Some(Seg {
        prio: 0,
        spans: vec![Span::styled(text, style)],
    })
}

/// The deadline's countdown until the cutover completes or rolls back: `deadline 12m05s`,
/// red once it passed (no forward step may start).
fn deadline_segment<'a>(ctx: &Ctx<'a>) -> Option<Seg<'a>> {
    let st = ctx.state;
    let t = ctx.theme;
    let due = st.deadline_at()?;
    if st.completed() || st.rollback.is_some() {
        return None;
    }
    // Far off it gives way to the rehearsal's figures; near (5 minutes) or past it stays.
    let (text, style, prio) = if st.now > due {
        (
            format!("deadline passed {} ago", show_countdown(st.now - due)),
            t.bad,
            0,
        )
    } else {
        let left = due - st.now;
        let (style, prio) = if left <= 5 * 60_000 {
            (t.warn, 1)
        } else {
            (t.text, 3)
        };
        (format!("deadline in {}", show_countdown(left)), style, prio)
    };
    Some(Seg {
        prio,
        spans: vec![Span::styled(text, style)],
    })
}

/// The plan's abort conditions, each with its state: `abort lag armed drift FIRED`.
fn aborts_segment<'a>(ctx: &Ctx<'a>) -> Option<Seg<'a>> {
    let st = ctx.state;
    let t = ctx.theme;
    if st.plan.aborts.is_empty() {
        return None;
    }
    let mut spans = vec![Span::styled("abort", t.dim)];
    for (def, watch) in st.plan.aborts.iter().zip(&st.aborts) {
        let state = watch.state();
        let style = abort_style(t, state);
        spans.push(Span::styled(format!(" {}", def.id), t.text));
        spans.push(Span::styled(format!(" {}", state.as_str()), style));
    }
    Some(Seg { prio: 1, spans })
}

/// An abort condition's colour: fired is bad, holding or unknown a warning.
pub(crate) fn abort_style(t: &crate::ui::Theme, state: AbortState) -> Style {
    match state {
        AbortState::Fired => t.bad,
        AbortState::Holding | AbortState::Unknown => t.warn,
        AbortState::Quiet => t.good,
        AbortState::Disarmed => t.dim,
    }
}

/// The one-line answer to "where are we and what happens next".
pub fn verdict(ctx: &Ctx<'_>) -> (String, Style) {
    let st = ctx.state;
    let t = ctx.theme;
    // The first line already says "step n/N"; the verdict names the step by its id.
    let step_name = |i: usize| {
        st.plan
            .steps
            .get(i)
            .map(|s| s.id.clone())
            .unwrap_or_default()
    };
    if st.completed() {
        let at = st
            .steps
            .last()
            .and_then(|s| s.finished_at)
            .unwrap_or(st.now);
        return (
            format!("{} cutover completed at {}", sym::OK, clock(at)),
            t.good,
        );
    }
    if let Some(r) = &st.rollback {
        return match r.status {
            RollbackStatus::Done => (
                format!("{} rolled back: {} (by {})", sym::UNDONE, r.reason, r.by),
                t.undone,
            ),
            RollbackStatus::Failed => (
                format!(
                    "{} rollback halted: fix the cause, then press R to retry",
                    sym::FAILED
                ),
                t.bad,
            ),
            RollbackStatus::Waiting => (
                format!(
                    "{} rollback waits for the running action to end",
                    sym::UNDOING
                ),
                t.warn,
            ),
            RollbackStatus::Running => {
                let which = ctx.running.map(step_name).unwrap_or_default();
                (
                    format!("{} rolling back: undoing {which}", sym::UNDOING),
                    t.warn,
                )
            }
        };
    }
    if let Some((at, reason)) = &st.ended {
        return (
            format!("{} session ended at {}: {reason}", sym::STOPPED, clock(*at)),
            t.dim,
        );
    }
    if let Some(i) = st.steps.iter().position(|s| s.in_doubt.is_some()) {
        let id = step_name(i);
        return (
            format!(
                "{} {id} is in doubt: its result was never recorded; check, then type `done {id}` or `not done {id}`",
                sym::UNKNOWN
            ),
            t.warn,
        );
    }
    if let Some(why) = st.hold_blocker() {
        return (format!("{} {why}", sym::FAILED), t.bad);
    }
    if let Some(i) = ctx.running {
        let s = &st.steps[i];
        let since = s.started_at.or(s.confirmed_at).unwrap_or(st.now);
        let last = s
            .output
            .back()
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        return (
            format!(
                "{} running {} for {}{last}",
                sym::RUNNING,
                step_name(i),
                age(st.now - since)
            ),
            t.running,
        );
    }
    let Some(i) = ctx.next else {
        return (format!("{} no step can run now", sym::PENDING), t.dim);
    };
    let s = &st.steps[i];
    if s.status == StepStatus::Failed {
        let msg = s.message.as_deref().unwrap_or("no message");
        return (
            format!(
                "{} {} failed: {msg} — Enter retries, R rolls back",
                sym::FAILED,
                step_name(i)
            ),
            t.bad,
        );
    }
    if let Some(why) = &s.timed_out {
        return (
            format!("{} {} timed out: {why}", sym::FAILED, step_name(i)),
            t.warn,
        );
    }
    match (ctx.first_failing(), &ctx.blocker) {
        (None, None) => {
            let phrase = &st.plan.steps[i].confirm;
            let how = if ctx.ui.mode.can_act() {
                format!("press Enter, type `{phrase}`")
            } else {
                format!("the driver types `{phrase}`")
            };
            (
                format!("{} ready: {} — {how}", sym::READY, step_name(i)),
                t.good,
            )
        }
        (Some((gi, g)), _) => {
            let (symbol, style) = ctx.gate_style(g.state);
            // A red gate's reason already names its input and value; an unknown one's
            // ("stale: 7s old") does not, so it gets the input's name in front.
            let (word, why) = if g.state == GateState::Unknown {
                let input = &st.plan.steps[i].gates[gi].input;
                ("waiting", format!("{input}: {}", g.reason))
            } else {
                ("blocked", g.reason.clone())
            };
            (format!("{symbol} {word}: {} — {why}", step_name(i)), style)
        }
        (None, Some(why)) => (
            format!("{} blocked: {} — {why}", sym::BAD, step_name(i)),
            t.bad,
        ),
    }
}
