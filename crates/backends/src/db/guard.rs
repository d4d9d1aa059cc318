//! Guardrails read from one database: read-only state, open connections (ours left out),
//! the age of the oldest open transaction, and rows written per second.

use std::time::Instant;

use tokio::sync::Mutex;

use super::DbError;
use super::actuator::PG_DATABASE_READ_ONLY;
use super::conn::{APP_NAME, Db};
use cutover_core::event::{DatabaseReading, now_ms};

/// The previous write counter, for a rate.
#[derive(Debug, Default)]
pub(crate) struct WriteCounter(Mutex<Option<(Instant, u64)>>);

impl WriteCounter {
    async fn rate(&self, total: Option<u64>) -> Option<f64> {
        let total = total?;
        let now = Instant::now();
        let mut prev = self.0.lock().await;
        let rate = prev.and_then(|(at, n)| {
            let dt = now.duration_since(at).as_secs_f64();
            (dt > 0.0).then(|| total.saturating_sub(n) as f64 / dt)
        });
        *prev = Some((now, total));
        rate
    }
}

fn num(v: Option<&Option<String>>) -> Option<f64> {
    v?.as_deref()?.trim().parse().ok()
}

fn flag(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "on" | "1" | "true" | "t" | "yes"
    )
}

/// One guardrail reading of `db`.
pub(crate) async fn read(db: &Db, writes: &WriteCounter) -> Result<DatabaseReading, DbError> {
    let (read_only, connections, longest_trx_s, written) = if db.is_mysql() {
        let (vars, status) = futures::try_join!(
            db.show(
                "reading read_only",
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only', 'innodb_read_only')",
            ),
            db.show(
                "reading the server status",
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Innodb_rows_inserted', 'Innodb_rows_updated', 'Innodb_rows_deleted')",
            ),
        )?;
        let pairs = |rows: &Vec<Vec<(String, Option<String>)>>| -> Vec<(String, String)> {
            rows.iter()
                .filter_map(|r| {
                    Some((
                        r.first()?.1.clone()?,
                        r.get(1)?.1.clone().unwrap_or_default(),
                    ))
                })
                .collect()
        };
        let vars = pairs(&vars);
        let status = pairs(&status);
        let read_only = Some(vars.iter().any(|(_, v)| flag(v)));
        let stat = |name: &str| -> Option<u64> {
            status
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        let connections = stat("Threads_connected").map(|n| n.saturating_sub(db.own_connections()));
        let written = match (
            stat("Innodb_rows_inserted"),
            stat("Innodb_rows_updated"),
            stat("Innodb_rows_deleted"),
        ) {
            (Some(a), Some(b), Some(c)) => Some(a + b + c),
            _ => None,
        };
        // INNODB_TRX needs the PROCESS privilege; without it the age stays unknown.
        let trx = db
            .rows(
                "reading open transactions",
                "SELECT CAST(COALESCE(MAX(TIMESTAMPDIFF(MICROSECOND, trx_started, NOW(6))), 0) AS CHAR) \
                 FROM information_schema.INNODB_TRX",
                &[],
            )
            .await;
        let longest = match trx {
            Ok(rows) => num(rows.first().and_then(|r| r.first())).map(|us| us / 1e6),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read INNODB_TRX");
                None
            }
        };
        (read_only, connections, longest, written)
    } else {
        let sql = format!(
            "SELECT (pg_is_in_recovery() OR coalesce(({PG_DATABASE_READ_ONLY}), \
                 (SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_read_only'), \
                 'off') IN ('on', 'true', 'yes', '1'))::text, \
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                  AND application_name <> '{APP_NAME}')::text, \
               (SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0) \
                  FROM pg_stat_activity WHERE xact_start IS NOT NULL \
                  AND backend_type = 'client backend' AND application_name <> '{APP_NAME}')::text, \
               (SELECT sum(tup_inserted + tup_updated + tup_deleted) FROM pg_stat_database)::text"
        );
        let rows = db.rows("reading the guardrails", &sql, &[]).await?;
        let row = rows.first();
        let cell = |i: usize| row.and_then(|r| r.get(i));
        let read_only = cell(0).and_then(|c| c.as_deref()).map(flag);
        (
            read_only,
            num(cell(1)).map(|n| n as u64),
            num(cell(2)),
            num(cell(3)).map(|n| n as u64),
        )
    };
    Ok(DatabaseReading {
        observed_at: now_ms(),
        side: db.side(),
        server: Some(format!("{} {}", db.label(), db.version())),
        read_only,
        connections,
        longest_trx_s,
        writes_per_s: writes.rate(written).await,
    })
}
