//! The plan file: what is migrated, what is watched, and the ordered, gated steps of the
//! runbook. Parsing collects every error with file:line:col, the reason and a hint.

pub mod gate_expr;
pub mod http;
pub mod input;
pub mod limits;
pub mod notify;
pub mod probe;

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::event::Side;
pub use input::{Input, InputType, ReplicationInput};
pub use notify::{Notify, NotifyKind, NotifyOn, UrlSecret};

/// A comparison operator in a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }
}

/// A value a gate compares with, or a gate input's current value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    write!(f, "{}", *n as i64)
                } else {
                    write!(f, "{n:.2}")
                }
            }
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// A condition over a reading that must hold before a step may run.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// The gate as written in the plan.
    pub text: String,
    pub input: Input,
    pub op: Op,
    pub value: Value,
    /// The condition must have held continuously for this long (0: at once).
    pub sustain_ms: i64,
    /// Readings older than this make the gate unknown; `None`: `default_fresh_ms`.
    pub fresh_ms: Option<i64>,
    /// The input's default freshness for this plan's replication engine
    /// (`Input::default_fresh_ms_for`), set when the plan is read.
    pub default_fresh_ms: i64,
}

impl Gate {
    pub fn fresh_ms(&self) -> i64 {
        self.fresh_ms.unwrap_or(self.default_fresh_ms)
    }
}

/// Where a DNS flip points the record.
#[derive(Clone, Debug, PartialEq)]
pub enum DnsTo {
    Source,
    Target,
    Value(String),
}

/// The weights a weighted DNS stage gives the plan's two record sets (Route 53 weights,
/// 0..=255 each, not both 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub source: u8,
    pub target: u8,
}

impl Weights {
    /// The share of the traffic the target's set carries, in percent.
    pub fn target_percent(self) -> f64 {
        let total = u32::from(self.source) + u32::from(self.target);
        if total == 0 {
            0.0
        } else {
            f64::from(self.target) * 100.0 / f64::from(total)
        }
    }

    /// The output line a weighted stage writes before it changes anything: the weights as
    /// read. The fold keeps it per step (`StepState::weights_before`), so a rollback — in
    /// this session, after `resume`, on another host — restores exactly these.
    pub fn before_line(self) -> String {
        format!(
            "{WEIGHTS_BEFORE}source {}, target {}",
            self.source, self.target
        )
    }

    /// The weights a `before_line` names.
    pub fn parse_before_line(line: &str) -> Option<Weights> {
        let rest = line.strip_prefix(WEIGHTS_BEFORE)?;
        let (s, t) = rest.split_once(", ")?;
        Some(Weights {
            source: s.strip_prefix("source ")?.parse().ok()?,
            target: t.strip_prefix("target ")?.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "source {}, target {}", self.source, self.target)
    }
}

const WEIGHTS_BEFORE: &str = "weights before the change: ";

/// What a weighted DNS stage sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsWeights {
    /// These weights.
    Set(Weights),
    /// The weights read just before the step's own action changed them (an undo only).
    Previous,
}

/// How a freeze (or unfreeze) is carried out. An enum, not a flag, because managed services
/// need other means (an RDS parameter group, PostgreSQL's `default_transaction_read_only`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeMethod {
    /// `SET GLOBAL read_only = ON|OFF`: self-managed MySQL/MariaDB and the rehearsal world.
    #[default]
    Sql,
    /// `read_only = 1` in the RDS DB (or Aurora DB cluster) parameter group named by the
    /// plan's `[rds]` section, applied immediately, waited for until in sync and proven with
    /// `SELECT @@GLOBAL.read_only`; the unfreeze restores the value from before the freeze.
    /// RDS and Aurora refuse `SET GLOBAL read_only`.
    #[serde(rename = "parameter-group")]
    ParameterGroup,
    /// PostgreSQL: `ALTER DATABASE <db> SET default_transaction_read_only = on` (`off` to
    /// unfreeze), then the database's other client sessions are ended so that every new
    /// one starts read-only; proven from `pg_db_role_setting`. A soft freeze: a client may
    /// still `SET default_transaction_read_only = off` itself. Needs the database's owner
    /// (RDS/Aurora: the master user, rds_superuser) and `pg_signal_backend`.
    #[serde(rename = "default-read-only")]
    DefaultReadOnly,
}

impl FreezeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            FreezeMethod::Sql => "sql",
            FreezeMethod::ParameterGroup => "parameter-group",
            FreezeMethod::DefaultReadOnly => "default-read-only",
        }
    }

    /// What freezes (`frozen`) or unfreezes writes, as the checklist shows it.
    pub fn statement(self, frozen: bool) -> &'static str {
        match (self, frozen) {
            (FreezeMethod::Sql, true) => "SET GLOBAL read_only = ON",
            (FreezeMethod::Sql, false) => "SET GLOBAL read_only = OFF",
            (FreezeMethod::ParameterGroup, true) => "read_only = 1 in the RDS parameter group",
            (FreezeMethod::ParameterGroup, false) => {
                "read_only restored in the RDS parameter group"
            }
            (FreezeMethod::DefaultReadOnly, true) => {
                "ALTER DATABASE .. SET default_transaction_read_only = on, other sessions ended"
            }
            (FreezeMethod::DefaultReadOnly, false) => {
                "ALTER DATABASE .. SET default_transaction_read_only = off"
            }
        }
    }

    /// Whether an endpoint of this engine can be frozen this way.
    pub fn supports(self, engine: Engine) -> bool {
        match self {
            FreezeMethod::Sql => matches!(engine, Engine::Rehearsal | Engine::Mysql),
            FreezeMethod::ParameterGroup => engine == Engine::Mysql,
            FreezeMethod::DefaultReadOnly => engine == Engine::Postgres,
        }
    }
}

/// The RDS resource whose parameter group a `parameter-group` freeze changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RdsResource {
    /// A DB instance (RDS MySQL/MariaDB): its DB parameter group.
    Instance(String),
    /// An Aurora DB cluster: its DB cluster parameter group.
    Cluster(String),
}

impl RdsResource {
    pub fn id(&self) -> &str {
        match self {
            RdsResource::Instance(id) | RdsResource::Cluster(id) => id,
        }
    }
}

/// `[rds]`: which RDS resource each side is, for the `parameter-group` freeze.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RdsSettings {
    pub source: Option<RdsResource>,
    pub target: Option<RdsResource>,
    /// Allow freezing through a parameter group other instances (or clusters) use too: it
    /// freezes them as well, so it is refused unless the plan says so.
    pub shared_parameter_group: bool,
}

impl RdsSettings {
    pub fn side(&self, side: Side) -> Option<&RdsResource> {
        match side {
            Side::Source => self.source.as_ref(),
            Side::Target => self.target.as_ref(),
        }
    }
}

/// What a step does (or undoes).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A pure check: confirming the step records the decision.
    None,
    /// A human does it; confirming asserts it was done.
    Manual { instructions: String },
    /// SQL on one side (e.g. a feature-flag update).
    Sql { on: Side, statement: String },
    /// Make one side refuse application writes; the downtime window starts here.
    Freeze { on: Side, method: FreezeMethod },
    /// Let one side accept application writes again; the downtime window ends here.
    Unfreeze { on: Side, method: FreezeMethod },
    /// Stop the replication task and wait until it is stopped.
    ReplicationStop,
    /// Start or resume the replication task and wait until it runs.
    ReplicationStart,
    /// Set each target sequence of the published tables to the source's value plus
    /// `margin` (PostgreSQL logical replication does not copy sequences). Never moves a
    /// sequence backwards, so it is idempotent; it has no undo (lowering a sequence could
    /// hand out values already used): a step running it says `irreversible = true`.
    SyncSequences { margin: i64 },
    /// UPSERT the record and (optionally) wait until the change is INSYNC.
    Dns { to: DnsTo, wait: bool },
    /// Set the weights of the plan's two weighted record sets (`[dns] source_set` /
    /// `target_set`) in one compare-and-swap batch, and (optionally) wait until INSYNC.
    DnsWeights { weights: DnsWeights, wait: bool },
    /// A shell command; its output lines are recorded.
    Shell { command: String },
    /// An HTTP request (a feature flag, a deploy hook) and the answers that mean it worked.
    Http(Box<http::HttpAction>),
}

impl Action {
    /// Whether running it changes the world (and so needs an undo or `irreversible`).
    pub fn changes_state(&self) -> bool {
        !matches!(self, Action::None | Action::Manual { .. })
    }

    /// Whether running it a second time does no harm: freezing a frozen side, stopping a
    /// stopped task, pointing a record where it points. SQL statements and shell commands
    /// may do anything, so they are not (`resume` asks before running one again).
    pub fn is_idempotent(&self) -> bool {
        match self {
            Action::Sql { .. } | Action::Shell { .. } => false,
            Action::Http(h) => h.idempotent,
            _ => true,
        }
    }

    /// One line for the checklist and the transcript.
    pub fn describe(&self, plan: &Plan) -> String {
        match self {
            Action::None => "check only".into(),
            Action::Manual { instructions } => format!("manual: {instructions}"),
            Action::Sql { on, statement } => format!("SQL on {}: {statement}", on.as_str()),
            Action::Freeze { on, method } => format!(
                "freeze writes on {} ({})",
                on.as_str(),
                method.statement(true)
            ),
            Action::Unfreeze { on, method } => format!(
                "unfreeze writes on {} ({})",
                on.as_str(),
                method.statement(false)
            ),
            Action::ReplicationStop | Action::ReplicationStart
                if plan
                    .replication
                    .as_ref()
                    .is_some_and(|r| r.engine == ReplicationEngine::Postgres) =>
            {
                let verb = if *self == Action::ReplicationStop {
                    "DISABLE"
                } else {
                    "ENABLE"
                };
                format!("ALTER SUBSCRIPTION {} {verb}", plan.task_name())
            }
            Action::ReplicationStop => format!("stop replication {}", plan.stream_name()),
            Action::ReplicationStart => format!("start replication {}", plan.stream_name()),
            Action::SyncSequences { margin } => {
                let plus = if *margin > 0 {
                    format!(" + {margin}")
                } else {
                    String::new()
                };
                format!("set the target's sequences to the source's values{plus} (setval)")
            }
            Action::Dns { to, wait } => {
                let value = plan.dns_value(to).unwrap_or_else(|| "?".into());
                let name = plan.dns.as_ref().map(|d| d.name.as_str()).unwrap_or("?");
                if *wait {
                    format!("point {name} at {value}, wait for INSYNC")
                } else {
                    format!("point {name} at {value}")
                }
            }
            Action::DnsWeights { weights, wait } => {
                let name = plan.dns.as_ref().map(|d| d.name.as_str()).unwrap_or("?");
                let what = match weights {
                    DnsWeights::Set(w) => format!(
                        "weight {name}: {w} ({:.0} % to the target)",
                        w.target_percent()
                    ),
                    DnsWeights::Previous => {
                        format!("restore the weights of {name} read before the step's change")
                    }
                };
                if *wait {
                    format!("{what}, wait for INSYNC")
                } else {
                    what
                }
            }
            Action::Shell { command } => format!("shell: {command}"),
            Action::Http(h) => h.describe(),
        }
    }
}

