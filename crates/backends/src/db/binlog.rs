//! `[replication] engine = "mysql"`: the plan's target is a binlog replica of its source.
//!
//! Each poll reads both servers and returns one engine-neutral `ReplicationReading`: the IO
//! and SQL threads (`SHOW REPLICA STATUS` on MySQL 8.0.22+, `SHOW SLAVE STATUS` on MariaDB
//! and older MySQL, detected from the server's version), `Seconds_Behind_Source/Master`
//! (NULL is no figure, so gates on it stay unknown), the last IO/SQL error, and the exact
//! number of source transactions not yet applied, from the GTID sets on both sides
//! (`gtid::MysqlGtidSet`, `gtid::MariaPos`). With GTID off the positions are binlog
//! file:pos and only bytes behind can be told (same file).
//!
//! The stop/start actions use `STOP REPLICA`/`STOP SLAVE` or, on RDS/Aurora,
//! `CALL mysql.rds_stop_replication` (flavor `rds`, or detected by that procedure), then wait
//! until the threads say so.

use std::time::{Duration, Instant};

use super::DbError;
use super::conn::Db;
use super::gtid::{MariaPos, MysqlGtidSet};
use super::upstream::{self, Address, Verdict};
use cutover_core::event::{
    EngineFact, Reading, ReplicationEngine, ReplicationReading, ReplicationStatus, SourceKind,
    now_ms,
};
use cutover_core::plan::{Action, MysqlFlavor, Plan, Replication};
use cutover_runtime::action::{ActionError, Output};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// How long a stop or start waits for the threads to report the new state.
const THREADS_WAIT: Duration = Duration::from_secs(60);
const THREADS_POLL: Duration = Duration::from_millis(250);

/// Which SQL dialect the replica speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    MariaDb,
    /// MySQL 8.0.22 and later: `REPLICA`, `SOURCE`.
    Mysql8,
    /// Older MySQL: `SLAVE`, `MASTER`.
    MysqlLegacy,
}

impl Dialect {
    fn of(version: &str) -> Dialect {
        if version.to_ascii_lowercase().contains("mariadb") {
            return Dialect::MariaDb;
        }
        let nums: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(3)
            .filter_map(|s| s.parse().ok())
            .collect();
        match nums.as_slice() {
            [major, minor, patch, ..] if (*major, *minor, *patch) >= (8, 0, 22) => Dialect::Mysql8,
            [major, ..] if *major > 8 => Dialect::Mysql8,
            _ => Dialect::MysqlLegacy,
        }
    }

    /// `SHOW ... STATUS` for the channel (validated by the plan: letters, digits, _ and -).
    fn show_status(self, channel: Option<&str>) -> String {
        match (self, channel) {
            (Dialect::MariaDb, Some(c)) => format!("SHOW SLAVE '{c}' STATUS"),
            (Dialect::MariaDb, None) => "SHOW SLAVE STATUS".into(),
            (Dialect::Mysql8, Some(c)) => format!("SHOW REPLICA STATUS FOR CHANNEL '{c}'"),
            (Dialect::Mysql8, None) => "SHOW REPLICA STATUS".into(),
            (Dialect::MysqlLegacy, Some(c)) => format!("SHOW SLAVE STATUS FOR CHANNEL '{c}'"),
            (Dialect::MysqlLegacy, None) => "SHOW SLAVE STATUS".into(),
        }
    }

    /// `STOP`/`START` of the replica threads (community servers).
    fn control(self, start: bool, channel: Option<&str>) -> String {
        let verb = if start { "START" } else { "STOP" };
        match (self, channel) {
            (Dialect::MariaDb, Some(c)) => format!("{verb} SLAVE '{c}'"),
            (Dialect::MariaDb, None) => format!("{verb} SLAVE"),
            (Dialect::Mysql8, Some(c)) => format!("{verb} REPLICA FOR CHANNEL '{c}'"),
            (Dialect::Mysql8, None) => format!("{verb} REPLICA"),
            (Dialect::MysqlLegacy, Some(c)) => format!("{verb} SLAVE FOR CHANNEL '{c}'"),
            (Dialect::MysqlLegacy, None) => format!("{verb} SLAVE"),
        }
    }

