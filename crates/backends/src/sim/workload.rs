//! The applications: clients that resolve the CNAME through a TTL cache and write to
//! whichever database it names, the heartbeat writer, and the rows they write.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::db::{self, Row};
use super::ledger::Effect;
use super::world::*;
use cutover_core::event::Side;

/// Application write counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub attempted: u64,
    pub acked: u64,
    pub refused: u64,
    pub acked_source: u64,
    pub acked_target: u64,
}

/// An application client: its cached answer for the CNAME and its refusal streak.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub resolved: String,
    pub expires: Instant,
    pub refusing_since: Option<Instant>,
}

const WORDS: [&str; 8] = [
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor",
];

pub(super) fn make_row(rng: &mut StdRng, table: &str, id: i64, version: i64) -> Row {
    let note = if rng.random_bool(0.3) {
        None
    } else {
        Some(format!(
            "{} note {}",
            WORDS[rng.random_range(0..WORDS.len())],
            rng.random_range(0..1000)
        ))
    };
    Row {
        id,
        label: format!("{table}-{id}-{}", WORDS[rng.random_range(0..WORDS.len())]),
        qty: rng.random_range(0..1000),
        amount: f64::from(rng.random_range(0..1_000_000u32)) / 100.0,
        note,
        version,
    }
}

pub(super) async fn workload(weak: Weak<World>, signals: Arc<Signals>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: usize = 0;
    loop {
        tokio::select! {
            biased;
            _ = signals.workload.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(world) = weak.upgrade() else { return };
        let clients = world.cfg.settings.clients.max(1) as usize;
        let mut core = world.core.lock().await;
        world
            .client_write(&mut core, n % clients, Instant::now())
            .await;
        n = n.wrapping_add(1);
    }
}

pub(super) async fn heartbeat(weak: Weak<World>, signals: Arc<Signals>) {
    let every = match weak.upgrade() {
        Some(w) => w.cfg.timings.heartbeat_every,
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
        if let Err(e) = world.write_heartbeat().await {
            tracing::warn!(error = %e, "rehearsal heartbeat write failed");
        }
    }
}

impl World {
    /// One application write by client `i`: resolve (through its cache), pick the database,
    /// commit or be refused, capture the change on the source, record it in the ledger.
    pub(super) async fn client_write(&self, core: &mut Core, i: usize, now: Instant) {
        let Some(client) = core.clients.get_mut(i) else {
            return;
        };
        if now >= client.expires {
            client.resolved = lock(&self.zone).resolve(now);
            // A TTL past what an Instant can hold re-resolves next time rather than panic.
            client.expires = now
                .checked_add(Duration::from_secs(self.cfg.dns.ttl))
                .unwrap_or(now);
        }
        let side = self.side_of(&client.resolved);
        core.counts.attempted += 1;
        let writable = side.filter(|s| !core.server(*s).read_only);
        let Some(side) = writable else {
            self.refuse(core, i, now);
            return;
        };

        let t = core.rng.random_range(0..self.cfg.tables.len().max(1));
        let Some(table) = self.cfg.tables.get(t) else {
            return;
        };
        let seq = core.next_seq;
        core.next_seq += 1;
        let roll: f64 = core.rng.random();
        let next_id = core.next_id[t];
        let change = if roll < 0.35 || next_id <= 1 {
            core.next_id[t] += 1;
            ChangeKind::Insert(t, make_row(&mut core.rng, &table.name, next_id, seq))
        } else {
            let id = core.rng.random_range(1..next_id);
            if roll < 0.85 {
                ChangeKind::Update(t, make_row(&mut core.rng, &table.name, id, seq))
            } else {
                ChangeKind::Delete(t, id)
            }
        };
        let conn = &mut core.server(side).conn;
        let result = match &change {
            ChangeKind::Insert(_, row) => table.insert(conn, row).await,
            ChangeKind::Update(_, row) => table.update(conn, row).await,
            ChangeKind::Delete(_, id) => table.delete(conn, *id).await,
            ChangeKind::Heartbeat(_) => Ok(0),
        };
        let affected = match result {
            Ok(n) => n,
            Err(e) => {
                // The server refused the statement (e.g. a table dropped by a `sql` action):
                // to the application that is a failed write like a read-only refusal.
                tracing::warn!(side = side.as_str(), error = %e, "rehearsal write failed");
                self.refuse(core, i, now);
                return;
            }
        };
        core.counts.acked += 1;
        match side {
            Side::Source => core.counts.acked_source += 1,
            Side::Target => core.counts.acked_target += 1,
        }
        if let Some(from) = core.clients[i].refusing_since.take() {
            core.downtime.push((from, now));
        }
        // An update or delete of a key that is gone changes nothing: acked, but no effect.
        if affected == 0 {
            return;
        }
        let effect = match &change {
            ChangeKind::Insert(_, row) | ChangeKind::Update(_, row) => Effect::Wrote {
                version: row.version,
                digest: row.digest(),
            },
            _ => Effect::Deleted,
        };
        if let Some((t, id)) = change.key() {
            core.ledger.record(t, id, effect);
        }
        core.data_gen += 1;
        if side == Side::Source {
            self.capture(core, change, now);
        }
    }

    pub(super) fn refuse(&self, core: &mut Core, i: usize, now: Instant) {
        core.counts.refused += 1;
        if let Some(c) = core.clients.get_mut(i) {
            c.refusing_since.get_or_insert(now);
        }
    }

    /// The heartbeat writer's privileged update on the source.
    pub(super) async fn write_heartbeat(&self) -> Result<(), sqlx::Error> {
        let mut core = self.core.lock().await;
        let ts = self.now_ms();
        db::write_heartbeat(&mut core.source.conn, ts).await?;
        self.capture(&mut core, ChangeKind::Heartbeat(ts), Instant::now());
        Ok(())
    }
}
