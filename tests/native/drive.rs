//! A whole drive (`cutover run`) of a binlog-replica plan in a pseudo-terminal against the
//! private MariaDB pair, with an application writing to the source until the freeze refuses
//! it: every acknowledged write is on the former replica, and both sides hold the same rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::mysql::{DB, PAIR, REPLICA, SOURCE, exec, pair, user};
use super::pty;
use sqlx::AssertSqlSafe;

const T: Duration = Duration::from_secs(90);

fn drive_plan(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("drive.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "binlog-drive"
[source]
engine = "mysql"
url = "{SOURCE}/{DB}"
[target]
engine = "mysql"
url = "{REPLICA}/{DB}"
[replication]
engine = "mysql"
flavor = "community"
[[step]]
id = "freeze"
gates = ["source.read_only == false fresh 10s", "replication.status == running fresh 10s"]
action = {{ kind = "freeze", on = "source", method = "sql" }}
undo = {{ kind = "unfreeze", on = "source", method = "sql" }}
confirm = "freeze writes"
[[step]]
id = "drain"
gates = [
  "source.read_only == true fresh 10s",
  "replication.behind_transactions == 0 fresh 5s",
  "source.gtid_stable_s >= 2 fresh 5s",
  "drift.rows == 0 fresh 60s",
  "drift.mismatched == 0 fresh 60s",
  "drift.unchecked == 0 fresh 60s",
]
confirm = "drained"
[[step]]
id = "stop-replication"
gates = ["replication.behind_transactions == 0 fresh 5s"]
action = {{ kind = "replication", op = "stop" }}
undo = {{ kind = "replication", op = "start" }}
confirm = "stop replication"
[[step]]
id = "unfreeze"
gates = ["replication.status == stopped fresh 10s"]
action = {{ kind = "unfreeze", on = "target", method = "sql" }}
undo = {{ kind = "freeze", on = "target", method = "sql" }}
confirm = "unfreeze target"
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

fn confirm(term: &mut pty::Pty, step: &str, phrase: &str) {
    term.wait_for(&format!("ready: {step}"), T);
    term.send("\r");
    term.wait_for(&format!("type `{phrase}` to confirm"), T);
    term.send(&format!("{phrase}\r"));
    term.wait_for(&format!("✔ {step}"), T);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drive_of_the_binlog_replica_loses_no_acknowledged_write() {
    let _one = PAIR.lock().await;
    let (src, rep) = pair().await;
    // The application's user: no SUPER, so read_only refuses it.
    user(&src, "cutover_app", "INSERT, SELECT", true).await;
    exec(
        &src,
        &format!("CREATE TABLE IF NOT EXISTS {DB}.ledger (id BIGINT PRIMARY KEY, v INT NOT NULL)"),
    )
    .await;
    let app = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&format!("mysql://cutover_app@127.0.0.1:3307/{DB}"))
        .await
        .unwrap_or_else(|e| panic!("the application's login: {e}"));
    let next: i64 = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(id), 0) FROM {DB}.ledger"
    )))
    .fetch_one(&src)
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The workload: one insert at a time, each id counted only once the server acknowledged it.
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, refused, stop, app) =
            (acked.clone(), refused.clone(), stop.clone(), app.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut id = next;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                match sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {DB}.ledger (id, v) VALUES ({id}, {})",
                    id % 97
                )))
                .execute(&app)
                .await
                {
                    Ok(_) => {
                        ids.push(id);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        })
    };

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = drive_plan(dir.path());
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &[
            "run",
            plan.to_str().unwrap_or_default(),
            "--operator",
            "pty-test",
            "--sessions-dir",
            sessions.to_str().unwrap_or_default(),
        ],
        dir.path(),
        140,
        44,
    );
    let screen = term.wait_for("ready: freeze", T);
    assert!(screen.contains("Replication"), "{screen}");
    assert!(
        acked.load(Ordering::Relaxed) > 0,
        "the workload writes before the freeze"
    );
    confirm(&mut term, "freeze", "freeze writes");
    // The freeze holds: the application's writes are refused from here on.
    let refused_at_freeze = refused.load(Ordering::Relaxed);
    term.wait_until("writes refused", T, |_| {
        refused.load(Ordering::Relaxed) > refused_at_freeze + 2
    });
    confirm(&mut term, "drain", "drained");
    confirm(&mut term, "stop-replication", "stop replication");
    confirm(&mut term, "unfreeze", "unfreeze target");
    term.wait_for("cutover completed", T);
    term.send("q");
    let status = term.wait_exit(T);
    assert_eq!(
        status.exit_code(),
        0,
        "a completed cutover exits 0: {}",
        term.screen()
    );

    stop.store(true, Ordering::Relaxed);
    let ids = writer.await.unwrap_or_else(|e| panic!("{e}"));
    // No acknowledged write lost: every one is on the former replica.
    let on_target: Vec<i64> = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT id FROM {DB}.ledger WHERE id > {next} ORDER BY id"
    )))
    .fetch_all(&rep)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let missing: Vec<&i64> = ids
        .iter()
        .filter(|i| on_target.binary_search(i).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the target: {missing:?}"
    );
    assert!(!ids.is_empty());
    // No drift: the same rows, the same checksum on both sides.
    for t in ["ledger", "t"] {
        let sum = |p: &sqlx::MySqlPool| {
            let p = p.clone();
            async move {
                sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(format!(
                    "SELECT COUNT(*), COALESCE(CAST(SUM(CRC32(CONCAT_WS('|', id, v))) AS CHAR), '0') FROM {DB}.{t}"
                )))
                .fetch_one(&p)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        assert_eq!(sum(&src).await, sum(&rep).await, "{t}: rows and checksum");
    }
    // Replication is stopped, as the plan left it; the next test's pair() starts it again.
    let threads: (String, String) = {
        let rows = sqlx::query("SHOW SLAVE STATUS")
            .fetch_one(&rep)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        use sqlx::Row;
        (
            rows.try_get::<String, _>("Slave_IO_Running")
                .unwrap_or_default(),
            rows.try_get::<String, _>("Slave_SQL_Running")
                .unwrap_or_default(),
        )
    };
    assert_eq!(threads, ("No".to_string(), "No".to_string()));
    exec(&src, "SET GLOBAL read_only = OFF").await;
}