    fn monitor_privilege(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SLAVE MONITOR (MariaDB 10.5+; REPLICATION CLIENT before)",
            _ => "REPLICATION CLIENT",
        }
    }
}

/// One `SHOW REPLICA STATUS` row, by column name (either generation of names).
struct StatusRow(Vec<(String, Option<String>)>);

impl StatusRow {
    fn get(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| {
            self.0
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(n))
                .and_then(|(_, v)| v.clone())
        })
    }

    fn text(&self, names: &[&str]) -> String {
        self.get(names).unwrap_or_default()
    }

    fn io_running(&self) -> String {
        self.text(&["Replica_IO_Running", "Slave_IO_Running"])
    }

    fn sql_running(&self) -> String {
        self.text(&["Replica_SQL_Running", "Slave_SQL_Running"])
    }
}

/// The native binlog replica as a read-only source.
pub struct BinlogSource {
    source: Db,
    target: Db,
    channel: Option<String>,
    /// Whether the replica's configured source is the plan's, kept per replica view.
    upstream: upstream::Cache,
}

impl BinlogSource {
    pub fn new(source: Db, target: Db, replication: &Replication) -> BinlogSource {
        BinlogSource {
            source,
            target,
            channel: replication.channel.clone(),
            upstream: upstream::Cache::default(),
        }
    }
}

impl Source for BinlogSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Replication
    }

    fn name(&self) -> String {
        "mysql-binlog".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            let r = read(
                &self.source,
                &self.target,
                self.channel.as_deref(),
                &self.upstream,
            )
            .await
            // DbError messages are built scrubbed of secrets.
            .map_err(|e| SourceError(e.to_string()))?;
            Ok(vec![Reading::Replication(Box::new(r))])
        })
    }
}

fn state_error(db: &Db, reason: impl Into<String>, fix: impl Into<String>) -> DbError {
    DbError::State {
        who: db.who(),
        reason: reason.into(),
        fix: fix.into(),
    }
}

/// A failed status query, with the fix for the two usual causes (a missing privilege, a
/// channel that does not exist).
fn status_error(db: &Db, dialect: Dialect, channel: Option<&str>, e: DbError) -> DbError {
    let DbError::Query { reason, .. } = &e else {
        return e;
    };
    let low = reason.to_ascii_lowercase();
    if low.contains("access denied") || low.contains(" 1227 ") {
        return state_error(
            db,
            format!("the user may not read the replica status: {reason}"),
            format!(
                "GRANT {} ON *.* TO the plan's [{}] user (on RDS/Aurora the master user has it)",
                dialect.monitor_privilege(),
                db.side().as_str()
            ),
        );
    }
    if let Some(c) = channel
        && (low.contains("no master connection")
            || low.contains("does not exist")
            || low.contains("channel"))
    {
        return state_error(
            db,
            format!("there is no replication channel \"{c}\": {reason}"),
            "fix channel in [replication] (SHOW REPLICA STATUS lists the channels; MariaDB: SHOW ALL SLAVES STATUS), or remove it for the default channel",
        );
    }
    e
}

async fn status_row(
    db: &Db,
    dialect: Dialect,
    channel: Option<&str>,
) -> Result<StatusRow, DbError> {
    let sql = dialect.show_status(channel);
    let rows = db
        .show("reading the replica status", &sql)
        .await
        .map_err(|e| status_error(db, dialect, channel, e))?;
    match rows.into_iter().next() {
        Some(row) => Ok(StatusRow(row)),
        None => Err(state_error(
            db,
            format!("{sql} returned nothing: this server is not a replica"),
            "point [target] at the replica, or make it one (CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO ..., then START REPLICA)",
        )),
    }
}

