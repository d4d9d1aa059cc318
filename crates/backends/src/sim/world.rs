//! The running rehearsal world: two SQLite servers, the application clients following the
//! CNAME, the CDC replicator, the heartbeat writer, the fault schedule and the measures.
//!
//! Every write, every apply and every consistent read happens under one lock (`World::core`),
//! which plays the part of the databases' commit order: a change is captured in the same
//! critical section that commits it, and a compare of both sides sees one instant.
//! Background tasks hold only a `Weak<World>` between steps, so dropping the last `Arc`
//! (or calling `shutdown`) ends them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::db::{self, Row, TableSql, WorldError};
use super::fault::Fault;
use super::ledger::Ledger;
use cutover_core::event::{Event, Side, SourceKind, Ts, WorldMeasures};
use cutover_core::plan::{DnsRecord, Plan, RehearsalSettings};
use cutover_runtime::clock::Clock;

// The world's parts live in their own modules; their types keep their `world::` paths.
pub(crate) use super::measures::Snapshot;
use super::measures::measurer;
use super::replicator::replicator;
pub(crate) use super::replicator::{Applied, Change, ChangeKind, DropState, TaskStatus};
pub(crate) use super::workload::{Client, Counts};
use super::workload::{heartbeat, make_row, workload};
pub(crate) use super::zone::Zone;
use super::zone::default_dns;

/// How the world is disturbed and seeded, and the clock it runs on.
#[derive(Clone, Debug, Default)]
pub struct WorldOptions {
    pub seed: u64,
    pub faults: Vec<Fault>,
    /// What every timestamp in the world is read from; a simulated clock also makes each
    /// database operation complete before time can move (see `db::Conn`).
    pub clock: Clock,
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

/// One database server: the SQLite connection and MySQL's `read_only` switch around it.
pub(crate) struct Server {
    pub conn: db::Conn,
    /// Refuses application writes; privileged writers (replicator, heartbeat) bypass it.
    pub read_only: bool,
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
    pub(super) snapshot: Option<(u64, Arc<Snapshot>)>,
    pub(super) lost_cache: Option<((u64, Side), u64)>,
    /// Rows differing when replication last finished stopping.
    pub stop_diverged: Option<u64>,
    /// Both sides compared when replication last finished stopping: a stopped task's
    /// validation figures stay where they were then (DMS validates only while it runs).
    pub stop_snapshot: Option<Arc<Snapshot>>,
    /// Changes from this sequence on were committed while the task was not capturing.
    pub unread_from: Option<i64>,
    pub drop: DropState,
    pub(super) rng: StdRng,
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

/// Faults in their active window.
#[derive(Debug, Default)]
pub(crate) struct Active {
    pub lag_spike: AtomicBool,
    pub throttle: AtomicBool,
    pub stall: AtomicBool,
    pub panic: AtomicBool,
    /// `late-drift` has struck (it strikes once).
    pub late_drift: AtomicBool,
}

/// What the tasks wait on; shared apart from the world so waiting never keeps it alive.
pub(super) struct Signals {
    pub(super) cancel: CancellationToken,
    pub(super) workload: CancellationToken,
    /// Wakes the replicator: new change after an empty backlog, status or fault change.
    pub(super) wake: Notify,
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
    pub clock: Clock,
}

/// The embedded rehearsal world. Build it with [`World::start`]; read it through
/// [`World::sources`], act on it through [`World::actuator`].
pub struct World {
    pub(crate) cfg: Config,
    pub(crate) core: tokio::sync::Mutex<Core>,
    pub(crate) zone: Mutex<Zone>,
    pub(crate) task: watch::Sender<TaskStatus>,
    pub(crate) active: Active,
    pub(super) signals: Arc<Signals>,
    /// Where the world's events go; taken by `finish` with its last event, so that nothing
    /// the world does afterwards (measures, faults) reaches the cockpit.
    pub(super) events: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    pub(super) handles: Mutex<Vec<JoinHandle<()>>>,
    pub(super) workload: Mutex<Option<JoinHandle<()>>>,
    pub(crate) started: Instant,
    /// Per reading source, the counters at its previous poll (for writes per second).
    pub(crate) rates: Mutex<HashMap<SourceKind, (Instant, Counts)>>,
}

/// Locks a std mutex, recovering from poisoning: the guarded data stays consistent because
/// no code path panics while holding these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let sync = opts.clock.is_simulated();
        let mut source = db::Conn::open(sync).await.map_err(src_err)?;
        let mut target = db::Conn::open(sync).await.map_err(tgt_err)?;
        let sqlite_version = db::sqlite_version(&mut source).await.map_err(src_err)?;

