//! The real-database layer against the local MariaDB (127.0.0.1:3306, root, no password)
//! and PostgreSQL (127.0.0.1:5432, postgres, trust). Every test makes its own uniquely
//! named databases/schemas and drops them when it ends (also when it fails), so tests run
//! in parallel. A server that is not reachable fails the test with a message saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cutover::action::{Actuator, Output};
use cutover::cli::DriftArgs;
use cutover::db::{self, Db, DbOptions, SqlActuator};
use cutover::drift;
use cutover::event::{ChecksumState, DiffKind, Event, Reading, Side, SourceKind, TableDrift};
use cutover::plan::{Action, Endpoint, Engine, FreezeMethod};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

const MARIADB: &str = "mysql://root@127.0.0.1:3306/mysql";
const PG_DB: &str = "test";

// ---------------------------------------------------------------------------------------
// Fixtures

fn pg_admin_url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{db}")
}

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "cutover_t_{tag}_{}_{n}_{:x}",
        std::process::id(),
        nanos & 0xffff
    )
}

async fn mariadb() -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(MARIADB)
        .await
        .unwrap_or_else(|e| {
            panic!("MariaDB must be running at 127.0.0.1:3306 (user root, empty password) for tests/db.rs: {e}")
        })
}

async fn postgres(db: &str) -> PgPool {
    let url = pg_admin_url(db);
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must be running at 127.0.0.1:5432 (user postgres, trust auth, database {db}) for tests/db.rs: {e}")
        })
}

async fn my_exec(pool: &MySqlPool, sql: &str) {
    pool.execute(AssertSqlSafe(sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("MariaDB: {sql}: {e}"));
}

async fn pg_exec(pool: &PgPool, sql: &str) {
    pool.execute(AssertSqlSafe(sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL: {sql}: {e}"));
}

/// Drops what a test created when it goes out of scope, pass or fail. Drop cannot await,
/// so the statements run on a runtime of their own in a thread of their own.
struct Cleanup {
    mysql: Vec<String>,
    pg: Vec<String>,
}

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup {
            mysql: Vec::new(),
            pg: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mysql = std::mem::take(&mut self.mysql);
        let pg = std::mem::take(&mut self.pg);
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if !mysql.is_empty()
                    && let Ok(pool) = MySqlPool::connect(MARIADB).await
                {
                    for sql in mysql.iter().rev() {
                        // Best effort: a failed cleanup must not hide the test's own result.
                        let _ = pool.execute(AssertSqlSafe(sql.clone())).await;
                    }
                }
                if !pg.is_empty()
                    && let Ok(pool) = PgPool::connect(&pg_admin_url(PG_DB)).await
                {
                    for sql in pg.iter().rev() {
                        let _ = pool.execute(AssertSqlSafe(sql.clone())).await;
                    }
                }
            });
        });
        // A panicking cleanup thread has nothing more to tell.
        let _ = worker.join();
    }
}

/// Two fresh MariaDB databases, source and target.
async fn mysql_pair(tag: &str, clean: &mut Cleanup) -> (MySqlPool, String, String) {
    let pool = mariadb().await;
    let base = unique(tag);
    let (s, t) = (format!("{base}_s"), format!("{base}_t"));
    for db in [&s, &t] {
        my_exec(&pool, &format!("CREATE DATABASE `{db}`")).await;
        clean.mysql.push(format!("DROP DATABASE IF EXISTS `{db}`"));
    }
    (pool, s, t)
}

/// A fresh PostgreSQL schema in database `test`.
async fn pg_schema(tag: &str, clean: &mut Cleanup) -> (PgPool, String) {
    let pool = postgres(PG_DB).await;
    let schema = unique(tag);
    pg_exec(&pool, &format!("CREATE SCHEMA \"{schema}\"")).await;
    clean
        .pg
        .push(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    (pool, schema)
}

fn my_url(db: &str) -> String {
    format!("mysql://root@127.0.0.1:3306/{db}")
}

fn pg_url(schema: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{PG_DB}?schema={schema}")
}

fn endpoint(engine: Engine, url: &str) -> Endpoint {
    Endpoint {
        engine,
        label: "test".into(),
        url: Some(url.into()),
        password_env: None,
        password_file: None,
    }
}

async fn connect(engine: Engine, url: &str, side: Side) -> Db {
    db::connect_endpoint(&endpoint(engine, url), side)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Small chunks, so even a few thousand rows make many chunks and bisection runs.
fn small_chunks() -> DbOptions {
    DbOptions {
        chunk_time: Duration::from_millis(1),
        max_concurrent: 2,
        ..DbOptions::default()
    }
}

async fn compare(source: &Db, target: &Db, opts: &DbOptions) -> Vec<TableDrift> {
    db::compare(source, target, opts, |_| {})
        .await
        .unwrap_or_else(|e| panic!("compare: {e}"))
}

fn table<'a>(drifts: &'a [TableDrift], name: &str) -> &'a TableDrift {
    drifts
        .iter()
        .find(|d| d.table == name)
        .unwrap_or_else(|| panic!("no reading for table {name} in {drifts:#?}"))
}

fn keys(d: &TableDrift) -> Vec<(String, DiffKind)> {
    d.differing_keys
        .iter()
        .map(|k| (k.key.clone(), k.kind))
        .collect()
}

/// The `orders` table of the MariaDB tests, with NULLs, fractions and decimals.
const MY_ORDERS: &str = "CREATE TABLE {db}.orders (
    id BIGINT NOT NULL PRIMARY KEY,
    customer VARCHAR(40) NOT NULL,
    note VARCHAR(100) NULL,
    amount DECIMAL(12,2) NOT NULL,
    created DATETIME(6) NOT NULL,
    seen TIMESTAMP(3) NULL
) ENGINE=InnoDB";

const MY_ORDERS_ROWS: &str = "INSERT INTO {db}.orders
    SELECT seq, CONCAT('customer-', seq MOD 97), IF(seq MOD 3 = 0, NULL, CONCAT('note ', seq)),
           (seq MOD 10000) / 100,
           TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq * 7) MOD 1000000 MICROSECOND,
           IF(seq MOD 5 = 0, NULL, TIMESTAMP'2024-06-01 00:00:00' + INTERVAL seq SECOND)
    FROM {db}.seq_1_to_{n}";

async fn my_orders(pool: &MySqlPool, db: &str, rows: u64) {
    my_exec(pool, &MY_ORDERS.replace("{db}", &format!("`{db}`"))).await;
    my_exec(
        pool,
        &MY_ORDERS_ROWS
            .replace("{db}", &format!("`{db}`"))
            .replace("{n}", &rows.to_string()),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Same engine: MariaDB

#[tokio::test]
async fn mariadb_equal_data_has_no_drift() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("equal", &mut clean).await;
    for db in [&s, &t] {
        my_orders(&pool, db, 5000).await;
        my_exec(&pool, &format!("CREATE TABLE `{db}`.lines (order_id INT NOT NULL, line INT NOT NULL, sku VARCHAR(20), PRIMARY KEY (order_id, line))")).await;
        my_exec(&pool, &format!("INSERT INTO `{db}`.lines SELECT seq DIV 4, seq MOD 4, CONCAT('sku', seq) FROM `{db}`.seq_1_to_3000")).await;
        my_exec(
            &pool,
            &format!(
                "CREATE TABLE `{db}`.codes (code VARCHAR(12) NOT NULL PRIMARY KEY, label TEXT)"
            ),
        )
        .await;
        my_exec(&pool, &format!("INSERT INTO `{db}`.codes SELECT CONCAT('c', LPAD(seq, 6, '0')), REPEAT('x', seq MOD 7) FROM `{db}`.seq_1_to_1500")).await;
    }
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    let mut seen_progress = 0;
    let drifts = db::compare(&source, &target, &small_chunks(), |d| {
        if d.checksum == ChecksumState::Pending {
            seen_progress += 1;
        }
    })
    .await
    .unwrap_or_else(|e| panic!("compare: {e}"));
    assert_eq!(drifts.len(), 3, "{drifts:#?}");
    for d in &drifts {
        assert_eq!(d.checksum, ChecksumState::Equal, "{d:#?}");
        assert_eq!(d.row_diff(), Some(0), "{d:#?}");
        assert!(d.differing_keys.is_empty(), "{d:#?}");
        assert!(
            d.chunks_done.unwrap_or(0) > 1,
            "small chunks must make several: {d:#?}"
        );
        assert_eq!(d.chunks_done, d.chunks_total, "{d:#?}");
    }
    assert_eq!(table(&drifts, "orders").source_rows, Some(5000));
    assert_eq!(table(&drifts, "lines").target_rows, Some(3000));
    assert!(
        seen_progress > 0,
        "progress is reported while the compare runs"
    );
}

#[tokio::test]
async fn mariadb_each_difference_is_found_with_its_key() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("diffs", &mut clean).await;
    for db in [&s, &t] {
        my_orders(&pool, db, 20_000).await;
        my_exec(&pool, &format!("CREATE TABLE `{db}`.lines (order_id INT NOT NULL, line INT NOT NULL, sku VARCHAR(20), PRIMARY KEY (order_id, line))")).await;
        my_exec(&pool, &format!("INSERT INTO `{db}`.lines SELECT seq DIV 4, seq MOD 4, CONCAT('sku', seq) FROM `{db}`.seq_1_to_4000")).await;
    }
    // One of each kind of difference.
    my_exec(
        &pool,
        &format!("UPDATE `{t}`.orders SET amount = amount + 0.01 WHERE id = 4242"),
    )
    .await;
    my_exec(&pool, &format!("DELETE FROM `{t}`.orders WHERE id = 7777")).await;
    my_exec(&pool, &format!("INSERT INTO `{t}`.orders SELECT 20001, customer, note, amount, created, seen FROM `{t}`.orders WHERE id = 1")).await;
    // id 3 has a NULL note (3 MOD 3 = 0); the target gets ''.
    my_exec(
        &pool,
        &format!("UPDATE `{t}`.orders SET note = '' WHERE id = 12000"),
    )
    .await;
    my_exec(
        &pool,
        &format!("UPDATE `{s}`.orders SET note = NULL WHERE id = 12000"),
    )
    .await;
    my_exec(
        &pool,
        &format!(
            "UPDATE `{t}`.orders SET created = created + INTERVAL 1 MICROSECOND WHERE id = 15000"
        ),
    )
    .await;
    my_exec(
        &pool,
        &format!("UPDATE `{t}`.lines SET sku = 'changed' WHERE order_id = 500 AND line = 2"),
    )
    .await;

    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    let drifts = compare(&source, &target, &small_chunks()).await;
    let orders = table(&drifts, "orders");
    assert_eq!(orders.checksum, ChecksumState::Mismatch, "{orders:#?}");
    assert_eq!(orders.source_rows, Some(20_000));
    assert_eq!(orders.target_rows, Some(20_000));
    assert_eq!(
        keys(orders),
        vec![
            ("id=4242".to_string(), DiffKind::Different),
            ("id=7777".to_string(), DiffKind::MissingOnTarget),
            ("id=12000".to_string(), DiffKind::Different),
            ("id=15000".to_string(), DiffKind::Different),
            ("id=20001".to_string(), DiffKind::ExtraOnTarget),
        ],
        "{orders:#?}"
    );
    let lines = table(&drifts, "lines");
    assert_eq!(
        keys(lines),
        vec![("order_id=500,line=2".to_string(), DiffKind::Different)]
    );

    // The cap bounds what is reported.
    let capped = compare(
        &source,
        &target,
        &DbOptions {
            max_keys: 2,
            ..small_chunks()
        },
    )
    .await;
    assert!(table(&capped, "orders").differing_keys.len() <= 2);
    assert_eq!(table(&capped, "orders").checksum, ChecksumState::Mismatch);
}

