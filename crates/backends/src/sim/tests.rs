//! Behaviour of the rehearsal world, observed through its sources, actuator and measures.
//! Every wait is on a condition with a deadline, never a blind sleep.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::db::{self, Row};
use super::world::Timings;
use super::*;
use cutover_core::event::{
    ChecksumState, DiffKind, Direction, Event, MetricSeries, Reading, Side, SourceKind, TableDrift,
    TableStat, WorldMeasures, now_ms,
};
use cutover_core::plan::{Action, DnsTo, FreezeMethod, Plan, rehearsal_plan_without_aborts};
use cutover_core::state::{GateState, State};
use cutover_runtime::action::{Output, spawn_action};
use cutover_runtime::source::{SourceError, spawn_pollers};

/// Polls `f` until it yields a value, failing the test after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

const WAIT: Duration = Duration::from_secs(10);

/// The shipped plan with a small, quick world.
fn fast_plan() -> Plan {
    let mut plan = rehearsal_plan_without_aborts();
    let r = &mut plan.rehearsal;
    r.rows_per_table = 60;
    r.write_rate = 80.0;
    r.clients = 4;
    r.lag_ms = 150;
    r.dns_propagation_ms = 300;
    r.poll_ms = 100;
    if let Some(dns) = &mut plan.dns {
        dns.ttl = 1;
    }
    plan
}

fn fast_timings() -> Timings {
    Timings {
        fault_start: Duration::from_millis(300),
        fault_jitter: Duration::ZERO,
        lag_spike_lag: Duration::from_secs(2),
        lag_spike_for: Duration::from_millis(1500),
        throttle_for: Duration::from_millis(1200),
        stall_for: Duration::from_millis(1200),
        dns_slow: Duration::from_millis(1500),
        task_transition: Duration::from_millis(50),
        heartbeat_every: Duration::from_millis(250),
        measure_every: Duration::from_millis(250),
        settle_max: Duration::from_secs(5),
    }
}

struct Harness {
    world: Arc<World>,
    plan: Plan,
    events: mpsc::UnboundedReceiver<Event>,
    seen: Vec<Event>,
}

impl Harness {
    async fn start(plan: Plan, faults: Vec<Fault>) -> Harness {
        let (tx, events) = mpsc::unbounded_channel();
        let world = World::start_with(
            &plan,
            WorldOptions {
                seed: 7,
                faults,
                ..Default::default()
            },
            fast_timings(),
            tx,
        )
        .await
        .expect("the world starts");
        Harness {
            world,
            plan,
            events,
            seen: Vec::new(),
        }
    }

    async fn poll(&self, kind: SourceKind) -> Result<Vec<Reading>, SourceError> {
        let sources = self.world.sources();
        let source = sources
            .iter()
            .find(|s| s.kind() == kind)
            .expect("one source per kind");
        source.poll().await
    }

    async fn drift(&self) -> Vec<TableDrift> {
        self.poll(SourceKind::Drift)
            .await
            .expect("drift never throttles")
            .into_iter()
            .filter_map(|r| match r {
                Reading::Drift(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    async fn stats(&self) -> Option<Vec<TableStat>> {
        self.poll(SourceKind::Replication)
            .await
            .ok()?
            .into_iter()
            .find_map(|r| match r {
                Reading::Replication(r) => r.tables,
                _ => None,
            })
    }

    /// Every series of one metrics poll; `None` when the poll failed.
    async fn series(&self) -> Option<Vec<MetricSeries>> {
        self.poll(SourceKind::Metrics)
            .await
            .ok()?
            .into_iter()
            .find_map(|r| match r {
                Reading::Metrics { series, .. } => Some(series),
                _ => None,
            })
    }

    /// Datapoints per CDC series in one metrics poll (each series is always present).
    async fn cdc_points(&self) -> Option<[usize; 3]> {
        let series = self.series().await?;
        let points = |name: &str| {
            series
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.points.len())
                .unwrap_or_else(|| panic!("{name} is missing from {series:?}"))
        };
        Some([
            points("CDCLatencySource"),
            points("CDCLatencyTarget"),
            points("CDCIncomingChanges"),
        ])
    }

    async fn heartbeat_lag(&self) -> Option<f64> {
        self.poll(SourceKind::Heartbeat)
            .await
            .ok()?
            .into_iter()
            .find_map(|r| match r {
                Reading::Heartbeat { lag_s, .. } => Some(lag_s),
                _ => None,
            })
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        self.poll(SourceKind::Metrics)
            .await
            .ok()?
            .into_iter()
            .find_map(|r| match r {
                Reading::Metrics { series, .. } => series
                    .into_iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.points.last().map(|p| p.1)),
                _ => None,
            })
    }

    async fn database(&self, side: Side) -> cutover_core::event::DatabaseReading {
        let r = self
            .poll(SourceKind::for_side(side))
            .await
            .expect("database sources never throttle");
        match r.into_iter().next() {
            Some(Reading::Database(d)) => d,
            other => panic!("expected a database reading, got {other:?}"),
        }
    }

    async fn dns(&self) -> cutover_core::event::DnsReading {
        match self
            .poll(SourceKind::Dns)
            .await
            .expect("dns is not throttled")
            .into_iter()
            .next()
        {
            Some(Reading::Dns(d)) => *d,
            other => panic!("expected a DNS reading, got {other:?}"),
        }
    }

    /// Runs an action through the actuator; returns its result and output lines.
    async fn act(&self, action: Action) -> (Result<String, String>, Vec<String>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = Output::new("test".into(), Direction::Do, tx);
        let result = self
            .world
            .actuator()
            .run(&self.plan, &action, &out)
            .await
            .map_err(|e| e.0);
        drop(out);
        let mut lines = Vec::new();
        while let Some(ev) = rx.recv().await {
            if let Event::ActionOutput { line, .. } = ev {
                lines.push(line);
            }
        }
        (result, lines)
    }

    async fn ok(&self, action: Action) -> String {
        let (r, lines) = self.act(action.clone()).await;
        r.unwrap_or_else(|e| panic!("{action:?} failed: {e}; output {lines:?}"))
    }

    async fn freeze_source(&self) {
        self.ok(freeze(Side::Source)).await;
    }

    /// Faults seen so far, as (fault, active, detail).
    fn faults(&mut self) -> Vec<(String, bool, String)> {
        while let Ok(ev) = self.events.try_recv() {
            self.seen.push(ev);
        }
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::FaultChanged {
                    fault,
                    active,
                    detail,
                    ..
                } => Some((fault.clone(), *active, detail.clone())),
                _ => None,
            })
            .collect()
    }

