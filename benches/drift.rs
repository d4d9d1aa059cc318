//! The drift compare on a big table, against the limits of issue 4, measured in one run on
//! the local MariaDB (127.0.0.1:3306, root): source and target are two databases on the
//! same server.
//!
//! (a) a parallel full-scan hash of both sides, `SELECT SUM(CRC32(CONCAT_WS('#', all
//!     columns)))` on source and target at once — the floor;
//! (b) our full compare (`cutover::db::compare`, chunked, both sides in parallel);
//! (c) pt-table-checksum's own per-chunk statements with its boundary lookups, 10,000-row
//!     chunks, both sides at once (boundary `LIMIT ?, 2`, EXPLAIN, `REPLACE INTO checksums
//!     ... SELECT COUNT(*), BIT_XOR(CRC32(...))`, read-back, UPDATE); also (c') its
//!     boundary lookup and checksum SELECT alone, without the writes;
//! (d) the time until the primary key of one differing row is named;
//! (e) peak RSS of this process during the compare of a 1M-row and the 5M-row table.
//!
//! Cross engine (issue 14), the same `orders` generated on the local PostgreSQL
//! (127.0.0.1:5432, database `test`, schema `drift14_bench`) by the same formulas:
//! (xa) both sides' full-scan hash in parallel (MariaDB's CRC32 sum, PostgreSQL's
//!      `sum(hashtext(row::text))`) — the floor;
//! (xb) our compare, hashes pushed into both servers, identical tables;
//! (xc) the same with 5 scattered differing rows, all 5 keys named;
//! (xd) the client-side path (`client_hash`), identical tables, for reference;
//! (xe) peak RSS during (xb) at 1M rows and at all rows.
//! `CUTOVER_BENCH_CROSS=0` leaves the cross-engine part out.
//!
//! Run: `cargo bench --bench drift` (5,000,000 rows, ~580 MB a side; setup takes a
//! minute or two). `CUTOVER_BENCH_ROWS=200000` for a quick run, `CUTOVER_BENCH_ROUNDS`
//! (default 5) for the repetitions whose medians are reported. The databases are dropped
//! at the end.

use std::time::{Duration, Instant};

use cutover::db::{self, DbOptions};
use cutover::event::{ChecksumState, Side};
use cutover::plan::{Endpoint, Engine};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row};

const SERVER: &str = "mysql://root@127.0.0.1:3306";
const SRC: &str = "cutover_bench_src";
const TGT: &str = "cutover_bench_tgt";
const COLS: &str = "id, customer_id, sku, qty, price, status, email, note, created_at, updated_at";
const PT_CHUNK: u64 = 10_000;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

async fn pool(db: &str, n: u32) -> Res<MySqlPool> {
    Ok(MySqlPoolOptions::new()
        .max_connections(n)
        .connect(&format!("{SERVER}/{db}"))
        .await
        .map_err(|e| format!("MariaDB must run at 127.0.0.1:3306 (root, no password): {e}"))?)
}

async fn exec(pool: &MySqlPool, sql: &str) -> Res<()> {
    pool.execute(AssertSqlSafe(sql.to_string()))
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(())
}

