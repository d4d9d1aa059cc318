//! The closed set of facts the cockpit can know. Everything it shows is a fold of these.
//!
//! Events are facts in the past tense and carry all their data, so a transcript of them
//! rebuilds every screen. `at` is when the cockpit learned the fact (the recorder's clock);
//! readings also carry `observed_at`, when the source saw the value.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
pub type Ts = i64;

/// What an attached peer may do: watch, or also approve four-eyes steps. The driver's
/// invite decides it, never the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    Observer,
    Approver,
}

impl PeerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::Observer => "observer",
            PeerRole::Approver => "approver",
        }
    }
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an approver's cockpit had folded and showed when they approved: an approval is
/// bound to it, and lapses when a gate of the step leaves green after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The stream position (1 = the session's first event) of the last batch head the
    /// approver's cockpit had folded.
    pub seq: u64,
    /// The SHA-256 (hex) of that transcript line, a signed batch head; absent when the
    /// session records no transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Each gate of the step as the approver saw it, in the plan's order.
    pub gates: Vec<GateSeen>,
    /// The approver's Ed25519 signature over the approval, when the plan names approvers'
    /// keys (`[share] approvers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ApprovalSignature>,
}

/// One gate as an approver saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSeen {
    pub gate: String,
    pub state: crate::state::GateState,
}

/// An approver's signature: the key (OpenSSH `ssh-ed25519 AAAA…` form) and the base64
/// signature over the approval's canonical bytes (see the transcript crate's `approval`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSignature {
    pub key: String,
    pub sig: String,
}

/// Which side of the migration a database reading or action refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// A producer of readings. Its health (last success, last error) is shown per pane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Replication task status and per-table statistics (DMS or the simulated replicator).
    Replication,
    /// Time series (CloudWatch or derived from the simulated replicator).
    Metrics,
    /// Row counts and checksums of both sides.
    Drift,
    /// Heartbeat row written on the source, read on the target.
    Heartbeat,
    /// The DNS record the applications follow.
    Dns,
    /// State of the source database (read-only, connections, long transactions).
    SourceDb,
    /// State of the target database.
    TargetDb,
    /// The replication task's own log (DMS: its CloudWatch Logs stream).
    TaskLog,
    /// The plan's `[[probe]]` HTTP probes (each reading carries its own failure).
    Probe,
}

impl SourceKind {
    pub const ALL: [SourceKind; 9] = [
        SourceKind::Replication,
        SourceKind::Metrics,
        SourceKind::Drift,
        SourceKind::Heartbeat,
        SourceKind::Dns,
        SourceKind::SourceDb,
        SourceKind::TargetDb,
        SourceKind::TaskLog,
        SourceKind::Probe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Replication => "replication",
            SourceKind::Metrics => "metrics",
            SourceKind::Drift => "drift",
            SourceKind::Heartbeat => "heartbeat",
            SourceKind::Dns => "dns",
            SourceKind::SourceDb => "source_db",
            SourceKind::TargetDb => "target_db",
            SourceKind::TaskLog => "task_log",
            SourceKind::Probe => "probe",
        }
    }

    pub fn for_side(side: Side) -> SourceKind {
        match side {
            Side::Source => SourceKind::SourceDb,
            Side::Target => SourceKind::TargetDb,
        }
    }
}

/// What kind of session recorded a transcript. Recorded as text (`"drive"`,
/// `"rehearsal-autopilot"`, `"watch"`, ...); a word this release does not know is kept as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum SessionMode {
    /// An interactive rehearsal on the embedded world.
    Rehearsal,
    /// A headless rehearsal driven by the autopilot.
    RehearsalAutopilot,
    /// A rehearsal continued by `cutover resume`.
    RehearsalResumed,
    /// A real window, actions enabled.
    Drive,
    /// A real window continued by `cutover resume`.
    DriveResumed,
    /// The read-only cockpit.
    Watch,
    /// One poll (`cutover check`).
    Check,
    /// Anything else (tests, other releases).
    Other(String),
}

