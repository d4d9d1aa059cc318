//! The real backends: DMS, CloudWatch and Route 53 through the AWS SDK (issue 3).
//!
//! - [`load_config`]: credentials, region and endpoint the way the aws cli finds them.
//! - [`AwsReader`]: read-only clients and the [`Source`]s built on them (replication task and
//!   table statistics, CloudWatch metrics, the DNS record). `watch` builds only this; it can
//!   issue no mutating request (see [`read`]).
//! - [`AwsActuator`]: the only type holding mutating calls (stop/start the task, flip the
//!   record), for `run`.
//!
//! Faults (throttling, timeouts, 5xx, expired credentials) are retried a bounded number of
//! times with backoff by the SDK ([`Tuning`]); what still fails becomes a `SourceError` with
//! a scrubbed, human message, the fold turns the stale readings into unknown gates, and the
//! cockpit keeps polling.
//!
//! CloudWatch is minute-grained: each datapoint keeps its own timestamp (the start of its
//! minute), so a gate on a metric input needs a freshness bound of a few minutes (the default
//! for metric inputs is 180 s).

pub mod cloudwatch;
pub mod dms;
pub mod drive;
pub mod error;
pub mod identity;
pub mod logs;
pub mod rds;
pub mod read;
pub mod route53;
pub mod weights;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_databasemigration::config::SharedCredentialsProvider;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use cutover_core::event::AwsIdentity;
use cutover_core::plan::{AwsEndpoints, Plan, ReplicationEngine};
use cutover_runtime::source::Source;

pub use drive::AwsActuator;
pub use error::{CallFailure, FailureKind};
pub use read::ReadOnlyGuard;

/// Overrides of the plan's `[aws]` section (the command line's `--profile`, `--region`,
/// `--endpoint-url`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsOverrides {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Why the AWS configuration could not be loaded. Each names the missing piece and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no region: pass --region or set AWS_REGION (or region in the plan's [aws] section{profile_hint})"
    )]
    NoRegion { profile_hint: String },
    #[error(
        "no AWS credentials{profile}: {reason}; pass --profile, run `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials { profile: String, reason: String },
    #[error(
        "bad endpoint URL \"{url}\": {reason}; give a full URL such as https://vpce-123.dms.eu-west-1.vpce.amazonaws.com or http://127.0.0.1:5000"
    )]
    BadEndpoint { url: String, reason: String },
    #[error("{what}: {fix}")]
    Expired { what: String, fix: String },
    #[error(
        "wrong AWS account: the credentials ({credentials}) are {arn} in account {actual}, but {whence} says {expected}; refusing to start — pass the right --profile (or unset AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN left by another session)"
    )]
    WrongAccount {
        actual: String,
        arn: String,
        credentials: String,
        expected: String,
        whence: String,
    },
    #[error("could not tell who the AWS credentials belong to: {reason}")]
    Identity { reason: String },
    #[error("the DNS role {role} could not be assumed: {reason}")]
    DnsRole { role: String, reason: String },
}

/// Retries, timeouts, poll intervals and waits, and where each service's calls go. The
/// defaults suit a real maintenance window; tests shrink them.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Attempts per call, the first included (throttling, timeouts and 5xx are retried).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// One attempt's bound.
    pub attempt_timeout: Duration,
    /// The whole call's bound, retries included.
    pub operation_timeout: Duration,
    pub replication_every: Duration,
    /// CloudWatch has one datapoint a minute; polling more often only re-reads it.
    pub metrics_every: Duration,
    pub dns_every: Duration,
    /// How often the task's log stream is read.
    pub logs_every: Duration,
    /// How far back each GetMetricData looks.
    pub metrics_window: Duration,
    /// How often an action re-reads the task or the change while it waits.
    pub action_poll: Duration,
    /// How long stop/start waits for the task to reach the wanted status.
    pub task_wait: Duration,
    /// How long a DNS flip waits for INSYNC.
    pub dns_wait: Duration,
    /// Bound on one resolver lookup.
    pub resolve_timeout: Duration,
    /// How long a parameter-group freeze waits for the server to report the new
    /// `@@GLOBAL.read_only` once RDS says the group is in sync.
    pub read_only_wait: Duration,
    /// An endpoint per service (the plan's `[aws.endpoints]`), applied over the SDK's own
    /// resolution; empty when one endpoint serves every service (`--endpoint-url`).
    pub endpoints: AwsEndpoints,
    /// Credentials for the Route 53 calls only (the plan's `[dns] role_arn`, assumed).
    pub dns_credentials: Option<SharedCredentialsProvider>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            replication_every: Duration::from_secs(10),
            metrics_every: Duration::from_secs(30),
            dns_every: Duration::from_secs(5),
            logs_every: Duration::from_secs(10),
            metrics_window: Duration::from_secs(10 * 60),
            action_poll: Duration::from_secs(5),
            task_wait: Duration::from_secs(15 * 60),
            dns_wait: Duration::from_secs(5 * 60),
            resolve_timeout: Duration::from_secs(3),
            read_only_wait: Duration::from_secs(120),
            endpoints: AwsEndpoints::default(),
            dns_credentials: None,
        }
    }
}