/// One step of the runbook.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub gates: Vec<Gate>,
    pub action: Action,
    pub undo: Option<Action>,
    pub irreversible: bool,
    /// The exact phrase the operator must type.
    pub confirm: String,
    /// How long the gates may take to turn green, and the action to finish.
    pub timeout_ms: i64,
    /// Approvals needed from attached peers before the driver can run it.
    pub approvals: u32,
    /// What an interactive drive does when the step outruns its timeout (the autopilot
    /// always rolls back).
    pub on_timeout: GuardAction,
}

/// What a guard (an abort condition, a step timeout) does when it fires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Block every forward step until the operator clears the hold with a typed phrase.
    #[default]
    Hold,
    /// Start the rollback as if the operator had confirmed it.
    Rollback,
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Hold => "hold",
            GuardAction::Rollback => "rollback",
        }
    }
}

/// `[[abort]]`: a condition watched over the whole window (or the steps `from`..=`until`);
/// when it holds for its `for` window on fresh readings, the plan's `then` happens.
#[derive(Clone, Debug, PartialEq)]
pub struct AbortCondition {
    pub id: String,
    /// The condition, in the gate language: the abort fires when it holds.
    pub when: Gate,
    /// Armed from the start of this step (index); `None`: from the session's start.
    pub from: Option<usize>,
    /// Armed through the end of this step (index); `None`: until the session ends.
    pub until: Option<usize>,
    pub then: GuardAction,
}

/// `max_downtime` / `on_budget`: how long writes may stay frozen, counted from the start of
/// the step that freezes the source to the end of the one that lets writes in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DowntimeBudget {
    pub max_ms: i64,
    /// What happens when the budget is spent (a warning comes at 80 %).
    pub on_budget: GuardAction,
}

impl DowntimeBudget {
    /// The share of the budget at which the cockpit warns, in per mille.
    pub const WARN_PER_MILLE: i64 = 800;

    /// When the warning is due, from the window's start.
    pub fn warn_after_ms(&self) -> i64 {
        self.max_ms.saturating_mul(Self::WARN_PER_MILLE) / 1000
    }
}

/// `deadline` / `window`: no forward step may start after it; rollback always may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// `deadline = "<RFC 3339>"`: an instant (ms since the epoch).
    At(i64),
    /// `window = "45m"`: this long after the session started.
    Window(i64),
}

/// Which engine a database endpoint runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The embedded rehearsal world (SQLite).
    Rehearsal,
    Mysql,
    Postgres,
}

/// A database the plan reads or acts on. The URL never carries a password.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub engine: Engine,
    pub label: String,
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// The replication stream: a DMS task, or a native replica (the plan's target replicating
/// from its source).
#[derive(Clone, Debug, PartialEq)]
pub struct Replication {
    pub engine: ReplicationEngine,
    /// Task identifier or ARN (DMS, rehearsal); for a native engine the stream's display
    /// name (the channel, or "default channel"; postgres: the subscription).
    pub task: String,
    /// MySQL 8 replication channel / MariaDB connection name; `None` is the default one.
    pub channel: Option<String>,
    /// How a MySQL replica is stopped and started.
    pub flavor: MysqlFlavor,
    /// PostgreSQL logical replication's objects; `Some` exactly when `engine = "postgres"`.
    pub logical: Option<LogicalNames>,
}

/// `[replication] engine = "postgres"`: the publication on the source, the subscription on
/// the target and the slot it streams from on the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalNames {
    pub publication: String,
    pub subscription: String,
    /// The slot on the source; defaults to the subscription's name (CREATE SUBSCRIPTION's
    /// default slot name).
    pub slot: String,
}

/// Which statements drive a MySQL/MariaDB replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MysqlFlavor {
    /// RDS/Aurora when the server has `mysql.rds_stop_replication`, else community.
    #[default]
    Auto,
    /// `STOP REPLICA` / `STOP SLAVE` and their `START`.
    Community,
    /// `CALL mysql.rds_stop_replication` / `mysql.rds_start_replication` (RDS, Aurora).
    Rds,
}

pub use crate::event::ReplicationEngine;

/// The DNS record the applications follow.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsRecord {
    pub zone_id: Option<String>,
    pub name: String,
    pub record_type: String,
    pub ttl: u64,
    /// Value that points at the source (before the flip).
    pub source: String,
    /// Value that points at the target (after the flip).
    pub target: String,
    /// The set identifiers of the weighted sets pointing at the source and at the target
    /// (`[dns] source_set` / `target_set`, default `source` / `target`): a weighted stage
    /// writes exactly these two sets.
    pub source_set: String,
    pub target_set: String,
    /// Also ask this host's resolver.
    pub resolve: bool,
    /// A role assumed for the Route 53 calls only (the zone lives in another account).
    pub role_arn: Option<String>,
    /// Also ask the zone's authoritative name servers directly (`dns.authoritative`).
    pub authoritative: bool,
    /// Ask these servers (`ip:port`) as the authority instead of the zone's delegation set
    /// (a split-horizon setup, a test server).
    pub authoritative_servers: Vec<std::net::SocketAddr>,
}

/// A metric to poll and chart.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub namespace: String,
    pub stat: String,
    pub dimensions: Vec<(String, String)>,
    pub unit: Option<String>,
}

/// AWS settings (issue: drive a real migration).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// One endpoint for every service (an emulator).
    pub endpoint_url: Option<String>,
    /// The account the credentials must belong to (12 digits); a mismatch refuses to start.
    pub account: Option<String>,
    /// `[aws.endpoints]`: one endpoint per service (VPC interface endpoints).
    pub endpoints: AwsEndpoints,
}

/// `[aws.endpoints]`: an endpoint per service; a service not named uses the SDK's own
/// resolution (`AWS_ENDPOINT_URL_<SERVICE>`, then the regional endpoint).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AwsEndpoints {
    pub dms: Option<String>,
    pub cloudwatch: Option<String>,
    pub route53: Option<String>,
    pub logs: Option<String>,
    pub rds: Option<String>,
    pub sts: Option<String>,
}

impl AwsEndpoints {
    pub fn is_empty(&self) -> bool {
        self == &AwsEndpoints::default()
    }
}

/// `[share]`: how a shared session's approvals are held to account.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShareSettings {
    /// `approvers = "FILE"`: an authorized_keys file of the approvers' Ed25519 keys, each
    /// line's comment the approver's invite name; as written (relative to the plan file).
    pub approvers_file: Option<String>,
    /// The keys read from that file (by the program that loaded the plan, or from a
    /// transcript's header): when any is set, an approval must be signed by its
    /// approver's key.
    pub approvers: Vec<ApproverKey>,
}

/// One approver's public key: `key` as `ed25519:<base64>`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApproverKey {
    pub name: String,
    pub key: String,
}

/// Knobs of the embedded rehearsal world.
#[derive(Clone, Debug, PartialEq)]
pub struct RehearsalSettings {
    pub tables: Vec<String>,
    pub rows_per_table: u64,
    /// Application writes per second.
    pub write_rate: f64,
    /// Application clients following the CNAME, each caching it for the record's TTL.
    pub clients: u32,
    /// Normal replication lag.
    pub lag_ms: i64,
    /// How long a DNS change stays PENDING.
    pub dns_propagation_ms: i64,
    /// How often sources are polled.
    pub poll_ms: i64,
}

impl Default for RehearsalSettings {
    fn default() -> Self {
        RehearsalSettings {
            tables: vec!["customers".into(), "orders".into(), "payments".into()],
            rows_per_table: 400,
            write_rate: 40.0,
            clients: 6,
            lag_ms: 300,
            dns_propagation_ms: 2_000,
            poll_ms: 1_000,
        }
    }
}

/// A validated plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub source: Endpoint,
    pub target: Endpoint,
    pub replication: Option<Replication>,
    pub dns: Option<DnsRecord>,
    pub metrics: Vec<MetricDef>,
    pub aws: AwsSettings,
    pub rds: RdsSettings,
    pub rehearsal: RehearsalSettings,
    /// Pairing: whose keys sign approvals.
    pub share: ShareSettings,
    pub steps: Vec<Step>,
    /// `[[abort]]` conditions, in plan order.
    pub aborts: Vec<AbortCondition>,
    /// `[[notify]]` webhooks, in plan order.
    pub notify: Vec<Notify>,
    /// `[[probe]]` HTTP probes (gate inputs `probe.<name>`), in plan order.
    pub probes: Vec<probe::Probe>,
    /// `max_downtime` and `on_budget`.
    pub budget: Option<DowntimeBudget>,
    /// `deadline` or `window`.
    pub deadline: Option<Deadline>,
    /// The file's text, kept so a transcript can carry the exact plan it ran.
    pub source_text: String,
    /// SHA-256 of `source_text`, hex.
    pub hash: String,
}

impl Plan {
    pub fn task_name(&self) -> &str {
        self.replication
            .as_ref()
            .map(|r| r.task.as_str())
            .unwrap_or("?")
    }

    /// The replication stream in words: `task X` (DMS, rehearsal) or the native replica's
    /// channel.
    pub fn stream_name(&self) -> String {
        match &self.replication {
            Some(r) if r.engine == ReplicationEngine::Mysql => {
                format!("on the target ({})", r.task)
            }
            Some(r) => format!("task {}", r.task),
            None => "task ?".to_string(),
        }
    }

    pub fn dns_value(&self, to: &DnsTo) -> Option<String> {
        let dns = self.dns.as_ref();
        match to {
            DnsTo::Source => dns.map(|d| d.source.clone()),
            DnsTo::Target => dns.map(|d| d.target.clone()),
            DnsTo::Value(v) => Some(v.clone()),
        }
    }