    async fn acked_after(&self, n: u64) {
        wait_until("application writes", WAIT, || async {
            self.world.measures().await.writes_acked >= n
        })
        .await;
    }

    /// Waits until no data change is left for the replicator.
    async fn drained(&self) {
        wait_until("the replicator to drain", WAIT, || async {
            let core = self.world.core.lock().await;
            !core.backlog.iter().any(|c| c.what.key().is_some())
        })
        .await;
    }

    async fn rows(&self, side: Side, table: usize) -> Vec<Row> {
        let mut core = self.world.core.lock().await;
        let sql = &self.world.cfg.tables[table];
        sql.read_all(&mut core.server(side).conn)
            .await
            .expect("table reads")
    }
}

fn sql(on: Side, statement: &str) -> Action {
    Action::Sql {
        on,
        statement: statement.into(),
    }
}

fn freeze(on: Side) -> Action {
    Action::Freeze {
        on,
        method: FreezeMethod::Sql,
    }
}

fn unfreeze(on: Side) -> Action {
    Action::Unfreeze {
        on,
        method: FreezeMethod::Sql,
    }
}

#[test]
fn fault_names_parse_and_bad_names_are_explained() {
    for f in Fault::ALL {
        assert_eq!(f.name().parse::<Fault>(), Ok(f));
        assert!(!f.describe().is_empty());
    }
    assert_eq!("LAG_SPIKE".parse::<Fault>(), Ok(Fault::LagSpike));
    assert_eq!(
        parse_faults("lag-spike, dns-slow,lag-spike"),
        Ok(vec![Fault::LagSpike, Fault::DnsSlow])
    );
    assert_eq!(parse_faults(""), Ok(vec![]));
    let e = parse_faults("dns-slow,lag-spik").expect_err("a bad name is refused");
    assert!(e.contains("\"lag-spik\""), "{e}");
    assert!(e.contains("did you mean \"lag-spike\""), "{e}");
    for f in Fault::ALL {
        assert!(e.contains(f.name()), "{e} should list {}", f.name());
    }
    let e = "nonsense"
        .parse::<Fault>()
        .expect_err("unknown")
        .to_string();
    assert!(
        e.starts_with("unknown fault \"nonsense\"; valid faults: lag-spike"),
        "{e}"
    );
}

#[test]
fn chunked_compare_names_each_differing_key() {
    let row = |id: i64, v: i64| Row {
        id,
        label: format!("r{id}"),
        qty: id,
        amount: 1.5,
        note: None,
        version: v,
    };
    let source: Vec<Row> = (1..=250).map(|id| row(id, 0)).collect();
    let mut target = source.clone();
    target.retain(|r| r.id != 7);
    target[150].version = 9;
    let changed = target[150].id;
    target.push(row(350, 0));
    let c = db::compare(&source, &target);
    assert_eq!((c.source_rows, c.target_rows), (250, 250));
    assert_eq!(c.chunks_total, 4);
    assert_eq!(
        c.diffs,
        vec![
            (7, DiffKind::MissingOnTarget),
            (changed, DiffKind::Different),
            (350, DiffKind::ExtraOnTarget)
        ]
    );
    assert!(db::compare(&source, &source).diffs.is_empty());
}