async fn one_value(db: &Db, what: &str, sql: &str) -> Result<Option<String>, DbError> {
    let rows = db.rows(what, sql, &[]).await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten()))
}

/// Where a server's binlog stands: its GTID set (when GTID is on) and file:pos.
struct SourcePosition {
    gtid: Option<String>,
    file_pos: Option<(String, u64)>,
}

async fn source_position(db: &Db, dialect: Dialect) -> Result<SourcePosition, DbError> {
    let log_bin = one_value(db, "reading @@log_bin", "SELECT @@GLOBAL.log_bin").await?;
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(state_error(
            db,
            "binary logging is off (@@log_bin = 0): there is no binlog to replicate from or to count the gap with",
            "start the source with log_bin (and server_id, binlog_format=ROW); on RDS set a backup retention period above 0",
        ));
    }
    let gtid = match dialect {
        Dialect::MariaDb => {
            one_value(
                db,
                "reading @@gtid_binlog_pos",
                "SELECT @@GLOBAL.gtid_binlog_pos",
            )
            .await?
        }
        _ => {
            let mode = one_value(db, "reading @@gtid_mode", "SELECT @@GLOBAL.gtid_mode").await?;
            if mode.as_deref() == Some("ON") {
                one_value(
                    db,
                    "reading @@gtid_executed",
                    "SELECT @@GLOBAL.gtid_executed",
                )
                .await?
            } else {
                None
            }
        }
    };
    let show = match dialect {
        Dialect::Mysql8 if !Dialect::legacy_master_status(db.version()) => "SHOW BINARY LOG STATUS",
        _ => "SHOW MASTER STATUS",
    };
    let file_pos = match db.show("reading the binlog position", show).await {
        Ok(rows) => rows.into_iter().next().and_then(|row| {
            let row = StatusRow(row);
            Some((row.get(&["File"])?, row.get(&["Position"])?.parse().ok()?))
        }),
        // The GTID set is the proof; file:pos is shown when the user may read it.
        Err(e) => {
            tracing::debug!(error = %e, "no binlog position on the source");
            None
        }
    };
    Ok(SourcePosition {
        gtid: gtid.map(|g| g.trim().to_string()),
        file_pos,
    })
}

impl Dialect {
    /// MySQL before 8.2 has `SHOW MASTER STATUS` only (8.4 has only `SHOW BINARY LOG STATUS`).
    fn legacy_master_status(version: &str) -> bool {
        let nums: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .filter_map(|s| s.parse().ok())
            .collect();
        matches!(nums.as_slice(), [8, minor] if *minor < 2) || nums.first().is_some_and(|m| *m < 8)
    }
}

/// The replica's applied GTIDs: MySQL `@@gtid_executed`; MariaDB the position its
/// `Using_Gtid` follows (`@@gtid_slave_pos` or `@@gtid_current_pos`).
async fn replica_gtid(
    db: &Db,
    dialect: Dialect,
    row: &StatusRow,
) -> Result<Option<String>, DbError> {
    let v = match dialect {
        Dialect::MariaDb => match row.text(&["Using_Gtid"]).to_ascii_lowercase().as_str() {
            "slave_pos" => {
                one_value(
                    db,
                    "reading @@gtid_slave_pos",
                    "SELECT @@GLOBAL.gtid_slave_pos",
                )
                .await?
            }
            "current_pos" => {
                one_value(
                    db,
                    "reading @@gtid_current_pos",
                    "SELECT @@GLOBAL.gtid_current_pos",
                )
                .await?
            }
            _ => None,
        },
        _ => {
            let mode = one_value(db, "reading @@gtid_mode", "SELECT @@GLOBAL.gtid_mode").await?;
            if mode.as_deref() == Some("ON") {
                one_value(
                    db,
                    "reading @@gtid_executed",
                    "SELECT @@GLOBAL.gtid_executed",
                )
                .await?
            } else {
                None
            }
        }
    };
    Ok(v.map(|g| g.trim().to_string()))
}

