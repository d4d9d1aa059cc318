//! Replication, whatever the engine: status and stop reason, the lag figures with their
//! trend (apply and capture lag, backlog), what the engine counts behind, its positions,
//! full-load progress, and the health of the sources feeding it. Rows an engine does not
//! report are left out rather than shown empty. Lines are in order of urgency, so a short
//! pane keeps the ones that matter.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::{Ctx, Frame, framed, placeholder, put_lines, sym};
use crate::ui::Pane;
use crate::ui::text::{age, num, sparkline, truncate};
use cutover_core::event::{ReplicationReading, SourceKind};
use cutover_core::plan::Input;
use cutover_core::state::Series;

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let t = ctx.theme;
    let summary = match ctx.state.replication.status() {
        Some(task) => {
            let (s, style) = status_symbol(ctx, task);
            vec![Span::styled(format!("{s} {}", task.status_text), style)]
        }
        None => vec![Span::styled(
            format!("{} no reading", sym::UNKNOWN),
            t.unknown,
        )],
    };
    let inner = framed(ctx.block(Pane::Replication, summary, frame), area, buf);
    if inner.is_empty() {
        return;
    }
    let lines = build(ctx, inner.width as usize, frame);
    put_lines(&lines, inner, buf);
}

/// The symbol of a reading: by the engine's own word for the DMS-shaped engines (as it
/// always was), by the typed status for the others (MySQL says "IO Yes, SQL No").
fn status_symbol(ctx: &Ctx<'_>, r: &ReplicationReading) -> (&'static str, Style) {
    if r.engine.has_cdc_figures() {
        return task_symbol(ctx, &r.status_text);
    }
    task_symbol(ctx, r.status.as_str())
}

pub fn task_symbol(ctx: &Ctx<'_>, status: &str) -> (&'static str, Style) {
    let t = ctx.theme;
    match status.to_ascii_lowercase().as_str() {
        "running" => (sym::RUNNING, t.good),
        "stopped" => (sym::STOPPED, t.warn),
        "failed" | "error" => (sym::FAILED, t.bad),
        _ => (sym::RUNNING, t.running),
    }
}

