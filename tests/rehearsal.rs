//! Whole rehearsals under the autopilot, clean and with each fault, judged by their summary
//! and by folding their transcripts.

use std::path::Path;
use std::sync::Arc;

use cutover::autopilot::Summary;
use cutover::event::{Direction, Event};
use cutover::plan;
use cutover::rehearse::{self, Rehearsal};
use cutover::sim::Fault;
use cutover::state::{GateState, State};

async fn rehearse(faults: Vec<Fault>, dir: &Path) -> Summary {
    rehearse::autopilot(Rehearsal {
        plan: Arc::new(plan::rehearsal_plan()),
        faults,
        seed: 7,
        sessions_dir: Some(dir.to_path_buf()),
        operator: "test".into(),
        sign_key: None,
        clock: cutover::clock::ClockKind::Sim,
    })
    .await
    .expect("the rehearsal runs")
}

fn transcript(summary: &Summary) -> Vec<Event> {
    let path = summary
        .transcript
        .as_ref()
        .expect("a transcript was written");
    let t = cutover::transcript::read(Path::new(path)).expect("the transcript reads back intact");
    assert!(t.torn_tail.is_none());
    t.events
}

/// Folds the transcript and returns, for every event, the next step's gate states.
fn next_step_gates(events: &[Event]) -> Vec<(usize, Vec<(GateState, String)>)> {
    let mut state = State::new(Arc::new(plan::rehearsal_plan()));
    let mut seen = Vec::new();
    for ev in events {
        state.apply(ev);
        if let Some(next) = state.next_step() {
            let gates = state
                .step_gates(next)
                .into_iter()
                .map(|g| (g.state, g.reason))
                .collect();
            seen.push((next, gates));
        }
    }
    seen
}

