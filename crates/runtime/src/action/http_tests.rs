//! The `http` action against real HTTP servers on 127.0.0.1: the exact request, a status it
//! does not expect, a server that never answers, and — through a session with a transcript —
//! the undo on rollback with the header secret kept out of everything recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::mpsc;

use super::http::run;
use super::{ActionError, Actuator, Output};
use crate::session::{Session, SessionConfig};
use crate::source::BoxFuture;
use cutover_core::event::{Direction, Event, SessionMode, now_ms};
use cutover_core::plan::{Action, Plan};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A server answering every request with `status` and `body` (`{auth}` replaced by the
/// request's Authorization header, as a careless service echoing it would).
async fn server(status: u16, body: &'static str) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, text: String| {
            let tx = tx.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    headers,
                    body: text,
                });
                (
                    StatusCode::from_u16(status).unwrap(),
                    body.replace("{auth}", &auth),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

fn action(text: &str) -> (Plan, Action) {
    let plan = format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[step]]\nid = \"flag\"\nconfirm = \"go\"\naction = {text}\nirreversible = true\n"
    );
    let plan = cutover_core::plan::parse("p.toml", &plan).unwrap_or_else(|e| panic!("{e}"));
    let a = plan.steps[0].action.clone();
    (plan, a)
}

fn output() -> (Output, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Output::new("flag".into(), Direction::Do, tx), rx)
}

fn lines(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::ActionOutput { line, .. } = ev {
            out.push(line);
        }
    }
    out
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a request within 10s")
        .expect("the server is up")
}

fn http(a: &Action) -> &cutover_core::plan::http::HttpAction {
    match a {
        Action::Http(h) => h,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_http_action_sends_exactly_the_configured_request() {
    let (base, mut seen) = server(204, "").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "file-secret-0042\nignored second line\n").unwrap();
    // SAFETY: this test binary's only reader of this variable is this test.
    unsafe { std::env::set_var("CUTOVER_HTTP_TEST_TOKEN_A", "Bearer env-secret-0017") };
    let (_plan, a) = action(&format!(
        r#"{{ kind = "http", method = "PUT", url = "{base}/api/flags/write_enabled?tenant=a", headers = {{ "X-Request-Source" = "cutover" }}, headers_env = {{ Authorization = "CUTOVER_HTTP_TEST_TOKEN_A" }}, headers_file = {{ "X-Api-Key" = "{}" }}, json = {{ enabled = false, tenants = ["a", "b"] }}, expect = [204], timeout = "5s" }}"#,
        key_file.display()
    ));
    let (out, mut rx) = output();
    let msg = run(http(&a), &out).await.expect("204 is expected");
    assert!(msg.contains("204"), "{msg}");
    let req = next(&mut seen).await;
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/api/flags/write_enabled");
    let h = |n: &str| {
        req.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert_eq!(h("authorization"), "Bearer env-secret-0017");
    assert_eq!(h("x-api-key"), "file-secret-0042", "the file's first line");
    assert_eq!(h("x-request-source"), "cutover");
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&req.body).unwrap(),
        serde_json::json!({"enabled": false, "tenants": ["a", "b"]})
    );
    let said = lines(&mut rx).join("\n");
    assert!(said.contains("204 No Content"), "{said}");
    assert!(!said.contains("secret-00"), "{said}");
    assert!(seen.try_recv().is_err(), "exactly one request");
}

#[tokio::test]
async fn a_status_it_does_not_expect_fails_with_the_status_and_a_redacted_body_excerpt() {
    let (base, mut seen) = server(
        500,
        "flag service is down; you sent {auth}; retry later password=hunter2hunter",
    )
    .await;
    // SAFETY: this test binary's only reader of this variable is this test.
    unsafe { std::env::set_var("CUTOVER_HTTP_TEST_TOKEN_B", "tok-echoed-0099") };
    let (_plan, a) = action(&format!(
        r#"{{ kind = "http", method = "POST", url = "{base}/flags", headers_env = {{ Authorization = "CUTOVER_HTTP_TEST_TOKEN_B" }}, expect = [200] }}"#
    ));
    let (out, mut rx) = output();
    let err = run(http(&a), &out).await.expect_err("500 is not 200");
    let ActionError(text) = err;
    assert!(
        text.contains("answered 500 Internal Server Error, expected 200")
            && text.contains("flag service is down"),
        "{text}"
    );
    next(&mut seen).await;
    let said = lines(&mut rx).join("\n");
    for t in [&text, &said] {
        assert!(!t.contains("tok-echoed-0099"), "the header secret: {t}");
        assert!(
            !t.contains("hunter2hunter"),
            "a credential-looking pair: {t}"
        );
    }
    assert!(said.contains("body: flag service is down"), "{said}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (_plan, a) = action(&format!(
        r#"{{ kind = "http", method = "POST", url = "http://{addr}/hook", timeout = "300ms" }}"#
    ));
    let (out, _rx) = output();
    let started = std::time::Instant::now();
    let err = run(http(&a), &out).await.expect_err("no answer");
    assert!(err.0.contains("no answer within 300ms"), "{err}");
    assert!(err.0.contains("whether it took effect is unknown"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// Runs `http` actions only: the part of every backend's actuator this test needs.
struct HttpOnly;

impl Actuator for HttpOnly {
    fn run<'a>(
        &'a self,
        _plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async move {
            match action {
                Action::Http(h) => run(h, out).await,
                other => Err(ActionError(format!("not http: {other:?}"))),
            }
        })
    }
}

