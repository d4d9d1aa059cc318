//! One chunk of one table, checked on both sides at once.
//!
//! Same engine: the servers compute `COUNT(*)` and the XOR of per-row hashes over a key
//! range (see `sql::row_hash`); a mismatching range is bisected — the hash of the right half
//! is the XOR of the whole and the left, so each level scans only half of what the level
//! above did — down to a leaf of a few hundred rows whose per-row hashes are fetched and
//! joined by key. Cross engine: each side prints the rows of the range, the client
//! canonicalises and hashes them (`canon`) and joins them by key, memory bounded by the
//! chunk's size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::throttle::Throttle;

use super::canon::{self, Canon};
use super::catalog::{Column, Table, TypeClass};
use super::conn::{Db, TextRow};
use super::sql::{self, Bound, KeyRange, Stmt};
use super::{DbError, DbOptions};
use cutover_core::event::DiffKind;

/// Bisection stops when both sides of a range have at most this many rows.
const LEAF_ROWS: u64 = 256;
/// Hash buckets a table without a key is split into when its hashes differ.
const BUCKETS: u64 = 1024;
/// Rows a cross-engine chunk may hold (its key -> hash maps are in memory).
pub(crate) const CROSS_MAX_ROWS: u64 = 50_000;

/// How a table is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Same engine: hashes computed in the servers.
    Pushdown,
    /// Different engines, hashes of the canonical text computed in the servers (only
    /// sums cross the network; rows only for the differing chunks).
    CrossSql,
    /// Different engines: rows printed by the servers, canonicalised and hashed here (a
    /// table with a column that has no canonical SQL form, or `client_hash`).
    Cross,
}

/// A source table and its target counterpart, with what to compare and how.
#[derive(Debug)]
pub(crate) struct Job {
    /// The name shown in readings (the source's).
    pub name: String,
    pub src: Table,
    pub tgt: Table,
    /// Compared columns, aligned by name (source order).
    pub src_cols: Vec<Column>,
    pub tgt_cols: Vec<Column>,
    /// Cross engine: the canonical form of each compared column.
    pub canon: Vec<Canon>,
    /// Primary key columns of each side (the source's key, by name); empty: no key.
    pub src_key: Vec<Column>,
    pub tgt_key: Vec<Column>,
    pub key_canon: Vec<Canon>,
    pub mode: Mode,
    /// A single integer key column: chunks are walked by arithmetic.
    pub int_key: bool,
    /// The per-row hash each side computes (`Pushdown`, `CrossSql`).
    pub src_hash: String,
    pub tgt_hash: String,
    /// Cross engine, hashed client-side: why (the column without a canonical SQL form).
    pub fallback: Option<String>,
}

/// How a job is to be compared: the engines of both sides, and whether the cross-engine
/// hash is forced client-side.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Engines {
    pub src_mysql: bool,
    pub tgt_mysql: bool,
    pub client_hash: bool,
}