impl SessionMode {
    pub fn as_str(&self) -> &str {
        match self {
            SessionMode::Rehearsal => "rehearsal",
            SessionMode::RehearsalAutopilot => "rehearsal-autopilot",
            SessionMode::RehearsalResumed => "rehearsal-resumed",
            SessionMode::Drive => "drive",
            SessionMode::DriveResumed => "drive-resumed",
            SessionMode::Watch => "watch",
            SessionMode::Check => "check",
            SessionMode::Other(s) => s,
        }
    }

    /// Sessions an operator drives at the keyboard: the fold acts on their step timeouts
    /// (the autopilot acts on its own, and read-only sessions never act).
    pub fn drives_interactively(&self) -> bool {
        matches!(
            self,
            SessionMode::Rehearsal
                | SessionMode::RehearsalResumed
                | SessionMode::Drive
                | SessionMode::DriveResumed
        )
    }

    /// Sessions that never act (nothing to resume as a driver).
    pub fn is_read_only(&self) -> bool {
        matches!(self, SessionMode::Watch | SessionMode::Check)
            || matches!(self, SessionMode::Other(s) if s.starts_with("watch"))
    }
}

impl From<String> for SessionMode {
    fn from(s: String) -> SessionMode {
        match s.as_str() {
            "rehearsal" => SessionMode::Rehearsal,
            "rehearsal-autopilot" => SessionMode::RehearsalAutopilot,
            "rehearsal-resumed" => SessionMode::RehearsalResumed,
            "drive" => SessionMode::Drive,
            "drive-resumed" => SessionMode::DriveResumed,
            "watch" => SessionMode::Watch,
            "check" => SessionMode::Check,
            _ => SessionMode::Other(s),
        }
    }
}

impl From<&str> for SessionMode {
    fn from(s: &str) -> SessionMode {
        SessionMode::from(s.to_string())
    }
}

impl From<SessionMode> for String {
    fn from(m: SessionMode) -> String {
        m.as_str().to_string()
    }
}

impl std::fmt::Display for SessionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an action runs a step forward or undoes it during a rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Do,
    Undo,
}

/// Which replication engine streams the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationEngine {
    /// The embedded rehearsal world's replicator.
    Rehearsal,
    /// An AWS DMS task.
    Dms,
    /// A MySQL/MariaDB binlog replica: the plan's target replicates from its source.
    Mysql,
    /// PostgreSQL logical replication: a publication on the source, a subscription on the
    /// target.
    Postgres,
}

impl ReplicationEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationEngine::Rehearsal => "rehearsal",
            ReplicationEngine::Dms => "dms",
            ReplicationEngine::Mysql => "mysql",
            ReplicationEngine::Postgres => "postgres",
        }
    }

    /// Whether the engine reports DMS's figures (capture lag, backlog, full load, tables,
    /// validation); the panes leave those rows out for engines that have none.
    pub fn has_cdc_figures(self) -> bool {
        match self {
            ReplicationEngine::Rehearsal | ReplicationEngine::Dms => true,
            ReplicationEngine::Mysql | ReplicationEngine::Postgres => false,
        }
    }

    /// What the engine's positions are, for messages ("GTID 0-1-5 of 0-1-9").
    pub fn position_word(self) -> &'static str {
        match self {
            ReplicationEngine::Mysql => "GTID ",
            ReplicationEngine::Postgres => "LSN ",
            ReplicationEngine::Rehearsal | ReplicationEngine::Dms => "",
        }
    }
}

/// Replication status, the same words for every engine. The engine's own word is kept beside
/// it ([`ReplicationReading::status_text`]) for display and for the legacy `task.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationStatus {
    Running,
    Stopping,
    Stopped,
    Starting,
    Failed,
    /// The engine answered with a state that says neither (e.g. DMS `modifying`).
    Unknown,
}

