//! The rehearsal world's readings, behind the same `Source` trait as the AWS and database
//! backends: one source per `SourceKind`, each measuring the running world when polled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::world::{Counts, TaskStatus, World, lock};
use cutover_core::event::{
    ChecksumState, DatabaseReading, DiffKey, DnsReading, MetricSeries, Reading, ReplicationEngine,
    ReplicationReading, ReplicationStatus, Side, SourceKind, TableDrift, TableStat,
};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// What a throttled API answers.
pub(crate) const THROTTLED: &str = "ThrottlingException: Rate exceeded (simulated)";

/// Differing keys named per table in a drift reading.
const DIFF_KEYS_SHOWN: usize = 5;

/// One view of the world.
pub(crate) struct SimSource {
    pub world: Arc<World>,
    pub kind: SourceKind,
}

impl Source for SimSource {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn name(&self) -> String {
        format!("rehearsal-{}", self.kind.as_str())
    }

    fn interval(&self) -> Duration {
        self.world.poll_interval()
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(self.world.read(self.kind))
    }
}

fn db_error(what: &str, e: sqlx::Error) -> SourceError {
    SourceError::new(format!("rehearsal {what}: {e}"))
}

/// Per second over the time since the previous poll of the same source.
fn per_second(now: u64, before: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / secs
    }
}

/// The replicator's lag figures, as DMS reports them.
struct CdcFigures {
    latency_source: f64,
    latency_target: f64,
    incoming: f64,
    /// The newest change the source committed, and the newest applied on the target.
    source_seq: i64,
    applied_seq: i64,
}

/// Like DMS: whole seconds, the age of the oldest change not yet applied (target) or not
/// yet read from the source (which happens only while the task runs).
fn cdc_figures(core: &super::world::Core, status: &TaskStatus, now: Instant) -> CdcFigures {
    let age_s = |c: Option<&super::world::Change>| {
        c.map_or(0.0, |c| {
            now.saturating_duration_since(c.at).as_secs() as f64
        })
    };
    let latency_source = match (status, core.unread_from) {
        (TaskStatus::Running, _) | (_, None) => 0.0,
        (_, Some(from)) => age_s(core.backlog.iter().find(|c| c.seq >= from)),
    };
    let source_seq = core.next_seq - 1;
    CdcFigures {
        latency_source,
        latency_target: age_s(core.backlog.front()),
        incoming: core.backlog.len() as f64,
        source_seq,
        applied_seq: core.backlog.front().map_or(source_seq, |c| c.seq - 1),
    }
}

impl World {
    /// The counters now and at this source's previous poll, with the time between.
    fn rate_window(&self, kind: SourceKind, now: Instant, counts: Counts) -> (Counts, Duration) {
        let mut rates = lock(&self.rates);
        let (at, before) = rates
            .insert(kind, (now, counts))
            .unwrap_or((self.started, Counts::default()));
        (before, now.saturating_duration_since(at))
    }

    pub(crate) async fn read(&self, kind: SourceKind) -> Result<Vec<Reading>, SourceError> {
        let api = matches!(
            kind,
            SourceKind::Replication | SourceKind::Metrics | SourceKind::Dns
        );
        if api && self.active.throttle.load(Ordering::Relaxed) {
            return Err(SourceError::new(THROTTLED));
        }
        if kind == SourceKind::Drift && self.active.panic.load(Ordering::Relaxed) {
            panic!("injected fault source-panic: the drift source's poll panicked");
        }
        match kind {
            SourceKind::Replication => self.read_replication().await,
            SourceKind::Metrics => Ok(vec![self.read_metrics().await]),
            SourceKind::Drift => self.read_drift().await,
            SourceKind::Heartbeat => self.read_heartbeat().await,
            SourceKind::Dns => Ok(vec![self.read_dns()]),
            SourceKind::SourceDb => Ok(vec![self.read_database(Side::Source).await]),
            SourceKind::TargetDb => Ok(vec![self.read_database(Side::Target).await]),
            // The simulated replicator keeps no log of its own.
            SourceKind::TaskLog => Ok(Vec::new()),
            // Probes are the plan's HTTP requests (`World::sources` adds them), not the world's.
            SourceKind::Probe => Ok(Vec::new()),
        }
    }

