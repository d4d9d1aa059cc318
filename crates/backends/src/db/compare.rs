//! Walking tables chunk by chunk: the one-shot compare (`cutover drift`, tests, benches)
//! and the state the continuous Drift source keeps between polls.
//!
//! Chunks are key ranges sized adaptively so each takes about `chunk_time` on the slower
//! side (like pt-table-checksum's `--chunk-time`); single integer keys are walked by
//! arithmetic, other keys by a boundary lookup on the source. In continuous mode a chunk
//! that mismatches is *suspect* until a re-check after the replication lag confirms it, a
//! chunk whose source changed is re-checked soon after, and every chunk is re-checked at
//! least every `recheck_interval`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::catalog::{self, Table};
use super::chunk::{CROSS_MAX_ROWS, Checker, Engines, Job, Mode, Outcome, RowDiff, Sum};
use super::heartbeat::HEARTBEAT_TABLE;
use super::sql::{Bound, KeyRange};
use super::window;
use super::{DbError, DbOptions};
use cutover_core::event::{ChecksumState, DiffKey, DiffKind, TableDrift, Ts, now_ms};

/// pt-table-checksum's starting chunk size; chunks grow at most 4x per step from here.
const FIRST_CHUNK_ROWS: u64 = 1_000;
const MIN_CHUNK_ROWS: u64 = 100;
const MAX_CHUNK_ROWS: u64 = 20_000_000;

/// Plans the next chunk of a table's first pass.
#[derive(Debug)]
pub(crate) struct Walker {
    plan: WalkPlan,
    rows_target: u64,
    max_rows: u64,
    first: bool,
    pub(crate) done: bool,
    rows_done: u64,
    planned: u64,
}

#[derive(Debug)]
enum WalkPlan {
    /// No key, or nothing on either side: the whole table is one chunk.
    Whole,
    /// A single integer key: `[cur, cur + step)`, step = rows wanted / rows per key value.
    Int { cur: i128, max: i128, density: f64 },
    /// Any other key: the next boundary is looked up on the source.
    Lookup {
        next_lo: Option<Bound>,
        est_rows: u64,
    },
}

impl Walker {
    pub(crate) async fn start(checker: &Checker, job: &Job) -> Result<Walker, DbError> {
        let max_rows = if job.mode == Mode::Cross {
            CROSS_MAX_ROWS
        } else {
            MAX_CHUNK_ROWS
        };
        let mut w = Walker {
            plan: WalkPlan::Whole,
            rows_target: FIRST_CHUNK_ROWS.min(max_rows),
            max_rows,
            first: true,
            done: false,
            rows_done: 0,
            planned: 0,
        };
        if !job.has_key() {
            return Ok(w);
        }
        if !job.int_key {
            w.plan = WalkPlan::Lookup {
                next_lo: None,
                est_rows: job.src.est_rows,
            };
            return Ok(w);
        }
        let (mut lo, mut hi) = checker.source_int_span(job).await?;
        if lo.is_none() {
            (lo, hi) = checker.int_span(job, &KeyRange::all()).await?;
        }
        if let (Some(min), Some(max)) = (lo, hi) {
            let span = (max - min + 1).max(1) as f64;
            let density = if job.src.est_rows > 0 {
                (job.src.est_rows as f64 / span).clamp(1e-9, 1.0)
            } else {
                1.0
            };
            w.plan = WalkPlan::Int {
                cur: min,
                max,
                density,
            };
        }
        Ok(w)
    }

    /// The next range of the walk, or `None` when the table is covered.
    pub(crate) async fn next(
        &mut self,
        checker: &Checker,
        job: &Job,
    ) -> Result<Option<KeyRange>, DbError> {
        if self.done {
            return Ok(None);
        }
        let first = std::mem::replace(&mut self.first, false);
        self.planned += 1;
        let range = match &mut self.plan {
            WalkPlan::Whole => {
                self.done = true;
                KeyRange::all()
            }
            WalkPlan::Int { cur, max, density } => {
                let step = ((self.rows_target as f64 / *density).ceil() as i128).max(1);
                let lo = (!first).then_some(Bound::Int(*cur));
                let next = cur.saturating_add(step);
                let hi = if next > *max {
                    self.done = true;
                    None
                } else {
                    Some(Bound::Int(next))
                };
                *cur = next;
                KeyRange { lo, hi }
            }
            WalkPlan::Lookup { next_lo, .. } => {
                // Taken only once the lookup succeeded, so a failed one is simply retried.
                let lo = next_lo.clone();
                let from = KeyRange {
                    lo: lo.clone(),
                    hi: None,
                };
                let hi = checker.boundary(job, &from, self.rows_target).await?;
                if hi.is_none() {
                    self.done = true;
                }
                *next_lo = hi.clone();
                KeyRange { lo, hi }
            }
        };
        Ok(Some(range))
    }