impl ReplicationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationStatus::Running => "running",
            ReplicationStatus::Stopping => "stopping",
            ReplicationStatus::Stopped => "stopped",
            ReplicationStatus::Starting => "starting",
            ReplicationStatus::Failed => "failed",
            ReplicationStatus::Unknown => "unknown",
        }
    }

    /// The typed status of a DMS task status word (also what the rehearsal replicator and
    /// transcripts of format 1 say). `ready` is a task created or reloaded but never started:
    /// nothing replicates, so it reads as stopped.
    pub fn from_dms(word: &str) -> ReplicationStatus {
        match word.trim().to_ascii_lowercase().as_str() {
            "running" => ReplicationStatus::Running,
            "stopping" => ReplicationStatus::Stopping,
            "stopped" | "ready" => ReplicationStatus::Stopped,
            "starting" => ReplicationStatus::Starting,
            "failed" | "failed-move" | "error" => ReplicationStatus::Failed,
            _ => ReplicationStatus::Unknown,
        }
    }
}

/// Timestamped samples of one figure, oldest first: `(when the engine measured it, value)`.
pub type Samples = Vec<(Ts, f64)>;

/// Replication as every engine reports it: one reading per poll of the engine, complete
/// (a figure the engine does not know, or could not read this time, is `None` or empty, and
/// the gates on it are unknown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicationReading {
    pub observed_at: Ts,
    pub engine: ReplicationEngine,
    /// What the engine calls the stream (DMS task id, channel, subscription), never
    /// credentials.
    pub name: String,
    pub status: ReplicationStatus,
    /// The engine's own word for the status ("running", "ready", "Yes/No", ...).
    pub status_text: String,
    pub stop_reason: Option<String>,
    /// The engine's last error, when it reports one.
    pub last_error: Option<String>,
    /// Why some figures are missing from this reading although the engine has them (e.g.
    /// DMS's lag, read from CloudWatch, failed while the task status was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures_error: Option<String>,
    /// Why the per-table view is missing from this reading although the status was read
    /// (DMS DescribeTableStatistics failed): the table and validation gates say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables_error: Option<String>,
    /// Whether the engine validates the rows it moves (DMS: the task's
    /// `ValidationSettings.EnableValidation`); `None` when it does not say. With validation
    /// off the validation counts are 0 whatever the data: those gates stay unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_enabled: Option<bool>,
    /// Apply lag in seconds: how far the target trails the source. Several samples when the
    /// engine publishes a series (DMS: CloudWatch `CDCLatencyTarget` datapoints).
    #[serde(default)]
    pub lag_s: Samples,
    /// Capture lag in seconds: how far the engine's reading of the source trails it (DMS
    /// `CDCLatencySource`).
    #[serde(default)]
    pub capture_lag_s: Samples,
    /// Changes received and waiting to be applied (DMS `CDCIncomingChanges`).
    #[serde(default)]
    pub backlog: Samples,
    /// Source transactions not yet applied on the target, where the engine can count them.
    pub behind_transactions: Option<u64>,
    /// Bytes of change stream not yet applied, where the engine can measure them.
    pub behind_bytes: Option<u64>,
    pub full_load_pct: Option<f64>,
    pub tables_loaded: Option<u32>,
    pub tables_loading: Option<u32>,
    pub tables_queued: Option<u32>,
    pub tables_errored: Option<u32>,
    /// Per-table state; `None` when the engine has no per-table view or could not read it.
    pub tables: Option<Vec<TableStat>>,
    /// The engine's position on the source and on the target, as text (binlog file:pos,
    /// GTID set, LSN, DMS checkpoint).
    pub source_position: Option<String>,
    pub target_position: Option<String>,
    /// The source's GTID set as the engine prints it, when the engine has GTIDs and they are
    /// on: `source.gtid_stable_s` is how long it has not moved. `None` when GTID is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_gtid: Option<String>,
    /// The engine's own facts, in its words, for the replication pane (MySQL: IO and SQL
    /// threads, relay log space). Engines with no such facts leave it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<EngineFact>,
    /// PostgreSQL logical replication's own facts (subscription, worker, slot, errors);
    /// `None` for other engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical: Option<LogicalFacts>,
    /// The sequences compared on both sides (an engine that does not replicate them:
    /// PostgreSQL logical replication); `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<Vec<SequenceStat>>,
    /// Why the sequences could not be read this poll although the rest was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences_error: Option<String>,
    /// Why `behind_transactions` cannot be counted although the engine counts transactions
    /// (a binlog replica with GTID off on one side), with the fix: the gate's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_error: Option<String>,
}