#[tokio::test]
async fn replicator_copies_inserts_updates_and_deletes() {
    let h = Harness::start(fast_plan(), vec![]).await;
    let loaded = h.plan.rehearsal.rows_per_table as i64;
    wait_until("inserts, updates and deletes applied", WAIT, || async {
        h.stats().await.is_some_and(|tables| {
            let sum = |f: fn(&TableStat) -> Option<u64>| tables.iter().filter_map(f).sum::<u64>();
            sum(|t| t.inserts) > 0 && sum(|t| t.updates) > 0 && sum(|t| t.deletes) > 0
        })
    })
    .await;
    h.freeze_source().await;
    h.drained().await;
    let mut kinds = (false, false, false);
    for t in 0..h.world.cfg.tables.len() {
        let src = h.rows(Side::Source, t).await;
        let tgt = h.rows(Side::Target, t).await;
        assert_eq!(src, tgt, "table {t} is copied row for row");
        kinds.0 |= tgt.iter().any(|r| r.id > loaded);
        kinds.1 |= tgt.iter().any(|r| r.id <= loaded && r.version > 0);
        kinds.2 |= (1..=loaded).any(|id| !tgt.iter().any(|r| r.id == id));
    }
    assert_eq!(
        kinds,
        (true, true, true),
        "inserted, updated and deleted rows reach the target"
    );
    h.world.shutdown().await;
}

#[tokio::test]
async fn frozen_source_refuses_writes_and_never_acks_them() {
    let h = Harness::start(fast_plan(), vec![]).await;
    h.acked_after(10).await;
    let (r, lines) = h.act(freeze(Side::Source)).await;
    assert_eq!(r.as_deref(), Ok("source read_only = ON (was OFF)"));
    assert_eq!(lines, ["source read_only = ON (was OFF)"]);
    let before = h.world.measures().await;
    let rows_before = h.rows(Side::Source, 0).await;
    let after = wait_for("refused writes", WAIT, || async {
        let m = h.world.measures().await;
        (m.writes_refused >= before.writes_refused + 10).then_some(m)
    })
    .await;
    assert_eq!(
        after.writes_acked, before.writes_acked,
        "no write is acked after the freeze"
    );
    assert_eq!(
        after.writes_attempted - before.writes_attempted,
        after.writes_refused - before.writes_refused
    );
    assert!(after.downtime_s > 0.0);
    assert_eq!(
        h.rows(Side::Source, 0).await,
        rows_before,
        "the source did not change"
    );
    let db = h.database(Side::Source).await;
    assert_eq!(db.read_only, Some(true));
    // Idempotent.
    let (r, _) = h.act(freeze(Side::Source)).await;
    assert_eq!(r.as_deref(), Ok("source read_only already ON"));
    h.world.shutdown().await;
}

#[tokio::test]
async fn the_plans_freeze_and_unfreeze_steps_switch_read_only_both_ways() {
    let h = Harness::start(fast_plan(), vec![]).await;
    let step = |id: &str| {
        h.plan
            .steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("the rehearsal plan has a {id} step"))
            .clone()
    };
    let (freeze_step, unfreeze_step) = (step("freeze"), step("unfreeze"));
    assert_eq!(freeze_step.action, freeze(Side::Source));
    assert_eq!(freeze_step.undo, Some(unfreeze(Side::Source)));
    assert_eq!(unfreeze_step.action, unfreeze(Side::Target));

    let (r, lines) = h.act(freeze_step.action.clone()).await;
    assert_eq!(r.as_deref(), Ok("source read_only = ON (was OFF)"));
    assert_eq!(lines, ["source read_only = ON (was OFF)"]);
    assert_eq!(h.database(Side::Source).await.read_only, Some(true));
    let undo = freeze_step.undo.clone().expect("an undo");
    assert_eq!(h.ok(undo.clone()).await, "source read_only = OFF (was ON)");
    assert_eq!(h.database(Side::Source).await.read_only, Some(false));
    assert_eq!(h.ok(undo).await, "source read_only already OFF");

    // The target starts frozen, as a replica does.
    assert_eq!(h.database(Side::Target).await.read_only, Some(true));
    assert_eq!(
        h.ok(unfreeze_step.action.clone()).await,
        "target read_only = OFF (was ON)"
    );
    assert_eq!(h.database(Side::Target).await.read_only, Some(false));
    h.world.shutdown().await;
}

#[tokio::test]
async fn sql_runs_as_written_and_is_never_taken_for_a_freeze() {
    let h = Harness::start(fast_plan(), vec![]).await;
    // Typed as SQL (not normalised by the plan parser), the statement goes to SQLite, which
    // has no such variable: the actuator does not guess that it meant a freeze.
    let (r, _) = h.act(sql(Side::Source, "SET GLOBAL read_only = ON")).await;
    let e = r.expect_err("SQLite refuses MySQL's SET GLOBAL");
    assert!(e.starts_with("SQL on the source database failed"), "{e}");
    assert_eq!(h.database(Side::Source).await.read_only, Some(false));
    h.world.shutdown().await;
}

