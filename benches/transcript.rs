//! Transcript benchmarks for a 24-hour session (≈ 1.7 million events at ~20 a second, the
//! event mix of the rehearsal plan's pollers): durable append throughput (target ≥ 20,000
//! events/s with group commit), replay open and seeking to any point right after opening
//! (target ≤ 1 s together) from the seek file the live session leaves beside the transcript,
//! the background pass that checks it, the same without a seek file (first and second
//! open), and a full `verify` and `report`.
//!
//! `cargo bench --bench transcript` (`-- --events N` for another size, `--keep DIR` to keep
//! the generated file).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover::event::*;
use cutover::plan::{self, Plan};
use cutover::replay::{Replay, ReplayOptions};
use cutover::state::State;
use cutover::transcript::{Header, Recorder, seek};

const START: Ts = 1_750_000_000_000;

fn plan() -> Arc<Plan> {
    Arc::new(plan::parse("rehearsal.toml", plan::REHEARSAL_PLAN).expect("the shipped plan parses"))
}

/// One second of a live session: what the rehearsal plan's pollers produce (ticks, the
/// task, table statistics, metrics, drift per table, heartbeat, DNS, both databases, the
/// world's measures), about 20 events.
fn second(t: Ts, s: i64, out: &mut Vec<Event>) {
    let tables = ["customers", "orders", "payments"];
    let lag = 0.2 + ((s % 97) as f64) / 400.0;
    out.push(Event::Tick { at: t });
    out.push(Event::Observed {
        at: t + 10,
        reading: Reading::Task(TaskReading {
            observed_at: t + 5,
            task: "shop-cdc".into(),
            status: "running".into(),
            stop_reason: None,
            full_load_pct: Some(100.0),
            tables_loaded: Some(3),
            tables_loading: Some(0),
            tables_queued: Some(0),
            tables_errored: Some(0),
        }),
    });
    out.push(Event::Observed {
        at: t + 20,
        reading: Reading::TableStats {
            observed_at: t + 15,
            tables: tables
                .iter()
                .map(|name| TableStat {
                    table: (*name).into(),
                    full_load_rows: Some(400),
                    inserts: Some(s as u64 * 13),
                    updates: Some(s as u64 * 7),
                    deletes: Some(s as u64),
                    validation_state: Some("Validated".into()),
                    validation_pending: Some(0),
                    validation_failed: Some(0),
                    validation_suspended: Some(0),
                    table_state: Some("Table completed".into()),
                })
                .collect(),
        },
    });
    for half in 0..2 {
        out.push(Event::Observed {
            at: t + 30 + half * 500,
            reading: Reading::Metrics {
                observed_at: t + 25 + half * 500,
                series: [
                    "CDCLatencySource",
                    "CDCLatencyTarget",
                    "CDCIncomingChanges",
                    "WritesSource",
                ]
                .iter()
                .map(|n| MetricSeries {
                    name: (*n).into(),
                    unit: None,
                    points: vec![(t + half * 500, lag)],
                })
                .collect(),
            },
        });
    }
    for (i, name) in tables.iter().enumerate() {
        for half in 0..2 {
            out.push(Event::Observed {
                at: t + 100 + i as i64 * 10 + half * 500,
                reading: Reading::Drift(TableDrift {
                    observed_at: t + 95 + half * 500,
                    table: (*name).into(),
                    source_rows: Some(400 + s as u64),
                    target_rows: Some(400 + s as u64),
                    checksum: ChecksumState::Equal,
                    chunks_done: Some(4),
                    chunks_total: Some(4),
                    differing_keys: Vec::new(),
                    note: None,
                }),
            });
        }
    }
    for half in 0..2 {
        out.push(Event::Observed {
            at: t + 200 + half * 500,
            reading: Reading::Heartbeat {
                observed_at: t + 199 + half * 500,
                lag_s: lag,
            },
        });
    }
    out.push(Event::Observed {
        at: t + 300,
        reading: Reading::Dns(Box::new(DnsReading {
            observed_at: t + 299,
            name: "db.shop.internal.".into(),
            record_type: "CNAME".into(),
            value: Some("shop-mysql.source.internal.".into()),
            ttl: Some(3),
            change_status: Some("INSYNC".into()),
            change_id: None,
            resolved: None,
            sets: Vec::new(),
            authoritative: None,
            authoritative_error: None,
        })),
    });
    for side in [Side::Source, Side::Target] {
        for half in 0..2 {
            out.push(Event::Observed {
                at: t + 400 + half * 500,
                reading: Reading::Database(DatabaseReading {
                    observed_at: t + 399 + half * 500,
                    side,
                    server: Some("SQLite 3.46 (rehearsal)".into()),
                    read_only: Some(side == Side::Target),
                    connections: Some(6),
                    longest_trx_s: Some(0.0),
                    writes_per_s: Some(40.0),
                }),
            });
        }
    }
    out.push(Event::WorldMeasured {
        at: t + 900,
        measures: WorldMeasures {
            writes_attempted: s as u64 * 40,
            writes_acked: s as u64 * 40,
            ..WorldMeasures::default()
        },
    });
}