    async fn read_replication(&self) -> Result<Vec<Reading>, SourceError> {
        let mut core = self.core.lock().await;
        let observed_at = self.now_ms();
        let status = self.task.borrow().clone();
        // A stopped task validates nothing: its figures stay where they were at the stop.
        let frozen = match (&status, &core.stop_snapshot) {
            (TaskStatus::Stopped, Some(snap)) => Some(Arc::clone(snap)),
            _ => None,
        };
        let snap = match frozen {
            Some(snap) => snap,
            None => self
                .snapshot_locked(&mut core)
                .await
                .map_err(|e| db_error("table statistics", e))?,
        };
        let n = u32::try_from(self.cfg.tables.len()).unwrap_or(u32::MAX);
        let cdc = cdc_figures(&core, &status, Instant::now());
        let tables = self
            .cfg
            .tables
            .iter()
            .zip(&snap.tables)
            .zip(&core.applied)
            .map(|((sql, t), applied)| {
                let failed = t.unexplained.len() as u64;
                let state = if failed > 0 {
                    "Mismatched records"
                } else if t.pending > 0 {
                    "Pending records"
                } else {
                    "Validated"
                };
                TableStat {
                    table: sql.name.clone(),
                    full_load_rows: Some(self.cfg.settings.rows_per_table),
                    inserts: Some(applied.inserts),
                    updates: Some(applied.updates),
                    deletes: Some(applied.deletes),
                    validation_state: Some(state.into()),
                    validation_pending: Some(t.pending),
                    validation_failed: Some(failed),
                    validation_suspended: Some(0),
                    table_state: Some("Table completed".into()),
                }
            })
            .collect();
        // Like DMS, a stopped task publishes no lag figures: the last ones age honestly.
        let sample = |v: f64| {
            if status == TaskStatus::Stopped {
                Vec::new()
            } else {
                vec![(observed_at, v)]
            }
        };
        let word = status.as_str();
        Ok(vec![Reading::Replication(Box::new(ReplicationReading {
            observed_at,
            engine: ReplicationEngine::Rehearsal,
            name: self.cfg.task.clone(),
            status: ReplicationStatus::from_dms(word),
            status_text: word.to_string(),
            stop_reason: match &status {
                TaskStatus::Stopped => Some("stopped on request".into()),
                TaskStatus::Failed(why) => Some(why.clone()),
                _ => None,
            },
            last_error: match &status {
                TaskStatus::Failed(why) => Some(why.clone()),
                _ => None,
            },
            figures_error: None,
            tables_error: None,
            validation_enabled: None,
            lag_s: sample(cdc.latency_target),
            capture_lag_s: sample(cdc.latency_source),
            backlog: sample(cdc.incoming),
            // Counted only while the replicator runs, as the lag figures are.
            behind_transactions: (status != TaskStatus::Stopped).then_some(cdc.incoming as u64),
            behind_bytes: None,
            full_load_pct: Some(100.0),
            tables_loaded: Some(n),
            tables_loading: Some(0),
            tables_queued: Some(0),
            tables_errored: Some(0),
            tables: Some(tables),
            source_position: Some(format!("change {}", cdc.source_seq)),
            target_position: Some(format!("change {}", cdc.applied_seq)),
            source_gtid: None,
            facts: Vec::new(),
            logical: None,
            sequences: None,
            sequences_error: None,
            gap_error: None,
        }))])
    }

    async fn read_metrics(&self) -> Reading {
        let core = self.core.lock().await;
        let now = Instant::now();
        let observed_at = self.now_ms();
        let status = self.task.borrow().clone();
        let CdcFigures {
            latency_source,
            latency_target,
            incoming,
            ..
        } = cdc_figures(&core, &status, now);
        let counts = core.counts;
        drop(core);
        let (before, elapsed) = self.rate_window(SourceKind::Metrics, now, counts);
        let series = |name: &str, unit: &str, v: f64| MetricSeries {
            name: name.to_string(),
            unit: Some(unit.to_string()),
            points: vec![(observed_at, v)],
        };
        // DMS publishes no CDC metrics for a stopped task: the series come back without
        // datapoints, as CloudWatch answers, and the newest one ages honestly.
        let cdc = |name: &str, unit: &str, v: f64| {
            let mut s = series(name, unit, v);
            if status == TaskStatus::Stopped {
                s.points.clear();
            }
            s
        };
        Reading::Metrics {
            observed_at,
            series: vec![
                cdc("CDCLatencySource", "Seconds", latency_source),
                cdc("CDCLatencyTarget", "Seconds", latency_target),
                cdc("CDCIncomingChanges", "Count", incoming),
                series(
                    "WritesSource",
                    "writes/s",
                    per_second(counts.acked_source, before.acked_source, elapsed),
                ),
                series(
                    "WritesTarget",
                    "writes/s",
                    per_second(counts.acked_target, before.acked_target, elapsed),
                ),
                series(
                    "WritesRefused",
                    "writes/s",
                    per_second(counts.refused, before.refused, elapsed),
                ),
            ],
        }
    }

