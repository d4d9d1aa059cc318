//! The report as Markdown (for people) and JSON (for tools). Rendering reads a finished
//! [`Report`] and nothing else.

use std::fmt::Write as _;

use super::{CHART_WIDTH, Decision, Downtime, GuardFigures, Report, ReportError, SeriesReport};

/// The report as pretty JSON, with a final newline.
pub fn render_json(r: &Report) -> Result<String, ReportError> {
    serde_json::to_string_pretty(r)
        .map(|s| s + "\n")
        .map_err(|e| ReportError::Json(e.to_string()))
}

/// ` ` no sample, `▁` zero (or the bottom), up to `█` the maximum.
pub fn sparkline(buckets: &[Option<f64>], max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    buckets
        .iter()
        .map(|b| match b {
            None => ' ',
            Some(v) if max <= 0.0 || *v <= 0.0 => BARS[0],
            Some(v) => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

fn dur(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!(
            "{}h{:02}m{:02}s",
            (s / 3600.0) as u64,
            ((s / 60.0) as u64) % 60,
            (s as u64) % 60
        ),
        Some(s) if s >= 60.0 => format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0),
        Some(s) => format!("{s:.1}s"),
        None => "—".into(),
    }
}

/// Markdown table cells cannot hold `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown.
pub fn render_md(r: &Report) -> String {
    let mut s = String::new();
    header(&mut s, r);
    steps(&mut s, r);
    downtime(&mut s, &r.downtime);
    guards(&mut s, &r.guards);
    decisions(&mut s, &r.decisions);
    series(&mut s, &r.series, r.session.duration_s);
    anomalies(&mut s, r);
    s
}

// Writing to a String cannot fail, so the `writeln!` results below are ignored.

fn header(s: &mut String, r: &Report) {
    let si = &r.session;
    let _ = writeln!(s, "# Cutover report: {}\n", si.plan);
    let _ = writeln!(s, "- **Outcome:** {}", si.outcome);
    let _ = writeln!(
        s,
        "- **Operator:** {} on {} ({} mode, cutover {})",
        si.operator, si.host, si.mode, si.program_version
    );
    let _ = writeln!(
        s,
        "- **Session:** {} → {} ({}){}",
        opt(&si.started_at),
        opt(&si.ended_at),
        dur(si.duration_s),
        si.end_reason
            .as_ref()
            .map(|r| format!(", ended: {r}"))
            .unwrap_or_default()
    );
    if let Some(from) = &si.resumed_from {
        let _ = writeln!(s, "- **Resumed from:** {from}");
    }
    for restart in &si.restarts {
        let _ = writeln!(s, "- **Restarted:** {restart}");
    }
    let i = &r.integrity;
    if !i.trusted() {
        let _ = writeln!(
            s,
            "- **WARNING:** this report is built from a transcript that is not trustworthy as it stands; read the verdict below"
        );
    }
    let chain = if i.chain_intact {
        format!(
            "intact ({} records, last hash `{}`)",
            i.records, i.last_hash
        )
    } else {
        format!("**BROKEN**: {}", opt(&i.stopped))
    };
    let _ = writeln!(s, "- **Transcript:** `{}`, hash chain {chain}", r.file);
    if let Some(t) = &i.torn_tail {
        let _ = writeln!(s, "- **Torn tail:** {t}");
    }
    let _ = writeln!(s, "- **Verify:** {}", i.verdict);
    let a = &i.authorship;
    let _ = writeln!(s, "- **Authorship:** {}: {}", a.status.as_str(), a.detail);
    if let Some(k) = &a.header_key {
        let _ = writeln!(
            s,
            "- **Signed by:** `{k}` ({}), {} signature(s) verify, through line {}",
            a.key_origin.as_deref().unwrap_or("?"),
            a.signatures,
            a.signed_through_line
        );
    }
    let plan = if i.plan_hash_matches {
        "matches the recorded plan"
    } else {
        "**DOES NOT MATCH** the recorded plan text: the plan was edited"
    };
    let _ = writeln!(s, "- **Plan hash:** `{}` ({plan})\n", si.plan_hash);
}

fn steps(s: &mut String, r: &Report) {
    let _ = writeln!(s, "## Steps\n");
    let _ = writeln!(
        s,
        "| # | step | status | confirmed by | start | end | duration | waited | result |"
    );
    let _ = writeln!(
        s,
        "|---|------|--------|--------------|-------|-----|----------|--------|--------|"
    );
    for st in &r.steps {
        let mut result = st.message.clone().unwrap_or_default();
        if let Some(u) = &st.undo {
            result = format!("{result}; {u}");
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            st.number,
            cell(&st.id),
            st.status,
            cell(opt(&st.confirmed_by)),
            opt(&st.confirmed_at),
            opt(&st.finished_at),
            dur(st.duration_s),
            dur(st.waited_s),
            cell(&result)
        );
    }
}

fn guards(s: &mut String, g: &GuardFigures) {
    if g.faults.is_empty() && g.fired.is_empty() && g.rollback_by.is_none() {
        return;
    }
    let _ = writeln!(s, "\n## Guards\n");
    for f in &g.faults {
        let _ = match (&f.detection_s, &f.detected_by) {
            (Some(d), Some(by)) => writeln!(
                s,
                "- **Detection of {}:** {} after it began, by {}",
                f.fault,
                dur(Some(*d)),
                cell(by)
            ),
            _ => writeln!(
                s,
                "- **Detection of {}:** not detected (no watched gate or abort condition went red or unknown after it began)",
                f.fault
            ),
        };
    }
    if let Some(by) = &g.rollback_by {
        let took = g
            .rollback_s
            .map(|r| format!("{} from the decision to the last undo", dur(Some(r))))
            .unwrap_or_else(|| "did not finish".into());
        let _ = writeln!(s, "- **Rollback:** by {}, {took}", cell(by));
    }
    if !g.fired.is_empty() {
        let _ = writeln!(s, "- **Guards fired:** {}", g.fired.join(", "));
    }
}

fn downtime(s: &mut String, d: &Downtime) {
    let _ = writeln!(s, "\n## Write downtime\n");
    match (&d.from, &d.window_s) {
        (Some(from), Some(w)) => {
            let to = if d.open {
                "the end of the transcript (still frozen)".to_string()
            } else {
                opt(&d.to).to_string()
            };
            let _ = writeln!(
                s,
                "- **Window:** {} from {from} ({} started) to {to}{}",
                dur(Some(*w)),
                opt(&d.freeze_step),
                d.ended_by
                    .as_ref()
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "- **Window:** writes were never frozen (no freeze action ran)"
            );
        }
    }
    if let Some(max) = d.max_downtime_s {
        let used = d.window_s.unwrap_or(0.0);
        let verdict = if used > max {
            "over budget"
        } else {
            "within budget"
        };
        let _ = writeln!(
            s,
            "- **Budget:** max_downtime {} — {verdict} ({:.0} % used){}{}",
            dur(Some(max)),
            used * 100.0 / max.max(f64::MIN_POSITIVE),
            d.budget_warned_at
                .as_ref()
                .map(|t| format!("; 80 % warning at {t}"))
                .unwrap_or_default(),
            d.budget_spent_at
                .as_ref()
                .map(|t| format!("; spent at {t}"))
                .unwrap_or_default(),
        );
    }
    if let Some(m) = &d.measured {
        let _ = writeln!(
            s,
            "- **Measured by the rehearsal world:** downtime {:.1}s, writes refused {}, writes lost {}, rows diverged {} (attempted {}, acknowledged {})",
            m.downtime_s,
            m.writes_refused,
            m.writes_lost,
            m.rows_diverged,
            m.writes_attempted,
            m.writes_acked
        );
    }
}

fn decisions(s: &mut String, decisions: &[Decision]) {
    let _ = writeln!(s, "\n## Decisions\n");
    if decisions.is_empty() {
        let _ = writeln!(s, "No decisions were recorded.");
    }
    for dec in decisions {
        let step = dec
            .step
            .as_ref()
            .map(|st| format!(" **{st}**"))
            .unwrap_or_default();
        let detail = dec
            .detail
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        // "ann's approval lapsed on freeze", "olga confirmed freeze".
        let who = if dec.kind.starts_with("approval ") {
            format!("{}'s", dec.by)
        } else {
            dec.by.clone()
        };
        let _ = writeln!(s, "- {} — {who} {}{step}{detail}", dec.at, dec.kind);
        for g in &dec.gates {
            let _ = writeln!(s, "  - `{}` {}: {}", g.gate, g.state.as_str(), g.reason);
        }
    }
}

fn series(s: &mut String, series: &[SeriesReport], duration_s: Option<f64>) {
    let _ = writeln!(s, "\n## Lag and drift over time\n");
    if series.is_empty() {
        let _ = writeln!(s, "No lag or drift readings were recorded.");
        return;
    }
    let column = duration_s.unwrap_or(0.0) / CHART_WIDTH as f64;
    let _ = writeln!(
        s,
        "One column per {} of the session; each shows the column's maximum.\n",
        dur(Some(column))
    );
    let _ = writeln!(s, "```");
    // Every chart starts in the same column, whatever its label.
    let w = series
        .iter()
        .map(|se| se.name.chars().count())
        .max()
        .unwrap_or(0);
    for se in series {
        let range = match (se.min, se.max, se.last) {
            (Some(a), Some(b), Some(l)) => {
                format!("min {a:.2} max {b:.2} last {l:.2} {}", se.unit)
            }
            _ => "no samples".into(),
        };
        let _ = writeln!(s, "{:<w$} │{}│ {range}", se.name, se.sparkline);
    }
    let _ = writeln!(s, "```");
}

fn anomalies(s: &mut String, r: &Report) {
    let _ = writeln!(s, "\n## Anomalies\n");
    if r.anomalies.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for a in &r.anomalies {
        let _ = writeln!(s, "- {} — **{}**: {}", a.at, a.kind, a.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_maximum() {
        assert_eq!(
            sparkline(&[None, Some(0.0), Some(4.0), Some(8.0)], 8.0),
            " ▁▅█"
        );
        assert_eq!(sparkline(&[Some(0.0), Some(0.0)], 0.0), "▁▁");
    }
}
