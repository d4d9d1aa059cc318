//! A large, deterministic state for measuring the draw (`benches/cockpit.rs`): many tables,
//! many metrics with full histories, a full log, the drain step blocked on a mismatch.
//! Pure: fixed timestamps, no clock, no I/O.

use std::sync::Arc;

use cutover_core::event::{
    ChecksumState, DatabaseReading, DiffKey, DiffKind, Direction, DnsReading, Event, MetricSeries,
    Reading, Side, TableDrift, TableStat, TaskReading, Ts, WorldMeasures,
};
use cutover_core::plan::rehearsal_plan;
use cutover_core::state::{HISTORY, LOG_LINES, State};

/// 2026-01-01T00:00:00Z: a fixed origin so every run draws the same frame.
pub const BENCH_T0: Ts = 1_767_225_600_000;

/// A state with `tables` tables (every 50th mismatching) and `metrics` series of
/// `HISTORY` points each, mid-cutover.
pub fn bench_state(tables: usize, metrics: usize) -> State {
    let mut st = State::new(Arc::new(rehearsal_plan()));
    let t0 = BENCH_T0;
    let mut at = t0;
    let apply = |st: &mut State, ev: Event| {
        st.apply(&ev);
    };
    apply(
        &mut st,
        Event::SessionStarted {
            at,
            mode: "rehearsal".into(),
            operator: "bench".into(),
        },
    );
    for (i, id) in ["preflight", "freeze"].into_iter().enumerate() {
        at = t0 + 10_000 * (i as Ts + 1);
        apply(
            &mut st,
            Event::ActionStarted {
                at,
                step: id.into(),
                direction: Direction::Do,
                description: id.into(),
            },
        );
        apply(
            &mut st,
            Event::ActionFinished {
                at: at + 500,
                step: id.into(),
                direction: Direction::Do,
                ok: true,
                message: "ok".into(),
            },
        );
    }
    at = t0 + 60_000;
    let names: Vec<String> = (0..tables).map(|i| format!("shop.table_{i:04}")).collect();
    let stats = names
        .iter()
        .enumerate()
        .map(|(i, name)| TableStat {
            table: name.clone(),
            full_load_rows: Some(10_000 + i as u64),
            inserts: Some(i as u64),
            updates: Some(0),
            deletes: Some(0),
            validation_state: Some(
                if i % 40 == 7 {
                    "Pending records"
                } else {
                    "Validated"
                }
                .into(),
            ),
            validation_pending: Some(if i % 40 == 7 { 12 } else { 0 }),
            validation_failed: Some(0),
            validation_suspended: Some(0),
            table_state: Some("Table completed".into()),
        })
        .collect();
    apply(
        &mut st,
        Event::Observed {
            at,
            reading: Reading::TableStats {
                observed_at: at,
                tables: stats,
            },
        },
    );
    for (i, name) in names.iter().enumerate() {
        let mismatch = i % 50 == 3;
        let rows = 10_000 + i as u64;
        apply(
            &mut st,
            Event::Observed {
                at,
                reading: Reading::Drift(TableDrift {
                    observed_at: at,
                    table: name.clone(),
                    source_rows: Some(rows),
                    target_rows: Some(if mismatch { rows - 1 } else { rows }),
                    checksum: if mismatch {
                        ChecksumState::Mismatch
                    } else {
                        ChecksumState::Equal
                    },
                    chunks_done: Some(10),
                    chunks_total: Some(10),
                    differing_keys: if mismatch {
                        vec![DiffKey {
                            key: format!("id={}", 40 + i),
                            kind: DiffKind::MissingOnTarget,
                        }]
                    } else {
                        Vec::new()
                    },
                    note: None,
                }),
            },
        );
    }
    let mut series: Vec<MetricSeries> = Vec::with_capacity(metrics);
    for m in 0..metrics {
        let name = match m {
            0 => "CDCLatencySource".to_string(),
            1 => "CDCLatencyTarget".to_string(),
            2 => "CDCIncomingChanges".to_string(),
            _ => format!("Metric{m:02}"),
        };
        let points = (0..HISTORY)
            .map(|k| {
                let ts = at - (HISTORY - k) as Ts * 1000;
                (ts, ((k * 7 + m * 3) % 13) as f64 / 4.0)
            })
            .collect();
        series.push(MetricSeries {
            name,
            unit: Some("s".into()),
            points,
        });
    }
    apply(
        &mut st,
        Event::Observed {
            at,
            reading: Reading::Metrics {
                observed_at: at,
                series,
            },
        },
    );
    apply(
        &mut st,
        Event::Observed {
            at,
            reading: Reading::Task(TaskReading {
                observed_at: at,
                task: "shop-cdc".into(),
                status: "running".into(),
                stop_reason: None,
                full_load_pct: Some(100.0),
                tables_loaded: Some(tables as u32),
                tables_loading: Some(0),
                tables_queued: Some(0),
                tables_errored: Some(0),
            }),
        },
    );
    apply(
        &mut st,
        Event::Observed {
            at,
            reading: Reading::Dns(Box::new(DnsReading {
                observed_at: at,
                name: "db.shop.internal.".into(),
                record_type: "CNAME".into(),
                value: Some("shop-mysql.source.internal.".into()),
                ttl: Some(3),
                change_status: Some("INSYNC".into()),
                change_id: None,
                resolved: Some("shop-mysql.source.internal.".into()),
                sets: Vec::new(),
                authoritative: None,
                authoritative_error: None,
            })),
        },
    );
    for side in [Side::Source, Side::Target] {
        apply(
            &mut st,
            Event::Observed {
                at,
                reading: Reading::Database(DatabaseReading {
                    observed_at: at,
                    side,
                    server: Some("bench".into()),
                    read_only: Some(true),
                    connections: Some(12),
                    longest_trx_s: Some(0.0),
                    writes_per_s: Some(0.0),
                }),
            },
        );
    }
    apply(
        &mut st,
        Event::Observed {
            at,
            reading: Reading::Heartbeat {
                observed_at: at,
                lag_s: 0.2,
            },
        },
    );
    for k in 0..LOG_LINES {
        apply(
            &mut st,
            Event::Note {
                at: at + k as Ts,
                text: format!("bench log line {k}"),
            },
        );
    }
    apply(
        &mut st,
        Event::WorldMeasured {
            at: at + LOG_LINES as Ts,
            measures: WorldMeasures {
                writes_refused: 120,
                downtime_s: 12.5,
                ..WorldMeasures::default()
            },
        },
    );
    st
}
