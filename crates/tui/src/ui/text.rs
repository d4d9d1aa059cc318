//! Small formatting helpers shared by the panes: clock times, ages, numbers, display-width
//! truncation and inline sparklines. All pure, all cheap: they run for every visible row.

use std::collections::VecDeque;

use ratatui::text::Span;

use cutover_core::event::Ts;

/// `HH:MM:SS` of a timestamp, in UTC (the transcript's clock, never the local one).
pub fn clock(ts: Ts) -> String {
    let secs = ts.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A duration as `HH:MM:SS` (hours grow past 99 rather than wrap).
pub fn hms(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A short age: `0.4s`, `12s`, `3m`, `2h`. Negative ages (clock skew) read as 0.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.0}h", s / 3600.0)
    }
}

/// A reading's value, compact: integers without decimals, large numbers with k/M.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    let a = v.abs();
    if a >= 10_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if a >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        trim_zeros(format!("{v:.1}"))
    } else {
        trim_zeros(format!("{v:.2}"))
    }
}

/// `6.80` → `6.8`, `0.10` → `0.1`: the digits that carry information.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A count for a table cell; `?` when unknown.
pub fn count(v: Option<u64>) -> String {
    match v {
        Some(n) => n.to_string(),
        None => "?".into(),
    }
}

/// Display width of a string, as the terminal will draw it.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Cuts `s` to at most `max` columns, ending with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = width(&s[i..i + c.len_utf8()]);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Cuts `s` from the left (keeping its end, where a path's file name is), with `…`.
pub fn truncate_left(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let mut b = [0u8; 4];
        let w = width(c.encode_utf8(&mut b));
        if used + w > max - 1 {
            break;
        }
        used += w;
        kept.push(c);
    }
    let mut out = String::from("…");
    out.extend(kept.iter().rev());
    out
}

/// Pads (or cuts) to exactly `w` columns, left-aligned.
pub fn pad(s: &str, w: usize) -> String {
    let t = truncate(s, w);
    let used = width(&t);
    let mut out = t;
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(used)));
    out
}

/// Pads (or cuts) to exactly `w` columns, right-aligned.
pub fn rpad(s: &str, w: usize) -> String {
    let t = truncate(s, w);
    let used = width(&t);
    let mut out: String = std::iter::repeat_n(' ', w.saturating_sub(used)).collect();
    out.push_str(&t);
    out
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The newest `w` points as block characters, scaled from 0 (or the minimum, if negative)
/// to the maximum, so a flat zero line reads as a flat floor rather than noise.
pub fn sparkline(points: &VecDeque<(Ts, f64)>, w: usize) -> String {
    let n = points.len().min(w);
    let mut out = String::with_capacity(w * 3);
    if n == 0 {
        return out;
    }
    let tail = points.range(points.len() - n..);
    let (mut lo, mut hi) = (0.0f64, f64::MIN);
    for &(_, v) in tail.clone() {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let span = hi - lo;
    for &(_, v) in tail {
        let idx = if !v.is_finite() || span <= f64::EPSILON {
            0
        } else {
            (((v - lo) / span) * 7.0).round().clamp(0.0, 7.0) as usize
        };
        out.push(BARS[idx]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_utc_and_wraps_at_midnight() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(1_767_225_600_000 + 3_723_000), "01:02:03");
    }

    #[test]
    fn truncation_respects_width_and_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate_left("/a/b/session.jsonl", 10), "…ion.jsonl");
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(rpad("ab", 4), "  ab");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn sparkline_scales_to_the_window() {
        let pts: VecDeque<(Ts, f64)> = [(0, 0.0), (1, 1.0), (2, 2.0)].into_iter().collect();
        assert_eq!(sparkline(&pts, 10), "▁▅█");
        assert_eq!(sparkline(&pts, 2), "▅█");
        let flat: VecDeque<(Ts, f64)> = [(0, 0.0), (1, 0.0)].into_iter().collect();
        assert_eq!(sparkline(&flat, 5), "▁▁");
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(6.8), "6.8");
        assert_eq!(num(0.1), "0.1");
        assert_eq!(num(250_000.0), "250k");
        assert_eq!(age(400), "0.4s");
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(600_000), "10m");
    }
}
