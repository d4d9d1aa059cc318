//! The report as one self-contained HTML file for a postmortem: no script, no stylesheet,
//! font or image from anywhere else; charts are inline SVG drawn with plotters. It reads
//! light or dark (`prefers-color-scheme`) and prints.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::{Decision, Report, SeriesReport, StepReport};

/// Width and height of a series chart, in CSS pixels.
const CHART: (u32, u32) = (900, 180);
/// The step timeline's width, its row height and the left column for step names.
const GANTT_W: f64 = 900.0;
const ROW: f64 = 22.0;
const LABEL_W: f64 = 190.0;

const STYLE: &str = "
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --dim: #5b6570; --ok: #1a7f37;
  --bad: #cf222e; --warn: #9a6700; --wait: #c8d1da; --grid: #d0d7de; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --dim: #9198a1;
  --ok: #3fb950; --bad: #f85149; --warn: #d29922; --wait: #30363d; --grid: #30363d; --accent: #58a6ff; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2rem auto; max-width: 960px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid var(--grid); }
.outcome { font-size: 1.2rem; font-weight: 600; } .ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.dim { color: var(--dim); } table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 2px 8px 2px 0; vertical-align: top; }
th { color: var(--dim); font-weight: 500; } code { font-size: .92em; } svg { display: block; max-width: 100%; height: auto; }
svg text { fill: currentColor; } .chart { margin: .6rem 0 1.2rem; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } .chart, svg { break-inside: avoid; } }
";

/// The report as one HTML document.
pub fn render_html(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let title = format!("cutover report: {}", r.session.plan);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    summary(&mut s, r);
    timeline(&mut s, r);
    charts(&mut s, r);
    decisions(&mut s, &r.decisions);
    anomalies(&mut s, r);
    integrity(&mut s, r);
    s.push_str("</body>\n</html>\n");
    s
}

/// Escapes text for HTML content and attribute values.
fn esc(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ms(iso: &Option<String>) -> Option<i64> {
    iso.as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.timestamp_millis())
}

fn secs(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "—".into())
}

fn summary(s: &mut String, r: &Report) {
    let outcome = &r.session.outcome;
    let class = if outcome == "completed" {
        "ok"
    } else if outcome.starts_with("completed") || outcome.contains("rolled back") {
        "warn"
    } else {
        "bad"
    };
    let _ = write!(
        s,
        "<h1>{}</h1>\n<p class=\"outcome {class}\">{}</p>\n",
        esc(&r.session.plan),
        esc(outcome)
    );
    let d = &r.downtime;
    let window = match (d.window_s, d.open) {
        (_, true) => "writes still frozen when the transcript ends".to_string(),
        (Some(w), false) => format!(
            "write downtime {} ({} → {}, ended by {})",
            secs(Some(w)),
            d.from.as_deref().unwrap_or("?"),
            d.to.as_deref().unwrap_or("?"),
            d.ended_by.as_deref().unwrap_or("?")
        ),
        (None, false) => "no write downtime recorded".to_string(),
    };
    let _ = write!(
        s,
        "<p><strong>{}</strong></p>\n<table>\
         <tr><th>mode</th><td>{}</td><th>operator</th><td>{}</td></tr>\
         <tr><th>started</th><td>{}</td><th>ended</th><td>{}</td></tr>\
         <tr><th>duration</th><td>{}</td><th>host</th><td>{}</td></tr></table>\n",
        esc(&window),
        esc(&r.session.mode),
        esc(&r.session.operator),
        esc(r.session.started_at.as_deref().unwrap_or("—")),
        esc(r.session.ended_at.as_deref().unwrap_or("—")),
        secs(r.session.duration_s),
        esc(&r.session.host),
    );
    let guards = r.guards.line();
    if !guards.is_empty() {
        let _ = writeln!(s, "<p class=\"guards\">guards: {}</p>", esc(&guards));
    }
}

/// The session's time span, from its start (or first step) to its end (or last step).
fn span(r: &Report) -> Option<(i64, i64)> {
    let mut lo = ms(&r.session.started_at);
    let mut hi = ms(&r.session.ended_at);
    for st in &r.steps {
        for t in [
            ms(&st.confirmed_at),
            ms(&st.started_at),
            ms(&st.finished_at),
        ]
        .into_iter()
        .flatten()
        {
            lo = Some(lo.map_or(t, |l| l.min(t)));
            hi = Some(hi.map_or(t, |h| h.max(t)));
        }
    }
    match (lo, hi) {
        (Some(a), Some(b)) if b > a => Some((a, b)),
        (Some(a), _) => Some((a, a + 1000)),
        _ => None,
    }
}