/// The events of `n` (about) of a session: readings every second, a step confirmed and run
/// every few hours, an API throttle now and then.
pub fn session(n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n + 64);
    out.push(Event::SessionStarted {
        at: START,
        mode: "bench".into(),
        operator: "bench".into(),
    });
    let steps = [
        "preflight",
        "freeze",
        "drain",
        "stop-replication",
        "flip-dns",
        "unfreeze",
        "post-checks",
    ];
    let mut s = 0i64;
    while out.len() < n {
        let t = START + 1000 + s * 1000;
        second(t, s, &mut out);
        if s % 3600 == 1800 {
            out.push(Event::SourceFailed {
                at: t + 950,
                source: SourceKind::Metrics,
                error: "ThrottlingException: Rate exceeded".into(),
            });
        }
        let hour = s / 3600;
        if s % 3600 == 3000 && (hour as usize) < steps.len() {
            let step = steps[hour as usize].to_string();
            out.push(Event::StepConfirmed {
                at: t + 960,
                step: step.clone(),
                by: "bench".into(),
            });
            out.push(Event::ActionStarted {
                at: t + 970,
                step: step.clone(),
                direction: Direction::Do,
                description: "bench".into(),
            });
            out.push(Event::ActionFinished {
                at: t + 990,
                step,
                direction: Direction::Do,
                ok: true,
                message: "ok".into(),
            });
        }
        s += 1;
    }
    out.truncate(n);
    out
}

fn header(plan: &Plan) -> Header {
    Header {
        created_at: START,
        mode: "bench".into(),
        operator: "bench".into(),
        host: "bench".into(),
        program_version: env!("CARGO_PKG_VERSION").into(),
        plan_name: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        plan_text: plan.source_text.clone(),
        resumed_from: None,
        approvers: Vec::new(),
        aws: None,
    }
}

fn write(dir: &Path, events: &[Event], batch: usize) -> (PathBuf, Duration) {
    let plan = plan();
    let mut rec = Recorder::create(dir, header(&plan)).expect("create transcript");
    let t = Instant::now();
    for chunk in events.chunks(batch) {
        rec.append(chunk).expect("append");
    }
    (rec.path().to_path_buf(), t.elapsed())
}

/// Records a session as the live cockpit does: durable group commits, the fold, and a seek
/// checkpoint beside the transcript every `seek::EVERY` events. Returns the path, the time
/// spent appending and the time spent checkpointing.
fn record_live(dir: &Path, events: &[Event]) -> (PathBuf, Duration, Duration) {
    const BATCH: usize = 1000;
    assert!(
        seek::EVERY.is_multiple_of(BATCH),
        "checkpoints fall between batches"
    );
    let plan = plan();
    let mut rec = Recorder::create(dir, header(&plan)).expect("create transcript");
    let mut checkpoints = seek::Live::default();
    let mut state = State::new(plan);
    let (mut appending, mut checkpointing) = (Duration::ZERO, Duration::ZERO);
    for chunk in events.chunks(BATCH) {
        let t = Instant::now();
        rec.append(chunk).expect("append");
        appending += t.elapsed();
        for ev in chunk {
            let _ = state.apply(ev);
        }
        let t = Instant::now();
        checkpoints.after_fold(&rec, &state);
        checkpointing += t.elapsed();
    }
    (rec.path().to_path_buf(), appending, checkpointing)
}

