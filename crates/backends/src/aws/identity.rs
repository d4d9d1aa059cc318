//! Who the cockpit talks to AWS as, decided before anything else happens.
//!
//! - **The profile wins.** In the Rust SDK's default chain, keys exported in the environment
//!   beat `--profile`; the aws cli does the opposite. `aws-vault exec staging` followed by
//!   `cutover run --profile prod` would then talk to staging. So a profile named on the
//!   command line or in the plan gets its own credentials provider (the profile files only),
//!   and the environment's keys are ignored — said so in [`AwsIdentity::credentials`].
//! - **Proven, not assumed.** `sts:GetCallerIdentity` names the account and the principal;
//!   they are shown, recorded and checked against the plan's `[aws] account` and the account
//!   in a task ARN. A mismatch refuses to start.
//! - **Re-proven on every refresh.** Credentials that refresh (SSO, assumed roles, a
//!   container role, `credential_process`) could come back as another principal — a profile
//!   edited mid-window, a role chain pointing elsewhere. [`CheckedCredentials`] wraps the
//!   provider: each time it hands out new keys, `sts:GetCallerIdentity` is asked with them,
//!   and keys of another account are refused, so every AWS call fails (readings unknown,
//!   actions refused) with the reason, instead of acting on the wrong account.
//! - **Expiry is said out loud.** Credentials that expire before the plan's steps could all
//!   run out their timeouts are warned about; expired ones (an SSO session too) are reported as
//!   such, with the command that refreshes them.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_databasemigration::config::Credentials;

use super::error::{FailureKind, describe, scrub};
use super::{AwsError, Tuning};
use cutover_core::event::{AwsIdentity, Ts};
use cutover_core::plan::Plan;

/// Where the credentials come from, as the operator would say it.
pub(crate) fn provider_label(profile: Option<&str>, explicit_profile: bool) -> String {
    let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    match (profile, explicit_profile) {
        (Some(p), true) if env_keys => {
            format!("profile {p} (AWS_ACCESS_KEY_ID in the environment ignored)")
        }
        (Some(p), true) => format!("profile {p}"),
        _ if env_keys => "environment (AWS_ACCESS_KEY_ID)".to_string(),
        _ => match std::env::var("AWS_PROFILE") {
            Ok(p) if !p.is_empty() => format!("profile {p} (AWS_PROFILE)"),
            _ => "default chain".to_string(),
        },
    }
}

/// The SDK's own name of the provider that answered ("Environment", "ProfileFile", "Sso",
/// ...): only in `Credentials`' Debug output, which redacts the secret.
pub(crate) fn sdk_provider_name(creds: &Credentials) -> Option<String> {
    let debug = format!("{creds:?}");
    let rest = debug.split_once("provider_name: \"")?.1;
    Some(rest.split_once('"')?.0.to_string())
}

/// How a credentials failure is reported: expired sessions (SSO or not) with the command
/// that refreshes them, anything else with the ways to provide credentials.
pub(crate) fn credentials_error(profile: Option<&str>, reason: &str) -> AwsError {
    let lower = reason.to_ascii_lowercase();
    let profile_arg = profile
        .map(|p| format!(" --profile {p}"))
        .unwrap_or_default();
    if lower.contains("sso") && (lower.contains("expired") || lower.contains("refresh")) {
        return AwsError::Expired {
            what: format!(
                "the SSO session{} has expired",
                profile
                    .map(|p| format!(" of profile \"{p}\""))
                    .unwrap_or_default()
            ),
            fix: format!("run `aws sso login{profile_arg}`, then start again"),
        };
    }
    if lower.contains("expired") {
        return AwsError::Expired {
            what: "the AWS credentials have expired".into(),
            fix: format!(
                "get new session credentials (`aws sso login{profile_arg}`, or a new `aws-vault exec`/`aws sts assume-role` session), then start again"
            ),
        };
    }
    AwsError::NoCredentials {
        profile: profile
            .map(|p| format!(" for profile \"{p}\""))
            .unwrap_or_default(),
        reason: scrub(reason),
    }
}