#[tokio::test]
async fn after_freeze_and_drain_every_table_is_equal() {
    let h = Harness::start(fast_plan(), vec![]).await;
    h.acked_after(30).await;
    h.freeze_source().await;
    let drift = wait_for("equal checksums", WAIT, || async {
        let d = h.drift().await;
        d.iter()
            .all(|t| t.checksum == ChecksumState::Equal)
            .then_some(d)
    })
    .await;
    assert_eq!(drift.len(), h.plan.rehearsal.tables.len());
    for t in &drift {
        assert_eq!(t.row_diff(), Some(0), "{}", t.table);
        assert!(t.differing_keys.is_empty());
        assert_eq!(t.chunks_done, t.chunks_total);
        assert!(t.chunks_total.unwrap_or(0) > 0);
    }
    let stats = h.stats().await.expect("replication readings");
    assert!(stats.iter().all(|t| t.validation_failed == Some(0)
        && t.validation_pending == Some(0)
        && t.validation_state.as_deref() == Some("Validated")));
    assert_eq!(h.metric("CDCLatencyTarget").await, Some(0.0));
    h.world.shutdown().await;
}

#[tokio::test]
async fn drop_change_leaves_exactly_one_named_differing_key() {
    let mut plan = fast_plan();
    // A longer lag keeps changes in flight at the freeze.
    plan.rehearsal.lag_ms = 500;
    let mut h = Harness::start(plan, vec![Fault::DropChange]).await;
    h.acked_after(40).await;
    h.freeze_source().await;
    h.drained().await;
    let drift = h.drift().await;
    let mismatched: Vec<&TableDrift> = drift
        .iter()
        .filter(|t| t.checksum == ChecksumState::Mismatch)
        .collect();
    assert_eq!(mismatched.len(), 1, "{drift:?}");
    let table = &mismatched[0].table;
    let keys = &mismatched[0].differing_keys;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0].key;
    let stats = h.stats().await.expect("replication readings");
    for t in &stats {
        let expected = u64::from(&t.table == table);
        assert_eq!(t.validation_failed, Some(expected), "{}", t.table);
    }
    let named = format!("{table} {key}");
    let faults = h.faults();
    assert!(
        faults
            .iter()
            .any(|(f, active, detail)| f == "drop-change" && *active && detail.contains(&named)),
        "the fault event names {named}: {faults:?}"
    );
    assert_eq!(h.world.measures().await.rows_diverged, 1);
    h.ok(Action::ReplicationStop).await;
    assert_eq!(h.world.core.lock().await.stop_diverged, Some(1));
    h.world.shutdown().await;
}

