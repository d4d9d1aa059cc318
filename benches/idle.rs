//! CPU of the running cockpit when nothing happens (target ≤ 1 % of a core): the real binary
//! in a pseudo-terminal, measured from /proc over a fixed window. Also reports the live
//! rehearsal cockpit (world, pollers and all) for comparison.
//!
//! `cargo bench --bench idle` (needs `sessions/example-rehearsal.jsonl`).

#[path = "../tests/support/pty.rs"]
mod pty;

use std::time::{Duration, Instant};

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn measure(term: &pty::Pty, window: Duration) -> f64 {
    let pid = term.pid().expect("pid");
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let c1 = cpu_seconds(pid);
    100.0 * (c1 - c0) / t0.elapsed().as_secs_f64()
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let window = Duration::from_secs(10);
    let dir = tempfile::tempdir().expect("tempdir");

    let example = root.join("sessions/example-rehearsal.jsonl");
    let mut replay = pty::Pty::spawn(&["replay", example.to_str().unwrap()], root, 120, 40);
    replay.wait_for("[REPLAY]", Duration::from_secs(30));
    replay.send(" "); // pause: from here on nothing new happens
    std::thread::sleep(Duration::from_secs(2));
    let idle = measure(&replay, window);
    replay.send("q");
    replay.wait_exit(Duration::from_secs(10));

    let sessions = dir.path().join("sessions");
    let live = pty::Pty::spawn(
        &["rehearse", "--sessions-dir", sessions.to_str().unwrap()],
        dir.path(),
        120,
        40,
    );
    live.wait_for("[REHEARSAL]", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let busy = measure(&live, window);

    println!(
        "idle cockpit (replay, paused), 120x40: {idle:.2}% of a core over {window:?} (target <= 1%)"
    );
    println!(
        "live rehearsal cockpit incl. the world at 40 writes/s: {busy:.2}% of a core over {window:?}"
    );
}