/// The typed status of the two threads, with the engine's words.
fn thread_status(io: &str, sql: &str, io_error: &str, sql_error: &str) -> ReplicationStatus {
    match (io, sql) {
        ("Yes", "Yes") => ReplicationStatus::Running,
        ("Connecting", "Yes") => ReplicationStatus::Starting,
        _ if !io_error.is_empty() || !sql_error.is_empty() => ReplicationStatus::Failed,
        // One thread stopped by hand: nothing is applied (SQL) or received (IO).
        _ => ReplicationStatus::Stopped,
    }
}

/// The replica's configured source (`Source_Host`/`Master_Host` and port) against the
/// plan's `[source]`: another server is an error naming both; one this host cannot tell
/// apart is a fact that says so (see `upstream`).
async fn check_upstream(
    source: &Db,
    target: &Db,
    row: &StatusRow,
    cache: &upstream::Cache,
) -> Result<Option<EngineFact>, DbError> {
    let host = row.text(&["Source_Host", "Master_Host"]);
    let port = row
        .get(&["Source_Port", "Master_Port"])
        .and_then(|p| p.trim().parse::<u16>().ok());
    // A binlog replica follows the whole server: the URLs' databases play no part.
    let server =
        |db: &Db| upstream::from_url(db.url(), 3306).map(|a| Address { dbname: None, ..a });
    let (Some(port), Some(plan)) = (port, server(source)) else {
        return Ok(None);
    };
    if host.is_empty() {
        return Ok(None);
    }
    let theirs = Address {
        hosts: vec![host],
        port,
        dbname: None,
    };
    let replica = server(target).map_or_else(|| target.who(), |a| a.show());
    match cache.compare(&theirs, &plan).await {
        Verdict::Same { note } => Ok(Some(fact(
            "replicates from",
            &match note {
                Some(n) => format!("{} (the plan's source: {n})", theirs.show()),
                None => format!("{} (the plan's source)", theirs.show()),
            },
        ))),
        Verdict::Unsure(why) => Ok(Some(fact(
            "replicates from",
            &format!(
                "{} — not verified against the plan's source {}: {why}",
                theirs.show(),
                plan.show()
            ),
        ))),
        Verdict::Different => Err(state_error(
            target,
            format!(
                "replica {replica} replicates from {}, the plan's source is {}",
                theirs.show(),
                plan.show()
            ),
            "point [source] at the server the replica replicates from (or [target] at a replica of the plan's source); every replication reading would otherwise compare the wrong servers",
        )),
    }
}