        // The full load is done: both sides hold the same rows (version 0: no write yet).
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let rows_per_table = i64::try_from(settings.rows_per_table).unwrap_or(i64::MAX);
        let load_ts = opts.clock.now_ms();
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
                // Checked: validation caps the TTL at 2^31-1 s, but an Instant that far
                // out may still not exist on every platform; then the cache never expires.
                expires: started
                    .checked_add(ttl.mul_f64(rng.random_range(0.0..1.0)))
                    .unwrap_or(started),
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
                clock: opts.clock,
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

    pub(super) fn spawn_tasks(self: &Arc<Self>) {
        let mut handles = vec![
            self.guarded(
                "the rehearsal replicator",
                SourceKind::Replication,
                replicator(Arc::downgrade(self), Arc::clone(&self.signals)),
            ),
            self.guarded(
                "the rehearsal heartbeat",
                SourceKind::Heartbeat,
                heartbeat(Arc::downgrade(self), Arc::clone(&self.signals)),
            ),
            self.guarded(
                "the rehearsal measurer",
                SourceKind::Drift,
                measurer(Arc::downgrade(self), Arc::clone(&self.signals)),
            ),
        ];
        handles.extend(self.schedule_faults());
        let s = &self.cfg.settings;
        if s.write_rate > 0.0 && s.clients > 0 && !self.cfg.tables.is_empty() {
            *lock(&self.workload) = Some(self.guarded(
                "the rehearsal workload",
                SourceKind::SourceDb,
                workload(
                    Arc::downgrade(self),
                    Arc::clone(&self.signals),
                    write_interval(s.write_rate),
                ),
            ));
        }
        *lock(&self.handles) = handles;
    }