impl Tuning {
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    pub(crate) fn dms(&self, cfg: &SdkConfig) -> aws_sdk_databasemigration::config::Builder {
        let b = aws_sdk_databasemigration::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        match &self.endpoints.dms {
            Some(url) => b.endpoint_url(url),
            None => b,
        }
    }

    pub(crate) fn cloudwatch(&self, cfg: &SdkConfig) -> aws_sdk_cloudwatch::config::Builder {
        let b = aws_sdk_cloudwatch::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        match &self.endpoints.cloudwatch {
            Some(url) => b.endpoint_url(url),
            None => b,
        }
    }

    /// Route 53, with the DNS role's credentials when the plan names one.
    pub(crate) fn route53(&self, cfg: &SdkConfig) -> aws_sdk_route53::config::Builder {
        let mut b = aws_sdk_route53::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        if let Some(url) = &self.endpoints.route53 {
            b = b.endpoint_url(url);
        }
        if let Some(creds) = &self.dns_credentials {
            b = b.credentials_provider(creds.clone());
        }
        b
    }

    pub(crate) fn logs(&self, cfg: &SdkConfig) -> aws_sdk_cloudwatchlogs::config::Builder {
        let b = aws_sdk_cloudwatchlogs::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        match &self.endpoints.logs {
            Some(url) => b.endpoint_url(url),
            None => b,
        }
    }

    pub(crate) fn rds(&self, cfg: &SdkConfig) -> aws_sdk_rds::config::Builder {
        let b = aws_sdk_rds::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        match &self.endpoints.rds {
            Some(url) => b.endpoint_url(url),
            None => b,
        }
    }

    pub(crate) fn sts(&self, cfg: &SdkConfig) -> aws_sdk_sts::config::Builder {
        let b = aws_sdk_sts::config::Builder::from(cfg)
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config());
        match &self.endpoints.sts {
            Some(url) => b.endpoint_url(url),
            None => b,
        }
    }
}

/// What [`load_config`] established: the SDK configuration, who the credentials are, the
/// per-service endpoints and DNS credentials (as a [`Tuning`] to start from), and warnings
/// to show and record (credentials expiring inside the window).
#[derive(Clone, Debug)]
pub struct AwsSession {
    pub sdk: SdkConfig,
    pub identity: AwsIdentity,
    pub tuning: Tuning,
    pub warnings: Vec<String>,
}

