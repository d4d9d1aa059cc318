//! The running rehearsal world: two SQLite servers, the application clients following the
//! CNAME, the CDC replicator, the heartbeat writer, the fault schedule and the measures.
//!
//! Every write, every apply and every consistent read happens under one lock (`World::core`),
//! which plays the part of the databases' commit order: a change is captured in the same
//! critical section that commits it, and a compare of both sides sees one instant.
//! Background tasks hold only a `Weak<World>` between steps, so dropping the last `Arc`
//! (or calling `shutdown`) ends them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::db::{self, Row, TableCompare, TableSql, WorldError};
use super::fault::Fault;
use super::ledger::{self, Effect, Ledger};
use cutover_core::event::{DiffKind, Event, Side, SourceKind, WorldMeasures, now_ms};
use cutover_core::plan::{DnsRecord, Plan, RehearsalSettings};

/// How the world is disturbed and seeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorldOptions {
    pub seed: u64,
    pub faults: Vec<Fault>,
}

/// The world's clockwork. `Default` is what `cutover rehearse` runs; tests shrink it.
#[derive(Clone, Debug)]
pub(crate) struct Timings {
    /// When the timed faults (lag spike, throttle, stall) begin, plus up to `fault_jitter`.
    pub fault_start: Duration,
    pub fault_jitter: Duration,
    pub lag_spike_lag: Duration,
    pub lag_spike_for: Duration,
    pub throttle_for: Duration,
    pub stall_for: Duration,
    /// How long a DNS change stays PENDING under `dns-slow`.
    pub dns_slow: Duration,
    /// How long the task spends in "stopping" and "starting".
    pub task_transition: Duration,
    pub heartbeat_every: Duration,
    pub measure_every: Duration,
    /// Upper bound on `finish` waiting for the replicator to drain.
    pub settle_max: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            fault_start: Duration::from_secs(3),
            fault_jitter: Duration::from_millis(500),
            lag_spike_lag: Duration::from_secs(6),
            lag_spike_for: Duration::from_secs(8),
            throttle_for: Duration::from_secs(10),
            stall_for: Duration::from_secs(10),
            dns_slow: Duration::from_secs(15),
            task_transition: Duration::from_millis(400),
            heartbeat_every: Duration::from_secs(1),
            measure_every: Duration::from_secs(1),
            settle_max: Duration::from_secs(20),
        }
    }
}

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
    fn capturing(&self) -> bool {
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

    fn verb(&self) -> &'static str {
        match self {
            ChangeKind::Insert(..) => "insert",
            ChangeKind::Update(..) => "update",
            ChangeKind::Delete(..) => "delete",
            ChangeKind::Heartbeat(_) => "heartbeat",
        }
    }
}

/// One database server: the SQLite connection and MySQL's `read_only` switch around it.
pub(crate) struct Server {
    pub conn: SqliteConnection,
    /// Refuses application writes; privileged writers (replicator, heartbeat) bypass it.
    pub read_only: bool,
}

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

/// Everything the world lock guards.
pub(crate) struct Core {
    pub source: Server,
    pub target: Server,
    pub backlog: VecDeque<Change>,
    /// The next global write sequence number (a row's `version`).
    pub next_seq: i64,
    /// The next key per table: keys are never reused, on either side.
    pub next_id: Vec<i64>,
    pub applied: Vec<Applied>,
    pub ledger: Ledger,
    pub counts: Counts,
    pub clients: Vec<Client>,
    /// Closed refusal intervals of all clients.
    pub downtime: Vec<(Instant, Instant)>,
    /// Bumped by every change to table data or the backlog's data changes.
    pub data_gen: u64,
    snapshot: Option<(u64, Arc<Snapshot>)>,
    lost_cache: Option<((u64, Side), u64)>,
    /// Rows differing when replication last finished stopping.
    pub stop_diverged: Option<u64>,
    /// Both sides compared when replication last finished stopping: a stopped task's
    /// validation figures stay where they were then (DMS validates only while it runs).
    pub stop_snapshot: Option<Arc<Snapshot>>,
    /// Changes from this sequence on were committed while the task was not capturing.
    pub unread_from: Option<i64>,
    pub drop: DropState,
    rng: StdRng,
    pub finished_at: Option<Instant>,
}