/// One of an engine's own facts: a label and its value, as the engine says them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFact {
    pub label: String,
    pub value: String,
}

impl ReplicationReading {
    /// Sequences whose target value is below the source's (`sequences.behind`).
    pub fn sequences_behind(&self) -> Option<u64> {
        self.sequences
            .as_ref()
            .map(|s| s.iter().filter(|q| q.is_behind()).count() as u64)
    }
}

/// What PostgreSQL logical replication says of itself, read on both servers each poll.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalFacts {
    pub publication: String,
    pub subscription: String,
    /// `pg_subscription.subenabled` on the target.
    pub enabled: bool,
    /// The apply worker's pid (`pg_stat_subscription`), `None` when no worker runs.
    pub worker_pid: Option<i64>,
    /// The replication slot on the source.
    pub slot: String,
    /// `pg_replication_slots.active` on the source; `None` when the slot is missing.
    pub slot_active: Option<bool>,
    /// `pg_stat_subscription_stats` (PostgreSQL 15 and later); `None` on older servers.
    pub apply_errors: Option<u64>,
    pub sync_errors: Option<u64>,
}

/// One sequence on both sides (`last_value`; `None` when never used or missing there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceStat {
    /// `schema.sequence`.
    pub name: String,
    pub source: Option<i64>,
    pub target: Option<i64>,
}

impl SequenceStat {
    /// The target would hand out a value the source already has.
    pub fn is_behind(&self) -> bool {
        match (self.source, self.target) {
            (Some(s), Some(t)) => t < s,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Replication task status (DescribeReplicationTasks or the simulated replicator).
///
/// Format 1 only: transcripts written before the engine-neutral [`ReplicationReading`] carry
/// it, and the fold still reads it. Nothing produces it any more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReading {
    pub observed_at: Ts,
    /// Identifier shown to the operator (task id, never credentials).
    pub task: String,
    /// "running", "stopped", "stopping", "starting", "failed", ...
    pub status: String,
    pub stop_reason: Option<String>,
    pub full_load_pct: Option<f64>,
    pub tables_loaded: Option<u32>,
    pub tables_loading: Option<u32>,
    pub tables_queued: Option<u32>,
    pub tables_errored: Option<u32>,
}

/// Per-table replication state: rows loaded, changes applied, validation state and counts
/// (DMS DescribeTableStatistics; other engines fill what they know).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableStat {
    /// `schema.table` or `table`.
    pub table: String,
    pub full_load_rows: Option<u64>,
    pub inserts: Option<u64>,
    pub updates: Option<u64>,
    pub deletes: Option<u64>,
    /// e.g. "Validated", "Pending records", "Mismatched records", "Not enabled".
    pub validation_state: Option<String>,
    pub validation_pending: Option<u64>,
    pub validation_failed: Option<u64>,
    pub validation_suspended: Option<u64>,
    pub table_state: Option<String>,
}

/// One time series: points are (datapoint timestamp, value), oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub name: String,
    pub unit: Option<String>,
    pub points: Vec<(Ts, f64)>,
}

/// The comparison state of one table's checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumState {
    /// Every compared chunk hashed equal on both sides.
    Equal,
    /// At least one chunk differs; see `differing_keys`.
    Mismatch,
    /// A compare is under way; no verdict yet.
    Pending,
    /// Only counts and a whole-table hash are possible (no primary key).
    NoPrimaryKey,
    /// Not compared (disabled or failed).
    Skipped,
}

impl ChecksumState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumState::Equal => "equal",
            ChecksumState::Mismatch => "mismatch",
            ChecksumState::Pending => "pending",
            ChecksumState::NoPrimaryKey => "no-pk",
            ChecksumState::Skipped => "skipped",
        }
    }
}

/// Why a row differs between source and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    MissingOnTarget,
    ExtraOnTarget,
    Different,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::MissingOnTarget => "missing on target",
            DiffKind::ExtraOnTarget => "extra on target",
            DiffKind::Different => "different",
        }
    }
}