    /// The steps that open and close the write-downtime window: the first freezing the
    /// source, and the first after it letting either side take writes again. Plans that
    /// freeze some other way (a shell command changing a parameter group) are found by the
    /// step ids `freeze` / `unfreeze`.
    pub fn downtime_steps(&self) -> (Option<usize>, Option<usize>) {
        let mut freeze = None;
        let mut unfreeze = None;
        for (i, s) in self.steps.iter().enumerate() {
            match s.action {
                Action::Freeze {
                    on: Side::Source, ..
                } if freeze.is_none() => freeze = Some(i),
                Action::Unfreeze { .. } if freeze.is_some() && unfreeze.is_none() => {
                    unfreeze = Some(i)
                }
                _ => {}
            }
        }
        let by_id = |word: &str| {
            self.steps
                .iter()
                .position(|s| s.id.eq_ignore_ascii_case(word))
        };
        (
            freeze.or_else(|| by_id("freeze")),
            unfreeze.or_else(|| by_id("unfreeze")),
        )
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// Whether every endpoint and the replication run in the embedded rehearsal world.
    pub fn is_rehearsal(&self) -> bool {
        self.source.engine == Engine::Rehearsal
            && self.target.engine == Engine::Rehearsal
            && self
                .replication
                .as_ref()
                .is_none_or(|r| r.engine == ReplicationEngine::Rehearsal)
    }

    /// The plan's metrics plus DMS's CDC metrics (which the DMS replication source reads for
    /// its lag figures).
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = DEFAULT_METRICS.iter().map(|s| s.to_string()).collect();
        for m in &self.metrics {
            if !names.contains(&m.name) {
                names.push(m.name.clone());
            }
        }
        names
    }
}

/// DMS's CloudWatch CDC metrics: the lag figures of the DMS replication reading.
pub const DEFAULT_METRICS: &[&str] =
    &["CDCLatencySource", "CDCLatencyTarget", "CDCIncomingChanges"];

/// The rehearsal plan shipped with (and embedded in) the program.
pub const REHEARSAL_PLAN: &str = include_str!("../../../../plans/rehearsal.toml");

// ---------------------------------------------------------------------------------------
// Errors

/// One problem in a plan file, located.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a plan file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into 1-based line and column (in characters).
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<PlanError>,
}

impl<'a> Locator<'a> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn push(&mut self, offset: usize, message: impl Into<String>, hint: Option<String>) {
        let (line, col) = self.position(offset);
        self.errors.push(PlanError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
            hint,
        });
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>, hint: Option<&str>) {
        self.push(spanned.span().start, message, hint.map(str::to_string));
    }

    /// Records a range or syntax problem at `spanned`; true when there was none.
    fn check<T>(&mut self, spanned: &Spanned<T>, result: Result<(), limits::Problem>) -> bool {
        self.check_at(spanned.span().start, result)
    }

    fn check_at(&mut self, offset: usize, result: Result<(), limits::Problem>) -> bool {
        match result {
            Ok(()) => true,
            Err(p) => {
                self.push(offset, p.message, Some(p.hint));
                false
            }
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// ---------------------------------------------------------------------------------------
// The file as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    max_downtime: Option<Spanned<String>>,
    on_budget: Option<Spanned<GuardAction>>,
    deadline: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    source: Option<Spanned<RawEndpoint>>,
    target: Option<Spanned<RawEndpoint>>,
    replication: Option<Spanned<RawReplication>>,
    dns: Option<RawDns>,
    #[serde(default)]
    metrics: Vec<Spanned<RawMetric>>,
    aws: Option<RawAws>,
    rds: Option<Spanned<RawRds>>,
    rehearsal: Option<RawRehearsal>,
    share: Option<RawShare>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    abort: Vec<Spanned<RawAbort>>,
    #[serde(default)]
    notify: Vec<Spanned<notify::RawNotify>>,
    #[serde(default)]
    probe: Vec<Spanned<probe::RawProbe>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbort {
    id: Spanned<String>,
    when: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    until: Option<Spanned<String>>,
    then: Option<Spanned<GuardAction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    approvers: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    engine: Engine,
    label: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    engine: Spanned<ReplicationEngine>,
    task: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    flavor: Option<Spanned<MysqlFlavor>>,
    publication: Option<Spanned<String>>,
    subscription: Option<Spanned<String>>,
    slot: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    zone_id: Option<Spanned<String>>,
    name: Spanned<String>,
    #[serde(rename = "type")]
    record_type: Option<Spanned<String>>,
    ttl: Option<Spanned<u64>>,
    source: Spanned<String>,
    target: Spanned<String>,
    source_set: Option<Spanned<String>>,
    target_set: Option<Spanned<String>>,
    #[serde(default)]
    resolve: bool,
    role_arn: Option<Spanned<String>>,
    #[serde(default)]
    authoritative: bool,
    authoritative_servers: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Spanned<String>,
    namespace: Option<Spanned<String>>,
    stat: Option<Spanned<String>>,
    dimensions: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    unit: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    region: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    endpoint_url: Option<Spanned<String>>,
    account: Option<Spanned<String>>,
    endpoints: Option<Spanned<RawAwsEndpoints>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRds {
    source: Option<Spanned<RawRdsResource>>,
    target: Option<Spanned<RawRdsResource>>,
    #[serde(default)]
    shared_parameter_group: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRdsResource {
    instance: Option<Spanned<String>>,
    cluster: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAwsEndpoints {
    dms: Option<Spanned<String>>,
    cloudwatch: Option<Spanned<String>>,
    route53: Option<Spanned<String>>,
    logs: Option<Spanned<String>>,
    rds: Option<Spanned<String>>,
    sts: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRehearsal {
    tables: Option<Spanned<Vec<Spanned<String>>>>,
    rows_per_table: Option<Spanned<u64>>,
    write_rate: Option<Spanned<f64>>,
    clients: Option<Spanned<u32>>,
    lag: Option<Spanned<String>>,
    dns_propagation: Option<Spanned<String>>,
    poll: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    #[serde(default)]
    gates: Vec<Spanned<String>>,
    action: Option<Spanned<RawAction>>,
    undo: Option<Spanned<RawAction>>,
    #[serde(default)]
    irreversible: bool,
    confirm: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    approvals: Option<Spanned<u32>>,
    #[serde(default)]
    on_timeout: GuardAction,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawAction {
    None,
    Manual {
        instructions: String,
    },
    Sql {
        on: Side,
        statement: String,
    },
    Freeze {
        on: Side,
        #[serde(default)]
        method: FreezeMethod,
    },
    Unfreeze {
        on: Side,
        #[serde(default)]
        method: FreezeMethod,
    },
    Replication {
        op: RawReplicationOp,
    },
    #[serde(rename = "sync-sequences")]
    SyncSequences {
        #[serde(default)]
        margin: Option<i64>,
    },
    Dns {
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        weights: Option<RawWeights>,
        #[serde(default = "yes")]
        wait: bool,
    },
    Shell {
        command: String,
    },
    Http(http::RawHttp),
}

/// `weights = { source = 95, target = 5 }` or (an undo) `weights = "previous"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawWeights {
    Word(String),
    Table(RawWeightTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeightTable {
    source: i64,
    target: i64,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawReplicationOp {
    Stop,
    Start,
}

const DEFAULT_TIMEOUT_MS: i64 = 10 * 60 * 1000;

/// Reads and validates a plan file.
pub fn load(path: &std::path::Path) -> Result<Plan, PlanErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        PlanErrors(vec![PlanError {
            file: file.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read the plan: {e}"),
            hint: Some("check the path, or run `cutover rehearse` for the built-in plan".into()),
        }])
    })?;
    parse(&file, &text)
}

/// Parses and validates a plan from text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Plan, PlanErrors> {
    let mut loc = Locator {
        file,
        text,
        errors: Vec::new(),
    };
    let raw: RawPlan = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map(|r: Range<usize>| r.start).unwrap_or(0);
            let message = e.message().trim().to_string();
            let hint = hint_for_toml_error(&message);
            loc.push(offset, message, hint);
            return Err(PlanErrors(loc.errors));
        }
    };

    let name = plan_name(&mut loc, raw.name.as_ref());
    if let Some(d) = &raw.description {
        loc.check(
            d,
            limits::shown_text("the plan's description", d.get_ref(), true),
        );
    }
    let source = endpoint(&mut loc, raw.source.as_ref(), "source");
    let target = endpoint(&mut loc, raw.target.as_ref(), "target");
    let replication = raw.replication.map(|r| {
        replication(
            &mut loc,
            r,
            [source.as_ref(), target.as_ref()].map(|e| e.map(|e| e.engine)),
        )
    });
    let dns = raw.dns.map(|d| dns_record(&mut loc, d));
    let metrics = metrics(&mut loc, raw.metrics);
    let aws = raw
        .aws
        .map(|a| aws_settings(&mut loc, a))
        .unwrap_or_default();
    let rds = rds_settings(&mut loc, raw.rds);
    let rehearsal = rehearsal_settings(&mut loc, raw.rehearsal);
    let share = share_settings(&mut loc, raw.share);
    let probes = probe::probes(&mut loc, &raw.probe);
    let sections = Sections {
        source: source.as_ref(),
        target: target.as_ref(),
        replication: replication.as_ref(),
        dns: dns.as_ref(),
        metrics: &metrics,
        rds: &rds,
        probes: &probes,
    };
    let steps = steps(&mut loc, &raw.step, &sections);
    let aborts = aborts(&mut loc, &raw.abort, &sections, &steps);
    let notify = notify::notifies(&mut loc, &raw.notify);
    let budget = downtime_budget(&mut loc, raw.max_downtime.as_ref(), raw.on_budget.as_ref());
    let deadline = deadline(&mut loc, raw.deadline.as_ref(), raw.window.as_ref());

    if !loc.errors.is_empty() {
        return Err(PlanErrors(loc.errors));
    }
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(Plan {
        name,
        description: raw.description.map(Spanned::into_inner),
        source: source.expect("no errors means the endpoint parsed"),
        target: target.expect("no errors means the endpoint parsed"),
        replication,
        dns,
        metrics,
        aws,
        rds,
        rehearsal,
        share,
        steps,
        aborts,
        notify,
        probes,
        budget,
        deadline,
        source_text: text.to_string(),
        hash,
    })
}

/// The sections a step may refer to: its gates need their sources, its actions their
/// backends.
struct Sections<'a> {
    source: Option<&'a Endpoint>,
    target: Option<&'a Endpoint>,
    replication: Option<&'a Replication>,
    dns: Option<&'a DnsRecord>,
    metrics: &'a [MetricDef],
    rds: &'a RdsSettings,
    probes: &'a [probe::Probe],
}

impl Sections<'_> {
    fn endpoint(&self, side: Side) -> Option<&Endpoint> {
        match side {
            Side::Source => self.source,
            Side::Target => self.target,
        }
    }
}

fn plan_name(loc: &mut Locator<'_>, raw: Option<&Spanned<String>>) -> String {
    match raw {
        Some(n) if !n.get_ref().trim().is_empty() => {
            loc.check(n, limits::shown_text("the plan's name", n.get_ref(), false));
            n.get_ref().clone()
        }
        Some(n) => {
            loc.at(
                n,
                "the plan's name is empty",
                Some("give the plan a short name, e.g. name = \"orders-to-aurora\""),
            );
            String::new()
        }
        None => {
            loc.push(
                0,
                "the plan has no name",
                Some("add name = \"...\" at the top of the file".into()),
            );
            String::new()
        }
    }
}

fn replication(
    loc: &mut Locator<'_>,
    raw: Spanned<RawReplication>,
    endpoints: [Option<Engine>; 2],
) -> Replication {
    let span = raw.span().start;
    let r = raw.into_inner();
    let engine = *r.engine.get_ref();
    let native = engine == ReplicationEngine::Mysql;
    if native {
        native_replication(loc, &r, endpoints);
    }
    if !native {
        for (given, what) in [
            (r.channel.as_ref().map(|c| c.span()), "channel"),
            (r.flavor.as_ref().map(|f| f.span()), "flavor"),
        ] {
            if let Some(at) = given {
                loc.push(
                    at.start,
                    format!(
                        "{what} is for engine = \"mysql\", not \"{}\"",
                        engine.as_str()
                    ),
                    Some(format!("remove {what}, or set engine = \"mysql\"")),
                );
            }
        }
    }
    if engine == ReplicationEngine::Postgres {
        return logical_replication(loc, r, endpoints);
    }
    for (field, value) in [
        ("publication", &r.publication),
        ("subscription", &r.subscription),
        ("slot", &r.slot),
    ] {
        if let Some(v) = value {
            loc.at(
                v,
                format!(
                    "`{field}` belongs to engine = \"postgres\", not \"{}\"",
                    engine.as_str()
                ),
                Some("remove it, or set engine = \"postgres\""),
            );
        }
    }
    let task = match (&r.task, native) {
        (Some(task), true) => {
            loc.at(
                task,
                "a native replica has no task: it is the [target] replicating from the [source]",
                Some("remove task; name a MySQL 8 channel / MariaDB connection with channel = \"...\" if it is not the default one"),
            );
            String::new()
        }
        (None, true) => match &r.channel {
            Some(c) => format!("channel {}", c.get_ref()),
            None => "default channel".to_string(),
        },
        (Some(task), false) => {
            check_task(loc, task);
            task.get_ref().clone()
        }
        (None, false) => {
            loc.push(
                span,
                format!(
                    "[replication] engine = \"{}\" needs a task",
                    engine.as_str()
                ),
                Some("add task = \"<task identifier or ARN>\"".into()),
            );
            String::new()
        }
    };
    Replication {
        engine,
        task,
        channel: r.channel.map(Spanned::into_inner),
        flavor: r.flavor.map(Spanned::into_inner).unwrap_or_default(),
        logical: None,
    }
}

/// `engine = "postgres"`: a publication, a subscription, optionally the slot; both endpoints
/// PostgreSQL.
fn logical_replication(
    loc: &mut Locator<'_>,
    r: RawReplication,
    endpoints: [Option<Engine>; 2],
) -> Replication {
    if let Some(task) = &r.task {
        loc.at(
            task,
            "engine = \"postgres\" streams through a subscription, not a task",
            Some("remove task and name publication = \"...\" and subscription = \"...\""),
        );
    }
    for (side, endpoint) in ["source", "target"].into_iter().zip(endpoints) {
        if let Some(e) = endpoint
            && e != Engine::Postgres
        {
            loc.at(
                &r.engine,
                format!(
                    "engine = \"postgres\" replicates between PostgreSQL servers, but [{side}] has engine = \"{}\"",
                    match e {
                        Engine::Rehearsal => "rehearsal",
                        Engine::Mysql => "mysql",
                        Engine::Postgres => "postgres",
                    }
                ),
                Some("give [source] and [target] postgres:// urls, or choose another replication engine"),
            );
        }
    }
    let mut name = |field: &str, value: Option<Spanned<String>>, example: &str| -> Option<String> {
        let Some(v) = value else {
            loc.at(
                &r.engine,
                format!("engine = \"postgres\" needs `{field}`"),
                Some(example),
            );
            return None;
        };
        let text = v.get_ref();
        // PostgreSQL's NAMEDATALEN is 64: a longer name would be truncated silently.
        let valid = !text.is_empty()
            && text.len() <= 63
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !text.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            loc.at(
                &v,
                format!(
                    "the {field} name \"{}\" is not a plain PostgreSQL identifier",
                    text.escape_debug()
                ),
                Some("use letters, digits and _ (not starting with a digit), at most 63 bytes, as the server lists it"),
            );
        }
        Some(v.into_inner())
    };
    let publication = name(
        "publication",
        r.publication,
        "add publication = \"<name>\" (the source's CREATE PUBLICATION)",
    );
    let subscription = name(
        "subscription",
        r.subscription,
        "add subscription = \"<name>\" (the target's CREATE SUBSCRIPTION)",
    );
    let slot = match r.slot {
        Some(v) => name("slot", Some(v), ""),
        None => subscription.clone(),
    };
    let subscription = subscription.unwrap_or_default();
    Replication {
        engine: ReplicationEngine::Postgres,
        task: subscription.clone(),
        channel: None,
        flavor: MysqlFlavor::default(),
        logical: Some(LogicalNames {
            publication: publication.unwrap_or_default(),
            subscription,
            slot: slot.unwrap_or_default(),
        }),
    }
}

