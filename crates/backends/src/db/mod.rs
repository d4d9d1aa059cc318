//! Real databases (MySQL/MariaDB and PostgreSQL): connections from the plan, discovery from
//! the catalog, row counts and chunked checksums pushed down into the servers, the
//! cross-engine compare, heartbeat lag, guardrails, SQL actions and `cutover drift`.
//!
//! Codemap: `conn` connections, passwords, redacted errors · `catalog` tables, keys, types ·
//! `sql` the SQL text per engine · `chunk` one chunk on both sides, bisection to keys ·
//! `canon` the cross-engine canonical form · `compare` walking tables, one-shot and
//! continuous · `heartbeat` lag · `guard` read_only, connections, transactions · `sources`
//! the `Source`s · `actuator` SQL actions · `binlog` the native MySQL/MariaDB replica
//! (engine = "mysql") · `gtid` GTID set arithmetic · `logical` PostgreSQL logical replication
//! as a replication engine (reading, subscription and sequence actions).
//!
//! Invariant: no secret enters a reading, a log line or an error. Passwords live only in
//! the drivers' connect options; every driver message goes through `Db::redact`.

mod actuator;
mod binlog;
mod canon;
mod catalog;
mod chunk;
mod compare;
mod conn;
mod gtid;
mod guard;
mod heartbeat;
mod logical;
mod repair;
mod sources;
mod sql;
mod throttle;
mod upstream;
mod window;

use std::time::Duration;

pub use actuator::SqlActuator;
pub use binlog::BinlogSource;
pub use compare::{compare, compare_observed};
pub use conn::{Db, connect, connect_endpoint};
pub use heartbeat::{HEARTBEAT_TABLE, heartbeat_setup, heartbeat_setup_sql};
pub use logical::{LogicalActuator, LogicalSource};
pub use repair::{Repair, compare_with_repair};
pub use sources::{DriftSource, GuardSource, HeartbeatSource, sources};
pub use window::{Since, Window, check_where};

/// Why a database operation failed: the endpoint (`source "label"`), the reason, the fix.
/// Messages never carry a password.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    /// The endpoint is configured wrongly (no URL, unknown scheme, password not found).
    #[error("{who}: {reason} (fix: {fix})")]
    Config {
        who: String,
        reason: String,
        fix: String,
    },
    /// The server could not be reached or refused the login.
    #[error("{who}: cannot connect to {url}: {reason} (fix: {fix})")]
    Connect {
        who: String,
        url: String,
        reason: String,
        fix: String,
    },
    /// A query failed.
    #[error("{who}: {what} failed: {reason} (fix: {fix})")]
    Query {
        who: String,
        what: String,
        reason: String,
        fix: String,
    },
    /// A table or column the compare needs is not there.
    #[error("{who}: {reason} (fix: {fix})")]
    Schema {
        who: String,
        reason: String,
        fix: String,
    },
    /// The database is in a state that prevents the reading (replication stopped, no beat).
    #[error("{who}: {reason} (fix: {fix})")]
    State {
        who: String,
        reason: String,
        fix: String,
    },
}

/// Knobs of the drift compare and the database sources: the query budget that keeps the
/// compare from hurting production.
#[derive(Clone, Debug, PartialEq)]
pub struct DbOptions {
    /// Size chunks so each takes about this long on the slower side (pt-table-checksum's
    /// `--chunk-time`).
    pub chunk_time: Duration,
    /// Chunk queries in flight per database.
    pub max_concurrent: usize,
    /// The continuous compare pauses while replication lag (heartbeat or replica status)
    /// exceeds this many seconds; `None`: never pauses.
    pub pause_lag_s: Option<f64>,
    /// Write a heartbeat row on the source every second and read the lag on the target
    /// (the table comes from [`heartbeat_setup`]).
    pub heartbeat: bool,
    /// Tables to compare; empty: every base table of the source's database/schema.
    pub tables: Vec<String>,
    /// Differing keys reported per table.
    pub max_keys: usize,
    /// Continuous mode: every chunk is re-checked at least this often.
    pub recheck_interval: Duration,
    /// Continuous mode: a chunk that differed (or whose source changed) is re-checked after
    /// this long plus the current lag; it counts as a mismatch only if it differs again.
    pub recheck_after: Duration,
    /// How often the Drift source is polled.
    pub drift_interval: Duration,
    /// How long one poll of the Drift source may work before it reports.
    pub poll_budget: Duration,
    /// Cross engine: hash rows client-side even where the servers could (the reference
    /// path the pushed-down hash is tested against).
    pub client_hash: bool,
    /// Only the rows of this window are compared (`--where`, `--since`).
    pub window: Window,
    /// The one-shot compare pauses before a chunk while the target's lag exceeds this
    /// many seconds (`--max-lag`; read by `lag_query`, else from a MySQL replica's status).
    pub max_lag_s: Option<f64>,
    /// ... or while a server runs more than this many queries (`--max-load`: MySQL
    /// Threads_running, PostgreSQL active sessions).
    pub max_load: Option<u64>,
    /// A query on the target returning its lag in seconds (`--lag-query`), e.g. from a
    /// heartbeat table.
    pub lag_query: Option<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            chunk_time: Duration::from_millis(500),
            max_concurrent: 1,
            pause_lag_s: Some(30.0),
            heartbeat: false,
            tables: Vec::new(),
            max_keys: 20,
            recheck_interval: Duration::from_secs(30),
            recheck_after: Duration::from_secs(2),
            drift_interval: Duration::from_secs(1),
            poll_budget: Duration::from_secs(3),
            client_hash: false,
            window: Window::default(),
            max_lag_s: None,
            max_load: None,
            lag_query: None,
        }
    }
}
