//! `[replication] engine = "mysql"` on the private MariaDB pair (source 127.0.0.1:3307, its
//! GTID replica 127.0.0.1:3308; `bash tests/support/private_mariadb.sh` starts them): the
//! exact transaction gap through `cutover check --json`, and the bad inputs each named with
//! its fix while the gates stay unknown.
//!
//! The tests share one replication stream, so they run one at a time (`PAIR`): a stopped SQL
//! thread or a commit of one would change the exact counts of another.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row};

use super::common::{check_json, reading};

pub const SOURCE: &str = "mysql://root@127.0.0.1:3307";
pub const REPLICA: &str = "mysql://root@127.0.0.1:3308";
pub const DB: &str = "cutover_native";

pub static PAIR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn pool(url: &str, what: &str) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&format!("{url}/mysql"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the private MariaDB {what} must be running at {url} for tests/native.rs \
                 (start the pair with `bash tests/support/private_mariadb.sh`): {e}"
            )
        })
}

pub async fn exec(pool: &MySqlPool, sql: &str) {
    pool.execute(AssertSqlSafe(sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn text(pool: &MySqlPool, sql: &str) -> String {
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .and_then(|r| r.try_get::<String, _>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A login with no password and only `grants` on the test database; `binlogged` decides
/// whether it replicates (a replica-only user must not move the GTIDs).
pub async fn user(pool: &MySqlPool, name: &str, grants: &str, binlogged: bool) {
    let log = if binlogged { 1 } else { 0 };
    exec(
        pool,
        &format!(
            "SET sql_log_bin = {log}; CREATE USER IF NOT EXISTS {name}@'127.0.0.1' IDENTIFIED BY ''; \
             GRANT {grants} ON {DB}.* TO {name}@'127.0.0.1'; SET sql_log_bin = 1"
        ),
    )
    .await;
}

/// The pair, replicating and caught up, with the test table on both sides.
pub async fn pair() -> (MySqlPool, MySqlPool) {
    let (src, rep) = (pool(SOURCE, "source").await, pool(REPLICA, "replica").await);
    // A drive leaves the source frozen only if it failed half-way; start from a writable
    // source and a running replica.
    exec(&src, "SET GLOBAL read_only = OFF").await;
    exec(&rep, "START SLAVE").await;
    exec(&src, &format!("CREATE DATABASE IF NOT EXISTS {DB}")).await;
    exec(
        &src,
        &format!(
            "CREATE TABLE IF NOT EXISTS {DB}.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)"
        ),
    )
    .await;
    caught_up(&src, &rep).await;
    (src, rep)
}

/// Waits until the replica has applied the source's position (by GTID, read directly).
async fn caught_up(src: &MySqlPool, rep: &MySqlPool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = text(src, "SELECT @@GLOBAL.gtid_binlog_pos").await;
        let have = text(rep, "SELECT @@GLOBAL.gtid_slave_pos").await;
        if want == have {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not catch up within 30s: source {want}, replica {have}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plan whose first step is the drain gate on the replica.
fn plan(dir: &Path, name: &str, source: &str, target: &str, replication_extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
[source]
engine = "mysql"
url = "{source}/{DB}"
[target]
engine = "mysql"
url = "{target}/{DB}"
[replication]
engine = "mysql"
{replication_extra}
[[step]]
id = "drain"
title = "Replica caught up by GTID"
gates = ["replication.behind_transactions == 0", "replication.status == running"]
confirm = "drained"
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

fn gate<'a>(report: &'a serde_json::Value, input: &str) -> &'a serde_json::Value {
    report["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["input"] == input))
        .unwrap_or_else(|| panic!("no gate on {input} in {report:#}"))
}

/// Checks until `ok` holds for the report (the replica applies asynchronously) or 30 s.
fn check_until(
    plan: &Path,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, report) = check_json(plan);
        if ok(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "{what} within 30s: {report:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_counts_the_exact_gtid_gap_while_the_sql_thread_is_stopped() {
    let _one = PAIR.lock().await;
    let (src, rep) = pair().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = plan(dir.path(), "binlog", SOURCE, REPLICA, "");

    let (code, report) = check_json(&plan);
    let r = reading(&report, "replication");
    assert_eq!(r["value"]["engine"], "mysql", "{report:#}");
    assert_eq!(r["value"]["status"], "running", "{report:#}");
    assert_eq!(r["value"]["behind_transactions"], 0, "{report:#}");
    assert_eq!(code, Some(0), "caught up: every gate green: {report:#}");
    assert_eq!(
        gate(&report, "replication.behind_transactions")["state"],
        "green"
    );
    let facts = r["value"]["facts"].to_string();
    assert!(
        facts.contains("IO thread") && facts.contains("SQL thread"),
        "{facts}"
    );

    exec(&rep, "STOP SLAVE SQL_THREAD").await;
    const N: u64 = 7;
    for i in 0..N {
        exec(&src, &format!("INSERT INTO {DB}.t (v) VALUES ({i})")).await;
    }
    let source_pos = text(&src, "SELECT @@GLOBAL.gtid_binlog_pos").await;
    // The IO thread still receives: the gap is counted from the positions, not the relay log.
    let report = check_until(&plan, "the gap to show", |r| {
        reading(r, "replication")["value"]["source_position"] == source_pos.as_str()
    });
    let r = &reading(&report, "replication")["value"];
    assert_eq!(r["behind_transactions"], N, "{report:#}");
    assert_eq!(r["status"], "stopped", "{report:#}");
    let drain = gate(&report, "replication.behind_transactions");
    assert_eq!(drain["state"], "red", "{report:#}");
    let reason = drain["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("replica is {N} transactions behind (GTID "))
            && reason.contains(&format!("of {source_pos})")),
        "the reason names the gap and both positions: {reason}"
    );
    assert_eq!(report["exit_code"], 1);

    exec(&rep, "START SLAVE SQL_THREAD").await;
    let report = check_until(&plan, "the replica to catch up", |r| {
        reading(r, "replication")["value"]["behind_transactions"] == 0
    });
    assert_eq!(
        reading(&report, "replication")["value"]["status"],
        "running"
    );
    assert_eq!(
        gate(&report, "replication.behind_transactions")["state"],
        "green"
    );
}

/// The replication source's error in a report, with every gate on it unknown.
fn failed_with(report: &serde_json::Value, fragments: &[&str]) {
    let r = reading(report, "replication");
    let err = r["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {report:#}"));
    for f in fragments {
        assert!(err.contains(f), "the error names {f:?}: {err}");
    }
    for input in ["replication.behind_transactions", "replication.status"] {
        let g = gate(report, input);
        assert_eq!(g["state"], "unknown", "{input}: {report:#}");
        assert!(
            g["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(fragments[0]),
            "{input}'s reason carries the error: {g:#}"
        );
    }
    assert_eq!(report["exit_code"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_does_not_exist_is_named_with_the_fix() {
    let _one = PAIR.lock().await;
    pair().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = plan(dir.path(), "nochan", SOURCE, REPLICA, "channel = \"east\"");
    let (_, report) = check_json(&plan);
    failed_with(
        &report,
        &[
            "no replication channel \"east\"",
            "fix channel in [replication]",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_the_monitor_privilege_is_told_which_to_grant() {
    let _one = PAIR.lock().await;
    let (src, rep) = pair().await;
    // Created on the replica alone (not binlogged), so the source's GTIDs do not move.
    user(&rep, "cutover_nopriv", "SELECT", false).await;
    caught_up(&src, &rep).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = plan(
        dir.path(),
        "nopriv",
        SOURCE,
        "mysql://cutover_nopriv@127.0.0.1:3308",
        "",
    );
    let (_, report) = check_json(&plan);
    failed_with(
        &report,
        &["may not read the replica status", "GRANT SLAVE MONITOR"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_without_binlog_is_named_with_the_fix() {
    let _one = PAIR.lock().await;
    pair().await;
    // The machine's own server: no binlog (checked, so the test says so if that changes).
    let machine = pool("mysql://root@127.0.0.1:3306", "machine server (3306)").await;
    let log_bin = sqlx::query("SELECT @@GLOBAL.log_bin")
        .fetch_one(&machine)
        .await
        .and_then(|r| r.try_get::<i64, _>(0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        log_bin, 0,
        "this test needs a server without binlog on 3306"
    );
    exec(&machine, &format!("CREATE DATABASE IF NOT EXISTS {DB}")).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = plan(
        dir.path(),
        "nobinlog",
        "mysql://root@127.0.0.1:3306",
        REPLICA,
        "",
    );
    let (_, report) = check_json(&plan);
    failed_with(
        &report,
        &["binary logging is off", "start the source with log_bin"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_whose_source_is_not_the_replicas_source_is_refused_naming_both() {
    let _one = PAIR.lock().await;
    let (src, rep) = pair().await;
    let configured = sqlx::query("SHOW SLAVE STATUS")
        .fetch_one(&rep)
        .await
        .and_then(|r| {
            Ok((
                r.try_get::<String, _>("Master_Host")?,
                r.try_get::<u32, _>("Master_Port")?,
            ))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        configured,
        ("127.0.0.1".to_string(), 3307),
        "the private replica replicates from 127.0.0.1:3307"
    );
    // The replica itself has a binlog, but it does not replicate from itself: a plan whose
    // [source] names it would prove "caught up" against the wrong server.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong = plan(dir.path(), "wrongsource", REPLICA, REPLICA, "");
    let (_, report) = check_json(&wrong);
    failed_with(
        &report,
        &[
            "replica 127.0.0.1:3308 replicates from 127.0.0.1:3307, the plan's source is 127.0.0.1:3308",
            "point [source] at the server the replica replicates from",
        ],
    );

    // localhost and 127.0.0.1 are one server: resolved on this host, it passes, and the
    // engine's facts say how it was told.
    let by_name = plan(
        dir.path(),
        "byname",
        "mysql://root@localhost:3307",
        REPLICA,
        "",
    );
    caught_up(&src, &rep).await;
    let (code, report) = check_json(&by_name);
    assert_eq!(code, Some(0), "{report:#}");
    let facts = reading(&report, "replication")["value"]["facts"].to_string();
    assert!(
        facts.contains("127.0.0.1:3307 (the plan's source: 127.0.0.1 and localhost resolve to the same address on this host)"),
        "{facts}"
    );
}
