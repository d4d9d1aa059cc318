//! The two SQLite databases of the rehearsal world: schema, row images, the statements the
//! workload and the replicator run, and the chunked checksum compare of both sides.
//!
//! Every table has the same shape (an integer key, text, integer, real, a nullable text and
//! a `version`), so one set of statements per table serves the workload, the replicator and
//! the compare. `version` holds the world's global write sequence number of the write that
//! produced the row, which lets the ledger tell exactly which write a row reflects.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use cutover_core::event::{DiffKind, Side};

/// One SQLite connection of the world. Under simulated time (`sync`) every operation runs
/// to completion before its task yields: SQLite works on a thread of its own, and a paused
/// tokio clock would otherwise jump to the next timer while a statement is pending (the
/// runtime looks idle), and other tasks would run in an order set by that thread's speed.
/// So a statement takes no simulated time and nothing else happens while it runs, which is
/// what makes a simulated rehearsal the same run every time. On the wall clock the
/// statement is awaited as usual.
pub(crate) struct Conn {
    inner: SqliteConnection,
    sync: bool,
}

/// Runs `f` to completion on this thread when `sync`, else awaits it.
async fn run<F: std::future::Future>(sync: bool, f: F) -> F::Output {
    if sync {
        futures::executor::block_on(f)
    } else {
        f.await
    }
}

impl Conn {
    /// A fresh private in-memory database.
    pub(crate) async fn open(sync: bool) -> Result<Conn, sqlx::Error> {
        let inner = run(sync, open_memory()).await?;
        Ok(Conn { inner, sync })
    }
}

/// The table the heartbeat writer updates; never part of the drift or validation figures.
pub(crate) const HEARTBEAT_TABLE: &str = "cutover_heartbeat";

/// Rows per checksum chunk (by key range), as chunked checksum tools do.
pub(crate) const CHUNK_ROWS: i64 = 100;

/// A row image: what the replicator copies and the compare hashes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub id: i64,
    pub label: String,
    pub qty: i64,
    pub amount: f64,
    pub note: Option<String>,
    pub version: i64,
}

/// The canonical hash of a row: length-prefixed fields, so no two rows hash alike by
/// accident of concatenation; the real is hashed by its bits, NULL apart from "".
pub(crate) type RowDigest = [u8; 32];

impl Row {
    pub fn digest(&self) -> RowDigest {
        let mut h = Sha256::new();
        h.update(self.id.to_le_bytes());
        h.update((self.label.len() as u64).to_le_bytes());
        h.update(self.label.as_bytes());
        h.update(self.qty.to_le_bytes());
        h.update(self.amount.to_bits().to_le_bytes());
        match &self.note {
            None => h.update([0u8]),
            Some(n) => {
                h.update([1u8]);
                h.update((n.len() as u64).to_le_bytes());
                h.update(n.as_bytes());
            }
        }
        h.update(self.version.to_le_bytes());
        h.finalize().into()
    }
}

/// Why the world could not be built or a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(
        "rehearsal table name \"{0}\" is not a plain SQL identifier (use letters, digits and _)"
    )]
    BadTableName(String),
    #[error("rehearsal table \"{0}\" is listed twice or clashes with the heartbeat table")]
    DuplicateTable(String),
    #[error("the {} rehearsal database: {error}", side.as_str())]
    Database {
        side: Side,
        #[source]
        error: sqlx::Error,
    },
}

/// The statements for one table, built once (the name is validated before).
#[derive(Debug)]
pub(crate) struct TableSql {
    pub name: String,
    create: Arc<str>,
    insert: Arc<str>,
    update: Arc<str>,
    delete: Arc<str>,
    upsert: Arc<str>,
    select_all: Arc<str>,
}

pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

