//! The range of every knob a plan sets, and the checks of its names, phrases and URLs.
//!
//! The rule is "what validates, runs": a plan that passes validation must not crash, hang or
//! silently misbehave in the window because a number was absurd (`clients = 4294967295`),
//! not finite (`write_rate = inf`), a name was not a name (`tables = ["a;b"]`) or a URL could
//! not work (port 0, `mysql://` on a PostgreSQL endpoint). Each bound here is stated once; the
//! README's plan reference repeats them.

use std::ops::RangeInclusive;

use super::Engine;
use crate::redact;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// `[rehearsal] tables`: how many.
pub const TABLES: RangeInclusive<usize> = 1..=16;
/// `[rehearsal] rows_per_table`: the world holds them in memory, twice.
pub const ROWS_PER_TABLE: RangeInclusive<u64> = 0..=100_000;
/// `[rehearsal] write_rate`, writes per second: finite; one write per 100 s at the least.
pub const WRITE_RATE: RangeInclusive<f64> = 0.01..=1_000.0;
/// `[rehearsal] clients`: each is a cached resolver and a writer.
pub const CLIENTS: RangeInclusive<u32> = 1..=1_000;
/// `[rehearsal] lag`.
pub const LAG_MS: RangeInclusive<i64> = 1..=10 * MINUTE;
/// `[rehearsal] dns_propagation`.
pub const DNS_PROPAGATION_MS: RangeInclusive<i64> = 1..=10 * MINUTE;
/// `[rehearsal] poll`: faster would spin, slower would leave every gate stale.
pub const POLL_MS: RangeInclusive<i64> = 100..=MINUTE;
/// `[dns] ttl`, seconds: RFC 2181's maximum, 2^31 - 1.
pub const TTL_S: RangeInclusive<u64> = 0..=2_147_483_647;
/// A step's `timeout`.
pub const TIMEOUT_MS: RangeInclusive<i64> = 1..=24 * HOUR;
/// A gate's `for` window (0: at once).
pub const SUSTAIN_MS: RangeInclusive<i64> = 0..=24 * HOUR;
/// A gate's `fresh` bound: a reading must be younger than this, so 0 would never pass.
pub const FRESH_MS: RangeInclusive<i64> = 1..=24 * HOUR;
/// A step's `approvals`: peers attached to one session.
pub const APPROVALS: RangeInclusive<u32> = 0..=16;
/// A confirmation phrase, in characters: the operator types it.
pub const CONFIRM_CHARS: RangeInclusive<usize> = 1..=100;
/// Gates per step.
pub const GATES: RangeInclusive<usize> = 0..=32;
/// Steps per plan.
pub const STEPS: RangeInclusive<usize> = 1..=200;
/// `max_downtime`: the write-downtime budget.
pub const MAX_DOWNTIME_MS: RangeInclusive<i64> = SECOND..=24 * HOUR;
/// `window`: how long after the session's start forward steps may start.
pub const WINDOW_MS: RangeInclusive<i64> = MINUTE..=7 * 24 * HOUR;
/// `[[abort]]` conditions in a plan.
pub const ABORTS: RangeInclusive<usize> = 0..=32;
/// `[[metrics]]` entries (one GetMetricData call a poll holds at most 500 queries).
pub const METRICS: RangeInclusive<usize> = 0..=100;
/// Dimensions per metric (CloudWatch's limit).
pub const DIMENSIONS: RangeInclusive<usize> = 0..=30;
/// A SQL identifier (a rehearsal table), in bytes: MySQL's limit.
pub const IDENTIFIER_CHARS: usize = 64;
/// One-line names (plan name, labels, step titles, metric names).
pub const NAME_CHARS: usize = 200;
/// Multi-line texts (descriptions, manual instructions, statements, commands).
pub const TEXT_CHARS: usize = 16_000;

/// A problem with a value: the reason, and the fix.
pub struct Problem {
    pub message: String,
    pub hint: String,
}

fn problem(message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Milliseconds as the plan would write them: `500ms`, `30s`, `10m`, `24h`.
pub fn show_ms(ms: i64) -> String {
    if ms % HOUR == 0 && ms >= HOUR {
        format!("{}h", ms / HOUR)
    } else if ms % MINUTE == 0 && ms >= MINUTE {
        format!("{}m", ms / MINUTE)
    } else if ms % SECOND == 0 && ms >= SECOND {
        format!("{}s", ms / SECOND)
    } else {
        format!("{ms}ms")
    }
}

/// An integer knob within `range`.
pub fn int<T>(what: &str, value: T, range: &RangeInclusive<T>) -> Result<(), Problem>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if range.contains(&value) {
        return Ok(());
    }
    Err(problem(
        format!(
            "{what} = {value} is out of range ({}..={})",
            range.start(),
            range.end()
        ),
        format!("use a value from {} to {}", range.start(), range.end()),
    ))
}