async fn setup(rows: u64) -> Res<()> {
    let admin = pool("mysql", 2).await?;
    for db in [SRC, TGT] {
        exec(&admin, &format!("DROP DATABASE IF EXISTS {db}")).await?;
        exec(&admin, &format!("CREATE DATABASE {db}")).await?;
    }
    let table = |db: &str, name: &str| {
        format!(
            "CREATE TABLE {db}.{name} (
                id BIGINT NOT NULL PRIMARY KEY,
                customer_id INT NOT NULL,
                sku VARCHAR(32) NOT NULL,
                qty INT NOT NULL,
                price DECIMAL(12,2) NOT NULL,
                status VARCHAR(16) NOT NULL,
                email VARCHAR(64) NOT NULL,
                note VARCHAR(100) NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at TIMESTAMP(3) NULL
            ) ENGINE=InnoDB"
        )
    };
    for db in [SRC, TGT] {
        exec(&admin, &table(db, "orders")).await?;
        exec(&admin, &table(db, "orders_1m")).await?;
    }
    // Rows generated in the server from MariaDB's sequence engine, a million at a time.
    let mut start = 1u64;
    while start <= rows {
        let end = (start + 999_999).min(rows);
        exec(
            &admin,
            &format!(
                "INSERT INTO {SRC}.orders SELECT seq, seq MOD 100003,
                    CONCAT('SKU-', LPAD(seq MOD 99991, 6, '0')), 1 + seq MOD 7, (seq MOD 100000) / 100,
                    ELT(1 + seq MOD 4, 'new', 'paid', 'shipped', 'cancelled'),
                    CONCAT('c', seq MOD 100003, '@ex.com'),
                    IF(seq MOD 3 = 0, NULL, CONCAT('note for order ', seq, ' ', REPEAT('x', seq MOD 10))),
                    TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq MOD 1000000) MICROSECOND,
                    IF(seq MOD 5 = 0, NULL, TIMESTAMP'2024-06-01 00:00:00' + INTERVAL seq SECOND)
                 FROM {SRC}.seq_{start}_to_{end}"
            ),
        )
        .await?;
        start = end + 1;
    }
    exec(
        &admin,
        &format!("INSERT INTO {TGT}.orders SELECT * FROM {SRC}.orders"),
    )
    .await?;
    for db in [SRC, TGT] {
        exec(
            &admin,
            &format!("INSERT INTO {db}.orders_1m SELECT * FROM {SRC}.orders WHERE id <= 1000000"),
        )
        .await?;
        exec(
            &admin,
            &format!("ANALYZE TABLE {db}.orders, {db}.orders_1m"),
        )
        .await?;
        // pt-table-checksum's result table (here one per side: each side runs the queries).
        exec(
            &admin,
            &format!(
                "CREATE TABLE {db}.checksums (
                    db CHAR(64) NOT NULL, tbl CHAR(64) NOT NULL, chunk INT NOT NULL,
                    chunk_time FLOAT NULL, chunk_index VARCHAR(200) NULL,
                    lower_boundary TEXT NULL, upper_boundary TEXT NULL,
                    this_crc CHAR(40) NOT NULL, this_cnt INT NOT NULL,
                    master_crc CHAR(40) NULL, master_cnt INT NULL,
                    ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                    PRIMARY KEY (db, tbl, chunk), INDEX ts_db_tbl (ts, db, tbl)
                ) ENGINE=InnoDB"
            ),
        )
        .await?;
    }
    admin.close().await;
    Ok(())
}

async fn drop_all() -> Res<()> {
    let admin = pool("mysql", 1).await?;
    for db in [SRC, TGT] {
        exec(&admin, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    }
    admin.close().await;
    Ok(())
}

/// (a) `SUM(CRC32(CONCAT_WS('#', all columns)))` on both sides at once.
async fn full_scan_hash(src: &MySqlPool, tgt: &MySqlPool) -> Res<Duration> {
    let started = Instant::now();
    let q = |db: &'static str, pool: MySqlPool| async move {
        let sql =
            format!("SELECT CAST(SUM(CRC32(CONCAT_WS('#', {COLS}))) AS CHAR) FROM {db}.orders");
        let row = sqlx::query(AssertSqlSafe(sql)).fetch_one(&pool).await?;
        row.try_get::<String, _>(0)
    };
    let (a, b) = tokio::try_join!(q(SRC, src.clone()), q(TGT, tgt.clone()))?;
    if a != b {
        return Err(format!("the full-scan hashes differ: {a} vs {b}").into());
    }
    Ok(started.elapsed())
}

