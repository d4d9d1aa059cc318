//! Whole drives (`cutover run` in a pseudo-terminal) of the shipped native plans,
//! `plans/mysql-binlog-replica.toml` against the private MariaDB pair and
//! `plans/postgres-logical.toml` against the private PostgreSQL clusters, with an
//! application writing to the source until the freeze refuses it. The plans run as they
//! ship: only their identifiers (URLs, the hosted zone) are replaced, their steps, gates and
//! actions are not. The traffic switch is the plans' own Route 53 flip, against moto; the
//! drive proves it by reading the record afterwards. Each drive then checks that every
//! acknowledged write is on the target and that both sides hold the same rows.
//!
//! One departure, said where it is made: the post-checks step gates on `dns.resolved`, what
//! this host's resolver answers, and these tests contact no address but 127.0.0.1; the
//! plans run with `resolve = false` and end at the unfreeze.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::moto::{Zone, endpoint};
use super::mysql::{DB, PAIR, exec, pair, user};
use super::postgres;
use super::pty;

const T: Duration = Duration::from_secs(90);

/// A shipped plan with its identifiers replaced (`from` must occur: a changed plan fails
/// here, not silently), `resolve = false`, and without its post-checks step.
fn shipped(name: &str, dir: &Path, replace: &[(&str, String)]) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut all: Vec<(&str, String)> = replace.to_vec();
    all.push(("resolve = true", "resolve = false".into()));
    for (from, to) in &all {
        assert!(text.contains(from), "{name} no longer has {from:?}");
        text = text.replace(from, to);
    }
    let cut = text
        .find("[[step]]\nid = \"post-checks\"")
        .unwrap_or_else(|| panic!("{name} has no post-checks step"));
    text.truncate(cut);
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("{e}"));
    out
}

/// The shipped plan's record, source and target values and account.
fn dns_of(name: &str) -> (String, String, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(name);
    let plan = cutover::plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dns = plan
        .dns
        .unwrap_or_else(|| panic!("{name} switches traffic through [dns]"));
    assert_eq!(dns.record_type, "CNAME", "{name}");
    (
        dns.name,
        dns.source,
        dns.target,
        plan.aws.account.unwrap_or_else(|| "123456789012".into()),
    )
}

/// An application writing one row at a time; each id counts only once the server said so.
pub struct Workload {
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<i64>>,
}

