//! The name the applications follow: where it points (source or target), the change
//! status, what this host's resolver answers, and which database accepts writes — the
//! three facts that say where traffic goes.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::{Ctx, Frame, framed, placeholder, put_lines, sym};
use crate::ui::Pane;
use crate::ui::text::{age, num, truncate};
use cutover_core::event::{DatabaseReading, DnsSet, SourceKind};
use cutover_core::plan::{Input, same_dns_name};

/// Which side a record value points at, per the plan.
fn side_of(ctx: &Ctx<'_>, value: &str) -> (&'static str, Style) {
    let t = ctx.theme;
    match &ctx.state.plan.dns {
        Some(d) if same_dns_name(value, &d.source) => ("source", t.text),
        Some(d) if same_dns_name(value, &d.target) => ("target", t.text),
        _ => ("neither side", t.warn),
    }
}

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let st = ctx.state;
    let t = ctx.theme;
    let mut summary: Vec<Span<'_>> = Vec::with_capacity(3);
    let full = frame == Frame::Full;
    match (&st.dns, &st.plan.dns) {
        (Some(d), _) if full => summary.push(Span::styled(d.name.clone(), t.text)),
        (Some(d), _) => {
            summary.push(Span::styled(
                format!("{} {}", d.name, d.record_type),
                t.text,
            ));
            if let Some(ttl) = d.ttl {
                summary.push(Span::styled(format!(" ttl {ttl}s"), t.dim));
            }
            let stale = ctx.stale(d.observed_at, Input::DnsValue.default_fresh_ms());
            let a = age(ctx.now - d.observed_at);
            if stale {
                summary.push(Span::styled(format!(" {} {a} old", sym::UNKNOWN), t.stale));
            } else {
                summary.push(Span::styled(format!(" · {a} ago"), t.dim));
            }
        }
        (None, Some(p)) => {
            summary.push(Span::styled(format!("{} {}", p.name, p.record_type), t.dim))
        }
        (None, None) => {}
    }
    let inner = framed(ctx.block(Pane::Dns, summary, frame), area, buf);
    if inner.is_empty() {
        return;
    }
    let w = inner.width as usize;
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(6);
    let mut set_lines: Vec<Line<'_>> = Vec::new();
    let mut sets_at = 0;
    match &st.dns {
        Some(d) => {
            // "→ target: <value> ✔ INSYNC"; the side comes first because it is the
            // answer, and when the line is too narrow the value moves to its own line.
            let mut head = vec![Span::styled("→ ", t.dim)];
            let status = match d.change_status.as_deref() {
                Some(s) if s.eq_ignore_ascii_case("INSYNC") => {
                    Some(Span::styled(format!(" {} {s}", sym::OK), t.good))
                }
                Some(s) => Some(Span::styled(format!(" {} {s}", sym::RUNNING), t.running)),
                None => None,
            };
            let total: u64 = d.sets.iter().filter_map(|s| s.weight).sum();
            let weighted = d.sets.iter().any(|s| s.weight.is_some());
            match &d.value {
                // Weighted: the answer is a split, "→ source 95% · target 5%".
                Some(_) if weighted => {
                    let mut first = true;
                    for (label, share, style) in split(ctx, &d.sets, total) {
                        if !first {
                            head.push(Span::styled(" · ", t.dim));
                        }
                        first = false;
                        head.push(Span::styled(
                            format!("{label} {}%", num(share)),
                            style.patch(t.text.add_modifier(ratatui::style::Modifier::BOLD)),
                        ));
                    }
                    head.extend(status);
                    lines.push(Line::from(head));
                }
                Some(v) => {
                    let (side, style) = side_of(ctx, v);
                    head.push(Span::styled(
                        side,
                        style.patch(t.text.add_modifier(ratatui::style::Modifier::BOLD)),
                    ));
                    let one = 2
                        + side.len()
                        + 2
                        + crate::ui::text::width(v)
                        + status.as_ref().map_or(0, |s| s.width());
                    if one <= w && !full {
                        head.push(Span::styled(format!(": {v}"), t.text));
                        head.extend(status);
                        lines.push(Line::from(head));
                    } else {
                        head.extend(status);
                        lines.push(Line::from(head));
                        lines.push(Line::from(Span::styled(
                            truncate(&format!("  {v}"), w),
                            t.text,
                        )));
                        // A full pane has rows to spare: type, TTL and age get their own.
                        if full {
                            let mut meta =
                                vec![Span::styled(format!("  {}", d.record_type), t.dim)];
                            if let Some(ttl) = d.ttl {
                                meta.push(Span::styled(format!(" · ttl {ttl}s"), t.dim));
                            }
                            if ctx.stale(d.observed_at, Input::DnsValue.default_fresh_ms()) {
                                meta.push(Span::styled(
                                    format!(
                                        " {} read {} ago",
                                        sym::UNKNOWN,
                                        age(ctx.now - d.observed_at)
                                    ),
                                    t.stale,
                                ));
                            } else {
                                meta.push(Span::styled(
                                    format!(" · read {} ago", age(ctx.now - d.observed_at)),
                                    t.dim,
                                ));
                            }
                            lines.push(Line::from(meta));
                        }
                    }
                }
                None => {
                    head.push(Span::styled(sym::UNKNOWN, t.unknown));
                    head.extend(status);
                    lines.push(Line::from(head));
                }
            }
            // Every set, below the answer, when the pane has the rows for them.
            set_lines = d
                .sets
                .iter()
                .map(|set| set_line(ctx, set, total, w))
                .collect();
            sets_at = lines.len();
        }
        None if st.plan.dns.is_none() => lines.push(placeholder(ctx, "the plan has no DNS record")),
        None => lines.push(placeholder(ctx, "no DNS reading yet")),
    }
    if let Some(err) = st
        .health
        .get(&SourceKind::Dns)
        .and_then(|h| h.current_error())
    {
        lines.push(Line::from(Span::styled(
            truncate(&format!("{} dns: {err}", sym::BAD), w),
            t.bad,
        )));
    }
    if let Some(d) = &st.dns {
        let mut res = vec![Span::styled("resolver ", t.dim)];
        match &d.resolved {
            Some(r) => {
                let (side, style) = side_of(ctx, r);
                res.push(Span::styled(side, style));
                if d.value.as_deref().is_some_and(|v| !same_dns_name(v, r)) {
                    res.push(Span::styled(format!(" {} not yet", sym::FAILED), t.warn));
                }
                res.push(Span::styled(format!(": {r}"), t.dim));
            }
            None => res.push(Span::styled(
                format!("{} no answer", sym::UNKNOWN),
                t.unknown,
            )),
        }
        lines.push(Line::from(res));
    }
    for db in [&st.source_db, &st.target_db].into_iter().flatten() {
        lines.push(database(ctx, db));
    }
    if lines.len() + set_lines.len() <= inner.height as usize {
        lines.splice(sets_at..sets_at, set_lines);
    }
    put_lines(&lines, inner, buf);
}