/// One differing row, named by its primary key (rendered as text, e.g. `id=42`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffKey {
    pub key: String,
    pub kind: DiffKind,
}

/// Row counts and checksum verdict of one table, both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDrift {
    pub observed_at: Ts,
    pub table: String,
    pub source_rows: Option<u64>,
    pub target_rows: Option<u64>,
    pub checksum: ChecksumState,
    /// Chunks compared so far / in all, for progress.
    pub chunks_done: Option<u64>,
    pub chunks_total: Option<u64>,
    /// The first differing rows found (bounded by the source).
    pub differing_keys: Vec<DiffKey>,
    /// How the table was compared when it is worth saying (a cross-engine table hashed
    /// client-side and why). Absent in older transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TableDrift {
    /// |source - target| when both counts are known.
    pub fn row_diff(&self) -> Option<u64> {
        Some(self.source_rows?.abs_diff(self.target_rows?))
    }
}

/// The DNS record the applications use, as the authority and this host's resolver see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsReading {
    pub observed_at: Ts,
    pub name: String,
    pub record_type: String,
    pub value: Option<String>,
    pub ttl: Option<u64>,
    /// Status of the last change we made: "PENDING" or "INSYNC".
    pub change_status: Option<String>,
    pub change_id: Option<String>,
    /// What this host's resolver answers (what new connections will use).
    pub resolved: Option<String>,
    /// What the zone's authoritative name servers answer, asked directly, when every one of
    /// them gives the same answer (`[dns] authoritative = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authoritative: Option<String>,
    /// Why `authoritative` is missing although it was asked for: the servers disagree (each
    /// named with its answer), one did not answer, the zone is private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authoritative_error: Option<String>,
    /// Every record set under the name, as the authority holds them, when there is more
    /// than a plain one (weighted, failover, alias): `value` is then what carries traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<DnsSet>,
}

/// One record set of a name (Route 53 weighted, failover or alias sets share a name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSet {
    /// The set's value (an alias: its DNS name; several values: comma-separated, sorted).
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    /// `PRIMARY` or `SECONDARY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// Who the AWS calls are made as (`sts:GetCallerIdentity` at start): shown in the status
/// bar, recorded in the transcript header, printed by `check`. `credentials` names the
/// provider the credentials came from (e.g. `profile prod`, `environment`), never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsIdentity {
    pub account: String,
    pub arn: String,
    pub credentials: String,
    /// When the credentials expire (ms since the epoch), if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Ts>,
}

impl AwsIdentity {
    /// `aws 111122223333 assumed-role/cutover/alice`, for one status line.
    pub fn label(&self) -> String {
        format!("aws {} {}", self.account, self.principal())
    }

    /// The principal's last part: the user, or the role and session.
    pub fn principal(&self) -> &str {
        self.arn.rsplit(':').next().unwrap_or(&self.arn)
    }
}

/// One `[[probe]]` request: the value at its JSON pointer, or why there is none (no answer
/// in time, a status other than 2xx, a body that is not JSON, no value at the pointer, a
/// value that is not a number, text or boolean). `observed_at` is when the request was
/// sent. A reading with an error makes `probe.<name>` unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReading {
    pub observed_at: Ts,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<crate::plan::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// New lines of the replication task's own log (DMS: CloudWatch Logs FilterLogEvents on the
/// task's stream, from the session's start), oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskLogReading {
    pub observed_at: Ts,
    /// Where the lines come from (`log group / stream`).
    pub stream: String,
    pub lines: Vec<TaskLogLine>,
}

/// One line of a task's log, with the time the engine wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskLogLine {
    pub at: Ts,
    pub text: String,
}

/// How bad a task log line is, in the engine's own marking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskLogSeverity {
    Error,
    Warning,
    Other,
}

