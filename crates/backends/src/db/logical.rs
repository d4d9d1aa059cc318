//! PostgreSQL logical replication as a replication engine (`[replication] engine =
//! "postgres"`): the publication on the source, the subscription on the target.
//!
//! Each poll reads both servers into one engine-neutral [`ReplicationReading`]: the
//! subscription (`pg_subscription.subenabled`) and its apply worker (`pg_stat_subscription`),
//! the slot on the source (`pg_replication_slots`: `confirmed_flush_lsn` against
//! `pg_current_wal_lsn()`, the exact gap in bytes), the per-table sync states
//! (`pg_subscription_rel`), the apply and sync error counts (`pg_stat_subscription_stats`,
//! PostgreSQL 15 and later) and the sequences of the published tables on both sides.
//! Lag in seconds is the walsender's `replay_lag` (`pg_stat_replication`), present only while
//! the server measures it; nothing is derived from a clock guess.
//!
//! Actions: `ALTER SUBSCRIPTION .. DISABLE / ENABLE`, waited for until the worker has gone or
//! come, and `sync-sequences` (`setval` on the target).
//!
//! Sequences: logical replication does not copy them. The ones compared and synced are the
//! sequences owned by a column of a published table (`serial`, identity columns, `ALTER
//! SEQUENCE .. OWNED BY`), found through `pg_depend` on the source and matched by schema and
//! name on the target. A sequence used only through a `nextval()` default it does not own is
//! not included: give it an owner.

use std::time::{Duration, Instant};

use super::DbError;
use super::actuator::read_write;
use super::conn::{Bind, Db};
use super::upstream::{self, Verdict};
use cutover_core::event::{
    EngineFact, LogicalFacts, Reading, ReplicationEngine, ReplicationReading, ReplicationStatus,
    SequenceStat, SourceKind, TableStat, now_ms,
};
use cutover_core::plan::LogicalNames;
use cutover_runtime::action::{ActionError, Output};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// How long `ALTER SUBSCRIPTION .. DISABLE/ENABLE` may take to stop or start the worker.
const WORKER_WAIT: Duration = Duration::from_secs(60);
/// How often the worker is looked at while waiting.
const WORKER_POLL: Duration = Duration::from_millis(200);

/// The logical replication of a pair of PostgreSQL databases, read-only.
pub struct LogicalSource {
    source: Db,
    target: Db,
    names: LogicalNames,
    /// Whether the subscription's conninfo names the plan's source, per conninfo seen.
    upstream: upstream::Cache,
}

impl LogicalSource {
    pub fn new(source: Db, target: Db, names: LogicalNames) -> LogicalSource {
        LogicalSource {
            source,
            target,
            names,
            upstream: upstream::Cache::default(),
        }
    }
}

impl Source for LogicalSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Replication
    }

    fn name(&self) -> String {
        "pg-logical".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            // DbError messages are built scrubbed of secrets.
            let r = read(&self.source, &self.target, &self.names, &self.upstream)
                .await
                .map_err(|e| SourceError(e.to_string()))?;
            Ok(vec![Reading::Replication(Box::new(r))])
        })
    }
}

fn cell(row: Option<&Vec<Option<String>>>, i: usize) -> Option<String> {
    row.and_then(|r| r.get(i)).cloned().flatten()
}

fn state_error(db: &Db, reason: String, fix: &str) -> DbError {
    DbError::State {
        who: db.who(),
        reason,
        fix: fix.to_string(),
    }
}

/// The subscription as the target sees it.
struct Subscription {
    enabled: bool,
    worker_pid: Option<i64>,
    apply_errors: Option<u64>,
    sync_errors: Option<u64>,
}