/// A weighted set's share of the traffic, in per cent of all the sets' weights.
fn share(weight: u64, total: u64) -> f64 {
    if total > 0 {
        weight as f64 * 100.0 / total as f64
    } else {
        0.0
    }
}

/// The traffic share of each side, from the weighted sets: source, target, then anything
/// else the record points at; sides with no set are left out.
fn split<'a>(
    ctx: &Ctx<'a>,
    sets: &[DnsSet],
    total: u64,
) -> Vec<(&'static str, f64, ratatui::style::Style)> {
    let mut out: Vec<(&'static str, f64, ratatui::style::Style)> = Vec::with_capacity(3);
    for set in sets {
        let (side, style) = side_of(ctx, &set.value);
        let side = if side == "neither side" {
            "other"
        } else {
            side
        };
        let share = share(set.weight.unwrap_or(0), total);
        match out.iter_mut().find(|(s, _, _)| *s == side) {
            Some(entry) => entry.1 += share,
            None => out.push((side, share, style)),
        }
    }
    out.sort_by_key(|(s, _, _)| match *s {
        "source" => 0,
        "target" => 1,
        _ => 2,
    });
    out
}

/// One record set: `  ▮ target  w 5 (5%)  id green · aurora.example.` — the side first, then
/// its share of traffic (weighted) or its role (failover, alias), then the value.
fn set_line<'a>(ctx: &Ctx<'a>, set: &DnsSet, total: u64, w: usize) -> Line<'a> {
    let t = ctx.theme;
    let (side, style) = side_of(ctx, &set.value);
    let carries = match (set.weight, set.failover.as_deref()) {
        (Some(weight), _) => weight > 0,
        (None, Some(f)) => f.eq_ignore_ascii_case("PRIMARY"),
        (None, None) => true,
    };
    let mut spans = vec![
        Span::styled(
            if carries { "  ▮ " } else { "  ▯ " },
            if carries { style } else { t.dim },
        ),
        Span::styled(
            format!(
                "{:<7}",
                if side == "neither side" {
                    "other"
                } else {
                    side
                }
            ),
            style,
        ),
    ];
    let mut role = match (set.weight, set.failover.as_deref()) {
        (Some(weight), _) => format!("w {weight} ({}%)", num(share(weight, total))),
        (None, Some(f)) => format!("failover {}", f.to_ascii_lowercase()),
        (None, None) => String::new(),
    };
    if set.alias {
        role.push_str(if role.is_empty() { "alias" } else { " alias" });
    }
    if let Some(id) = &set.set_identifier {
        role.push_str(&format!("  id {id}"));
    }
    spans.push(Span::styled(role, t.text));
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if used + 4 < w {
        spans.push(Span::styled(
            truncate(&format!(" · {}", set.value), w - used),
            t.dim,
        ));
    }
    Line::from(spans)
}

