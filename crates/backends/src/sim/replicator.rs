//! The CDC replicator: the task's status, the backlog of captured source changes, their
//! application to the target after the lag, stopping and starting, and the `drop-change`
//! fault that loses one change in flight.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use super::db::{self, Row};
use super::fault::Fault;
use super::world::*;

/// The replication task's status, as DMS names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskStatus {
    Running,
    Stopping,
    Stopped,
    Starting,
    /// Applying failed (e.g. someone dropped a table on the target); the reason.
    Failed(String),
}

impl TaskStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Stopping => "stopping",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Starting => "starting",
            TaskStatus::Failed(_) => "failed",
        }
    }

    /// Whether the task captures changes from the source right now.
    pub(crate) fn capturing(&self) -> bool {
        matches!(self, TaskStatus::Running)
    }
}

/// A committed change on the source, waiting in the replicator's backlog.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub at: Instant,
    pub seq: i64,
    pub what: ChangeKind,
}

#[derive(Clone, Debug)]
pub(crate) enum ChangeKind {
    Insert(usize, Row),
    Update(usize, Row),
    Delete(usize, i64),
    Heartbeat(i64),
}

impl ChangeKind {
    /// `(table index, id)` of a data change; `None` for the heartbeat.
    pub fn key(&self) -> Option<(usize, i64)> {
        match self {
            ChangeKind::Insert(t, r) | ChangeKind::Update(t, r) => Some((*t, r.id)),
            ChangeKind::Delete(t, id) => Some((*t, *id)),
            ChangeKind::Heartbeat(_) => None,
        }
    }

    pub(crate) fn verb(&self) -> &'static str {
        match self {
            ChangeKind::Insert(..) => "insert",
            ChangeKind::Update(..) => "update",
            ChangeKind::Delete(..) => "delete",
            ChangeKind::Heartbeat(_) => "heartbeat",
        }
    }
}

/// Changes the replicator applied to the target, per table.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Applied {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

/// Progress of the `drop-change` fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DropState {
    /// Not injected in this run.
    Off,
    /// Waiting for the source to be frozen.
    Waiting,
    /// The backlog was empty at the freeze: the next data change is dropped.
    Armed,
    /// Done; `repaired` once the row matches on both sides again.
    Dropped {
        table: usize,
        id: i64,
        repaired: bool,
    },
}