async fn subscription(target: &Db, name: &str) -> Result<Subscription, DbError> {
    let rows = target
        .rows(
            "reading the subscription",
            "SELECT s.subenabled::text, \
               (SELECT st.pid::text FROM pg_stat_subscription st \
                  WHERE st.subid = s.oid AND st.relid IS NULL AND st.pid IS NOT NULL LIMIT 1), \
               (current_setting('server_version_num')::int >= 150000)::text \
             FROM pg_subscription s \
             WHERE s.subname = $1 \
               AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[Bind::Text(name.to_string())],
        )
        .await?;
    let Some(row) = rows.first() else {
        // Which subscriptions the database has tells a misspelt name from a wrong database.
        let others = target
            .rows(
                "listing the database's subscriptions",
                "SELECT coalesce(string_agg(subname, ', ' ORDER BY subname), '') FROM pg_subscription \
                 WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .ok()
            .and_then(|r| cell(r.first(), 0))
            .unwrap_or_default();
        let has = if others.is_empty() {
            "it has no subscription at all".to_string()
        } else {
            format!("it has: {others}")
        };
        return Err(state_error(
            target,
            format!("no subscription \"{name}\" in this database ({has})"),
            "create it on the target (CREATE SUBSCRIPTION ... PUBLICATION ...), or fix [replication] subscription = in the plan, or point [target] at the subscriber's database",
        ));
    };
    let enabled = cell(Some(row), 0).as_deref() == Some("true");
    let worker_pid = cell(Some(row), 1).and_then(|p| p.parse().ok());
    let has_stats = cell(Some(row), 2).as_deref() == Some("true");
    let (apply_errors, sync_errors) = if has_stats {
        let rows = target
            .rows(
                "reading pg_stat_subscription_stats",
                "SELECT apply_error_count::text, sync_error_count::text \
                 FROM pg_stat_subscription_stats WHERE subname = $1",
                &[Bind::Text(name.to_string())],
            )
            .await?;
        let row = rows.first();
        (
            cell(row, 0).and_then(|v| v.parse().ok()),
            cell(row, 1).and_then(|v| v.parse().ok()),
        )
    } else {
        (None, None)
    };
    Ok(Subscription {
        enabled,
        worker_pid,
        apply_errors,
        sync_errors,
    })
}

/// The slot on the source: whether a walsender streams from it, and the gap.
struct Slot {
    active: bool,
    confirmed: Option<String>,
    current: String,
    behind_bytes: Option<u64>,
    replay_lag_s: Option<f64>,
}

async fn wal_level_and_publication(source: &Db, publication: &str) -> Result<(), DbError> {
    let rows = source
        .rows(
            "reading wal_level and the publication",
            "SELECT current_setting('wal_level'), \
               EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)::text",
            &[Bind::Text(publication.to_string())],
        )
        .await?;
    let row = rows.first();
    let level = cell(row, 0).unwrap_or_default();
    if level != "logical" {
        return Err(state_error(
            source,
            format!("wal_level is \"{level}\"; logical replication needs \"logical\""),
            "set wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart the server; on RDS/Aurora set rds.logical_replication = 1 in the parameter group and reboot)",
        ));
    }
    if cell(row, 1).as_deref() != Some("true") {
        return Err(state_error(
            source,
            format!("no publication \"{publication}\" in this database"),
            "create it on the source (CREATE PUBLICATION ... FOR TABLE ...), or fix [replication] publication = in the plan",
        ));
    }
    Ok(())
}

async fn slot(source: &Db, slot: &str, subscription: &str) -> Result<Option<Slot>, DbError> {
    let rows = source
        .rows(
            "reading the replication slot",
            "SELECT s.active::text, s.confirmed_flush_lsn::text, pg_current_wal_lsn()::text, \
               greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint::text, \
               (SELECT extract(epoch FROM r.replay_lag)::text FROM pg_stat_replication r \
                  WHERE r.application_name = $2 AND r.replay_lag IS NOT NULL LIMIT 1) \
             FROM pg_replication_slots s WHERE s.slot_name = $1",
            &[
                Bind::Text(slot.to_string()),
                Bind::Text(subscription.to_string()),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let row = Some(row);
    Ok(Some(Slot {
        active: cell(row, 0).as_deref() == Some("true"),
        confirmed: cell(row, 1),
        current: cell(row, 2).unwrap_or_default(),
        behind_bytes: cell(row, 3).and_then(|v| v.parse().ok()),
        replay_lag_s: cell(row, 4).and_then(|v| v.parse().ok()),
    }))
}

/// `pg_subscription_rel.srsubstate` in words.
fn sync_state(code: &str) -> &'static str {
    match code {
        "i" => "initialize",
        "d" => "data copy",
        "f" => "finished copy",
        "s" => "synchronized",
        "r" => "ready",
        _ => "unknown",
    }
}

async fn tables(target: &Db, subscription: &str) -> Result<Vec<TableStat>, DbError> {
    let rows = target
        .rows(
            "reading pg_subscription_rel",
            // Named as the drift compare names them (bare within the compared schema), so
            // the drift gates find each table the subscription has under one key.
            "SELECT CASE WHEN n.nspname = $2 THEN c.relname ELSE n.nspname || '.' || c.relname END, \
               r.srsubstate::text \
             FROM pg_subscription_rel r \
             JOIN pg_subscription s ON s.oid = r.srsubid \
             JOIN pg_class c ON c.oid = r.srrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.subname = $1 \
               AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY 1",
            &[
                Bind::Text(subscription.to_string()),
                Bind::Text(target.schema().to_string()),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableStat {
            table: cell(Some(r), 0).unwrap_or_default(),
            full_load_rows: None,
            inserts: None,
            updates: None,
            deletes: None,
            validation_state: None,
            validation_pending: None,
            validation_failed: None,
            validation_suspended: None,
            table_state: Some(sync_state(&cell(Some(r), 1).unwrap_or_default()).to_string()),
        })
        .collect())
}

/// A sequence of a published table, as one side holds it.
#[derive(Clone, Debug)]
struct Sequence {
    schema: String,
    name: String,
    value: Option<i64>,
}

impl Sequence {
    fn full(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The sequences owned by the publication's tables, with their values on the source.
async fn source_sequences(source: &Db, publication: &str) -> Result<Vec<Sequence>, DbError> {
    let rows = source
        .rows(
            "reading the published tables' sequences",
            "SELECT DISTINCT sn.nspname, sc.relname, \
               has_sequence_privilege(sc.oid, 'SELECT')::text, \
               CASE WHEN has_sequence_privilege(sc.oid, 'SELECT') \
                 THEN pg_sequence_last_value(sc.oid)::text END \
             FROM pg_publication_tables pt \
             JOIN pg_namespace tn ON tn.nspname = pt.schemaname \
             JOIN pg_class t ON t.relname = pt.tablename AND t.relnamespace = tn.oid \
             JOIN pg_depend d ON d.refobjid = t.oid AND d.refclassid = 'pg_class'::regclass \
               AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
             JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S' \
             JOIN pg_namespace sn ON sn.oid = sc.relnamespace \
             WHERE pt.pubname = $1 ORDER BY 1, 2",
            &[Bind::Text(publication.to_string())],
        )
        .await?;
    sequences_from(source, &rows)
}

fn sequences_from(db: &Db, rows: &[Vec<Option<String>>]) -> Result<Vec<Sequence>, DbError> {
    let mut out = Vec::new();
    for r in rows {
        let r = Some(r);
        let seq = Sequence {
            schema: cell(r, 0).unwrap_or_default(),
            name: cell(r, 1).unwrap_or_default(),
            value: cell(r, 3).and_then(|v| v.parse().ok()),
        };
        if cell(r, 2).as_deref() != Some("true") {
            return Err(state_error(
                db,
                format!("the user cannot read sequence {}", seq.full()),
                &format!("GRANT SELECT ON SEQUENCE {} TO the plan's user", seq.full()),
            ));
        }
        out.push(seq);
    }
    Ok(out)
}

/// The same sequences on the target (matched by schema and name); a missing one is absent.
async fn target_sequences(target: &Db, wanted: &[Sequence]) -> Result<Vec<Sequence>, DbError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = wanted.iter().map(Sequence::full).collect();
    let rows = target
        .rows(
            "reading the target's sequences",
            "SELECT n.nspname, c.relname, has_sequence_privilege(c.oid, 'SELECT')::text, \
               CASE WHEN has_sequence_privilege(c.oid, 'SELECT') \
                 THEN pg_sequence_last_value(c.oid)::text END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' \
               AND n.nspname || '.' || c.relname = ANY (string_to_array($1, E'\\n')) \
             ORDER BY 1, 2",
            &[Bind::Text(names.join("\n"))],
        )
        .await?;
    sequences_from(target, &rows)
}

/// Both sides' values, one stat per sequence of the source.
async fn sequence_stats(
    source: &Db,
    target: &Db,
    publication: &str,
) -> Result<(Vec<Sequence>, Vec<SequenceStat>), DbError> {
    let on_source = source_sequences(source, publication).await?;
    let on_target = target_sequences(target, &on_source).await?;
    let stats = on_source
        .iter()
        .map(|s| SequenceStat {
            name: s.full(),
            source: s.value,
            target: on_target
                .iter()
                .find(|t| t.schema == s.schema && t.name == s.name)
                .and_then(|t| t.value),
        })
        .collect();
    Ok((on_target, stats))
}

/// The subscription's conninfo (host, port, dbname: never its password) against the plan's
/// `[source]`: another server is an error naming both; one this host cannot tell apart, or
/// a conninfo the user may not read (superuser only), is a fact that says so.
async fn check_upstream(
    source: &Db,
    target: &Db,
    subscription: &str,
    cache: &upstream::Cache,
) -> Result<EngineFact, DbError> {
    let fact = |value: String| EngineFact {
        label: "subscribes to".into(),
        value,
    };
    let Some(plan) = upstream::from_url(source.url(), 5432) else {
        return Ok(fact("not verified: the plan's source names no host".into()));
    };
    let rows = target
        .rows(
            "reading the subscription's connection",
            "SELECT subconninfo FROM pg_subscription \
             WHERE subname = $1 \
               AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[Bind::Text(subscription.to_string())],
        )
        .await;
    // The conninfo may hold a password: it is parsed here and never put in a message.
    let conninfo = match rows {
        Ok(rows) => cell(rows.first(), 0).unwrap_or_default(),
        Err(_) => {
            return Ok(fact(format!(
                "not verified against the plan's source {}: the target's user may not read pg_subscription.subconninfo (superuser only)",
                plan.show()
            )));
        }
    };
    let Some(theirs) = upstream::from_conninfo(&conninfo) else {
        return Ok(fact(format!(
            "not verified against the plan's source {}: the subscription's conninfo names no TCP host",
            plan.show()
        )));
    };
    let replica = upstream::from_url(target.url(), 5432).map_or_else(|| target.who(), |a| a.show());
    match cache.compare(&theirs, &plan).await {
        Verdict::Same { note } => Ok(fact(match note {
            Some(n) => format!("{} (the plan's source: {n})", theirs.show()),
            None => format!("{} (the plan's source)", theirs.show()),
        })),
        Verdict::Unsure(why) => Ok(fact(format!(
            "{} — not verified against the plan's source {}: {why}",
            theirs.show(),
            plan.show()
        ))),
        Verdict::Different => Err(state_error(
            target,
            format!(
                "subscription \"{subscription}\" on {replica} subscribes to {}, the plan's source is {}",
                theirs.show(),
                plan.show()
            ),
            "point [source] at the publisher the subscription connects to (or [target] at a subscriber of the plan's source); every replication reading would otherwise compare the wrong servers",
        )),
    }
}

/// One reading of the logical replication between `source` and `target`.
pub async fn read(
    source: &Db,
    target: &Db,
    names: &LogicalNames,
    upstream: &upstream::Cache,
) -> Result<ReplicationReading, DbError> {
    wal_level_and_publication(source, &names.publication).await?;
    let sub = subscription(target, &names.subscription).await?;
    let upstream_fact = check_upstream(source, target, &names.subscription, upstream).await?;
    let slot = slot(source, &names.slot, &names.subscription).await?;
    let tables = tables(target, &names.subscription).await;
    let sequences = sequence_stats(source, target, &names.publication).await;
    let (status, status_text) = match (sub.enabled, sub.worker_pid) {
        (_, _) if slot.is_none() => (ReplicationStatus::Failed, "slot missing".to_string()),
        (true, Some(pid)) => (ReplicationStatus::Running, format!("enabled, worker {pid}")),
        (true, None) => (
            ReplicationStatus::Starting,
            "enabled, no worker yet".to_string(),
        ),
        (false, None) => (ReplicationStatus::Stopped, "disabled".to_string()),
        (false, Some(pid)) => (
            ReplicationStatus::Stopping,
            format!("disabled, worker {pid} still running"),
        ),
    };
    let last_error = match (&slot, sub.apply_errors, sub.sync_errors) {
        (None, _, _) => Some(format!(
            "{}: no replication slot \"{}\" (fix: check the subscription's slot_name and set [replication] slot = to it, or re-create the subscription)",
            source.who(),
            names.slot
        )),
        (_, Some(a), s) if a > 0 || s.is_some_and(|s| s > 0) => Some(format!(
            "{a} apply error(s), {} table sync error(s) since the statistics were reset (the target's server log has the messages)",
            s.unwrap_or(0)
        )),
        _ => None,
    };
    let stop_reason = (status == ReplicationStatus::Stopped)
        .then(|| format!("subscription {} is disabled", names.subscription));
    let (tables, tables_error) = match tables {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let count = |pred: &dyn Fn(&str) -> bool| {
        tables.as_ref().map(|t| {
            t.iter()
                .filter(|s| s.table_state.as_deref().is_some_and(pred))
                .count() as u32
        })
    };
    let (sequences, sequences_error) = match sequences {
        Ok((_, stats)) => (Some(stats), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let observed_at = now_ms();
    Ok(ReplicationReading {
        observed_at,
        engine: ReplicationEngine::Postgres,
        name: names.subscription.clone(),
        status,
        status_text,
        stop_reason,
        last_error,
        figures_error: None,
        tables_error,
        validation_enabled: None,
        lag_s: slot
            .as_ref()
            .and_then(|s| s.replay_lag_s)
            .map(|l| vec![(observed_at, l)])
            .unwrap_or_default(),
        capture_lag_s: Vec::new(),
        backlog: Vec::new(),
        behind_transactions: None,
        behind_bytes: slot.as_ref().and_then(|s| s.behind_bytes),
        full_load_pct: None,
        tables_loaded: count(&|s| s == "ready" || s == "synchronized"),
        tables_loading: count(&|s| s == "data copy" || s == "finished copy"),
        tables_queued: count(&|s| s == "initialize"),
        tables_errored: None,
        tables,
        source_position: slot.as_ref().map(|s| s.current.clone()),
        target_position: slot.as_ref().and_then(|s| s.confirmed.clone()),
        logical: Some(LogicalFacts {
            publication: names.publication.clone(),
            subscription: names.subscription.clone(),
            enabled: sub.enabled,
            worker_pid: sub.worker_pid,
            slot: names.slot.clone(),
            slot_active: slot.as_ref().map(|s| s.active),
            apply_errors: sub.apply_errors,
            sync_errors: sub.sync_errors,
        }),
        sequences,
        sequences_error,
        gap_error: None,
        source_gtid: None,
        facts: vec![upstream_fact],
    })
}

/// The actions of the postgres engine: the subscription and the sequences, on the target.
#[derive(Clone, Debug)]
pub struct LogicalActuator {
    source: Db,
    target: Db,
}

fn action_error(e: DbError) -> ActionError {
    ActionError::new(e.to_string())
}

/// `"name"`: the subscription's name as an identifier (the plan allows only letters, digits
/// and `_`, so nothing needs escaping beyond the quotes).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl LogicalActuator {
    pub fn new(source: Db, target: Db) -> LogicalActuator {
        LogicalActuator { source, target }
    }

    /// `ALTER SUBSCRIPTION .. ENABLE` (`enable`) or `DISABLE`, then waits until the apply
    /// worker has started or stopped: the statement returns before the worker reacts.
    pub async fn set_enabled(
        &self,
        names: &LogicalNames,
        enable: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let name = &names.subscription;
        let verb = if enable { "ENABLE" } else { "DISABLE" };
        let statement = format!("ALTER SUBSCRIPTION {} {verb}", quoted(name));
        let before = subscription(&self.target, name)
            .await
            .map_err(action_error)?;
        out.line(format!(
            "on {} ({}): {statement}",
            self.target.who(),
            self.target.version()
        ));
        // READ WRITE: the target is usually frozen (default_transaction_read_only) until the
        // switch.
        self.target
            .execute_script(&read_write(&statement), 0, |line| out.line(line))
            .await
            .map_err(|e| {
                ActionError::new(format!(
                    "{e}; ALTER SUBSCRIPTION needs the subscription's owner (or a superuser)"
                ))
            })?;
        let started = Instant::now();
        loop {
            let now = subscription(&self.target, name)
                .await
                .map_err(action_error)?;
            let done = if enable {
                now.enabled && now.worker_pid.is_some()
            } else {
                !now.enabled && now.worker_pid.is_none()
            };
            if done {
                let worker = match now.worker_pid {
                    Some(pid) => format!("apply worker {pid} running"),
                    None => "no apply worker".to_string(),
                };
                out.line(format!("subscription {name}: {worker}"));
                let was = if before.enabled == enable {
                    " (it already was)"
                } else {
                    ""
                };
                return Ok(format!(
                    "subscription {name} {}{was}, {worker}",
                    if enable { "enabled" } else { "disabled" }
                ));
            }
            if started.elapsed() >= WORKER_WAIT {
                let worker = match now.worker_pid {
                    Some(pid) => format!("its apply worker {pid} is still running"),
                    None => "no apply worker has started".to_string(),
                };
                return Err(ActionError::new(format!(
                    "{statement} returned OK but after {}s {worker} on {}; check the target's server log (max_logical_replication_workers, the connection to the source, apply errors)",
                    WORKER_WAIT.as_secs(),
                    self.target.who()
                )));
            }
            tokio::time::sleep(WORKER_POLL).await;
        }
    }

    /// Sets each target sequence of the published tables to the source's value plus
    /// `margin`, never lower than it is. Each sequence changed is named in the output.
    pub async fn sync_sequences(
        &self,
        names: &LogicalNames,
        margin: i64,
        out: &Output,
    ) -> Result<String, ActionError> {
        let (on_target, stats) = sequence_stats(&self.source, &self.target, &names.publication)
            .await
            .map_err(action_error)?;
        let mut changed = 0usize;
        let mut missing = Vec::new();
        for s in &stats {
            let Some(value) = s.source else {
                out.line(format!("{}: never used on the source, left alone", s.name));
                continue;
            };
            let Some(seq) = on_target.iter().find(|t| t.full() == s.name) else {
                missing.push(s.name.clone());
                continue;
            };
            let want = value.saturating_add(margin);
            if s.target.is_some_and(|t| t >= want) {
                out.line(format!(
                    "{}: target {} already at or past {want}, left alone",
                    s.name,
                    s.target.unwrap_or_default()
                ));
                continue;
            }
            // A script (not a prepared query) so it can run READ WRITE on a frozen target;
            // the names are the catalog's, quoted as literals and then as identifiers.
            let literal = |v: &str| format!("'{}'", v.replace('\'', "''"));
            let statement = format!(
                "SELECT setval(format('%I.%I', {}, {})::regclass, {want}, true)",
                literal(&seq.schema),
                literal(&seq.name)
            );
            self.target
                .execute_script(&read_write(&statement), 0, |_| {})
                .await
                .map_err(|e| {
                    ActionError::new(format!(
                        "{e}; setval needs UPDATE on the sequence (GRANT UPDATE ON SEQUENCE {} TO the plan's user)",
                        s.name
                    ))
                })?;
            let was = s.target.map_or("unset".to_string(), |t| t.to_string());
            out.line(format!("{}: {was} -> {want} (source {value})", s.name));
            changed += 1;
        }
        if !missing.is_empty() {
            return Err(ActionError::new(format!(
                "{} sequence(s) of the published tables do not exist on {}: {} (create them on the target, e.g. from the source's schema dump); {changed} other(s) set",
                missing.len(),
                self.target.who(),
                missing.join(", ")
            )));
        }
        Ok(format!(
            "{changed} of {} sequence(s) set on {} (source value + {margin})",
            stats.len(),
            self.target.who()
        ))
    }
}