/// A float knob: finite and within `range`.
pub fn float(what: &str, value: f64, range: &RangeInclusive<f64>) -> Result<(), Problem> {
    if value.is_finite() && range.contains(&value) {
        return Ok(());
    }
    let why = if value.is_nan() {
        "is not a number".to_string()
    } else if value.is_infinite() {
        "is infinite".to_string()
    } else {
        format!("is out of range ({}..={})", range.start(), range.end())
    };
    Err(problem(
        format!("{what} = {value} {why}"),
        format!(
            "use a finite number from {} to {}",
            range.start(),
            range.end()
        ),
    ))
}

/// A duration knob within `range`.
pub fn duration(what: &str, ms: i64, range: &RangeInclusive<i64>) -> Result<(), Problem> {
    if range.contains(&ms) {
        return Ok(());
    }
    let (lo, hi) = (show_ms(*range.start()), show_ms(*range.end()));
    let why = if ms < *range.start() {
        if *range.start() <= 1 {
            "must be longer than zero".to_string()
        } else {
            format!("is shorter than {lo}")
        }
    } else {
        format!("is longer than {hi}")
    };
    Err(problem(
        format!("{what} {} {why}", show_ms(ms)),
        format!("use a duration from {lo} to {hi}"),
    ))
}

/// The first character of `text` a terminal would interpret rather than show (control
/// characters; `\n` and `\t` too unless `multi_line`).
pub fn control_char(text: &str, multi_line: bool) -> Option<char> {
    text.chars()
        .find(|c| c.is_control() && !(multi_line && matches!(c, '\n' | '\t' | '\r')))
}

/// Free text shown in the cockpit: no control characters (they would draw escape
/// sequences), bounded length.
pub fn shown_text(what: &str, text: &str, multi_line: bool) -> Result<(), Problem> {
    let max = if multi_line { TEXT_CHARS } else { NAME_CHARS };
    if let Some(c) = control_char(text, multi_line) {
        return Err(problem(
            format!("{what} contains the control character {c:?}"),
            if multi_line {
                "remove it: only printable characters, new lines and tabs are allowed"
            } else {
                "remove it: one line of printable characters"
            },
        ));
    }
    let n = text.chars().count();
    if n > max {
        return Err(problem(
            format!("{what} is {n} characters long, more than {max}"),
            "shorten it",
        ));
    }
    Ok(())
}

/// A confirmation phrase: printable, on one line, 1 to 100 characters.
pub fn confirm_phrase(phrase: &str) -> Result<(), Problem> {
    if let Some(c) = control_char(phrase, false) {
        return Err(problem(
            format!("the confirmation phrase contains the control character {c:?}"),
            "the operator must be able to type it: printable characters on one line, e.g. confirm = \"freeze writes\"",
        ));
    }
    let n = phrase.chars().count();
    if !CONFIRM_CHARS.contains(&n) {
        return Err(problem(
            format!(
                "the confirmation phrase is {n} characters long, more than {}",
                CONFIRM_CHARS.end()
            ),
            "write a short phrase the operator types, e.g. confirm = \"freeze writes\"",
        ));
    }
    Ok(())
}

/// A SQL identifier: a letter or `_`, then letters, digits and `_`; at most 64 bytes.
pub fn sql_identifier(what: &str, name: &str) -> Result<(), Problem> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(problem(
            format!(
                "{what} \"{}\" is not a plain SQL identifier",
                name.escape_debug()
            ),
            "use a letter or _ first, then letters, digits and _ only, e.g. \"orders\"",
        ));
    }
    if name.len() > IDENTIFIER_CHARS {
        return Err(problem(
            format!(
                "{what} \"{name}\" is {} characters long, more than {IDENTIFIER_CHARS}",
                name.len()
            ),
            "shorten it",
        ));
    }
    Ok(())
}

/// An environment variable's name.
pub fn env_name(name: &str) -> Result<(), Problem> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!(
                "password_env = \"{}\" is not an environment variable's name",
                name.escape_debug()
            ),
            "name the variable that holds the password, e.g. password_env = \"SOURCE_DB_PASSWORD\"",
        ))
    }
}