#[tokio::test]
async fn dns_flip_goes_pending_then_insync_and_clients_follow_after_ttl() {
    let h = Harness::start(fast_plan(), vec![]).await;
    let dns = h.plan.dns.clone().expect("the plan has a record");
    let clients = u64::from(h.plan.rehearsal.clients);
    h.acked_after(20).await;
    let before = h.dns().await;
    assert_eq!(before.value.as_deref(), Some(dns.source.as_str()));
    assert_eq!(before.change_status, None);

    h.ok(Action::Dns {
        to: DnsTo::Target,
        wait: false,
    })
    .await;
    let pending = h.dns().await;
    assert_eq!(pending.change_status.as_deref(), Some("PENDING"));
    assert_eq!(pending.value.as_deref(), Some(dns.target.as_str()));
    assert_eq!(pending.resolved.as_deref(), Some(dns.source.as_str()));
    assert_eq!(h.database(Side::Target).await.connections, Some(0));

    let synced = wait_for("INSYNC", WAIT, || async {
        let d = h.dns().await;
        (d.change_status.as_deref() == Some("INSYNC")).then_some(d)
    })
    .await;
    assert_eq!(synced.resolved.as_deref(), Some(dns.target.as_str()));
    assert_eq!(synced.change_id, pending.change_id);
    let flipped = Instant::now();
    wait_until("every client on the target", WAIT, || async {
        h.database(Side::Target).await.connections == Some(clients)
    })
    .await;
    assert!(flipped.elapsed() <= Duration::from_secs(dns.ttl) + Duration::from_secs(1));
    assert_eq!(h.database(Side::Source).await.connections, Some(0));

    // With wait: the action reports PENDING then INSYNC; a repeat is a new change.
    let (r, lines) = h
        .act(Action::Dns {
            to: DnsTo::Target,
            wait: true,
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(
        lines.first().is_some_and(|l| l.contains("PENDING")),
        "{lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("INSYNC")),
        "{lines:?}"
    );
    assert_ne!(h.dns().await.change_id, synced.change_id);
    h.world.shutdown().await;
}

#[tokio::test]
async fn api_throttle_fails_the_api_sources_then_they_recover() {
    let mut h = Harness::start(fast_plan(), vec![Fault::ApiThrottle]).await;
    let api = [
        SourceKind::Replication,
        SourceKind::Metrics,
        SourceKind::Dns,
    ];
    wait_until("throttling", WAIT, || async {
        h.poll(SourceKind::Replication).await.is_err()
    })
    .await;
    for kind in api {
        let e = h.poll(kind).await.expect_err("throttled");
        assert!(e.0.contains("ThrottlingException"), "{kind:?}: {e}");
    }
    for kind in [
        SourceKind::Drift,
        SourceKind::Heartbeat,
        SourceKind::SourceDb,
        SourceKind::TargetDb,
    ] {
        assert!(h.poll(kind).await.is_ok(), "{kind:?} keeps working");
    }
    wait_until("recovery", WAIT, || async {
        h.poll(SourceKind::Replication).await.is_ok()
    })
    .await;
    for kind in api {
        assert!(h.poll(kind).await.is_ok(), "{kind:?} recovered");
    }
    let deadline = Instant::now() + WAIT;
    let states = loop {
        let states: Vec<bool> = h
            .faults()
            .iter()
            .filter(|f| f.0 == "api-throttle")
            .map(|f| f.1)
            .collect();
        if states.len() >= 2 || Instant::now() > deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(states, [true, false]);
    h.world.shutdown().await;
}

#[tokio::test]
async fn stopped_replication_lets_lag_grow_and_resumes_where_it_stopped() {
    let h = Harness::start(fast_plan(), vec![]).await;
    h.acked_after(10).await;
    let (r, lines) = h.act(Action::ReplicationStop).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(lines.iter().any(|l| l.contains("is stopped")), "{lines:?}");
    assert_eq!(
        h.ok(Action::ReplicationStop).await,
        "task shop-cdc already stopped"
    );
    // The heartbeat lag grows honestly while the task is stopped; the backlog grows too,
    // but a stopped task publishes no CDC datapoints.
    wait_until("heartbeat lag to grow while stopped", WAIT, || async {
        h.heartbeat_lag().await >= Some(2.0)
    })
    .await;
    assert!(h.world.core.lock().await.backlog.len() > 10);
    assert_eq!(h.cdc_points().await, Some([0, 0, 0]));
    h.ok(Action::ReplicationStart).await;
    assert_eq!(h.cdc_points().await, Some([1, 1, 1]));
    h.freeze_source().await;
    h.drained().await;
    let drift = h.drift().await;
    assert!(
        drift.iter().all(|t| t.checksum == ChecksumState::Equal),
        "{drift:?}"
    );
    h.world.shutdown().await;
}

#[tokio::test]
async fn changes_in_flight_are_pending_not_mismatch_while_writes_flow() {
    let mut plan = fast_plan();
    // A longer lag keeps plenty of changes in flight at every poll.
    plan.rehearsal.lag_ms = 600;
    let h = Harness::start(plan, vec![]).await;
    let tables = h.plan.rehearsal.tables.len();
    // Streaming: poll until several readings showed rows in flight, with different counts.
    let (in_flight, counts_differ) = (Cell::new(0), Cell::new(false));
    wait_until("readings with rows in flight", WAIT, || {
        let (h, in_flight, counts_differ) = (&h, &in_flight, &counts_differ);
        async move {
            let drift = h.drift().await;
            assert_eq!(drift.len(), tables);
            for t in &drift {
                assert_ne!(t.checksum, ChecksumState::Mismatch, "in flight: {t:?}");
                if t.checksum == ChecksumState::Pending {
                    assert!(!t.differing_keys.is_empty(), "{t:?}");
                    in_flight.set(in_flight.get() + 1);
                    if t.row_diff() != Some(0) {
                        counts_differ.set(true);
                    }
                } else {
                    assert_eq!(t.checksum, ChecksumState::Equal, "{t:?}");
                    assert!(t.differing_keys.is_empty() && t.row_diff() == Some(0));
                }
            }
            let stats = h.stats().await.expect("replication readings");
            assert!(
                stats.iter().all(|t| t.validation_failed == Some(0)),
                "{stats:?}"
            );
            in_flight.get() >= 10 && counts_differ.get()
        }
    })
    .await;
    // The freeze: tables stay pending until the backlog drains, then equal; never mismatch.
    h.freeze_source().await;
    wait_until("equal checksums after the drain", WAIT, || async {
        let drift = h.drift().await;
        assert!(
            drift.iter().all(|t| t.checksum != ChecksumState::Mismatch),
            "{drift:?}"
        );
        drift.iter().all(|t| t.checksum == ChecksumState::Equal)
    })
    .await;
    h.world.shutdown().await;
}

#[tokio::test]
async fn drop_change_is_the_one_mismatch_among_changes_in_flight() {
    let mut plan = fast_plan();
    plan.rehearsal.lag_ms = 1_000;
    let h = Harness::start(plan, vec![Fault::DropChange]).await;
    h.acked_after(60).await;
    h.freeze_source().await;
    let (table, id) = match h.world.core.lock().await.drop {
        super::world::DropState::Dropped { table, id, .. } => (table, id),
        ref other => panic!("a change in flight was dropped at the freeze: {other:?}"),
    };
    let name = h.world.cfg.tables[table].name.clone();
    let key = format!("id={id}");
    let pending_seen = Cell::new(false);
    wait_until("the backlog to drain", WAIT, || {
        let (h, name, key, pending_seen) = (&h, &name, &key, &pending_seen);
        async move {
            let drained = {
                let core = h.world.core.lock().await;
                !core.backlog.iter().any(|c| c.what.key().is_some())
            };
            for t in h.drift().await {
                if t.checksum == ChecksumState::Pending {
                    pending_seen.set(true);
                }
                if t.checksum == ChecksumState::Mismatch {
                    // Only the lost change is unexplained, and it is named first.
                    assert_eq!(&t.table, name, "{t:?}");
                    assert_eq!(t.differing_keys.first().map(|k| &k.key), Some(key));
                }
            }
            drained
        }
    })
    .await;
    assert!(pending_seen.get(), "changes were in flight at the freeze");
    let drift = h.drift().await;
    for t in &drift {
        if t.table == name {
            assert_eq!(t.checksum, ChecksumState::Mismatch, "{t:?}");
            assert_eq!(
                t.differing_keys.iter().map(|k| &k.key).collect::<Vec<_>>(),
                [&key]
            );
        } else {
            assert_eq!(t.checksum, ChecksumState::Equal, "{t:?}");
        }
    }
    h.world.shutdown().await;
}

#[tokio::test]
async fn a_stopped_task_freezes_its_figures_and_drift_stops_after_the_flip() {
    let mut plan = fast_plan();
    plan.rehearsal.lag_ms = 500;
    let h = Harness::start(plan, vec![]).await;
    h.acked_after(20).await;
    // Stopped with writes still flowing on the source: the backlog grows behind the task.
    h.ok(Action::ReplicationStop).await;
    let frozen = h.stats().await.expect("replication readings while stopped");
    let backlog = h.world.core.lock().await.backlog.len();
    wait_until("the backlog to grow while stopped", WAIT, || async {
        h.world.core.lock().await.backlog.len() >= backlog + 20
    })
    .await;
    assert_eq!(
        h.stats().await.as_ref(),
        Some(&frozen),
        "validation does not progress on a stopped task"
    );
    assert_eq!(h.cdc_points().await, Some([0, 0, 0]));
    // Before the flip the compare goes on, and what the stopped task holds back is in flight.
    let drift = h.drift().await;
    assert_eq!(drift.len(), h.plan.rehearsal.tables.len());
    assert!(
        drift.iter().all(|t| t.checksum == ChecksumState::Pending),
        "{drift:?}"
    );

    // The flip: the target is authoritative and takes writes; no compare is reported.
    h.ok(Action::Dns {
        to: DnsTo::Target,
        wait: true,
    })
    .await;
    assert!(h.drift().await.is_empty());
    h.ok(unfreeze(Side::Target)).await;
    wait_until("writes on the target", WAIT, || async {
        h.metric("WritesTarget").await > Some(0.0)
    })
    .await;
    let acked = h.world.measures().await.writes_acked;
    h.acked_after(acked + 20).await;
    assert!(
        h.drift().await.is_empty(),
        "no drift reading after the flip"
    );
    assert_eq!(h.cdc_points().await, Some([0, 0, 0]));
    assert_eq!(h.stats().await.as_ref(), Some(&frozen));
    let reading = h
        .poll(SourceKind::Replication)
        .await
        .expect("replication readings");
    assert!(
        reading
            .iter()
            .any(|r| matches!(r, Reading::Replication(t) if t.status_text == "stopped")),
        "{reading:?}"
    );

    // Rollback: back to the source, replication started: everything resumes.
    h.ok(freeze(Side::Target)).await;
    h.ok(Action::Dns {
        to: DnsTo::Source,
        wait: true,
    })
    .await;
    let drift = h.drift().await;
    assert_eq!(drift.len(), h.plan.rehearsal.tables.len());
    assert!(
        drift.iter().any(|t| t.checksum == ChecksumState::Mismatch),
        "the target's own writes are unexplained: {drift:?}"
    );
    h.ok(Action::ReplicationStart).await;
    assert_eq!(h.cdc_points().await, Some([1, 1, 1]));
    let live = h.stats().await.expect("replication readings");
    assert_ne!(live, frozen, "validation resumes");
    h.world.shutdown().await;
}

#[tokio::test]
async fn finish_sends_the_last_event_of_the_world() {
    let mut h = Harness::start(fast_plan(), vec![Fault::ApiThrottle]).await;
    // The periodic measures are flowing.
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(ev)) => {
                let measured = matches!(ev, Event::WorldMeasured { .. });
                h.seen.push(ev);
                if measured {
                    break;
                }
            }
            Ok(None) => panic!("the world closed its channel before finish"),
            Err(_) => panic!("no periodic measures within {WAIT:?}"),
        }
    }
    let m = h.world.finish().await;
    // The world keeps running until shutdown, but its channel is closed: the receiver
    // sees the end of the stream right after finish's figures.
    let rest = tokio::time::timeout(WAIT, async {
        let mut rest = Vec::new();
        while let Some(ev) = h.events.recv().await {
            rest.push(ev);
        }
        rest
    })
    .await
    .expect("the world sends nothing after finish");
    match rest.last().or(h.seen.last()) {
        Some(Event::WorldMeasured { measures, .. }) => assert_eq!(measures, &m),
        other => panic!("the last event is finish's figures, got {other:?}"),
    }
    // Measures asked for later still answer, without an event.
    assert_eq!(h.world.measures().await, m);
    h.world.shutdown().await;
}

