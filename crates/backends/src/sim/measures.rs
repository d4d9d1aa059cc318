//! The measures of the window's cost: both sides compared at one instant, the writes lost
//! against the ledger, rows diverged, downtime, and the periodic `WorldMeasured`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::db::{self, TableCompare};
use super::fault::Fault;
use super::ledger::{self};
use super::world::*;
use cutover_core::event::{DiffKind, Event, Side, WorldMeasures};

/// One table's compare under a consistent snapshot, with what the backlog explains.
#[derive(Clone, Debug)]
pub(crate) struct TableSnap {
    pub compare: TableCompare,
    /// Changes of this table still in the replicator's backlog.
    pub pending: u64,
    /// Differing keys that no backlog change accounts for.
    pub unexplained: Vec<(i64, DiffKind)>,
}

/// Both sides compared at one instant.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub tables: Vec<TableSnap>,
}

impl Snapshot {
    pub fn diverged(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| t.compare.diffs.len() as u64)
            .sum()
    }

    pub fn unexplained(&self) -> u64 {
        self.tables.iter().map(|t| t.unexplained.len() as u64).sum()
    }
}

pub(super) async fn measurer(weak: Weak<World>, signals: Arc<Signals>) {
    let every = match weak.upgrade() {
        Some(w) => w.cfg.timings.measure_every,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = signals.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(world) = weak.upgrade() else { return };
        let measures = world.measures().await;
        let sent = world.emit(Event::WorldMeasured {
            at: world.now_ms(),
            measures,
        });
        if !sent {
            // `finish` sent the last figures.
            return;
        }
    }
}

impl World {
    /// Compares every data table on both sides under the world lock; cached until the
    /// data changes (after the freeze the world is still, and polls cost nothing).
    pub(crate) async fn snapshot_locked(
        &self,
        core: &mut Core,
    ) -> Result<Arc<Snapshot>, sqlx::Error> {
        if let Some((generation, snap)) = &core.snapshot
            && *generation == core.data_gen
        {
            return Ok(Arc::clone(snap));
        }
        let mut pending: Vec<(u64, HashSet<i64>)> =
            vec![(0, HashSet::new()); self.cfg.tables.len()];
        for c in &core.backlog {
            if let Some((t, id)) = c.what.key()
                && let Some(p) = pending.get_mut(t)
            {
                p.0 += 1;
                p.1.insert(id);
            }
        }
        let mut tables = Vec::with_capacity(self.cfg.tables.len());
        for (t, sql) in self.cfg.tables.iter().enumerate() {
            let src = sql.read_all(&mut core.source.conn).await?;
            let tgt = sql.read_all(&mut core.target.conn).await?;
            let compare = db::compare(&src, &tgt);
            let (count, keys) = &pending[t];
            let unexplained = compare
                .diffs
                .iter()
                .filter(|(id, _)| !keys.contains(id))
                .copied()
                .collect();
            tables.push(TableSnap {
                compare,
                pending: *count,
                unexplained,
            });
        }
        let snap = Arc::new(Snapshot { tables });
        core.snapshot = Some((core.data_gen, Arc::clone(&snap)));
        Ok(snap)
    }

    /// Which database holds the truth: the target once the name points at it and it takes
    /// writes, the source before.
    pub(super) fn authority(&self, core: &Core) -> Side {
        if self.points_at_target() && !core.target.read_only {
            Side::Target
        } else {
            Side::Source
        }
    }

    pub(super) async fn writes_lost(
        &self,
        core: &mut Core,
        authority: Side,
    ) -> Result<u64, sqlx::Error> {
        let key = (core.data_gen, authority);
        if let Some((k, n)) = core.lost_cache
            && k == key
        {
            return Ok(n);
        }
        let mut state: Vec<HashMap<i64, (i64, db::RowDigest)>> = Vec::new();
        for sql in &self.cfg.tables {
            let rows = sql.read_all(&mut core.server(authority).conn).await?;
            state.push(
                rows.iter()
                    .map(|r| (r.id, (r.version, r.digest())))
                    .collect(),
            );
        }
        let lost = core
            .ledger
            .lost(|t, id| state.get(t).and_then(|m| m.get(&id)).copied());
        core.lost_cache = Some((key, lost));
        Ok(lost)
    }

    pub(crate) async fn measures_locked(&self, core: &mut Core) -> WorldMeasures {
        let authority = self.authority(core);
        let writes_lost = self.writes_lost(core, authority).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "rehearsal ledger check failed");
            0
        });
        let snap = self.snapshot_locked(core).await;
        if let Ok(snap) = &snap {
            self.check_repaired(core, snap);
        }
        let status = self.task.borrow().clone();
        let rows_diverged = match (&status, core.stop_diverged) {
            (TaskStatus::Stopped | TaskStatus::Stopping | TaskStatus::Failed(_), Some(n)) => n,
            _ => snap.as_ref().map(|s| s.unexplained()).unwrap_or(0),
        };
        let now = core.finished_at.unwrap_or_else(Instant::now);
        let open = core.clients.iter().filter_map(|c| c.refusing_since);
        let downtime_s = ledger::union_seconds(&core.downtime, open, now);
        WorldMeasures {
            writes_attempted: core.counts.attempted,
            writes_acked: core.counts.acked,
            writes_refused: core.counts.refused,
            writes_lost,
            rows_diverged,
            downtime_s,
            authority: Some(authority),
        }
    }

    /// Clears the `drop-change` fault once its row matches on both sides again.
    pub(super) fn check_repaired(&self, core: &mut Core, snap: &Snapshot) {
        if let DropState::Dropped {
            table,
            id,
            repaired: false,
        } = core.drop
        {
            let differs = snap
                .tables
                .get(table)
                .is_some_and(|t| t.compare.diffs.iter().any(|(k, _)| *k == id));
            if !differs {
                core.drop = DropState::Dropped {
                    table,
                    id,
                    repaired: true,
                };
                let detail = format!(
                    "{} id={id} matches on both sides again",
                    self.table_name(table)
                );
                self.fault_changed(Fault::DropChange, false, detail);
            }
        }
    }

    /// The figures now.
    pub async fn measures(&self) -> WorldMeasures {
        let mut core = self.core.lock().await;
        self.measures_locked(&mut core).await
    }
}