impl Job {
    /// Pairs source and target tables by name. Tables missing on the target are returned
    /// apart; columns present on one side only are left out of the compare (and logged).
    pub(crate) fn build(src: &Table, tgt: &Table, engines: Engines) -> Job {
        let same_engine = engines.src_mysql == engines.tgt_mysql;
        let mut src_cols = Vec::new();
        let mut tgt_cols = Vec::new();
        let mut canon = Vec::new();
        for c in &src.columns {
            match tgt.column(&c.name) {
                Some(t) => {
                    canon.push(canon::pair(c.class, t.class));
                    src_cols.push(c.clone());
                    tgt_cols.push(t.clone());
                }
                None => tracing::warn!(
                    table = %src.name,
                    column = %c.name,
                    "column missing on the target; left out of the compare"
                ),
            }
        }
        for t in &tgt.columns {
            if src.column(&t.name).is_none() {
                tracing::warn!(table = %src.name, column = %t.name, "column only on the target; left out of the compare");
            }
        }
        let mut src_key = Vec::new();
        let mut tgt_key = Vec::new();
        let mut key_canon = Vec::new();
        for k in src.key_columns() {
            match tgt.column(&k.name) {
                Some(t) => {
                    key_canon.push(canon::pair(k.class, t.class));
                    src_key.push(k.clone());
                    tgt_key.push(t.clone());
                }
                None => {
                    src_key.clear();
                    tgt_key.clear();
                    key_canon.clear();
                    break;
                }
            }
        }
        let int_key = src_key.len() == 1 && src_key[0].class.is_int() && tgt_key[0].class.is_int();
        // The target forces its key's index only when that key is the compare's.
        let mut tgt = tgt.clone();
        let same_key = tgt.key_columns().len() == tgt_key.len()
            && tgt
                .key_columns()
                .iter()
                .zip(&tgt_key)
                .all(|(a, b)| a.name == b.name);
        if !same_key {
            tgt.key_index = None;
        }
        let (mode, src_hash, tgt_hash, fallback) = if same_engine {
            let s: Vec<&Column> = src_cols.iter().collect();
            let t: Vec<&Column> = tgt_cols.iter().collect();
            (
                Mode::Pushdown,
                sql::row_hash(engines.src_mysql, &s),
                sql::row_hash(engines.tgt_mysql, &t),
                None,
            )
        } else {
            let side = |cols: &[Column], others: &[Column], mysql: bool| {
                let triples: Vec<(&Column, Canon, TypeClass)> = cols
                    .iter()
                    .zip(others)
                    .zip(&canon)
                    .map(|((c, o), k)| (c, *k, o.class))
                    .collect();
                canon::sql_row_hash(mysql, &triples)
            };
            let hashes = side(&src_cols, &tgt_cols, engines.src_mysql)
                .and_then(|s| Ok((s, side(&tgt_cols, &src_cols, engines.tgt_mysql)?)));
            match hashes {
                _ if engines.client_hash => (
                    Mode::Cross,
                    String::new(),
                    String::new(),
                    Some("hashed client-side (--client-hash)".to_string()),
                ),
                Ok((s, t)) => (Mode::CrossSql, s, t, None),
                Err(why) => {
                    tracing::warn!(table = %src.name, reason = %why, "hashed client-side");
                    (
                        Mode::Cross,
                        String::new(),
                        String::new(),
                        Some(format!("hashed client-side: {why}")),
                    )
                }
            }
        };
        Job {
            name: src.name.clone(),
            src: src.clone(),
            tgt,
            src_cols,
            tgt_cols,
            canon,
            src_key,
            tgt_key,
            key_canon,
            mode,
            int_key,
            src_hash,
            tgt_hash,
            fallback,
        }
    }

    pub(crate) fn has_key(&self) -> bool {
        !self.src_key.is_empty()
    }

    fn key_names(&self) -> Vec<&str> {
        self.src_key.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Row count and hash of a range on one side. Same engine: the XOR of row hashes, so the
/// hash of a difference of ranges is the XOR of their hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Sum {
    pub count: u64,
    pub hash: u64,
}

impl Sum {
    fn minus(self, part: Sum) -> Sum {
        Sum {
            count: self.count.saturating_sub(part.count),
            hash: self.hash ^ part.hash,
        }
    }
}

/// A row of one side: its key as shown, its hash and its key as printed.
type Keyed = (String, u64, Vec<Option<String>>);

/// One differing row. The hashes let the cross-engine compare pair up a row that two
/// collations put in different chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowDiff {
    pub key: String,
    pub kind: DiffKind,
    pub src_hash: Option<u64>,
    pub tgt_hash: Option<u64>,
    /// The key as the side holding the row printed it (the source's, or the target's for
    /// a row only there), bindable back: what repair SQL names the row by.
    pub key_vals: Vec<Option<String>>,
}

/// What checking one chunk found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    pub src: Sum,
    pub tgt: Sum,
    pub equal: bool,
    /// The differing rows found (at most the cap asked for).
    pub diffs: Vec<RowDiff>,
    /// `diffs` names every difference of the chunk (not cut by the cap).
    pub complete: bool,
    /// Time of the slower side, for chunk sizing.
    pub elapsed: Duration,
}