impl TableSql {
    pub fn new(name: &str) -> Result<Self, WorldError> {
        if !valid_identifier(name) {
            return Err(WorldError::BadTableName(name.to_string()));
        }
        let cols = "id, label, qty, amount, note, version";
        Ok(TableSql {
            name: name.to_string(),
            create: format!(
                "CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT NOT NULL, \
                 qty INTEGER NOT NULL, amount REAL NOT NULL, note TEXT, version INTEGER NOT NULL)"
            )
            .into(),
            insert: format!("INSERT INTO {name} ({cols}) VALUES (?, ?, ?, ?, ?, ?)").into(),
            update: format!(
                "UPDATE {name} SET label = ?, qty = ?, amount = ?, note = ?, version = ? WHERE id = ?"
            )
            .into(),
            delete: format!("DELETE FROM {name} WHERE id = ?").into(),
            upsert: format!("INSERT OR REPLACE INTO {name} ({cols}) VALUES (?, ?, ?, ?, ?, ?)")
                .into(),
            select_all: format!("SELECT {cols} FROM {name} ORDER BY id").into(),
        })
    }

    pub async fn create(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        let q = sqlx::query(AssertSqlSafe(Arc::clone(&self.create))).execute(&mut conn.inner);
        run(conn.sync, q).await?;
        Ok(())
    }

    async fn write_row(
        sql: &Arc<str>,
        conn: &mut SqliteConnection,
        row: &Row,
    ) -> Result<u64, sqlx::Error> {
        let r = sqlx::query(AssertSqlSafe(Arc::clone(sql)))
            .bind(row.id)
            .bind(row.label.clone())
            .bind(row.qty)
            .bind(row.amount)
            .bind(row.note.clone())
            .bind(row.version)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn insert(&self, conn: &mut Conn, row: &Row) -> Result<u64, sqlx::Error> {
        run(
            conn.sync,
            Self::write_row(&self.insert, &mut conn.inner, row),
        )
        .await
    }

    /// Copies a row image whether or not the row exists (the replicator's apply).
    pub async fn upsert(&self, conn: &mut Conn, row: &Row) -> Result<u64, sqlx::Error> {
        run(
            conn.sync,
            Self::write_row(&self.upsert, &mut conn.inner, row),
        )
        .await
    }

    /// Rewrites every column, so a later write fully supersedes an earlier one.
    pub async fn update(&self, conn: &mut Conn, row: &Row) -> Result<u64, sqlx::Error> {
        let q = sqlx::query(AssertSqlSafe(Arc::clone(&self.update)))
            .bind(row.label.clone())
            .bind(row.qty)
            .bind(row.amount)
            .bind(row.note.clone())
            .bind(row.version)
            .bind(row.id)
            .execute(&mut conn.inner);
        let r = run(conn.sync, q).await?;
        Ok(r.rows_affected())
    }

    pub async fn delete(&self, conn: &mut Conn, id: i64) -> Result<u64, sqlx::Error> {
        let q = sqlx::query(AssertSqlSafe(Arc::clone(&self.delete)))
            .bind(id)
            .execute(&mut conn.inner);
        let r = run(conn.sync, q).await?;
        Ok(r.rows_affected())
    }

    /// Every row in key order.
    pub async fn read_all(&self, conn: &mut Conn) -> Result<Vec<Row>, sqlx::Error> {
        let q =
            sqlx::query_as(AssertSqlSafe(Arc::clone(&self.select_all))).fetch_all(&mut conn.inner);
        let rows: Vec<(i64, String, i64, f64, Option<String>, i64)> = run(conn.sync, q).await?;
        Ok(rows
            .into_iter()
            .map(|(id, label, qty, amount, note, version)| Row {
                id,
                label,
                qty,
                amount,
                note,
                version,
            })
            .collect())
    }
}

/// A fresh private in-memory database.
async fn open_memory() -> Result<SqliteConnection, sqlx::Error> {
    // `sqlite::memory:` gets a unique name per parse, so source and target never share.
    SqliteConnectOptions::from_str("sqlite::memory:")?
        .connect()
        .await
}

pub(crate) async fn sqlite_version(conn: &mut Conn) -> Result<String, sqlx::Error> {
    let q = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut conn.inner);
    run(conn.sync, q).await
}

pub(crate) async fn create_heartbeat(conn: &mut Conn, ts: i64) -> Result<(), sqlx::Error> {
    let q =
        sqlx::query("CREATE TABLE cutover_heartbeat (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL)")
            .execute(&mut conn.inner);
    run(conn.sync, q).await?;
    write_heartbeat(conn, ts).await
}

