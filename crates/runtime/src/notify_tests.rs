//! The notifier against real HTTP receivers on 127.0.0.1: order, retries, a receiver that
//! never answers, the full queue, and the URL kept out of everything recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::mpsc;

use super::*;
use crate::session::{Inbox, Session, SessionConfig};
use cutover_core::event::{Direction, SessionMode};

/// A receiver that answers 500 to its first `failures` requests, then 200; every body it
/// gets goes to the channel.
async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(0usize));
    let app = axum::Router::new().route(
        "/hook/T0/secret-part",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            let seen = Arc::clone(&seen);
            async move {
                let n = {
                    let mut s = seen.lock().unwrap();
                    *s += 1;
                    *s
                };
                if n <= failures {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                tx.send(serde_json::from_str(&body).unwrap()).unwrap();
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook/T0/secret-part"), rx)
}

/// A port that accepts connections and never answers them.
fn black_hole() -> (String, std::net::TcpListener) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (
        format!("http://{}/hook/never-secret", l.local_addr().unwrap()),
        l,
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    session: Session,
    inbox: Inbox,
    handle: NotifyHandle,
    url: String,
}

/// A session (with a transcript) whose plan sends `on` as `kind` to `url`, read from a file.
fn open(url: &str, kind: &str, on: &str, config: NotifyConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("hook.url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let text = format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[step]]\nid = \"freeze\"\ntitle = \"Freeze writes\"\nconfirm = \"go\"\n\
         [[step]]\nid = \"switch\"\nconfirm = \"switch\"\n\
         [[notify]]\nname = \"ops\"\nkind = \"{kind}\"\nurl_file = \"{}\"\non = {on}\n",
        url_file.display()
    );
    open_plan(dir, &text, url, config)
}

/// A session (with a transcript in `dir`) for the plan `text`.
fn open_plan(dir: tempfile::TempDir, text: &str, url: &str, config: NotifyConfig) -> Fixture {
    let plan =
        Arc::new(cutover_core::plan::parse("p.toml", text).unwrap_or_else(|e| panic!("{e}")));
    let notifiers = Notifiers::resolve(&plan).unwrap().with_config(config);
    let (mut session, inbox) = Session::open(SessionConfig {
        plan,
        mode: SessionMode::Drive,
        operator: "alice".into(),
        sessions_dir: Some(dir.path().to_path_buf()),
        actuator: None,
        sign_key: None,
    })
    .unwrap();
    let handle = notifiers.attach(&mut session).unwrap();
    Fixture {
        _dir: dir,
        session,
        inbox,
        handle,
        url: url.to_string(),
    }
}

fn fast() -> NotifyConfig {
    NotifyConfig {
        queue: 8,
        attempts: 3,
        timeout: Duration::from_millis(500),
        backoff: Duration::from_millis(20),
    }
}

/// Confirms and finishes step `i` through the session, as the runner would report it.
fn run_step(f: &mut Fixture, id: &str) {
    let at = now_ms();
    f.session
        .ingest(vec![Event::StepConfirmed {
            at,
            step: id.into(),
            by: "alice".into(),
        }])
        .unwrap();
    f.session
        .ingest(vec![Event::ActionFinished {
            at,
            step: id.into(),
            direction: Direction::Do,
            ok: true,
            message: "ok".into(),
        }])
        .unwrap();
}

/// Waits (bounded) for `n` outcomes and ingests them, as the cockpit loop does.
async fn outcomes(f: &mut Fixture, n: usize) -> Vec<Event> {
    let mut got = Vec::new();
    let wait = async {
        while got.len() < n {
            let batch = f.inbox.next_batch().await;
            got.extend(
                batch
                    .into_iter()
                    .filter(|e| matches!(e, Event::NotifyDelivered { .. })),
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("only {} of {n} outcomes arrived", got.len()));
    f.session.ingest(got.clone()).unwrap();
    got
}

fn transcript(f: &Fixture) -> String {
    std::fs::read_to_string(f.session.transcript_path().unwrap()).unwrap()
}

#[tokio::test]
async fn a_receiver_gets_the_moments_in_order_after_retrying_a_500() {
    let (url, mut bodies) = receiver(1).await;
    let mut f = open(
        &url,
        "json",
        "[\"session-start\", \"step-confirmed\", \"step-done\", \"session-end\"]",
        fast(),
    );
    run_step(&mut f, "freeze");
    f.session
        .ingest(vec![Event::SessionEnded {
            at: now_ms(),
            reason: "quit".into(),
        }])
        .unwrap();
    let events = outcomes(&mut f, 4).await;
    let mut received = Vec::new();
    for _ in 0..4 {
        let body = tokio::time::timeout(Duration::from_secs(5), bodies.recv())
            .await
            .unwrap()
            .unwrap();
        received.push(body);
    }
    let kinds: Vec<&str> = received
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "session-start",
            "step-confirmed",
            "step-done",
            "session-end"
        ]
    );
    assert_eq!(received[1]["step"]["id"], "freeze");
    assert_eq!(received[1]["by"], "alice");
    // The transcript's key goes out of band at the start and the end (for verify --key),
    // and only there.
    let key = f.session.transcript_key().unwrap().to_string();
    assert!(key.starts_with("ed25519:"), "{key}");
    for i in [0, 3] {
        assert_eq!(received[i]["key"], key.as_str(), "{}", received[i]);
        assert!(
            received[i]["text"].as_str().unwrap().contains(&key),
            "{}",
            received[i]
        );
    }
    assert!(received[1].get("key").is_none() && received[2].get("key").is_none());
    assert!(
        received[2]["text"]
            .as_str()
            .unwrap()
            .contains("step 1 freeze (Freeze writes) done"),
        "{}",
        received[2]
    );
    // The first request met the 500 and was retried; the rest went through at once.
    let attempts: Vec<(NotifyOn, DeliveryOutcome, u32, Option<u16>)> = events
        .iter()
        .map(|e| match e {
            Event::NotifyDelivered {
                on,
                outcome,
                attempts,
                status,
                notify,
                ..
            } => {
                assert_eq!(notify, "ops");
                (*on, *outcome, *attempts, *status)
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (
                NotifyOn::SessionStart,
                DeliveryOutcome::Delivered,
                2,
                Some(200)
            ),
            (
                NotifyOn::StepConfirmed,
                DeliveryOutcome::Delivered,
                1,
                Some(200)
            ),
            (NotifyOn::StepDone, DeliveryOutcome::Delivered, 1, Some(200)),
            (
                NotifyOn::SessionEnd,
                DeliveryOutcome::Delivered,
                1,
                Some(200)
            ),
        ]
    );
    assert!(
        f.session
            .state
            .log
            .iter()
            .any(|l| l.text == "notify ops: step-done sent"),
        "the log pane shows it"
    );
    let file = transcript(&f);
    assert!(file.contains("\"type\":\"notify_delivered\""));
    assert!(!file.contains("secret-part"), "the URL stays out");
}

#[tokio::test]
async fn a_slack_receiver_gets_text_only() {
    let (url, mut bodies) = receiver(0).await;
    let mut f = open(&url, "slack", "[\"step-done\"]", fast());
    run_step(&mut f, "freeze");
    outcomes(&mut f, 1).await;
    let body = bodies.recv().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text"]);
    assert_eq!(
        body["text"],
        "cutover p: step 1 freeze (Freeze writes) done"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_nothing_and_its_failure_is_recorded() {
    let (url, _hole) = black_hole();
    let mut f = open(
        &url,
        "json",
        "[\"session-start\", \"step-confirmed\", \"step-done\"]",
        NotifyConfig {
            queue: 8,
            attempts: 2,
            timeout: Duration::from_millis(300),
            backoff: Duration::from_millis(10),
        },
    );
    // Both steps run to the end while the first notification still hangs: the session never
    // waited on a delivery.
    run_step(&mut f, "freeze");
    run_step(&mut f, "switch");
    assert!(f.session.state.completed());
    assert_eq!(
        f.handle.pending(),
        5,
        "nothing delivered yet: start, 2 confirmed, 2 done"
    );
    let events = outcomes(&mut f, 1).await;
    match &events[0] {
        Event::NotifyDelivered {
            on,
            outcome,
            attempts,
            status,
            error,
            ..
        } => {
            assert_eq!(*on, NotifyOn::SessionStart);
            assert_eq!(*outcome, DeliveryOutcome::Failed);
            assert_eq!(*attempts, 2);
            assert_eq!(*status, None);
            let error = error.as_deref().unwrap();
            assert!(
                error.contains("no answer within the request timeout"),
                "{error}"
            );
            assert!(!error.contains("never-secret"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let logged = f.session.state.log.iter().any(|l| {
        l.text
            .starts_with("notify ops: session-start not delivered after 2 attempts")
    });
    assert!(logged, "the log pane says so");
    assert!(!transcript(&f).contains(&f.url[7..]), "no part of the URL");
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_records_it() {
    let (url, _hole) = black_hole();
    let mut f = open(
        &url,
        "json",
        "[\"session-start\", \"step-confirmed\", \"step-done\"]",
        NotifyConfig {
            queue: 2,
            attempts: 1,
            timeout: Duration::from_secs(30),
            backoff: Duration::from_millis(10),
        },
    );
    // session-start is being sent (hanging); two wait; the next ones push the oldest out.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !f.handle.queues[0].items.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sender took the first notification");
    run_step(&mut f, "freeze");
    run_step(&mut f, "switch");
    let dropped = outcomes(&mut f, 2).await;
    let ons: Vec<(NotifyOn, DeliveryOutcome)> = dropped
        .iter()
        .map(|e| match e {
            Event::NotifyDelivered { on, outcome, .. } => (*on, *outcome),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        ons,
        [
            (NotifyOn::StepConfirmed, DeliveryOutcome::Dropped),
            (NotifyOn::StepDone, DeliveryOutcome::Dropped),
        ],
        "the oldest waiting gave way"
    );
    assert!(
        f.session
            .state
            .log
            .iter()
            .any(|l| l.text == "notify ops: step-confirmed dropped (queue full)")
    );
}

#[test]
fn a_missing_variable_or_a_non_url_is_refused_by_name_not_value() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hook.url");
    std::fs::write(&f, "hooks.example/T0/leaky\n").unwrap();
    let text = format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[step]]\nid = \"s\"\nconfirm = \"go\"\n\
         [[notify]]\nname = \"ops\"\nkind = \"json\"\nurl_file = \"{}\"\non = [\"step-done\"]\n",
        f.display()
    );
    let plan = cutover_core::plan::parse("p.toml", &text).unwrap();
    let e = Notifiers::resolve(&plan).err().unwrap();
    assert!(e.contains("notify \"ops\""), "{e}");
    assert!(e.contains("is not an http(s) URL"), "{e}");
    assert!(!e.contains("leaky"), "{e}");

    let text = text.replace(
        &format!("url_file = \"{}\"", f.display()),
        "url_env = \"CUTOVER_TEST_SURELY_UNSET_HOOK\"",
    );
    let plan = cutover_core::plan::parse("p.toml", &text).unwrap();
    let e = Notifiers::resolve(&plan).err().unwrap();
    assert!(
        e.contains("CUTOVER_TEST_SURELY_UNSET_HOOK (url_env) is not set"),
        "{e}"
    );
}

#[tokio::test]
async fn the_budget_warning_is_sent_once_with_the_time_used_and_the_budget() {
    let (url, mut bodies) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("hook.url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let text = format!(
        "name = \"p\"\nmax_downtime = \"5m\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [replication]\nengine = \"rehearsal\"\ntask = \"t\"\n[rehearsal]\ntables = [\"a\"]\n\
         [[step]]\nid = \"freeze\"\ntitle = \"Freeze writes\"\nconfirm = \"freeze\"\n\
         action = {{ kind = \"freeze\", on = \"source\" }}\nundo = {{ kind = \"unfreeze\", on = \"source\" }}\n\
         [[step]]\nid = \"unfreeze\"\nconfirm = \"open\"\n\
         action = {{ kind = \"unfreeze\", on = \"target\" }}\nundo = {{ kind = \"freeze\", on = \"target\" }}\n\
         [[notify]]\nname = \"ops\"\nkind = \"json\"\nurl_file = \"{}\"\non = [\"budget-warning\"]\n",
        url_file.display()
    );
    let mut f = open_plan(dir, &text, &url, fast());
    let t0 = now_ms();
    for e in [
        Event::StepConfirmed {
            at: t0,
            step: "freeze".into(),
            by: "alice".into(),
        },
        Event::ActionStarted {
            at: t0,
            step: "freeze".into(),
            direction: Direction::Do,
            description: "freeze the source".into(),
        },
        Event::ActionFinished {
            at: t0 + 100,
            step: "freeze".into(),
            direction: Direction::Do,
            ok: true,
            message: "frozen".into(),
        },
    ] {
        f.session.ingest(vec![e]).unwrap();
    }
    // The warning as the fold records it at 80 % of the budget (4 of 5 minutes), then
    // later ticks: one notification, not one per tick.
    let warned = t0 + 240_000;
    f.session
        .ingest(vec![Event::GuardWarned {
            at: warned,
            guard: "budget".into(),
            reason: "80% of the downtime budget spent".into(),
        }])
        .unwrap();
    for at in [warned + 1_000, warned + 2_000] {
        f.session.ingest(vec![Event::Tick { at }]).unwrap();
    }
    let events = outcomes(&mut f, 1).await;
    assert!(matches!(
        events.as_slice(),
        [Event::NotifyDelivered {
            on: NotifyOn::BudgetWarning,
            outcome: DeliveryOutcome::Delivered,
            ..
        }]
    ));
    let body = tokio::time::timeout(Duration::from_secs(5), bodies.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["event"], "budget-warning");
    assert_eq!(
        body["text"],
        "cutover p: downtime budget 80 % used (240s of 300s; writes are still frozen)"
    );
    assert!(f.handle.flush(Duration::from_secs(5)).await);
    assert!(bodies.try_recv().is_err(), "the warning is sent once");
}