impl Workload {
    /// `write(n)` inserts the n-th row and answers its id, or fails (refused by the freeze).
    pub fn start<F, Fut>(write: F) -> Workload
    where
        F: Fn(i64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64, String>> + Send,
    {
        let acked = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match write(n).await {
                        Ok(id) => {
                            ids.push(id);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Pacing, not synchronisation: a write every 20 ms.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ids
            })
        };
        Workload {
            acked,
            refused,
            stop,
            task,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops it: the acknowledged ids, sorted.
    pub async fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut ids = self.task.await.unwrap_or_else(|e| panic!("{e}"));
        ids.sort_unstable();
        ids
    }
}

fn confirm(term: &mut pty::Pty, step: &str, phrase: &str) {
    term.wait_for(&format!("ready: {step}"), T);
    term.send("\r");
    term.wait_for(&format!("type `{phrase}` to confirm"), T);
    term.send(&format!("{phrase}\r"));
    term.wait_for(&format!("✔ {step}"), T);
}

/// Drives `plan` step by step (`steps`: id and phrase, in order) in a pseudo-terminal with
/// the zone's keys and moto as the endpoint; after `freeze` it waits until the workload's
/// writes are refused. Returns the screen of the completed cutover.
fn drive(
    plan: &Path,
    zone: &Zone,
    steps: &[(&str, &str)],
    workload: &Workload,
    dir: &Path,
) -> String {
    let sessions = dir.join("sessions");
    let env = zone.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let moto = endpoint();
    let mut term = pty::Pty::spawn_env(
        &[
            "run",
            plan.to_str().unwrap_or_default(),
            "--operator",
            "pty-test",
            "--sessions-dir",
            sessions.to_str().unwrap_or_default(),
            "--endpoint-url",
            &moto,
        ],
        dir,
        140,
        44,
        &env,
    );
    let screen = term.wait_for(&format!("ready: {}", steps[0].0), T);
    assert!(screen.contains("Replication"), "{screen}");
    for (step, phrase) in steps {
        if *step == "freeze" {
            assert!(
                workload.acked() > 0,
                "the workload writes before the freeze"
            );
        }
        confirm(&mut term, step, phrase);
        if *step == "freeze" {
            // The freeze holds: the application's writes are refused from here on.
            let refused = workload.refused();
            term.wait_until("writes refused", T, |_| workload.refused() > refused + 2);
        }
    }
    let screen = term.wait_for("cutover completed", T);
    term.send("q");
    let status = term.wait_exit(T);
    assert_eq!(
        status.exit_code(),
        0,
        "a completed cutover exits 0: {}",
        term.screen()
    );
    screen
}

/// Every acknowledged id is among the target's.
fn none_lost(acked: &[i64], on_target: &[i64]) {
    assert!(!acked.is_empty(), "the workload wrote");
    let missing: Vec<&i64> = acked
        .iter()
        .filter(|i| on_target.binary_search(i).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the target: {missing:?}"
    );
}

const MYSQL_PLAN: &str = "mysql-binlog-replica.toml";

#[tokio::test(flavor = "multi_thread")]
async fn a_drive_of_the_shipped_binlog_plan_flips_dns_and_loses_no_acknowledged_write() {
    let _one = PAIR.lock().await;
    let (src, rep) = pair().await;
    let (record, from, to, account) = dns_of(MYSQL_PLAN);
    let zone = Zone::new(&record, &from, &account).await;
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
    let workload = Workload::start(move |n| {
        let app = app.clone();
        async move {
            let id = next + n;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {DB}.ledger (id, v) VALUES ({id}, {})",
                id % 97
            )))
            .execute(&app)
            .await
            .map(|_| id)
            .map_err(|e| e.to_string())
        }
    });

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = shipped(
        MYSQL_PLAN,
        dir.path(),
        &[
            (
                "mysql://cutover@shop-mysql.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:3306/shop",
                format!("mysql://root@127.0.0.1:3307/{DB}"),
            ),
            (
                "mysql://cutover@shop-aurora.cluster-c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:3306/shop",
                format!("mysql://root@127.0.0.1:3308/{DB}"),
            ),
            (
                "password_env = \"CUTOVER_SOURCE_PASSWORD\"\n",
                String::new(),
            ),
            (
                "password_env = \"CUTOVER_TARGET_PASSWORD\"\n",
                String::new(),
            ),
            (
                "zone_id = \"Z0123456789ABCDEFGHIJ\"",
                format!("zone_id = \"{}\"", zone.zone_id),
            ),
        ],
    );
    let steps = [
        ("preflight", "ready"),
        ("freeze", "freeze writes"),
        ("drain", "drained"),
        ("stop-replication", "stop replication"),
        ("flip-dns", "flip dns"),
        ("unfreeze", "unfreeze target"),
    ];
    let screen = tokio::task::block_in_place(|| drive(&plan, &zone, &steps, &workload, dir.path()));
    let ids = workload.finish().await;

    // The switch happened: the record names the former replica.
    assert_eq!(zone.values().await, std::slice::from_ref(&to), "{screen}");
    let on_target: Vec<i64> = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT id FROM {DB}.ledger WHERE id > {next} ORDER BY id"
    )))
    .fetch_all(&rep)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    none_lost(&ids, &on_target);
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
    // Replication is stopped and the target writable, as the plan left them; the next
    // test's pair() starts replication again.
    let (io, sql, read_only): (String, String, i64) = {
        use sqlx::Row;
        let row = sqlx::query("SHOW SLAVE STATUS")
            .fetch_one(&rep)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ro: i64 = sqlx::query_scalar("SELECT @@GLOBAL.read_only")
            .fetch_one(&rep)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (
            row.try_get("Slave_IO_Running").unwrap_or_default(),
            row.try_get("Slave_SQL_Running").unwrap_or_default(),
            ro,
        )
    };
    assert_eq!((io.as_str(), sql.as_str(), read_only), ("No", "No", 0));
    exec(&src, "SET GLOBAL read_only = OFF").await;
}

