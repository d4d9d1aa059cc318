//! `--status-addr`: a read-only HTTP endpoint for dashboards and alerting. `GET /status` is
//! the document `cutover check --json` prints, live from the session's state; `GET /metrics`
//! is the same state in the Prometheus text format. Both are rendered together by the
//! session's observer into one snapshot, published on a watch channel: the server only ever
//! hands out the latest snapshot, so a slow or hostile client never reaches the session, and
//! the two documents of one snapshot (same `ETag`) always agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::check::{CheckReport, ReadingReport};
use crate::event::{AwsIdentity, Event, Reading, SourceKind};
use crate::plan::{Input, ReplicationInput, Value};
use crate::session::Session;
use crate::state::{GateState, InputValue, State, StepStatus};

/// The largest request accepted: a GET has no body, and its headers are small.
const MAX_REQUEST_BODY: u64 = 1024;
/// The snapshot is re-rendered at most this often for readings alone; a decision, an action
/// or a failure is published at once.
const READINGS_EVERY: Duration = Duration::from_millis(200);

/// A bound `--status-addr` listener, bound before the session opens so a taken port or a
/// refused address stops the command before anything happens.
pub struct StatusListener {
    listener: std::net::TcpListener,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "refusing to serve the status on {addr}: {reason}, and it tells anyone who can reach it what the cutover is doing (serve on 127.0.0.1 and forward it with `ssh -L`, or pass --allow-remote if you mean it)"
    )]
    Remote {
        addr: SocketAddr,
        reason: &'static str,
    },
    #[error("cannot listen on {addr} for --status-addr: {source} (choose another port)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl StatusListener {
    /// Binds `addr` (loopback unless `allow_remote`: the rule `--share` follows).
    pub fn bind(addr: SocketAddr, allow_remote: bool) -> Result<StatusListener, StatusError> {
        if let Some(reason) = crate::net::exposure(&addr, allow_remote) {
            return Err(StatusError::Remote { addr, reason });
        }
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| StatusError::Bind { addr, source })?;
        Ok(StatusListener { listener })
    }

    /// The address it listens on (the port the system chose for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// One rendering of the session's state.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    seq: u64,
    status: String,
    metrics: String,
}

/// The running endpoint; [`StatusHandle::shutdown`] stops it.
pub struct StatusHandle {
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl StatusHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and ends the open connections.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // The server ends when cancelled; a panic in it has nothing more to serve.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// Serves `/status` and `/metrics` for `session` on `listener`.
pub fn start(
    session: &mut Session,
    listener: StatusListener,
    aws: Option<AwsIdentity>,
) -> anyhow::Result<StatusHandle> {
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener.listener)?;
    let mut publisher = Publisher {
        readings: BTreeMap::new(),
        aws,
        seq: 0,
        last: None,
    };
    let (tx, rx) = watch::channel(Arc::new(publisher.render(&session.state)));
    session.observe(Box::new(move |batch, state| {
        if let Some(snapshot) = publisher.observe(batch, state) {
            // No receiver left means the server stopped; nothing to publish to.
            let _ = tx.send(Arc::new(snapshot));
        }
    }));
    let app = axum::Router::new()
        .route("/status", axum::routing::get(status))
        .route("/metrics", axum::routing::get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(bounded))
        .with_state(rx);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(serve(listener, app, stop.clone(), Limits::default()));
    tracing::info!(%addr, "serving /status and /metrics");
    Ok(StatusHandle { addr, stop, task })
}

/// What one client may hold of the endpoint.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections served at once; one more is closed at accept, so a flood of idle
    /// connections costs a file descriptor each, briefly, and never a task.
    connections: usize,
    /// The time a client has to send a request's headers (the first and each kept-alive
    /// one): a connection that opens and says nothing is closed after it.
    headers: Duration,
    /// The longest a connection lives, however it behaves (scrapers reconnect).
    lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 32,
            headers: Duration::from_secs(5),
            lifetime: Duration::from_secs(60),
        }
    }
}

/// Accepts until `stop`, serving each connection (HTTP/1.1) under `limits`.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: tokio_util::sync::CancellationToken,
    limits: Limits,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut refused_logged = false;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!("the status endpoint could not accept a connection: {e}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !refused_logged {
                tracing::warn!(
                    limit = limits.connections,
                    "the status endpoint is at its connection limit; closing new connections"
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let service = service.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.headers)
                .max_buf_size(16 * 1024);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
                () = tokio::time::sleep(limits.lifetime) => {}
            }
        });
    }
}

