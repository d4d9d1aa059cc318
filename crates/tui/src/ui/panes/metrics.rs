//! One row per metric: newest value with its unit, trend, and the age of the newest
//! datapoint — CloudWatch is minute-grained, so a quiet series must look quiet, not fine.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Span;

use super::{Col, Ctx, Frame, fit_columns, framed, placeholder, put_line, sym, table_row};
use crate::ui::Pane;
use crate::ui::text::{age, num, sparkline};
use cutover_core::plan::Input;

pub fn render(ctx: &Ctx<'_>, area: Rect, frame: Frame, buf: &mut Buffer) {
    let t = ctx.theme;
    let metrics = &ctx.state.metrics;
    // Freshness as the gates judge it: a metric's default bound.
    let fresh = Input::Metric(String::new()).default_fresh_ms();
    let stale = metrics
        .values()
        .filter(|s| s.points.back().is_none_or(|p| ctx.stale(p.0, fresh)))
        .count();
    let mut summary = vec![if stale > 0 {
        Span::styled(format!("{} {stale} stale", sym::UNKNOWN), t.unknown)
    } else {
        Span::styled(format!("{} {} fresh", sym::OK, metrics.len()), t.good)
    }];
    let (offset, _) = ctx.scroll_window(Pane::Metrics, frame, area, metrics.len(), 0, &mut summary);
    let inner = framed(ctx.block(Pane::Metrics, summary, frame), area, buf);
    if inner.is_empty() {
        return;
    }
    if metrics.is_empty() {
        put_line(
            &placeholder(ctx, "the plan charts no metrics"),
            inner,
            0,
            buf,
        );
        return;
    }
    let name_w = metrics
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 24);
    let cols = [
        Col {
            header: "",
            width: 1,
            right: false,
            prio: 0,
        },
        Col {
            header: "metric",
            width: name_w,
            right: false,
            prio: 0,
        },
        Col {
            header: "value",
            width: 12,
            right: true,
            prio: 0,
        },
        Col {
            header: "trend",
            width: 4,
            right: true,
            prio: 1,
        },
        Col {
            header: "age",
            width: 6,
            right: true,
            prio: 0,
        },
    ];
    let fit = fit_columns(&cols, inner.width as usize, 3, 60);
    let spark_w = fit.iter().find(|f| f.0 == 3).map(|f| f.1).unwrap_or(0);
    // The plan's own metrics first: the CDC series are also in the replication pane, so
    // on a short pane they are the ones to scroll away.
    let own = |name: &str| !cutover_core::plan::DEFAULT_METRICS.contains(&name);
    let ordered = metrics
        .iter()
        .filter(|(n, _)| own(n))
        .chain(metrics.iter().filter(|(n, _)| !own(n)));
    for (row, (name, series)) in ordered.skip(offset).take(inner.height as usize).enumerate() {
        let newest = series.points.back().copied();
        let is_stale = newest.is_none_or(|p| ctx.stale(p.0, fresh));
        let line = table_row(&cols, &fit, &mut |i| match (i, newest) {
            (0, None) => (sym::UNKNOWN.into(), t.unknown),
            (0, Some(_)) if is_stale => (sym::UNKNOWN.into(), t.stale),
            (0, Some(_)) => (sym::OK.into(), t.good),
            (1, _) => (name.clone(), if is_stale { t.stale } else { t.text }),
            (2, None) => ("no datapoints".into(), t.unknown),
            (2, Some((_, v))) => {
                let unit = series
                    .unit
                    .as_deref()
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default();
                (
                    format!("{}{unit}", num(v)),
                    if is_stale { t.stale } else { t.text },
                )
            }
            (3, _) => (sparkline(&series.points, spark_w), t.spark),
            (_, None) => (String::new(), t.dim),
            (_, Some((at, _))) => {
                let a = age(ctx.now - at);
                if is_stale {
                    (format!("{a}{}", sym::UNKNOWN), t.stale)
                } else {
                    (a, t.dim)
                }
            }
        });
        put_line(&line, inner, row as u16, buf);
    }
}