fn build<'a>(ctx: &Ctx<'a>, w: usize, frame: Frame) -> Vec<Line<'a>> {
    let st = ctx.state;
    let t = ctx.theme;
    let mut lines: Vec<Line<'a>> = Vec::with_capacity(6);
    match st.replication.status() {
        Some(task) => {
            let (s, style) = status_symbol(ctx, task);
            let mut spans = vec![
                Span::styled(format!("{s} "), style),
                Span::styled(task.name.clone(), t.text),
                Span::styled(format!(" {}", task.status_text), style),
            ];
            if let Some(reason) = &task.stop_reason {
                spans.push(Span::styled(format!(" · stop: {reason}"), t.dim));
            }
            if let Some(err) = &task.last_error {
                spans.push(Span::styled(format!(" · error: {err}"), t.bad));
            }
            if ctx.stale(task.observed_at, Input::TaskStatus.default_fresh_ms()) {
                spans.push(Span::styled(
                    format!(" {} {} old", sym::UNKNOWN, age(ctx.now - task.observed_at)),
                    t.stale,
                ));
            }
            lines.push(Line::from(spans));
        }
        None => lines.push(placeholder(ctx, "no replication task reading yet")),
    }
    for kind in [
        SourceKind::Replication,
        SourceKind::Metrics,
        SourceKind::Heartbeat,
    ] {
        if let Some(err) = st.health.get(&kind).and_then(|h| h.current_error()) {
            let newest = st
                .health
                .get(&kind)
                .and_then(|h| h.last_ok)
                .map(|ok| format!(" · newest reading {} old", age(ctx.now - ok)))
                .unwrap_or_default();
            lines.push(Line::from(Span::styled(
                truncate(&format!("{} {}: {err}{newest}", sym::BAD, kind.as_str()), w),
                t.bad,
            )));
        }
    }

    // An engine with its own facts shows them instead of DMS's rows.
    if let Some(task) = st.replication.status()
        && let Some(pg) = &task.logical
    {
        lines.extend(super::replication_logical::lines(ctx, task, pg, w));
        let mut hb = vec![Span::styled("heartbeat ", t.dim)];
        hb.extend(heartbeat(ctx, 0));
        lines.push(Line::from(hb));
        return lines;
    }

    let native = st
        .replication
        .status()
        .is_some_and(|r| !r.engine.has_cdc_figures());
    if native {
        lines.extend(native_rows(ctx, w, frame));
        return lines;
    }
    // CDC latency with its trend: both sides on one line in a compact pane; in a full
    // one, a labelled line per figure with longer trends.
    let src = Some(&st.replication.capture_lag);
    let tgt = Some(&st.replication.lag);
    let incoming = Some(&st.replication.backlog);
    let full = frame == Frame::Full;
    let spark_w = if full {
        w.saturating_sub(24).clamp(4, 60)
    } else {
        (w.saturating_sub(32) / 2).clamp(4, 24)
    };
    if full {
        for (label, s, secs) in [
            ("latency source", src, true),
            ("latency target", tgt, true),
            ("incoming changes", incoming, false),
        ] {
            let mut line = vec![Span::styled(format!("{label:<17}"), t.dim)];
            line.extend(figure(ctx, s, secs, spark_w, 6));
            lines.push(Line::from(line));
        }
        let mut hb = vec![Span::styled(format!("{:<17}", "heartbeat lag"), t.dim)];
        hb.extend(heartbeat(ctx, 6));
        lines.push(Line::from(hb));
    } else {
        let mut lag = vec![Span::styled("lag src ", t.dim)];
        lag.extend(figure(ctx, src, true, spark_w, 0));
        lag.push(Span::styled("  tgt ", t.dim));
        lag.extend(figure(ctx, tgt, true, spark_w, 0));
        lines.push(Line::from(lag));
        let mut extra = vec![Span::styled("incoming ", t.dim)];
        extra.extend(figure(ctx, incoming, false, spark_w, 0));
        extra.push(Span::styled("  heartbeat ", t.dim));
        extra.extend(heartbeat(ctx, 0));
        lines.push(Line::from(extra));
    }

    if let Some(task) = st.replication.status() {
        if let Some(line) = behind(ctx, task, w) {
            lines.push(line);
        }
        let mut load = vec![Span::styled("full load ", t.dim)];
        load.push(Span::styled(
            task.full_load_pct
                .map(|p| format!("{}%", num(p)))
                .unwrap_or_else(|| "?".into()),
            t.text,
        ));
        let tables = [
            ("loaded", task.tables_loaded, t.text),
            ("loading", task.tables_loading, t.text),
            ("queued", task.tables_queued, t.text),
            ("errored", task.tables_errored, t.bad),
        ];
        for (label, n, style) in tables {
            match n {
                // Zero loading/queued is the normal state at cutover time: say nothing.
                Some(0) if label == "loading" || label == "queued" => {}
                Some(0) => load.push(Span::styled(format!(" · 0 {label}"), t.dim)),
                Some(n) => load.push(Span::styled(format!(" · {n} {label}"), style)),
                None => {}
            }
        }
        lines.push(Line::from(load));
    }
    lines
}

/// A native engine's own facts (MySQL: IO/SQL threads, relay log space), its lag, the
/// exact gap and both positions; no DMS row pretends to exist.
fn native_rows<'a>(ctx: &Ctx<'a>, w: usize, frame: Frame) -> Vec<Line<'a>> {
    let st = ctx.state;
    let t = ctx.theme;
    let mut lines = Vec::new();
    let Some(r) = st.replication.status() else {
        return lines;
    };
    let label = |text: &str| Span::styled(format!("{text:<13}"), t.dim);
    let rest = w.saturating_sub(13);
    // In order of urgency: the gap, both positions, how long the source has been still,
    // the lag; the threads are in the first line already (the engine's status words), the
    // rest of the engine's facts when the pane is zoomed.
    let word = r.engine.position_word().trim();
    let gap = match (r.behind_transactions, r.behind_bytes) {
        (Some(0), _) => (format!("caught up ({word} sets equal)"), t.good),
        (Some(n), _) => (format!("{n} transactions behind"), t.warn),
        (None, Some(b)) => (
            format!("{b} bytes behind (GTID off: from binlog positions)"),
            t.text,
        ),
        (None, None) => (
            "unknown (no GTID, positions in different files)".to_string(),
            t.unknown,
        ),
    };
    lines.push(Line::from(vec![
        label("gap"),
        Span::styled(truncate(&gap.0, rest), gap.1),
    ]));
    for (side, pos) in [
        ("source", &r.source_position),
        ("replica", &r.target_position),
    ] {
        if let Some(p) = pos {
            lines.push(Line::from(vec![
                label(&format!("{side} {word}")),
                Span::styled(truncate(p, rest), t.text),
            ]));
        }
    }
    if let Some(s) = st.replication.gtid_stable_s() {
        lines.push(Line::from(vec![
            label("source still"),
            Span::styled(format!("{}s", num(s)), t.text),
        ]));
    }
    let spark_w = rest.saturating_sub(8).clamp(4, 60);
    let mut lag = vec![label("lag")];
    lag.extend(figure(ctx, Some(&st.replication.lag), true, spark_w, 0));
    lines.push(Line::from(lag));
    let mut hb = vec![label("heartbeat")];
    hb.extend(heartbeat(ctx, 0));
    lines.push(Line::from(hb));
    if frame == Frame::Full {
        for f in &r.facts {
            lines.push(Line::from(vec![
                label(&f.label),
                Span::styled(truncate(&f.value, rest), fact_style(ctx, f)),
            ]));
        }
    }
    lines
}

