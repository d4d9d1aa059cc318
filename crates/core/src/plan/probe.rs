//! `[[probe]]`: an HTTP GET polled every `every`, one value read from its JSON answer at a
//! JSON pointer (RFC 6901), the gate input `probe.<name>` — a number, text or boolean with
//! the request's time. A probe that fails, times out, answers other than 2xx or lacks the
//! pointer is unknown, never green.

use serde::Deserialize;
use toml::Spanned;

use super::{Locator, limits};

/// `[[probe]]` entries in a plan.
pub const PROBES: usize = 32;
/// How often a probe may be polled.
pub const EVERY_MS: std::ops::RangeInclusive<i64> = 1_000..=60 * 60 * 1000;
pub const DEFAULT_EVERY_MS: i64 = 10_000;
/// A probe request's own deadline (at most its `every`).
pub const TIMEOUT_MS: std::ops::RangeInclusive<i64> = 100..=60_000;
pub const DEFAULT_TIMEOUT_MS: i64 = 5_000;

/// One probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub name: String,
    pub url: String,
    pub every_ms: i64,
    /// The JSON pointer of the value (`""` is the whole document).
    pub pointer: String,
    pub timeout_ms: i64,
}

impl Probe {
    /// How old its reading may be before a gate on it turns unknown, when the gate does not
    /// say: three polls (one late poll is not yet a failure), at least 10 s.
    pub fn fresh_ms(&self) -> i64 {
        self.every_ms.saturating_mul(3).max(10_000)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    name: Spanned<String>,
    url: Spanned<String>,
    every: Option<Spanned<String>>,
    json: Spanned<String>,
    timeout: Option<Spanned<String>>,
}

fn duration(
    loc: &mut Locator<'_>,
    raw: Option<&Spanned<String>>,
    what: &str,
    default: i64,
    range: &std::ops::RangeInclusive<i64>,
) -> i64 {
    let Some(d) = raw else {
        return default;
    };
    match super::gate_expr::parse_duration_ms(d.get_ref()) {
        Ok(ms) => {
            loc.check(d, limits::duration(what, ms, range));
            ms
        }
        Err(e) => {
            loc.at(
                d,
                format!("{what} \"{}\": {e}", d.get_ref().escape_debug()),
                Some("e.g. \"10s\""),
            );
            default
        }
    }
}

/// Validates every `[[probe]]`: a unique name usable as `probe.<name>`, an http(s) URL with
/// no credential, `every`, `timeout` within range (and the timeout within `every`), a JSON
/// pointer.
pub(super) fn probes(loc: &mut Locator<'_>, raw: &[Spanned<RawProbe>]) -> Vec<Probe> {
    if raw.len() > PROBES {
        loc.at(
            &raw[PROBES],
            format!(
                "the plan has {} [[probe]] entries (at most {PROBES})",
                raw.len()
            ),
            Some("probe fewer values"),
        );
    }
    let mut out: Vec<Probe> = Vec::new();
    for p in raw {
        let r = p.get_ref();
        let name = r.name.get_ref();
        let ok = !name.is_empty()
            && name.len() <= limits::IDENTIFIER_CHARS
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            loc.at(
                &r.name,
                format!(
                    "[[probe]] name \"{}\" is not a name a gate can use",
                    name.escape_debug()
                ),
                Some("use letters, digits, - and _ (the gate says probe.<name>), e.g. name = \"flags_write_enabled\""),
            );
        } else if out.iter().any(|o| &o.name == name) {
            loc.at(
                &r.name,
                format!("a second [[probe]] named \"{name}\""),
                Some("give each probe its own name"),
            );
        }
        loc.check(&r.url, limits::http_url("[[probe]] url", r.url.get_ref()));
        let every_ms = duration(
            loc,
            r.every.as_ref(),
            "[[probe]] every",
            DEFAULT_EVERY_MS,
            &EVERY_MS,
        );
        let timeout_ms = duration(
            loc,
            r.timeout.as_ref(),
            "[[probe]] timeout",
            DEFAULT_TIMEOUT_MS.min(every_ms),
            &TIMEOUT_MS,
        );
        if timeout_ms > every_ms
            && let Some(t) = &r.timeout
        {
            loc.at(
                t,
                format!(
                    "[[probe]] timeout {} is longer than its every {}",
                    limits::show_ms(timeout_ms),
                    limits::show_ms(every_ms)
                ),
                Some("a request must end before the next one starts: shorten timeout"),
            );
        }
        let pointer = r.json.get_ref();
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            loc.at(
                &r.json,
                format!(
                    "[[probe]] json \"{}\" is not a JSON pointer",
                    pointer.escape_debug()
                ),
                Some("a JSON pointer starts with /, e.g. json = \"/flags/write_enabled\" (\"\" is the whole answer)"),
            );
        }
        out.push(Probe {
            name: name.clone(),
            url: r.url.get_ref().clone(),
            every_ms,
            pointer: pointer.clone(),
            timeout_ms,
        });
    }
    out
}