#[tokio::test]
async fn clean_cutover_through_the_actuator_loses_no_writes() {
    let h = Harness::start(fast_plan(), vec![]).await;
    h.acked_after(30).await;
    h.freeze_source().await;
    wait_until("drained and equal", WAIT, || async {
        h.drift()
            .await
            .iter()
            .all(|t| t.checksum == ChecksumState::Equal)
    })
    .await;
    h.ok(Action::ReplicationStop).await;
    h.ok(Action::Dns {
        to: DnsTo::Target,
        wait: true,
    })
    .await;
    h.ok(unfreeze(Side::Target)).await;
    assert_eq!(h.world.measures().await.authority, Some(Side::Target));
    wait_until("writes on the target", WAIT, || async {
        h.metric("WritesTarget").await > Some(0.0)
    })
    .await;
    let acked = h.world.measures().await.writes_acked;
    h.acked_after(acked + 20).await;
    let m: WorldMeasures = h.world.finish().await;
    assert_eq!(m.writes_lost, 0, "{m:?}");
    assert_eq!(m.rows_diverged, 0, "{m:?}");
    assert_eq!(m.authority, Some(Side::Target));
    assert!(m.writes_refused > 0 && m.downtime_s > 0.0, "{m:?}");
    assert_eq!(m.writes_attempted, m.writes_acked + m.writes_refused);
    // finish stops the workload: the figures no longer move.
    assert_eq!(h.world.measures().await, m);
    h.world.shutdown().await;
    h.world.shutdown().await;
}