#[tokio::test]
async fn mariadb_null_and_empty_string_differ_even_in_one_chunk() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("nullempty", &mut clean).await;
    for db in [&s, &t] {
        my_exec(
            &pool,
            &format!(
                "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a VARCHAR(10) NULL, b VARCHAR(10) NULL)"
            ),
        )
        .await;
    }
    // CONCAT_WS skips NULLs: ('x', NULL) and (NULL, 'x') would print alike without flags.
    my_exec(
        &pool,
        &format!("INSERT INTO `{s}`.t VALUES (1, NULL, 'x'), (2, '', NULL)"),
    )
    .await;
    my_exec(
        &pool,
        &format!("INSERT INTO `{t}`.t VALUES (1, 'x', NULL), (2, NULL, '')"),
    )
    .await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    let drifts = compare(&source, &target, &DbOptions::default()).await;
    assert_eq!(
        keys(table(&drifts, "t")),
        vec![
            ("id=1".to_string(), DiffKind::Different),
            ("id=2".to_string(), DiffKind::Different)
        ]
    );
}

#[tokio::test]
async fn mariadb_table_without_primary_key_is_flagged() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("nopk", &mut clean).await;
    for db in [&s, &t] {
        my_exec(
            &pool,
            &format!("CREATE TABLE `{db}`.events (kind VARCHAR(10), payload TEXT NULL)"),
        )
        .await;
        my_exec(&pool, &format!("INSERT INTO `{db}`.events SELECT 'k', CONCAT('p', seq MOD 10) FROM `{db}`.seq_1_to_500")).await;
        my_exec(&pool, &format!("CREATE TABLE `{db}`.dups (v INT)")).await;
    }
    // Duplicate rows must not cancel each other out (an XOR would).
    my_exec(
        &pool,
        &format!("INSERT INTO `{s}`.dups VALUES (1), (1), (2)"),
    )
    .await;
    my_exec(
        &pool,
        &format!("INSERT INTO `{t}`.dups VALUES (3), (3), (2)"),
    )
    .await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    let drifts = compare(&source, &target, &DbOptions::default()).await;
    let events = table(&drifts, "events");
    assert_eq!(events.checksum, ChecksumState::NoPrimaryKey, "{events:#?}");
    assert_eq!(
        (events.source_rows, events.target_rows),
        (Some(500), Some(500))
    );
    assert_eq!(table(&drifts, "dups").checksum, ChecksumState::Mismatch);
}

// ---------------------------------------------------------------------------------------
// Same engine: PostgreSQL

#[tokio::test]
async fn postgres_each_difference_is_found_with_its_key() {
    let mut clean = Cleanup::new();
    let (pool, s) = pg_schema("pgs", &mut clean).await;
    let (_, t) = pg_schema("pgt", &mut clean).await;
    for sc in [&s, &t] {
        pg_exec(&pool, &format!(
            "CREATE TABLE \"{sc}\".orders (id bigint PRIMARY KEY, customer text NOT NULL, note text NULL, \
             amount numeric(12,2) NOT NULL, created timestamp(6) NOT NULL, seen timestamptz(3) NULL)"
        )).await;
        pg_exec(&pool, &format!(
            "INSERT INTO \"{sc}\".orders SELECT g, 'customer-' || (g % 97), CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END, \
             (g % 10000) / 100.0, timestamp '2024-01-01' + g * interval '1 second' + ((g * 7) % 1000000) * interval '1 microsecond', \
             CASE WHEN g % 5 = 0 THEN NULL ELSE timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second' END \
             FROM generate_series(1, 20000) g"
        )).await;
        pg_exec(
            &pool,
            &format!(
                "CREATE TABLE \"{sc}\".flags (name text PRIMARY KEY, enabled boolean NOT NULL)"
            ),
        )
        .await;
        pg_exec(
            &pool,
            &format!("INSERT INTO \"{sc}\".flags VALUES ('writes', true), ('reads', true)"),
        )
        .await;
        pg_exec(&pool, &format!("CREATE TABLE \"{sc}\".log (line text)")).await;
        pg_exec(
            &pool,
            &format!("INSERT INTO \"{sc}\".log SELECT 'l' || g FROM generate_series(1, 100) g"),
        )
        .await;
    }
    pg_exec(
        &pool,
        &format!("UPDATE \"{t}\".orders SET amount = amount + 0.01 WHERE id = 4242"),
    )
    .await;
    pg_exec(
        &pool,
        &format!("DELETE FROM \"{t}\".orders WHERE id = 7777"),
    )
    .await;
    pg_exec(&pool, &format!("INSERT INTO \"{t}\".orders SELECT 20001, customer, note, amount, created, seen FROM \"{t}\".orders WHERE id = 1")).await;
    pg_exec(
        &pool,
        &format!("UPDATE \"{t}\".orders SET note = '' WHERE id = 12000"),
    )
    .await;
    pg_exec(
        &pool,
        &format!("UPDATE \"{s}\".orders SET note = NULL WHERE id = 12000"),
    )
    .await;
    pg_exec(&pool, &format!("UPDATE \"{t}\".orders SET created = created + interval '1 microsecond' WHERE id = 15000")).await;
    pg_exec(
        &pool,
        &format!("UPDATE \"{t}\".flags SET enabled = false WHERE name = 'reads'"),
    )
    .await;

    let source = connect(Engine::Postgres, &pg_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&t), Side::Target).await;
    let drifts = compare(&source, &target, &small_chunks()).await;
    let orders = table(&drifts, "orders");
    assert_eq!(
        keys(orders),
        vec![
            ("id=4242".to_string(), DiffKind::Different),
            ("id=7777".to_string(), DiffKind::MissingOnTarget),
            ("id=12000".to_string(), DiffKind::Different),
            ("id=15000".to_string(), DiffKind::Different),
            ("id=20001".to_string(), DiffKind::ExtraOnTarget),
        ],
        "{orders:#?}"
    );
    assert_eq!(
        keys(table(&drifts, "flags")),
        vec![("name=reads".to_string(), DiffKind::Different)]
    );
    assert_eq!(table(&drifts, "log").checksum, ChecksumState::NoPrimaryKey);
}

// ---------------------------------------------------------------------------------------
// Cross engine: MariaDB -> PostgreSQL