fn started_steps(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ActionStarted {
                step,
                direction: Direction::Do,
                ..
            } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_run_completes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![], dir.path()).await;
    assert!(s.completed, "{}", s.render_text());
    assert!(!s.rolled_back);
    assert_eq!(s.writes_lost, 0);
    assert_eq!(s.rows_diverged, 0);
    assert!(s.safe());
    assert!(
        s.writes_refused > 0,
        "a freeze refuses some writes: {}",
        s.render_text()
    );
    assert!(s.downtime_s > 0.0);
    assert!(
        s.elapsed_s < 60.0,
        "a clean run takes under a minute: {}",
        s.elapsed_s
    );
    assert!(
        s.steps.iter().all(|st| st.outcome == "done"),
        "{:?}",
        s.steps
    );
    let events = transcript(&s);
    assert_eq!(
        started_steps(&events),
        plan::rehearsal_plan()
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_change_is_caught_at_the_drain_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::DropChange], dir.path()).await;
    assert!(!s.completed, "{}", s.render_text());
    assert!(s.rolled_back, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0, "{}", s.render_text());
    let events = transcript(&s);
    // The shipped plan's drift abort rolls back once the lost change outlives its window,
    // long before the drain's timeout; the transcript names the table and the key.
    let reason = events
        .iter()
        .find_map(|e| match e {
            Event::RollbackConfirmed { by, reason, .. } if by == "abort drift" => {
                Some(reason.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rollback by the drift abort: {}", s.render_text()));
    assert!(
        regex_lite(&reason),
        "the reason names the table and the key: {reason}"
    );
    let started = started_steps(&events);
    assert_eq!(
        started,
        vec!["preflight".to_string(), "freeze".to_string()],
        "no step after the freeze ran"
    );
    // The freeze was undone.
    assert!(events.iter().any(|e| matches!(e,
        Event::ActionFinished { step, direction: Direction::Undo, ok: true, .. } if step == "freeze")));
    // Measured: detected within a minute, rolled back, the guard named.
    let g = &s.guards;
    assert!(g.detection_s.is_some_and(|d| d < 60.0), "{g:?}");
    assert!(g.rollback_s.is_some(), "{g:?}");
    assert_eq!(g.rollback_by.as_deref(), Some("abort drift"));
    assert_eq!(g.fired, vec!["abort drift: rollback".to_string()]);
    assert!(g.downtime_s.is_some_and(|d| d < 60.0) && g.max_downtime_s == Some(60.0));
}

/// The fault the abort conditions exist for: rows diverge after the drain was green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_drift_is_caught_by_the_drift_abort_and_rolled_back_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::LateDrift], dir.path()).await;
    assert!(s.rolled_back, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0, "{}", s.render_text());
    let g = &s.guards;
    assert!(
        g.detection_s.is_some_and(|d| d < 60.0),
        "{}",
        s.render_text()
    );
    assert!(
        g.detected_by
            .as_deref()
            .is_some_and(|b| b.contains("drift")),
        "{g:?}"
    );
    assert_eq!(g.rollback_by.as_deref(), Some("abort drift"), "{g:?}");
    assert!(g.rollback_s.is_some_and(|r| r < 300.0), "{g:?}");
    let events = transcript(&s);
    let started = started_steps(&events);
    assert!(
        started.contains(&"stop-replication".to_string()),
        "the drain was green and replication stopped before the drift: {started:?}"
    );
    assert!(
        !started.contains(&"unfreeze".to_string()),
        "writes never opened on the diverged target: {started:?}"
    );
    // The report measures the same from the transcript alone.
    let path = s.transcript.as_deref().expect("a transcript");
    let r = cutover::report::build(Path::new(path)).expect("report");
    assert_eq!(r.guards.detection_s, g.detection_s);
    assert_eq!(r.guards.rollback_s, g.rollback_s);
    assert_eq!(r.guards.fired, g.fired);
    let md = cutover::report::render_md(&r);
    assert!(
        md.contains("## Guards") && md.contains("**Detection of late-drift:**"),
        "{md}"
    );
}

/// "orders: id=17" style: a table name, a colon, a key.
fn regex_lite(reason: &str) -> bool {
    ["customers", "orders", "payments"].iter().any(|t| {
        reason
            .match_indices(&format!("{t}: id="))
            .any(|(i, m)| reason[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_throttle_makes_gates_unknown_then_completes() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::ApiThrottle], dir.path()).await;
    assert!(s.completed, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0);
    assert_eq!(s.rows_diverged, 0);
    let events = transcript(&s);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::SourceFailed { .. }))
    );
    let stale_unknown = next_step_gates(&events).iter().any(|(_, gates)| {
        gates.iter().any(|(st, why)| {
            *st == GateState::Unknown && (why.contains("stale") || why.contains("last error"))
        })
    });
    assert!(stale_unknown, "some gate went unknown on stale readings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_spike_turns_latency_gates_red_then_completes() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::LagSpike], dir.path()).await;
    assert!(s.completed, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0);
    assert_eq!(s.rows_diverged, 0);
    let events = transcript(&s);
    let red_on_latency = next_step_gates(&events).iter().any(|(_, gates)| {
        gates.iter().any(|(st, why)| {
            *st == GateState::Red
                && why.starts_with("cdc.latency_target = ")
                && !why.contains("holding")
        })
    });
    assert!(red_on_latency, "the latency gate went red during the spike");
    assert!(
        s.guards.detection_s.is_some_and(|d| d < 60.0),
        "{}",
        s.render_text()
    );
    assert_eq!(s.guards.rollback_s, None, "nothing to roll back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_dns_completes_safely() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::DnsSlow], dir.path()).await;
    assert!(s.completed, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0);
    assert_eq!(s.rows_diverged, 0);
    assert!(
        s.guards.downtime_s.is_some_and(|d| d < 60.0),
        "{:?}",
        s.guards
    );
}

/// A stalled replicator is seen within a minute; stalled while writes are frozen, the lag
/// abort rolls back (before the freeze, the preflight waits it out and the run completes):
/// either way nothing is lost, and a rollback is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replicator_is_detected_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = rehearse(vec![Fault::ReplicatorStall], dir.path()).await;
    assert!(s.completed || s.rolled_back, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0, "{}", s.render_text());
    let g = &s.guards;
    assert!(
        g.detection_s.is_some_and(|d| d < 60.0),
        "{}",
        s.render_text()
    );
    if s.rolled_back {
        assert!(g.rollback_s.is_some(), "{g:?}");
        assert_eq!(g.rollback_by.as_deref(), Some("abort lag"), "{g:?}");
    } else {
        assert_eq!(s.rows_diverged, 0);
    }
}

#[test]
fn the_binary_prints_a_json_summary_and_exits_zero_on_a_safe_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "rehearse",
            "--autopilot",
            "--json",
            "--seed",
            "3",
            "--sessions-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    for key in [
        "completed",
        "rolled_back",
        "writes_refused",
        "writes_lost",
        "rows_diverged",
        "downtime_s",
        "blocked_reason",
        "transcript",
        "steps",
    ] {
        assert!(v.get(key).is_some(), "summary lacks {key}: {v}");
    }
    assert_eq!(v["completed"], true);
    // The log names hosts, steps and errors: it is private, like the transcript.
    let log = dir.path().join("cutover.log");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}: {mode:o}", log.display());
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
    for st in steps {
        assert!(
            st["id"].is_string()
                && st["started"].is_string()
                && st["finished"].is_string()
                && st["outcome"] == "done",
            "{st}"
        );
    }
}