/// A binlog replica: both endpoints MySQL/MariaDB, a channel name the server accepts.
fn native_replication(loc: &mut Locator<'_>, r: &RawReplication, endpoints: [Option<Engine>; 2]) {
    for (engine, side) in endpoints.into_iter().zip(["source", "target"]) {
        if let Some(e) = engine
            && e != Engine::Mysql
        {
            loc.at(
                &r.engine,
                format!("engine = \"mysql\" replicates between MySQL/MariaDB servers, but [{side}] is not one"),
                Some(&format!("give [{side}] engine = \"mysql\" and a mysql:// url, or use another replication engine")),
            );
        }
    }
    if let Some(c) = &r.channel {
        let name = c.get_ref();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            loc.at(
                c,
                format!(
                    "the channel \"{}\" is not a channel name",
                    name.escape_debug()
                ),
                Some("use 1 to 64 letters, digits, _ or -, or remove channel for the default one"),
            );
        }
    }
}

fn check_task(loc: &mut Locator<'_>, task: &Spanned<String>) {
    let text = task.get_ref();
    if text.trim().is_empty() {
        loc.at(
            task,
            "the replication task is empty",
            Some("name the task by identifier or ARN"),
        );
    } else if text.len() > 2048
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:/.".contains(c))
    {
        loc.at(
            task,
            format!(
                "the replication task \"{}\" is not an identifier or ARN",
                text.escape_debug()
            ),
            Some("name the task by identifier (letters, digits and -) or ARN (arn:aws:dms:...)"),
        );
    }
}

/// A Route 53 set identifier: 1 to 128 printable characters.
fn set_identifier(
    loc: &mut Locator<'_>,
    key: &str,
    value: Option<Spanned<String>>,
    default: &str,
) -> String {
    let Some(v) = value else {
        return default.to_string();
    };
    let id = v.get_ref();
    if id.is_empty() || id.chars().count() > 128 || id.chars().any(|c| c.is_control()) {
        loc.at(
            &v,
            format!(
                "[dns] {key} \"{}\" is not a Route 53 set identifier",
                id.escape_debug()
            ),
            Some("use 1 to 128 printable characters, e.g. the identifier `aws route53 list-resource-record-sets` shows"),
        );
    }
    v.into_inner()
}

fn dns_record(loc: &mut Locator<'_>, d: RawDns) -> DnsRecord {
    let record_type = d
        .record_type
        .as_ref()
        .map(|t| t.get_ref().to_uppercase())
        .unwrap_or_else(|| "CNAME".into());
    if !matches!(record_type.as_str(), "CNAME" | "A" | "AAAA")
        && let Some(t) = &d.record_type
    {
        loc.at(
            t,
            format!("unsupported record type \"{}\"", t.get_ref()),
            Some("use CNAME, A or AAAA"),
        );
    }
    if d.name.get_ref().trim().is_empty() {
        loc.at(
            &d.name,
            "the DNS record name is empty",
            Some("name the record the applications use"),
        );
    } else {
        loc.check(&d.name, limits::dns_name("[dns] name", d.name.get_ref()));
    }
    for (what, value) in [("[dns] source", &d.source), ("[dns] target", &d.target)] {
        loc.check(
            value,
            limits::dns_value(what, &record_type, value.get_ref()),
        );
    }
    if let Some(z) = &d.zone_id {
        let id = z.get_ref();
        if id.is_empty()
            || id.len() > 64
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '/')
        {
            loc.at(
                z,
                format!(
                    "[dns] zone_id \"{}\" is not a hosted zone id",
                    id.escape_debug()
                ),
                Some("e.g. zone_id = \"Z0123456789ABCDEFGHIJ\" (`aws route53 list-hosted-zones`)"),
            );
        }
    }
    if let Some(t) = &d.ttl {
        loc.check(t, limits::int("[dns] ttl", *t.get_ref(), &limits::TTL_S));
    }
    if let Some(r) = &d.role_arn {
        loc.check(r, limits::role_arn("[dns] role_arn", r.get_ref()));
    }
    let mut authoritative_servers = Vec::new();
    if let Some(servers) = &d.authoritative_servers {
        for text in servers.get_ref() {
            match text.parse::<std::net::SocketAddr>() {
                Ok(addr) => authoritative_servers.push(addr),
                Err(_) => loc.at(
                    servers,
                    format!(
                        "[dns] authoritative_servers: \"{}\" is not an ip:port address",
                        text.escape_debug()
                    ),
                    Some("e.g. authoritative_servers = [\"192.0.2.53:53\"]"),
                ),
            }
        }
        if !d.authoritative {
            loc.at(
                servers,
                "[dns] authoritative_servers is set but authoritative is not",
                Some("add authoritative = true, or remove authoritative_servers"),
            );
        }
    }
    DnsRecord {
        zone_id: d.zone_id.map(Spanned::into_inner),
        name: d.name.into_inner(),
        record_type,
        ttl: d.ttl.map_or(60, Spanned::into_inner),
        source: d.source.into_inner(),
        target: d.target.into_inner(),
        source_set: set_identifier(loc, "source_set", d.source_set, "source"),
        target_set: set_identifier(loc, "target_set", d.target_set, "target"),
        resolve: d.resolve,
        role_arn: d.role_arn.map(Spanned::into_inner),
        authoritative: d.authoritative,
        authoritative_servers,
    }
}