impl TaskLogLine {
    /// DMS marks each line after its component: `[TARGET_APPLY ]E:` error, `W:` warning
    /// (`I:`, `D:`, `T:` for the rest).
    pub fn severity(&self) -> TaskLogSeverity {
        let marker = self
            .text
            .split_once(']')
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or("");
        if marker.starts_with("E:") {
            TaskLogSeverity::Error
        } else if marker.starts_with("W:") {
            TaskLogSeverity::Warning
        } else {
            TaskLogSeverity::Other
        }
    }
}

/// Guardrail state of one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseReading {
    pub observed_at: Ts,
    pub side: Side,
    /// Server label and version, never a connection string.
    pub server: Option<String>,
    pub read_only: Option<bool>,
    pub connections: Option<u64>,
    /// Age in seconds of the oldest open transaction.
    pub longest_trx_s: Option<f64>,
    /// Writes per second the database accepted since the previous reading.
    pub writes_per_s: Option<f64>,
}

/// A value read from a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reading {
    /// Replication, engine-neutral.
    Replication(Box<ReplicationReading>),
    /// Format 1 only (see [`TaskReading`]).
    Task(TaskReading),
    /// Format 1 only: per-table statistics, read separately from the task.
    TableStats {
        observed_at: Ts,
        tables: Vec<TableStat>,
    },
    Metrics {
        observed_at: Ts,
        series: Vec<MetricSeries>,
    },
    Drift(TableDrift),
    Heartbeat {
        observed_at: Ts,
        lag_s: f64,
    },
    Dns(Box<DnsReading>),
    Database(DatabaseReading),
    /// New lines of the replication task's own log since the previous reading.
    TaskLog(TaskLogReading),
    /// One `[[probe]]` answer (format 6).
    Probe(ProbeReading),
}

impl Reading {
    pub fn observed_at(&self) -> Ts {
        match self {
            Reading::Replication(r) => r.observed_at,
            Reading::Task(t) => t.observed_at,
            Reading::TableStats { observed_at, .. }
            | Reading::Metrics { observed_at, .. }
            | Reading::Heartbeat { observed_at, .. } => *observed_at,
            Reading::Drift(d) => d.observed_at,
            Reading::Dns(d) => d.observed_at,
            Reading::Database(d) => d.observed_at,
            Reading::TaskLog(l) => l.observed_at,
            Reading::Probe(p) => p.observed_at,
        }
    }

    pub fn source(&self) -> SourceKind {
        match self {
            Reading::Replication(_) | Reading::Task(_) | Reading::TableStats { .. } => {
                SourceKind::Replication
            }
            Reading::Metrics { .. } => SourceKind::Metrics,
            Reading::Drift(_) => SourceKind::Drift,
            Reading::Heartbeat { .. } => SourceKind::Heartbeat,
            Reading::Dns(_) => SourceKind::Dns,
            Reading::Database(d) => SourceKind::for_side(d.side),
            Reading::TaskLog(_) => SourceKind::TaskLog,
            Reading::Probe(_) => SourceKind::Probe,
        }
    }
}

/// What the rehearsal world measured about the cost of the window so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldMeasures {
    pub writes_attempted: u64,
    pub writes_acked: u64,
    pub writes_refused: u64,
    /// Acknowledged writes missing from the authoritative database.
    pub writes_lost: u64,
    /// Rows differing between source and target (at the stop of replication, or at the end).
    pub rows_diverged: u64,
    /// Seconds during which some client's writes were being refused.
    pub downtime_s: f64,
    /// Which database is authoritative now.
    pub authority: Option<Side>,
}

/// What became of a webhook notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed (an error status, a timeout, no connection).
    Failed,
    /// The notifier's queue was full: this one (the oldest waiting) was dropped unsent.
    Dropped,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dropped => "dropped",
        }
    }
}