#[test]
fn bad_chaos_names_the_fault_and_the_valid_ones() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["rehearse", "--autopilot", "--chaos", "lag-spike,meteor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("meteor") && err.contains("drop-change"),
        "{err}"
    );
}

/// Values that used to validate and then crash the rehearsal (issue 18): `clients =
/// 4294967295` tried a 240 GB allocation, `write_rate = inf` panicked the workload task,
/// `rows_per_table` near 2^63 overflowed a capacity, `ttl` near 2^64 an `Instant`. Each is
/// now refused before anything starts, naming file:line:col, the range and no session file.
#[test]
fn values_that_used_to_crash_the_rehearsal_are_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (from, to, says)) in [
        (
            "clients = 6 ",
            "clients = 4294967295 ",
            "clients = 4294967295 is out of range",
        ),
        (
            "write_rate = 40 ",
            "write_rate = inf ",
            "write_rate = inf is infinite",
        ),
        (
            "write_rate = 40 ",
            "write_rate = nan ",
            "write_rate = NaN is not a number",
        ),
        (
            "rows_per_table = 400",
            "rows_per_table = 9223372036854775807",
            "rows_per_table = 9223372036854775807 is out of range",
        ),
        (
            "ttl = 3",
            "ttl = 9223372036854775807",
            "[dns] ttl = 9223372036854775807 is out of range",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(cutover::plan::REHEARSAL_PLAN.contains(from), "{from}");
        let plan = dir.path().join(format!("p{i}.toml"));
        std::fs::write(&plan, cutover::plan::REHEARSAL_PLAN.replacen(from, to, 1)).unwrap();
        let sessions = dir.path().join(format!("s{i}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["rehearse", "--autopilot", "--plan"])
            .arg(&plan)
            .arg("--sessions-dir")
            .arg(&sessions)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(
            err.contains(says) && err.contains("hint: use "),
            "{to}: {err}"
        );
        assert!(err.contains(&format!("p{i}.toml:")), "{to}: {err}");
        let transcripts = std::fs::read_dir(&sessions)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(transcripts, 0, "{to}: no session starts");
    }
}

/// A `--log-file` that cannot be written used to be ignored silently (the session then ran
/// with no log at all).
#[test]
fn a_log_file_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["rehearse", "--autopilot", "--log-file"])
        .arg(blocker.join("cutover.log"))
        .arg("--sessions-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--log-file"), "{stderr}");
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "jsonl")),
        "no session ran"
    );
}

/// The shipped plan with an abort condition on replication lag, armed for the whole
/// session, that rolls back.
fn plan_with_lag_abort() -> plan::Plan {
    let text = format!(
        "{}\n[[abort]]\nid = \"spike\"\nwhen = \"replication.lag_s > 3 for 2s fresh 5s\"\nthen = \"rollback\"\n",
        plan::REHEARSAL_PLAN
    );
    plan::parse("rehearsal.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_condition_on_lag_rolls_back_when_a_lag_spike_holds_past_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Arc::new(plan_with_lag_abort());
    let s = rehearse::autopilot(Rehearsal {
        plan: Arc::clone(&plan),
        faults: vec![Fault::LagSpike],
        seed: 7,
        sessions_dir: Some(dir.path().to_path_buf()),
        operator: "test".into(),
        sign_key: None,
        clock: cutover::clock::ClockKind::Sim,
    })
    .await
    .expect("the rehearsal runs");
    assert!(!s.completed, "{}", s.render_text());
    assert!(s.rolled_back, "{}", s.render_text());
    assert_eq!(s.writes_lost, 0, "{}", s.render_text());

    // The transcript names the plan's decision and the reading that fired it.
    let events = transcript(&s);
    let fired = events
        .iter()
        .position(|e| matches!(e, Event::RollbackConfirmed { by, .. } if by == "abort spike"))
        .unwrap_or_else(|| panic!("no rollback by the abort: {}", s.render_text()));
    let Event::RollbackConfirmed { reason, .. } = &events[fired] else {
        unreachable!()
    };
    assert!(
        reason.contains("replication.lag_s > 3 for 2s") && reason.contains("replication.lag_s = "),
        "{reason}"
    );
    // Nothing moved forward after it fired.
    assert!(
        !events[fired..].iter().any(|e| matches!(
            e,
            Event::ActionStarted {
                direction: Direction::Do,
                ..
            } | Event::StepConfirmed { .. }
        )),
        "a forward step after the abort"
    );
    // Folding the transcript again reaches the same end (replay and report see it).
    let mut state = State::new(plan);
    for ev in &events {
        state.apply(ev);
    }
    assert!(state.rolled_back());
    assert_eq!(
        state.rollback.as_ref().map(|r| r.by.as_str()),
        Some("abort spike")
    );
}

/// promtool, from Debian's `prometheus` package (`.ci/run` installs it): the exposition is
/// checked by the tool Prometheus ships, not by a parser written here.
fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("promtool is missing: install Debian's prometheus package (apt-get install prometheus; .ci/run does)")
    })
}