/// Reads both servers once.
pub(crate) async fn read(
    source: &Db,
    target: &Db,
    channel: Option<&str>,
    upstream: &upstream::Cache,
) -> Result<ReplicationReading, DbError> {
    let dialect = Dialect::of(target.version());
    let source_dialect = Dialect::of(source.version());
    if (dialect == Dialect::MariaDb) != (source_dialect == Dialect::MariaDb) {
        tracing::debug!("source and replica are of different families");
    }
    let row = status_row(target, dialect, channel).await?;
    // A source without binlog cannot be anyone's source: said before the mismatch.
    let src = source_position(source, source_dialect).await?;
    let upstream_fact = check_upstream(source, target, &row, upstream).await?;
    let rep_gtid = replica_gtid(target, dialect, &row).await?;
    let observed_at = now_ms();

    let io = row.io_running();
    let sql = row.sql_running();
    let io_error = row.text(&["Last_IO_Error"]);
    let sql_error = row.text(&["Last_SQL_Error"]);
    let status = thread_status(&io, &sql, &io_error, &sql_error);
    let last_error = match (io_error.is_empty(), sql_error.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("IO thread: {io_error}")),
        (true, false) => Some(format!("SQL thread: {sql_error}")),
        (false, false) => Some(format!("IO thread: {io_error}; SQL thread: {sql_error}")),
    }
    .map(|e| target.redact(&e));
    let lag_s: Vec<(i64, f64)> = row
        .get(&["Seconds_Behind_Source", "Seconds_Behind_Master"])
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| vec![(observed_at, v)])
        .unwrap_or_default();

    // The exact gap from GTIDs; bytes from file:pos when GTID is off.
    let exec_file = row.get(&["Relay_Source_Log_File", "Relay_Master_Log_File"]);
    let exec_pos = row
        .get(&["Exec_Source_Log_Pos", "Exec_Master_Log_Pos"])
        .and_then(|p| p.parse::<u64>().ok());
    let (behind_transactions, source_text, target_text) = match (&src.gtid, &rep_gtid) {
        (Some(s), Some(r)) => (
            Some(gap(dialect, s, r).map_err(|e| {
                state_error(
                    target,
                    format!("cannot compare the GTID sets: {e}"),
                    "report this with both sets (SELECT @@gtid_executed / @@gtid_binlog_pos)",
                )
            })?),
            Some(s.clone()),
            Some(r.clone()),
        ),
        _ => (
            None,
            src.file_pos.as_ref().map(|(f, p)| format!("{f}:{p}")),
            exec_file
                .clone()
                .zip(exec_pos)
                .map(|(f, p)| format!("{f}:{p}")),
        ),
    };
    let gap_error = gtid_off(source_dialect, dialect, &src, rep_gtid.as_deref(), &row);
    let behind_bytes = match (&src.file_pos, &exec_file, exec_pos) {
        (Some((sf, sp)), Some(ef), Some(ep)) if sf == ef => Some(sp.saturating_sub(ep)),
        _ => None,
    };

    let mut facts = vec![
        fact("IO thread", &io),
        fact("SQL thread", &sql),
        fact(
            "IO state",
            &row.text(&["Replica_IO_State", "Slave_IO_State"]),
        ),
    ];
    if let Some(space) = row.get(&["Relay_Log_Space"]) {
        facts.push(fact("relay log space", &format!("{space} bytes")));
    }
    if let Some(using) = row.get(&["Using_Gtid"]) {
        facts.push(fact("using GTID", &using));
    } else if let Some(auto) = row.get(&["Auto_Position"]) {
        facts.push(fact("GTID auto-position", &auto));
    }
    if let (Some(f), Some(p)) = (&exec_file, exec_pos) {
        facts.push(fact("executed at", &format!("{f}:{p}")));
    }
    facts.extend(upstream_fact);
    facts.push(fact("replica server", target.version()));

    Ok(ReplicationReading {
        observed_at,
        engine: ReplicationEngine::Mysql,
        name: channel.map_or_else(|| "default channel".to_string(), |c| format!("channel {c}")),
        status,
        status_text: format!("IO {io}, SQL {sql}"),
        stop_reason: (status != ReplicationStatus::Running).then(|| {
            last_error
                .clone()
                .unwrap_or_else(|| format!("IO thread {io}, SQL thread {sql}"))
        }),
        last_error,
        figures_error: None,
        tables_error: None,
        validation_enabled: None,
        lag_s,
        capture_lag_s: Vec::new(),
        backlog: Vec::new(),
        behind_transactions,
        behind_bytes,
        full_load_pct: None,
        tables_loaded: None,
        tables_loading: None,
        tables_queued: None,
        tables_errored: None,
        tables: None,
        source_position: source_text,
        target_position: target_text,
        source_gtid: src.gtid,
        facts,
        logical: None,
        sequences: None,
        sequences_error: None,
        gap_error,
    })
}