/// Everything the cockpit can learn. Serialized as one JSON object per transcript record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The session began (mode, operator); the plan itself is in the transcript header.
    SessionStarted {
        at: Ts,
        mode: SessionMode,
        operator: String,
    },
    /// Time passed. Lets gates age and sustained windows fill when nothing else happens.
    Tick {
        at: Ts,
    },
    /// A source produced a reading.
    Observed {
        at: Ts,
        reading: Reading,
    },
    /// A source failed to read; its previous readings keep ageing until they go stale.
    SourceFailed {
        at: Ts,
        source: SourceKind,
        error: String,
    },
    /// The operator opened the confirmation dialog of a step.
    StepConfirmRequested {
        at: Ts,
        step: String,
        by: String,
    },
    /// The operator closed the dialog without confirming.
    StepConfirmCancelled {
        at: Ts,
        step: String,
        by: String,
    },
    /// The operator submitted a phrase that did not match, or the gates were not green.
    StepConfirmRejected {
        at: Ts,
        step: String,
        by: String,
        reason: String,
    },
    /// The operator typed the step's exact phrase while its gates were green.
    StepConfirmed {
        at: Ts,
        step: String,
        by: String,
    },
    /// A peer approved a step (four-eyes). `seen` is what the approver's cockpit showed when
    /// they approved (absent in transcripts written before approvals carried it).
    StepApproved {
        at: Ts,
        step: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<Evidence>,
    },
    /// A step's action (or undo) began.
    ActionStarted {
        at: Ts,
        step: String,
        direction: Direction,
        description: String,
    },
    /// A line of output from a running action.
    ActionOutput {
        at: Ts,
        step: String,
        direction: Direction,
        line: String,
    },
    /// A step's action (or undo) ended.
    ActionFinished {
        at: Ts,
        step: String,
        direction: Direction,
        ok: bool,
        message: String,
    },
    /// A step's gates did not turn green within its timeout.
    StepTimedOut {
        at: Ts,
        step: String,
        reason: String,
    },
    /// After a restart (`cutover resume`), the operator checked a step left "in doubt" (its
    /// action had started with no recorded result) and typed whether it took effect.
    StepResolved {
        at: Ts,
        step: String,
        done: bool,
        by: String,
    },
    /// The operator typed the phrase that clears a hold (an abort condition's or a step
    /// timeout's, named by `guard` as the cockpit shows it: `abort lag`, `timeout switch`).
    HoldCleared {
        at: Ts,
        guard: String,
        by: String,
    },
    /// A guard warned before it fires: the downtime budget 80 % spent (`guard` is
    /// `budget`). Asked for by the fold (`Effect::Record`) once, so the transcript, replay
    /// and report carry the warning at the event the live cockpit gave it. Format 5.
    GuardWarned {
        at: Ts,
        guard: String,
        reason: String,
    },
    /// The operator opened the rollback dialog.
    RollbackRequested {
        at: Ts,
        by: String,
    },
    /// The operator closed the rollback dialog without confirming.
    RollbackCancelled {
        at: Ts,
        by: String,
    },
    /// Rollback confirmed: undo completed steps in reverse.
    RollbackConfirmed {
        at: Ts,
        by: String,
        reason: String,
    },
    /// A rehearsal fault began or ended.
    FaultChanged {
        at: Ts,
        fault: String,
        active: bool,
        detail: String,
    },
    /// The rehearsal world's measurements of the window's cost.
    WorldMeasured {
        at: Ts,
        measures: WorldMeasures,
    },
    /// Presence: who is watching (pairing). `role` is the invite's (absent in transcripts
    /// written before invites: such a peer could approve).
    PeerJoined {
        at: Ts,
        peer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<PeerRole>,
    },
    PeerLeft {
        at: Ts,
        peer: String,
    },
    /// What became of one webhook notification (`[[notify]]`): delivered, failed after its
    /// retries, or dropped because the queue was full. Never the URL; `error` is redacted.
    NotifyDelivered {
        at: Ts,
        /// The receiver's name in the plan.
        notify: String,
        /// What it was told about.
        on: crate::plan::NotifyOn,
        outcome: DeliveryOutcome,
        /// The receiver's last HTTP status, when it answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Requests made (0 when dropped before sending).
        #[serde(default)]
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A free-form note from the operator or the program.
    Note {
        at: Ts,
        text: String,
    },
    /// The session ended (quit, autopilot finished, ...).
    SessionEnded {
        at: Ts,
        reason: String,
    },
}