    /// Row counts and checksums of both sides. A difference whose key still has a change in
    /// the replicator's backlog is in flight, not drift: a table whose every difference is
    /// in flight is `Pending`, and `Mismatch` needs a difference nothing explains (its keys
    /// are listed first). Once replication is stopped and the name points at the target, the
    /// target is authoritative and the compare means nothing: no reading, the last ones age.
    async fn read_drift(&self) -> Result<Vec<Reading>, SourceError> {
        let mut core = self.core.lock().await;
        let stopped = *self.task.borrow() == TaskStatus::Stopped;
        if stopped && self.points_at_target() {
            return Ok(Vec::new());
        }
        let observed_at = self.now_ms();
        let snap = self
            .snapshot_locked(&mut core)
            .await
            .map_err(|e| db_error("checksum compare", e))?;
        drop(core);
        Ok(self
            .cfg
            .tables
            .iter()
            .zip(&snap.tables)
            .map(|(sql, t)| {
                let c = &t.compare;
                Reading::Drift(TableDrift {
                    observed_at,
                    table: sql.name.clone(),
                    source_rows: Some(c.source_rows),
                    target_rows: Some(c.target_rows),
                    checksum: if c.diffs.is_empty() {
                        ChecksumState::Equal
                    } else if t.unexplained.is_empty() {
                        ChecksumState::Pending
                    } else {
                        ChecksumState::Mismatch
                    },
                    chunks_done: Some(c.chunks_total),
                    chunks_total: Some(c.chunks_total),
                    differing_keys: t
                        .unexplained
                        .iter()
                        .chain(c.diffs.iter().filter(|d| !t.unexplained.contains(d)))
                        .take(DIFF_KEYS_SHOWN)
                        .map(|(id, kind)| DiffKey {
                            key: format!("id={id}"),
                            kind: *kind,
                        })
                        .collect(),
                    note: None,
                })
            })
            .collect())
    }

    async fn read_heartbeat(&self) -> Result<Vec<Reading>, SourceError> {
        let mut core = self.core.lock().await;
        let ts = super::db::read_heartbeat(&mut core.target.conn)
            .await
            .map_err(|e| db_error("heartbeat", e))?;
        let observed_at = self.now_ms();
        drop(core);
        let ts =
            ts.ok_or_else(|| SourceError::new("the heartbeat row is missing on the target"))?;
        // Whole seconds, as the heartbeat is written once a second.
        let lag_s = ((observed_at - ts).max(0) / 1000) as f64;
        Ok(vec![Reading::Heartbeat { observed_at, lag_s }])
    }

    fn read_dns(&self) -> Reading {
        let now = Instant::now();
        let mut zone = lock(&self.zone);
        let resolved = zone.resolve(now);
        Reading::Dns(Box::new(DnsReading {
            observed_at: self.now_ms(),
            name: zone.name.clone(),
            record_type: zone.record_type.clone(),
            value: Some(zone.value.clone()),
            ttl: Some(zone.ttl),
            change_status: zone.status(now).map(str::to_string),
            change_id: zone.change.as_ref().map(|c| c.id.clone()),
            resolved: Some(resolved),
            sets: Vec::new(),
            authoritative: None,
            authoritative_error: None,
        }))
    }

    async fn read_database(&self, side: Side) -> Reading {
        let mut core = self.core.lock().await;
        let now = Instant::now();
        let observed_at = self.now_ms();
        let read_only = core.server(side).read_only;
        let connections = core
            .clients
            .iter()
            .filter(|c| self.side_of(&c.resolved) == Some(side))
            .count() as u64;
        let counts = core.counts;
        drop(core);
        let kind = SourceKind::for_side(side);
        let (before, elapsed) = self.rate_window(kind, now, counts);
        let writes = match side {
            Side::Source => per_second(counts.acked_source, before.acked_source, elapsed),
            Side::Target => per_second(counts.acked_target, before.acked_target, elapsed),
        };
        let label = match side {
            Side::Source => &self.cfg.source_label,
            Side::Target => &self.cfg.target_label,
        };
        Reading::Database(DatabaseReading {
            observed_at,
            side,
            server: Some(format!("{label} · SQLite {}", self.cfg.sqlite_version)),
            read_only: Some(read_only),
            connections: Some(connections),
            longest_trx_s: Some(0.0),
            writes_per_s: Some(writes),
        })
    }
}