fn metrics(loc: &mut Locator<'_>, raw: Vec<Spanned<RawMetric>>) -> Vec<MetricDef> {
    if let Some(extra) = raw.get(*limits::METRICS.end()) {
        loc.at(
            extra,
            format!(
                "the plan polls {} metrics, more than {}",
                raw.len(),
                limits::METRICS.end()
            ),
            Some("keep the metrics the gates and the operator need"),
        );
    }
    raw.into_iter()
        .map(|m| {
            let m = m.into_inner();
            if m.name.get_ref().trim().is_empty() {
                loc.at(
                    &m.name,
                    "a metric has an empty name",
                    Some("name the CloudWatch metric, e.g. name = \"CDCLatencyTarget\""),
                );
            }
            check_metric(loc, &m);
            MetricDef {
                name: m.name.into_inner(),
                namespace: m
                    .namespace
                    .map_or_else(|| "AWS/DMS".into(), Spanned::into_inner),
                stat: m.stat.map_or_else(|| "Average".into(), Spanned::into_inner),
                dimensions: m
                    .dimensions
                    .map(|d| d.into_inner().into_iter().collect())
                    .unwrap_or_default(),
                unit: m.unit.map(Spanned::into_inner),
            }
        })
        .collect()
}

/// A metric's texts are printable and bounded; its dimensions few, named and valued.
fn check_metric(loc: &mut Locator<'_>, m: &RawMetric) {
    loc.check(
        &m.name,
        limits::shown_text("a metric's name", m.name.get_ref(), false),
    );
    for (what, v) in [
        ("a metric's namespace", &m.namespace),
        ("a metric's stat", &m.stat),
        ("a metric's unit", &m.unit),
    ] {
        if let Some(v) = v {
            let r = if v.get_ref().trim().is_empty() {
                Err(limits::Problem {
                    message: format!("{what} is empty"),
                    hint: "remove the field for the default, or fill it in".into(),
                })
            } else {
                limits::shown_text(what, v.get_ref(), false)
            };
            loc.check(v, r);
        }
    }
    if let Some(d) = &m.dimensions {
        let n = d.get_ref().len();
        loc.check(
            d,
            limits::int("a metric's dimensions: the count", n, &limits::DIMENSIONS),
        );
        let bad = d.get_ref().iter().find(|(k, v)| {
            k.trim().is_empty()
                || v.trim().is_empty()
                || limits::shown_text("", k, false).is_err()
                || limits::shown_text("", v, false).is_err()
        });
        if let Some((k, _)) = bad {
            loc.at(
                d,
                format!(
                    "the metric dimension \"{}\" has an empty or unprintable name or value",
                    k.escape_debug()
                ),
                Some("e.g. dimensions = { DBInstanceIdentifier = \"orders\" }"),
            );
        }
    }
}

fn rds_settings(loc: &mut Locator<'_>, raw: Option<Spanned<RawRds>>) -> RdsSettings {
    let Some(raw) = raw else {
        return RdsSettings::default();
    };
    let raw = raw.into_inner();
    let mut resource = |side: &str, r: Option<Spanned<RawRdsResource>>| -> Option<RdsResource> {
        let r = r?;
        let span = r.span();
        let r = r.into_inner();
        let (kind, id) = match (r.instance, r.cluster) {
            (Some(i), None) => ("instance", i),
            (None, Some(c)) => ("cluster", c),
            _ => {
                loc.push(
                    span.start,
                    format!("[rds] {side} names neither exactly one instance nor one cluster"),
                    Some("write { instance = \"shop-mysql\" } for RDS, { cluster = \"shop-aurora\" } for Aurora".into()),
                );
                return None;
            }
        };
        let ok = (1..=63).contains(&id.get_ref().len())
            && id.get_ref().starts_with(|c: char| c.is_ascii_alphabetic())
            && id
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !id.get_ref().ends_with('-')
            && !id.get_ref().contains("--");
        if !ok {
            loc.at(
                &id,
                format!(
                    "[rds] {side} {kind} \"{}\" is not an RDS identifier",
                    id.get_ref().escape_debug()
                ),
                Some("1 to 63 letters, digits and single hyphens, starting with a letter (`aws rds describe-db-instances`)"),
            );
        }
        let id = id.into_inner();
        Some(if kind == "instance" {
            RdsResource::Instance(id)
        } else {
            RdsResource::Cluster(id)
        })
    };
    let source = resource("source", raw.source);
    let target = resource("target", raw.target);
    RdsSettings {
        source,
        target,
        shared_parameter_group: raw.shared_parameter_group,
    }
}

fn aws_settings(loc: &mut Locator<'_>, a: RawAws) -> AwsSettings {
    if let Some(r) = &a.region {
        loc.check(r, limits::region(r.get_ref()));
    }
    if let Some(p) = &a.profile {
        let r = if p.get_ref().trim().is_empty() {
            Err(limits::Problem {
                message: "[aws] profile is empty".into(),
                hint: "name a profile of ~/.aws/config, or remove the field".into(),
            })
        } else {
            limits::shown_text("[aws] profile", p.get_ref(), false)
        };
        loc.check(p, r);
    }
    if let Some(u) = &a.endpoint_url {
        loc.check(u, limits::endpoint_url("[aws] endpoint_url", u.get_ref()));
    }
    if let Some(acct) = &a.account {
        loc.check(acct, limits::account(acct.get_ref()));
    }
    let mut endpoints = AwsEndpoints::default();
    if let Some(e) = &a.endpoints {
        if a.endpoint_url.is_some() {
            loc.at(
                e,
                "[aws.endpoints] and [aws] endpoint_url are both set",
                Some("endpoint_url sends every service to one endpoint (an emulator); for VPC endpoints name each service in [aws.endpoints] and remove endpoint_url"),
            );
        }
        let raw = e.get_ref();
        for (name, value, slot) in [
            ("dms", &raw.dms, &mut endpoints.dms),
            ("cloudwatch", &raw.cloudwatch, &mut endpoints.cloudwatch),
            ("route53", &raw.route53, &mut endpoints.route53),
            ("logs", &raw.logs, &mut endpoints.logs),
            ("rds", &raw.rds, &mut endpoints.rds),
            ("sts", &raw.sts, &mut endpoints.sts),
        ] {
            if let Some(v) = value {
                loc.check(
                    v,
                    limits::endpoint_url(&format!("[aws.endpoints] {name}"), v.get_ref()),
                );
                *slot = Some(v.get_ref().clone());
            }
        }
    }
    AwsSettings {
        region: a.region.map(Spanned::into_inner),
        profile: a.profile.map(Spanned::into_inner),
        endpoint_url: a.endpoint_url.map(Spanned::into_inner),
        account: a.account.map(Spanned::into_inner),
        endpoints,
    }
}

fn share_settings(loc: &mut Locator<'_>, raw: Option<RawShare>) -> ShareSettings {
    let Some(r) = raw else {
        return ShareSettings::default();
    };
    if let Some(a) = &r.approvers {
        let result = if a.get_ref().trim().is_empty() {
            Err(limits::Problem {
                message: "[share] approvers is empty".into(),
                hint: "name an authorized_keys file of the approvers' ssh-ed25519 keys (each \
                       line's comment the approver's name), or remove the field"
                    .into(),
            })
        } else {
            limits::shown_text("[share] approvers", a.get_ref(), false)
        };
        loc.check(a, result);
    }
    ShareSettings {
        approvers_file: r.approvers.map(Spanned::into_inner),
        approvers: Vec::new(),
    }
}

fn rehearsal_settings(loc: &mut Locator<'_>, raw: Option<RawRehearsal>) -> RehearsalSettings {
    let mut rehearsal = RehearsalSettings::default();
    let Some(r) = raw else {
        return rehearsal;
    };
    if let Some(t) = r.tables {
        rehearsal.tables = rehearsal_tables(loc, &t);
    }
    if let Some(n) = &r.rows_per_table
        && loc.check(
            n,
            limits::int("rows_per_table", *n.get_ref(), &limits::ROWS_PER_TABLE),
        )
    {
        rehearsal.rows_per_table = *n.get_ref();
    }
    if let Some(w) = &r.write_rate
        && loc.check(
            w,
            limits::float("write_rate", *w.get_ref(), &limits::WRITE_RATE),
        )
    {
        rehearsal.write_rate = *w.get_ref();
    }
    if let Some(c) = &r.clients
        && loc.check(c, limits::int("clients", *c.get_ref(), &limits::CLIENTS))
    {
        rehearsal.clients = *c.get_ref();
    }
    for (field, what, range, slot) in [
        (&r.lag, "lag", limits::LAG_MS, &mut rehearsal.lag_ms),
        (
            &r.dns_propagation,
            "dns_propagation",
            limits::DNS_PROPAGATION_MS,
            &mut rehearsal.dns_propagation_ms,
        ),
        (&r.poll, "poll", limits::POLL_MS, &mut rehearsal.poll_ms),
    ] {
        if let Some(d) = field
            && let Some(ms) = bounded_duration(loc, what, d, &range)
        {
            *slot = ms;
        }
    }
    rehearsal
}

/// `[rehearsal] tables`: SQL identifiers (the world builds its statements from them),
/// distinct, not the heartbeat table, 1 to 16 of them.
fn rehearsal_tables(loc: &mut Locator<'_>, raw: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    let tables = raw.get_ref();
    loc.check(
        raw,
        limits::int("the number of tables", tables.len(), &limits::TABLES),
    );
    let mut seen: Vec<String> = Vec::new();
    for t in tables {
        let name = t.get_ref();
        if !loc.check(t, limits::sql_identifier("the rehearsal table", name)) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if lower == "cutover_heartbeat" || seen.contains(&lower) {
            loc.at(
                t,
                format!("the rehearsal table \"{name}\" is listed twice or is the heartbeat table"),
                Some("name each table once; cutover_heartbeat is the world's own"),
            );
        }
        seen.push(lower);
    }
    tables.iter().map(|t| t.get_ref().clone()).collect()
}