/// Binds every variant's `at` field; works for `&Event` and `&mut Event` alike.
macro_rules! each_at {
    ($ev:expr, $at:ident => $body:expr) => {
        match $ev {
            Event::SessionStarted { at: $at, .. }
            | Event::Tick { at: $at }
            | Event::Observed { at: $at, .. }
            | Event::SourceFailed { at: $at, .. }
            | Event::StepConfirmRequested { at: $at, .. }
            | Event::StepConfirmCancelled { at: $at, .. }
            | Event::StepConfirmRejected { at: $at, .. }
            | Event::StepConfirmed { at: $at, .. }
            | Event::StepApproved { at: $at, .. }
            | Event::ActionStarted { at: $at, .. }
            | Event::ActionOutput { at: $at, .. }
            | Event::ActionFinished { at: $at, .. }
            | Event::StepTimedOut { at: $at, .. }
            | Event::StepResolved { at: $at, .. }
            | Event::HoldCleared { at: $at, .. }
            | Event::GuardWarned { at: $at, .. }
            | Event::RollbackRequested { at: $at, .. }
            | Event::RollbackCancelled { at: $at, .. }
            | Event::RollbackConfirmed { at: $at, .. }
            | Event::FaultChanged { at: $at, .. }
            | Event::WorldMeasured { at: $at, .. }
            | Event::PeerJoined { at: $at, .. }
            | Event::PeerLeft { at: $at, .. }
            | Event::NotifyDelivered { at: $at, .. }
            | Event::Note { at: $at, .. }
            | Event::SessionEnded { at: $at, .. } => $body,
        }
    };
}

impl Event {
    /// When the cockpit learned the fact.
    pub fn at(&self) -> Ts {
        each_at!(self, at => *at)
    }

    /// Lets the recorder keep the timeline monotonic.
    pub fn at_mut(&mut self) -> &mut Ts {
        each_at!(self, at => at)
    }

    /// Short name of the variant, for logs and the timeline.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SessionStarted { .. } => "session_started",
            Event::Tick { .. } => "tick",
            Event::Observed { .. } => "observed",
            Event::SourceFailed { .. } => "source_failed",
            Event::StepConfirmRequested { .. } => "step_confirm_requested",
            Event::StepConfirmCancelled { .. } => "step_confirm_cancelled",
            Event::StepConfirmRejected { .. } => "step_confirm_rejected",
            Event::StepConfirmed { .. } => "step_confirmed",
            Event::StepApproved { .. } => "step_approved",
            Event::ActionStarted { .. } => "action_started",
            Event::ActionOutput { .. } => "action_output",
            Event::ActionFinished { .. } => "action_finished",
            Event::StepTimedOut { .. } => "step_timed_out",
            Event::StepResolved { .. } => "step_resolved",
            Event::HoldCleared { .. } => "hold_cleared",
            Event::GuardWarned { .. } => "guard_warned",
            Event::RollbackRequested { .. } => "rollback_requested",
            Event::RollbackCancelled { .. } => "rollback_cancelled",
            Event::RollbackConfirmed { .. } => "rollback_confirmed",
            Event::FaultChanged { .. } => "fault_changed",
            Event::WorldMeasured { .. } => "world_measured",
            Event::PeerJoined { .. } => "peer_joined",
            Event::PeerLeft { .. } => "peer_left",
            Event::NotifyDelivered { .. } => "notify_delivered",
            Event::Note { .. } => "note",
            Event::SessionEnded { .. } => "session_ended",
        }
    }

    /// Whether this event is a step decision or action (shown as a marker in replay).
    pub fn is_step_event(&self) -> bool {
        matches!(
            self,
            Event::StepConfirmed { .. }
                | Event::ActionStarted { .. }
                | Event::ActionFinished { .. }
                | Event::StepTimedOut { .. }
                | Event::StepResolved { .. }
                | Event::HoldCleared { .. }
                | Event::RollbackConfirmed { .. }
        )
    }
}

/// The wall clock, for the edges that stamp events. The fold never calls it.
pub fn now_ms() -> Ts {
    chrono::Utc::now().timestamp_millis()
}