/// A Gantt-style bar per step: the wait (from the previous step's end to this step's
/// confirmation) and the action (start to end), coloured by how it ended; the rollback's
/// decision is a red line.
fn timeline(s: &mut String, r: &Report) {
    s.push_str("<h2>Steps</h2>\n");
    let Some((t0, t1)) = span(r) else {
        s.push_str("<p class=\"dim\">no step ran</p>\n");
        return;
    };
    let x = |t: i64| LABEL_W + (t - t0) as f64 / (t1 - t0) as f64 * (GANTT_W - LABEL_W - 10.0);
    let h = ROW * (r.steps.len() as f64 + 1.0) + 10.0;
    let _ = writeln!(
        s,
        "<svg class=\"gantt\" viewBox=\"0 0 {GANTT_W} {h}\" width=\"{GANTT_W}\" height=\"{h}\" role=\"img\" aria-label=\"step timeline\">"
    );
    let mut prev_end = Some(t0);
    for (i, st) in r.steps.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}. {}</text>",
            y + 14.0,
            st.number,
            esc(&clip(&st.id, 24))
        );
        if let (Some(a), Some(b)) = (prev_end, ms(&st.confirmed_at))
            && b > a
        {
            let _ = writeln!(
                s,
                "<rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"var(--wait)\"><title>{} waited {}</title></rect>",
                x(a),
                y + 5.0,
                (x(b) - x(a)).max(1.0),
                ROW - 10.0,
                esc(&st.id),
                secs(st.waited_s)
            );
        }
        if let Some(a) = ms(&st.started_at) {
            let b = ms(&st.finished_at).unwrap_or(t1);
            let colour = status_colour(st);
            let _ = writeln!(
                s,
                "<rect class=\"action\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: {} ({})</title></rect>",
                x(a),
                y + 2.0,
                (x(b) - x(a)).max(2.0),
                ROW - 4.0,
                esc(&st.id),
                esc(&st.status),
                secs(st.duration_s)
            );
        }
        prev_end = ms(&st.finished_at).or(prev_end);
    }
    for d in r.decisions.iter().filter(|d| d.kind == "rollback") {
        if let Some(t) = ms(&Some(d.at.clone())) {
            let _ = writeln!(
                s,
                "<line class=\"rollback\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{1:.1}\" stroke=\"var(--bad)\" stroke-width=\"2\"><title>rollback by {2}</title></line>",
                x(t),
                h - ROW,
                esc(&d.by)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"{LABEL_W}\" y=\"{:.1}\" font-size=\"11\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n</svg>\n",
        h - 4.0,
        esc(r.session.started_at.as_deref().unwrap_or("")),
        GANTT_W - 10.0,
        h - 4.0,
        secs(Some((t1 - t0) as f64 / 1000.0))
    );
    s.push_str("<table><tr><th>#</th><th>step</th><th>status</th><th>confirmed by</th><th>waited</th><th>took</th><th>action</th></tr>\n");
    for st in &r.steps {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}<br><span class=\"dim\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            st.number,
            esc(&st.id),
            esc(&st.title),
            esc(&st.status),
            esc(st.confirmed_by.as_deref().unwrap_or("—")),
            secs(st.waited_s),
            secs(st.duration_s),
            esc(&st.action)
        );
    }
    s.push_str("</table>\n");
}

fn status_colour(st: &StepReport) -> &'static str {
    match st.status.as_str() {
        "done" => "var(--ok)",
        "failed" | "undo failed" => "var(--bad)",
        "undone" => "var(--dim)",
        _ => "var(--accent)",
    }
}

fn clip(t: &str, n: usize) -> String {
    if t.chars().count() <= n {
        t.to_string()
    } else {
        let mut c: String = t.chars().take(n - 1).collect();
        c.push('…');
        c
    }
}

/// One chart per series, with the steps' starts drawn as vertical markers.
fn charts(s: &mut String, r: &Report) {
    s.push_str("<h2>Over the session</h2>\n");
    let drawn: Vec<&SeriesReport> = r.series.iter().filter(|x| x.samples > 0).collect();
    if drawn.is_empty() {
        s.push_str("<p class=\"dim\">no readings were recorded</p>\n");
        return;
    }
    let markers: Vec<(i64, String)> = r
        .steps
        .iter()
        .filter_map(|st| ms(&st.started_at).map(|t| (t, st.id.clone())))
        .collect();
    for series in drawn {
        match chart_svg(series, &markers, span(r)) {
            Ok(svg) => {
                let _ = write!(
                    s,
                    "<figure class=\"chart\" data-series=\"{}\">\n{svg}\n<figcaption>{} <span class=\"dim\">({}; min {}, max {}, last {})</span></figcaption>\n</figure>\n",
                    esc(&series.name),
                    esc(&series.name),
                    esc(if series.unit.is_empty() {
                        "no unit"
                    } else {
                        &series.unit
                    }),
                    num(series.min),
                    num(series.max),
                    num(series.last)
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "<p class=\"bad\">the chart of {} could not be drawn: {}</p>",
                    esc(&series.name),
                    esc(&e)
                );
            }
        }
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "—".into(),
    }
}