/// `source   ▶ writable · 12 conn · 40 w/s` — read-only is the state the cutover moves.
/// A stale reading or a failing probe is said first, before it can be cut off.
fn database<'a>(ctx: &Ctx<'a>, db: &DatabaseReading) -> Line<'a> {
    let t = ctx.theme;
    let stale = ctx.stale(db.observed_at, Input::ReadOnly(db.side).default_fresh_ms());
    let mut spans = vec![Span::styled(format!("{:<9}", db.side.as_str()), t.dim)];
    let (symbol, mode) = match db.read_only {
        Some(true) => (sym::STOPPED, "read-only"),
        Some(false) => (sym::RUNNING, "writable"),
        None => (sym::UNKNOWN, "mode unknown"),
    };
    if stale {
        spans.push(Span::styled(format!("{} {mode}", sym::UNKNOWN), t.stale));
        spans.push(Span::styled(
            format!(" {} old", age(ctx.now - db.observed_at)),
            t.stale,
        ));
    } else {
        let style = if db.read_only.is_some() {
            t.text
        } else {
            t.unknown
        };
        spans.push(Span::styled(format!("{symbol} {mode}"), style));
    }
    let kind = SourceKind::for_side(db.side);
    if let Some(err) = ctx.state.health.get(&kind).and_then(|h| h.current_error()) {
        spans.push(Span::styled(format!(" {} {err}", sym::BAD), t.bad));
    }
    if let Some(c) = db.connections {
        spans.push(Span::styled(format!(" · {c} conn"), t.dim));
    }
    if let Some(w) = db.writes_per_s {
        spans.push(Span::styled(format!(" · {} w/s", num(w)), t.dim));
    }
    if let Some(trx) = db.longest_trx_s.filter(|s| *s >= 1.0) {
        spans.push(Span::styled(format!(" · trx {}s", num(trx)), t.warn));
    }
    Line::from(spans)
}