fn steps(loc: &mut Locator<'_>, raw: &[Spanned<RawStep>], sections: &Sections<'_>) -> Vec<Step> {
    if raw.is_empty() {
        loc.push(
            loc.text.len(),
            "the plan has no steps",
            Some("add at least one [[step]] with id, gates, action and confirm".into()),
        );
    }
    if let Some(extra) = raw.get(*limits::STEPS.end()) {
        loc.at(
            extra,
            format!(
                "the plan has {} steps, more than {}",
                raw.len(),
                limits::STEPS.end()
            ),
            Some("split the runbook into several plans"),
        );
    }
    // Each id with the offset of its first use, to point a duplicate at the original.
    let mut seen_ids: Vec<(String, usize)> = Vec::new();
    raw.iter()
        .map(|s| step(loc, s, &mut seen_ids, sections))
        .collect()
}

fn step(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawStep>,
    seen_ids: &mut Vec<(String, usize)>,
    sections: &Sections<'_>,
) -> Step {
    let s = raw.get_ref();
    let id = plain_id(loc, "step", &s.id, seen_ids);
    let timeout_ms = match &s.timeout {
        Some(t) => bounded_duration(loc, "the step's timeout", t, &limits::TIMEOUT_MS)
            .unwrap_or(DEFAULT_TIMEOUT_MS),
        None => DEFAULT_TIMEOUT_MS,
    };
    let gates = step_gates(loc, &s.gates, sections, timeout_ms);
    if let Some(extra) = s.gates.get(*limits::GATES.end()) {
        loc.at(
            extra,
            format!(
                "step \"{id}\" has {} gates, more than {}",
                s.gates.len(),
                limits::GATES.end()
            ),
            Some("split the step, or keep the gates that decide it"),
        );
    }
    let action = match &s.action {
        Some(a) => convert_action(loc, a, sections),
        None => Action::None,
    };
    let undo = s.undo.as_ref().map(|u| convert_action(loc, u, sections));
    check_undo(loc, raw, &id, &action, undo.is_some());
    check_previous_weights(loc, raw, &action, undo.as_ref());
    let confirm = confirm_phrase(loc, s, &id);
    if let Some(t) = &s.title {
        loc.check(
            t,
            limits::shown_text("the step's title", t.get_ref(), false),
        );
    }
    if let Some(d) = &s.description {
        loc.check(
            d,
            limits::shown_text("the step's description", d.get_ref(), true),
        );
    }
    let approvals = match &s.approvals {
        Some(a)
            if loc.check(
                a,
                limits::int("approvals", *a.get_ref(), &limits::APPROVALS),
            ) =>
        {
            *a.get_ref()
        }
        _ => 0,
    };
    Step {
        title: s
            .title
            .as_ref()
            .map_or_else(|| id.clone(), |t| t.get_ref().clone()),
        id,
        description: s.description.as_ref().map(|d| d.get_ref().clone()),
        gates,
        action,
        undo,
        irreversible: s.irreversible,
        confirm,
        timeout_ms,
        approvals,
        on_timeout: s.on_timeout,
    }
}

/// A step's or an abort's id: a plain name, unique among its kind (`what`).
fn plain_id(
    loc: &mut Locator<'_>,
    what: &str,
    raw: &Spanned<String>,
    seen_ids: &mut Vec<(String, usize)>,
) -> String {
    let id = raw.get_ref().clone();
    if id.is_empty()
        || id.len() > limits::IDENTIFIER_CHARS
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        loc.at(
            raw,
            format!("{what} id \"{id}\" is not a plain name"),
            Some("use letters, digits, - and _ only (at most 64), e.g. id = \"freeze-writes\""),
        );
    }
    if let Some((_, first)) = seen_ids.iter().find(|(seen, _)| *seen == id) {
        let (line, _) = loc.position(*first);
        loc.at(
            raw,
            format!("duplicate {what} id \"{id}\""),
            Some(&format!(
                "the first {what} with this id is at line {line}; {what} ids must be unique"
            )),
        );
    } else {
        seen_ids.push((id.clone(), raw.span().start));
    }
    id
}

fn step_gates(
    loc: &mut Locator<'_>,
    raw: &[Spanned<String>],
    sections: &Sections<'_>,
    timeout_ms: i64,
) -> Vec<Gate> {
    let mut gates = Vec::new();
    for g in raw {
        // Columns inside the string: the value starts one past the opening quote.
        let base = g.span().start + 1;
        match gate_expr::parse(g.get_ref(), &dns_values(sections)) {
            Ok(gate) => {
                let mut gate = engine_freshness(gate, sections);
                check_gate_sources(loc, base, &gate, sections);
                probe_freshness(&mut gate, sections);
                // A window as long as the step's timeout can never be satisfied in time.
                if gate.sustain_ms >= timeout_ms {
                    loc.push(
                        base,
                        format!(
                            "the gate must hold for {} but the step times out after {}",
                            limits::show_ms(gate.sustain_ms),
                            limits::show_ms(timeout_ms)
                        ),
                        Some("shorten the gate's `for`, or give the step a longer timeout".into()),
                    );
                }
                gates.push(gate);
            }
            Err(e) => loc.push(base + e.offset, e.message, e.hint),
        }
    }
    gates
}

/// The gate's default freshness for the plan's replication engine.
fn engine_freshness(mut gate: Gate, sections: &Sections<'_>) -> Gate {
    gate.default_fresh_ms = gate
        .input
        .default_fresh_ms_for(sections.replication.map(|r| r.engine));
    gate
}

/// The values `dns.source` and `dns.target` stand for in a gate's right-hand side.
fn dns_values<'a>(sections: &'a Sections<'_>) -> impl Fn(&str) -> Option<String> + 'a {
    move |var: &str| match var {
        "dns.source" => sections.dns.map(|d| d.source.clone()),
        "dns.target" => sections.dns.map(|d| d.target.clone()),
        _ => None,
    }
}

/// `[[abort]]` tables: each a located id, a condition in the gate language, the steps that
/// bound when it is armed, and what it does.
fn aborts(
    loc: &mut Locator<'_>,
    raw: &[Spanned<RawAbort>],
    sections: &Sections<'_>,
    steps: &[Step],
) -> Vec<AbortCondition> {
    if let Some(extra) = raw.get(*limits::ABORTS.end()) {
        loc.at(
            extra,
            format!(
                "the plan has {} abort conditions, more than {}",
                raw.len(),
                limits::ABORTS.end()
            ),
            Some("keep the conditions that decide an abort; merge the others"),
        );
    }
    let mut seen_ids: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for a in raw {
        let r = a.get_ref();
        let id = plain_id(loc, "abort", &r.id, &mut seen_ids);
        let step_ref = |loc: &mut Locator<'_>, field: &str, s: &Option<Spanned<String>>| {
            let s = s.as_ref()?;
            let found = steps.iter().position(|st| st.id == *s.get_ref());
            if found.is_none() {
                let known: Vec<&str> = steps.iter().map(|st| st.id.as_str()).collect();
                loc.at(
                    s,
                    format!(
                        "abort \"{id}\": `{field}` names no step \"{}\"",
                        s.get_ref()
                    ),
                    Some(&format!(
                        "use one of the plan's step ids: {}",
                        known.join(", ")
                    )),
                );
            }
            found
        };
        let from = step_ref(loc, "from", &r.from);
        let until = step_ref(loc, "until", &r.until);
        if let (Some(f), Some(u), Some(at)) = (from, until, &r.until)
            && u < f
        {
            loc.at(
                at,
                format!(
                    "abort \"{id}\" is armed until step \"{}\", which comes before its `from` step \"{}\"",
                    steps[u].id, steps[f].id
                ),
                Some("swap `from` and `until`, or name a later step in `until`"),
            );
        }
        let then = match &r.then {
            Some(t) => *t.get_ref(),
            None => {
                loc.at(
                    &r.id,
                    format!("abort \"{id}\" does not say what to do when it fires"),
                    Some("add then = \"rollback\" or then = \"hold\""),
                );
                GuardAction::Hold
            }
        };
        let Some(when) = &r.when else {
            loc.at(
                &r.id,
                format!("abort \"{id}\" has no condition"),
                Some("add when = \"<gate expression>\", e.g. when = \"replication.lag_s > 30 for 10s\""),
            );
            continue;
        };
        let base = when.span().start + 1;
        match gate_expr::parse(when.get_ref(), &dns_values(sections)) {
            Ok(gate) => {
                let mut gate = engine_freshness(gate, sections);
                check_gate_sources(loc, base, &gate, sections);
                probe_freshness(&mut gate, sections);
                out.push(AbortCondition {
                    id,
                    when: gate,
                    from,
                    until,
                    then,
                });
            }
            Err(e) => loc.push(base + e.offset, e.message, e.hint),
        }
    }
    out
}

/// `max_downtime` and `on_budget` (which means nothing without it).
fn downtime_budget(
    loc: &mut Locator<'_>,
    max_downtime: Option<&Spanned<String>>,
    on_budget: Option<&Spanned<GuardAction>>,
) -> Option<DowntimeBudget> {
    let Some(max) = max_downtime else {
        if let Some(o) = on_budget {
            loc.at(
                o,
                "`on_budget` without `max_downtime`: there is no budget to spend",
                Some("add max_downtime = \"5m\", or remove on_budget"),
            );
        }
        return None;
    };
    let max_ms = bounded_duration(loc, "max_downtime", max, &limits::MAX_DOWNTIME_MS)?;
    Some(DowntimeBudget {
        max_ms,
        on_budget: on_budget.map(|o| *o.get_ref()).unwrap_or_default(),
    })
}