/// One row of the cross-engine test's `items`, as read from MariaDB to be copied across.
type ItemRow = (
    u32,
    i64,
    String,
    Option<f64>,
    Option<f32>,
    String,
    Option<String>,
    i8,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

#[tokio::test]
async fn mariadb_to_postgres_equal_data_compares_equal_and_a_difference_is_found() {
    let mut clean = Cleanup::new();
    let (my, s, _unused) = mysql_pair("cross", &mut clean).await;
    let (pg, t) = pg_schema("cross", &mut clean).await;
    my_exec(
        &my,
        &format!(
            "CREATE TABLE `{s}`.items (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            big BIGINT NOT NULL,
            price DECIMAL(12,2) NOT NULL,
            ratio DOUBLE NULL,
            weight FLOAT NULL,
            name VARCHAR(50) NOT NULL,
            note TEXT NULL,
            active TINYINT(1) NOT NULL,
            made DATETIME(6) NOT NULL,
            seen TIMESTAMP(3) NULL,
            day DATE NULL,
            doc JSON NULL,
            raw VARBINARY(16) NULL
        ) ENGINE=InnoDB"
        ),
    )
    .await;
    my_exec(&my, &format!(
        "INSERT INTO `{s}`.items SELECT seq, seq * 1000003, (seq MOD 1000) / 4, IF(seq MOD 4 = 0, NULL, seq / 3),
            IF(seq MOD 6 = 0, NULL, 1.5 * seq), CONCAT('name ', seq), IF(seq MOD 3 = 0, NULL, IF(seq MOD 2 = 0, '', 'text')),
            seq MOD 2, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL (seq * 13) MOD 1000000 MICROSECOND,
            IF(seq MOD 5 = 0, NULL, TIMESTAMP'2024-03-01 12:00:00.250' + INTERVAL seq SECOND),
            IF(seq MOD 7 = 0, NULL, DATE'2024-01-01' + INTERVAL seq DAY),
            IF(seq MOD 8 = 0, NULL, JSON_OBJECT('n', seq, 'tag', 'x')),
            IF(seq MOD 9 = 0, NULL, UNHEX(HEX(seq)))
         FROM `{s}`.seq_1_to_3000"
    )).await;
    // What a migration would create on PostgreSQL, with the data copied across.
    pg_exec(&pg, &format!(
        "CREATE TABLE \"{t}\".items (id bigint PRIMARY KEY, big bigint NOT NULL, price numeric(12,2) NOT NULL,
            ratio double precision, weight real, name varchar(50) NOT NULL, note text, active boolean NOT NULL,
            made timestamp(6) NOT NULL, seen timestamptz(3), day date, doc jsonb, raw bytea)"
    )).await;
    let rows: Vec<ItemRow> =
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, big, CAST(price AS CHAR), ratio, weight, name, note, active, CAST(made AS CHAR), CAST(seen AS CHAR), CAST(day AS CHAR), CAST(doc AS CHAR), raw FROM `{s}`.items"
        )))
        .fetch_all(&my)
        .await
        .unwrap_or_else(|e| panic!("reading items: {e}"));
    let mut tx = pg.begin().await.unwrap_or_else(|e| panic!("begin: {e}"));
    for r in rows {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{t}\".items VALUES ($1, $2, $3::numeric, $4, $5, $6, $7, $8 <> 0, $9::timestamp, $10::timestamp AT TIME ZONE 'UTC', $11::date, $12::jsonb, $13)"
        )))
        .bind(i64::from(r.0)).bind(r.1).bind(r.2).bind(r.3).bind(r.4).bind(r.5).bind(r.6)
        .bind(i32::from(r.7)).bind(r.8).bind(r.9).bind(r.10).bind(r.11).bind(r.12)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("copying items: {e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("commit: {e}"));

    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&t), Side::Target).await;
    let drifts = compare(&source, &target, &small_chunks()).await;
    let items = table(&drifts, "items");
    assert_eq!(items.checksum, ChecksumState::Equal, "{items:#?}");
    assert_eq!(
        (items.source_rows, items.target_rows),
        (Some(3000), Some(3000))
    );

    pg_exec(
        &pg,
        &format!("UPDATE \"{t}\".items SET seen = seen + interval '1 millisecond' WHERE id = 1234"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("UPDATE \"{t}\".items SET note = NULL WHERE id = 2000"),
    )
    .await; // was ''
    pg_exec(&pg, &format!("DELETE FROM \"{t}\".items WHERE id = 2999")).await;
    let drifts = compare(&source, &target, &small_chunks()).await;
    let items = table(&drifts, "items");
    assert_eq!(
        keys(items),
        vec![
            ("id=1234".to_string(), DiffKind::Different),
            ("id=2000".to_string(), DiffKind::Different),
            ("id=2999".to_string(), DiffKind::MissingOnTarget),
        ],
        "{items:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Sources: continuous drift, heartbeat, guardrails

async fn poll_until(
    source: &Arc<dyn cutover::source::Source>,
    within: Duration,
    mut done: impl FnMut(&[Reading]) -> bool,
) -> Vec<Reading> {
    let deadline = tokio::time::Instant::now() + within;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last = Vec::new();
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        last = source
            .poll()
            .await
            .unwrap_or_else(|e| panic!("{} poll: {e}", source.name()));
        if done(&last) {
            return last;
        }
    }
    panic!(
        "{} did not reach the expected state within {within:?}; last readings: {last:#?}",
        source.name()
    );
}

fn drift_of<'a>(readings: &'a [Reading], name: &str) -> Option<&'a TableDrift> {
    readings.iter().find_map(|r| match r {
        Reading::Drift(d) if d.table == name => Some(d),
        _ => None,
    })
}

#[tokio::test]
async fn continuous_drift_source_confirms_a_new_difference() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("cont", &mut clean).await;
    for db in [&s, &t] {
        my_orders(&pool, db, 3000).await;
    }
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    let opts = DbOptions {
        recheck_after: Duration::from_millis(200),
        recheck_interval: Duration::from_millis(300),
        poll_budget: Duration::from_millis(500),
        ..small_chunks()
    };
    let all = db::sources(source, target, opts);
    assert_eq!(
        all.iter().map(|s| s.kind()).collect::<Vec<_>>(),
        vec![
            SourceKind::Drift,
            SourceKind::SourceDb,
            SourceKind::TargetDb
        ]
    );
    let drift = Arc::clone(&all[0]);
    poll_until(&drift, Duration::from_secs(60), |r| {
        drift_of(r, "orders").is_some_and(|d| d.checksum == ChecksumState::Equal)
    })
    .await;
    my_exec(
        &pool,
        &format!("UPDATE `{t}`.orders SET customer = 'drifted' WHERE id = 2500"),
    )
    .await;
    let readings = poll_until(&drift, Duration::from_secs(60), |r| {
        drift_of(r, "orders").is_some_and(|d| d.checksum == ChecksumState::Mismatch)
    })
    .await;
    let d = drift_of(&readings, "orders").unwrap_or_else(|| panic!("no orders reading"));
    assert_eq!(keys(d), vec![("id=2500".to_string(), DiffKind::Different)]);
    // Repaired: the re-check clears it.
    my_exec(&pool, &format!("UPDATE `{t}`.orders o JOIN `{s}`.orders p USING (id) SET o.customer = p.customer WHERE id = 2500")).await;
    poll_until(&drift, Duration::from_secs(60), |r| {
        drift_of(r, "orders").is_some_and(|d| d.checksum == ChecksumState::Equal)
    })
    .await;
}

#[tokio::test]
async fn heartbeat_lag_comes_from_the_source_clock() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("hb", &mut clean).await;
    let (pg, pgt) = pg_schema("hb", &mut clean).await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Mysql, &my_url(&t), Side::Target).await;
    db::heartbeat_setup(&source)
        .await
        .unwrap_or_else(|e| panic!("heartbeat setup: {e}"));
    db::heartbeat_setup(&source)
        .await
        .unwrap_or_else(|e| panic!("heartbeat setup is idempotent: {e}"));
    // "Replication": a copy of the table that is 5 s behind.
    my_exec(
        &pool,
        &format!("CREATE TABLE `{t}`.cutover_heartbeat LIKE `{s}`.cutover_heartbeat"),
    )
    .await;
    my_exec(&pool, &format!("INSERT INTO `{t}`.cutover_heartbeat SELECT id, ts - INTERVAL 5 SECOND FROM `{s}`.cutover_heartbeat")).await;

    let opts = DbOptions {
        heartbeat: true,
        ..DbOptions::default()
    };
    let all = db::sources(source.clone(), target.clone(), opts);
    let hb = all
        .iter()
        .find(|s| s.kind() == SourceKind::Heartbeat)
        .cloned()
        .unwrap_or_else(|| panic!("heartbeat enabled: a Heartbeat source"));
    let lag = |r: &[Reading]| match r.first() {
        Some(Reading::Heartbeat { lag_s, .. }) => *lag_s,
        other => panic!("expected a heartbeat reading, got {other:?}"),
    };
    let behind = poll_until(&hb, Duration::from_secs(10), |r| lag(r) >= 5.0).await;
    assert!(lag(&behind) < 30.0, "{behind:?}");
    // Caught up: the target holds the source's latest beat.
    my_exec(
        &pool,
        &format!("REPLACE INTO `{t}`.cutover_heartbeat SELECT * FROM `{s}`.cutover_heartbeat"),
    )
    .await;
    let caught_up = poll_until(&hb, Duration::from_secs(10), |r| lag(r) < 2.0).await;
    assert!(lag(&caught_up) >= 0.0);

    // The drift compare never compares the heartbeat table.
    let drifts = compare(&source, &target, &DbOptions::default()).await;
    assert!(
        drifts.iter().all(|d| d.table != db::HEARTBEAT_TABLE),
        "{drifts:#?}"
    );

    // A PostgreSQL target reads the same row (as a migration would carry it).
    pg_exec(&pg, &format!("CREATE TABLE \"{pgt}\".cutover_heartbeat (id smallint PRIMARY KEY, ts timestamp(6) NOT NULL)")).await;
    pg_exec(&pg, &format!("INSERT INTO \"{pgt}\".cutover_heartbeat VALUES (1, (clock_timestamp() AT TIME ZONE 'UTC') - interval '3 seconds')")).await;
    let pg_target = connect(Engine::Postgres, &pg_url(&pgt), Side::Target).await;
    let hb = db::sources(
        source,
        pg_target,
        DbOptions {
            heartbeat: true,
            ..DbOptions::default()
        },
    )
    .into_iter()
    .find(|s| s.kind() == SourceKind::Heartbeat)
    .unwrap_or_else(|| panic!("a Heartbeat source"));
    poll_until(&hb, Duration::from_secs(10), |r| lag(r) >= 2.0).await;
    assert!(
        db::heartbeat_setup_sql(Engine::Postgres)
            .contains("CREATE TABLE IF NOT EXISTS cutover_heartbeat")
    );
}