/// Runs chunk checks on both databases under the query budget.
pub(crate) struct Checker {
    pub src: Db,
    pub tgt: Db,
    pub opts: DbOptions,
    src_slots: Arc<Semaphore>,
    tgt_slots: Arc<Semaphore>,
    throttle: Throttle,
}

fn parse_u64(cell: Option<&Option<String>>) -> u64 {
    let Some(Some(t)) = cell else { return 0 };
    match t.trim().parse::<i128>() {
        // Wrapping: PostgreSQL hashes are signed, sums may exceed 64 bits.
        Ok(v) => v as u64,
        Err(_) => t
            .trim()
            .split('.')
            .next()
            .and_then(|i| i.parse::<i128>().ok())
            .map_or(0, |v| v as u64),
    }
}

impl Checker {
    pub(crate) fn new(src: Db, tgt: Db, opts: DbOptions) -> Checker {
        Checker::observed(src, tgt, opts, watch::channel(None).0)
    }

    /// A checker publishing its throttling ("throttled: lag 4.2 s > 2 s", `None` when
    /// running) on `status`.
    pub(crate) fn observed(
        src: Db,
        tgt: Db,
        opts: DbOptions,
        status: watch::Sender<Option<String>>,
    ) -> Checker {
        let slots = opts.max_concurrent.max(1);
        Checker {
            throttle: Throttle::new(&opts, status),
            src,
            tgt,
            opts,
            src_slots: Arc::new(Semaphore::new(slots)),
            tgt_slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Waits while the servers are too busy or the replica lags (see `throttle`).
    pub(crate) async fn throttle(&self) -> Result<(), DbError> {
        self.throttle.wait(&self.src, &self.tgt).await
    }

    fn side(&self, source: bool) -> (&Db, &Semaphore) {
        if source {
            (&self.src, &self.src_slots)
        } else {
            (&self.tgt, &self.tgt_slots)
        }
    }

    /// Runs one statement on one side inside the concurrency budget.
    pub(crate) async fn run(
        &self,
        source: bool,
        what: &str,
        stmt: &Stmt,
    ) -> Result<Vec<TextRow>, DbError> {
        let (db, slots) = self.side(source);
        // The semaphore is never closed, so acquiring only fails if it were.
        let _permit = slots.acquire().await.ok();
        db.rows(what, &stmt.sql, &stmt.binds).await
    }

    /// Count and hash of a range on one side, and how long the server took.
    pub(crate) async fn sum(
        &self,
        job: &Job,
        source: bool,
        range: &KeyRange,
    ) -> Result<(Sum, Duration), DbError> {
        let (db, table, hash, key) = if source {
            (&self.src, &job.src, &job.src_hash, &job.src_key)
        } else {
            (&self.tgt, &job.tgt, &job.tgt_hash, &job.tgt_key)
        };
        let key: Vec<&Column> = key.iter().collect();
        let stmt = if key.is_empty() {
            sql::table_hash(table, hash, db.is_mysql())
        } else {
            sql::chunk_hash(table, hash, &key, range, db.is_mysql())
        };
        let started = Instant::now();
        let rows = self
            .run(source, &format!("checksum of {}", job.name), &stmt)
            .await?;
        let row = rows.first();
        let sum = Sum {
            count: parse_u64(row.and_then(|r| r.first())),
            hash: parse_u64(row.and_then(|r| r.get(1))),
        };
        Ok((sum, started.elapsed()))
    }

    /// Runs the window's condition once on both sides, so a bad `--where` fails before the
    /// compare starts, with the server's own words.
    pub(crate) async fn probe_window(&self, job: &Job) -> Result<(), DbError> {
        let what = format!("the window (--where / --since) on table {}", job.name);
        let s = sql::probe_filter(&job.src, self.src.is_mysql());
        let t = sql::probe_filter(&job.tgt, self.tgt.is_mysql());
        futures::try_join!(self.run(true, &what, &s), self.run(false, &what, &t))?;
        Ok(())
    }

    /// Count and hash of a whole table on the source only.
    pub(crate) async fn source_sum(&self, job: &Job) -> Result<Sum, DbError> {
        Ok(self.sum(job, true, &KeyRange::all()).await?.0)
    }

    /// Count and hash of a range on both sides at once.
    pub(crate) async fn sums(
        &self,
        job: &Job,
        range: &KeyRange,
    ) -> Result<(Sum, Sum, Duration), DbError> {
        let ((s, ts), (t, tt)) =
            futures::try_join!(self.sum(job, true, range), self.sum(job, false, range))?;
        Ok((s, t, ts.max(tt)))
    }

    /// Checks one chunk; on a mismatch names up to `cap` differing rows.
    pub(crate) async fn check(
        &self,
        job: &Job,
        range: &KeyRange,
        cap: usize,
    ) -> Result<Outcome, DbError> {
        match job.mode {
            Mode::Cross => self.cross(job, range, cap).await,
            Mode::Pushdown | Mode::CrossSql => {
                let sums = self.sums(job, range).await?;
                self.outcome(job, range, sums, cap).await
            }
        }
    }

    /// The outcome of a range whose sums are known: equal, or the differing rows found by
    /// bisection.
    pub(crate) async fn outcome(
        &self,
        job: &Job,
        range: &KeyRange,
        (src, tgt, elapsed): (Sum, Sum, Duration),
        cap: usize,
    ) -> Result<Outcome, DbError> {
        let mut out = Outcome {
            src,
            tgt,
            equal: src == tgt,
            diffs: Vec::new(),
            complete: true,
            elapsed,
        };
        if !out.equal && job.has_key() {
            out.complete = self
                .bisect(job, range.clone(), src, tgt, cap, &mut out.diffs)
                .await?;
        } else if !out.equal && job.mode != Mode::Cross {
            out.complete = self.buckets(job, cap, &mut out.diffs).await?;
        } else if !out.equal {
            out.complete = false;
        }
        Ok(out)
    }

    /// A table without a key whose hashes differ: per-bucket sums on both sides (one scan
    /// each), then the rows of the differing buckets only, joined as multisets of row
    /// hashes. Each differing row is named by its bucket and its values. Returns whether
    /// every difference was named.
    async fn buckets(
        &self,
        job: &Job,
        cap: usize,
        found: &mut Vec<RowDiff>,
    ) -> Result<bool, DbError> {
        let what = format!("hash buckets of {}", job.name);
        let s = sql::bucket_sums(&job.src, &job.src_hash, BUCKETS, self.src.is_mysql());
        let t = sql::bucket_sums(&job.tgt, &job.tgt_hash, BUCKETS, self.tgt.is_mysql());
        let (s, t) = futures::try_join!(self.run(true, &what, &s), self.run(false, &what, &t))?;
        let sums = |rows: Vec<TextRow>| -> HashMap<u64, (u64, u64)> {
            rows.iter()
                .map(|r| {
                    (
                        parse_u64(r.first()),
                        (parse_u64(r.get(1)), parse_u64(r.get(2))),
                    )
                })
                .collect()
        };
        let (s, t) = (sums(s), sums(t));
        let mut differing: Vec<u64> = s
            .keys()
            .chain(t.keys())
            .filter(|b| s.get(b) != t.get(b))
            .copied()
            .collect();
        differing.sort_unstable();
        differing.dedup();
        if differing.is_empty() {
            return Ok(true);
        }
        let what = format!("rows of differing buckets of {}", job.name);
        let rows = |source: bool| {
            let (table, cols, hash, mysql) = if source {
                (&job.src, &job.src_cols, &job.src_hash, self.src.is_mysql())
            } else {
                (&job.tgt, &job.tgt_cols, &job.tgt_hash, self.tgt.is_mysql())
            };
            let exprs: Vec<String> = cols
                .iter()
                .zip(&job.canon)
                .map(|(c, k)| {
                    if job.mode == Mode::CrossSql {
                        canon::select_expr(mysql, c, *k)
                    } else {
                        sql::key_text(mysql, c)
                    }
                })
                .collect();
            sql::bucket_rows(table, &exprs, hash, BUCKETS, &differing, mysql)
        };
        let (s_stmt, t_stmt) = (rows(true), rows(false));
        let (s, t) = futures::try_join!(
            self.run(true, &what, &s_stmt),
            self.run(false, &what, &t_stmt)
        )?;
        let names: Vec<&str> = job.src_cols.iter().map(|c| c.name.as_str()).collect();
        let n = names.len();
        // hash -> (source count - target count, display, values)
        let mut rows: HashMap<u64, (i64, String, Vec<Option<String>>)> = HashMap::new();
        for (side, list) in [(1i64, s), (-1i64, t)] {
            for r in list {
                let vals: Vec<Option<String>> = if job.mode == Mode::CrossSql {
                    r[..n]
                        .iter()
                        .zip(&job.canon)
                        .map(|(v, c)| v.as_deref().map(|v| canon::value(*c, v)))
                        .collect()
                } else {
                    r[..n].to_vec()
                };
                let hash = parse_u64(r.get(n));
                let bucket = parse_u64(r.get(n + 1));
                let e = rows.entry(hash).or_insert_with(|| {
                    let shown = format!(
                        "bucket {bucket}/{BUCKETS}: {}",
                        canon::key_display(&names, &vals)
                    );
                    (0, shown, r[..n].to_vec())
                });
                e.0 += side;
            }
        }
        let mut diffs: Vec<(String, i64, Vec<Option<String>>, u64)> = rows
            .into_iter()
            .filter(|(_, (d, _, _))| *d != 0)
            .map(|(h, (d, shown, vals))| (shown, d, vals, h))
            .collect();
        diffs.sort();
        let mut complete = true;
        for (shown, d, vals, h) in diffs {
            for _ in 0..d.unsigned_abs() {
                if found.len() >= cap {
                    complete = false;
                    break;
                }
                let missing = d > 0;
                found.push(RowDiff {
                    key: shown.clone(),
                    kind: if missing {
                        DiffKind::MissingOnTarget
                    } else {
                        DiffKind::ExtraOnTarget
                    },
                    src_hash: missing.then_some(h),
                    tgt_hash: (!missing).then_some(h),
                    key_vals: vals.clone(),
                });
            }
        }
        Ok(complete)
    }

    /// Narrows a mismatching range down to its differing rows. Returns whether every
    /// difference was named (false when the cap cut the search short).
    async fn bisect(
        &self,
        job: &Job,
        range: KeyRange,
        src: Sum,
        tgt: Sum,
        cap: usize,
        found: &mut Vec<RowDiff>,
    ) -> Result<bool, DbError> {
        // Depth-first, left to right, so keys come out in key order.
        let mut stack = vec![(range, src, tgt)];
        let mut complete = true;
        while let Some((range, s, t)) = stack.pop() {
            if found.len() >= cap {
                complete = false;
                break;
            }
            let split = if s.count.max(t.count) <= LEAF_ROWS {
                None
            } else {
                self.split_point(job, &range, s, t).await?
            };
            let Some(mid) = split else {
                let leaf_complete = self.leaf(job, &range, cap, found).await?;
                complete &= leaf_complete;
                continue;
            };
            let left = KeyRange {
                lo: range.lo.clone(),
                hi: Some(mid.clone()),
            };
            let right = KeyRange {
                lo: Some(mid),
                hi: range.hi.clone(),
            };
            let (ls, lt, _) = self.sums(job, &left).await?;
            let (rs, rt) = (s.minus(ls), t.minus(lt));
            if rs != rt {
                stack.push((right, rs, rt));
            }
            if ls != lt {
                stack.push((left, ls, lt));
            }
        }
        Ok(complete)
    }

    /// A key splitting a range into halves of about equal rows; `None` when it cannot be
    /// split (one key).
    async fn split_point(
        &self,
        job: &Job,
        range: &KeyRange,
        s: Sum,
        t: Sum,
    ) -> Result<Option<Bound>, DbError> {
        if job.int_key {
            // Bounded ranges split by arithmetic; only the open ends of the first and last
            // chunk need the actual smallest / largest key.
            let (lo, hi) = match (&range.lo, &range.hi) {
                (Some(Bound::Int(lo)), Some(Bound::Int(hi))) => (Some(*lo), Some(hi - 1)),
                _ => self.int_span(job, range).await?,
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Ok(None);
            };
            if hi <= lo {
                return Ok(None);
            }
            // hi is inclusive here: the split point is the first key of the right half.
            return Ok(Some(Bound::Int(lo + (hi - lo + 1) / 2)));
        }
        let source = s.count >= t.count;
        let (table, key, count) = if source {
            (&job.src, &job.src_key, s.count)
        } else {
            (&job.tgt, &job.tgt_key, t.count)
        };
        let key: Vec<&Column> = key.iter().collect();
        let db = if source { &self.src } else { &self.tgt };
        let stmt = sql::key_at(table, &key, range, count / 2, db.is_mysql());
        let rows = self
            .run(source, &format!("splitting a chunk of {}", job.name), &stmt)
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| Bound::Vals(r.into_iter().map(Option::unwrap_or_default).collect())))
    }