/// A thread that says "No" is the warning colour; a named value otherwise is text.
fn fact_style(ctx: &Ctx<'_>, f: &cutover_core::event::EngineFact) -> Style {
    match f.value.as_str() {
        "Yes" => ctx.theme.good,
        "No" => ctx.theme.warn,
        "Connecting" => ctx.theme.running,
        _ => ctx.theme.text,
    }
}

/// What the engine counts behind, and its positions: only what it reports.
fn behind<'a>(
    ctx: &Ctx<'a>,
    r: &cutover_core::event::ReplicationReading,
    w: usize,
) -> Option<Line<'a>> {
    let t = ctx.theme;
    let mut parts = Vec::new();
    if let Some(n) = r.behind_transactions {
        parts.push(format!("{n} transactions behind"));
    }
    if let Some(n) = r.behind_bytes {
        parts.push(format!("{n} bytes behind"));
    }
    match (&r.source_position, &r.target_position) {
        (Some(s), Some(d)) => parts.push(format!("source {s} · target {d}")),
        (Some(s), None) => parts.push(format!("source {s}")),
        (None, Some(d)) => parts.push(format!("target {d}")),
        (None, None) => {}
    }
    if parts.is_empty() {
        return None;
    }
    Some(Line::from(Span::styled(
        truncate(&parts.join(" · "), w),
        t.text,
    )))
}

/// `0.3s ▁▂▁`: the newest value (right-aligned in `value_w` columns), marked stale when its
/// newest datapoint is too old, then the trend.
fn figure<'a>(
    ctx: &Ctx<'a>,
    s: Option<&Series>,
    secs: bool,
    spark_w: usize,
    value_w: usize,
) -> Vec<Span<'a>> {
    let t = ctx.theme;
    match s.and_then(|s| s.points.back().map(|p| (s, *p))) {
        Some((series, (at, v))) => {
            let stale = ctx.stale(at, Input::CdcLatencyTarget.default_fresh_ms());
            let unit = if secs { "s" } else { "" };
            let mark = if stale { sym::UNKNOWN } else { "" };
            let value = format!("{:>value_w$}", format!("{}{unit}{mark}", num(v)));
            vec![
                Span::styled(value, if stale { t.stale } else { t.text }),
                Span::styled(format!(" {}", sparkline(&series.points, spark_w)), t.spark),
            ]
        }
        None => vec![Span::styled(sym::UNKNOWN, t.unknown)],
    }
}

/// The end-to-end lag from the heartbeat row, marked stale when old.
fn heartbeat<'a>(ctx: &Ctx<'a>, value_w: usize) -> Vec<Span<'a>> {
    let t = ctx.theme;
    match ctx.state.heartbeat {
        Some((at, lag_s)) => {
            let stale = ctx.stale(at, Input::HeartbeatLag.default_fresh_ms());
            let value = format!("{:>value_w$}", format!("{}s", num(lag_s)));
            let mut v = vec![Span::styled(value, if stale { t.stale } else { t.text })];
            if stale {
                v.push(Span::styled(
                    format!(" {} {} old", sym::UNKNOWN, age(ctx.now - at)),
                    t.stale,
                ));
            }
            v
        }
        None => vec![Span::styled(sym::UNKNOWN, t.unknown)],
    }
}