    /// Resizes the next chunks from how long one took.
    pub(crate) fn feedback(&mut self, range: &KeyRange, outcome: &Outcome, target: Duration) {
        let rows = outcome.src.count.max(outcome.tgt.count);
        self.rows_done += outcome.src.count;
        self.resize(range, rows, outcome.elapsed, target);
    }

    fn resize(&mut self, range: &KeyRange, rows: u64, elapsed: Duration, target: Duration) {
        if let WalkPlan::Int { density, .. } = &mut self.plan
            && let (Some(Bound::Int(lo)), Some(Bound::Int(hi))) = (&range.lo, &range.hi)
        {
            let span = (hi - lo).max(1) as f64;
            if rows == 0 {
                // A gap in the keys: take longer strides until rows show up again.
                *density = (*density / 4.0).max(1e-12);
            } else {
                *density = (rows as f64 / span).clamp(1e-12, 1.0);
            }
        }
        let secs = elapsed.as_secs_f64();
        if rows == 0 || secs <= 0.0 {
            return;
        }
        let wanted = rows as f64 * target.as_secs_f64() / secs;
        let current = self.rows_target as f64;
        let next = wanted.clamp(current / 4.0, current * 4.0);
        self.rows_target = (next as u64).clamp(MIN_CHUNK_ROWS, self.max_rows);
    }