/// Loads the AWS configuration like the aws cli, and proves who it is.
///
/// - Region, profile and endpoint: `--region`, `--profile` and `--endpoint-url` override the
///   plan's `[aws]` section, which overrides the environment.
/// - Credentials: a profile named on the command line or in the plan is used alone (its own
///   provider: the environment's keys cannot win over it, as in the aws cli); otherwise the
///   default chain (environment, `AWS_PROFILE`, SSO, container and instance roles).
/// - Endpoints: `--endpoint-url` or `[aws] endpoint_url` send every service to one endpoint
///   (an emulator). Otherwise each service goes to its `[aws.endpoints]` entry, else to the
///   SDK's own `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL`, else to AWS.
/// - Identity: `sts:GetCallerIdentity`, checked against `[aws] account` and the account of a
///   task ARN (a mismatch refuses); credentials expiring inside the plan's window are warned
///   about. `[dns] role_arn` is assumed for the Route 53 calls only.
pub async fn load_config(plan: &Plan, args: &AwsOverrides) -> Result<AwsSession, AwsError> {
    let profile = args.profile.clone().or_else(|| plan.aws.profile.clone());
    let region = args.region.clone().or_else(|| plan.aws.region.clone());
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| plan.aws.endpoint_url.clone());
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &profile {
        loader = loader.profile_name(p).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(p)
                .build(),
        );
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    let mut tuning = Tuning::default();
    match &endpoint {
        Some(url) => {
            check_endpoint(url)?;
            loader = loader.endpoint_url(url);
        }
        None => tuning.endpoints = plan.aws.endpoints.clone(),
    }
    let cfg = loader.load().await;
    let creds = verify(&cfg, profile.as_deref()).await?;
    let (account, arn) = identity::caller_identity(&cfg, &tuning, profile.as_deref()).await?;
    let mut credentials = identity::provider_label(profile.as_deref(), profile.is_some());
    if let Some(name) = identity::sdk_provider_name(&creds)
        && !credentials.contains(&name)
    {
        credentials = format!("{credentials}: {name}");
    }
    let who = AwsIdentity {
        account,
        arn,
        credentials,
        expires_at: identity::expiry_ms(&creds),
    };
    identity::check_account(plan, &who)?;
    let mut warnings = Vec::new();
    if let Some(w) = identity::expiry_warning(
        &who,
        cutover_core::event::now_ms(),
        identity::plan_window(plan),
    ) {
        warnings.push(w);
    }
    if let Some(role) = plan.dns.as_ref().and_then(|d| d.role_arn.as_deref()) {
        tuning.dns_credentials = Some(dns_role(&cfg, &tuning, role).await?);
    }
    // From here on, keys that refresh are proven to be this account's before any call uses
    // them.
    let cfg = match cfg.credentials_provider() {
        Some(inner) => {
            let checked = identity::CheckedCredentials::new(
                inner,
                tuning.sts(&cfg).build(),
                &who.account,
                Some(creds.access_key_id().to_string()),
            );
            cfg.to_builder()
                .credentials_provider(SharedCredentialsProvider::new(checked))
                .build()
        }
        None => cfg,
    };
    Ok(AwsSession {
        sdk: cfg,
        identity: who,
        tuning,
        warnings,
    })
}

/// The DNS role's credentials (assumed through STS now, so a refusal stops the start; the
/// provider refreshes them before they expire).
async fn dns_role(
    cfg: &SdkConfig,
    tuning: &Tuning,
    role: &str,
) -> Result<SharedCredentialsProvider, AwsError> {
    use aws_sdk_databasemigration::config::ProvideCredentials;
    let sts_cfg = match &tuning.endpoints.sts {
        Some(url) => cfg.to_builder().endpoint_url(url).build(),
        None => cfg.clone(),
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("cutover-dns")
        .configure(&sts_cfg)
        .build()
        .await;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(SharedCredentialsProvider::new(provider)),
        Ok(Err(e)) => Err(AwsError::DnsRole {
            role: role.to_string(),
            reason: error::scrub(
                &aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            ),
        }),
        Err(_) => Err(AwsError::DnsRole {
            role: role.to_string(),
            reason: format!(
                "STS gave no answer within {}s",
                CREDENTIALS_TIMEOUT.as_secs()
            ),
        }),
    }
}