type Latest = watch::Receiver<Arc<Snapshot>>;

async fn status(axum::extract::State(rx): axum::extract::State<Latest>) -> Response {
    let snap = Arc::clone(&rx.borrow());
    respond(&snap, "application/json", snap.status.clone())
}

async fn metrics(axum::extract::State(rx): axum::extract::State<Latest>) -> Response {
    let snap = Arc::clone(&rx.borrow());
    respond(
        &snap,
        "text/plain; version=0.0.4; charset=utf-8",
        snap.metrics.clone(),
    )
}

fn respond(snap: &Snapshot, content_type: &'static str, body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The snapshot both documents were rendered from: equal tags, equal values.
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", snap.seq)) {
        headers.insert(header::ETAG, tag);
    }
    resp
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this endpoint serves GET /status and GET /metrics\n",
    )
        .into_response()
}

/// Refuses a request with a body larger than a GET ever has, before any handler runs.
async fn bounded(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if chunked || declared.is_some_and(|n| n > MAX_REQUEST_BODY) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "this endpoint takes no request body\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// Renders snapshots from the session's batches. Lives in the session's observer.
struct Publisher {
    /// The latest reading (or failure) of each source, per table or side where a source
    /// reads several.
    readings: BTreeMap<(SourceKind, String), Event>,
    aws: Option<AwsIdentity>,
    seq: u64,
    last: Option<Instant>,
}

impl Publisher {
    fn observe(&mut self, batch: &[Event], state: &State) -> Option<Snapshot> {
        let mut decisive = false;
        for ev in batch {
            match ev {
                Event::Observed { reading, .. } => {
                    if !matches!(reading, Reading::TaskLog(_)) {
                        self.readings
                            .insert((reading.source(), reading_key(reading)), ev.clone());
                    }
                }
                Event::SourceFailed { source, .. } => {
                    // A failure replaces what the source last read: the gates go unknown too.
                    self.readings.retain(|(s, _), _| s != source);
                    self.readings.insert((*source, String::new()), ev.clone());
                }
                Event::Tick { .. } => {}
                _ => decisive = true,
            }
        }
        let due = self.last.is_none_or(|t| t.elapsed() >= READINGS_EVERY);
        (decisive || due).then(|| self.render(state))
    }

    fn render(&mut self, state: &State) -> Snapshot {
        self.seq += 1;
        self.last = Some(Instant::now());
        let now = state.now;
        let readings: Vec<ReadingReport> = self
            .readings
            .values()
            .filter_map(|ev| crate::check::reading_report(ev, now))
            .collect();
        let mut report = crate::check::report(state, readings, now);
        report.aws = self.aws.clone();
        Snapshot {
            seq: self.seq,
            status: crate::check::render_check(&report, true),
            metrics: exposition(state, &report),
        }
    }
}

/// Which of a source's readings this is, for keeping the latest of each.
fn reading_key(r: &Reading) -> String {
    match r {
        Reading::Drift(d) => format!("drift {}", d.table),
        Reading::Database(d) => format!("database {:?}", d.side),
        Reading::Replication(_) => "replication".into(),
        Reading::Task(_) => "task".into(),
        Reading::TableStats { .. } => "table stats".into(),
        Reading::Metrics { .. } => "metrics".into(),
        Reading::Heartbeat { .. } => "heartbeat".into(),
        Reading::Dns(_) => "dns".into(),
        Reading::TaskLog(_) => "task log".into(),
        Reading::Probe(p) => format!("probe {}", p.name),
    }
}

/// A gate state as a number: 1 green, 0 red, -1 unknown.
fn gate_value(s: GateState) -> i64 {
    match s {
        GateState::Green => 1,
        GateState::Red => 0,
        GateState::Unknown => -1,
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes one metric family: HELP, TYPE and its samples (`labels` already rendered).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// A number input's value as the gates see it; `None` when unknown (missing, stale, failed):
/// the sample is then absent, never a made-up zero.
fn known_number(state: &State, input: &Input) -> Option<f64> {
    match state.input_value(input) {
        InputValue::Known {
            value: Value::Number(n),
            ..
        } => Some(n),
        _ => None,
    }
}

/// The state in the Prometheus text exposition format (version 0.0.4).
fn exposition(state: &State, report: &CheckReport) -> String {
    let plan = &state.plan;
    let mut out = String::new();
    let mode = state
        .mode
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    family(
        &mut out,
        "cutover_info",
        "gauge",
        "The session: plan name and hash, mode and operator (always 1).",
        &[(
            format!(
                "plan=\"{}\",plan_hash=\"{}\",mode=\"{}\",operator=\"{}\"",
                label(&plan.name),
                label(&plan.hash),
                label(&mode),
                label(state.operator.as_deref().unwrap_or(""))
            ),
            1.0,
        )],
    );
    family(
        &mut out,
        "cutover_session_mode",
        "gauge",
        "The session's mode as a label (always 1): drive, watch, rehearsal, rehearsal-autopilot.",
        &[(format!("mode=\"{}\"", label(&mode)), 1.0)],
    );
    let done = state
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .count();
    family(
        &mut out,
        "cutover_steps",
        "gauge",
        "Steps in the plan.",
        &[(String::new(), plan.steps.len() as f64)],
    );
    family(
        &mut out,
        "cutover_steps_done",
        "gauge",
        "Steps whose action finished successfully (and are not undone).",
        &[(String::new(), done as f64)],
    );
    let step_labels =
        |i: usize| format!("step=\"{}\",number=\"{}\"", label(&plan.steps[i].id), i + 1);
    family(
        &mut out,
        "cutover_step_status",
        "gauge",
        "Each step's status as a label (always 1): pending, running, done, failed, undoing, undone, undo failed, in doubt.",
        &(0..plan.steps.len())
            .map(|i| {
                (
                    format!(
                        "{},status=\"{}\"",
                        step_labels(i),
                        label(state.steps[i].status_label())
                    ),
                    1.0,
                )
            })
            .collect::<Vec<_>>(),
    );
    if let Some(s) = &report.step {
        family(
            &mut out,
            "cutover_next_step",
            "gauge",
            "The 1-based number of the next step (absent when no step can run).",
            &[(format!("step=\"{}\"", label(&s.id)), s.number as f64)],
        );
    }
    family(
        &mut out,
        "cutover_next_step_ready",
        "gauge",
        "Whether the next step may go, as /status's state: 1 green, 0 red, -1 unknown.",
        &[(String::new(), gate_value(report.state) as f64)],
    );
    let mut gates = Vec::new();
    for i in 0..plan.steps.len() {
        for (g, def) in state.step_gates(i).iter().zip(&plan.steps[i].gates) {
            gates.push((
                format!("{},gate=\"{}\"", step_labels(i), label(&def.text)),
                gate_value(g.state) as f64,
            ));
        }
    }
    family(
        &mut out,
        "cutover_gate_state",
        "gauge",
        "Each gate of each step: 1 green, 0 red, -1 unknown (missing, stale or failed readings).",
        &gates,
    );
    let figures: [(&str, &str, Input); 4] = [
        (
            "cutover_replication_lag_seconds",
            "Replication apply lag, seconds, as gates on replication.lag_s see it (absent when unknown).",
            Input::Replication(ReplicationInput::LagS),
        ),
        (
            "cutover_replication_backlog",
            "Changes waiting to be applied, as gates on replication.backlog see it (absent when unknown).",
            Input::Replication(ReplicationInput::Backlog),
        ),
        (
            "cutover_drift_rows",
            "Rows differing between source and target, all tables, as gates on drift.rows see it (absent when unknown).",
            Input::DriftRows,
        ),
        (
            "cutover_drift_mismatched_tables",
            "Tables whose checksums differ, as gates on drift.mismatched see it (absent when unknown).",
            Input::DriftMismatched,
        ),
    ];
    for (name, help, input) in figures {
        let samples: Vec<(String, f64)> = known_number(state, &input)
            .map(|v| (String::new(), v))
            .into_iter()
            .collect();
        family(&mut out, name, "gauge", help, &samples);
    }
    // How long writes have been frozen in this window (the fold's freeze→unfreeze window, as
    // the budget counts it); absent before the freeze. The rehearsal world's own measure of
    // refused writes is separate.
    let window: Vec<(String, f64)> = state
        .downtime
        .used_ms(state.now)
        .map(|ms| (String::new(), ms as f64 / 1000.0))
        .into_iter()
        .collect();
    family(
        &mut out,
        "cutover_downtime_seconds",
        "gauge",
        "Seconds writes have been frozen: from the freeze step's start to the unfreeze (or the freeze's undo).",
        &window,
    );
    let budget: Vec<(String, f64)> = state
        .plan
        .budget
        .as_ref()
        .map(|b| (String::new(), b.max_ms as f64 / 1000.0))
        .into_iter()
        .collect();
    family(
        &mut out,
        "cutover_downtime_budget_seconds",
        "gauge",
        "The plan's max_downtime, seconds (absent without one).",
        &budget,
    );
    let world: Vec<(String, f64)> = state
        .world
        .as_ref()
        .map(|w| (String::new(), w.downtime_s))
        .into_iter()
        .collect();
    family(
        &mut out,
        "cutover_rehearsal_write_downtime_seconds",
        "gauge",
        "Rehearsals: seconds the world's clients had writes refused, as the world measured them.",
        &world,
    );
    family(
        &mut out,
        "cutover_guard_holds",
        "gauge",
        "Guards (abort conditions, step timeouts) holding forward steps.",
        &[(String::new(), state.guard_holds.len() as f64)],
    );
    family(
        &mut out,
        "cutover_rollback_active",
        "gauge",
        "1 once a rollback has been decided in this session, else 0.",
        &[(String::new(), f64::from(u8::from(state.rollback.is_some())))],
    );
    family(
        &mut out,
        "cutover_source_up",
        "gauge",
        "1 when the source's last poll succeeded, 0 when it failed.",
        &state
            .health
            .iter()
            .map(|(kind, h)| {
                (
                    format!("source=\"{}\"", label(kind.as_str())),
                    f64::from(u8::from(h.current_error().is_none() && h.last_ok.is_some())),
                )
            })
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "cutover_events_folded_total",
        "counter",
        "Events recorded and folded in this session.",
        &[(String::new(), state.events as f64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_remote_addresses_need_allow_remote() {
        for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:9464"] {
            let err = StatusListener::bind(addr.parse().unwrap(), false)
                .err()
                .expect("refused");
            assert!(matches!(err, StatusError::Remote { .. }), "{addr}: {err}");
            assert!(err.to_string().contains("--allow-remote"), "{err}");
        }
        assert!(StatusListener::bind("0.0.0.0:0".parse().unwrap(), true).is_ok());
        assert!(StatusListener::bind("[::1]:0".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn a_taken_port_names_the_address_and_the_fix() {
        let first = StatusListener::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = first.local_addr().unwrap();
        let err = StatusListener::bind(addr, false).err().expect("taken");
        let text = err.to_string();
        assert!(
            text.contains(&addr.to_string()) && text.contains("choose another port"),
            "{text}"
        );
    }

    /// A server under `limits` answering `GET /` with "ok".
    async fn server(limits: Limits) -> (SocketAddr, tokio_util::sync::CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(serve(listener, app, stop.clone(), limits));
        (addr, stop)
    }

    /// Reads until the peer closes (or `within` passes: then None).
    async fn read_to_close(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut got))
            .await
            .ok()
            .map(|_| String::from_utf8_lossy(&got).into_owned())
    }

    /// One `GET /` on a new connection: what came back before the close (None: no close).
    async fn request(addr: SocketAddr) -> Option<String> {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut s, Duration::from_secs(10)).await
    }

    async fn get(addr: SocketAddr) -> String {
        request(addr).await.expect("an answer")
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_closed_after_the_header_timeout() {
        use tokio::io::AsyncWriteExt;
        let limits = Limits {
            headers: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = server(limits).await;
        // Silent, then half a request line: both are closed without an answer.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HT").await.unwrap();
        for s in [&mut silent, &mut slow] {
            let got = read_to_close(s, Duration::from_secs(10)).await;
            assert!(
                got.as_deref().is_some_and(|g| !g.contains("200 OK")),
                "closed without an answer: {got:?}"
            );
        }
        assert!(get(addr).await.contains("200 OK"));
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_and_a_freed_slot_serves_again() {
        let limits = Limits {
            connections: 3,
            headers: Duration::from_secs(30),
            ..Limits::default()
        };
        let (addr, _stop) = server(limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // The fourth is closed at once (the kernel accepted it; the server drops it).
        let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            read_to_close(&mut fourth, Duration::from_secs(10))
                .await
                .as_deref(),
            Some(""),
            "closed without a byte"
        );
        // One held connection leaves: its slot serves the next client.
        drop(held.pop());
        let answered = async {
            loop {
                if request(addr).await.is_some_and(|g| g.contains("200 OK")) {
                    return;
                }
                // The slot frees when the server notices the close: ask again.
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("a freed slot serves again");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label("dns.value == \"a\\b\"\nx"),
            "dns.value == \\\"a\\\\b\\\"\\nx"
        );
    }
}