/// `deadline` (an RFC 3339 instant) or `window` (a duration from the session's start).
fn deadline(
    loc: &mut Locator<'_>,
    deadline: Option<&Spanned<String>>,
    window: Option<&Spanned<String>>,
) -> Option<Deadline> {
    match (deadline, window) {
        (Some(_), Some(w)) => {
            loc.at(
                w,
                "the plan sets both `deadline` and `window`",
                Some("keep one: deadline = \"2026-12-01T23:00:00Z\" or window = \"45m\""),
            );
            None
        }
        (Some(d), None) => match chrono::DateTime::parse_from_rfc3339(d.get_ref().trim()) {
            Ok(t) => Some(Deadline::At(t.timestamp_millis())),
            Err(e) => {
                loc.at(
                    d,
                    format!("bad deadline \"{}\": {e}", d.get_ref()),
                    Some("write an RFC 3339 instant with its offset, e.g. \"2026-12-01T23:00:00Z\" or \"2026-12-02T01:00:00+02:00\""),
                );
                None
            }
        },
        (None, Some(w)) => {
            bounded_duration(loc, "window", w, &limits::WINDOW_MS).map(Deadline::Window)
        }
        (None, None) => None,
    }
}

/// A step that changes the world needs a way back (or to say there is none); an undo
/// without an action has nothing to undo.
fn check_undo(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawStep>,
    id: &str,
    action: &Action,
    has_undo: bool,
) {
    let s = raw.get_ref();
    if action.changes_state() && !has_undo && !s.irreversible {
        let at = s
            .action
            .as_ref()
            .map(|a| a.span().start)
            .unwrap_or(raw.span().start);
        loc.push(
            at,
            format!("step \"{id}\" changes state but has no undo"),
            Some("add undo = { kind = ... } for the rollback path, or irreversible = true if there is none".into()),
        );
    }
    if let (Action::None, Some(u)) = (action, &s.undo) {
        loc.at(
            u,
            format!("step \"{id}\" has an undo but no action"),
            Some("give the step an action, or remove the undo"),
        );
    }
}

/// `weights = "previous"` restores what the step's own weighted stage read before its
/// change: only an undo can say it, and only of a step whose action is a weighted stage.
fn check_previous_weights(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawStep>,
    action: &Action,
    undo: Option<&Action>,
) {
    let previous = |a: &Action| {
        matches!(
            a,
            Action::DnsWeights {
                weights: DnsWeights::Previous,
                ..
            }
        )
    };
    let s = raw.get_ref();
    if previous(action)
        && let Some(a) = &s.action
    {
        loc.at(
            a,
            "weights = \"previous\" is for an undo: a step's action sets weights",
            Some("give the weights, e.g. weights = { source = 95, target = 5 }"),
        );
    }
    if undo.is_some_and(previous)
        && !matches!(action, Action::DnsWeights { .. })
        && let Some(u) = &s.undo
    {
        loc.at(
            u,
            "weights = \"previous\" restores the weights a weighted stage read, but this step's action is not one",
            Some("give the weights to restore, e.g. weights = { source = 100, target = 0 }"),
        );
    }
}

fn confirm_phrase(loc: &mut Locator<'_>, s: &RawStep, id: &str) -> String {
    match &s.confirm {
        Some(c) if !c.get_ref().trim().is_empty() => {
            let phrase = c.get_ref().trim().to_string();
            loc.check(c, limits::confirm_phrase(&phrase));
            phrase
        }
        Some(c) => {
            loc.at(
                c,
                "the confirmation phrase is empty",
                Some("write the phrase the operator must type, e.g. confirm = \"freeze writes\""),
            );
            String::new()
        }
        None => {
            loc.push(
                s.id.span().start,
                format!("step \"{id}\" has no confirmation phrase"),
                Some("add confirm = \"...\": the operator types it exactly to run the step".into()),
            );
            String::new()
        }
    }
}

fn hint_for_toml_error(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("remove the field or fix its spelling; the README documents every field".into())
    } else if message.contains("unknown variant") {
        Some("use one of the values the message lists".into())
    } else if message.contains("missing field") {
        Some("add the field; the README documents every field".into())
    } else if message.contains("invalid type") {
        Some("check the value's type (quoted string, number, true/false, table)".into())
    } else {
        Some("fix the TOML syntax at this position".into())
    }
}

/// A duration knob: parsed, then within `range` (`what` names it in the error).
fn bounded_duration(
    loc: &mut Locator<'_>,
    what: &str,
    d: &Spanned<String>,
    range: &std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    match gate_expr::parse_duration_ms(d.get_ref()) {
        Ok(ms) => loc
            .check(d, limits::duration(what, ms, range))
            .then_some(ms),
        Err(e) => {
            loc.at(
                d,
                format!("bad duration \"{}\": {e}", d.get_ref()),
                Some("write a duration such as \"30s\", \"2m\" or \"500ms\""),
            );
            None
        }
    }
}

fn endpoint(
    loc: &mut Locator<'_>,
    raw: Option<&Spanned<RawEndpoint>>,
    which: &str,
) -> Option<Endpoint> {
    let Some(raw) = raw else {
        loc.push(
            0,
            format!("the plan has no [{which}] section"),
            Some(format!(
                "add [{which}] with engine = \"rehearsal\", \"mysql\" or \"postgres\""
            )),
        );
        return None;
    };
    let e = raw.get_ref();
    if let Some(url) = &e.url {
        // Point at the URL but never repeat it: it may hold a secret.
        loc.check(url, limits::db_url(which, e.engine, url.get_ref()));
    } else if e.engine != Engine::Rehearsal {
        loc.at(
            raw,
            format!("[{which}] needs a url for engine {:?}", e.engine).to_lowercase(),
            Some("add url = \"mysql://user@host:3306/db\" (no password in it)"),
        );
    }
    if let Some(l) = &e.label {
        loc.check(
            l,
            limits::shown_text(&format!("the [{which}] label"), l.get_ref(), false),
        );
    }
    if let Some(v) = &e.password_env {
        loc.check(v, limits::env_name(v.get_ref()));
    }
    if let Some(f) = &e.password_file
        && (f.get_ref().trim().is_empty() || limits::control_char(f.get_ref(), false).is_some())
    {
        loc.at(
            f,
            format!("the [{which}] password_file is not a file name"),
            Some("name the file that holds the password on its first line, e.g. password_file = \"~/.cutover/source.pw\""),
        );
    }
    if let (Some(_), Some(f)) = (&e.password_env, &e.password_file) {
        loc.at(
            f,
            format!("[{which}] has both password_env and password_file"),
            Some("keep one of them: the password comes from one place"),
        );
    }
    Some(Endpoint {
        engine: e.engine,
        label: e
            .label
            .as_ref()
            .map_or_else(|| which.to_string(), |l| l.get_ref().clone()),
        url: e.url.as_ref().map(|u| u.get_ref().clone()),
        password_env: e.password_env.as_ref().map(|v| v.get_ref().clone()),
        password_file: e.password_file.as_ref().map(|v| v.get_ref().clone()),
    })
}

/// True when the URL (or keyword string) carries a credential anywhere: a userinfo
/// password, a secret query parameter or a secret keyword pair.
/// Whether two DNS names are the same: with or without their one final dot, in any case
/// (`db.example.com.` is `DB.example.com`).
pub fn same_dns_name(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.strip_suffix('.').unwrap_or(s).to_string();
    bare(a).eq_ignore_ascii_case(&bare(b))
}

pub fn url_has_password(url: &str) -> bool {
    !crate::redact::scan(url).secrets.is_empty()
}

fn convert_action(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawAction>,
    sections: &Sections<'_>,
) -> Action {
    match raw.get_ref() {
        RawAction::None => Action::None,
        RawAction::Manual { instructions } => {
            loc.check(
                raw,
                limits::shown_text("the manual instructions", instructions, true),
            );
            Action::Manual {
                instructions: instructions.clone(),
            }
        }
        RawAction::Sql { on, statement } => sql_action(loc, raw, *on, statement, sections),
        RawAction::Freeze { on, method } => {
            check_freeze(loc, raw, "freeze", *on, *method, sections);
            Action::Freeze {
                on: *on,
                method: *method,
            }
        }
        RawAction::Unfreeze { on, method } => {
            check_freeze(loc, raw, "unfreeze", *on, *method, sections);
            Action::Unfreeze {
                on: *on,
                method: *method,
            }
        }
        RawAction::Replication { op } => {
            if sections.replication.is_none() {
                loc.at(
                    raw,
                    "a replication action needs a [replication] section",
                    Some("add [replication] with engine and task"),
                );
            }
            match op {
                RawReplicationOp::Stop => Action::ReplicationStop,
                RawReplicationOp::Start => Action::ReplicationStart,
            }
        }
        RawAction::SyncSequences { margin } => sync_sequences(loc, raw, *margin, sections),
        RawAction::Dns { to, weights, wait } => {
            if sections.dns.is_none() {
                loc.at(
                    raw,
                    "a dns action needs a [dns] section",
                    Some("add [dns] with name, source, target and ttl"),
                );
            }
            let to = match (to, weights) {
                (Some(_), Some(_)) => {
                    loc.at(
                        raw,
                        "the dns action has both `to` and `weights`",
                        Some("keep `to` to point the record at one value, or `weights` for a weighted stage"),
                    );
                    return Action::Dns {
                        to: DnsTo::Target,
                        wait: *wait,
                    };
                }
                (None, Some(w)) => return dns_weights(loc, raw, w, *wait),
                (None, None) => {
                    loc.at(
                        raw,
                        "the dns action has neither `to` nor `weights`",
                        Some("add to = \"target\", or weights = { source = 95, target = 5 }"),
                    );
                    return Action::Dns {
                        to: DnsTo::Target,
                        wait: *wait,
                    };
                }
                (Some(to), None) => to,
            };
            let to = match to.as_str() {
                "source" => DnsTo::Source,
                "target" => DnsTo::Target,
                "" => {
                    loc.at(
                        raw,
                        "the dns action has an empty `to`",
                        Some("use to = \"target\", \"source\" or a literal value"),
                    );
                    DnsTo::Target
                }
                other => {
                    if let Some(dns) = sections.dns {
                        loc.check(
                            raw,
                            limits::dns_value("the dns action's `to`", &dns.record_type, other),
                        );
                    }
                    DnsTo::Value(other.to_string())
                }
            };
            Action::Dns { to, wait: *wait }
        }
        RawAction::Http(h) => Action::Http(Box::new(http::convert(loc, raw.span().start, h))),
        RawAction::Shell { command } => {
            if command.trim().is_empty() {
                loc.at(
                    raw,
                    "the shell command is empty",
                    Some("write the command to run"),
                );
            } else if command.chars().count() > limits::TEXT_CHARS {
                loc.at(
                    raw,
                    format!(
                        "the shell command is longer than {} characters",
                        limits::TEXT_CHARS
                    ),
                    Some("put it in a script and run the script"),
                );
            }
            Action::Shell {
                command: command.clone(),
            }
        }
    }
}