impl Core {
    pub fn server(&mut self, side: Side) -> &mut Server {
        match side {
            Side::Source => &mut self.source,
            Side::Target => &mut self.target,
        }
    }
}

/// The simulated Route 53 record.
pub(crate) struct Zone {
    pub name: String,
    pub record_type: String,
    pub ttl: u64,
    /// The record's value as the API returns it.
    pub value: String,
    /// What the authoritative servers answer (the value of the last change to sync).
    pub served: String,
    pub change: Option<DnsChange>,
    pub changes: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct DnsChange {
    pub id: String,
    pub value: String,
    pub submitted: Instant,
    pub sync_at: Instant,
}

impl Zone {
    fn settle(&mut self, now: Instant) {
        if let Some(c) = &self.change
            && now >= c.sync_at
        {
            self.served.clone_from(&c.value);
        }
    }

    /// What a client resolving now gets.
    pub fn resolve(&mut self, now: Instant) -> String {
        self.settle(now);
        self.served.clone()
    }

    pub fn status(&self, now: Instant) -> Option<&'static str> {
        self.change.as_ref().map(|c| {
            if now >= c.sync_at {
                "INSYNC"
            } else {
                "PENDING"
            }
        })
    }
}

/// Faults in their active window.
#[derive(Debug, Default)]
pub(crate) struct Active {
    pub lag_spike: AtomicBool,
    pub throttle: AtomicBool,
    pub stall: AtomicBool,
}

/// What the tasks wait on; shared apart from the world so waiting never keeps it alive.
struct Signals {
    cancel: CancellationToken,
    workload: CancellationToken,
    /// Wakes the replicator: new change after an empty backlog, status or fault change.
    wake: Notify,
}

/// Settings fixed at start.
pub(crate) struct Config {
    pub tables: Vec<TableSql>,
    pub settings: RehearsalSettings,
    pub dns: DnsRecord,
    pub task: String,
    pub source_label: String,
    pub target_label: String,
    pub faults: Vec<Fault>,
    pub timings: Timings,
    pub seed: u64,
    pub sqlite_version: String,
}

/// The embedded rehearsal world. Build it with [`World::start`]; read it through
/// [`World::sources`], act on it through [`World::actuator`].
pub struct World {
    pub(crate) cfg: Config,
    pub(crate) core: tokio::sync::Mutex<Core>,
    pub(crate) zone: Mutex<Zone>,
    pub(crate) task: watch::Sender<TaskStatus>,
    pub(crate) active: Active,
    signals: Arc<Signals>,
    /// Where the world's events go; taken by `finish` with its last event, so that nothing
    /// the world does afterwards (measures, faults) reaches the cockpit.
    events: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    workload: Mutex<Option<JoinHandle<()>>>,
    pub(crate) started: Instant,
    /// Per reading source, the counters at its previous poll (for writes per second).
    pub(crate) rates: Mutex<HashMap<SourceKind, (Instant, Counts)>>,
}

/// Locks a std mutex, recovering from poisoning: the guarded data stays consistent because
/// no code path panics while holding these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const WORDS: [&str; 8] = [
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor",
];