    /// Spawns one of the world's tasks. A panic in it is caught and recorded as a failure of
    /// the source it feeds (so it shows in the health bar and the gates that read it go
    /// unknown), instead of unwinding into the runtime unseen.
    pub(super) fn guarded(
        self: &Arc<Self>,
        what: &'static str,
        kind: SourceKind,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let world = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Err(panic) = cutover_runtime::task::catch(task).await {
                tracing::error!(task = what, %panic, "rehearsal world task panicked");
                if let Some(w) = world.upgrade() {
                    w.emit(Event::SourceFailed {
                        at: w.now_ms(),
                        source: kind,
                        error: cutover_runtime::task::panicked(what, &panic),
                    });
                }
            }
        })
    }

    /// Sends an event; returns false once `finish` has sent the world's last one. The
    /// receiver may be gone when the cockpit is shutting down, and then nobody is left to
    /// tell. Sending under the lock orders every event before `finish`'s last.
    /// Now, on the world's clock, as events carry it.
    pub(crate) fn now_ms(&self) -> Ts {
        self.cfg.clock.now_ms()
    }

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
    pub(super) fn emit_last(&self, ev: Event) {
        if let Some(tx) = lock(&self.events).take() {
            let _ = tx.send(ev);
        }
    }

    pub(crate) fn fault_changed(&self, fault: Fault, active: bool, detail: String) {
        self.emit(Event::FaultChanged {
            at: self.now_ms(),
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

    pub(crate) fn cancelled(&self) -> &CancellationToken {
        &self.signals.cancel
    }

    pub(crate) fn table_name(&self, t: usize) -> &str {
        self.cfg
            .tables
            .get(t)
            .map(|t| t.name.as_str())
            .unwrap_or("?")
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

    /// Whether one side refuses application writes now.
    pub async fn read_only(&self, side: Side) -> bool {
        self.core.lock().await.server(side).read_only
    }

    /// Runs a statement on one side with privileges (not captured by the replicator, as with
    /// `sql_log_bin = 0`). Returns the rows it changed.
    pub(crate) async fn execute(&self, side: Side, statement: &str) -> Result<u64, sqlx::Error> {
        let mut core = self.core.lock().await;
        let n = db::execute_raw(&mut core.server(side).conn, statement).await?;
        core.data_gen += 1;
        Ok(n)
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
                biased;
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
            at: self.now_ms(),
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

    pub(super) fn schedule_faults(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
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
                Fault::SourcePanic => (
                    t.throttle_for,
                    format!(
                        "the drift source panics on every poll for {}s",
                        t.throttle_for.as_secs_f64()
                    ),
                    "the drift source polls normally again".to_string(),
                ),
                // Not timed: they strike at the freeze, at DNS changes, at the stop.
                Fault::DropChange | Fault::DnsSlow | Fault::LateDrift => continue,
            };
            out.push(self.guarded(
                "a rehearsal fault timer",
                SourceKind::Replication,
                timed_fault(
                    Arc::downgrade(self),
                    Arc::clone(&self.signals),
                    *fault,
                    start,
                    start + length,
                    on,
                    off,
                ),
            ));
        }
        out
    }

    pub(super) fn set_active(&self, fault: Fault, on: bool) {
        let flag = match fault {
            Fault::LagSpike => &self.active.lag_spike,
            Fault::ApiThrottle => &self.active.throttle,
            Fault::ReplicatorStall => &self.active.stall,
            Fault::SourcePanic => &self.active.panic,
            Fault::DropChange | Fault::DnsSlow | Fault::LateDrift => return,
        };
        flag.store(on, Ordering::Relaxed);
        // The replicator recomputes its deadline with the new lag, or resumes after a stall.
        self.wake_replicator();
    }
}

impl World {
    /// `late-drift`, once, when replication is asked to stop (after the drain proved both
    /// sides equal): a stray writer the cutover did not fence inserts a row on the target.
    /// Not an application write the ledger knows: nothing acknowledged is lost, but the
    /// target no longer matches the source.
    pub(crate) async fn strike_late_drift(&self) {
        if !self.has_fault(Fault::LateDrift) || self.active.late_drift.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let mut core = self.core.lock().await;
        let Some(table) = self.cfg.tables.first() else {
            return;
        };
        let id = core.next_id[0];
        core.next_id[0] += 1;
        let seq = core.next_seq;
        core.next_seq += 1;
        let row = super::workload::make_row(&mut core.rng, &table.name, id, seq);
        let detail = match table.insert(&mut core.target.conn, &row).await {
            Ok(_) => {
                core.data_gen += 1;
                format!(
                    "a stray writer inserted {} id={id} on the target behind the replicator (after the drain was green)",
                    table.name
                )
            }
            Err(e) => format!("the stray write on the target failed: {e}"),
        };
        drop(core);
        self.fault_changed(Fault::LateDrift, true, detail);
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
pub(super) async fn sleep_until(signals: &Signals, at: Instant) -> bool {
    tokio::select! {
        biased;
        _ = signals.cancel.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}

pub(super) async fn timed_fault(
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

/// The time between two application writes at `rate` writes a second. Validation keeps the
/// rate finite and within `limits::WRITE_RATE`; this still never returns what would panic
/// the workload's timer (zero, from `inf`) or overflow it (from `1e-300`).
pub(crate) fn write_interval(rate: f64) -> Duration {
    const SHORTEST: Duration = Duration::from_millis(1);
    const LONGEST: Duration = Duration::from_secs(3_600);
    match Duration::try_from_secs_f64(1.0 / rate) {
        Ok(d) => d.clamp(SHORTEST, LONGEST),
        Err(_) => LONGEST,
    }
}