    /// An estimate of the chunks of the whole pass, for progress.
    fn total(&self, done: u64) -> u64 {
        if self.done {
            return self.planned.max(done);
        }
        let left = match &self.plan {
            WalkPlan::Whole => 1,
            WalkPlan::Int { cur, max, density } => {
                let step = ((self.rows_target as f64 / *density).ceil() as i128).max(1);
                ((max - cur).max(0) / step + 1) as u64
            }
            WalkPlan::Lookup { est_rows, .. } => {
                est_rows.saturating_sub(self.rows_done) / self.rows_target.max(1) + 1
            }
        };
        self.planned + left
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Equal,
    /// Differed once; re-checked after the lag before it counts.
    Suspect,
    /// Differed on a re-check too (or in a one-shot compare).
    Mismatch,
}

#[derive(Debug)]
struct ChunkRec {
    seq: u64,
    range: KeyRange,
    checked_at: Ts,
    status: Status,
    src: Sum,
    tgt: Sum,
    diffs: Vec<RowDiff>,
    complete: bool,
    /// The source's rows changed at the last check: re-check soon after the lag.
    changed: bool,
}

/// A table's compare state: its chunks and, during the first pass, the walker.
#[derive(Debug)]
pub(crate) struct TableState {
    pub(crate) job: Arc<Job>,
    walker: Option<Walker>,
    chunks: Vec<ChunkRec>,
    next_seq: u64,
    /// First-pass ranges whose check failed, to be checked again.
    retry: Vec<(u64, KeyRange)>,
    /// A pipelined pass holds the walker; its chunk estimate, for progress.
    pass_total: Option<u64>,
}

/// A source table with no counterpart on the target.
#[derive(Debug)]
pub(crate) struct MissingTable {
    pub(crate) name: String,
    source_rows: Option<u64>,
    observed_at: Ts,
}

/// What the compare walks: tables it can compare, and tables missing on the target.
#[derive(Debug)]
pub(crate) enum Entry {
    Table(Box<TableState>),
    Missing(MissingTable),
}

/// Reads both catalogs and pairs the tables (the heartbeat table is never compared).
pub(crate) async fn prepare(checker: &Checker) -> Result<Vec<Entry>, DbError> {
    let only = &checker.opts.tables;
    let (src, tgt) = futures::try_join!(
        catalog::discover(&checker.src, only),
        catalog::discover(&checker.tgt, &[])
    )?;
    let engines = Engines {
        src_mysql: checker.src.is_mysql(),
        tgt_mysql: checker.tgt.is_mysql(),
        client_hash: checker.opts.client_hash,
    };
    // Fixed once, so every chunk of every table sees the same window on both sides.
    let cutoff = window::cutoff(&checker.opts.window);
    let mut entries = Vec::new();
    for s in src
        .iter()
        .filter(|t| !t.name.eq_ignore_ascii_case(HEARTBEAT_TABLE))
    {
        match tgt
            .iter()
            .find(|t: &&Table| t.name.eq_ignore_ascii_case(&s.name))
        {
            Some(t) => {
                let mut job = Job::build(s, t, engines);
                let window = &checker.opts.window;
                if !window.is_whole() {
                    job.src.filter =
                        window::filter(window, cutoff.as_deref(), s, engines.src_mysql, "source")?;
                    job.tgt.filter =
                        window::filter(window, cutoff.as_deref(), t, engines.tgt_mysql, "target")?;
                    checker.probe_window(&job).await?;
                }
                entries.push(Entry::Table(Box::new(TableState {
                    job: Arc::new(job),
                    walker: None,
                    chunks: Vec::new(),
                    next_seq: 0,
                    retry: Vec::new(),
                    pass_total: None,
                })));
            }
            None => {
                let job = job_without_key(Job::build(
                    s,
                    s,
                    Engines {
                        tgt_mysql: engines.src_mysql,
                        ..engines
                    },
                ));
                let sum = checker.source_sum(&job).await?;
                entries.push(Entry::Missing(MissingTable {
                    name: s.name.clone(),
                    source_rows: Some(sum.count),
                    observed_at: now_ms(),
                }));
            }
        }
    }
    Ok(entries)
}

/// A job comparing a table with itself by count only (for tables missing on the target).
fn job_without_key(mut job: Job) -> Job {
    job.src_key.clear();
    job.tgt_key.clear();
    job.key_canon.clear();
    job.int_key = false;
    job
}

impl MissingTable {
    pub(crate) fn drift(&self) -> TableDrift {
        TableDrift {
            observed_at: self.observed_at,
            table: self.name.clone(),
            source_rows: self.source_rows,
            target_rows: Some(0),
            checksum: ChecksumState::Mismatch,
            chunks_done: Some(0),
            chunks_total: Some(0),
            differing_keys: vec![DiffKey {
                key: "(whole table: missing on the target)".into(),
                kind: DiffKind::MissingOnTarget,
            }],
            note: None,
        }
    }
}

impl TableState {
    fn first_pass_running(&self) -> bool {
        self.walker.is_some() || self.pass_total.is_some()
    }

    fn has_started(&self) -> bool {
        self.walker.is_some() || !self.chunks.is_empty()
    }

    /// Records a checked chunk. `confirm`: a first mismatch is only suspect (continuous mode).
    fn record(&mut self, seq: u64, range: KeyRange, outcome: Outcome, confirm: bool) {
        let status = if outcome.equal {
            Status::Equal
        } else if confirm {
            Status::Suspect
        } else {
            Status::Mismatch
        };
        let rec = ChunkRec {
            seq,
            range,
            checked_at: now_ms(),
            status,
            src: outcome.src,
            tgt: outcome.tgt,
            diffs: outcome.diffs,
            complete: outcome.complete,
            changed: false,
        };
        let at = self.chunks.partition_point(|c| c.seq < seq);
        self.chunks.insert(at, rec);
    }

    fn update(&mut self, idx: usize, outcome: Outcome) {
        let c = &mut self.chunks[idx];
        c.changed = outcome.src != c.src;
        c.status = match (outcome.equal, c.status) {
            (true, _) => Status::Equal,
            (false, Status::Equal) => Status::Suspect,
            (false, _) => Status::Mismatch,
        };
        c.checked_at = now_ms();
        c.src = outcome.src;
        c.tgt = outcome.tgt;
        c.diffs = outcome.diffs;
        c.complete = outcome.complete;
    }

    /// When a chunk is next due for a re-check (continuous mode).
    fn due(&self, c: &ChunkRec, opts: &DbOptions, lag_ms: i64) -> Ts {
        let after = opts.recheck_after.as_millis() as i64;
        match c.status {
            Status::Suspect => c.checked_at + after + lag_ms,
            Status::Mismatch => c.checked_at + 5 * after + lag_ms,
            Status::Equal if c.changed => c.checked_at + after + lag_ms,
            Status::Equal => c.checked_at + opts.recheck_interval.as_millis() as i64,
        }
    }