/// A DNS name: labels of letters, digits, `-` and `_` (and a leading `*`), each 1 to 63
/// bytes, 253 in all; an optional final dot.
pub fn dns_name(what: &str, name: &str) -> Result<(), Problem> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let labels_ok = !bare.is_empty()
        && bare.split('.').enumerate().all(|(i, l)| {
            (1..=63).contains(&l.len())
                && (l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    || (i == 0 && l == "*"))
        });
    if !labels_ok || bare.len() > 253 {
        return Err(problem(
            format!("{what} \"{}\" is not a DNS name", name.escape_debug()),
            "write a host name such as \"db.shop.internal.\" (labels of letters, digits and -, at most 63 each)",
        ));
    }
    Ok(())
}

/// A record value of `record_type`: an IPv4 address for A, IPv6 for AAAA, a name for CNAME.
pub fn dns_value(what: &str, record_type: &str, value: &str) -> Result<(), Problem> {
    let ok = match record_type {
        "A" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "AAAA" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => return dns_name(what, value),
    };
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!(
                "{what} \"{}\" is not an {} address",
                value.escape_debug(),
                if record_type == "A" { "IPv4" } else { "IPv6" }
            ),
            format!(
                "a type {record_type} record points at an address, e.g. {}",
                if record_type == "A" {
                    "\"10.0.0.12\""
                } else {
                    "\"fd00::12\""
                }
            ),
        ))
    }
}

/// What the password hint says wherever a URL carries a secret.
pub fn password_hint(which: &str) -> String {
    format!(
        "remove it from the url and give the password with password_env = \"VAR\" (an environment variable holding it) or password_file = \"path\" (a file, mode 0600, with it on the first line) in [{which}]; `cutover drift` takes --{which}-password-env / --{which}-password-file"
    )
}

/// The parts of a URL the checks look at.
struct Parts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    query: &'a str,
}

fn split_url(url: &str) -> Option<Parts<'_>> {
    let (scheme, _) = url.split_once("://")?;
    let found = redact::scan(url);
    // Past the userinfo's '@' (the scan knows where it is, even with odd characters).
    let userinfo_end = found
        .secrets
        .iter()
        .find(|s| s.kind == redact::SecretKind::UserinfoPassword)
        .map(|s| s.range.end)
        .or(found.user.map(|r| r.end));
    let host_start = userinfo_end.map_or(scheme.len() + 3, |e| e + 1);
    let rest = url.get(host_start..)?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = query.split('#').next().unwrap_or("");
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':');
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some(Parts {
        scheme,
        host,
        port,
        path,
        query,
    })
}

fn port(url_what: &str, port: Option<&str>) -> Result<(), Problem> {
    let Some(p) = port else {
        return Ok(());
    };
    match p.parse::<u32>() {
        Ok(n) if (1..=65_535).contains(&n) => Ok(()),
        _ => Err(problem(
            format!(
                "{url_what} has port \"{}\", which no server listens on",
                p.escape_debug()
            ),
            "use a port from 1 to 65535, e.g. :3306 (MySQL) or :5432 (PostgreSQL)",
        )),
    }
}

/// A database endpoint's URL: no credential anywhere, a scheme for the engine, a host, a
/// port in range, a database where the engine needs one. `which` is "source" or "target".
pub fn db_url(which: &str, engine: Engine, url: &str) -> Result<(), Problem> {
    let what = format!("the [{which}] url");
    if let Some(secret) = redact::scan(url).secrets.first() {
        // Never repeat the URL: it holds a secret.
        return Err(problem(
            format!("{what} contains {}", secret.kind.describe()),
            password_hint(which),
        ));
    }
    let example = match engine {
        Engine::Postgres => "postgres://user@host:5432/database",
        _ => "mysql://user@host:3306/database",
    };
    if engine == Engine::Rehearsal {
        return Err(problem(
            format!("[{which}] has engine = \"rehearsal\", which takes no url"),
            "remove the url, or set engine = \"mysql\" or \"postgres\"",
        ));
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            format!("{what} contains {c:?}"),
            format!("percent-encode it (a space is %20), e.g. {example}"),
        ));
    }
    let Some(parts) = split_url(url) else {
        return Err(problem(
            format!("{what} is not a URL"),
            format!("write it as {example} (keyword strings such as host=... are not read)"),
        ));
    };
    let scheme = parts.scheme.to_ascii_lowercase();
    let fits = match engine {
        Engine::Mysql => matches!(scheme.as_str(), "mysql" | "mariadb"),
        Engine::Postgres => matches!(scheme.as_str(), "postgres" | "postgresql"),
        Engine::Rehearsal => false,
    };
    if !fits {
        let engine_name = format!("{engine:?}").to_lowercase();
        let known = matches!(
            scheme.as_str(),
            "mysql" | "mariadb" | "postgres" | "postgresql"
        );
        return Err(problem(
            format!(
                "{what} starts with {}:// but [{which}] has engine = \"{engine_name}\"",
                parts.scheme.escape_debug()
            ),
            if known {
                format!("make them agree: {example}, or change the engine")
            } else {
                format!("write it as {example}")
            },
        ));
    }
    let socket = parts
        .query
        .split('&')
        .any(|p| p.starts_with("socket=") || p.starts_with("host="));
    if parts.host.is_empty() && !socket {
        return Err(problem(
            format!("{what} names no host"),
            format!("write it as {example}"),
        ));
    }
    if !parts.host.starts_with('[')
        && !parts
            .host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '%'))
    {
        return Err(problem(
            format!(
                "{what} has the host \"{}\", which is not a host name",
                parts.host.escape_debug()
            ),
            format!("write it as {example}"),
        ));
    }
    port(&what, parts.port)?;
    if engine == Engine::Mysql && parts.path.trim_start_matches('/').is_empty() {
        return Err(problem(
            format!("{what} names no database"),
            "add the database to the url: mysql://user@host:3306/database",
        ));
    }
    Ok(())
}