fn make_row(rng: &mut StdRng, table: &str, id: i64, version: i64) -> Row {
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

fn default_dns() -> DnsRecord {
    DnsRecord {
        zone_id: None,
        name: "db.rehearsal.internal.".into(),
        record_type: "CNAME".into(),
        ttl: 3,
        source: "source.rehearsal.internal.".into(),
        target: "target.rehearsal.internal.".into(),
        resolve: false,
    }
}

impl World {
    /// Builds both databases with the full load done, then starts the workload, the
    /// replicator, the heartbeat writer, the measures and the fault schedule.
    pub async fn start(
        plan: &Plan,
        opts: WorldOptions,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<World>, WorldError> {
        Self::start_with(plan, opts, Timings::default(), events).await
    }

    pub(crate) async fn start_with(
        plan: &Plan,
        opts: WorldOptions,
        timings: Timings,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<World>, WorldError> {
        let settings = plan.rehearsal.clone();
        let mut tables: Vec<TableSql> = Vec::new();
        for name in &settings.tables {
            let sql = TableSql::new(name)?;
            if name.eq_ignore_ascii_case(db::HEARTBEAT_TABLE)
                || tables.iter().any(|t| t.name.eq_ignore_ascii_case(name))
            {
                return Err(WorldError::DuplicateTable(name.clone()));
            }
            tables.push(sql);
        }
        let dns = plan.dns.clone().unwrap_or_else(default_dns);
        let src_err = |error| WorldError::Database {
            side: Side::Source,
            error,
        };
        let tgt_err = |error| WorldError::Database {
            side: Side::Target,
            error,
        };
        let mut source = db::open_memory().await.map_err(src_err)?;
        let mut target = db::open_memory().await.map_err(tgt_err)?;
        let sqlite_version = db::sqlite_version(&mut source).await.map_err(src_err)?;

        // The full load is done: both sides hold the same rows (version 0: no write yet).
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let rows_per_table = i64::try_from(settings.rows_per_table).unwrap_or(i64::MAX);
        let load_ts = now_ms();
        db::create_heartbeat(&mut source, load_ts)
            .await
            .map_err(src_err)?;
        db::create_heartbeat(&mut target, load_ts)
            .await
            .map_err(tgt_err)?;
        for t in &tables {
            let rows: Vec<Row> = (1..=rows_per_table)
                .map(|id| make_row(&mut rng, &t.name, id, 0))
                .collect();
            t.create(&mut source).await.map_err(src_err)?;
            t.create(&mut target).await.map_err(tgt_err)?;
            db::load(t, &mut source, &rows).await.map_err(src_err)?;
            db::load(t, &mut target, &rows).await.map_err(tgt_err)?;
        }

        let started = Instant::now();
        let ttl = Duration::from_secs(dns.ttl);
        // Clients resolved at different moments, so their caches expire at different times.
        let clients = (0..settings.clients)
            .map(|_| Client {
                resolved: dns.source.clone(),
                expires: started + ttl.mul_f64(rng.random_range(0.0..1.0)),
                refusing_since: None,
            })
            .collect();
        let n = tables.len();
        let drop = if opts.faults.contains(&Fault::DropChange) {
            DropState::Waiting
        } else {
            DropState::Off
        };
        let core = Core {
            source: Server {
                conn: source,
                read_only: false,
            },
            target: Server {
                conn: target,
                // Applications must not write to the target before the cutover.
                read_only: true,
            },
            backlog: VecDeque::new(),
            next_seq: 1,
            next_id: vec![rows_per_table.saturating_add(1); n],
            applied: vec![Applied::default(); n],
            ledger: Ledger::default(),
            counts: Counts::default(),
            clients,
            downtime: Vec::new(),
            data_gen: 0,
            snapshot: None,
            lost_cache: None,
            stop_diverged: None,
            stop_snapshot: None,
            unread_from: None,
            drop,
            rng,
            finished_at: None,
        };
        let zone = Zone {
            name: dns.name.clone(),
            record_type: dns.record_type.clone(),
            ttl: dns.ttl,
            value: dns.source.clone(),
            served: dns.source.clone(),
            change: None,
            changes: 0,
        };
        let cancel = CancellationToken::new();
        let signals = Arc::new(Signals {
            workload: cancel.child_token(),
            cancel,
            wake: Notify::new(),
        });
        let (task, _) = watch::channel(TaskStatus::Running);
        let world = Arc::new(World {
            cfg: Config {
                tables,
                dns,
                task: plan
                    .replication
                    .as_ref()
                    .map(|r| r.task.clone())
                    .unwrap_or_else(|| "rehearsal-cdc".into()),
                source_label: plan.source.label.clone(),
                target_label: plan.target.label.clone(),
                faults: opts.faults.clone(),
                timings,
                seed: opts.seed,
                sqlite_version,
                settings,
            },
            core: tokio::sync::Mutex::new(core),
            zone: Mutex::new(zone),
            task,
            active: Active::default(),
            signals,
            events: Mutex::new(Some(events)),
            handles: Mutex::new(Vec::new()),
            workload: Mutex::new(None),
            started,
            rates: Mutex::new(HashMap::new()),
        });
        world.spawn_tasks();
        Ok(world)
    }

    fn spawn_tasks(self: &Arc<Self>) {
        let mut handles = Vec::new();
        handles.push(tokio::spawn(replicator(
            Arc::downgrade(self),
            Arc::clone(&self.signals),
        )));
        handles.push(tokio::spawn(heartbeat(
            Arc::downgrade(self),
            Arc::clone(&self.signals),
        )));
        handles.push(tokio::spawn(measurer(
            Arc::downgrade(self),
            Arc::clone(&self.signals),
        )));
        handles.extend(self.schedule_faults());
        let s = &self.cfg.settings;
        if s.write_rate > 0.0 && s.clients > 0 && !self.cfg.tables.is_empty() {
            *lock(&self.workload) = Some(tokio::spawn(workload(
                Arc::downgrade(self),
                Arc::clone(&self.signals),
                Duration::from_secs_f64(1.0 / s.write_rate),
            )));
        }
        *lock(&self.handles) = handles;
    }

    /// Sends an event; returns false once `finish` has sent the world's last one. The
    /// receiver may be gone when the cockpit is shutting down, and then nobody is left to
    /// tell. Sending under the lock orders every event before `finish`'s last.
    pub(crate) fn emit(&self, ev: Event) -> bool {
        match &*lock(&self.events) {
            Some(tx) => {
                let _ = tx.send(ev);
                true
            }
            None => false,
        }
    }

    /// Sends the world's last event and closes its channel.
    fn emit_last(&self, ev: Event) {
        if let Some(tx) = lock(&self.events).take() {
            let _ = tx.send(ev);
        }
    }

    pub(crate) fn fault_changed(&self, fault: Fault, active: bool, detail: String) {
        self.emit(Event::FaultChanged {
            at: now_ms(),
            fault: fault.name().to_string(),
            active,
            detail,
        });
    }

    pub(crate) fn has_fault(&self, fault: Fault) -> bool {
        self.cfg.faults.contains(&fault)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(
            u64::try_from(self.cfg.settings.poll_ms)
                .unwrap_or(0)
                .max(50),
        )
    }

    pub(crate) fn wake_replicator(&self) {
        self.signals.wake.notify_one();
    }

    pub(crate) fn cancelled(&self) -> &CancellationToken {
        &self.signals.cancel
    }

    /// The side a resolved DNS value names, if any.
    pub(crate) fn side_of(&self, value: &str) -> Option<Side> {
        if value == self.cfg.dns.source {
            Some(Side::Source)
        } else if value == self.cfg.dns.target {
            Some(Side::Target)
        } else {
            None
        }
    }

    fn current_lag(&self) -> Duration {
        if self.active.lag_spike.load(Ordering::Relaxed) {
            self.cfg.timings.lag_spike_lag
        } else {
            Duration::from_millis(u64::try_from(self.cfg.settings.lag_ms).unwrap_or(0))
        }
    }

    // -----------------------------------------------------------------------------------
    // Writes

    /// One application write by client `i`: resolve (through its cache), pick the database,
    /// commit or be refused, capture the change on the source, record it in the ledger.
    async fn client_write(&self, core: &mut Core, i: usize, now: Instant) {
        let Some(client) = core.clients.get_mut(i) else {
            return;
        };
        if now >= client.expires {
            client.resolved = lock(&self.zone).resolve(now);
            client.expires = now + Duration::from_secs(self.cfg.dns.ttl);
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

    fn refuse(&self, core: &mut Core, i: usize, now: Instant) {
        core.counts.refused += 1;
        if let Some(c) = core.clients.get_mut(i) {
            c.refusing_since.get_or_insert(now);
        }
    }

    /// Puts a committed source change in the replicator's backlog (the binlog, in effect).
    fn capture(&self, core: &mut Core, what: ChangeKind, now: Instant) {
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

    pub(crate) fn table_name(&self, t: usize) -> &str {
        self.cfg
            .tables
            .get(t)
            .map(|t| t.name.as_str())
            .unwrap_or("?")
    }

    /// The heartbeat writer's privileged update on the source.
    async fn write_heartbeat(&self) -> Result<(), sqlx::Error> {
        let mut core = self.core.lock().await;
        let ts = now_ms();
        db::write_heartbeat(&mut core.source.conn, ts).await?;
        self.capture(&mut core, ChangeKind::Heartbeat(ts), Instant::now());
        Ok(())
    }

    /// Sets `read_only` on one side; freezing the source is when `drop-change` strikes.
    /// Returns the previous value.
    pub(crate) async fn set_read_only(&self, side: Side, on: bool) -> bool {
        let mut core = self.core.lock().await;
        let was = core.server(side).read_only;
        core.server(side).read_only = on;
        if side == Side::Source && on && !was && core.drop == DropState::Waiting {
            self.drop_in_flight(&mut core);
        }
        was
    }

    /// Loses one data change that is still in the backlog and is the last change of its
    /// row there (so no later change repairs it); arms for the next one when there is none.
    fn drop_in_flight(&self, core: &mut Core) {
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

    /// Runs a statement on one side with privileges (not captured by the replicator, as with
    /// `sql_log_bin = 0`). Returns the rows it changed.
    pub(crate) async fn execute(&self, side: Side, statement: &str) -> Result<u64, sqlx::Error> {
        let mut core = self.core.lock().await;
        let n = db::execute_raw(&mut core.server(side).conn, statement).await?;
        core.data_gen += 1;
        Ok(n)
    }

    // -----------------------------------------------------------------------------------
    // Replication

    /// Applies every change that has fallen due. Returns when the next one falls due, or
    /// `None` when there is nothing to wait for but a wake-up.
    async fn replicate_due(&self) -> Option<Instant> {
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

    async fn apply(&self, core: &mut Core, change: &Change) -> Result<(), sqlx::Error> {
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
    async fn complete_stop(&self) {
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

    async fn complete_start(&self) {
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

    // -----------------------------------------------------------------------------------
    // Consistent reads

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

    /// Whether the record's value (as the API returns it) names the target.
    pub(crate) fn points_at_target(&self) -> bool {
        lock(&self.zone).value == self.cfg.dns.target
    }

    /// Which database holds the truth: the target once the name points at it and it takes
    /// writes, the source before.
    fn authority(&self, core: &Core) -> Side {
        if self.points_at_target() && !core.target.read_only {
            Side::Target
        } else {
            Side::Source
        }
    }

    async fn writes_lost(&self, core: &mut Core, authority: Side) -> Result<u64, sqlx::Error> {
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
    fn check_repaired(&self, core: &mut Core, snap: &Snapshot) {
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

    /// Stops the workload, waits (bounded) for the replicator to drain if it runs, and
    /// returns the final figures, also sent as `WorldMeasured`: the world's last event.
    pub async fn finish(&self) -> WorldMeasures {
        self.signals.workload.cancel();
        let workload = lock(&self.workload).take();
        if let Some(h) = workload {
            // A workload that panicked has nothing more to write; the figures stand.
            let _ = h.await;
        }
        let deadline = Instant::now() + self.cfg.timings.settle_max;
        let mut status = self.task.subscribe();
        loop {
            let settled = {
                let core = self.core.lock().await;
                match &*status.borrow_and_update() {
                    TaskStatus::Stopped | TaskStatus::Failed(_) => true,
                    TaskStatus::Running => !core.backlog.iter().any(|c| c.what.key().is_some()),
                    TaskStatus::Stopping | TaskStatus::Starting => false,
                }
            };
            if settled || Instant::now() >= deadline {
                break;
            }
            // Re-check on a status change, or shortly (applies do not signal).
            tokio::select! {
                _ = self.signals.cancel.cancelled() => break,
                _ = status.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let mut core = self.core.lock().await;
        let now = Instant::now();
        core.finished_at.get_or_insert(now);
        let measures = self.measures_locked(&mut core).await;
        self.emit_last(Event::WorldMeasured {
            at: now_ms(),
            measures: measures.clone(),
        });
        measures
    }

    /// Stops every task. Idempotent.
    pub async fn shutdown(&self) {
        self.signals.cancel.cancel();
        let mut handles = std::mem::take(&mut *lock(&self.handles));
        handles.extend(lock(&self.workload).take());
        for h in handles {
            // The tasks only end on cancellation; a join error means one panicked, and
            // there is nothing left to stop.
            let _ = h.await;
        }
    }

    // -----------------------------------------------------------------------------------
    // Faults

    fn schedule_faults(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        // A generator of its own, so the schedule does not depend on the workload's draws.
        let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ 0x5eed_fa17);
        let t = &self.cfg.timings;
        let mut out = Vec::new();
        for fault in &self.cfg.faults {
            let jitter = t.fault_jitter.mul_f64(rng.random_range(0.0..1.0));
            let start = self.started + t.fault_start + jitter;
            let (length, on, off) = match fault {
                Fault::LagSpike => (
                    t.lag_spike_for,
                    format!(
                        "replication lag raised to {}s for {}s",
                        t.lag_spike_lag.as_secs_f64(),
                        t.lag_spike_for.as_secs_f64()
                    ),
                    format!("replication lag back to {}ms", self.cfg.settings.lag_ms),
                ),
                Fault::ApiThrottle => (
                    t.throttle_for,
                    format!(
                        "replication, metrics and DNS APIs answer ThrottlingException for {}s",
                        t.throttle_for.as_secs_f64()
                    ),
                    "API throttling lifted".to_string(),
                ),
                Fault::ReplicatorStall => (
                    t.stall_for,
                    format!(
                        "the replicator stopped applying for {}s; the task still reports running",
                        t.stall_for.as_secs_f64()
                    ),
                    "the replicator applies again".to_string(),
                ),
                // Not timed: they strike at the freeze and at DNS changes.
                Fault::DropChange | Fault::DnsSlow => continue,
            };
            out.push(tokio::spawn(timed_fault(
                Arc::downgrade(self),
                Arc::clone(&self.signals),
                *fault,
                start,
                start + length,
                on,
                off,
            )));
        }
        out
    }

    fn set_active(&self, fault: Fault, on: bool) {
        let flag = match fault {
            Fault::LagSpike => &self.active.lag_spike,
            Fault::ApiThrottle => &self.active.throttle,
            Fault::ReplicatorStall => &self.active.stall,
            Fault::DropChange | Fault::DnsSlow => return,
        };
        flag.store(on, Ordering::Relaxed);
        // The replicator recomputes its deadline with the new lag, or resumes after a stall.
        self.wake_replicator();
    }

    /// UPSERTs the record: a new change, PENDING until it propagates.
    pub(crate) fn upsert_dns(self: &Arc<Self>, value: &str) -> DnsChange {
        let now = Instant::now();
        let slow = self.has_fault(Fault::DnsSlow);
        let propagation = if slow {
            self.cfg.timings.dns_slow
        } else {
            Duration::from_millis(u64::try_from(self.cfg.settings.dns_propagation_ms).unwrap_or(0))
        };
        let change = {
            let mut zone = lock(&self.zone);
            zone.settle(now);
            zone.changes += 1;
            let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ zone.changes);
            let change = DnsChange {
                id: format!(
                    "/change/C{:012X}{:02}",
                    rng.random::<u64>() & 0xFFFF_FFFF_FFFF,
                    zone.changes
                ),
                value: value.to_string(),
                submitted: now,
                sync_at: now + propagation,
            };
            zone.value = value.to_string();
            zone.ttl = self.cfg.dns.ttl;
            zone.change = Some(change.clone());
            change
        };
        if slow {
            self.fault_changed(
                Fault::DnsSlow,
                true,
                format!(
                    "change {} stays PENDING for {}s",
                    change.id,
                    propagation.as_secs_f64()
                ),
            );
            let weak = Arc::downgrade(self);
            let signals = Arc::clone(&self.signals);
            let (id, at) = (change.id.clone(), change.sync_at);
            let h = tokio::spawn(async move {
                tokio::select! {
                    _ = signals.cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(at) => {
                        if let Some(w) = weak.upgrade() {
                            w.fault_changed(Fault::DnsSlow, false, format!("change {id} is INSYNC"));
                        }
                    }
                }
            });
            lock(&self.handles).push(h);
        }
        change
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Tasks hold only weak references; this ends them without `shutdown`.
        self.signals.cancel.cancel();
    }
}

// ---------------------------------------------------------------------------------------
// Tasks

/// Waits until `at`, or returns false when the world is cancelled first.
async fn sleep_until(signals: &Signals, at: Instant) -> bool {
    tokio::select! {
        _ = signals.cancel.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}

async fn workload(weak: Weak<World>, signals: Arc<Signals>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: usize = 0;
    loop {
        tokio::select! {
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

async fn heartbeat(weak: Weak<World>, signals: Arc<Signals>) {
    let every = match weak.upgrade() {
        Some(w) => w.cfg.timings.heartbeat_every,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = signals.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(world) = weak.upgrade() else { return };
        if let Err(e) = world.write_heartbeat().await {
            tracing::warn!(error = %e, "rehearsal heartbeat write failed");
        }
    }
}

async fn measurer(weak: Weak<World>, signals: Arc<Signals>) {
    let every = match weak.upgrade() {
        Some(w) => w.cfg.timings.measure_every,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = signals.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(world) = weak.upgrade() else { return };
        let measures = world.measures().await;
        let sent = world.emit(Event::WorldMeasured {
            at: now_ms(),
            measures,
        });
        if !sent {
            // `finish` sent the last figures.
            return;
        }
    }
}

async fn replicator(weak: Weak<World>, signals: Arc<Signals>) {
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
                    _ = signals.cancel.cancelled() => return,
                    _ = signals.wake.notified() => {}
                }
            }
        }
    }
}

async fn timed_fault(
    weak: Weak<World>,
    signals: Arc<Signals>,
    fault: Fault,
    start: Instant,
    end: Instant,
    on: String,
    off: String,
) {
    if !sleep_until(&signals, start).await {
        return;
    }
    match weak.upgrade() {
        Some(w) => {
            w.set_active(fault, true);
            w.fault_changed(fault, true, on);
        }
        None => return,
    }
    if !sleep_until(&signals, end).await {
        return;
    }
    if let Some(w) = weak.upgrade() {
        w.set_active(fault, false);
        w.fault_changed(fault, false, off);
    }
}
