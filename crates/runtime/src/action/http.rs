//! The `http` action, shared by every backend (a feature-flag service, a deploy hook): one
//! request, its answer's status checked against the plan's `expect`, the status and a short
//! excerpt of the body written to the transcript — scrubbed of the request's own header
//! secrets (read from the environment or a file only now) and of anything that looks like
//! a credential. No retry: a request that is not idempotent must not be sent twice unasked.

use std::time::{Duration, Instant};

use cutover_core::plan::http::{HeaderValue, HttpAction};

use super::{ActionError, Output};

/// Characters of the answer's body kept in the transcript.
pub const EXCERPT_CHARS: usize = 200;

/// The header values a request sends, read now: `(name, value, secret)`.
pub fn resolve_headers(action: &HttpAction) -> Result<Vec<(String, String, bool)>, String> {
    let mut out = Vec::new();
    for (name, value) in &action.headers {
        let (v, secret) = match value {
            HeaderValue::Literal(v) => (v.clone(), false),
            HeaderValue::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => (v.trim().to_string(), true),
                _ => {
                    return Err(format!(
                        "the header {name} comes from the environment variable {var}, which is not set (or empty): export it before the session starts"
                    ));
                }
            },
            HeaderValue::File(file) => {
                let path = crate::secrets::expand_home(file);
                let field = format!("headers_file for {name}");
                (crate::secrets::read_secret_file(&path, &field)?, true)
            }
        };
        out.push((name.clone(), v, secret));
    }
    Ok(out)
}

/// The secret values `action` sends (what `headers_env` / `headers_file` hold), for the
/// session's scrubber. Unreadable ones are skipped: the request itself will fail on them.
pub fn secrets(action: &HttpAction) -> Vec<String> {
    action
        .headers
        .iter()
        .filter_map(|(_, v)| match v {
            HeaderValue::Literal(_) => None,
            HeaderValue::Env(var) => std::env::var(var).ok().map(|v| v.trim().to_string()),
            HeaderValue::File(f) => {
                crate::secrets::read_secret_file(&crate::secrets::expand_home(f), "headers_file")
                    .ok()
            }
        })
        .filter(|s| s.len() >= 4)
        .collect()
}

/// The first `EXCERPT_CHARS` of `body` on one line, with `secrets` and anything that looks
/// like a credential scrubbed.
pub fn excerpt(body: &str, secrets: &[&str]) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // Scrub before cutting, so a secret straddling the cut is not half shown.
    let clean = cutover_core::redact::text(one_line.trim(), secrets);
    let mut cut: String = clean.chars().take(EXCERPT_CHARS).collect();
    if clean.chars().count() > EXCERPT_CHARS {
        cut.push('…');
    }
    cut
}

/// Sends the request; succeeds when the answer's status is one `action` expects.
pub async fn run(action: &HttpAction, out: &Output) -> Result<String, ActionError> {
    let timeout = Duration::from_millis(u64::try_from(action.timeout_ms.max(1)).unwrap_or(1));
    let headers = resolve_headers(action).map_err(ActionError)?;
    let secrets: Vec<String> = headers
        .iter()
        .filter(|(_, _, s)| *s)
        .map(|(_, v, _)| v.clone())
        .collect();
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(crate::net::connect_timeout().min(timeout))
        // A redirect would send the request (and its headers) where the plan did not say.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ActionError(format!("cannot make the HTTP client: {e}")))?;
    let method = reqwest::Method::from_bytes(action.method.as_bytes())
        .map_err(|_| ActionError(format!("{} is not an HTTP method", action.method)))?;
    let mut req = client.request(method, &action.url);
    for (name, value, _) in &headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &action.json {
        // reqwest's `json` feature is off here; the body is serialised the same way.
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let what = format!("{} {}", action.method, action.url);
    out.line(format!("{what} (expects {})", action.expected()));
    let started = Instant::now();
    let answer = req.send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {}", humantime::format_duration(timeout))
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            e.without_url().to_string()
        };
        ActionError(format!(
            "{what}: {}; whether it took effect is unknown — check the service before going on",
            cutover_core::redact::text(&why, &secret_refs)
        ))
    })?;
    let status = answer.status();
    // The body within the same deadline; a body that cannot be read is said, not fatal.
    let body = match tokio::time::timeout(timeout, answer.text()).await {
        Ok(Ok(b)) => excerpt(&b, &secret_refs),
        Ok(Err(_)) | Err(_) => "(the body could not be read)".to_string(),
    };
    let ms = started.elapsed().as_millis();
    out.line(format!("{what} → {status} in {ms} ms"));
    if !body.is_empty() {
        out.line(format!("body: {body}"));
    }
    if action.accepts(status.as_u16()) {
        Ok(format!("{what} → {status}"))
    } else {
        Err(ActionError(format!(
            "{what} answered {status}, expected {}: {}",
            action.expected(),
            if body.is_empty() {
                "(empty body)"
            } else {
                &body
            }
        )))
    }
}