/// `[aws] endpoint_url`: http(s), a host, a port in range, no credential.
pub fn endpoint_url(what: &str, url: &str) -> Result<(), Problem> {
    let found = redact::scan(url);
    if found.user.is_some() || !found.secrets.is_empty() {
        return Err(problem(
            format!("{what} carries credentials"),
            "remove them: AWS credentials come from the profile, the environment or the instance role",
        ));
    }
    let parts = split_url(url).filter(|p| matches!(p.scheme, "http" | "https"));
    let Some(parts) = parts else {
        return Err(problem(
            format!("{what} is not an http:// or https:// URL"),
            "e.g. endpoint_url = \"https://dms.eu-west-1.amazonaws.com\"",
        ));
    };
    if parts.host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            format!("{what} names no host"),
            "e.g. endpoint_url = \"https://dms.eu-west-1.amazonaws.com\"",
        ));
    }
    port(what, parts.port)
}

/// `[aws] account`: an AWS account id, 12 digits.
pub fn account(account: &str) -> Result<(), Problem> {
    if account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(problem(
            format!(
                "[aws] account \"{}\" is not an AWS account id",
                account.escape_debug()
            ),
            "give the 12 digits, e.g. account = \"111122223333\" (`aws sts get-caller-identity`)",
        ))
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path and name>`.
pub fn role_arn(what: &str, arn: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(parts.as_slice(),
        ["arn", partition, "iam", "", acct, resource]
            if partition.starts_with("aws")
                && acct.len() == 12
                && acct.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty()
                    && n.len() <= 512
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))));
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("{what} \"{}\" is not an IAM role ARN", arn.escape_debug()),
            "e.g. role_arn = \"arn:aws:iam::111122223333:role/cutover-dns\"",
        ))
    }
}

/// `[aws] region`: lower-case letters, digits and `-`, e.g. `eu-west-1`.
pub fn region(region: &str) -> Result<(), Problem> {
    let ok = (1..=32).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!(
                "[aws] region \"{}\" is not a region name",
                region.escape_debug()
            ),
            "e.g. region = \"eu-west-1\"",
        ))
    }
}

/// An HTTP action's or probe's URL: http(s), a host, a port in range, no credential
/// anywhere (it is in the plan text the transcript header carries; a token goes in a
/// header read from `headers_env` / `headers_file`).
pub fn http_url(what: &str, url: &str) -> Result<(), Problem> {
    let found = redact::scan(url);
    if found.user.is_some() || !found.secrets.is_empty() {
        return Err(problem(
            format!("{what} carries a credential"),
            "remove it from the URL and send it in a header read from headers_env or headers_file, e.g. headers_env = { Authorization = \"FLAGS_TOKEN\" }",
        ));
    }
    let parts = split_url(url).filter(|p| matches!(p.scheme, "http" | "https"));
    let Some(parts) = parts else {
        return Err(problem(
            format!(
                "{what} \"{}\" is not an http:// or https:// URL",
                url.escape_debug()
            ),
            "e.g. url = \"https://flags.internal/api/flags/write_enabled\"",
        ));
    };
    if parts.host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            format!(
                "{what} \"{}\" names no host (or has a space)",
                url.escape_debug()
            ),
            "e.g. url = \"https://flags.internal/api/flags/write_enabled\"",
        ));
    }
    port(what, parts.port)
}