#[tokio::test]
async fn guardrails_read_connections_transactions_and_read_only() {
    let mut clean = Cleanup::new();
    let (_pool, s, _t) = mysql_pair("guard", &mut clean).await;
    let (pg, sc) = pg_schema("guard", &mut clean).await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&sc), Side::Target).await;
    // An open transaction on the target.
    let mut open = pg.begin().await.unwrap_or_else(|e| panic!("begin: {e}"));
    sqlx::query("SELECT 1")
        .execute(&mut *open)
        .await
        .unwrap_or_else(|e| panic!("select: {e}"));
    let all = db::sources(source, target, DbOptions::default());
    let events = cutover::source::poll_once(&all[1..]).await;
    let reading = |side: Side| {
        events
            .iter()
            .find_map(|e| match e {
                Event::Observed {
                    reading: Reading::Database(d),
                    ..
                } if d.side == side => Some(d.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {side:?} database reading in {events:#?}"))
    };
    let src = reading(Side::Source);
    assert_eq!(src.read_only, Some(false), "{src:#?}");
    assert!(src.connections.is_some(), "{src:#?}");
    assert!(
        src.server.as_deref().is_some_and(|s| s.contains("MariaDB")),
        "{src:#?}"
    );
    let tgt = reading(Side::Target);
    assert_eq!(tgt.read_only, Some(false), "{tgt:#?}");
    assert!(
        tgt.connections.unwrap_or(0) >= 1,
        "the open transaction's connection counts: {tgt:#?}"
    );
    assert!(tgt.longest_trx_s.unwrap_or(0.0) > 0.0, "{tgt:#?}");
    open.rollback()
        .await
        .unwrap_or_else(|e| panic!("rollback: {e}"));
}

// ---------------------------------------------------------------------------------------
// Actions

/// Turns MariaDB's global read_only back off even if the test fails half-way.
struct RestoreReadOnly;

impl Drop for RestoreReadOnly {
    fn drop(&mut self) {
        let worker = std::thread::spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(pool) = MySqlPool::connect(MARIADB).await {
                    // Nothing else can be done if this fails; the next test run will show it.
                    let _ = pool.execute("SET GLOBAL read_only = OFF").await;
                }
            });
        });
        let _ = worker.join();
    }
}

fn output() -> (Output, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (
        Output::new("freeze".into(), cutover::event::Direction::Do, tx),
        rx,
    )
}

fn lines(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Event::ActionOutput { line, .. } = e {
            out.push(line);
        }
    }
    out
}