    /// Smallest and largest key of a range over both sides (integer keys).
    pub(crate) async fn int_span(
        &self,
        job: &Job,
        range: &KeyRange,
    ) -> Result<(Option<i128>, Option<i128>), DbError> {
        let s = sql::int_bounds(&job.src, &job.src_key[0], range, self.src.is_mysql());
        let t = sql::int_bounds(&job.tgt, &job.tgt_key[0], range, self.tgt.is_mysql());
        let what = format!("key bounds of {}", job.name);
        let (s, t) = futures::try_join!(self.run(true, &what, &s), self.run(false, &what, &t))?;
        let cell = |rows: &[TextRow], i: usize| -> Option<i128> {
            rows.first()?.get(i)?.as_deref()?.parse().ok()
        };
        let lo = [cell(&s, 0), cell(&t, 0)].into_iter().flatten().min();
        let hi = [cell(&s, 1), cell(&t, 1)].into_iter().flatten().max();
        Ok((lo, hi))
    }

    /// Source-side key bounds only (for planning the walk).
    pub(crate) async fn source_int_span(
        &self,
        job: &Job,
    ) -> Result<(Option<i128>, Option<i128>), DbError> {
        let s = sql::int_bounds(
            &job.src,
            &job.src_key[0],
            &KeyRange::all(),
            self.src.is_mysql(),
        );
        let rows = self
            .run(true, &format!("key bounds of {}", job.name), &s)
            .await?;
        let cell = |i: usize| -> Option<i128> { rows.first()?.get(i)?.as_deref()?.parse().ok() };
        Ok((cell(0), cell(1)))
    }

