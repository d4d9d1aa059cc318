//! The real databases as [`Source`]s: the continuous drift compare, the heartbeat lag and
//! the guardrails of each side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::chunk::Checker;
use super::compare::Continuous;
use super::conn::Db;
use super::guard::{self, WriteCounter};
use super::heartbeat;
use super::{DbError, DbOptions};
use cutover_core::event::{Reading, SourceKind, now_ms};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// The readings sources of a pair of databases: Drift, Heartbeat (when `opts.heartbeat`),
/// SourceDb and TargetDb guardrails.
pub fn sources(source: Db, target: Db, opts: DbOptions) -> Vec<Arc<dyn Source>> {
    let mut out: Vec<Arc<dyn Source>> = Vec::new();
    out.push(Arc::new(DriftSource {
        checker: Checker::new(source.clone(), target.clone(), opts.clone()),
        state: Mutex::new(Continuous::default()),
    }));
    if opts.heartbeat {
        out.push(Arc::new(HeartbeatSource {
            source: source.clone(),
            target: target.clone(),
        }));
    }
    out.push(Arc::new(GuardSource {
        db: source,
        writes: WriteCounter::default(),
    }));
    out.push(Arc::new(GuardSource {
        db: target,
        writes: WriteCounter::default(),
    }));
    out
}

fn source_error(e: DbError) -> SourceError {
    // DbError messages are built scrubbed of secrets.
    SourceError(e.to_string())
}

/// Continuous chunked compare of every table; see `compare::Continuous`.
pub struct DriftSource {
    checker: Checker,
    state: Mutex<Continuous>,
}

impl Source for DriftSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Drift
    }

    fn name(&self) -> String {
        "db-drift".into()
    }

    fn interval(&self) -> Duration {
        self.checker.opts.drift_interval
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.checker.opts.poll_budget;
            let lag = heartbeat::probe_lag(&self.checker.src, &self.checker.tgt).await;
            let paused = match (self.checker.opts.pause_lag_s, lag) {
                (Some(limit), Some(l)) if l > limit => {
                    tracing::info!(
                        lag_s = l,
                        limit_s = limit,
                        "drift compare paused while replication lags"
                    );
                    true
                }
                _ => false,
            };
            let mut state = self.state.lock().await;
            let drifts = state
                .work(&self.checker, deadline, lag, paused)
                .await
                .map_err(source_error)?;
            Ok(drifts.into_iter().map(Reading::Drift).collect())
        })
    }
}

/// Writes a heartbeat on the source each poll and reads the lag on the target.
pub struct HeartbeatSource {
    source: Db,
    target: Db,
}

impl Source for HeartbeatSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Heartbeat
    }

    fn name(&self) -> String {
        "db-heartbeat".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            if let Err(e) = heartbeat::write_beat(&self.source).await {
                // Once writes are frozen no beat can be written; the lag is still read from
                // the last beat (0 once the target has it).
                if !heartbeat::is_read_only_refusal(&e) {
                    return Err(source_error(e));
                }
            }
            let lag_s = heartbeat::lag(&self.source, &self.target, true)
                .await
                .map_err(source_error)?;
            Ok(vec![Reading::Heartbeat {
                observed_at: now_ms(),
                lag_s,
            }])
        })
    }
}

/// read_only, connections, oldest transaction and write rate of one side.
pub struct GuardSource {
    db: Db,
    writes: WriteCounter,
}

impl Source for GuardSource {
    fn kind(&self) -> SourceKind {
        SourceKind::for_side(self.db.side())
    }

    fn name(&self) -> String {
        format!("db-{}", self.db.side().as_str())
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            let reading = guard::read(&self.db, &self.writes)
                .await
                .map_err(source_error)?;
            Ok(vec![Reading::Database(reading)])
        })
    }
}
