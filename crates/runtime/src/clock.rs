//! The clock a session and everything feeding it read: the wall clock for real runs, or a
//! simulated one for rehearsals that must be repeatable and fast.
//!
//! Timers need nothing of this: every timer in the program is a tokio timer, and under a
//! paused tokio clock (`Clock::simulated` requires one) they run on simulated time already.
//! What needed a handle is the *stamping*: the `at` and `observed_at` of events, which used
//! the wall clock. A simulated clock stamps `epoch + (tokio now - tokio start)`, so two runs
//! that do the same things at the same simulated instants record the same timestamps.
//!
//! The fold never reads a clock (time enters as event timestamps); this type is what the
//! edges (sources, the world, actions, the autopilot, the session) stamp with.

use std::fmt;
use std::time::Duration;

use cutover_core::event::{Ts, now_ms};
use tokio::time::Instant;

/// Where simulated time starts: 2000-01-01T00:00:00Z, so a simulated transcript cannot be
/// mistaken for one recorded on the wall clock.
pub const SIM_EPOCH_MS: Ts = 946_684_800_000;

/// Which clock a run uses (`--clock real|sim`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// The wall clock: timers wait real time.
    #[default]
    Real,
    /// Simulated time on a paused single-threaded runtime: it moves only when every task
    /// waits on a timer, straight to the next one.
    Sim,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Real => "real",
            ClockKind::Sim => "sim",
        }
    }
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ClockKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "real" | "wall" => Ok(ClockKind::Real),
            "sim" | "simulated" => Ok(ClockKind::Sim),
            other => Err(format!(
                "unknown clock \"{other}\"; valid clocks: real, sim"
            )),
        }
    }
}

/// A clock handle: cheap to clone, passed to whatever stamps events.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    kind: ClockKind,
    /// Simulated: the tokio instant that is `epoch_ms`.
    base: Instant,
    epoch_ms: Ts,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

impl Clock {
    /// The wall clock.
    pub fn real() -> Clock {
        Clock {
            kind: ClockKind::Real,
            base: Instant::now(),
            epoch_ms: now_ms(),
        }
    }

    /// Simulated time starting now at [`SIM_EPOCH_MS`]. Call it inside a runtime whose
    /// clock is paused (see [`run_simulated`]); on a running clock it would simply count
    /// real time from the epoch.
    pub fn simulated() -> Clock {
        Clock {
            kind: ClockKind::Sim,
            base: Instant::now(),
            epoch_ms: SIM_EPOCH_MS,
        }
    }

    pub fn kind(&self) -> ClockKind {
        self.kind
    }

    pub fn is_simulated(&self) -> bool {
        self.kind == ClockKind::Sim
    }

    /// Milliseconds since the Unix epoch, as events carry them.
    pub fn now_ms(&self) -> Ts {
        match self.kind {
            ClockKind::Real => now_ms(),
            ClockKind::Sim => {
                let ms = Instant::now()
                    .saturating_duration_since(self.base)
                    .as_millis();
                self.epoch_ms
                    .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
            }
        }
    }

    /// The time since this clock was made (simulated time for a simulated clock).
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.base)
    }
}

/// Runs `make()`'s future on a fresh single-threaded runtime with a paused clock, on a
/// thread of its own, and returns its output: the simulated clock's home.
///
/// Determinism needs two things of the code it runs, and the rehearsal world keeps both:
/// nothing blocks outside the runtime's sight while time could move (the world runs each
/// SQLite operation to completion before its task yields, so time never advances while the
/// database works), and `tokio::select!` over the world's and the session's branches is
/// `biased` (tokio picks randomly otherwise).
pub fn run_simulated<T, F, Fut>(make: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(Clock) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let thread = std::thread::Builder::new()
        .name("cutover-sim".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()?;
            Ok(rt.block_on(async move { make(Clock::simulated()).await }))
        })?;
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_moves_only_by_timers_and_starts_at_the_epoch() {
        let (start, after) = run_simulated(|clock| async move {
            let start = clock.now_ms();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (start, clock.now_ms())
        })
        .expect("the runtime builds");
        assert_eq!(start, SIM_EPOCH_MS);
        assert_eq!(after, SIM_EPOCH_MS + 3_600_000);
    }

    #[test]
    fn clock_names_parse_and_a_bad_one_says_which_are_valid() {
        assert_eq!("sim".parse::<ClockKind>(), Ok(ClockKind::Sim));
        assert_eq!("Real".parse::<ClockKind>(), Ok(ClockKind::Real));
        let err = "fast".parse::<ClockKind>().unwrap_err();
        assert!(err.contains("real, sim"), "{err}");
    }
}