fn check_endpoint(url: &str) -> Result<(), AwsError> {
    let bad = |reason: &str| AwsError::BadEndpoint {
        // An endpoint URL has no business carrying a user (an access key id, perhaps).
        url: cutover_core::redact::url_hiding_user(url),
        reason: reason.to_string(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("it has no scheme"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if rest.split(['/', '?']).next().unwrap_or("").is_empty() {
        return Err(bad("it has no host"));
    }
    // The same rule as the plan's [aws] endpoint_url, for --endpoint-url too.
    if let Err(p) = cutover_core::plan::limits::endpoint_url("--endpoint-url", url) {
        return Err(bad(&format!("{}: {}", p.message, p.hint)));
    }
    Ok(())
}

/// How long the credential chain may take (SSO and instance roles answer over the network).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(15);

async fn verify(
    cfg: &SdkConfig,
    profile: Option<&str>,
) -> Result<aws_sdk_databasemigration::config::Credentials, AwsError> {
    // The SDK's credential trait, through a service crate's re-export (no extra dependency).
    use aws_sdk_databasemigration::config::ProvideCredentials;
    let profile_note = |p: Option<&str>| {
        p.map(|p| format!(" for profile \"{p}\""))
            .unwrap_or_default()
    };
    if cfg.region().is_none() {
        return Err(AwsError::NoRegion {
            profile_hint: profile
                .map(|p| format!(", or region in profile \"{p}\" of ~/.aws/config"))
                .unwrap_or_default(),
        });
    }
    let Some(provider) = cfg.credentials_provider() else {
        return Err(AwsError::NoCredentials {
            profile: profile_note(profile),
            reason: "no credential provider is configured".into(),
        });
    };
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(creds)) => Ok(creds),
        Ok(Err(e)) => Err(identity::credentials_error(
            profile,
            &aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        )),
        Err(_) => Err(AwsError::NoCredentials {
            profile: profile_note(profile),
            reason: format!(
                "the credential providers gave no answer within {}s (SSO portal or instance metadata unreachable?)",
                CREDENTIALS_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// The Route 53 change the cockpit made last, shared by the actuator (which records it) and
/// the DNS source (which reports its status with GetChange). By default both use the
/// process-wide tracker of the record's name, so a reader and an actuator built separately
/// from the same plan agree; `AwsActuator::with_changes` shares one explicitly.
#[derive(Clone, Debug, Default)]
pub struct ChangeTracker(Arc<Mutex<Option<String>>>);

impl ChangeTracker {
    /// The process-wide tracker of a record (names compare case-insensitively, with or
    /// without the final dot).
    pub fn for_record(name: &str) -> ChangeTracker {
        static ALL: OnceLock<Mutex<HashMap<String, ChangeTracker>>> = OnceLock::new();
        let key = route53::fqdn(name).to_ascii_lowercase();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.entry(key).or_default().clone()
    }

    pub fn record(&self, change_id: &str) {
        // A poisoned lock only means a panic elsewhere; the id is still worth keeping.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(change_id.to_string());
    }

    pub fn last(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Read-only access to the migration's AWS resources. Exposes only describe/get/list calls.
#[derive(Clone, Debug)]
pub struct AwsReader {
    dms: read::DmsRead,
    cloudwatch: read::CloudWatchRead,
    route53: read::Route53Read,
    logs: read::LogsRead,
    plan: Arc<Plan>,
    tuning: Tuning,
    changes: ChangeTracker,
    nameserver: Option<std::net::SocketAddr>,
}

impl AwsReader {
    pub fn new(cfg: &SdkConfig, plan: &Plan) -> Self {
        Self::with_tuning(cfg, plan, Tuning::default())
    }

    pub fn with_tuning(cfg: &SdkConfig, plan: &Plan, tuning: Tuning) -> Self {
        Self::from_clients(
            read::DmsRead::new(tuning.dms(cfg)),
            read::CloudWatchRead::new(tuning.cloudwatch(cfg)),
            read::Route53Read::new(tuning.route53(cfg)),
            read::LogsRead::new(tuning.logs(cfg)),
            plan,
            tuning,
        )
    }

    pub(crate) fn from_clients(
        dms: read::DmsRead,
        cloudwatch: read::CloudWatchRead,
        route53: read::Route53Read,
        logs: read::LogsRead,
        plan: &Plan,
        tuning: Tuning,
    ) -> Self {
        AwsReader {
            dms,
            cloudwatch,
            route53,
            logs,
            plan: Arc::new(plan.clone()),
            tuning,
            changes: plan
                .dns
                .as_ref()
                .map(|d| ChangeTracker::for_record(&d.name))
                .unwrap_or_default(),
            nameserver: None,
        }
    }

    /// The tracker whose last change the DNS source reports (by default the process-wide one
    /// of the plan's record, which an `AwsActuator` records into).
    pub fn changes(&self) -> ChangeTracker {
        self.changes.clone()
    }

    /// Ask this DNS server instead of the system resolver for `dns.resolved` (e.g. the VPC
    /// resolver the applications use).
    pub fn with_nameserver(mut self, addr: std::net::SocketAddr) -> Self {
        self.nameserver = Some(addr);
        self
    }

    /// The sources the plan calls for: replication (a DMS task, its lag figures from the
    /// task's CloudWatch CDC metrics), the plan's metrics, and the DNS record.
    pub fn sources(&self) -> Vec<Arc<dyn Source>> {
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        let task = self
            .plan
            .replication
            .as_ref()
            .filter(|r| r.engine == ReplicationEngine::Dms)
            .map(|r| r.task.clone());
        if let Some(task) = &task {
            let cdc = cloudwatch::MetricsSource::dms_cdc(
                self.cloudwatch.clone(),
                self.dms.clone(),
                task.clone(),
                self.tuning.clone(),
            );
            out.push(Arc::new(
                dms::ReplicationSource::new(
                    self.dms.clone(),
                    task.clone(),
                    self.tuning.replication_every,
                )
                .with_cdc_metrics(cdc),
            ));
        }
        if let Some(task) = &task {
            // The task's own log, from now on (what happened before this session is the
            // DMS console's to show).
            out.push(Arc::new(logs::TaskLogSource::new(
                self.logs.clone(),
                self.dms.clone(),
                task.clone(),
                cutover_core::event::now_ms(),
                self.tuning.logs_every,
            )));
        }
        if !self.plan.metrics.is_empty() {
            out.push(Arc::new(cloudwatch::MetricsSource::new(
                self.cloudwatch.clone(),
                self.dms.clone(),
                task.clone(),
                self.plan.metrics.clone(),
                self.tuning.clone(),
            )));
        }
        if let Some(record) = &self.plan.dns {
            out.push(Arc::new(route53::DnsSource::new(
                self.route53.clone(),
                record.clone(),
                self.changes.clone(),
                self.nameserver,
                self.tuning.clone(),
            )));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds SDK configurations for typed-level tests: mock HTTP, dummy credentials, tiny
    //! backoffs. Nothing leaves the process.

    use std::time::Duration;

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_databasemigration::config::{Credentials, SharedCredentialsProvider};

    use super::Tuning;

    pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTSECRET1";
    pub const KEY_ID: &str = "AKIAIOSFODNN7TESTKEY";

    pub fn sdk_config() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                KEY_ID, SECRET, None, None, "test",
            )))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .build()
    }

    /// Dummy credentials and a real HTTP client aimed at `endpoint` (always 127.0.0.1 in tests).
    pub fn sdk_config_at(endpoint: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                KEY_ID, SECRET, None, None, "test",
            )))
            .endpoint_url(endpoint)
            .build()
    }

    pub fn tuning() -> Tuning {
        Tuning {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            action_poll: Duration::from_millis(1),
            ..Tuning::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_region_is_named_with_the_fix() {
        let cfg = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let err = verify(&cfg, Some("migration")).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("no region: pass --region or set AWS_REGION"),
            "{text}"
        );
        assert!(text.contains("profile \"migration\""), "{text}");
    }

    #[tokio::test]
    async fn missing_credentials_are_named_with_the_fix() {
        let cfg = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let text = verify(&cfg, None).await.unwrap_err().to_string();
        assert!(text.starts_with("no AWS credentials"), "{text}");
        assert!(text.contains("--profile"), "{text}");
    }

    #[test]
    fn endpoints_need_a_scheme_and_a_host() {
        assert!(check_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint("https://vpce-1.dms.eu-west-1.vpce.amazonaws.com").is_ok());
        let e = check_endpoint("127.0.0.1:5000").unwrap_err().to_string();
        assert!(e.contains("no scheme"), "{e}");
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("http://").is_err());
    }

    #[test]
    fn endpoints_with_credentials_or_impossible_ports_are_refused_unrepeated() {
        let e = check_endpoint("http://AKIAEXAMPLE:hunter22@127.0.0.1:5000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("carries credentials"), "{e}");
        assert!(!e.contains("hunter22") && !e.contains("AKIAEXAMPLE"), "{e}");
        let e = check_endpoint("http://127.0.0.1:0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port \"0\""), "{e}");
    }
}
