//! Manners, like pt-table-checksum's: before a chunk starts, the compare pauses while the
//! replica lags more than `max_lag_s` or a server is busier than `max_load` (MySQL
//! `Threads_running`, PostgreSQL active sessions). The pause is published ("throttled:
//! lag 4.2 s > 2 s") on a watch channel the CLI and the drift pane read.

use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use super::conn::Db;
use super::{DbError, DbOptions};

/// How often the readings are taken while running, and while paused.
const EVERY: Duration = Duration::from_millis(500);
const PAUSED_POLL: Duration = Duration::from_millis(200);

pub(crate) struct Throttle {
    max_lag_s: Option<f64>,
    max_load: Option<u64>,
    lag_query: Option<String>,
    last: Mutex<Option<Instant>>,
    status: watch::Sender<Option<String>>,
}

impl Throttle {
    pub(crate) fn new(opts: &DbOptions, status: watch::Sender<Option<String>>) -> Throttle {
        Throttle {
            max_lag_s: opts.max_lag_s,
            max_load: opts.max_load,
            lag_query: opts.lag_query.clone(),
            last: Mutex::new(None),
            status,
        }
    }

    fn active(&self) -> bool {
        self.max_lag_s.is_some() || self.max_load.is_some()
    }

    /// Returns once neither limit is exceeded (at once when none is set or the last
    /// reading is recent). A reading that fails is an error: a compare never runs on
    /// unknown lag.
    pub(crate) async fn wait(&self, src: &Db, tgt: &Db) -> Result<(), DbError> {
        if !self.active() {
            return Ok(());
        }
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(());
        }
        loop {
            match self.over(src, tgt).await? {
                None => {
                    self.status.send_if_modified(|s| s.take().is_some());
                    *last = Some(Instant::now());
                    return Ok(());
                }
                Some(why) => {
                    if self.status.borrow().as_deref() != Some(why.as_str()) {
                        tracing::info!("{why}");
                    }
                    self.status.send_replace(Some(why));
                    // Backing off from a busy server, not synchronising: the next reading
                    // decides.
                    tokio::time::sleep(PAUSED_POLL).await;
                }
            }
        }
    }

    /// Why the compare must wait now, if it must.
    async fn over(&self, src: &Db, tgt: &Db) -> Result<Option<String>, DbError> {
        if let Some(max) = self.max_lag_s
            && let Some(lag) = self.lag(tgt).await?
            && lag > max
        {
            return Ok(Some(format!("throttled: lag {lag:.1} s > {} s", fmt(max))));
        }
        if let Some(max) = self.max_load {
            for (db, side) in [(src, "source"), (tgt, "target")] {
                let load = load(db).await?;
                if load > max {
                    let what = if db.is_mysql() {
                        "Threads_running"
                    } else {
                        "active sessions"
                    };
                    return Ok(Some(format!("throttled: {side} {what} {load} > {max}")));
                }
            }
        }
        Ok(None)
    }

    /// The target's lag in seconds: `lag_query`'s first cell if given, else a MySQL
    /// replica's `Seconds_Behind_Master`; `None` when the target is not a replica.
    async fn lag(&self, tgt: &Db) -> Result<Option<f64>, DbError> {
        if let Some(q) = &self.lag_query {
            let rows = tgt.rows("the lag query (--lag-query)", q, &[]).await?;
            let v = rows.first().and_then(|r| r.first()).cloned().flatten();
            return v
                .map(|v| {
                    v.trim().parse::<f64>().map_err(|_| DbError::State {
                        who: "target".into(),
                        reason: format!("the lag query returned \"{v}\", not a number of seconds"),
                        fix: "make --lag-query return one number (seconds)".into(),
                    })
                })
                .transpose();
        }
        if !tgt.is_mysql() {
            return Ok(None);
        }
        let rows = tgt
            .show("reading the replica's lag", "SHOW SLAVE STATUS")
            .await?;
        Ok(rows
            .first()
            .and_then(|r| {
                r.iter().find_map(|(name, v)| {
                    matches!(
                        name.as_str(),
                        "Seconds_Behind_Master" | "Seconds_Behind_Source"
                    )
                    .then(|| v.clone())
                })
            })
            .flatten()
            .and_then(|v| v.trim().parse().ok()))
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Threads_running (MySQL/MariaDB) or active sessions (PostgreSQL), less this compare's own.
async fn load(db: &Db) -> Result<u64, DbError> {
    let (what, sql) = if db.is_mysql() {
        (
            "Threads_running",
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'THREADS_RUNNING'",
        )
    } else {
        (
            "active sessions",
            "SELECT count(*)::text FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()",
        )
    };
    let rows = db.rows(what, sql, &[]).await?;
    let n: u64 = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // The reading's own thread counts on MySQL.
    Ok(if db.is_mysql() {
        n.saturating_sub(1)
    } else {
        n
    })
}
