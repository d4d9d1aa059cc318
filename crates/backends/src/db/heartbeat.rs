//! End-to-end replication lag from a heartbeat row, as pt-heartbeat and gh-ost measure it:
//! a row on the source gets the source's UTC clock every second, replication carries it to
//! the target, and the lag is how far the target's copy is behind. Also the binlog
//! replica's own `Seconds_Behind_Master` when the target is a MySQL/MariaDB replica.
//!
//! Both timestamps come from the source's clock (the target's copy was written there), so
//! clock skew between the servers does not enter. When the target holds the source's
//! latest beat the lag is 0: everything written up to that beat has arrived, which is
//! also the right answer after writes are frozen and no new beats can be written.

use chrono::NaiveDateTime;

use super::DbError;
use super::conn::Db;
use super::sql::quote;
use cutover_core::plan::Engine;

/// The heartbeat table's name, in the compared database (MySQL) or schema (PostgreSQL).
/// The drift compare never compares it.
pub const HEARTBEAT_TABLE: &str = "cutover_heartbeat";

/// The `CREATE TABLE` for the heartbeat table on the source (`cutover heartbeat-setup`
/// runs it). The replication task must include the table so its row reaches the target;
/// on a PostgreSQL target it arrives as `timestamp(6)` (UTC, no zone).
pub fn heartbeat_setup_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE IF NOT EXISTS cutover_heartbeat (\n  id smallint PRIMARY KEY,\n  ts timestamp(6) NOT NULL\n)"
        }
        _ => {
            "CREATE TABLE IF NOT EXISTS cutover_heartbeat (\n  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,\n  ts DATETIME(6) NOT NULL\n) ENGINE=InnoDB"
        }
    }
}

fn table(db: &Db) -> String {
    format!("{}.{}", quote(db.is_mysql(), db.schema()), HEARTBEAT_TABLE)
}

/// Creates the heartbeat table in the source's database or schema and writes a first beat.
/// Idempotent.
pub async fn heartbeat_setup(db: &Db) -> Result<(), DbError> {
    let create = heartbeat_setup_sql(db.engine()).replacen(HEARTBEAT_TABLE, &table(db), 1);
    db.execute_script(&create, 0, |_| {}).await?;
    write_beat(db).await
}

/// Writes the current source time into the heartbeat row.
pub(crate) async fn write_beat(db: &Db) -> Result<(), DbError> {
    let t = table(db);
    let sql = if db.is_mysql() {
        format!(
            "INSERT INTO {t} (id, ts) VALUES (1, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE ts = UTC_TIMESTAMP(6)"
        )
    } else {
        format!(
            "INSERT INTO {t} (id, ts) VALUES (1, clock_timestamp() AT TIME ZONE 'UTC') \
             ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts"
        )
    };
    db.writer_rows("writing the heartbeat", &sql, &[])
        .await
        .map(|_| ())
}

/// Whether a write failed because the database refuses writes (writes frozen).
pub(crate) fn is_read_only_refusal(e: &DbError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("read-only") || text.contains("read only") || text.contains("read_only")
}

fn parse_ts(text: Option<&str>) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text?.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// The heartbeat row's time and the server's UTC clock now.
async fn read_beat(db: &Db) -> Result<(Option<NaiveDateTime>, Option<NaiveDateTime>), DbError> {
    let t = table(db);
    let sql = if db.is_mysql() {
        format!("SELECT CAST(ts AS CHAR), CAST(UTC_TIMESTAMP(6) AS CHAR) FROM {t} WHERE id = 1")
    } else {
        format!(
            "SELECT ts::text, (clock_timestamp() AT TIME ZONE 'UTC')::text FROM {t} WHERE id = 1"
        )
    };
    let rows = db.rows("reading the heartbeat", &sql, &[]).await?;
    let row = rows.first();
    let cell = |i: usize| row.and_then(|r| r.get(i)).and_then(|c| c.as_deref());
    Ok((parse_ts(cell(0)), parse_ts(cell(1))))
}

/// Lag in seconds from the heartbeat rows of both sides.
pub(crate) async fn heartbeat_lag(source: &Db, target: &Db) -> Result<f64, DbError> {
    let ((beat, now), (copy, _)) = futures::try_join!(read_beat(source), read_beat(target))?;
    let (Some(beat), Some(now)) = (beat, now) else {
        return Err(DbError::State {
            who: source.who(),
            reason: format!("the {HEARTBEAT_TABLE} table has no beat"),
            fix: "run `cutover heartbeat-setup` and enable the heartbeat".into(),
        });
    };
    let Some(copy) = copy else {
        return Err(DbError::State {
            who: target.who(),
            reason: format!("no heartbeat row in {HEARTBEAT_TABLE} yet"),
            fix: format!("check that the replication task includes the {HEARTBEAT_TABLE} table"),
        });
    };
    if copy >= beat {
        return Ok(0.0);
    }
    Ok(((now - copy).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0))
}

/// `Seconds_Behind_Master` (or `_Source`) when the target is a MySQL/MariaDB binlog
/// replica; `Ok(None)` when it is not a replica (or the user may not ask).
pub(crate) async fn replica_lag(target: &Db) -> Result<Option<f64>, DbError> {
    if !target.is_mysql() {
        return Ok(None);
    }
    let rows = match target
        .show("reading the replica status", "SHOW REPLICA STATUS")
        .await
    {
        Ok(rows) => rows,
        Err(_) => match target
            .show("reading the replica status", "SHOW SLAVE STATUS")
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "no replica status");
                return Ok(None);
            }
        },
    };
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let value = row
        .iter()
        .find(|(name, _)| name == "Seconds_Behind_Master" || name == "Seconds_Behind_Source")
        .map(|(_, v)| v.clone());
    match value {
        None => Ok(None),
        Some(Some(v)) => Ok(v.trim().parse::<f64>().ok()),
        Some(None) => Err(DbError::State {
            who: target.who(),
            reason: "binlog replication is not running (Seconds_Behind_Master is NULL)".into(),
            fix: "check SHOW REPLICA STATUS on the target: start the replica or fix its error"
                .into(),
        }),
    }
}

/// The lag for the Heartbeat source: the heartbeat's (when `use_heartbeat`), and the
/// replica's when the target is a binlog replica; the larger when both are known.
pub(crate) async fn lag(source: &Db, target: &Db, use_heartbeat: bool) -> Result<f64, DbError> {
    let replica = replica_lag(target).await;
    if use_heartbeat {
        let hb = heartbeat_lag(source, target).await;
        return match (hb, replica) {
            (Ok(h), Ok(r)) => Ok(h.max(r.unwrap_or(0.0))),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), Ok(Some(r))) => {
                tracing::warn!(error = %e, "heartbeat unavailable; using the replica's lag");
                Ok(r)
            }
            (Err(e), _) => Err(e),
        };
    }
    match replica? {
        Some(r) => Ok(r),
        None => Err(DbError::State {
            who: target.who(),
            reason: "no lag to read: the target is not a binlog replica and the heartbeat is off"
                .into(),
            fix: "run `cutover heartbeat-setup` and enable the heartbeat".into(),
        }),
    }
}

/// The lag as well as can be told without writing (for pausing the drift compare):
/// `None` when nothing tells it.
pub(crate) async fn probe_lag(source: &Db, target: &Db) -> Option<f64> {
    let hb = heartbeat_lag(source, target).await.ok();
    let rep = replica_lag(target).await.ok().flatten();
    match (hb, rep) {
        (Some(h), Some(r)) => Some(h.max(r)),
        (h, r) => h.or(r),
    }
}