#[tokio::test]
async fn a_write_lost_by_an_early_stop_is_counted() {
    // Stopping replication with changes in flight, then cutting over: the ledger sees it.
    let mut plan = fast_plan();
    plan.rehearsal.lag_ms = 1_000;
    let h = Harness::start(plan, vec![]).await;
    h.acked_after(30).await;
    h.freeze_source().await;
    h.ok(Action::ReplicationStop).await;
    h.ok(Action::Dns {
        to: DnsTo::Target,
        wait: true,
    })
    .await;
    h.ok(unfreeze(Side::Target)).await;
    let m = h.world.finish().await;
    assert!(m.writes_lost > 0, "{m:?}");
    assert!(m.rows_diverged > 0, "{m:?}");
    h.world.shutdown().await;
}

/// Drives the plan like an operator who confirms each step as soon as its gates are green.
/// Returns the final state, the measures, and the first step that stayed blocked.
async fn drive(plan: Plan, faults: Vec<Fault>) -> (State, WorldMeasures, Option<String>) {
    let plan = Arc::new(plan);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let world = World::start(
        &plan,
        WorldOptions {
            seed: 11,
            faults,
            ..Default::default()
        },
        tx.clone(),
    )
    .await
    .expect("the world starts");
    let stop = CancellationToken::new();
    let pollers = spawn_pollers(world.sources(), tx.clone(), stop.clone());
    let mut state = State::new(Arc::clone(&plan));
    state.apply(&Event::SessionStarted {
        at: now_ms(),
        mode: "test".into(),
        operator: "test".into(),
    });
    let mut blocked = None;
    let run = |state: &mut State, ev: &Event| {
        for effect in state.apply(ev) {
            let cutover_core::state::Effect::RunAction { step, direction } = effect else {
                continue; // these plans arm no guard that records an event
            };
            spawn_action(
                cutover_runtime::clock::Clock::real(),
                world.actuator(),
                Arc::clone(&plan),
                step,
                direction,
                tx.clone(),
            );
        }
    };
    while !state.completed() {
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(Some(ev)) => run(&mut state, &ev),
            Ok(None) => break,
            Err(_) => run(&mut state, &Event::Tick { at: now_ms() }),
        }
        if state.running_step().is_some() {
            continue;
        }
        let Some(next) = state.next_step() else { break };
        if state.step_readiness(next).0 == GateState::Green {
            let id = plan.steps[next].id.clone();
            run(
                &mut state,
                &Event::StepConfirmed {
                    at: now_ms(),
                    step: id,
                    by: "test".into(),
                },
            );
        } else if let Some(since) = state.step_ready_since(next)
            && state.now - since > plan.steps[next].timeout_ms
        {
            blocked = Some(format!(
                "{}: {}",
                plan.steps[next].id,
                state.blocking_reasons(next).join("; ")
            ));
            break;
        }
    }
    // A timed fault that strikes once the steps it could disturb are done (a stall right
    // after the drain's gates turned green) can outlast the run: follow it to its end.
    let deadline = Instant::now() + Duration::from_secs(20);
    while state.completed()
        && state.faults.values().any(|(active, _)| *active)
        && Instant::now() < deadline
    {
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(Some(ev)) => run(&mut state, &ev),
            Ok(None) => break,
            Err(_) => run(&mut state, &Event::Tick { at: now_ms() }),
        }
    }
    stop.cancel();
    for p in pollers {
        // A poller that panicked shows up as missing readings above; nothing to add here.
        let _ = p.await;
    }
    let measures = world.finish().await;
    world.shutdown().await;
    (state, measures, blocked)
}