/// A weighted stage's `weights`: each 0..=255 (Route 53's range), not both 0 (Route 53
/// would then share the traffic evenly, which is not what 0 says).
fn dns_weights<T>(loc: &mut Locator<'_>, raw: &Spanned<T>, w: &RawWeights, wait: bool) -> Action {
    let weights = match w {
        RawWeights::Word(word) if word == "previous" => DnsWeights::Previous,
        RawWeights::Word(word) => {
            loc.at(
                raw,
                format!(
                    "the dns action's weights = \"{}\" is not a weighting",
                    word.escape_debug()
                ),
                Some("use weights = { source = 95, target = 5 }, or weights = \"previous\" in an undo"),
            );
            DnsWeights::Previous
        }
        RawWeights::Table(t) => {
            let mut ok = true;
            for (side, v) in [("source", t.source), ("target", t.target)] {
                if !(0..=255).contains(&v) {
                    ok = false;
                    loc.at(
                        raw,
                        format!("the dns action's weights.{side} = {v} is out of range"),
                        Some("a Route 53 weight is 0 to 255, e.g. weights = { source = 95, target = 5 }"),
                    );
                }
            }
            if ok && t.source == 0 && t.target == 0 {
                loc.at(
                    raw,
                    "the dns action's weights are both 0 (Route 53 would then share the traffic evenly)",
                    Some("give the side that should carry the traffic a weight, e.g. weights = { source = 0, target = 100 }"),
                );
            }
            DnsWeights::Set(Weights {
                source: u8::try_from(t.source.clamp(0, 255)).unwrap_or(u8::MAX),
                target: u8::try_from(t.target.clamp(0, 255)).unwrap_or(u8::MAX),
            })
        }
    };
    Action::DnsWeights { weights, wait }
}

/// Largest `margin` of a `sync-sequences` action: far above any sensible gap, far below
/// the 2^63 a sequence tops out at.
const MAX_SEQUENCE_MARGIN: i64 = 1_000_000_000_000;

/// A `kind = "sync-sequences"` action: PostgreSQL logical replication only.
fn sync_sequences<T>(
    loc: &mut Locator<'_>,
    raw: &Spanned<T>,
    margin: Option<i64>,
    sections: &Sections<'_>,
) -> Action {
    if !sections
        .replication
        .is_some_and(|r| r.engine == ReplicationEngine::Postgres)
    {
        loc.at(
            raw,
            "kind = \"sync-sequences\" needs [replication] engine = \"postgres\" (it reads the publication's sequences)",
            Some("add [replication] engine = \"postgres\" with publication and subscription"),
        );
    }
    let value = margin.unwrap_or(0);
    if !(0..=MAX_SEQUENCE_MARGIN).contains(&value) {
        loc.at(
            raw,
            format!("margin = {value} is outside 0..={MAX_SEQUENCE_MARGIN}"),
            Some("give the number of values to skip past the source's (0 sets them equal)"),
        );
    }
    Action::SyncSequences { margin: value }
}

/// A `kind = "sql"` action. Plans written before `kind = "freeze"` existed froze writes with
/// `SET GLOBAL read_only = ...`; such a statement becomes the typed action, so old plans (and
/// the plan texts old transcripts carry) still run, replay and report as they did. On an
/// engine the freeze method does not support it stays SQL: it ran (and failed) as SQL before.
fn sql_action(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawAction>,
    on: Side,
    statement: &str,
    sections: &Sections<'_>,
) -> Action {
    if statement.trim().is_empty() {
        loc.at(
            raw,
            "the SQL statement is empty",
            Some("write the statement to run"),
        );
    } else if statement.chars().count() > limits::TEXT_CHARS {
        loc.at(
            raw,
            format!(
                "the SQL statement is longer than {} characters",
                limits::TEXT_CHARS
            ),
            Some("run a long script with kind = \"shell\""),
        );
    }
    let method = FreezeMethod::Sql;
    let supported = sections
        .endpoint(on)
        .is_none_or(|e| method.supports(e.engine));
    match legacy_read_only(statement) {
        Some(true) if supported => Action::Freeze { on, method },
        Some(false) if supported => Action::Unfreeze { on, method },
        _ => Action::Sql {
            on,
            statement: statement.to_string(),
        },
    }
}

/// A freeze whose method the side's engine lacks would fail in the window, so refuse it now.
fn check_freeze(
    loc: &mut Locator<'_>,
    raw: &Spanned<RawAction>,
    kind: &str,
    on: Side,
    method: FreezeMethod,
    sections: &Sections<'_>,
) {
    if method == FreezeMethod::ParameterGroup && sections.rds.side(on).is_none() {
        let side = on.as_str();
        loc.at(
            raw,
            format!(
                "kind = \"{kind}\" on = \"{side}\" with method = \"parameter-group\" needs the {side}'s RDS resource"
            ),
            Some(&format!(
                "add [rds] {side} = {{ instance = \"<DB instance id>\" }} (or {{ cluster = \"<Aurora cluster id>\" }})"
            )),
        );
    }
    let Some(endpoint) = sections.endpoint(on) else {
        return;
    };
    if method.supports(endpoint.engine) {
        return;
    }
    let side = on.as_str();
    let engine = format!("{:?}", endpoint.engine).to_lowercase();
    loc.at(
        raw,
        format!(
            "kind = \"{kind}\" on = \"{side}\": method = \"{}\" runs {}, which the [{side}] engine \"{engine}\" does not have",
            method.as_str(),
            method.statement(kind == "freeze"),
        ),
        Some(
            "method \"sql\" works on mysql and rehearsal endpoints, \"parameter-group\" on mysql (RDS, Aurora) only, \"default-read-only\" on postgres only (ALTER DATABASE <db> SET default_transaction_read_only = on, then the open sessions are ended); anything else: your own statement with kind = \"sql\" or kind = \"shell\"",
        ),
    );
}

/// Whether `statement` is exactly `SET GLOBAL read_only = ON|OFF|1|0` (also `TRUE|FALSE`,
/// `SET @@GLOBAL.read_only`, a trailing `;`), case- and space-insensitive: `Some(true)`
/// freezes. The variants are the ones the rehearsal world used to recognise.
pub fn legacy_read_only(statement: &str) -> Option<bool> {
    let (left, right) = statement.split_once('=')?;
    let words: Vec<String> = left
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if !matches!(
        words.as_slice(),
        ["SET", "GLOBAL", "READ_ONLY"] | ["SET", "@@GLOBAL.READ_ONLY"]
    ) {
        return None;
    }
    let value = right.trim();
    let value = value.strip_suffix(';').unwrap_or(value).trim();
    match value.to_ascii_uppercase().as_str() {
        "ON" | "1" | "TRUE" => Some(true),
        "OFF" | "0" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A gate on a probe that does not say `fresh` trusts three of its polls
/// (`Probe::fresh_ms`): the input's own default cannot know the probe's `every`.
fn probe_freshness(gate: &mut Gate, sections: &Sections<'_>) {
    if let Input::Probe(name) = &gate.input
        && gate.fresh_ms.is_none()
        && let Some(p) = sections.probes.iter().find(|p| &p.name == name)
    {
        gate.fresh_ms = Some(p.fresh_ms());
    }
}

/// A gate on an input whose source the plan does not configure could never turn green.
fn check_gate_sources(loc: &mut Locator<'_>, at: usize, gate: &Gate, sections: &Sections<'_>) {
    let input = &gate.input;
    let name = input.to_string();
    if let Input::Probe(p) = input
        && !sections.probes.iter().any(|d| &d.name == p)
    {
        loc.push(
            at,
            format!("gate on {name} but the plan has no [[probe]] named \"{p}\""),
            Some(format!(
                "add [[probe]] name = \"{p}\" with its url and json pointer, or fix the name"
            )),
        );
    }
    if name.starts_with("dns.") && sections.dns.is_none() {
        loc.push(
            at,
            format!("gate on {name} but the plan has no [dns] section"),
            Some("add [dns], or remove the gate".into()),
        );
    }
    if matches!(input.canonical(), Input::Replication(_) | Input::TaskStatus)
        && sections.replication.is_none()
    {
        loc.push(
            at,
            format!("gate on {name} but the plan has no [replication] section"),
            Some("add [replication] with engine and task, or remove the gate".into()),
        );
    }
    // DMS's CDC metrics are the replication reading's lag figures, not a metric the metrics
    // source polls: a gate names them through the replication inputs.
    if let Input::Metric(m) = input
        && !sections.metrics.iter().any(|d| &d.name == m)
    {
        let hint = match m.as_str() {
            "CDCLatencyTarget" => "gate on replication.lag_s (or cdc.latency_target)".to_string(),
            "CDCLatencySource" => {
                "gate on replication.capture_lag_s (or cdc.latency_source)".to_string()
            }
            "CDCIncomingChanges" => {
                "gate on replication.backlog (or cdc.incoming_changes)".to_string()
            }
            _ => format!("add [[metrics]] with name = \"{m}\""),
        };
        loc.push(
            at,
            format!("gate on metric \"{m}\" which the plan does not poll"),
            Some(hint),
        );
    }
}

/// The built-in rehearsal plan.
pub fn rehearsal_plan() -> Plan {
    parse("plans/rehearsal.toml", REHEARSAL_PLAN).expect("the embedded rehearsal plan is valid")
}

/// The built-in rehearsal plan's text without its `[[abort]]` conditions, for scenarios
/// (the cockpit's snapshots, the world's own drives) that stage drift and lag to watch the
/// gates and the world: the shipped aborts would fire on them and take the run over. The
/// budget and the deadline stay.
pub fn rehearsal_plan_text_without_aborts() -> String {
    let text = REHEARSAL_PLAN;
    match text.find("# Watched between steps") {
        Some(from) => {
            let to = text[from..]
                .find("[[metrics]]")
                .map_or(text.len(), |i| i + from);
            format!("{}{}", &text[..from], &text[to..])
        }
        None => text.to_string(),
    }
}

/// [`rehearsal_plan_text_without_aborts`], parsed.
pub fn rehearsal_plan_without_aborts() -> Plan {
    parse(
        "plans/rehearsal.toml",
        &rehearsal_plan_text_without_aborts(),
    )
    .expect("the embedded rehearsal plan is valid without its aborts")
}

#[cfg(test)]
mod abort_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod tests;