/// (c) pt-table-checksum's statements for one side, chunk after chunk.
async fn pt_side(pool: MySqlPool, db: &'static str, writes: bool) -> Res<u64> {
    let mut conn = pool.acquire().await?;
    for s in [
        "SET SESSION innodb_lock_wait_timeout = 1",
        "SET SESSION wait_timeout = 10000",
        "SET SESSION time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        conn.execute(s).await?;
    }
    let crc = format!(
        "COALESCE(LOWER(CONV(BIT_XOR(CAST(CRC32(CONCAT_WS('#', {COLS}, CONCAT(ISNULL(`note`), ISNULL(`updated_at`)))) AS UNSIGNED)), 10, 16)), 0)"
    );
    let boundary = format!(
        "SELECT /*!40001 SQL_NO_CACHE */ `id` FROM `{db}`.`orders` FORCE INDEX(`PRIMARY`) WHERE ((`id` >= ?)) ORDER BY `id` LIMIT ?, 2 /*next chunk boundary*/"
    );
    let first = format!(
        "SELECT /*!40001 SQL_NO_CACHE */ `id` FROM `{db}`.`orders` FORCE INDEX(`PRIMARY`) ORDER BY `id` LIMIT 1 /*first lower boundary*/"
    );
    let last = format!(
        "SELECT /*!40001 SQL_NO_CACHE */ `id` FROM `{db}`.`orders` FORCE INDEX(`PRIMARY`) ORDER BY `id` DESC LIMIT 1 /*last upper boundary*/"
    );
    let select = format!(
        "SELECT COUNT(*) AS cnt, {crc} AS crc FROM `{db}`.`orders` FORCE INDEX(`PRIMARY`) WHERE ((`id` >= ?)) AND ((`id` <= ?)) /*checksum chunk*/"
    );
    let explain = format!("EXPLAIN {select}");
    let replace = format!(
        "REPLACE INTO `{db}`.`checksums` (db, tbl, chunk, chunk_index, lower_boundary, upper_boundary, this_cnt, this_crc) \
         SELECT ?, ?, ?, ?, ?, ?, COUNT(*) AS cnt, {crc} AS crc FROM `{db}`.`orders` FORCE INDEX(`PRIMARY`) \
         WHERE ((`id` >= ?)) AND ((`id` <= ?)) /*checksum chunk*/"
    );
    let read_back = format!(
        "SELECT this_crc, this_cnt FROM `{db}`.`checksums` WHERE db = ? AND tbl = ? AND chunk = ?"
    );
    let update = format!(
        "UPDATE `{db}`.`checksums` SET chunk_time = ?, master_crc = ?, master_cnt = ? WHERE db = ? AND tbl = ? AND chunk = ?"
    );
    let Some(mut lo) = sqlx::query(AssertSqlSafe(first))
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.get::<i64, _>(0))
    else {
        return Ok(0);
    };
    let max: i64 = sqlx::query(AssertSqlSafe(last))
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    let mut chunk = 0i64;
    let mut rows = 0u64;
    loop {
        chunk += 1;
        let bounds = sqlx::query(AssertSqlSafe(boundary.clone()))
            .bind(lo)
            .bind(PT_CHUNK as i64 - 1)
            .fetch_all(&mut *conn)
            .await?;
        let (hi, next) = match bounds.as_slice() {
            [] => (max, None),
            [one] => (one.get::<i64, _>(0), None),
            [one, two, ..] => (one.get::<i64, _>(0), Some(two.get::<i64, _>(0))),
        };
        sqlx::query(AssertSqlSafe(explain.clone()))
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *conn)
            .await?;
        let started = Instant::now();
        if writes {
            sqlx::query(AssertSqlSafe(replace.clone()))
                .bind(db)
                .bind("orders")
                .bind(chunk)
                .bind("PRIMARY")
                .bind(lo.to_string())
                .bind(hi.to_string())
                .bind(lo)
                .bind(hi)
                .execute(&mut *conn)
                .await?;
            let r = sqlx::query(AssertSqlSafe(read_back.clone()))
                .bind(db)
                .bind("orders")
                .bind(chunk)
                .fetch_one(&mut *conn)
                .await?;
            let (crc, cnt): (String, i32) = (r.get(0), r.get(1));
            rows += cnt as u64;
            sqlx::query(AssertSqlSafe(update.clone()))
                .bind(started.elapsed().as_secs_f64())
                .bind(crc)
                .bind(cnt)
                .bind(db)
                .bind("orders")
                .bind(chunk)
                .execute(&mut *conn)
                .await?;
        } else {
            let r = sqlx::query(AssertSqlSafe(select.clone()))
                .bind(lo)
                .bind(hi)
                .fetch_one(&mut *conn)
                .await?;
            rows += r.get::<i64, _>(0) as u64;
        }
        match next {
            Some(n) => lo = n,
            None => break,
        }
    }
    Ok(rows)
}