/// The account in an ARN (`arn:partition:service:region:account:...`), when it has one.
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    let account = parts.nth(3)?;
    (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())).then_some(account)
}

/// Refuses credentials of another account than the plan's `[aws] account` or the account of
/// the task ARN the plan names.
pub fn check_account(plan: &Plan, identity: &AwsIdentity) -> Result<(), AwsError> {
    let wrong = |expected: &str, whence: &str| AwsError::WrongAccount {
        actual: identity.account.clone(),
        arn: identity.arn.clone(),
        credentials: identity.credentials.clone(),
        expected: expected.to_string(),
        whence: whence.to_string(),
    };
    if let Some(expected) = &plan.aws.account
        && expected != &identity.account
    {
        return Err(wrong(expected, "the plan's [aws] account"));
    }
    if let Some(task) = plan.replication.as_ref().map(|r| r.task.as_str())
        && let Some(expected) = arn_account(task)
        && expected != identity.account
    {
        return Err(wrong(expected, "the task ARN in [replication] task"));
    }
    Ok(())
}

/// How long the plan may take if every step runs to its timeout: credentials expiring
/// sooner than that are warned about.
pub fn plan_window(plan: &Plan) -> Duration {
    let ms: i64 = plan.steps.iter().map(|s| s.timeout_ms.max(0)).sum();
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The warning for credentials that expire before the plan's window ends, if they do.
pub fn expiry_warning(identity: &AwsIdentity, now: Ts, window: Duration) -> Option<String> {
    let at = identity.expires_at?;
    let left_ms = at.saturating_sub(now);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    (left_ms < window_ms).then(|| {
        format!(
            "the AWS credentials ({}) expire in {} at {}, before the plan's steps could run out their timeouts ({}); refresh them before the window or be ready to (the cockpit keeps polling and says when a call is refused)",
            identity.credentials,
            humantime::format_duration(Duration::from_secs(
                u64::try_from(left_ms.max(0) / 1000).unwrap_or(0)
            )),
            chrono::DateTime::from_timestamp_millis(at)
                .map(|d| d.format("%H:%M:%SZ").to_string())
                .unwrap_or_else(|| at.to_string()),
            humantime::format_duration(window),
        )
    })
}

pub(crate) fn expiry_ms(creds: &Credentials) -> Option<Ts> {
    creds
        .expiry()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// `sts:GetCallerIdentity` through `cfg` (with the plan's STS endpoint when given).
pub(crate) async fn caller_identity(
    cfg: &SdkConfig,
    tuning: &Tuning,
    profile: Option<&str>,
) -> Result<(String, String), AwsError> {
    let client = aws_sdk_sts::Client::from_conf(tuning.sts(cfg).build());
    let out = client.get_caller_identity().send().await.map_err(|e| {
        let f = describe("STS GetCallerIdentity", "sts:GetCallerIdentity", &e);
        match f.kind {
            FailureKind::ExpiredCredentials => credentials_error(profile, "expired"),
            _ => AwsError::Identity { reason: f.message },
        }
    })?;
    match (out.account, out.arn) {
        (Some(account), Some(arn)) => Ok((account, arn)),
        _ => Err(AwsError::Identity {
            reason: "STS GetCallerIdentity: the answer names no account or ARN".into(),
        }),
    }
}

/// A credentials provider that proves who each new set of keys belongs to before handing
/// them out (see the module's notes). The SDK's identity cache calls it only when the cached
/// keys near expiry, so the extra STS call happens once per refresh.
#[derive(Debug)]
pub struct CheckedCredentials {
    inner: aws_credential_types::provider::SharedCredentialsProvider,
    /// STS configuration without credentials: each check signs with the new keys.
    sts: aws_sdk_sts::Config,
    account: String,
    /// The access key id last proven to be `account`'s.
    proven: Mutex<Option<String>>,
}

impl CheckedCredentials {
    /// Wraps `inner`; `proven_key` is the access key id the session's start already proved
    /// to be `account`'s (`None`: prove the first keys too).
    pub fn new(
        inner: aws_credential_types::provider::SharedCredentialsProvider,
        sts: aws_sdk_sts::Config,
        account: &str,
        proven_key: Option<String>,
    ) -> CheckedCredentials {
        CheckedCredentials {
            inner,
            sts,
            account: account.to_string(),
            proven: Mutex::new(proven_key),
        }
    }

    async fn checked(
        &self,
    ) -> Result<Credentials, aws_credential_types::provider::error::CredentialsError> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_credential_types::provider::error::CredentialsError;
        let creds = self.inner.provide_credentials().await?;
        let key = creds.access_key_id().to_string();
        let known = self
            .proven
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(key.as_str());
        if known {
            return Ok(creds);
        }
        let config = self
            .sts
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds.clone()),
            )
            .build();
        let out = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                let f = describe("STS GetCallerIdentity", "sts:GetCallerIdentity", &e);
                CredentialsError::provider_error(format!(
                    "the refreshed AWS credentials could not be proven to be account {}'s: {}",
                    self.account, f.message
                ))
            })?;
        let account = out.account.unwrap_or_default();
        if account != self.account {
            tracing::error!(
                want = %self.account,
                got = %account,
                "refreshed AWS credentials belong to another account; refused"
            );
            return Err(CredentialsError::invalid_configuration(format!(
                "the refreshed AWS credentials belong to account {account} ({}), not {} that this session started with; every AWS call is refused — restore the credentials of account {} (profile, SSO session, role) or start a new session",
                out.arn.as_deref().unwrap_or("no ARN"),
                self.account,
                self.account
            )));
        }
        *self.proven.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
        Ok(creds)
    }
}