    /// The key `offset` rows past `from` on the source: the next chunk boundary.
    pub(crate) async fn boundary(
        &self,
        job: &Job,
        from: &KeyRange,
        offset: u64,
    ) -> Result<Option<Bound>, DbError> {
        let key: Vec<&Column> = job.src_key.iter().collect();
        let stmt = sql::key_at(&job.src, &key, from, offset, self.src.is_mysql());
        let rows = self
            .run(true, &format!("chunk boundary of {}", job.name), &stmt)
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| Bound::Vals(r.into_iter().map(Option::unwrap_or_default).collect())))
    }

    /// Per-row hashes of a small range on both sides, joined by key.
    async fn leaf(
        &self,
        job: &Job,
        range: &KeyRange,
        cap: usize,
        found: &mut Vec<RowDiff>,
    ) -> Result<bool, DbError> {
        let limit = LEAF_ROWS * 8;
        let s_key: Vec<&Column> = job.src_key.iter().collect();
        let t_key: Vec<&Column> = job.tgt_key.iter().collect();
        let s = sql::leaf_rows(
            &job.src,
            &job.src_hash,
            &s_key,
            range,
            limit,
            self.src.is_mysql(),
        );
        let t = sql::leaf_rows(
            &job.tgt,
            &job.tgt_hash,
            &t_key,
            range,
            limit,
            self.tgt.is_mysql(),
        );
        let what = format!("rows of a differing chunk of {}", job.name);
        let (s, t) = futures::try_join!(self.run(true, &what, &s), self.run(false, &what, &t))?;
        let names = job.key_names();
        let n = names.len();
        let split = |rows: Vec<TextRow>| -> Vec<Keyed> {
            rows.into_iter()
                .map(|r| {
                    let key = if job.mode == Mode::CrossSql {
                        // Keys are joined by their canonical form across engines.
                        let vals: Vec<Option<String>> = r[..n]
                            .iter()
                            .zip(&job.key_canon)
                            .map(|(v, c)| v.as_deref().map(|v| canon::value(*c, v)))
                            .collect();
                        canon::key_display(&names, &vals)
                    } else {
                        canon::key_display(&names, &r[..n])
                    };
                    let hash = parse_u64(r.get(n));
                    (key, hash, r[..n].to_vec())
                })
                .collect()
        };
        let (s, t) = (split(s), split(t));
        Ok(join(s, t, cap, found))
    }

    /// Cross engine: rows of a range printed on both sides, canonicalised, joined by key.
    async fn cross(&self, job: &Job, range: &KeyRange, cap: usize) -> Result<Outcome, DbError> {
        let started = Instant::now();
        let what = format!("rows of {}", job.name);
        let s_stmt = cross_select(job, true, range, self.src.is_mysql());
        let t_stmt = cross_select(job, false, range, self.tgt.is_mysql());
        let names = job.key_names();
        let collect = |source: bool, stmt: Stmt| {
            let names = &names;
            let what = &what;
            async move {
                let (db, slots) = self.side(source);
                let _permit = slots.acquire().await.ok();
                let mut rows: Vec<Keyed> = Vec::new();
                let mut sum = Sum::default();
                let nk = job.key_canon.len();
                db.for_each_row(what, &stmt.sql, &stmt.binds, |r| {
                    let key_vals: Vec<Option<String>> = r[..nk]
                        .iter()
                        .zip(&job.key_canon)
                        .map(|(v, c)| v.as_deref().map(|v| canon::value(*c, v)))
                        .collect();
                    let vals: Vec<Option<String>> = r[nk..]
                        .iter()
                        .zip(&job.canon)
                        .map(|(v, c)| v.as_deref().map(|v| canon::value(*c, v)))
                        .collect();
                    let h = canon::row_hash(vals.iter().map(|v| v.as_deref()));
                    sum.count += 1;
                    if nk == 0 {
                        // No key: a multiset hash (wrapping sum) of the whole table.
                        sum.hash = sum.hash.wrapping_add(h);
                    } else {
                        sum.hash ^= h;
                        rows.push((canon::key_display(names, &key_vals), h, r[..nk].to_vec()));
                    }
                })
                .await?;
                Ok::<_, DbError>((sum, rows))
            }
        };
        let ((src, s_rows), (tgt, t_rows)) =
            futures::try_join!(collect(true, s_stmt), collect(false, t_stmt))?;
        let mut out = Outcome {
            src,
            tgt,
            equal: src == tgt,
            diffs: Vec::new(),
            complete: true,
            elapsed: started.elapsed(),
        };
        if !out.equal {
            if job.has_key() {
                out.complete = join(s_rows, t_rows, cap, &mut out.diffs);
            } else {
                out.complete = false;
            }
        }
        Ok(out)
    }
}