async fn pt_checksum(src: &MySqlPool, tgt: &MySqlPool, writes: bool, rows: u64) -> Res<Duration> {
    let started = Instant::now();
    let (a, b) = tokio::try_join!(
        pt_side(src.clone(), SRC, writes),
        pt_side(tgt.clone(), TGT, writes)
    )?;
    if a != rows || b != rows {
        return Err(format!("pt emulation counted {a} and {b} rows, not {rows}").into());
    }
    Ok(started.elapsed())
}

fn endpoint(db: &str) -> Endpoint {
    Endpoint {
        engine: Engine::Mysql,
        label: db.into(),
        url: Some(format!("{SERVER}/{db}")),
        password_env: None,
        password_file: None,
    }
}

fn opts(table: &str) -> DbOptions {
    DbOptions {
        tables: vec![table.into()],
        max_concurrent: 1,
        ..DbOptions::default()
    }
}

/// (b) our compare; also (d): when the first differing key was named, if any.
async fn ours(
    source: &db::Db,
    target: &db::Db,
    table: &str,
) -> Res<(Duration, Option<Duration>, ChecksumState, Vec<String>)> {
    let started = Instant::now();
    let mut first_key: Option<Duration> = None;
    let drifts = db::compare(source, target, &opts(table), |d| {
        if first_key.is_none() && !d.differing_keys.is_empty() {
            first_key = Some(started.elapsed());
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let d = drifts.first().ok_or("no reading")?;
    let keys = d
        .differing_keys
        .iter()
        .map(|k| format!("{} {}", k.key, k.kind.as_str()))
        .collect();
    Ok((elapsed, first_key, d.checksum, keys))
}

/// Peak resident set size of this process, in MiB, since the last reset.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak_rss() {
    // Linux: writing 5 resets VmHWM to the current RSS. Failing leaves it cumulative.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run(rows: u64, rounds: usize) -> Res<()> {
    let t0 = Instant::now();
    setup(rows).await?;
    let admin = pool("mysql", 1).await?;
    let size: String = sqlx::query(AssertSqlSafe(format!(
        "SELECT CAST(ROUND(data_length / 1000000) AS CHAR) FROM information_schema.TABLES WHERE table_schema = '{SRC}' AND table_name = 'orders'"
    )))
    .fetch_one(&admin)
    .await?
    .get(0);
    println!(
        "setup: {rows} rows, {size} MB of data per side, in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let (src, tgt) = (pool(SRC, 2).await?, pool(TGT, 2).await?);
    let source = db::connect_endpoint(&endpoint(SRC), Side::Source).await?;
    let target = db::connect_endpoint(&endpoint(TGT), Side::Target).await?;

    // Warm the page cache the same way for everyone.
    full_scan_hash(&src, &tgt).await?;

    // The machine is shared: its speed drifts over a run. Each round measures everything
    // back to back, and the ratios are taken per round, then their median reported.
    let victim = (rows * 9 / 10).max(1);
    let skip_pt = std::env::var_os("CUTOVER_BENCH_SKIP_PT").is_some();
    let mut t: [Vec<f64>; 5] = Default::default();
    let mut ratios: [Vec<f64>; 4] = Default::default();
    for round in 1..=rounds {
        let ta = full_scan_hash(&src, &tgt).await?.as_secs_f64();
        let (tb, _, state, _) = ours(&source, &target, "orders").await?;
        if state != ChecksumState::Equal {
            return Err(format!("equal data compared {state:?}").into());
        }
        let tb = tb.as_secs_f64();
        // CUTOVER_BENCH_SKIP_PT=1 leaves out (c) and (c'), to look at the others alone.
        let (tc, tc2) = if skip_pt {
            (f64::NAN, f64::NAN)
        } else {
            (
                pt_checksum(&src, &tgt, true, rows).await?.as_secs_f64(),
                pt_checksum(&src, &tgt, false, rows).await?.as_secs_f64(),
            )
        };
        // (d) one differing row, 90% of the way through the key range, put back after.
        exec(
            &admin,
            &format!("UPDATE {TGT}.orders SET status = 'lost' WHERE id = {victim}"),
        )
        .await?;
        let (_, first, state, keys) = ours(&source, &target, "orders").await?;
        exec(
            &admin,
            &format!("UPDATE {TGT}.orders t JOIN {SRC}.orders s USING (id) SET t.status = s.status WHERE id = {victim}"),
        )
        .await?;
        let td = first
            .ok_or("the differing row was not named")?
            .as_secs_f64();
        if state != ChecksumState::Mismatch || keys != vec![format!("id={victim} different")] {
            return Err(format!("expected id={victim} different, got {state:?} {keys:?}").into());
        }
        println!(
            "round {round}: (a) {ta:.2} s  (b) {tb:.2} s  (c) {tc:.2} s  (c') {tc2:.2} s  (d) {td:.2} s   \
             b/a {:.2}  c/b {:.2}  c'/b {:.2}  d/a {:.2}",
            tb / ta,
            tc / tb,
            tc2 / tb,
            td / ta
        );
        for (v, x) in t.iter_mut().zip([ta, tb, tc, tc2, td]) {
            v.push(x);
        }
        for (v, x) in ratios.iter_mut().zip([tb / ta, tc / tb, tc2 / tb, td / ta]) {
            v.push(x);
        }
    }

    // (e) peak RSS during a compare of 1M rows and of all rows.
    let before = peak_rss_mib();
    reset_peak_rss();
    ours(&source, &target, "orders_1m").await?;
    let rss_1m = peak_rss_mib();
    reset_peak_rss();
    ours(&source, &target, "orders").await?;
    let rss_all = peak_rss_mib();

    let [ma, mb, mc, mc2, md] = t.map(median);
    let [ba, cb, c2b, da] = ratios.map(median);
    println!();
    println!(
        "{rows} rows (~{size} MB per side), source and target on one server; medians over {rounds} rounds"
    );
    println!("(times, and the per-round ratios):");
    println!("  (a)  parallel full-scan hash of both sides   {ma:8.2} s");
    println!(
        "  (b)  our full compare                        {mb:8.2} s   b/a  = {ba:.2}  (target <= 1.25)"
    );
    println!(
        "  (c)  pt-table-checksum chunk statements      {mc:8.2} s   c/b  = {cb:.2}  (target >= 1.5)"
    );
    println!("  (c') pt boundary + checksum SELECT only      {mc2:8.2} s   c'/b = {c2b:.2}");
    println!(
        "  (d)  primary key of one differing row named  {md:8.2} s   d/a  = {da:.2}  (target <= 1.5)"
    );
    println!(
        "  (e)  peak RSS: before {before:.1} MiB; compare of 1M rows {rss_1m:.1} MiB; of {rows} rows {rss_all:.1} MiB"
    );

    source.close().await;
    target.close().await;
    src.close().await;
    tgt.close().await;
    admin.close().await;
    Ok(())
}

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const PG_SCHEMA: &str = "drift14_bench";

async fn pg_exec(pool: &PgPool, sql: &str) -> Res<()> {
    pool.execute(AssertSqlSafe(sql.to_string()))
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(())
}

/// The MariaDB `orders` generated again on PostgreSQL by the same formulas.
async fn pg_setup(pg: &PgPool, rows: u64) -> Res<()> {
    pg_exec(pg, &format!("DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")).await?;
    pg_exec(pg, &format!("CREATE SCHEMA {PG_SCHEMA}")).await?;
    for (name, n) in [("orders", rows), ("orders_1m", rows.min(1_000_000))] {
        pg_exec(
            pg,
            &format!(
                "CREATE UNLOGGED TABLE {PG_SCHEMA}.{name} (id bigint PRIMARY KEY, customer_id integer NOT NULL,
                 sku varchar(32) NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL,
                 status varchar(16) NOT NULL, email varchar(64) NOT NULL, note varchar(100),
                 created_at timestamp(6) NOT NULL, updated_at timestamptz(3))"
            ),
        )
        .await?;
        pg_exec(
            pg,
            &format!(
                "INSERT INTO {PG_SCHEMA}.{name} SELECT g, g % 100003, 'SKU-' || lpad((g % 99991)::text, 6, '0'),
                 1 + g % 7, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4],
                 'c' || (g % 100003) || '@ex.com',
                 CASE WHEN g % 3 = 0 THEN NULL ELSE 'note for order ' || g || ' ' || repeat('x', (g % 10)::int) END,
                 timestamp '2024-01-01' + g * interval '1 second' + (g % 1000000) * interval '1 microsecond',
                 CASE WHEN g % 5 = 0 THEN NULL ELSE (timestamp '2024-06-01' + g * interval '1 second') AT TIME ZONE 'UTC' END
                 FROM generate_series(1, {n}) g"
            ),
        )
        .await?;
        pg_exec(pg, &format!("VACUUM ANALYZE {PG_SCHEMA}.{name}")).await?;
    }
    Ok(())
}

/// (xa) both sides' full-scan hash at once.
async fn cross_scan(src: &MySqlPool, pg: &PgPool) -> Res<Duration> {
    let started = Instant::now();
    let my = async {
        let sql =
            format!("SELECT CAST(SUM(CRC32(CONCAT_WS('#', {COLS}))) AS CHAR) FROM {SRC}.orders");
        sqlx::query(AssertSqlSafe(sql)).fetch_one(src).await
    };
    let p = async {
        let sql = format!("SELECT sum(hashtext(o::text))::text FROM {PG_SCHEMA}.orders o");
        sqlx::query(AssertSqlSafe(sql)).fetch_one(pg).await
    };
    tokio::try_join!(my, p)?;
    Ok(started.elapsed())
}

fn pg_endpoint() -> Endpoint {
    Endpoint {
        engine: Engine::Postgres,
        label: "pg".into(),
        url: Some(format!("{PG}?schema={PG_SCHEMA}")),
        password_env: None,
        password_file: None,
    }
}

async fn cross_compare(
    source: &db::Db,
    target: &db::Db,
    table: &str,
    client_hash: bool,
) -> Res<(Duration, ChecksumState, Vec<String>, Option<String>)> {
    let started = Instant::now();
    let o = DbOptions {
        client_hash,
        ..opts(table)
    };
    let drifts = db::compare(source, target, &o, |_| {}).await?;
    let d = drifts.first().ok_or("no reading")?;
    let keys = d.differing_keys.iter().map(|k| k.key.clone()).collect();
    Ok((started.elapsed(), d.checksum, keys, d.note.clone()))
}

async fn run_cross(rows: u64, rounds: usize) -> Res<()> {
    let pg = PgPoolOptions::new().max_connections(2).connect(PG).await?;
    let t0 = Instant::now();
    pg_setup(&pg, rows).await?;
    println!(
        "cross setup: {rows} rows on PostgreSQL in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let src = pool(SRC, 2).await?;
    let source = db::connect_endpoint(&endpoint(SRC), Side::Source).await?;
    let target = db::connect_endpoint(&pg_endpoint(), Side::Target).await?;
    cross_scan(&src, &pg).await?;
    let victims: Vec<u64> = (1..=5).map(|i| (rows * (2 * i - 1) / 10).max(1)).collect();
    let list = victims
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut t: [Vec<f64>; 4] = Default::default();
    for round in 1..=rounds {
        let ta = cross_scan(&src, &pg).await?.as_secs_f64();
        let (tb, state, _, note) = cross_compare(&source, &target, "orders", false).await?;
        if state != ChecksumState::Equal || note.is_some() {
            return Err(format!("cross: equal data compared {state:?} ({note:?})").into());
        }
        pg_exec(
            &pg,
            &format!("UPDATE {PG_SCHEMA}.orders SET status = 'lost' WHERE id IN ({list})"),
        )
        .await?;
        let (tc, state, keys, _) = cross_compare(&source, &target, "orders", false).await?;
        pg_exec(
            &pg,
            &format!(
                "UPDATE {PG_SCHEMA}.orders SET status = (ARRAY['new','paid','shipped','cancelled'])[1 + id % 4] WHERE id IN ({list})"
            ),
        )
        .await?;
        let want: Vec<String> = victims.iter().map(|v| format!("id={v}")).collect();
        if state != ChecksumState::Mismatch || keys != want {
            return Err(format!("cross: expected {want:?}, got {state:?} {keys:?}").into());
        }
        // The client-side path only in the first round: it is the slow reference.
        let td = if round == 1 {
            cross_compare(&source, &target, "orders", true)
                .await?
                .0
                .as_secs_f64()
        } else {
            f64::NAN
        };
        let (tb, tc) = (tb.as_secs_f64(), tc.as_secs_f64());
        println!(
            "cross round {round}: (xa) {ta:.2} s  (xb) {tb:.2} s  (xc) {tc:.2} s  (xd) {td:.2} s   xb/xa {:.2}  xc/xa {:.2}",
            tb / ta,
            tc / ta
        );
        for (v, x) in t.iter_mut().zip([ta, tb, tc, td]) {
            v.push(x);
        }
    }
    reset_peak_rss();
    cross_compare(&source, &target, "orders_1m", false).await?;
    let rss_1m = peak_rss_mib();
    reset_peak_rss();
    cross_compare(&source, &target, "orders", false).await?;
    let rss_all = peak_rss_mib();
    let td = t[3][0];
    let [ma, mb, mc, _] = t.map(median);
    println!();
    println!("cross engine MariaDB -> PostgreSQL, {rows} rows, medians over {rounds} rounds:");
    println!("  (xa) both full-scan hashes in parallel          {ma:8.2} s");
    println!(
        "  (xb) our compare, pushed down, identical        {mb:8.2} s   xb/xa = {:.2}",
        mb / ma
    );
    println!(
        "  (xc) our compare, 5 scattered keys named        {mc:8.2} s   xc/xa = {:.2}  (target <= 1.5)",
        mc / ma
    );
    println!(
        "  (xd) client-side hashing (round 1), identical   {td:8.2} s   xd/xb = {:.2}",
        td / mb
    );
    println!(
        "  (xe) peak RSS: compare of 1M rows {rss_1m:.1} MiB; of {rows} rows {rss_all:.1} MiB"
    );
    source.close().await;
    target.close().await;
    pg_exec(&pg, &format!("DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")).await?;
    pg.close().await;
    src.close().await;
    Ok(())
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // RUST_LOG=sqlx::query=debug shows every statement with its time.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rows = env_u64("CUTOVER_BENCH_ROWS", 5_000_000).max(1000);
    let rounds = env_u64("CUTOVER_BENCH_ROUNDS", 5).max(1) as usize;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drift bench: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = rt.block_on(async {
        run(rows, rounds).await?;
        if std::env::var("CUTOVER_BENCH_CROSS").as_deref() != Ok("0") {
            run_cross(rows, rounds).await?;
        }
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    });
    // Drop the big tables whatever happened.
    let cleanup = rt.block_on(drop_all());
    if let Err(e) = result.and(cleanup) {
        eprintln!("drift bench failed: {e}");
        std::process::exit(1);
    }
}