impl aws_credential_types::provider::ProvideCredentials for CheckedCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.checked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(account: &str) -> AwsIdentity {
        AwsIdentity {
            account: account.into(),
            arn: format!("arn:aws:sts::{account}:assumed-role/cutover/alice"),
            credentials: "profile prod".into(),
            expires_at: Some(10 * 60 * 1000),
        }
    }

    #[test]
    fn an_expired_sso_session_is_named_with_the_login_command() {
        let e = credentials_error(
            Some("prod"),
            "failed to load a token: the SSO token has expired and cannot be refreshed",
        )
        .to_string();
        assert!(
            e.contains("SSO session of profile \"prod\" has expired"),
            "{e}"
        );
        assert!(e.contains("`aws sso login --profile prod`"), "{e}");
        let e = credentials_error(None, "ExpiredToken: token expired").to_string();
        assert!(e.contains("credentials have expired"), "{e}");
        let e = credentials_error(None, "no providers in chain").to_string();
        assert!(e.starts_with("no AWS credentials"), "{e}");
    }

    #[test]
    fn accounts_come_from_arns() {
        assert_eq!(
            arn_account("arn:aws:dms:eu-west-1:111122223333:task:ABC"),
            Some("111122223333")
        );
        assert_eq!(arn_account("shop-cdc"), None);
        assert_eq!(arn_account("arn:aws:route53:::hostedzone/Z1"), None);
    }

    #[test]
    fn credentials_expiring_inside_the_window_are_warned_about() {
        let id = identity("111122223333");
        let w = expiry_warning(&id, 0, Duration::from_secs(3600)).expect("warned");
        assert!(w.contains("expire in 10m"), "{w}");
        assert!(w.contains("profile prod"), "{w}");
        assert_eq!(expiry_warning(&id, 0, Duration::from_secs(60)), None);
        let never = AwsIdentity {
            expires_at: None,
            ..id
        };
        assert_eq!(expiry_warning(&never, 0, Duration::from_secs(3600)), None);
    }

    #[test]
    fn the_principal_is_the_arn_s_last_part() {
        assert_eq!(
            identity("111122223333").label(),
            "aws 111122223333 assumed-role/cutover/alice"
        );
    }
}