#[tokio::test]
async fn sql_actions_run_and_their_results_are_recorded() {
    let mut clean = Cleanup::new();
    let (pool, s, _t) = mysql_pair("act", &mut clean).await;
    let (pg, sc) = pg_schema("act", &mut clean).await;
    my_exec(
        &pool,
        &format!("CREATE TABLE `{s}`.flags (name VARCHAR(20) PRIMARY KEY, enabled BOOL NOT NULL)"),
    )
    .await;
    my_exec(
        &pool,
        &format!("INSERT INTO `{s}`.flags VALUES ('writes', 1), ('reads', 1)"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("CREATE TABLE \"{sc}\".flags (name text PRIMARY KEY, enabled boolean NOT NULL)"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("INSERT INTO \"{sc}\".flags VALUES ('writes', false)"),
    )
    .await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&sc), Side::Target).await;
    let actuator = SqlActuator::new(source.clone(), target.clone());
    let plan = cutover::plan::rehearsal_plan();

    // Freeze writes on the source, check the guardrail sees it, thaw. The actuator reads
    // @@GLOBAL.read_only back and says what it was before.
    let _restore = RestoreReadOnly;
    let (out, mut rx) = output();
    let freeze = Action::Freeze {
        on: Side::Source,
        method: FreezeMethod::Sql,
    };
    let msg = actuator
        .run(&plan, &freeze, &out)
        .await
        .unwrap_or_else(|e| panic!("freeze: {e}"));
    assert_eq!(msg, "source read_only = ON (was OFF)");
    let got = lines(&mut rx);
    assert!(
        got.iter()
            .any(|l| l.ends_with(": SET GLOBAL read_only = ON"))
            && got.iter().any(|l| l == "@@GLOBAL.read_only = ON"),
        "{got:#?}"
    );
    // Idempotent.
    let msg = actuator
        .run(&plan, &freeze, &out)
        .await
        .unwrap_or_else(|e| panic!("freeze again: {e}"));
    assert_eq!(msg, "source read_only already ON");
    let guard = db::sources(source.clone(), target.clone(), DbOptions::default());
    let events = cutover::source::poll_once(&guard[1..2]).await;
    assert!(
        events.iter().any(|e| matches!(e, Event::Observed { reading: Reading::Database(d), .. } if d.read_only == Some(true))),
        "{events:#?}"
    );
    let thaw = Action::Unfreeze {
        on: Side::Source,
        method: FreezeMethod::Sql,
    };
    let msg = actuator
        .run(&plan, &thaw, &out)
        .await
        .unwrap_or_else(|e| panic!("thaw: {e}"));
    assert_eq!(msg, "source read_only = OFF (was ON)");
    assert!(lines(&mut rx).iter().any(|l| l.contains("rows affected")));
    // Validation refuses a SQL freeze on PostgreSQL; the actuator refuses it too.
    let err = actuator
        .run(
            &plan,
            &Action::Freeze {
                on: Side::Target,
                method: FreezeMethod::Sql,
            },
            &out,
        )
        .await
        .expect_err("no read_only on postgres");
    assert!(
        err.0.contains("target") && err.0.contains("cannot be frozen"),
        "{err}"
    );

    // A feature-flag update on each side, and a query whose rows are recorded.
    let (out, mut rx) = output();
    let flag = Action::Sql {
        on: Side::Source,
        statement: format!(
            "UPDATE `{s}`.flags SET enabled = 0 WHERE name = 'writes'; SELECT name, enabled FROM `{s}`.flags ORDER BY name"
        ),
    };
    let msg = actuator
        .run(&plan, &flag, &out)
        .await
        .unwrap_or_else(|e| panic!("flag: {e}"));
    assert!(
        msg.contains("2 statement(s)")
            && msg.contains("1 rows affected")
            && msg.contains("2 rows returned"),
        "{msg}"
    );
    let got = lines(&mut rx);
    assert!(got.iter().any(|l| l == "1 rows affected"), "{got:#?}");
    assert!(got.iter().any(|l| l == "writes\t0"), "{got:#?}");
    let flag = Action::Sql {
        on: Side::Target,
        statement: format!("UPDATE \"{sc}\".flags SET enabled = true WHERE name = 'writes'"),
    };
    let msg = actuator
        .run(&plan, &flag, &out)
        .await
        .unwrap_or_else(|e| panic!("pg flag: {e}"));
    assert!(msg.contains("1 rows affected"), "{msg}");

    // Errors name the side and a fix; other actions are refused.
    let bad = Action::Sql {
        on: Side::Source,
        statement: "UPDATE no_such_table SET x = 1".into(),
    };
    let err = actuator
        .run(&plan, &bad, &out)
        .await
        .expect_err("a failing statement fails the action");
    assert!(err.0.contains("source") && err.0.contains("fix:"), "{err}");
    let err = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect_err("not SQL");
    assert!(err.0.contains("not a SQL action"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Secrets

/// Collects everything `tracing` writes while a test runs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_readings_logs_or_errors() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("sec", &mut clean).await;
    let user = unique("u");
    let password = format!("Pw-{}-s3cr3t", std::process::id());
    my_exec(
        &pool,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
    )
    .await;
    clean
        .mysql
        .push(format!("DROP USER IF EXISTS '{user}'@'%'"));
    my_exec(
        &pool,
        &format!("GRANT SELECT, INSERT, UPDATE ON `{s}`.* TO '{user}'@'%'"),
    )
    .await;
    my_exec(&pool, &format!("GRANT SELECT ON `{t}`.* TO '{user}'@'%'")).await;
    for db in [&s, &t] {
        my_orders(&pool, db, 200).await;
    }
    my_exec(&pool, &format!("DELETE FROM `{t}`.orders WHERE id = 3")).await;

    // A PostgreSQL role with a password, set up before logs are captured (the statement
    // creating it carries the password).
    let (pg, sc) = pg_schema("sec", &mut clean).await;
    let role = unique("r");
    let pg_password = format!("PgPw-{}-s3cr3t", std::process::id());
    clean.pg.push(format!("DROP ROLE IF EXISTS \"{role}\""));
    clean.pg.push(format!("DROP OWNED BY \"{role}\""));
    pg_exec(
        &pg,
        &format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{pg_password}'"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("GRANT USAGE ON SCHEMA \"{sc}\" TO \"{role}\""),
    )
    .await;
    let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(file.path(), format!("{pg_password}\n")).unwrap_or_else(|e| panic!("{e}"));

    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let var = format!("CUTOVER_TEST_PW_{}", std::process::id());
    // SAFETY: the variable name is unique to this test; nothing else reads or writes it.
    unsafe { std::env::set_var(&var, &password) };
    let ep = |db: &str| Endpoint {
        engine: Engine::Mysql,
        label: "prod-mysql".into(),
        url: Some(format!("mysql://{user}@127.0.0.1:3306/{db}")),
        password_env: Some(var.clone()),
        password_file: None,
    };
    let source = db::connect_endpoint(&ep(&s), Side::Source)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = db::connect_endpoint(&ep(&t), Side::Target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{source:?}").contains(&password));

    // Readings and the transcript events they become.
    let opts = DbOptions {
        heartbeat: true,
        recheck_after: Duration::from_millis(100),
        ..small_chunks()
    };
    let all = db::sources(source.clone(), target.clone(), opts);
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut json = String::new();
    while !json.contains("id=3") && tokio::time::Instant::now() < deadline {
        tick.tick().await;
        events.extend(cutover::source::poll_once(&all).await);
        json = serde_json::to_string(&events).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        json.contains("id=3"),
        "the compare ran and found the missing row: {json}"
    );
    assert!(
        json.contains("source_failed"),
        "the heartbeat fails (no table) and says why: {json}"
    );

    // PostgreSQL with the password in a file (trust auth never asks for it, but it is read
    // and handed to the driver all the same).
    let pg_ep = Endpoint {
        engine: Engine::Postgres,
        label: "prod-pg".into(),
        url: Some(format!(
            "postgres://{role}@127.0.0.1:5432/{PG_DB}?schema={sc}"
        )),
        password_env: None,
        password_file: Some(file.path().display().to_string()),
    };
    let pg_db = db::connect_endpoint(&pg_ep, Side::Target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pg_events =
        cutover::source::poll_once(&db::sources(pg_db.clone(), pg_db, DbOptions::default())).await;
    let pg_json = serde_json::to_string(&pg_events).unwrap_or_else(|e| panic!("{e}"));
    assert!(pg_json.contains("prod-pg PostgreSQL"), "{pg_json}");
    let missing = Endpoint {
        password_file: Some("/nonexistent/cutover-pw".into()),
        ..pg_ep.clone()
    };

    // Errors: a wrong password in the URL, a wrong one in the variable, a query error.
    let mut errors = Vec::new();
    let wrong = format!("{password}-wrong");
    let in_url = Endpoint {
        url: Some(format!("mysql://{user}:{wrong}@127.0.0.1:3306/{s}")),
        password_env: None,
        ..ep(&s)
    };
    errors.push(
        db::connect_endpoint(&in_url, Side::Source)
            .await
            .expect_err("wrong password")
            .to_string(),
    );
    unsafe { std::env::set_var(&var, &wrong) };
    errors.push(
        db::connect_endpoint(&ep(&s), Side::Source)
            .await
            .expect_err("wrong password")
            .to_string(),
    );
    unsafe { std::env::set_var(&var, &password) };
    let actuator = SqlActuator::new(source.clone(), target.clone());
    let (out, mut rx) = output();
    let denied = Action::Sql {
        on: Side::Target,
        statement: "UPDATE orders SET note = 'x'".into(),
    };
    errors.push(
        actuator
            .run(&cutover::plan::rehearsal_plan(), &denied, &out)
            .await
            .expect_err("no UPDATE grant")
            .0,
    );
    let out_lines = lines(&mut rx);
    let no_file = db::connect_endpoint(&missing, Side::Target)
        .await
        .expect_err("no password file")
        .to_string();
    assert!(
        no_file.contains("password_file") && no_file.contains("prod-pg"),
        "{no_file}"
    );
    errors.push(no_file);

    // The CLI path: password in the URL, errors printed scrubbed; the exit code says error.
    let code = drift::drift_command(DriftArgs {
        source: format!("mysql://{user}:{wrong}@127.0.0.1:3306/{s}"),
        target: format!("mysql://{user}@127.0.0.1:3306/{t}"),
        tables: vec![],
        json: true,
        source_password_env: None,
        target_password_env: Some(var.clone()),
        source_password_file: None,
        target_password_file: None,
        chunk_time: Duration::from_millis(500),
        max_concurrent: 1,
        max_keys: 20,
        where_sql: None,
        since: None,
        client_hash: false,
        repair_sql: None,
        max_lag: None,
        max_load: None,
        lag_query: None,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 2);

    let logs = String::from_utf8_lossy(&buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    for e in &errors {
        assert!(e.contains("fix:"), "errors say what to do: {e}");
    }
    assert!(
        errors[0].contains("source \"prod-mysql\""),
        "errors name the endpoint: {}",
        errors[0]
    );
    for (what, text) in [
        ("events", &json),
        ("events", &pg_json),
        ("logs", &logs),
        ("errors", &errors.join("\n")),
        ("output", &out_lines.join("\n")),
    ] {
        for secret in [&password, &wrong, &pg_password] {
            assert!(
                !text.contains(secret.as_str()),
                "a password leaked into {what}: {text}"
            );
        }
    }
    unsafe { std::env::remove_var(&var) };
}

// ---------------------------------------------------------------------------------------
// The headless command

fn args(source: String, target: String) -> DriftArgs {
    DriftArgs {
        source,
        target,
        tables: vec![],
        json: false,
        source_password_env: None,
        target_password_env: None,
        source_password_file: None,
        target_password_file: None,
        chunk_time: Duration::from_millis(500),
        max_concurrent: 1,
        max_keys: 20,
        where_sql: None,
        since: None,
        client_hash: false,
        repair_sql: None,
        max_lag: None,
        max_load: None,
        lag_query: None,
    }
}

#[tokio::test]
async fn drift_command_exits_0_on_no_drift_1_on_drift_2_on_error() {
    let mut clean = Cleanup::new();
    let (pool, s, t) = mysql_pair("cli", &mut clean).await;
    for db in [&s, &t] {
        my_orders(&pool, db, 1000).await;
        my_exec(
            &pool,
            &format!("CREATE TABLE `{db}`.other (id INT PRIMARY KEY)"),
        )
        .await;
    }
    let run = |a: DriftArgs| async move {
        drift::drift_command(a)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(run(args(my_url(&s), my_url(&t))).await, 0);
    my_exec(&pool, &format!("INSERT INTO `{t}`.other VALUES (1)")).await;
    assert_eq!(run(args(my_url(&s), my_url(&t))).await, 1);
    // Only the tables asked for.
    assert_eq!(
        run(DriftArgs {
            tables: vec!["orders".into()],
            json: true,
            ..args(my_url(&s), my_url(&t))
        })
        .await,
        0
    );
    assert_eq!(
        run(DriftArgs {
            tables: vec!["nope".into()],
            ..args(my_url(&s), my_url(&t))
        })
        .await,
        2
    );
    assert_eq!(
        run(args("mysql://root@127.0.0.1:1/x".into(), my_url(&t))).await,
        2
    );
    assert_eq!(run(args("ftp://x".into(), my_url(&t))).await, 2);

    let report = drift::render(
        &db::compare(
            &connect(Engine::Mysql, &my_url(&s), Side::Source).await,
            &connect(Engine::Mysql, &my_url(&t), Side::Target).await,
            &DbOptions::default(),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(report.contains("id=1  extra on target"), "{report}");
    assert!(report.contains("drift in 1 of 2 tables"), "{report}");
}

// ---------------------------------------------------------------------------------------
// Hardening: connect deadlines and password files

/// A port that accepts connections and never says a word (a black-holed load balancer).
fn silent_listener() -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        // Hold every connection open, silent, until the test process ends.
        for c in l.incoming().take(16).flatten() {
            held.push(c);
        }
    });
    (port, h)
}

#[tokio::test]
async fn a_silent_port_and_a_wrong_engine_port_fail_within_the_connect_deadline() {
    let (port, _h) = silent_listener();
    for (engine, url) in [
        (Engine::Mysql, format!("mysql://root@127.0.0.1:{port}/x")),
        (
            Engine::Postgres,
            format!("postgres://postgres@127.0.0.1:{port}/x"),
        ),
        // A MySQL URL on PostgreSQL's port: each side waits for the other to speak first.
        (Engine::Mysql, "mysql://root@127.0.0.1:5432/x".to_string()),
    ] {
        let started = std::time::Instant::now();
        let e = tokio::time::timeout(
            Duration::from_secs(60),
            db::connect_endpoint(&endpoint(engine, &url), Side::Source),
        )
        .await
        .unwrap_or_else(|_| panic!("{url}: still hanging after 60s"))
        .err()
        .unwrap_or_else(|| panic!("{url}: connected to a silent port?"));
        let msg = e.to_string();
        let addr = url.split('@').nth(1).unwrap().split('/').next().unwrap();
        assert!(
            msg.contains(&format!("no answer from {addr} within 5s")),
            "{url}: {msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{url}");
    }
}

#[test]
fn drift_against_a_silent_port_exits_2_naming_the_address() {
    let (port, _h) = silent_listener();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "drift",
            "--connect-timeout",
            "1s",
            "--source",
            &format!("mysql://root@127.0.0.1:{port}/x"),
            "--target",
            &my_url("mysql"),
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no answer from 127.0.0.1:{port} within 1s")),
        "{stderr}"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "drift",
            "--connect-timeout",
            "0s",
            "--source",
            "x",
            "--target",
            "y",
        ])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--connect-timeout"));
}

#[tokio::test]
async fn a_password_file_that_is_not_a_password_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    for (file, why) in [
        ("/dev/null".to_string(), "is not a regular file"),
        (empty.display().to_string(), "is empty"),
        (dir.path().display().to_string(), "is not a regular file"),
    ] {
        let mut ep = endpoint(Engine::Mysql, &my_url("mysql"));
        ep.password_file = Some(file.clone());
        let e = db::connect_endpoint(&ep, Side::Source)
            .await
            .err()
            .unwrap_or_else(|| panic!("{file}: connected with an empty password"));
        assert!(e.to_string().contains(why), "{file}: {e}");
    }
}

/// A password in a URL reaches no printed error (issue 18): not in the query string
/// (`?password=`, which the PostgreSQL driver reads), not in the user position, where the
/// server's "Access denied for user '…'" used to repeat it; and a plan carrying one is
/// refused by `check` before anything connects.
#[test]
fn no_url_form_of_a_password_is_printed_by_drift_or_check() {
    const PW: &str = "Qx7-url-secret-9";
    let bin = env!("CARGO_BIN_EXE_cutover");
    let target = "mysql://root@127.0.0.1:3306/mysql";
    let drift = |source: &str| {
        std::process::Command::new(bin)
            .args(["drift", "--source", source, "--target", target])
            .output()
            .unwrap_or_else(|e| panic!("run cutover: {e}"))
    };
    for source in [
        // A password typed where the user goes: MariaDB refuses the login and names "him".
        format!("mysql://{PW}@127.0.0.1:3306/mysql"),
        // A secret query parameter on a database that does not exist.
        format!("postgres://postgres@127.0.0.1:5432/cutover_nope_db?password={PW}"),
        format!("postgres://postgres@127.0.0.1:5432/cutover_nope_db?sslmode=disable&PassWord={PW}"),
        format!("mysql://{PW}:{PW}@127.0.0.1:1/x"),
    ] {
        let out = drift(&source);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{source}: {stdout}{stderr}");
        assert!(
            stderr.contains("fix:"),
            "{source}: the error says what to do: {stderr}"
        );
        assert!(
            !stderr.contains(PW) && !stdout.contains(PW),
            "{source}: the secret is printed: {stderr}"
        );
    }

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for url in [
        format!("postgres://postgres@127.0.0.1:5432/postgres?password={PW}"),
        format!("host=127.0.0.1 user=postgres password={PW}"),
    ] {
        let plan = dir.path().join("p.toml");
        std::fs::write(
            &plan,
            format!(
                "name = \"p\"\n[source]\nengine = \"postgres\"\nurl = \"{url}\"\n\
                 [target]\nengine = \"mysql\"\nurl = \"{target}\"\n\
                 [[step]]\nid = \"s\"\nconfirm = \"go\"\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new(bin)
            .arg("check")
            .arg(&plan)
            .output()
            .unwrap_or_else(|e| panic!("run cutover: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(
            stderr.contains("p.toml:4:7: the [source] url contains"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains(PW) && !String::from_utf8_lossy(&out.stdout).contains(PW));
    }
}

/// `plan show --check` polls the databases once and marks every step's gates as they are
/// now (not only the next step's, as `check` does), and changes nothing.
#[test]
fn plan_show_check_marks_every_steps_gates_from_one_poll() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = dir.path().join("p.toml");
    let url = "mysql://root@127.0.0.1:3306/mysql";
    std::fs::write(
        &plan,
        format!(
            "name = \"p\"\n[source]\nengine = \"mysql\"\nurl = \"{url}\"\n\
             [target]\nengine = \"mysql\"\nurl = \"{url}\"\n\
             [[step]]\nid = \"writable\"\nconfirm = \"go\"\ngates = [\"source.read_only == false\"]\n\
             [[step]]\nid = \"frozen\"\nconfirm = \"go on\"\ngates = [\"target.read_only == true\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["plan", "show", "--check", "--json", "--sessions-dir"])
        .arg(dir.path())
        .arg(&plan)
        .output()
        .unwrap_or_else(|e| panic!("run cutover: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}"));
    assert!(doc["checked_at"].as_i64().is_some(), "{doc}");
    let gate = |step: usize| doc["steps"][step]["gates"][0]["now"].clone();
    assert_eq!(gate(0)["state"], "green", "{doc}");
    assert_eq!(gate(1)["state"], "red", "{doc}");
    assert!(
        gate(1)["reason"]
            .as_str()
            .is_some_and(|r| r.contains("false")),
        "the red gate names the value it read: {doc}"
    );
}

// ---------------------------------------------------------------------------------------
// Issue 14: the cross-engine hash pushed into both servers

/// A MariaDB database and a PostgreSQL schema named `drift14_<tag>_...`, dropped at the end.
async fn drift14_pair(tag: &str, clean: &mut Cleanup) -> (MySqlPool, String, PgPool, String) {
    let my = mariadb().await;
    let pg = postgres(PG_DB).await;
    let name = unique(tag).replacen("cutover_t_", "drift14_", 1);
    my_exec(&my, &format!("CREATE DATABASE `{name}`")).await;
    clean
        .mysql
        .push(format!("DROP DATABASE IF EXISTS `{name}`"));
    pg_exec(&pg, &format!("CREATE SCHEMA \"{name}\"")).await;
    clean
        .pg
        .push(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
    (my, name.clone(), pg, name)
}

/// One row of `pairs` as both engines' SQL literals: (MariaDB, PostgreSQL) per column.
fn pair_row(id: u32) -> Vec<(String, String)> {
    let q = |s: &str| format!("'{s}'");
    let both = |s: String| (s.clone(), s);
    let ts = format!(
        "2024-01-01 {:02}:{:02}:{:02}.{:06}",
        id / 3600 % 24,
        id / 60 % 60,
        id % 60,
        (id * 7) % 1_000_000
    );
    let txt = match id % 3 {
        0 => both("NULL".into()),
        1 => both("''".into()),
        _ => both(q(&format!("t{id}"))),
    };
    let hex = format!("{:04X}", id);
    let uuid = format!("0000{hex}-AAAA-4BBB-8CCC-DDDDEEEE{hex}");
    vec![
        both(id.to_string()),
        both(format!("{}.{:02}", id, id % 100)),
        // 1.10 (decimal(12,2)) against 1.1 (numeric without scale): equal.
        (format!("{id}.10"), format!("{id}.1")),
        both(q(&ts)),
        (q(&ts), q(&format!("{ts}+00"))),
        txt,
        (
            format!("{}", id % 2),
            if id % 2 == 1 { "true" } else { "false" }.into(),
        ),
        both(format!("{:?}", f64::from(id) / 3.0)),
        both(format!("{id}.1")),
        both(q(&format!("2024-02-{:02}", id % 28 + 1))),
        both(q(&format!("03:04:{:02}.500000", id % 60))),
        (format!("X'{hex}'"), format!("'\\x{hex}'::bytea")),
        (q(&uuid), q(&uuid.to_lowercase())),
    ]
}

fn values(rows: &[Vec<(String, String)>], mysql: bool) -> String {
    rows.iter()
        .map(|r| {
            let cells: Vec<&str> = r
                .iter()
                .map(|(m, p)| if mysql { m.as_str() } else { p.as_str() })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every canonical type pair, and each kind of difference the canonical forms must keep
/// or hide, compared MariaDB -> PostgreSQL pushed down and client-side: both name the same
/// keys, exactly the ones that differ; JSON has no common SQL form and says it fell back.
#[tokio::test]
async fn cross_engine_pushdown_gives_the_client_side_verdict_for_every_canonical_pair() {
    let mut clean = Cleanup::new();
    let (my, s, pg, t) = drift14_pair("canon", &mut clean).await;
    my_exec(
        &my,
        &format!(
            "CREATE TABLE `{s}`.pairs (id INT NOT NULL PRIMARY KEY, d DECIMAL(12,2) NOT NULL,
            d2 DECIMAL(12,2) NOT NULL, ts DATETIME(6) NOT NULL, tstz DATETIME(6) NOT NULL,
            txt VARCHAR(20) NULL, flag TINYINT(1) NOT NULL, f DOUBLE NOT NULL, r FLOAT NOT NULL,
            day DATE NOT NULL, tm TIME(6) NOT NULL, raw VARBINARY(8) NOT NULL, u CHAR(36) NOT NULL)"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!(
            "CREATE TABLE \"{t}\".pairs (id integer PRIMARY KEY, d numeric(12,2) NOT NULL,
            d2 numeric NOT NULL, ts timestamp(6) NOT NULL, tstz timestamptz(6) NOT NULL,
            txt varchar(20), flag boolean NOT NULL, f double precision NOT NULL, r real NOT NULL,
            day date NOT NULL, tm time(6) NOT NULL, raw bytea NOT NULL, u uuid NOT NULL)"
        ),
    )
    .await;
    let mut src: Vec<Vec<(String, String)>> = (1..=300).map(pair_row).collect();
    let mut tgt = src.clone();
    let set = |rows: &mut Vec<Vec<(String, String)>>, id: u32, col: usize, m: &str, p: &str| {
        rows[id as usize - 1][col] = (m.to_string(), p.to_string());
    };
    // A differing microsecond.
    set(&mut tgt, 11, 3, "", "'2024-01-01 00:00:11.000078'");
    // NULL against '' (row 13 holds '').
    set(&mut tgt, 13, 5, "", "NULL");
    // A trailing space.
    set(&mut src, 20, 5, "'abc'", "");
    set(&mut tgt, 20, 5, "", "'abc '");
    // -0.0 against 0: equal.
    set(&mut src, 31, 7, "-0.0", "");
    set(&mut tgt, 31, 7, "", "0");
    // A boolean flipped, a float, a decimal, a timestamptz microsecond, a uuid.
    set(&mut tgt, 51, 6, "", "false");
    set(&mut tgt, 61, 8, "", "61.2");
    set(&mut tgt, 81, 1, "", "81.82");
    set(&mut tgt, 91, 4, "", "'2024-01-01 00:01:31.000638+00'");
    set(
        &mut tgt,
        101,
        12,
        "",
        "'00000065-aaaa-4bbb-8ccc-ddddeeee0066'",
    );
    tgt.remove(70); // id 71: missing on the target
    tgt.push(pair_row(301)); // extra on the target
    my_exec(
        &my,
        &format!("INSERT INTO `{s}`.pairs VALUES {}", values(&src, true)),
    )
    .await;
    pg_exec(
        &pg,
        &format!("INSERT INTO \"{t}\".pairs VALUES {}", values(&tgt, false)),
    )
    .await;
    // JSON: key order and spacing do not matter, a value does.
    my_exec(
        &my,
        &format!("CREATE TABLE `{s}`.docs (id INT PRIMARY KEY, doc JSON NULL)"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("CREATE TABLE \"{t}\".docs (id integer PRIMARY KEY, doc jsonb)"),
    )
    .await;
    my_exec(
        &my,
        &format!(
            "INSERT INTO `{s}`.docs VALUES (1, '{{\"b\": 1, \"a\": [true, null]}}'), (2, '{{\"x\": 1}}'), (3, NULL)"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!(
            "INSERT INTO \"{t}\".docs VALUES (1, '{{\"a\":[true,null],\"b\":1}}'), (2, '{{\"x\": 2}}'), (3, NULL)"
        ),
    )
    .await;

    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&t), Side::Target).await;
    let pushed = compare(&source, &target, &small_chunks()).await;
    let client = compare(
        &source,
        &target,
        &DbOptions {
            client_hash: true,
            ..small_chunks()
        },
    )
    .await;
    let expected: Vec<(String, DiffKind)> = [
        ("id=11", DiffKind::Different),
        ("id=13", DiffKind::Different),
        ("id=20", DiffKind::Different),
        ("id=51", DiffKind::Different),
        ("id=61", DiffKind::Different),
        ("id=71", DiffKind::MissingOnTarget),
        ("id=81", DiffKind::Different),
        ("id=91", DiffKind::Different),
        ("id=101", DiffKind::Different),
        ("id=301", DiffKind::ExtraOnTarget),
    ]
    .into_iter()
    .map(|(k, d)| (k.to_string(), d))
    .collect();
    let sorted = |d: &TableDrift| {
        let mut k = keys(d);
        k.sort_by_key(|(k, _)| k[3..].parse::<u32>().unwrap_or(0));
        k
    };
    let p = table(&pushed, "pairs");
    assert_eq!(p.note, None, "pairs must be hashed in the servers: {p:#?}");
    assert_eq!(sorted(p), expected, "pushed down: {p:#?}");
    assert_eq!(sorted(table(&client, "pairs")), expected, "client-side");
    let docs = table(&pushed, "docs");
    assert!(
        docs.note
            .as_deref()
            .is_some_and(|n| n.contains("client-side") && n.contains("doc")),
        "{docs:#?}"
    );
    assert_eq!(keys(docs), vec![("id=2".to_string(), DiffKind::Different)]);
    assert_eq!(keys(table(&client, "docs")), keys(docs));
}

/// `--since` and `--where` restrict both sides to the same rows: a difference inside the
/// window is found, one outside is ignored; a bad condition fails naming the window.
#[tokio::test]
async fn windowed_compare_finds_a_difference_inside_the_window_and_ignores_one_outside() {
    let mut clean = Cleanup::new();
    let (my, s, pg, t) = drift14_pair("window", &mut clean).await;
    my_exec(
        &my,
        &format!(
            "CREATE TABLE `{s}`.events (id INT PRIMARY KEY, region VARCHAR(4) NOT NULL,
             v INT NOT NULL, updated_at DATETIME(6) NOT NULL)"
        ),
    )
    .await;
    // Rows 1..=100 changed ten minutes ago, 101..=200 three days ago (the same instants
    // on both sides).
    let (recent, old): (String, String) = sqlx::query_as(
        "SELECT DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 10 MINUTE, '%Y-%m-%d %H:%i:%s'),
                DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 3 DAY, '%Y-%m-%d %H:%i:%s')",
    )
    .fetch_one(&my)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    my_exec(
        &my,
        &format!(
            "INSERT INTO `{s}`.events SELECT seq, IF(seq MOD 2 = 0, 'eu', 'us'), seq,
             IF(seq <= 100, '{recent}', '{old}') FROM `{s}`.seq_1_to_200"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!(
            "CREATE TABLE \"{t}\".events (id integer PRIMARY KEY, region varchar(4) NOT NULL,
             v integer NOT NULL, updated_at timestamptz NOT NULL)"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!(
            "INSERT INTO \"{t}\".events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g,
             CASE WHEN g <= 100 THEN '{recent}+00' ELSE '{old}+00' END::timestamptz
             FROM generate_series(1, 200) g"
        ),
    )
    .await;
    // Row 50 (recent, eu) and row 150 (old, eu) differ; row 51 (recent, us) too.
    pg_exec(
        &pg,
        &format!("UPDATE \"{t}\".events SET v = -v WHERE id IN (50, 51, 150)"),
    )
    .await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&t), Side::Target).await;
    let window = |where_sql: Option<&str>, since: Option<&str>| DbOptions {
        window: db::Window {
            where_sql: where_sql.map(str::to_string),
            since: since.map(|s| db::Since::parse(s).unwrap_or_else(|e| panic!("{e}"))),
        },
        ..small_chunks()
    };
    let found = |d: &[TableDrift]| {
        let mut k: Vec<String> = keys(table(d, "events")).into_iter().map(|k| k.0).collect();
        k.sort();
        k
    };
    let all = compare(&source, &target, &window(None, None)).await;
    assert_eq!(found(&all), vec!["id=150", "id=50", "id=51"]);
    let recent = compare(&source, &target, &window(None, Some("updated_at=1h"))).await;
    assert_eq!(found(&recent), vec!["id=50", "id=51"]);
    let e = table(&recent, "events");
    assert_eq!(
        (e.source_rows, e.target_rows),
        (Some(100), Some(100)),
        "{e:#?}"
    );
    let eu_recent = compare(
        &source,
        &target,
        &window(Some("region = 'eu'"), Some("updated_at=1h")),
    )
    .await;
    assert_eq!(found(&eu_recent), vec!["id=50"]);
    let err = db::compare(&source, &target, &window(Some("nosuch = 1"), None), |_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--where") && err.contains("nosuch"), "{err}");
    let err = db::compare(&source, &target, &window(None, Some("created=1h")), |_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--since") && err.contains("created"), "{err}");
}

/// `--repair-sql`: the script written for a MariaDB target and for a PostgreSQL target,
/// applied to that target, leaves nothing to repair (the next compare is clean).
#[tokio::test]
async fn repair_sql_applied_to_the_target_makes_the_compare_clean_on_both_target_engines() {
    let mut clean = Cleanup::new();
    let (my, s, pg, t) = drift14_pair("repair", &mut clean).await;
    let my_t = format!("{s}_t");
    my_exec(&my, &format!("CREATE DATABASE `{my_t}`")).await;
    clean
        .mysql
        .push(format!("DROP DATABASE IF EXISTS `{my_t}`"));
    let ddl = "(id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, note VARCHAR(40) NULL,
        amount DECIMAL(12,2) NOT NULL, made DATETIME(6) NOT NULL, seen TIMESTAMP(3) NULL,
        raw VARBINARY(8) NULL, flag TINYINT(1) NOT NULL, ratio DOUBLE NULL)";
    for db in [&s, &my_t] {
        my_exec(&my, &format!("CREATE TABLE `{db}`.items {ddl}")).await;
    }
    my_exec(
        &my,
        &format!(
            "INSERT INTO `{s}`.items SELECT seq, CONCAT('it''s \\\\ ', seq), IF(seq MOD 3 = 0, NULL, IF(seq MOD 3 = 1, '', 'x')),
             (seq MOD 1000) / 4, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND,
             IF(seq MOD 5 = 0, NULL, TIMESTAMP'2024-03-01 12:00:00.250' + INTERVAL seq SECOND),
             IF(seq MOD 4 = 0, NULL, UNHEX(CONCAT('00', HEX(seq)))), seq MOD 2, seq / 7e0
             FROM `{s}`.seq_1_to_300"
        ),
    )
    .await;
    // MariaDB target: a copy, then a changed row, a deleted one, an extra one, '' -> NULL.
    my_exec(
        &my,
        &format!("INSERT INTO `{my_t}`.items SELECT * FROM `{s}`.items"),
    )
    .await;
    my_exec(
        &my,
        &format!("UPDATE `{my_t}`.items SET name = 'changed' WHERE id = 7"),
    )
    .await;
    my_exec(&my, &format!("DELETE FROM `{my_t}`.items WHERE id = 100")).await;
    my_exec(
        &my,
        &format!("INSERT INTO `{my_t}`.items VALUES (1000, 'extra', NULL, 1, '2024-01-01', NULL, NULL, 0, NULL)"),
    )
    .await;
    my_exec(
        &my,
        &format!("UPDATE `{my_t}`.items SET note = NULL WHERE id = 4"),
    )
    .await;
    // PostgreSQL target: three wrong rows and an extra one; the rest is missing.
    pg_exec(
        &pg,
        &format!(
            "CREATE TABLE \"{t}\".items (id integer PRIMARY KEY, name varchar(40) NOT NULL, note varchar(40),
             amount numeric(12,2) NOT NULL, made timestamp(6) NOT NULL, seen timestamptz(3), raw bytea,
             flag boolean NOT NULL, ratio double precision)"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!(
            "INSERT INTO \"{t}\".items SELECT g, 'wrong', NULL, 0, '2020-01-01'::timestamp, NULL::timestamptz, '\\x00'::bytea, false, 0
             FROM generate_series(1, 3) g UNION ALL SELECT 999, 'extra', NULL, 0, '2020-01-01'::timestamp, NULL, NULL, true, NULL"
        ),
    )
    .await;

    let dir = std::env::temp_dir().join(unique("drift14_repair"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    for (target_url, file, mysql) in [
        (my_url(&my_t), dir.join("mariadb.sql"), true),
        (pg_url(&t), dir.join("postgres.sql"), false),
    ] {
        let run = |repair: Option<std::path::PathBuf>| {
            let a = DriftArgs {
                max_keys: 1000,
                repair_sql: repair,
                ..args(my_url(&s), target_url.clone())
            };
            async move {
                drift::drift_command(a)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        assert_eq!(
            run(Some(file.clone())).await,
            1,
            "{target_url}: drift expected"
        );
        let script = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(script.contains("DELETE FROM"), "{script}");
        if mysql {
            assert!(script.contains("REPLACE INTO `"), "{script}");
            sqlx::raw_sql(AssertSqlSafe(script.clone()))
                .execute(&my)
                .await
                .unwrap_or_else(|e| panic!("applying {script}: {e}"));
        } else {
            assert!(
                script.contains("ON CONFLICT (\"id\") DO UPDATE SET"),
                "{script}"
            );
            sqlx::raw_sql(AssertSqlSafe(script.clone()))
                .execute(&pg)
                .await
                .unwrap_or_else(|e| panic!("applying the script: {e}"));
        }
        assert_eq!(
            run(None).await,
            0,
            "{target_url}: still drifting after the repair:\n{script}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir); // best effort: a temp dir
}

/// A table without a primary key and one differing row: the compare narrows it to its
/// hash bucket and lists the row on each side, same engine and across engines.
#[tokio::test]
async fn a_no_pk_table_with_one_differing_row_names_its_bucket_and_lists_the_row() {
    let mut clean = Cleanup::new();
    let (my, s, pg, t) = drift14_pair("nopk", &mut clean).await;
    let my_t = format!("{s}_t");
    my_exec(&my, &format!("CREATE DATABASE `{my_t}`")).await;
    clean
        .mysql
        .push(format!("DROP DATABASE IF EXISTS `{my_t}`"));
    for db in [&s, &my_t] {
        my_exec(&my, &format!("CREATE TABLE `{db}`.log (kind VARCHAR(10) NOT NULL, n INT NOT NULL, amount DECIMAL(8,2) NULL)")).await;
        my_exec(
            &my,
            &format!("INSERT INTO `{db}`.log SELECT 'k', seq, seq / 4 FROM `{s}`.seq_1_to_2000"),
        )
        .await;
    }
    pg_exec(&pg, &format!("CREATE TABLE \"{t}\".log (kind varchar(10) NOT NULL, n integer NOT NULL, amount numeric(8,2))")).await;
    pg_exec(
        &pg,
        &format!("INSERT INTO \"{t}\".log SELECT 'k', g, g / 4.0 FROM generate_series(1, 2000) g"),
    )
    .await;
    for db in [&s, &my_t] {
        my_exec(&my, &format!("CREATE TABLE `{db}`.uniq (code VARCHAR(10) NOT NULL, v INT NOT NULL, UNIQUE KEY by_code (code))")).await;
        my_exec(
            &my,
            &format!(
                "INSERT INTO `{db}`.uniq SELECT CONCAT('c', seq), seq FROM `{s}`.seq_1_to_500"
            ),
        )
        .await;
    }
    pg_exec(
        &pg,
        &format!(
            "CREATE TABLE \"{t}\".uniq (code varchar(10) NOT NULL UNIQUE, v integer NOT NULL)"
        ),
    )
    .await;
    pg_exec(
        &pg,
        &format!("INSERT INTO \"{t}\".uniq SELECT 'c' || g, g FROM generate_series(1, 500) g"),
    )
    .await;
    my_exec(
        &my,
        &format!("UPDATE `{my_t}`.uniq SET v = 0 WHERE code = 'c77'"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("UPDATE \"{t}\".uniq SET v = 0 WHERE code = 'c77'"),
    )
    .await;
    my_exec(
        &my,
        &format!("UPDATE `{my_t}`.log SET amount = 0 WHERE n = 1234"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("UPDATE \"{t}\".log SET amount = 0 WHERE n = 1234"),
    )
    .await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    for (target, what) in [
        (
            connect(Engine::Mysql, &my_url(&my_t), Side::Target).await,
            "same engine",
        ),
        (
            connect(Engine::Postgres, &pg_url(&t), Side::Target).await,
            "cross engine",
        ),
    ] {
        let drifts = compare(&source, &target, &DbOptions::default()).await;
        let log = table(&drifts, "log");
        assert_eq!(log.checksum, ChecksumState::Mismatch, "{what}: {log:#?}");
        let k = keys(log);
        assert_eq!(k.len(), 2, "{what}: {log:#?}");
        let missing = k.iter().find(|(_, d)| *d == DiffKind::MissingOnTarget);
        let extra = k.iter().find(|(_, d)| *d == DiffKind::ExtraOnTarget);
        let (Some((m, _)), Some((e, _))) = (missing, extra) else {
            panic!("{what}: one row missing and one extra expected: {log:#?}");
        };
        assert!(
            m.starts_with("bucket ") && m.contains("n=1234") && m.contains("amount=308.5"),
            "{what}: {m}"
        );
        assert!(
            e.starts_with("bucket ") && e.contains("n=1234") && e.contains("amount=0"),
            "{what}: {e}"
        );
        // A unique index of NOT NULL columns stands in for the missing primary key.
        let u = table(&drifts, "uniq");
        assert_eq!(
            keys(u),
            vec![("code=c77".to_string(), DiffKind::Different)],
            "{what}: {u:#?}"
        );
    }
}

/// `--max-lag`: while the target's lag reading (here `--lag-query` on a real table of the
/// PostgreSQL target) is over the limit the compare pauses and says so; it finishes once
/// the reading drops.
#[tokio::test]
async fn throttling_pauses_while_the_lag_reading_is_over_the_limit() {
    let mut clean = Cleanup::new();
    let (my, s, pg, t) = drift14_pair("throttle", &mut clean).await;
    my_exec(&my, &format!("CREATE TABLE `{s}`.n (id INT PRIMARY KEY)")).await;
    my_exec(
        &my,
        &format!("INSERT INTO `{s}`.n SELECT seq FROM `{s}`.seq_1_to_500"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("CREATE TABLE \"{t}\".n (id integer PRIMARY KEY)"),
    )
    .await;
    pg_exec(
        &pg,
        &format!("INSERT INTO \"{t}\".n SELECT generate_series(1, 500)"),
    )
    .await;
    pg_exec(&pg, &format!("CREATE TABLE \"{t}\".lag (seconds float8)")).await;
    pg_exec(&pg, &format!("INSERT INTO \"{t}\".lag VALUES (4.2)")).await;
    let source = connect(Engine::Mysql, &my_url(&s), Side::Source).await;
    let target = connect(Engine::Postgres, &pg_url(&t), Side::Target).await;
    let opts = DbOptions {
        tables: vec!["n".into()],
        max_lag_s: Some(2.0),
        lag_query: Some(format!("SELECT seconds FROM \"{t}\".lag")),
        ..small_chunks()
    };
    let (tx, mut rx) = tokio::sync::watch::channel(None::<String>);
    let task =
        tokio::spawn(
            async move { db::compare_observed(&source, &target, &opts, |_| {}, tx).await },
        );
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| s.as_deref() == Some("throttled: lag 4.2 s > 2 s")),
    )
    .await
    .unwrap_or_else(|_| panic!("no throttling seen"))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !task.is_finished(),
        "the compare ran on while the lag was over the limit"
    );
    pg_exec(&pg, &format!("UPDATE \"{t}\".lag SET seconds = 0.5")).await;
    let drifts = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap_or_else(|_| panic!("the compare did not resume"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table(&drifts, "n").checksum, ChecksumState::Equal);
    assert_eq!(
        *rx.borrow(),
        None,
        "still shown as throttled after resuming"
    );
}
