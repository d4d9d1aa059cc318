//! `kind = "http"`: a request to a feature-flag service or a deploy hook, its expected status
//! codes and timeout. Header values that are secrets are never in the plan: `headers_env`
//! and `headers_file` name where they are kept (read when the request is sent); a literal
//! header whose name says it is a credential is refused, as is a URL carrying one.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Locator, limits};

/// Methods an action may send.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// An HTTP request with what its answer must be.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpAction {
    pub method: String,
    pub url: String,
    /// In the plan's order of kinds: literal, then from the environment, then from files.
    pub headers: Vec<(String, HeaderValue)>,
    /// Sent as the body with `Content-Type: application/json`.
    pub json: Option<serde_json::Value>,
    /// Any of these answers succeeds (default: any 2xx).
    pub expect: Vec<u16>,
    pub timeout_ms: i64,
    /// Whether sending it again does no harm (`resume` asks before re-sending one that is
    /// not).
    pub idempotent: bool,
}

/// Where a header's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Literal(String),
    /// An environment variable's name.
    Env(String),
    /// A file whose first line is the value.
    File(String),
}

impl HttpAction {
    pub fn describe(&self) -> String {
        format!(
            "HTTP {} {} (expects {})",
            self.method,
            self.url,
            self.expected()
        )
    }

    /// The accepted answers, as the transcript and the dry run name them.
    pub fn expected(&self) -> String {
        if self.expect.is_empty() {
            "any 2xx".into()
        } else {
            self.expect
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    pub fn accepts(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }
}

/// Default and range of an HTTP action's `timeout`.
pub const DEFAULT_TIMEOUT_MS: i64 = 10_000;
pub const TIMEOUT_MS: std::ops::RangeInclusive<i64> = 100..=10 * 60 * 1000;
/// Headers of one request, of every kind together.
pub const HEADERS: usize = 32;

/// The fields of `kind = "http"` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_file: BTreeMap<String, String>,
    #[serde(default)]
    pub json: Option<toml::Value>,
    #[serde(default)]
    pub expect: Option<Vec<i64>>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub idempotent: bool,
}

/// A header name that says its value is a credential.
fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "key", "password", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

/// An HTTP header name: RFC 9110 token characters.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Validates `raw` (every problem located at `at`, the action's position) into the action.
pub(super) fn convert(loc: &mut Locator<'_>, at: usize, raw: &RawHttp) -> HttpAction {
    let method = raw.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        loc.push(
            at,
            format!(
                "the http action's method \"{}\" is not one it sends",
                raw.method.escape_debug()
            ),
            Some(format!("use one of {}", METHODS.join(", "))),
        );
    }
    loc.check_at(at, limits::http_url("the http action's url", &raw.url));
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        if secret_header(name) {
            loc.push(
                at,
                format!("the http action's header \"{name}\" is a credential written in the plan"),
                Some(format!(
                    "keep it out of the plan: headers_env = {{ \"{name}\" = \"VARIABLE\" }} or headers_file = {{ \"{name}\" = \"~/.cutover/{}\" }}",
                    name.to_ascii_lowercase()
                )),
            );
        } else if let Err(p) = limits::shown_text(&format!("the http header {name}"), value, false)
        {
            loc.push(at, p.message, Some(p.hint));
        } else if !crate::redact::scan(value).secrets.is_empty() {
            loc.push(
                at,
                format!("the http action's header \"{name}\" carries a credential"),
                Some(format!(
                    "read it from the environment: headers_env = {{ \"{name}\" = \"VARIABLE\" }}"
                )),
            );
        }
        headers.push((name.clone(), HeaderValue::Literal(value.clone())));
    }
    for (name, var) in &raw.headers_env {
        loc.check_at(at, limits::env_name(var));
        headers.push((name.clone(), HeaderValue::Env(var.clone())));
    }
    for (name, file) in &raw.headers_file {
        if file.trim().is_empty() {
            loc.push(
                at,
                format!("the http action's headers_file for \"{name}\" is empty"),
                Some("name the file whose first line is the header's value".into()),
            );
        }
        headers.push((name.clone(), HeaderValue::File(file.clone())));
    }
    for (name, _) in &headers {
        if !header_name_ok(name) {
            loc.push(
                at,
                format!("\"{}\" is not an HTTP header name", name.escape_debug()),
                Some("use letters, digits and - (e.g. X-Request-Source)".into()),
            );
        }
    }
    if headers.len() > HEADERS {
        loc.push(
            at,
            format!(
                "the http action has {} headers (at most {HEADERS})",
                headers.len()
            ),
            Some("send fewer headers".into()),
        );
    }
    let mut expect = Vec::new();
    for code in raw.expect.iter().flatten() {
        match u16::try_from(*code) {
            Ok(c) if (100..=599).contains(&c) => expect.push(c),
            _ => loc.push(
                at,
                format!("the http action's expect lists {code}, which is not an HTTP status"),
                Some("list status codes from 100 to 599, e.g. expect = [200, 204]".into()),
            ),
        }
    }
    if raw.expect.as_ref().is_some_and(Vec::is_empty) {
        loc.push(
            at,
            "the http action's expect is empty: no answer could succeed",
            Some(
                "list the status codes that mean it worked, or leave expect out for any 2xx".into(),
            ),
        );
    }
    let timeout_ms = match &raw.timeout {
        None => DEFAULT_TIMEOUT_MS,
        Some(text) => match super::gate_expr::parse_duration_ms(text) {
            Ok(ms) => {
                loc.check_at(
                    at,
                    limits::duration("the http action's timeout", ms, &TIMEOUT_MS),
                );
                ms
            }
            Err(e) => {
                loc.push(
                    at,
                    format!("the http action's timeout \"{}\": {e}", text.escape_debug()),
                    Some("e.g. timeout = \"10s\"".into()),
                );
                DEFAULT_TIMEOUT_MS
            }
        },
    };
    let json = raw.json.as_ref().map(|v| match serde_json::to_value(v) {
        Ok(j) => j,
        Err(e) => {
            loc.push(
                at,
                format!("the http action's json cannot be sent as JSON: {e}"),
                Some("use strings, numbers, booleans, arrays and tables".into()),
            );
            serde_json::Value::Null
        }
    });
    if json.is_some() && method == "GET" {
        loc.push(
            at,
            "the http action sends a json body with GET",
            Some("use POST, PUT or PATCH to send a body".into()),
        );
    }
    HttpAction {
        method,
        url: raw.url.clone(),
        headers,
        json,
        expect,
        timeout_ms,
        idempotent: raw.idempotent,
    }
}