/// Why the gap cannot be counted in transactions (GTID off on one side), with the fix;
/// `None` when both sides have GTID positions.
fn gtid_off(
    source_dialect: Dialect,
    dialect: Dialect,
    src: &SourcePosition,
    replica_gtid: Option<&str>,
    row: &StatusRow,
) -> Option<String> {
    let (why, fix) = match (&src.gtid, replica_gtid) {
        (Some(_), Some(_)) => return None,
        (None, _) if source_dialect == Dialect::MariaDb => (
            "the source has no GTID position (@@gtid_binlog_pos is empty)".to_string(),
            "commit a transaction on the source with log_bin on",
        ),
        (None, _) => (
            "GTID is off on the source (@@gtid_mode is not ON)".to_string(),
            "set gtid_mode = ON with enforce_gtid_consistency = ON on both servers (on RDS/Aurora in the parameter group)",
        ),
        (_, None) if dialect == Dialect::MariaDb => (
            format!(
                "the replica follows the source by binlog file:pos, not by GTID (Using_Gtid = {})",
                row.text(&["Using_Gtid"])
            ),
            "STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID = slave_pos; START SLAVE on the replica",
        ),
        (_, None) => (
            "GTID is off on the replica (@@gtid_mode is not ON)".to_string(),
            "set gtid_mode = ON on the replica, then CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION = 1",
        ),
    };
    Some(format!(
        "{why}: the gap cannot be counted in transactions (fix: {fix}; or gate on replication.behind_bytes, exact while both sides are in the same binlog file)"
    ))
}

fn fact(label: &str, value: &str) -> EngineFact {
    EngineFact {
        label: label.to_string(),
        value: value.to_string(),
    }
}

/// Source transactions the replica lacks.
fn gap(dialect: Dialect, source: &str, replica: &str) -> Result<u64, super::gtid::GtidError> {
    Ok(match dialect {
        Dialect::MariaDb => MariaPos::parse(source)?.behind(&MariaPos::parse(replica)?),
        _ => MysqlGtidSet::parse(source)?
            .minus(&MysqlGtidSet::parse(replica)?)
            .count(),
    })
}

/// Whether the server has RDS's replication procedures.
async fn has_rds_procedures(db: &Db) -> Result<bool, DbError> {
    let n = one_value(
        db,
        "looking for mysql.rds_stop_replication",
        "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_NAME = 'rds_stop_replication'",
    )
    .await?;
    Ok(n.as_deref().is_some_and(|n| n != "0"))
}

