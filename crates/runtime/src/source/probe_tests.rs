//! `[[probe]]` sources against real HTTP servers on 127.0.0.1, folded into a state whose gate
//! reads `probe.<name>`: a pointer's value turns the gate green; a 500, a timeout or a
//! missing pointer leaves it unknown, never green.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;

use super::Source;
use super::probe::HttpProbe;
use cutover_core::event::{Event, Reading};
use cutover_core::state::{GateState, State};

/// A server answering `/flags` with `status` and `body`, after `delay`.
async fn server(status: u16, body: &'static str, delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/flags",
        axum::routing::get(move || async move {
            tokio::time::sleep(delay).await;
            (StatusCode::from_u16(status).unwrap(), body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/flags")
}

/// A plan with two probes on `url` and a step gated on both.
fn plan(url: &str) -> Arc<cutover_core::plan::Plan> {
    let text = format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[probe]]\nname = \"write_enabled\"\nurl = \"{url}\"\nevery = \"1s\"\njson = \"/flags/write_enabled\"\ntimeout = \"300ms\"\n\
         [[probe]]\nname = \"error_rate\"\nurl = \"{url}\"\nevery = \"1s\"\njson = \"/app/error_rate\"\ntimeout = \"300ms\"\n\
         [[step]]\nid = \"switch\"\nconfirm = \"go\"\n\
         gates = [\"probe.write_enabled == false\", \"probe.error_rate <= 0.01\"]\n"
    );
    Arc::new(cutover_core::plan::parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}")))
}

/// Polls every probe of the plan once and folds the readings: the gates' states.
async fn gates(url: &str) -> (Vec<GateState>, Vec<Reading>) {
    let plan = plan(url);
    let mut readings = Vec::new();
    for p in &plan.probes {
        let source = HttpProbe::new(p.clone()).unwrap();
        readings.extend(source.poll().await.expect("a probe's poll never fails"));
    }
    let mut st = State::new(Arc::clone(&plan));
    for r in &readings {
        st.apply(&Event::Observed {
            at: r.observed_at(),
            reading: r.clone(),
        });
    }
    let states = (0..2).map(|g| st.gate_status(0, g).state).collect();
    (states, readings)
}

fn errors(readings: &[Reading]) -> Vec<Option<String>> {
    readings
        .iter()
        .map(|r| match r {
            Reading::Probe(p) => p.error.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_value_at_the_pointer_turns_the_gate_green() {
    let url = server(
        200,
        r#"{"flags": {"write_enabled": false}, "app": {"error_rate": 0.004}}"#,
        Duration::ZERO,
    )
    .await;
    let (states, readings) = gates(&url).await;
    assert_eq!(states, [GateState::Green, GateState::Green], "{readings:?}");
    let Reading::Probe(p) = &readings[0] else {
        panic!()
    };
    assert_eq!(p.value, Some(cutover_core::plan::Value::Bool(false)));
}

#[tokio::test]
async fn a_value_that_does_not_satisfy_the_gate_is_red() {
    let url = server(
        200,
        r#"{"flags": {"write_enabled": true}, "app": {"error_rate": 0.2}}"#,
        Duration::ZERO,
    )
    .await;
    let (states, _) = gates(&url).await;
    assert_eq!(states, [GateState::Red, GateState::Red]);
}

#[tokio::test]
async fn a_500_leaves_the_gate_unknown_with_the_status() {
    let url = server(
        500,
        r#"{"flags": {"write_enabled": false}}"#,
        Duration::ZERO,
    )
    .await;
    let (states, readings) = gates(&url).await;
    assert_eq!(states, [GateState::Unknown, GateState::Unknown]);
    for e in errors(&readings) {
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("500 Internal Server Error")),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_and_unknown() {
    let url = server(
        200,
        r#"{"flags": {"write_enabled": false}, "app": {"error_rate": 0}}"#,
        Duration::from_secs(5),
    )
    .await;
    let started = std::time::Instant::now();
    let (states, readings) = gates(&url).await;
    assert_eq!(states, [GateState::Unknown, GateState::Unknown]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by the timeout"
    );
    for e in errors(&readings) {
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("no answer within 300ms")),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_pointer_or_a_body_that_is_not_json_is_unknown() {
    let url = server(200, r#"{"flags": {}}"#, Duration::ZERO).await;
    let (states, readings) = gates(&url).await;
    assert_eq!(states, [GateState::Unknown, GateState::Unknown]);
    assert!(
        errors(&readings)[0]
            .as_deref()
            .is_some_and(|e| e.contains("nothing at \"/flags/write_enabled\"")),
        "{readings:?}"
    );
    let url = server(200, "<html>maintenance</html>", Duration::ZERO).await;
    let (states, readings) = gates(&url).await;
    assert_eq!(states, [GateState::Unknown, GateState::Unknown]);
    assert!(
        errors(&readings)[0]
            .as_deref()
            .is_some_and(|e| e.contains("not JSON")),
        "{readings:?}"
    );
}