const PG_PLAN: &str = "postgres-logical.toml";

#[tokio::test(flavor = "multi_thread")]
async fn a_drive_of_the_shipped_logical_plan_syncs_sequences_flips_dns_and_loses_no_write() {
    let pair = postgres::Pair::new("drive");
    let db = pair.db.clone();
    let (record, from, to, account) = dns_of(PG_PLAN);
    let zone = Zone::new(&record, &from, &account).await;
    // The plan's preflight wants the target frozen: the apply worker writes anyway.
    pair.target(&format!(
        "ALTER DATABASE {db} SET default_transaction_read_only = on"
    ));
    // The plan names its publication and subscription shop_pub / shop_sub; the pair's are
    // named for its database (the clusters are shared), so the names are replaced.
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let src = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url(postgres::SOURCE_PORT))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = src.clone();
    let workload = Workload::start(move |n| {
        let app = app.clone();
        async move {
            sqlx::query_scalar::<_, i32>(AssertSqlSafe(format!(
                "INSERT INTO items (v) VALUES ('w{n}') RETURNING id"
            )))
            .fetch_one(&app)
            .await
            .map(i64::from)
            .map_err(|e| e.to_string())
        }
    });

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = shipped(
        PG_PLAN,
        dir.path(),
        &[
            (
                "postgres://cutover@shop-pg.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:5432/shop",
                url(postgres::SOURCE_PORT),
            ),
            (
                "postgres://cutover@shop-aurora-pg.cluster-c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:5432/shop",
                url(postgres::TARGET_PORT),
            ),
            (
                "password_env = \"CUTOVER_SOURCE_PASSWORD\"\n",
                String::new(),
            ),
            (
                "password_env = \"CUTOVER_TARGET_PASSWORD\"\n",
                String::new(),
            ),
            (
                "publication = \"shop_pub\"",
                format!("publication = \"{db}_pub\""),
            ),
            (
                "subscription = \"shop_sub\"",
                format!("subscription = \"{db}_sub\""),
            ),
            (
                "zone_id = \"Z0123456789ABCDEFGHIJ\"",
                format!("zone_id = \"{}\"", zone.zone_id),
            ),
        ],
    );
    let steps = [
        ("preflight", "ready"),
        ("freeze", "freeze writes"),
        ("drain", "drained"),
        ("sync-sequences", "sync sequences"),
        ("stop-replication", "stop replication"),
        ("flip-dns", "flip dns"),
        ("unfreeze", "unfreeze target"),
    ];
    let screen = tokio::task::block_in_place(|| drive(&plan, &zone, &steps, &workload, dir.path()));
    let ids = workload.finish().await;
    src.close().await;

    assert_eq!(zone.values().await, std::slice::from_ref(&to), "{screen}");
    let on_target: Vec<i64> = pair
        .target("SELECT id FROM items ORDER BY id")
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    none_lost(&ids, &on_target);
    let sum =
        "SELECT count(*) || ' ' || md5(string_agg(id || '|' || v, ',' ORDER BY id)) FROM items";
    assert_eq!(pair.source(sum), pair.target(sum), "rows and checksum");
    // The sequence was synced: the target's next id is past every source id (plus the
    // margin), so the first write after the switch collides with nothing.
    let max = pair.source("SELECT max(id) FROM items");
    let max: i64 = max.parse().unwrap_or_else(|e| panic!("{max}: {e}"));
    let first = pair.target("INSERT INTO items (v) VALUES ('after the switch') RETURNING id");
    let first: i64 = first.parse().unwrap_or_else(|e| panic!("{first}: {e}"));
    assert!(
        first > max + 1000,
        "first target id {first}, source max {max}"
    );
    // The subscription is disabled, as the plan left it.
    assert_eq!(
        pair.target(&format!(
            "SELECT subenabled FROM pg_subscription WHERE subname = '{db}_sub'"
        )),
        "f"
    );
}