/// Upserts the single heartbeat row (the writer on the source, the replicator on the target).
pub(crate) async fn write_heartbeat(conn: &mut Conn, ts: i64) -> Result<(), sqlx::Error> {
    let q = sqlx::query("INSERT OR REPLACE INTO cutover_heartbeat (id, ts) VALUES (1, ?)")
        .bind(ts)
        .execute(&mut conn.inner);
    run(conn.sync, q).await?;
    Ok(())
}

pub(crate) async fn read_heartbeat(conn: &mut Conn) -> Result<Option<i64>, sqlx::Error> {
    let q = sqlx::query_scalar("SELECT ts FROM cutover_heartbeat WHERE id = 1")
        .fetch_optional(&mut conn.inner);
    run(conn.sync, q).await
}

/// Runs an arbitrary statement (the `sql` action) and returns the rows it changed.
pub(crate) async fn execute_raw(conn: &mut Conn, statement: &str) -> Result<u64, sqlx::Error> {
    let q = sqlx::raw_sql(AssertSqlSafe(statement.to_string())).execute(&mut conn.inner);
    let r = run(conn.sync, q).await?;
    Ok(r.rows_affected())
}

/// Loads `rows` in one transaction (the replication task's completed full load).
pub(crate) async fn load(
    table: &TableSql,
    conn: &mut Conn,
    rows: &[Row],
) -> Result<(), sqlx::Error> {
    let inner = &mut conn.inner;
    run(conn.sync, async move {
        let mut tx = inner.begin().await?;
        for row in rows {
            TableSql::write_row(&table.insert, &mut tx, row).await?;
        }
        tx.commit().await
    })
    .await
}

/// The outcome of comparing one table on both sides.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableCompare {
    pub source_rows: u64,
    pub target_rows: u64,
    pub chunks_total: u64,
    /// Every differing key in key order, found inside the chunks whose hashes differ.
    pub diffs: Vec<(i64, DiffKind)>,
}

fn chunk_of(id: i64) -> i64 {
    (id - 1).div_euclid(CHUNK_ROWS)
}

fn chunk_hashes(rows: &[Row]) -> BTreeMap<i64, RowDigest> {
    let mut chunks: BTreeMap<i64, Sha256> = BTreeMap::new();
    for row in rows {
        chunks
            .entry(chunk_of(row.id))
            .or_default()
            .update(row.digest());
    }
    chunks
        .into_iter()
        .map(|(k, h)| (k, h.finalize().into()))
        .collect()
}

/// Compares two key-ordered row sets: chunk hashes first, then row by row inside the chunks
/// that differ, as chunked checksum tools narrow a mismatch down to keys.
pub(crate) fn compare(source: &[Row], target: &[Row]) -> TableCompare {
    let src_chunks = chunk_hashes(source);
    let tgt_chunks = chunk_hashes(target);
    let mut all: Vec<i64> = src_chunks
        .keys()
        .chain(tgt_chunks.keys())
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    let differing: Vec<i64> = all
        .iter()
        .copied()
        .filter(|c| src_chunks.get(c) != tgt_chunks.get(c))
        .collect();
    let mut diffs = Vec::new();
    for chunk in differing {
        let in_chunk = |rows: &[Row]| -> BTreeMap<i64, RowDigest> {
            rows.iter()
                .filter(|r| chunk_of(r.id) == chunk)
                .map(|r| (r.id, r.digest()))
                .collect()
        };
        let s = in_chunk(source);
        let t = in_chunk(target);
        let mut keys: Vec<i64> = s.keys().chain(t.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            match (s.get(&k), t.get(&k)) {
                (Some(_), None) => diffs.push((k, DiffKind::MissingOnTarget)),
                (None, Some(_)) => diffs.push((k, DiffKind::ExtraOnTarget)),
                (Some(a), Some(b)) if a != b => diffs.push((k, DiffKind::Different)),
                _ => {}
            }
        }
    }
    TableCompare {
        source_rows: source.len() as u64,
        target_rows: target.len() as u64,
        chunks_total: all.len() as u64,
        diffs,
    }
}