/// Stops or starts the replica, then waits until both threads say so.
pub(crate) async fn control(
    target: &Db,
    plan: &Plan,
    action: &Action,
    out: &Output,
) -> Result<String, ActionError> {
    let err = |e: DbError| ActionError::new(e.to_string());
    let Some(replication) = plan.replication.as_ref() else {
        return Err(ActionError::new(
            "a replication action needs a [replication] section",
        ));
    };
    let start = matches!(action, Action::ReplicationStart);
    let channel = replication.channel.as_deref();
    let dialect = Dialect::of(target.version());
    let rds = match replication.flavor {
        MysqlFlavor::Rds => true,
        MysqlFlavor::Community => false,
        MysqlFlavor::Auto => has_rds_procedures(target).await.map_err(err)?,
    };
    let verb = if start { "start" } else { "stop" };
    let statement = match (rds, channel) {
        (true, Some(c)) => format!("CALL mysql.rds_{verb}_replication_for_channel('{c}')"),
        (true, None) => format!("CALL mysql.rds_{verb}_replication"),
        (false, _) => dialect.control(start, channel),
    };
    out.line(format!(
        "on {} ({}): {statement}",
        target.who(),
        target.version()
    ));
    target
        .execute_script(&statement, 5, |line| out.line(line))
        .await
        .map_err(|e| {
            ActionError::new(format!(
                "{e}{}",
                if rds {
                    ""
                } else {
                    " (a replica on RDS/Aurora needs flavor = \"rds\": CALL mysql.rds_stop_replication)"
                }
            ))
        })?;
    let want = if start { "Yes" } else { "No" };
    let started = Instant::now();
    loop {
        let row = status_row(target, dialect, channel).await.map_err(err)?;
        let (io, sql) = (row.io_running(), row.sql_running());
        if io == want && sql == want {
            out.line(format!("IO thread {io}, SQL thread {sql}"));
            return Ok(format!(
                "replication {} on {}: IO thread {io}, SQL thread {sql}",
                if start { "running" } else { "stopped" },
                target.who()
            ));
        }
        let errors = [row.text(&["Last_IO_Error"]), row.text(&["Last_SQL_Error"])]
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if start && !errors.is_empty() && io != "Connecting" {
            return Err(ActionError::new(target.redact(&format!(
                "started, but the replica reports IO thread {io}, SQL thread {sql}: {errors}; fix the error and start again"
            ))));
        }
        if started.elapsed() >= THREADS_WAIT {
            return Err(ActionError::new(target.redact(&format!(
                "ran {statement} but after {}s the replica still reports IO thread {io}, SQL thread {sql} (wanted {want}/{want}){}; check SHOW REPLICA STATUS and the server log",
                THREADS_WAIT.as_secs(),
                if errors.is_empty() { String::new() } else { format!(": {errors}") }
            ))));
        }
        tokio::time::sleep(THREADS_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialect_comes_from_the_version() {
        assert_eq!(
            Dialect::of("10.11.19-MariaDB-0+deb12u1-log"),
            Dialect::MariaDb
        );
        assert_eq!(Dialect::of("8.0.35"), Dialect::Mysql8);
        assert_eq!(Dialect::of("8.0.21-log"), Dialect::MysqlLegacy);
        assert_eq!(Dialect::of("5.7.44-log"), Dialect::MysqlLegacy);
        assert_eq!(Dialect::of("9.1.0"), Dialect::Mysql8);
        assert!(Dialect::legacy_master_status("8.0.36"));
        assert!(!Dialect::legacy_master_status("8.4.0"));
        assert_eq!(
            Dialect::Mysql8.show_status(Some("east")),
            "SHOW REPLICA STATUS FOR CHANNEL 'east'"
        );
        assert_eq!(
            Dialect::MariaDb.control(false, Some("east")),
            "STOP SLAVE 'east'"
        );
    }

    #[test]
    fn with_gtid_off_on_either_side_the_gap_error_names_the_side_and_the_fix() {
        let row =
            |using: &str| StatusRow(vec![("Using_Gtid".to_string(), Some(using.to_string()))]);
        let pos = |gtid: Option<&str>| SourcePosition {
            gtid: gtid.map(str::to_string),
            file_pos: None,
        };
        let maria = Dialect::MariaDb;
        assert_eq!(
            gtid_off(
                maria,
                maria,
                &pos(Some("0-1-5")),
                Some("0-1-5"),
                &row("Slave_Pos")
            ),
            None
        );
        let replica_off =
            gtid_off(maria, maria, &pos(Some("0-1-5")), None, &row("No")).unwrap_or_default();
        assert!(
            replica_off.contains("by binlog file:pos, not by GTID (Using_Gtid = No)")
                && replica_off.contains("MASTER_USE_GTID = slave_pos")
                && replica_off.contains("replication.behind_bytes"),
            "{replica_off}"
        );
        let mysql = Dialect::Mysql8;
        let source_off =
            gtid_off(mysql, mysql, &pos(None), Some("x:1-5"), &row("")).unwrap_or_default();
        assert!(
            source_off.contains("GTID is off on the source")
                && source_off.contains("gtid_mode = ON"),
            "{source_off}"
        );
    }

    #[test]
    fn threads_map_to_the_neutral_status() {
        use ReplicationStatus as S;
        assert_eq!(thread_status("Yes", "Yes", "", ""), S::Running);
        assert_eq!(thread_status("Yes", "No", "", ""), S::Stopped);
        assert_eq!(thread_status("No", "No", "", ""), S::Stopped);
        assert_eq!(thread_status("Connecting", "Yes", "", ""), S::Starting);
        assert_eq!(thread_status("Yes", "No", "", "Duplicate entry"), S::Failed);
    }
}