/// `SELECT key..., cols... FROM t WHERE range` printed for the canonical compare.
fn cross_select(job: &Job, source: bool, range: &KeyRange, mysql: bool) -> Stmt {
    let (table, cols, key) = if source {
        (&job.src, &job.src_cols, &job.src_key)
    } else {
        (&job.tgt, &job.tgt_cols, &job.tgt_key)
    };
    let mut exprs: Vec<String> = key
        .iter()
        .zip(&job.key_canon)
        .map(|(c, k)| canon::select_expr(mysql, c, *k))
        .collect();
    exprs.extend(
        cols.iter()
            .zip(&job.canon)
            .map(|(c, k)| canon::select_expr(mysql, c, *k)),
    );
    let key: Vec<&Column> = key.iter().collect();
    let mut s = Stmt::new(mysql);
    s.push("SELECT ").push(&exprs.join(", "));
    s.push_from(table).where_range(&key, range);
    if !key.is_empty() {
        s.order_by_key(&key);
    }
    s
}

/// Joins source and target `(key, row hash)` lists; appends at most `cap` differences in
/// source order, then the target's extra rows. Returns whether all were appended.
fn join(src: Vec<Keyed>, tgt: Vec<Keyed>, cap: usize, found: &mut Vec<RowDiff>) -> bool {
    let mut target: HashMap<String, (u64, Vec<Option<String>>)> = HashMap::with_capacity(tgt.len());
    let mut order: Vec<String> = Vec::with_capacity(tgt.len());
    for (k, h, v) in tgt {
        order.push(k.clone());
        target.insert(k, (h, v));
    }
    let mut complete = true;
    let mut push = |d: RowDiff, found: &mut Vec<RowDiff>| {
        if found.len() < cap {
            found.push(d);
        } else {
            complete = false;
        }
    };
    for (k, h, vals) in src {
        match target.remove(&k).map(|(th, _)| th) {
            None => push(
                RowDiff {
                    key: k,
                    kind: DiffKind::MissingOnTarget,
                    src_hash: Some(h),
                    tgt_hash: None,
                    key_vals: vals,
                },
                found,
            ),
            Some(th) if th != h => push(
                RowDiff {
                    key: k,
                    kind: DiffKind::Different,
                    src_hash: Some(h),
                    tgt_hash: Some(th),
                    key_vals: vals,
                },
                found,
            ),
            Some(_) => {}
        }
    }
    for k in order {
        if let Some((h, vals)) = target.remove(&k) {
            push(
                RowDiff {
                    key: k,
                    kind: DiffKind::ExtraOnTarget,
                    src_hash: None,
                    tgt_hash: Some(h),
                    key_vals: vals,
                },
                found,
            );
        }
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_names_missing_extra_and_different_rows() {
        let src = vec![
            ("id=1".to_string(), 10, vec![]),
            ("id=2".to_string(), 20, vec![]),
            ("id=3".to_string(), 30, vec![]),
        ];
        let tgt = vec![
            ("id=1".to_string(), 10, vec![]),
            ("id=3".to_string(), 31, vec![]),
            ("id=4".to_string(), 40, vec![]),
        ];
        let mut found = Vec::new();
        assert!(join(src, tgt, 10, &mut found));
        let got: Vec<(&str, DiffKind)> = found.iter().map(|d| (d.key.as_str(), d.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("id=2", DiffKind::MissingOnTarget),
                ("id=3", DiffKind::Different),
                ("id=4", DiffKind::ExtraOnTarget)
            ]
        );
        let mut capped = Vec::new();
        assert!(!join(
            vec![("id=1".into(), 1, vec![]), ("id=2".into(), 2, vec![])],
            vec![],
            1,
            &mut capped
        ));
        assert_eq!(capped.len(), 1);
    }

    #[test]
    fn sums_subtract_by_xor() {
        let whole = Sum {
            count: 10,
            hash: 0b1010,
        };
        let left = Sum {
            count: 4,
            hash: 0b0011,
        };
        assert_eq!(
            whole.minus(left),
            Sum {
                count: 6,
                hash: 0b1001
            }
        );
    }
}