/// The series' buckets as a line over time, step starts as dashed markers.
fn chart_svg(
    series: &SeriesReport,
    markers: &[(i64, String)],
    span: Option<(i64, i64)>,
) -> Result<String, String> {
    let points: Vec<(i64, f64)> = series
        .buckets
        .iter()
        .filter_map(|b| {
            let t = ms(&Some(b.start.clone()))?;
            b.max.map(|v| (t, v))
        })
        .collect();
    let (t0, t1) = match (span, points.first(), points.last()) {
        (Some((a, b)), _, _) => (a, b),
        (None, Some(a), Some(b)) => (a.0, b.0.max(a.0 + 1000)),
        _ => return Err("no points".into()),
    };
    let top = points
        .iter()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(series.max.unwrap_or(0.0));
    let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..((t1 - t0) as f64 / 1000.0), 0f64..top)
            .map_err(|e| e.to_string())?;
        let grid = RGBColor(0x8c, 0x95, 0x9f);
        chart
            .configure_mesh()
            .light_line_style(grid.mix(0.15))
            .bold_line_style(grid.mix(0.3))
            .axis_style(grid)
            .label_style(("sans-serif", 11).into_font().color(&BLACK))
            .x_desc("seconds into the session")
            .x_labels(8)
            .y_labels(4)
            .draw()
            .map_err(|e| e.to_string())?;
        for (t, _) in markers.iter().filter(|(t, _)| *t >= t0 && *t <= t1) {
            let x = (*t - t0) as f64 / 1000.0;
            chart
                .draw_series(LineSeries::new(
                    [(x, 0.0), (x, top)],
                    ShapeStyle::from(&RGBColor(0x9a, 0x67, 0x00).mix(0.7)).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(t, v)| ((*t - t0) as f64 / 1000.0, *v)),
                ShapeStyle::from(&RGBColor(0x09, 0x69, 0xda)).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(series.name.clone());
        root.present().map_err(|e| e.to_string())?;
    }
    // Inline SVG needs no namespace (and so names no URL); text takes the page's colour.
    let svg = svg
        .replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("fill=\"#000000\"", "fill=\"currentColor\"");
    // The step markers, as classes a reader (and a test) can find.
    let marked = markers
        .iter()
        .filter(|(t, _)| *t >= t0 && *t <= t1)
        .map(|(_, id)| format!("<desc class=\"step-marker\">{}</desc>", esc(id)))
        .collect::<String>();
    Ok(svg.replacen("<svg ", "<svg class=\"series\" ", 1).replacen(
        "</svg>",
        &format!("{marked}</svg>"),
        1,
    ))
}

fn decisions(s: &mut String, list: &[Decision]) {
    s.push_str("<h2>Decisions</h2>\n");
    if list.is_empty() {
        s.push_str("<p class=\"dim\">none recorded</p>\n");
        return;
    }
    s.push_str("<table><tr><th>when</th><th>who</th><th>what</th><th>gates</th></tr>\n");
    for d in list {
        let what = match (&d.step, &d.detail) {
            (Some(step), Some(detail)) => format!(
                "{} <strong>{}</strong>: {}",
                esc(&d.kind),
                esc(step),
                esc(detail)
            ),
            (Some(step), None) => format!("{} <strong>{}</strong>", esc(&d.kind), esc(step)),
            (None, Some(detail)) => format!("{}: {}", esc(&d.kind), esc(detail)),
            (None, None) => esc(&d.kind),
        };
        let gates = d
            .gates
            .iter()
            .map(|g| {
                let class = match g.state.as_str() {
                    "green" => "ok",
                    "red" => "bad",
                    _ => "warn",
                };
                format!(
                    "<span class=\"{class}\">{}</span> <code>{}</code> {}",
                    esc(g.state.as_str()),
                    esc(&g.gate),
                    esc(&g.reason)
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{what}</td><td>{gates}</td></tr>",
            esc(&d.at),
            esc(&d.by)
        );
    }
    s.push_str("</table>\n");
}

fn anomalies(s: &mut String, r: &Report) {
    s.push_str("<h2>Anomalies</h2>\n");
    if r.anomalies.is_empty() {
        s.push_str("<p class=\"dim\">none</p>\n");
        return;
    }
    s.push_str("<ul>\n");
    for a in &r.anomalies {
        let _ = writeln!(
            s,
            "<li><span class=\"dim\">{}</span> <strong>{}</strong>: {}</li>",
            esc(&a.at),
            esc(&a.kind),
            esc(&a.text)
        );
    }
    s.push_str("</ul>\n");
}

fn integrity(s: &mut String, r: &Report) {
    let i = &r.integrity;
    let class = if i.trusted() { "ok" } else { "bad" };
    let _ = write!(
        s,
        "<h2>Evidence</h2>\n<p class=\"{class}\">{}</p>\n<p>authorship: {}: {}</p>\n\
         <p class=\"dim\">{} record(s); last hash <code>{}</code>; plan sha256 <code>{}</code>; file {}</p>\n",
        esc(&i.verdict),
        esc(i.authorship.status.as_str()),
        esc(&i.authorship.detail),
        i.records,
        esc(&i.last_hash),
        esc(&r.session.plan_hash),
        esc(&r.file)
    );
}