#[tokio::test]
async fn the_undo_runs_on_rollback_and_the_header_secret_never_reaches_the_transcript() {
    let (base, mut seen) = server(200, "{\"ok\":true,\"echo\":\"{auth}\"}").await;
    // SAFETY: this test binary's only reader of this variable is this test.
    unsafe { std::env::set_var("CUTOVER_HTTP_TEST_TOKEN_C", "Bearer sess-secret-7781") };
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[step]]\nid = \"flag-off\"\nconfirm = \"go\"\n\
         action = {{ kind = \"http\", method = \"PUT\", url = \"{base}/flags/write_enabled\", headers_env = {{ Authorization = \"CUTOVER_HTTP_TEST_TOKEN_C\" }}, json = {{ enabled = false }} }}\n\
         undo = {{ kind = \"http\", method = \"PUT\", url = \"{base}/flags/write_enabled/undo\", headers_env = {{ Authorization = \"CUTOVER_HTTP_TEST_TOKEN_C\" }}, json = {{ enabled = true }} }}\n"
    );
    let plan =
        Arc::new(cutover_core::plan::parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}")));
    let (mut session, mut inbox) = Session::open(SessionConfig {
        plan,
        mode: SessionMode::Drive,
        operator: "alice".into(),
        sessions_dir: Some(dir.path().to_path_buf()),
        actuator: Some(Arc::new(HttpOnly)),
        sign_key: None,
    })
    .unwrap();
    let finished = Arc::new(Mutex::new(Vec::new()));
    // Feeds the inbox to the session until step 0 has finished `n` actions.
    async fn drive(
        session: &mut Session,
        inbox: &mut crate::session::Inbox,
        finished: &Arc<Mutex<Vec<(Direction, bool)>>>,
        n: usize,
    ) {
        let wait = async {
            while finished.lock().unwrap().len() < n {
                let batch = inbox.next_batch().await;
                for ev in &batch {
                    if let Event::ActionFinished { direction, ok, .. } = ev {
                        finished.lock().unwrap().push((*direction, *ok));
                    }
                }
                session.ingest(batch).unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("the action finished within 20s");
    }
    session
        .ingest(vec![Event::StepConfirmed {
            at: now_ms(),
            step: "flag-off".into(),
            by: "alice".into(),
        }])
        .unwrap();
    drive(&mut session, &mut inbox, &finished, 1).await;
    let forward = next(&mut seen).await;
    assert_eq!(forward.path, "/flags/write_enabled");
    assert_eq!(forward.body, "{\"enabled\":false}");
    session
        .ingest(vec![Event::RollbackConfirmed {
            at: now_ms(),
            by: "alice".into(),
            reason: "test".into(),
        }])
        .unwrap();
    drive(&mut session, &mut inbox, &finished, 2).await;
    let back = next(&mut seen).await;
    assert_eq!(back.path, "/flags/write_enabled/undo");
    assert_eq!(back.body, "{\"enabled\":true}");
    assert_eq!(
        *finished.lock().unwrap(),
        [(Direction::Do, true), (Direction::Undo, true)]
    );
    let file = std::fs::read_to_string(session.transcript_path().unwrap()).unwrap();
    assert!(file.contains("200 OK"), "the status is recorded");
    assert!(
        file.contains("body: {\\\"ok\\\":true"),
        "an excerpt is recorded"
    );
    assert!(!file.contains("sess-secret-7781"), "the secret stays out");
}