#[tokio::test]
async fn rehearsal_plan_completes_cleanly_with_default_settings() {
    let started = Instant::now();
    let (state, m, blocked) = drive(rehearsal_plan_without_aborts(), vec![]).await;
    eprintln!("clean run: {:.1}s, {m:?}", started.elapsed().as_secs_f64());
    assert_eq!(blocked, None);
    assert!(state.completed());
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((m.writes_lost, m.rows_diverged), (0, 0), "{m:?}");
    assert!(m.downtime_s > 0.0 && m.writes_refused > 0, "{m:?}");
    assert_eq!(m.authority, Some(Side::Target));
}

#[tokio::test]
async fn rehearsal_plan_completes_despite_transient_faults() {
    let runs = [
        Fault::LagSpike,
        Fault::ApiThrottle,
        Fault::ReplicatorStall,
        Fault::DnsSlow,
    ]
    .map(|f| {
        tokio::spawn(async move { (f, drive(rehearsal_plan_without_aborts(), vec![f]).await) })
    });
    for run in runs {
        let (fault, (state, m, blocked)) = run.await.expect("the run finishes");
        eprintln!("{fault}: {m:?}");
        assert_eq!(blocked, None, "{fault}");
        assert!(state.completed(), "{fault}");
        assert_eq!((m.writes_lost, m.rows_diverged), (0, 0), "{fault}: {m:?}");
        assert!(
            state
                .faults
                .get(fault.name())
                .is_some_and(|(active, _)| !active),
            "{fault} was injected and cleared: {:?}",
            state.faults
        );
    }
}

#[tokio::test]
async fn rehearsal_plan_blocks_at_drain_on_a_dropped_change() {
    let (state, m, blocked) = drive(rehearsal_plan_without_aborts(), vec![Fault::DropChange]).await;
    let blocked = blocked.expect("the drain step stays blocked");
    assert!(blocked.starts_with("drain:"), "{blocked}");
    assert!(
        blocked.contains("id="),
        "the reason names the key: {blocked}"
    );
    assert!(!state.completed());
    assert_eq!(m.writes_lost, 0, "nothing was cut over: {m:?}");
    assert_eq!(m.rows_diverged, 1, "{m:?}");
}

#[test]
fn write_intervals_never_panic_the_timer() {
    use super::world::write_interval;
    // `inf` gave a zero period (tokio's interval panics on it), `1e-300` one past what a
    // Duration holds.
    for rate in [
        f64::INFINITY,
        1e300,
        f64::NAN,
        1e-300,
        0.0,
        -5.0,
        f64::NEG_INFINITY,
    ] {
        let d = write_interval(rate);
        assert!(
            d >= Duration::from_millis(1) && d <= Duration::from_secs(3_600),
            "{rate}: {d:?}"
        );
    }
    assert_eq!(write_interval(40.0), Duration::from_millis(25));
}

/// The largest values validation accepts (`limits`) run: no overflow, no huge allocation.
#[tokio::test]
async fn the_world_runs_at_the_largest_accepted_values() {
    use cutover_core::plan::limits;
    let mut plan = fast_plan();
    let r = &mut plan.rehearsal;
    r.tables = vec!["orders".into()];
    r.rows_per_table = *limits::ROWS_PER_TABLE.end();
    r.write_rate = *limits::WRITE_RATE.end();
    r.clients = *limits::CLIENTS.end();
    if let Some(dns) = &mut plan.dns {
        dns.ttl = *limits::TTL_S.end();
    }
    let h = Harness::start(plan, vec![]).await;
    // Seeding the largest table takes seconds of CPU; on a machine busy with builds it took
    // longer than the usual bound. The condition is the same, only its patience is longer.
    wait_until("writes at the highest rate", WAIT * 6, || async {
        h.stats()
            .await
            .is_some_and(|t| t.iter().filter_map(|t| t.inserts).sum::<u64>() > 0)
    })
    .await;
    h.world.shutdown().await;
}

/// Before validation refused it, `write_rate = inf` reached the world and panicked its
/// workload task (a zero timer period): the cockpit then showed no writes at all.
#[tokio::test]
async fn a_world_given_an_infinite_write_rate_still_writes() {
    let mut plan = fast_plan();
    plan.rehearsal.write_rate = f64::INFINITY;
    let h = Harness::start(plan, vec![]).await;
    wait_until("writes despite write_rate = inf", WAIT, || async {
        h.stats()
            .await
            .is_some_and(|t| t.iter().filter_map(|t| t.inserts).sum::<u64>() > 0)
    })
    .await;
    h.world.shutdown().await;
}