/// The samples of the text exposition: `name{labels}` (as written) -> value.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

fn gate_number(state: &str) -> f64 {
    match state {
        "green" => 1.0,
        "red" => 0.0,
        "unknown" => -1.0,
        other => panic!("gate state {other}"),
    }
}

/// One pair of /status and /metrics rendered from the same snapshot: every figure both
/// carry is equal.
fn assert_agree(status: &serde_json::Value, metrics: &str) {
    let m = samples(metrics);
    assert_eq!(
        m["cutover_next_step_ready"],
        gate_number(status["state"].as_str().unwrap()),
        "{status}\n{metrics}"
    );
    match status["step"].as_object() {
        Some(step) => {
            let id = step["id"].as_str().unwrap();
            let key = format!("cutover_next_step{{step=\"{id}\"}}");
            assert_eq!(m[&key], step["number"].as_f64().unwrap(), "{metrics}");
            let number = step["number"].as_u64().unwrap();
            for g in status["gates"].as_array().unwrap() {
                let text = g["gate"].as_str().unwrap().replace('"', "\\\"");
                let key = format!(
                    "cutover_gate_state{{step=\"{id}\",number=\"{number}\",gate=\"{text}\"}}"
                );
                assert_eq!(
                    m.get(&key).copied(),
                    Some(gate_number(g["state"].as_str().unwrap())),
                    "{key} in\n{metrics}"
                );
                let metric = match g["input"].as_str().unwrap() {
                    "replication.lag_s" => "cutover_replication_lag_seconds",
                    "replication.backlog" => "cutover_replication_backlog",
                    "drift.rows" => "cutover_drift_rows",
                    "drift.mismatched" => "cutover_drift_mismatched_tables",
                    _ => continue,
                };
                if let Some(v) = g["value"].as_f64() {
                    assert_eq!(m.get(metric).copied(), Some(v), "{metric}: {g}\n{metrics}");
                }
            }
        }
        None => assert!(!metrics.contains("\ncutover_next_step{"), "{metrics}"),
    }
    let plan = status["plan"].as_str().unwrap();
    assert!(
        m.keys()
            .any(|k| k.starts_with("cutover_info{") && k.contains(&format!("plan=\"{plan}\""))),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_serves_live_status_and_metrics_that_agree_and_parse() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let listener =
        cutover::status::StatusListener::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let addr = listener.local_addr().unwrap();
    let plan = Arc::new(plan::rehearsal_plan());
    let outside = cutover::outside::Outside::prepare(&plan, true, Some(listener)).unwrap();
    let run = tokio::spawn(rehearse::autopilot_outside(
        Rehearsal {
            plan,
            faults: vec![],
            seed: 7,
            sessions_dir: Some(dir.path().to_path_buf()),
            operator: "test".into(),
            sign_key: None,
            // Webhooks and the status endpoint run on the wall clock.
            clock: cutover::clock::ClockKind::Real,
        },
        outside,
    ));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let etag = |r: &reqwest::Response| {
        r.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut pairs: Vec<(serde_json::Value, String)> = Vec::new();
    let mut refusals_checked = false;
    while !run.is_finished() {
        let (Ok(s), Ok(m)) = (
            client.get(url("/status")).send().await,
            client.get(url("/metrics")).send().await,
        ) else {
            continue; // the session ended and took the endpoint with it
        };
        let (tag_s, tag_m) = (etag(&s), etag(&m));
        assert_eq!(s.status(), 200);
        assert_eq!(
            m.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let (Ok(status), Ok(metrics)) = (s.text().await, m.text().await) else {
            continue;
        };
        if tag_s.is_some() && tag_s == tag_m {
            let status: serde_json::Value = serde_json::from_str(&status).unwrap();
            assert_agree(&status, &metrics);
            pairs.push((status, metrics));
        }
        if !refusals_checked {
            let nowhere = client.get(url("/nowhere")).send().await.unwrap();
            assert_eq!(nowhere.status(), 404);
            let post = client.post(url("/status")).send().await.unwrap();
            assert_eq!(post.status(), 405, "read-only");
            let big = client
                .get(url("/status"))
                .body(vec![b'x'; 64 * 1024])
                .send()
                .await
                .unwrap();
            assert_eq!(big.status(), 413);
            refusals_checked = true;
        }
    }
    let summary = run.await.unwrap().expect("the rehearsal runs");
    assert!(summary.completed, "{}", summary.render_text());
    assert!(refusals_checked);
    // Seen live: more than one step's gates while the rehearsal went on.
    let steps: std::collections::BTreeSet<String> = pairs
        .iter()
        .filter_map(|(s, _)| s["step"]["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        steps.len() >= 3,
        "steps seen: {steps:?} in {} snapshots",
        pairs.len()
    );
    let readings = pairs
        .iter()
        .any(|(s, _)| !s["readings"].as_array().unwrap().is_empty());
    assert!(readings, "live readings reach /status");
    assert!(
        pairs
            .iter()
            .any(|(_, m)| m.contains("cutover_replication_lag_seconds ")),
        "a known lag is exported"
    );
    // promtool on the first and the last snapshot seen (the last has every step done).
    for (_, metrics) in [pairs.first().unwrap(), pairs.last().unwrap()] {
        let mut child = std::process::Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{metrics}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_tells_its_webhook_every_step_and_records_each_delivery() {
    use std::sync::Mutex;
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hooks/ops-secret-token",
        axum::routing::post(move |body: String| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("hook.url");
    std::fs::write(
        &url_file,
        format!("http://{receiver}/hooks/ops-secret-token\n"),
    )
    .unwrap();
    let text = format!(
        "{}\n[[notify]]\nname = \"ops\"\nkind = \"json\"\nurl_file = \"{}\"\n\
         on = [\"session-start\", \"step-done\", \"session-end\"]\n",
        plan::rehearsal_plan().source_text,
        url_file.display()
    );
    let plan = Arc::new(plan::parse("rehearsal.toml", &text).unwrap_or_else(|e| panic!("{e}")));
    let steps = plan.steps.len();
    let outside = cutover::outside::Outside::prepare(&plan, true, None).unwrap();
    let summary = rehearse::autopilot_outside(
        Rehearsal {
            plan,
            faults: vec![],
            seed: 7,
            sessions_dir: Some(dir.path().join("sessions")),
            operator: "test".into(),
            sign_key: None,
            // Webhooks and the status endpoint run on the wall clock.
            clock: cutover::clock::ClockKind::Real,
        },
        outside,
    )
    .await
    .expect("the rehearsal runs");
    assert!(summary.completed, "{}", summary.render_text());
    let kinds: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["event"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec!["session-start".to_string()];
    expected.extend(std::iter::repeat_n("step-done".to_string(), steps));
    expected.push("session-end".into());
    assert_eq!(kinds, expected, "in order, once each");
    // Every delivery is recorded, the session's end included (flushed before exit).
    let events = transcript(&summary);
    let delivered: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::NotifyDelivered { on, outcome, .. } => {
                assert_eq!(*outcome, cutover::event::DeliveryOutcome::Delivered);
                Some(on.as_str().to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(delivered, expected);
    let file = std::fs::read_to_string(summary.transcript.as_ref().unwrap()).unwrap();
    assert!(
        !file.contains("ops-secret-token"),
        "the URL never reaches the transcript"
    );
}

#[test]
fn a_status_address_beyond_loopback_needs_allow_remote_and_nothing_starts_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["rehearse", "--autopilot", "--sessions-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--status-addr", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the status on 0.0.0.0:0") && err.contains("--allow-remote"),
        "{err}"
    );
    let out = run(&["--allow-remote"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-remote applies to --share or --status-addr"),
        "{err}"
    );
    let transcripts = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        })
        .count();
    assert_eq!(transcripts, 0, "refused before a session opened");
}

/// Under the simulated clock the same seed and faults give the same run: the same summary
/// and the same transcript records to the millisecond (only the header's wall-clock and host
/// fields, the per-session signing key and so the chain's hashes differ), for every fault
/// and for all of them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_run_for_every_fault_and_for_all() {
    let mut cases: Vec<Vec<Fault>> = Fault::ALL.iter().map(|f| vec![*f]).collect();
    cases.push(Fault::ALL.to_vec());
    for faults in cases {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = rehearse(faults.clone(), a.path()).await;
        let second = rehearse(faults.clone(), b.path()).await;
        let comparable = |s: &Summary| {
            let mut v = serde_json::to_value(s).unwrap();
            let o = v.as_object_mut().unwrap();
            for k in ["transcript", "transcript_key", "transcript_head"] {
                o.remove(k);
            }
            v
        };
        assert_eq!(comparable(&first), comparable(&second), "{faults:?}");
        assert_eq!(first.clock, "sim");
        let (x, y) = (transcript(&first), transcript(&second));
        assert!(x.len() > 100, "{faults:?}: a whole rehearsal was recorded");
        let json = |evs: &[Event]| -> Vec<String> {
            evs.iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect()
        };
        let (x, y) = (json(&x), json(&y));
        for (i, (l, r)) in x.iter().zip(&y).enumerate() {
            assert_eq!(l, r, "{faults:?}: record {i} differs");
        }
        assert_eq!(x.len(), y.len(), "{faults:?}");
    }
}

/// A sweep over a few hundred seeds, every fault combination drawn from each, breaks no
/// safety rule (each violation would name its seed and the command reproducing it).
#[test]
fn a_sweep_of_a_few_hundred_seeds_breaks_no_safety_rule() {
    let opts = cutover::sweep::SweepOptions {
        plan: Arc::new(plan::rehearsal_plan()),
        plan_path: None,
        first_seed: 1,
        count: 200,
        pool: Fault::ALL.to_vec(),
        jobs: 2,
    };
    let report = cutover::sweep::run(&opts, |_| {});
    assert_eq!(report.seeds, 200);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.violations.is_empty(), "{}", report.render_text());
    assert!(
        report.completed > 0 && report.rolled_back > 0,
        "{}",
        report.render_text()
    );
}

/// The sweep's checker is no rubber stamp: on a plan that stops replication without waiting
/// for the drain (its gates and the abort conditions removed), it names the lost writes of
/// every seed, and the command it prints for a violation reproduces that run exactly.
#[test]
fn a_sweep_of_an_unsafe_plan_names_each_lost_write_and_the_command_that_reproduces_it() {
    let mut text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/rehearsal.toml"))
            .unwrap();
    for step in ["drain", "stop-replication", "flip-dns"] {
        let start = text.find(&format!("id = \"{step}\"")).unwrap();
        let gates = start + text[start..].find("gates = [").unwrap();
        let end = gates + text[gates..].find(']').unwrap();
        text.replace_range(gates..=end, "gates = []");
    }
    while let Some(at) = text.find("[[abort]]") {
        let end = text[at + 1..]
            .find("\n[[")
            .map_or(text.len(), |e| at + 1 + e + 1);
        text.replace_range(at..end, "");
    }
    let unsafe_plan = Arc::new(plan::parse("unsafe.toml", &text).unwrap_or_else(|e| panic!("{e}")));
    assert!(unsafe_plan.aborts.is_empty());
    let opts = cutover::sweep::SweepOptions {
        plan: Arc::clone(&unsafe_plan),
        plan_path: Some("unsafe.toml".into()),
        first_seed: 1,
        count: 6,
        pool: vec![Fault::LagSpike],
        jobs: 2,
    };
    let report = cutover::sweep::run(&opts, |_| {});
    assert!(!report.ok(), "{}", report.render_text());
    let lost: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.rule == "writes-lost-0")
        .collect();
    assert_eq!(
        lost.len(),
        6,
        "every seed loses writes: {}",
        report.render_text()
    );
    let v = lost[0];
    assert_eq!(
        v.reproduce,
        format!(
            "cutover rehearse --autopilot --clock sim --seed {} --chaos lag-spike --plan unsafe.toml",
            v.seed
        )
    );
    // The same seed again, alone: the same loss.
    let again = cutover::sweep::run_one(&opts, v.seed).unwrap();
    assert!(
        again
            .violations
            .iter()
            .any(|w| w.rule == "writes-lost-0" && w.detail == v.detail),
        "{:?} vs {:?}",
        again.violations,
        v.detail
    );
}