    /// The differing rows of the confirmed mismatching chunks, and whether some chunk's
    /// differences were not all named.
    pub(crate) fn row_diffs(&self) -> (Vec<RowDiff>, bool) {
        let confirmed: Vec<&ChunkRec> = self
            .chunks
            .iter()
            .filter(|c| c.status == Status::Mismatch)
            .collect();
        let mut diffs: Vec<RowDiff> = confirmed
            .iter()
            .flat_map(|c| c.diffs.iter().cloned())
            .collect();
        if self.job.mode != Mode::Pushdown {
            diffs = reconcile(diffs);
        }
        (diffs, confirmed.iter().any(|c| !c.complete))
    }

    /// The table's reading now.
    pub(crate) fn drift(&self, max_keys: usize) -> TableDrift {
        let now = now_ms();
        let job = &self.job;
        let (diffs, unexplained) = self.row_diffs();
        let suspect = self.chunks.iter().any(|c| c.status == Status::Suspect);
        let mismatch = !diffs.is_empty() || unexplained;
        let checksum = if mismatch {
            ChecksumState::Mismatch
        } else if self.first_pass_running() || suspect || !self.has_started() {
            ChecksumState::Pending
        } else if !job.has_key() {
            ChecksumState::NoPrimaryKey
        } else {
            ChecksumState::Equal
        };
        let observed_at = if self.first_pass_running() || self.chunks.is_empty() {
            now
        } else {
            self.chunks
                .iter()
                .map(|c| c.checked_at)
                .min()
                .unwrap_or(now)
        };
        let done = self.chunks.len() as u64;
        let total = match (&self.walker, self.pass_total) {
            (Some(w), _) => w.total(done),
            (None, Some(t)) => t.max(done),
            (None, None) => done,
        };
        let counted = self.has_started();
        TableDrift {
            observed_at,
            table: job.name.clone(),
            source_rows: counted.then(|| self.chunks.iter().map(|c| c.src.count).sum()),
            target_rows: counted.then(|| self.chunks.iter().map(|c| c.tgt.count).sum()),
            checksum,
            chunks_done: Some(done),
            chunks_total: Some(total),
            differing_keys: diffs
                .into_iter()
                .take(max_keys)
                .map(|d| DiffKey {
                    key: d.key,
                    kind: d.kind,
                })
                .collect(),
            note: self.job.fallback.clone(),
        }
    }
}

/// Cross engine: a row two collations put in different chunks shows up as missing in one
/// and extra in the other; pair them up (equal hashes: no difference; else: different).
fn reconcile(diffs: Vec<RowDiff>) -> Vec<RowDiff> {
    let mut out: Vec<RowDiff> = Vec::with_capacity(diffs.len());
    for d in diffs {
        let partner = out.iter().position(|o| {
            o.key == d.key
                && matches!(
                    (o.kind, d.kind),
                    (DiffKind::MissingOnTarget, DiffKind::ExtraOnTarget)
                        | (DiffKind::ExtraOnTarget, DiffKind::MissingOnTarget)
                )
        });
        match partner {
            Some(i) => {
                let o = out.remove(i);
                let (s, t, key_vals) = if o.kind == DiffKind::MissingOnTarget {
                    (o.src_hash, d.tgt_hash, o.key_vals)
                } else {
                    (d.src_hash, o.tgt_hash, d.key_vals)
                };
                if s != t {
                    out.insert(
                        i,
                        RowDiff {
                            key: d.key,
                            kind: DiffKind::Different,
                            src_hash: s,
                            tgt_hash: t,
                            key_vals,
                        },
                    );
                }
            }
            None => out.push(d),
        }
    }
    out
}

/// Runs (or continues) a table's first pass until it is done or `deadline` passes, with up
/// to `max_concurrent` queries in flight per side. `on_chunk` sees the state after every
/// chunk. Ranges whose check failed are kept and checked first on the next call.
pub(crate) async fn first_pass(
    checker: &Checker,
    st: &mut TableState,
    deadline: Option<Instant>,
    confirm: bool,
    on_chunk: &mut (dyn FnMut(&TableState) + Send),
) -> Result<(), DbError> {
    if !st.has_started() {
        st.walker = Some(Walker::start(checker, &st.job).await?);
    }
    let cap = checker.opts.max_keys.max(1);
    while let Some((seq, range)) = st.retry.pop() {
        match checker.check(&st.job, &range, cap).await {
            Ok(outcome) => {
                st.record(seq, range, outcome, confirm);
                on_chunk(st);
            }
            Err(e) => {
                st.retry.push((seq, range));
                return Err(e);
            }
        }
    }
    if st.job.mode != Mode::Cross && st.job.has_key() {
        pipelined(checker, st, deadline, confirm, on_chunk).await?;
    } else {
        lockstep(checker, st, deadline, confirm, on_chunk).await?;
    }
    if st.retry.is_empty() && st.walker.as_ref().is_some_and(|w| w.done) {
        st.walker = None;
    }
    Ok(())
}

/// Chunks checked on both sides together (cross engine: the rows of a chunk are joined).
async fn lockstep(
    checker: &Checker,
    st: &mut TableState,
    deadline: Option<Instant>,
    confirm: bool,
    on_chunk: &mut (dyn FnMut(&TableState) + Send),
) -> Result<(), DbError> {
    let parallel = checker.opts.max_concurrent.max(1);
    let cap = checker.opts.max_keys.max(1);
    let target = checker.opts.chunk_time;
    let mut inflight = FuturesUnordered::new();
    // On an error no new chunk starts, the ones in flight finish, and failed ranges are kept.
    let mut failed: Option<DbError> = None;
    loop {
        while failed.is_none()
            && inflight.len() < parallel
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            let Some(w) = st.walker.as_mut() else { break };
            if let Err(e) = checker.throttle().await {
                failed = Some(e);
                break;
            }
            let next = match w.next(checker, &st.job).await {
                Ok(range) => range,
                Err(e) => {
                    failed = Some(e);
                    None
                }
            };
            let Some(range) = next else { break };
            let seq = st.next_seq;
            st.next_seq += 1;
            let job = Arc::clone(&st.job);
            inflight.push(async move {
                let outcome = checker.check(&job, &range, cap).await;
                (seq, range, outcome)
            });
        }
        let Some((seq, range, outcome)) = inflight.next().await else {
            break;
        };
        match outcome {
            Ok(outcome) => {
                if let Some(w) = st.walker.as_mut() {
                    w.feedback(&range, &outcome, target);
                }
                st.record(seq, range, outcome, confirm);
                on_chunk(st);
            }
            Err(e) => {
                st.retry.push((seq, range));
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The ranges of a pipelined pass, planned on demand by whichever side gets there first.
struct Planner {
    walker: Walker,
    ranges: Vec<KeyRange>,
}

/// Same engine with a key: each side walks the same planned ranges on its own, so neither
/// waits for the other at chunk boundaries (the pass takes as long as the slower side, not
/// the sum of each chunk's slower side); a chunk is compared when both sums are in.
async fn pipelined(
    checker: &Checker,
    st: &mut TableState,
    deadline: Option<Instant>,
    confirm: bool,
    on_chunk: &mut (dyn FnMut(&TableState) + Send),
) -> Result<(), DbError> {
    let Some(walker) = st.walker.take() else {
        return Ok(());
    };
    let job = Arc::clone(&st.job);
    let base = st.next_seq;
    let cap = checker.opts.max_keys.max(1);
    let target = checker.opts.chunk_time;
    st.pass_total = Some(walker.total(st.chunks.len() as u64));
    let per_side = checker.opts.max_concurrent.max(1);
    let planner = tokio::sync::Mutex::new(Planner {
        walker,
        ranges: Vec::new(),
    });
    let cursors = [AtomicUsize::new(0), AtomicUsize::new(0)];
    // Naming the differing rows comes first: while a chunk is bisected the sides start no
    // new chunk (the bisection would otherwise queue behind them for every level).
    let gate = tokio::sync::RwLock::new(());
    let (tx, mut rx) = mpsc::unbounded_channel::<(bool, usize, Sum, Duration)>();

    let side = |source: bool, tx: mpsc::UnboundedSender<(bool, usize, Sum, Duration)>| {
        let (job, planner, cursors, gate) = (&job, &planner, &cursors, &gate);
        async move {
            loop {
                let i = cursors[usize::from(source)].fetch_add(1, Ordering::Relaxed);
                let range = {
                    let mut p = planner.lock().await;
                    // Planned ranges are done by both sides, deadline or not, so both
                    // always cover the same ones.
                    while p.ranges.len() <= i
                        && !p.walker.done
                        && deadline.is_none_or(|d| Instant::now() < d)
                    {
                        let Planner { walker, ranges } = &mut *p;
                        match walker.next(checker, job).await? {
                            Some(r) => ranges.push(r),
                            None => break,
                        }
                    }
                    match p.ranges.get(i) {
                        Some(r) => r.clone(),
                        None => break,
                    }
                };
                checker.throttle().await?;
                let (sum, elapsed) = {
                    let _turn = gate.read().await;
                    checker.sum(job, source, &range).await?
                };
                // The collector outlives the sides; a send cannot fail before it is done.
                let _ = tx.send((source, i, sum, elapsed));
            }
            Ok::<(), DbError>(())
        }
    };
    let mut sides = Vec::new();
    for _ in 0..per_side {
        sides.push(side(true, tx.clone()));
        sides.push(side(false, tx.clone()));
    }
    drop(tx);

    let collect = async {
        let mut halves: HashMap<usize, [Option<(Sum, Duration)>; 2]> = HashMap::new();
        while let Some((source, i, sum, elapsed)) = rx.recv().await {
            let slot = halves.entry(i).or_default();
            slot[usize::from(source)] = Some((sum, elapsed));
            let [Some((t, tt)), Some((s, ts))] = *slot else {
                continue;
            };
            halves.remove(&i);
            let range = {
                let mut p = planner.lock().await;
                let range = p.ranges[i].clone();
                p.walker.rows_done += s.count;
                p.walker
                    .resize(&range, s.count.max(t.count), ts.max(tt), target);
                st.pass_total = Some(p.walker.total(st.chunks.len() as u64 + 1));
                range
            };
            tracing::debug!(
                table = %job.name,
                chunk = i,
                rows = s.count,
                source_ms = ts.as_millis() as u64,
                target_ms = tt.as_millis() as u64,
                "chunk checked"
            );
            let outcome = if s == t {
                checker
                    .outcome(&job, &range, (s, t, ts.max(tt)), cap)
                    .await?
            } else {
                let _all = gate.write().await;
                checker
                    .outcome(&job, &range, (s, t, ts.max(tt)), cap)
                    .await?
            };
            st.record(base + i as u64, range, outcome, confirm);
            on_chunk(st);
        }
        Ok::<(), DbError>(())
    };
    let result = futures::try_join!(futures::future::try_join_all(sides), collect);

    let Planner { walker, ranges } = planner.into_inner();
    st.walker = Some(walker);
    st.pass_total = None;
    st.next_seq = base + ranges.len() as u64;
    if result.is_err() {
        for (i, range) in ranges.into_iter().enumerate() {
            let seq = base + i as u64;
            if !st.chunks.iter().any(|c| c.seq == seq) {
                st.retry.push((seq, range));
            }
        }
    }
    result.map(|_| ())
}

/// One-shot compare of every table (or `opts.tables`): both sides in parallel, chunk by
/// chunk; `progress` sees each table's reading after every chunk.
pub async fn compare(
    source: &super::Db,
    target: &super::Db,
    opts: &DbOptions,
    progress: impl FnMut(&TableDrift) + Send,
) -> Result<Vec<TableDrift>, DbError> {
    compare_observed(source, target, opts, progress, watch::channel(None).0).await
}

/// [`compare`], publishing its throttling on `throttled` ("throttled: lag 4.2 s > 2 s"
/// while paused, `None` while running).
pub async fn compare_observed(
    source: &super::Db,
    target: &super::Db,
    opts: &DbOptions,
    progress: impl FnMut(&TableDrift) + Send,
    throttled: watch::Sender<Option<String>>,
) -> Result<Vec<TableDrift>, DbError> {
    let checker = Checker::observed(source.clone(), target.clone(), opts.clone(), throttled);
    let done = compare_tables(&checker, progress).await?;
    Ok(done.into_iter().map(|(d, _)| d).collect())
}

/// The one-shot compare, keeping each compared table's state (for repair SQL).
pub(crate) async fn compare_tables(
    checker: &Checker,
    mut progress: impl FnMut(&TableDrift) + Send,
) -> Result<Vec<(TableDrift, Option<Box<TableState>>)>, DbError> {
    let entries = prepare(checker).await?;
    let mut out = Vec::with_capacity(entries.len());
    let max_keys = checker.opts.max_keys;
    for entry in entries {
        match entry {
            Entry::Missing(m) => {
                let d = m.drift();
                progress(&d);
                out.push((d, None));
            }
            Entry::Table(mut st) => {
                first_pass(checker, &mut st, None, false, &mut |st| {
                    progress(&st.drift(max_keys))
                })
                .await?;
                out.push((st.drift(max_keys), Some(st)));
            }
        }
    }
    Ok(out)
}

/// The continuous compare's state between polls of the Drift source.
#[derive(Debug, Default)]
pub(crate) struct Continuous {
    entries: Option<Vec<Entry>>,
}

impl Continuous {
    /// Works until `deadline`: first due re-checks of suspect and changed chunks, then the
    /// first passes, then chunks older than `recheck_interval`. Returns each table's reading.
    pub(crate) async fn work(
        &mut self,
        checker: &Checker,
        deadline: Instant,
        lag_s: Option<f64>,
        paused: bool,
    ) -> Result<Vec<TableDrift>, DbError> {
        if self.entries.is_none() {
            self.entries = Some(prepare(checker).await?);
        }
        let max_keys = checker.opts.max_keys;
        let lag_ms = (lag_s.unwrap_or(0.0).max(0.0) * 1000.0) as i64;
        let entries = self.entries.get_or_insert_with(Vec::new);
        while !paused && Instant::now() < deadline {
            let now = now_ms();
            // The most overdue re-check, urgent ones (suspect, changed) first.
            let mut best: Option<(usize, usize, bool, Ts)> = None;
            for (ti, e) in entries.iter().enumerate() {
                let Entry::Table(st) = e else { continue };
                for (ci, c) in st.chunks.iter().enumerate() {
                    let due = st.due(c, &checker.opts, lag_ms);
                    if due > now {
                        continue;
                    }
                    let urgent = c.status != Status::Equal || c.changed;
                    let better = match best {
                        None => true,
                        Some((_, _, bu, bd)) => (urgent && !bu) || (urgent == bu && due < bd),
                    };
                    if better {
                        best = Some((ti, ci, urgent, due));
                    }
                }
            }
            let first_pass_table = entries.iter().position(
                |e| matches!(e, Entry::Table(st) if st.first_pass_running() || !st.has_started()),
            );
            match (best, first_pass_table) {
                (Some((ti, ci, true, _)), _) | (Some((ti, ci, _, _)), None) => {
                    let Entry::Table(st) = &mut entries[ti] else {
                        continue;
                    };
                    let range = st.chunks[ci].range.clone();
                    let outcome = checker.check(&st.job, &range, max_keys.max(1)).await?;
                    st.update(ci, outcome);
                }
                (_, Some(ti)) => {
                    let Entry::Table(st) = &mut entries[ti] else {
                        continue;
                    };
                    first_pass(checker, st, Some(deadline), true, &mut |_| {}).await?;
                }
                (None, None) => break,
            }
        }
        Ok(entries
            .iter()
            .map(|e| match e {
                Entry::Table(st) => st.drift(max_keys),
                Entry::Missing(m) => m.drift(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(key: &str, kind: DiffKind, s: Option<u64>, t: Option<u64>) -> RowDiff {
        RowDiff {
            key: key.into(),
            kind,
            src_hash: s,
            tgt_hash: t,
            key_vals: vec![],
        }
    }

    #[test]
    fn misplaced_rows_reconcile() {
        let out = reconcile(vec![
            diff("k=B", DiffKind::MissingOnTarget, Some(1), None),
            diff("k=C", DiffKind::MissingOnTarget, Some(3), None),
            diff("k=B", DiffKind::ExtraOnTarget, None, Some(1)),
            diff("k=C", DiffKind::ExtraOnTarget, None, Some(4)),
        ]);
        assert_eq!(
            out,
            vec![diff("k=C", DiffKind::Different, Some(3), Some(4))]
        );
    }
}
