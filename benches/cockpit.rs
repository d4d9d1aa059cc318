//! Cockpit benchmarks: drawing a frame with 500 tables and 20 metrics (target ≤ 2 ms), folding
//! events, and group-committed transcript appends (target ≥ 20,000 durable events/s).
//!
//! `cargo bench --bench cockpit`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cutover::event::{Event, MetricSeries, Reading};
use cutover::transcript::{Header, Recorder};
use cutover::ui::{self, Mode, Theme, UiState};

fn draw(c: &mut Criterion) {
    let state = ui::bench::bench_state(500, 20);
    let theme = Theme::load(None).expect("the default theme loads");
    let mut group = c.benchmark_group("draw");
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        let ui_state = UiState::new(
            Mode::Drive,
            "bench".into(),
            Some("sessions/bench.jsonl".into()),
        );
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        group.bench_function(format!("frame_500_tables_20_metrics_{w}x{h}"), |b| {
            b.iter(|| {
                terminal
                    .draw(|f| ui::draw(f, black_box(&state), &ui_state, &theme))
                    .expect("draw");
            })
        });
    }
    group.finish();
}

fn fold(c: &mut Criterion) {
    let base = ui::bench::bench_state(500, 20);
    let start = base.now;
    let events: Vec<Event> = (0..10_000i64)
        .map(|i| Event::Observed {
            at: start + i,
            reading: Reading::Metrics {
                observed_at: start + i,
                series: vec![MetricSeries {
                    name: "CDCLatencyTarget".into(),
                    unit: Some("s".into()),
                    points: vec![(start + i, (i % 3) as f64)],
                }],
            },
        })
        .collect();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("metric_readings_500_tables", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| {
                for e in &events {
                    black_box(s.apply(e));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn transcript(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = Header {
        created_at: 1_700_000_000_000,
        mode: "bench".into(),
        operator: "bench".into(),
        host: "bench".into(),
        program_version: "0".into(),
        plan_name: "bench".into(),
        plan_hash: "0".into(),
        plan_text: String::new(),
        resumed_from: None,
        approvers: Vec::new(),
        aws: None,
    };
    let state = ui::bench::bench_state(20, 5);
    // A realistic mix: drift readings, metrics, ticks.
    let sample: Vec<Event> = state
        .tables
        .values()
        .filter_map(|t| t.drift.clone())
        .map(|d| Event::Observed {
            at: d.observed_at,
            reading: Reading::Drift(d),
        })
        .chain((0..20).map(|i| Event::Tick {
            at: 1_700_000_000_000 + i,
        }))
        .collect();
    let mut rec = Recorder::create(dir.path(), header).expect("recorder");
    let mut group = c.benchmark_group("transcript");
    for batch in [100usize, 1000] {
        let events: Vec<Event> = sample.iter().cycle().take(batch).cloned().collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("durable_append_batch_{batch}"), |b| {
            b.iter(|| rec.append(black_box(&events)).expect("append"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = draw, fold, transcript
}
criterion_main!(benches);
