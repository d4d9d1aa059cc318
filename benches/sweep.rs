//! Seeds per second of `rehearse --sweep` (every fault drawn from each seed, one rehearsal
//! per core at a time). `SWEEP_SEEDS` sets how many (default 100).

use std::sync::Arc;

fn main() {
    let count = std::env::var("SWEEP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let opts = cutover::sweep::SweepOptions {
        plan: Arc::new(cutover::plan::rehearsal_plan()),
        plan_path: None,
        first_seed: 1,
        count,
        pool: cutover::sim::Fault::ALL.to_vec(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let report = cutover::sweep::run(&opts, |_| {});
    println!(
        "sweep: {} seeds in {:.2}s on {} thread(s): {:.1} seeds/s ({:.3}s a seed), {} violation(s)",
        report.seeds,
        report.wall_s,
        opts.jobs,
        report.seeds_per_s,
        report.wall_s / report.seeds.max(1) as f64 * opts.jobs as f64,
        report.violations.len()
    );
}
