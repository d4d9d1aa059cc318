//! `cutover rehearse --sweep N`: many autopilot rehearsals on simulated time, each seed
//! drawing its own faults, every run checked against the safety rules.
//!
//! A run is a pure function of (plan, seed, faults) under the simulated clock, so a
//! violation is reproduced exactly by the one command printed beside it. The rules are
//! checked from what the session recorded (each ingested batch and the state it left) and
//! from the world at the end, not from the autopilot's own opinion of itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use serde::Serialize;

use crate::autopilot::Summary;
use crate::clock::ClockKind;
use crate::event::{Direction, Event, Ts};
use crate::plan::Plan;
use crate::rehearse::{self, Rehearsal};
use crate::sim::Fault;
use crate::state::{GateState, State};

/// What to sweep.
#[derive(Clone)]
pub struct SweepOptions {
    pub plan: Arc<Plan>,
    /// The plan file given with `--plan`, for the reproducing command.
    pub plan_path: Option<String>,
    pub first_seed: u64,
    pub count: u64,
    /// The faults each seed draws its combination from.
    pub pool: Vec<Fault>,
    /// Rehearsals at once.
    pub jobs: usize,
}

/// One broken safety rule.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Violation {
    pub seed: u64,
    pub faults: Vec<String>,
    pub rule: String,
    pub detail: String,
    /// The one command that runs this rehearsal again, to the millisecond.
    pub reproduce: String,
}

/// One run's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub seed: u64,
    pub faults: Vec<String>,
    pub completed: bool,
    pub rolled_back: bool,
    pub detection_s: Option<f64>,
    pub rollback_s: Option<f64>,
    pub simulated_s: f64,
    pub violations: Vec<Violation>,
}

/// min / median / max of a figure over the runs that have it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Spread {
    pub runs: usize,
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Spread {
        xs.sort_by(f64::total_cmp);
        Spread {
            runs: xs.len(),
            min: xs.first().copied(),
            median: xs.get(xs.len() / 2).copied(),
            max: xs.last().copied(),
        }
    }
}

/// The sweep's report.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub seeds: u64,
    pub first_seed: u64,
    pub pool: Vec<String>,
    pub completed: u64,
    pub rolled_back: u64,
    /// Neither completed nor rolled back (blocked, or the rollback failed).
    pub other: u64,
    pub detection_s: Spread,
    pub rollback_s: Spread,
    /// How often each fault was drawn, and how its runs ended.
    pub by_fault: BTreeMap<String, FaultTally>,
    pub violations: Vec<Violation>,
    /// Runs that could not run at all (the world would not start): seed and error.
    pub errors: Vec<(u64, String)>,
    pub wall_s: f64,
    pub seeds_per_s: f64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FaultTally {
    pub runs: u64,
    pub completed: u64,
    pub rolled_back: u64,
}

impl SweepReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }

    pub fn render_text(&self) -> String {
        let mut s = format!(
            "cutover rehearsal sweep: {} seeds from {} ({} a second, {:.1}s)\n",
            self.seeds,
            self.first_seed,
            fmt1(self.seeds_per_s),
            self.wall_s
        );
        s.push_str(&format!("faults drawn from: {}\n", self.pool.join(", ")));
        s.push_str(&format!(
            "  completed {}   rolled back {}   other {}\n",
            self.completed, self.rolled_back, self.other
        ));
        s.push_str("                  runs      min   median      max\n");
        for (name, sp) in [
            ("detection (s)", &self.detection_s),
            ("rollback (s)", &self.rollback_s),
        ] {
            s.push_str(&format!(
                "  {name:<14} {:>6} {:>8} {:>8} {:>8}\n",
                sp.runs,
                opt(sp.min),
                opt(sp.median),
                opt(sp.max)
            ));
        }
        s.push_str("  fault              runs completed rolled-back\n");
        for (f, t) in &self.by_fault {
            s.push_str(&format!(
                "  {f:<18} {:>4} {:>9} {:>11}\n",
                t.runs, t.completed, t.rolled_back
            ));
        }
        for (seed, e) in &self.errors {
            s.push_str(&format!("ERROR seed {seed}: {e}\n"));
        }
        if self.violations.is_empty() {
            s.push_str("safety rules: no violation\n");
        } else {
            s.push_str(&format!(
                "safety rules: {} violation(s)\n",
                self.violations.len()
            ));
            for v in &self.violations {
                s.push_str(&format!(
                    "VIOLATION seed {} [{}] {}: {}\n  reproduce: {}\n",
                    v.seed,
                    v.faults.join(","),
                    v.rule,
                    v.detail,
                    v.reproduce
                ));
            }
        }
        s
    }
}

fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

/// splitmix64: the sweep's own draws, so a seed's faults do not depend on anything else.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The faults seed `seed` injects: each of the pool's with even odds, never none (a pool of
/// one: always it). Kept in the pool's order.
pub fn faults_for(seed: u64, pool: &[Fault]) -> Vec<Fault> {
    if pool.len() <= 1 {
        return pool.to_vec();
    }
    let mut round = 0u64;
    loop {
        let bits = mix(seed ^ 0x5_3EED_5EEE_u64 ^ round.wrapping_mul(0xA5A5_A5A5));
        let picked: Vec<Fault> = pool
            .iter()
            .enumerate()
            .filter(|(i, _)| bits >> (i % 64) & 1 == 1)
            .map(|(_, f)| *f)
            .collect();
        if !picked.is_empty() {
            return picked;
        }
        round += 1;
    }
}

/// The command that runs seed `seed` with `faults` again.
pub fn reproduce_command(seed: u64, faults: &[Fault], plan_path: Option<&str>) -> String {
    let mut cmd = format!("cutover rehearse --autopilot --clock sim --seed {seed}");
    if !faults.is_empty() {
        let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        cmd.push_str(&format!(" --chaos {}", names.join(",")));
    }
    if let Some(p) = plan_path {
        cmd.push_str(&format!(" --plan {}", shell_word(p)));
    }
    cmd
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A gate's state and the reading it was judged on.
type GateSeen = (GateState, Option<Ts>);

/// What the checker saw of one run, while it ran.
#[derive(Default)]
struct Watch {
    /// The next step's gate states after the previous batch, with the step's index.
    last_gates: Option<(usize, Vec<GateSeen>)>,
    broken: Vec<(String, String)>,
}

impl Watch {
    /// Checks a batch against the state the previous batch left, then remembers this one's.
    fn batch(&mut self, batch: &[Event], state: &State) {
        for ev in batch {
            let (step, at, what) = match ev {
                Event::StepConfirmed { step, at, .. } => (step, *at, "confirmed"),
                Event::ActionStarted {
                    step,
                    at,
                    direction: Direction::Do,
                    ..
                } => (step, *at, "started"),
                _ => continue,
            };
            let Some(i) = state.plan.steps.iter().position(|s| &s.id == step) else {
                continue;
            };
            let def = &state.plan.steps[i];
            let Some((seen_step, gates)) = &self.last_gates else {
                if !def.gates.is_empty() {
                    self.broken.push((
                        "green-on-fresh-readings".into(),
                        format!("step {step} {what} before any gate was evaluated"),
                    ));
                }
                continue;
            };
            if *seen_step != i {
                // The action of the step confirmed in the previous batch: checked there.
                if what == "started" {
                    continue;
                }
                self.broken.push((
                    "forward-only-on-green".into(),
                    format!(
                        "step {step} {what} while step {} was next",
                        state.plan.steps[*seen_step].id
                    ),
                ));
                continue;
            }
            let not_before = state.readings_not_before(i);
            for (g, (gs, observed)) in def.gates.iter().zip(gates) {
                let drift_or_lag = g.text.contains("drift") || g.text.contains("lag");
                if *gs != GateState::Green {
                    let rule = if drift_or_lag {
                        "no-step-after-failed-drift-or-lag"
                    } else {
                        "forward-only-on-green"
                    };
                    self.broken.push((
                        rule.into(),
                        format!("step {step} {what} with gate `{}` {}", g.text, gs.as_str()),
                    ));
                    continue;
                }
                // Independent of the fold's own freshness rule: the reading the gate was
                // green on must be within the gate's freshness of the confirmation, and
                // taken after the previous step finished.
                let fresh = match observed {
                    None => false,
                    Some(o) => at - o <= g.fresh_ms() && not_before.is_none_or(|nb| *o >= nb),
                };
                if !fresh && what == "confirmed" {
                    self.broken.push((
                        "green-on-fresh-readings".into(),
                        format!(
                            "step {step} confirmed with gate `{}` green on a reading {} (fresh {}ms, not before {:?})",
                            g.text,
                            observed.map(|o| format!("{}ms old", at - o)).unwrap_or_else(|| "that does not exist".into()),
                            g.fresh_ms(),
                            not_before
                        ),
                    ));
                }
            }
        }
        self.last_gates = state.next_step().map(|n| {
            (
                n,
                state
                    .step_gates(n)
                    .into_iter()
                    .map(|g| (g.state, g.observed_at))
                    .collect(),
            )
        });
    }
}

/// Runs one seed on simulated time and checks it.
pub fn run_one(opts: &SweepOptions, seed: u64) -> Result<RunOutcome, String> {
    let faults = faults_for(seed, &opts.pool);
    let watch = Arc::new(Mutex::new(Watch::default()));
    let sink = Arc::clone(&watch);
    let summary = rehearse::autopilot_simulated_with(
        Rehearsal {
            plan: Arc::clone(&opts.plan),
            faults: faults.clone(),
            seed,
            sessions_dir: None,
            operator: "sweep".into(),
            sign_key: None,
            clock: ClockKind::Sim,
        },
        move |session| {
            session.observe(Box::new(move |batch, state| {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .batch(batch, state);
            }));
        },
    )
    .map_err(|e| format!("{e:#}"))?;
    let broken = std::mem::take(&mut watch.lock().unwrap_or_else(|e| e.into_inner()).broken);
    Ok(judge(opts, seed, &faults, &summary, broken))
}

/// The rules checked on the summary, with those the watch found during the run.
fn judge(
    opts: &SweepOptions,
    seed: u64,
    faults: &[Fault],
    s: &Summary,
    mut broken: Vec<(String, String)>,
) -> RunOutcome {
    if s.writes_lost != 0 {
        broken.push((
            "writes-lost-0".into(),
            format!("{} acknowledged write(s) lost", s.writes_lost),
        ));
    }
    if s.completed && s.rows_diverged != 0 {
        broken.push((
            "rows-diverged-0-when-completed".into(),
            format!("completed with {} row(s) differing", s.rows_diverged),
        ));
    }
    if s.rolled_back && s.source_writable != Some(true) {
        broken.push((
            "rollback-leaves-source-writable".into(),
            format!(
                "rolled back, the source's read_only at the end: {:?}",
                s.source_writable.map(|w| !w)
            ),
        ));
    }
    let names: Vec<String> = faults.iter().map(|f| f.name().to_string()).collect();
    let reproduce = reproduce_command(seed, faults, opts.plan_path.as_deref());
    RunOutcome {
        seed,
        faults: names.clone(),
        completed: s.completed,
        rolled_back: s.rolled_back,
        detection_s: s.guards.detection_s,
        rollback_s: s.guards.rollback_s,
        simulated_s: s.elapsed_s,
        violations: broken
            .into_iter()
            .map(|(rule, detail)| Violation {
                seed,
                faults: names.clone(),
                rule,
                detail,
                reproduce: reproduce.clone(),
            })
            .collect(),
    }
}

/// Progress while a sweep runs.
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub violations: usize,
    pub elapsed_s: f64,
}

