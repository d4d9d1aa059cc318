//! Turns AWS SDK failures into one human line that names the call, the reason and the fix,
//! with anything that looks like a credential scrubbed out. Used for `SourceError`s (the pane
//! shows them, the gates go unknown) and for `ActionError`s.

use aws_sdk_databasemigration::config::http::HttpResponse;
use aws_sdk_databasemigration::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use cutover_core::redact;

/// Error codes AWS uses for throttling across services.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
    "SlowDown",
];

const EXPIRED: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
];

const INVALID_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];

const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AccessDeniedFault",
    "UnauthorizedOperation",
    "NotAuthorized",
];

/// What kind of failure a call met, for callers that react differently (the actuator
/// treats "invalid state" as a race to re-check, not as a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Throttled,
    Timeout,
    Unreachable,
    ServerError,
    ExpiredCredentials,
    InvalidCredentials,
    NoCredentials,
    AccessDenied,
    NotFound,
    InvalidState,
    Other,
}

/// A failed AWS call, described for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// Describes a failed SDK call. `call` names it the way an operator would search for it,
/// e.g. "DMS DescribeReplicationTasks"; `permission` is the IAM action it needs.
pub fn describe<E>(call: &str, permission: &str, err: &SdkError<E, HttpResponse>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, reason) = match err {
        // The credential provider failed before anything was sent: an expired SSO session
        // (or expired session credentials) is that, not a network problem.
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_)
            if credentials_expired(&chain(err).unwrap_or_default()) =>
        {
            (
                FailureKind::ExpiredCredentials,
                format!(
                    "the AWS credentials have expired ({}); refresh them — `aws sso login` (with the profile the cockpit uses) or new session credentials — the cockpit keeps polling",
                    chain(err).unwrap_or_default()
                ),
            )
        }
        SdkError::TimeoutError(_) => (
            FailureKind::Timeout,
            "no answer in time after bounded retries; check the network path to the AWS endpoint"
                .to_string(),
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => (
            FailureKind::Timeout,
            "the connection timed out after bounded retries; check the network path to the AWS endpoint (VPC endpoint, proxy, --endpoint-url)".to_string(),
        ),
        SdkError::DispatchFailure(d) if d.is_user() => (
            FailureKind::Other,
            format!(
                "the request could not be sent: {}",
                chain(err).unwrap_or_else(|| "invalid request".into())
            ),
        ),
        SdkError::DispatchFailure(_) => (
            FailureKind::Unreachable,
            format!(
                "the AWS endpoint could not be reached after bounded retries ({}); check the network, the region and --endpoint-url",
                chain(err).unwrap_or_else(|| "connection failed".into())
            ),
        ),
        SdkError::ConstructionFailure(_) => {
            let detail = chain(err).unwrap_or_default();
            let lower = detail.to_ascii_lowercase();
            if lower.contains("credential") || lower.contains("identity") {
                (
                    FailureKind::NoCredentials,
                    format!(
                        "no usable AWS credentials ({detail}); set AWS_PROFILE or pass --profile, run `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    ),
                )
            } else {
                (FailureKind::Other, format!("the request could not be built: {detail}"))
            }
        }
        SdkError::ResponseError(r) => (
            FailureKind::Other,
            format!(
                "the answer (HTTP {}) could not be read; is --endpoint-url an AWS-compatible endpoint?",
                r.raw().status().as_u16()
            ),
        ),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = err.code().unwrap_or("");
            let message = err.message().unwrap_or("").trim();
            let said = if message.is_empty() {
                format!("{code} (HTTP {status})")
            } else if code.is_empty() {
                format!("HTTP {status}: {message}")
            } else {
                format!("{code}: {message}")
            };
            if THROTTLING.contains(&code) || status == 429 {
                (
                    FailureKind::Throttled,
                    format!("throttled by AWS after bounded retries ({said}); the next poll tries again"),
                )
            } else if EXPIRED.contains(&code) {
                (
                    FailureKind::ExpiredCredentials,
                    format!(
                        "the AWS credentials have expired ({said}); refresh them (`aws sso login`, or new session credentials) — the cockpit keeps polling"
                    ),
                )
            } else if INVALID_CREDENTIALS.contains(&code) {
                (
                    FailureKind::InvalidCredentials,
                    format!("AWS rejected the credentials ({said}); check the profile or access key in use"),
                )
            } else if ACCESS_DENIED.contains(&code) || status == 403 {
                (
                    FailureKind::AccessDenied,
                    format!(
                        "access denied ({said}); the IAM policy needs {permission} (see docs/iam/)"
                    ),
                )
            } else if code.contains("NotFound") || code == "NoSuchHostedZone" || code == "NoSuchChange" {
                (FailureKind::NotFound, format!("not found ({said}); check the plan's identifiers and the region"))
            } else if code == "InvalidResourceStateFault" {
                (FailureKind::InvalidState, format!("not possible in the resource's current state ({said})"))
            } else if status >= 500 {
                (
                    FailureKind::ServerError,
                    format!("AWS answered with a server error after bounded retries ({said})"),
                )
            } else {
                (FailureKind::Other, said)
            }
        }
        // SdkError is non-exhaustive.
        _ => (FailureKind::Other, chain(err).unwrap_or_else(|| "unknown failure".into())),
    };
    CallFailure {
        kind,
        message: scrub(&format!("{call}: {reason}")),
    }
}

/// Whether a failure's text says the credentials (an SSO session's token, or session
/// credentials) have expired.
fn credentials_expired(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    (lower.contains("sso") || lower.contains("credential") || lower.contains("token"))
        && (lower.contains("expired") || lower.contains("cannot be refreshed"))
}

/// The error's source chain as one line, scrubbed.
fn chain<E>(err: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: std::error::Error + 'static,
{
    let text = DisplayErrorContext(err).to_string();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then(|| scrub(&text))
}

/// Removes what could be a credential from free text: URL passwords and `password=` pairs
/// (via `redact::text`), access key ids, and long base64-like runs (secret keys, session
/// tokens, signatures).
pub fn scrub(text: &str) -> String {
    let text = redact::text(text, &[]);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let is_key_id = run.len() == 20
            && (run.starts_with("AKIA") || run.starts_with("ASIA"))
            && run
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if is_key_id || run.len() >= 40 {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '/' | '+' | '=') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_sso_session_is_not_a_network_problem() {
        let err: SdkError<
            aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksError,
            HttpResponse,
        > = SdkError::construction_failure(
            "failed to load credentials: the SSO token has expired and cannot be refreshed",
        );
        let f = describe(
            "DMS DescribeReplicationTasks",
            "dms:DescribeReplicationTasks",
            &err,
        );
        assert_eq!(f.kind, FailureKind::ExpiredCredentials, "{}", f.message);
        assert!(f.message.contains("`aws sso login`"), "{}", f.message);
        assert!(!f.message.contains("network"), "{}", f.message);
    }

    #[test]
    fn scrub_hides_key_ids_and_secrets_but_keeps_arns() {
        let t = scrub(
            "key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY for arn:aws:dms:us-east-1:123456789012:task:ABCDEFGHIJKLMNOP",
        );
        assert!(!t.contains("AKIAIOSFODNN7EXAMPLE"), "{t}");
        assert!(!t.contains("wJalrXUtnFEMI"), "{t}");
        assert!(
            t.contains("arn:aws:dms:us-east-1:123456789012:task:ABCDEFGHIJKLMNOP"),
            "{t}"
        );
    }
}