/// Seeks to the ends, the middle and random points, each timed from a standing start.
fn seeks(replay: &mut Replay, count: usize) -> (Duration, Duration) {
    let n = replay.len();
    let mut times = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let target = match i {
            0 => n,
            1 => 1,
            2 => n - 1,
            3 => n / 2,
            _ => (x % n as u64) as usize,
        };
        let t = Instant::now();
        let st = replay.state_at(target).expect("seek");
        assert_eq!(st.events as usize, target);
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 1_700_000usize;
    let mut keep: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "--keep" => keep = args.next().map(PathBuf::from),
            _ => {} // cargo bench passes --bench
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let events = session(n);
    println!("transcript bench: {} events", events.len());

    // Durable appends at several group-commit sizes (each batch is one fdatasync).
    for batch in [1usize, 10, 100] {
        let sample = &events[..(batch * 300).min(events.len())];
        let sub = tempfile::tempdir().expect("tempdir");
        let (_, took) = write(sub.path(), sample, batch);
        println!(
            "append: batch {batch:>4}: {:>9.0} events/s durable ({} events in {:.2?})",
            sample.len() as f64 / took.as_secs_f64(),
            sample.len(),
            took
        );
    }
    let (path, appending, checkpointing) = record_live(&dir, &events);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let seek_bytes = std::fs::metadata(seek::beside(&path))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "append: batch 1000: {:>9.0} events/s durable; file {} MB ({} events in {:.2?})",
        events.len() as f64 / appending.as_secs_f64(),
        bytes / 1_000_000,
        events.len(),
        appending
    );
    println!(
        "seek file: {} checkpoints written live in {checkpointing:.2?}, {} MB beside the transcript",
        events.len() / seek::EVERY,
        seek_bytes / 1_000_000
    );
    drop(events);
    let cache = dir.join("seek-cache");
    let opts = || ReplayOptions {
        seek_cache: Some(cache.clone()),
        ..ReplayOptions::default()
    };

    // Right after opening a transcript recorded live: the seek file's checkpoints serve the
    // seeks while the background pass is still checking the chain and the checkpoints.
    let t = Instant::now();
    let mut replay = Replay::open_with(&path, opts()).expect("open for replay");
    let open = t.elapsed();
    assert_eq!(
        replay.seek_file(),
        Some(seek::beside(&path).as_path()),
        "the live recording left a seek file"
    );
    println!(
        "open: {} events indexed, seek file listed, ready to draw, in {open:.2?}",
        replay.len()
    );
    let n = replay.len();
    let (median, max) = seeks(&mut replay, 20);
    println!(
        "seek right after open (seek file, background pass running): 20 seeks to the ends, the middle and random points: median {median:.2?}, max {max:.2?}; open + slowest seek {:.2?}",
        open + max
    );
    let t = Instant::now();
    replay.wait_for_checkpoints();
    println!(
        "background pass (parse, chain check, fold, compare each checkpoint): done {:.2?} later; seek-file problems: {:?}; chain: {:?}",
        t.elapsed(),
        replay.seek_problem(),
        replay.chain()
    );
    let (median, max) = seeks(&mut replay, 60);
    println!("seek after the pass: 60 seeks: median {median:.2?}, max {max:.2?}");
    drop(replay);

    // A transcript copied without its seek file: the first replay folds it once (a far seek
    // waits for that) and keeps the checkpoints in the cache; the next opens seek at once.
    let bare = dir.join("copied.jsonl");
    std::fs::rename(&path, &bare).expect("move the transcript away from its seek file");
    let t = Instant::now();
    let mut replay = Replay::open_with(&bare, opts()).expect("open for replay");
    let open = t.elapsed();
    let t = Instant::now();
    replay.state_at(n / 20).expect("early seek");
    let early = t.elapsed();
    let t = Instant::now();
    replay.state_at(n).expect("far seek");
    let far = t.elapsed();
    replay.wait_for_checkpoints();
    let built = t.elapsed();
    println!(
        "no seek file: open {open:.2?}; seek to event {} (folding from the start) {early:.2?}; seek to the end (waits for the background pass) {far:.2?}; pass done after {built:.2?} ({:.0} events/s)",
        n / 20,
        n as f64 / (early + built).as_secs_f64()
    );
    drop(replay);
    let t = Instant::now();
    let mut replay = Replay::open_with(&bare, opts()).expect("open for replay");
    let open = t.elapsed();
    let (median, max) = seeks(&mut replay, 20);
    println!(
        "reopened (checkpoints from the cache): open {open:.2?}; 20 seeks: median {median:.2?}, max {max:.2?}; from {}",
        replay
            .seek_file()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "nowhere".into())
    );
    drop(replay);
    std::fs::rename(&bare, &path).expect("move the transcript back");

    // The audit and the postmortem read the whole file once each.
    let t = Instant::now();
    let v = cutover::transcript::verify::verify(&path);
    assert!(v.is_intact(), "{}", v.render());
    println!(
        "verify: {} records chain-checked and schema-checked in {:.2?}",
        v.intact_records,
        t.elapsed()
    );
    let t = Instant::now();
    let md = cutover::report::report(&path, cutover::report::Format::Md).expect("report");
    println!(
        "report: {} bytes of Markdown in {:.2?}",
        md.len(),
        t.elapsed()
    );
    if keep.is_some() {
        println!("kept {}", path.display());
    }
}