/// Runs the sweep on `opts.jobs` threads, calling `progress` after every run.
pub fn run(opts: &SweepOptions, mut progress: impl FnMut(&Progress)) -> SweepReport {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<(u64, Result<RunOutcome, String>)>();
    let jobs = opts
        .jobs
        .max(1)
        .min(usize::try_from(opts.count).unwrap_or(usize::MAX).max(1));
    let mut threads = Vec::new();
    for _ in 0..jobs {
        let (next, tx, opts) = (Arc::clone(&next), tx.clone(), opts.clone());
        threads.push(std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.count {
                    return;
                }
                let seed = opts.first_seed.wrapping_add(i);
                if tx.send((seed, run_one(&opts, seed))).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    let mut violations = 0;
    for (seed, r) in rx {
        match r {
            Ok(o) => {
                violations += o.violations.len();
                outcomes.push(o);
            }
            Err(e) => errors.push((seed, e)),
        }
        progress(&Progress {
            done: (outcomes.len() + errors.len()) as u64,
            total: opts.count,
            violations,
            elapsed_s: started.elapsed().as_secs_f64(),
        });
    }
    for t in threads {
        // A worker that panicked loses only its unreported seeds; they are missing below.
        let _ = t.join();
    }
    outcomes.sort_by_key(|o| o.seed);
    errors.sort();
    report(opts, outcomes, errors, started.elapsed().as_secs_f64())
}

fn report(
    opts: &SweepOptions,
    outcomes: Vec<RunOutcome>,
    errors: Vec<(u64, String)>,
    wall_s: f64,
) -> SweepReport {
    let mut by_fault: BTreeMap<String, FaultTally> = BTreeMap::new();
    for o in &outcomes {
        for f in &o.faults {
            let t = by_fault.entry(f.clone()).or_default();
            t.runs += 1;
            t.completed += u64::from(o.completed);
            t.rolled_back += u64::from(o.rolled_back);
        }
    }
    let count = |p: fn(&RunOutcome) -> bool| outcomes.iter().filter(|o| p(o)).count() as u64;
    let ran = (outcomes.len() + errors.len()) as u64;
    SweepReport {
        seeds: ran,
        first_seed: opts.first_seed,
        pool: opts.pool.iter().map(|f| f.name().to_string()).collect(),
        completed: count(|o| o.completed),
        rolled_back: count(|o| o.rolled_back),
        other: count(|o| !o.completed && !o.rolled_back),
        detection_s: Spread::of(outcomes.iter().filter_map(|o| o.detection_s).collect()),
        rollback_s: Spread::of(outcomes.iter().filter_map(|o| o.rollback_s).collect()),
        by_fault,
        violations: outcomes.iter().flat_map(|o| o.violations.clone()).collect(),
        errors,
        wall_s,
        seeds_per_s: if wall_s > 0.0 {
            ran as f64 / wall_s
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seed_draws_a_non_empty_combination_and_the_same_one_every_time() {
        let pool = Fault::ALL.to_vec();
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let f = faults_for(seed, &pool);
            assert!(!f.is_empty());
            assert_eq!(f, faults_for(seed, &pool));
            seen.insert(f);
        }
        assert!(seen.len() > 50, "combinations vary: {}", seen.len());
        assert_eq!(faults_for(9, &[Fault::DnsSlow]), vec![Fault::DnsSlow]);
    }

    #[test]
    fn the_reproducing_command_names_seed_faults_and_plan() {
        assert_eq!(
            reproduce_command(42, &[Fault::LagSpike, Fault::DnsSlow], Some("my plan.toml")),
            "cutover rehearse --autopilot --clock sim --seed 42 --chaos lag-spike,dns-slow --plan 'my plan.toml'"
        );
    }
}