pub(super) async fn replicator(weak: Weak<World>, signals: Arc<Signals>) {
    loop {
        if signals.cancel.is_cancelled() {
            return;
        }
        let Some(world) = weak.upgrade() else { return };
        let status = world.task.borrow().clone();
        let transition = world.cfg.timings.task_transition;
        match status {
            TaskStatus::Running => {
                let next = world.replicate_due().await;
                drop(world);
                tokio::select! {
                    biased;
                    _ = signals.cancel.cancelled() => return,
                    _ = signals.wake.notified() => {}
                    _ = async {
                        match next {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
            TaskStatus::Stopping | TaskStatus::Starting => {
                // The task takes a moment to finish its batch or to reconnect.
                drop(world);
                if !sleep_until(&signals, Instant::now() + transition).await {
                    return;
                }
                let Some(world) = weak.upgrade() else { return };
                if status == TaskStatus::Stopping {
                    world.complete_stop().await;
                } else {
                    world.complete_start().await;
                }
            }
            TaskStatus::Stopped | TaskStatus::Failed(_) => {
                drop(world);
                tokio::select! {
                    biased;
                    _ = signals.cancel.cancelled() => return,
                    _ = signals.wake.notified() => {}
                }
            }
        }
    }
}

impl World {
    pub(crate) fn wake_replicator(&self) {
        self.signals.wake.notify_one();
    }

    pub(super) fn current_lag(&self) -> Duration {
        if self.active.lag_spike.load(Ordering::Relaxed) {
            self.cfg.timings.lag_spike_lag
        } else {
            Duration::from_millis(u64::try_from(self.cfg.settings.lag_ms).unwrap_or(0))
        }
    }

    /// Puts a committed source change in the replicator's backlog (the binlog, in effect).
    pub(super) fn capture(&self, core: &mut Core, what: ChangeKind, now: Instant) {
        if let (DropState::Armed, Some((table, id))) = (&core.drop, what.key()) {
            core.drop = DropState::Dropped {
                table,
                id,
                repaired: false,
            };
            let detail = format!(
                "the replicator silently lost the {} of {} id={id} (the backlog was empty at the freeze)",
                what.verb(),
                self.table_name(table)
            );
            self.fault_changed(Fault::DropChange, true, detail);
            return;
        }
        let seq = core.next_seq;
        core.next_seq += 1;
        let was_empty = core.backlog.is_empty();
        core.backlog.push_back(Change { at: now, seq, what });
        if was_empty {
            // Otherwise the replicator already waits for an earlier change to fall due.
            self.wake_replicator();
        }
    }

    /// Loses one data change that is still in the backlog and is the last change of its
    /// row there (so no later change repairs it); arms for the next one when there is none.
    pub(super) fn drop_in_flight(&self, core: &mut Core) {
        let mut later: HashSet<(usize, i64)> = HashSet::new();
        let mut candidates = Vec::new();
        for (i, c) in core.backlog.iter().enumerate().rev() {
            if let Some(key) = c.what.key()
                && later.insert(key)
            {
                candidates.push(i);
            }
        }
        if candidates.is_empty() {
            core.drop = DropState::Armed;
            return;
        }
        let pick = candidates[core.rng.random_range(0..candidates.len())];
        let in_flight = core
            .backlog
            .iter()
            .filter(|c| c.what.key().is_some())
            .count();
        let Some(change) = core.backlog.remove(pick) else {
            return;
        };
        let Some((table, id)) = change.what.key() else {
            return;
        };
        core.drop = DropState::Dropped {
            table,
            id,
            repaired: false,
        };
        core.data_gen += 1;
        let detail = format!(
            "the replicator silently lost the {} of {} id={id} ({in_flight} data changes were in flight at the freeze)",
            change.what.verb(),
            self.table_name(table)
        );
        self.fault_changed(Fault::DropChange, true, detail);
    }

    /// Applies every change that has fallen due. Returns when the next one falls due, or
    /// `None` when there is nothing to wait for but a wake-up.
    pub(super) async fn replicate_due(&self) -> Option<Instant> {
        let mut core = self.core.lock().await;
        if self.active.stall.load(Ordering::Relaxed) || !self.task.borrow().capturing() {
            return None;
        }
        let lag = self.current_lag();
        let now = Instant::now();
        while let Some(head) = core.backlog.front() {
            let due = head.at + lag;
            if due > now {
                return Some(due);
            }
            let Some(change) = core.backlog.pop_front() else {
                break;
            };
            if let Err(e) = self.apply(&mut core, &change).await {
                let msg = format!("applying {} failed: {e}", change.what.verb());
                core.backlog.push_front(change);
                let next = core.next_seq;
                core.unread_from.get_or_insert(next);
                self.task.send_replace(TaskStatus::Failed(msg));
                return None;
            }
        }
        None
    }

    pub(super) async fn apply(&self, core: &mut Core, change: &Change) -> Result<(), sqlx::Error> {
        let conn = &mut core.target.conn;
        let table = |t: usize| self.cfg.tables.get(t);
        match &change.what {
            ChangeKind::Heartbeat(ts) => return db::write_heartbeat(conn, *ts).await,
            ChangeKind::Insert(t, row) | ChangeKind::Update(t, row) => {
                if let Some(sql) = table(*t) {
                    sql.upsert(conn, row).await?;
                }
            }
            ChangeKind::Delete(t, id) => {
                if let Some(sql) = table(*t) {
                    sql.delete(conn, *id).await?;
                }
            }
        }
        if let Some((t, _)) = change.what.key()
            && let Some(a) = core.applied.get_mut(t)
        {
            match change.what {
                ChangeKind::Insert(..) => a.inserts += 1,
                ChangeKind::Update(..) => a.updates += 1,
                _ => a.deletes += 1,
            }
        }
        core.data_gen += 1;
        Ok(())
    }

    /// The end of "stopping": record what differs at this instant, then report stopped.
    pub(super) async fn complete_stop(&self) {
        let mut core = self.core.lock().await;
        match self.snapshot_locked(&mut core).await {
            Ok(snap) => {
                core.stop_diverged = Some(snap.diverged());
                core.stop_snapshot = Some(snap);
            }
            Err(e) => {
                core.stop_snapshot = None;
                tracing::warn!(error = %e, "rehearsal compare at replication stop failed");
            }
        }
        core.unread_from = Some(core.next_seq);
        self.task.send_if_modified(|s| {
            let stopping = *s == TaskStatus::Stopping;
            if stopping {
                *s = TaskStatus::Stopped;
            }
            stopping
        });
    }

    pub(super) async fn complete_start(&self) {
        let mut core = self.core.lock().await;
        core.unread_from = None;
        core.stop_snapshot = None;
        self.task.send_if_modified(|s| {
            let starting = *s == TaskStatus::Starting;
            if starting {
                *s = TaskStatus::Running;
            }
            starting
        });
    }
}
