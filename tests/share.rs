//! Pairing over real sockets on 127.0.0.1 (and a Unix socket): a driver session in one task,
//! peers in others (and, where the binary is wired, in another process). Every wait is on a
//! condition with a deadline, never a sleep.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use cutover::action::{ActionError, Actuator, Output};
use cutover::event::{Event, MetricSeries, Reading, TaskReading, now_ms};
use cutover::plan::{self, Action, Plan};
use cutover::session::{Session, SessionConfig};
use cutover::share::protocol::{
    self, DriverMsg, FrameReader, MAX_DRIVER_FRAME, MAX_PEER_FRAME, PROTOCOL, PeerMsg, VERSION,
};
use cutover::share::tls::{self, TlsStream};
use cutover::share::{
    AttachError, AttachToken, Incoming, PeerLink, ShareAddr, ShareError, ShareHandle, ShareOptions,
    Watcher, Welcome, connect, start_share,
};
use cutover::share::{AttachScreen, Fingerprint, PeerAction};
use cutover::source::BoxFuture;
use cutover::state::{State, StepStatus};
use cutover::ui::{self, Mode, Theme, UiState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::text::Line;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

const WAIT: Duration = Duration::from_secs(20);

const PLAN: &str = r#"
name = "pairing"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "rehearsal"
task = "t"
[rehearsal]
tables = ["a"]
[[step]]
id = "announce"
title = "Announce the window"
action = { kind = "manual", instructions = "post the notice" }
confirm = "announced"
approvals = 1
[[step]]
id = "check"
gates = ["cdc.latency_target <= 5 fresh 60s", "task.status == running fresh 60s"]
confirm = "checked"
"#;

fn plan() -> Arc<Plan> {
    Arc::new(plan::parse("pairing.toml", PLAN).expect("the test plan is valid"))
}

// ---------------------------------------------------------------------------------------
// Log capture: every test's tracing output, to prove the token never reaches a log.

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_log() -> &'static LogBuf {
    static LOG: OnceLock<LogBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
}

// ---------------------------------------------------------------------------------------
// The driver: a session in its own task, fed by the test and by its inbox.

struct Noop;

impl Actuator for Noop {
    fn run<'a>(
        &'a self,
        _: &'a Plan,
        _: &'a Action,
        _: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async { Ok("ok".to_string()) })
    }
}

enum Cmd {
    Ingest(Vec<Event>, oneshot::Sender<Duration>),
    State(oneshot::Sender<State>),
}

struct Driver {
    cmds: mpsc::UnboundedSender<Cmd>,
    folded: watch::Receiver<u64>,
    share: Option<ShareHandle>,
    addr: ShareAddr,
    /// The shared observers' token (a share without invites).
    token: Option<AttachToken>,
    /// Each invite's token, by name.
    tokens: std::collections::HashMap<String, AttachToken>,
    /// The TLS certificate's fingerprint (TCP shares only).
    pin: Option<Fingerprint>,
    transcript: Option<PathBuf>,
    /// Every event recorded, in order (the state's log keeps only the newest lines).
    recorded: Arc<Mutex<Vec<Event>>>,
}

struct DriverOpts {
    share: ShareOptions,
    sessions_dir: Option<PathBuf>,
    operator: String,
    plan: Arc<Plan>,
}

impl Default for DriverOpts {
    fn default() -> Self {
        DriverOpts {
            share: ShareOptions::new("127.0.0.1:0".parse().unwrap()),
            sessions_dir: None,
            operator: "op".into(),
            plan: plan(),
        }
    }
}

async fn start_driver(opts: DriverOpts) -> Driver {
    captured_log();
    let (mut session, mut inbox) = Session::open(SessionConfig {
        plan: opts.plan,
        mode: "test".into(),
        operator: opts.operator,
        sessions_dir: opts.sessions_dir,
        actuator: Some(Arc::new(Noop)),
        sign_key: None,
    })
    .unwrap();
    let share = start_share(&mut session, opts.share)
        .await
        .expect("sharing starts");
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&recorded);
    session.add_tap(Box::new(move |batch: &[Event], _: Option<&str>| {
        sink.lock().unwrap().extend_from_slice(batch)
    }));
    let transcript = session.transcript_path().map(|p| p.to_path_buf());
    let (cmds, mut rx) = mpsc::unbounded_channel();
    let (folded_tx, folded) = watch::channel(session.state.events);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                batch = inbox.next_batch() => {
                    session.ingest(batch).unwrap();
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Ingest(batch, done)) => {
                        let t = Instant::now();
                        session.ingest(batch).unwrap();
                        let _ = done.send(t.elapsed());
                    }
                    Some(Cmd::State(tx)) => {
                        let _ = tx.send(session.state.clone());
                    }
                },
            }
            folded_tx.send_replace(session.state.events);
        }
    });
    Driver {
        cmds,
        folded,
        addr: share.addr().clone(),
        token: share.attach_command().map(|c| token_in(&c)),
        tokens: share
            .control()
            .invites()
            .iter()
            .map(|i| {
                let cmd = share.command_for(&i.name).expect("a live invite");
                (i.name.clone(), token_in(&cmd))
            })
            .collect(),
        pin: share.fingerprint().copied(),
        share: Some(share),
        transcript,
        recorded,
    }
}

impl Driver {
    fn share(&self) -> &ShareHandle {
        self.share.as_ref().unwrap()
    }

    fn addr(&self) -> ShareAddr {
        self.addr.clone()
    }

    /// The shared observers' token.
    fn token(&self) -> AttachToken {
        self.token
            .clone()
            .expect("a share without invites has a shared token")
    }

    /// `name`'s invite token, or the shared one.
    fn token_for(&self, name: &str) -> AttachToken {
        self.tokens
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.token())
    }

    fn pin(&self) -> Option<&Fingerprint> {
        self.pin.as_ref()
    }

    /// Whether a recorded note contains `needle`.
    fn noted(&self, needle: &str) -> bool {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Note { text, .. } if text.contains(needle)))
    }

    /// Records and folds a batch; returns how long `Session::ingest` took.
    async fn ingest(&self, batch: Vec<Event>) -> Duration {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Ingest(batch, tx)).unwrap();
        rx.await.unwrap()
    }

    async fn state(&self) -> State {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::State(tx)).unwrap();
        rx.await.unwrap()
    }

    async fn wait_for(&mut self, what: &str, cond: impl Fn(&State) -> bool) -> State {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.folded.borrow_and_update();
            let s = self.state().await;
            if cond(&s) {
                return s;
            }
            if tokio::time::timeout_at(deadline, self.folded.changed())
                .await
                .is_err()
            {
                let log: Vec<_> = s.log.iter().map(|l| l.text.clone()).collect();
                panic!("driver: timed out waiting for {what}; log: {log:#?}");
            }
        }
    }
}

fn note(text: impl Into<String>) -> Event {
    Event::Note {
        at: now_ms(),
        text: text.into(),
    }
}

fn logged(s: &State, needle: &str) -> bool {
    s.log.iter().any(|l| l.text.contains(needle))
}

/// A varied stretch of session: readings, ticks, notes, a dialog opened and cancelled.
fn some_events(n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..n {
        let at = now_ms();
        out.push(match i % 5 {
            0 => Event::Observed {
                at,
                reading: Reading::Metrics {
                    observed_at: at,
                    series: vec![MetricSeries {
                        name: "CDCLatencyTarget".into(),
                        unit: Some("Seconds".into()),
                        points: vec![(at + i as i64, (i % 7) as f64)],
                    }],
                },
            },
            1 => Event::Observed {
                at,
                reading: Reading::Task(TaskReading {
                    observed_at: at,
                    task: "t".into(),
                    status: if i % 2 == 0 { "running" } else { "starting" }.into(),
                    stop_reason: None,
                    full_load_pct: Some(100.0),
                    tables_loaded: Some(1),
                    tables_loading: Some(0),
                    tables_queued: Some(0),
                    tables_errored: Some(0),
                }),
            },
            2 => Event::Tick { at },
            3 => note(format!("note {i}")),
            _ => Event::StepConfirmRequested {
                at,
                step: "check".into(),
                by: "op".into(),
            },
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Peers.

struct Peer {
    welcome: Welcome,
    link: PeerLink,
    w: Watcher,
}

/// The token in an attach command.
fn token_in(cmd: &str) -> AttachToken {
    let t = cmd
        .split("--token ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an attach command holds a token");
    AttachToken::new(t)
}

/// Options for a share that invites each of `specs` (`NAME[:role]`).
fn inviting(specs: &[&str]) -> DriverOpts {
    let mut o = DriverOpts::default();
    o.share.invites = specs.iter().map(|s| s.parse().unwrap()).collect();
    o
}

async fn attach(d: &Driver, name: &str) -> Peer {
    let (welcome, link) = connect(&d.addr(), d.pin(), &d.token_for(name), name)
        .await
        .expect("attach succeeds");
    let w = Watcher::new(Arc::clone(&welcome.plan));
    Peer { welcome, link, w }
}

impl Peer {
    /// Approves `step` with `phrase`, carrying what this peer's screen shows now.
    fn approve(&self, step: &str, phrase: &str) {
        let seen = match self.w.state.plan.step_index(step) {
            Some(i) => self.w.evidence(i),
            None => self.w.evidence(usize::MAX),
        };
        self.link.approve(step, phrase, seen);
    }

    async fn wait_for(&mut self, what: &str, cond: impl Fn(&Watcher) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(&self.w) {
            match tokio::time::timeout_at(deadline, self.link.next()).await {
                Ok(Some(m)) => self.w.handle(m),
                Ok(None) => panic!(
                    "peer: the link ended while waiting for {what}: {:?}",
                    self.w.closed
                ),
                Err(_) => panic!("peer: timed out waiting for {what} (seq {})", self.w.seq),
            }
        }
    }

    async fn wait_seq(&mut self, seq: u64) {
        self.wait_for(&format!("event {seq}"), |w| w.seq >= seq)
            .await;
    }

    async fn wait_notice(&mut self, needle: &str) -> String {
        self.wait_for(&format!("a notice with {needle:?}"), |w| {
            w.notices.iter().any(|n| n.contains(needle))
        })
        .await;
        self.w
            .notices
            .iter()
            .find(|n| n.contains(needle))
            .cloned()
            .unwrap()
    }
}

/// The cockpit as the view draws `state` (the same `UiState` for both sides, so only the
/// fold can make them differ).
fn screen(state: &State) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(140, 44)).unwrap();
    let ui_state = UiState::new(Mode::Watch, "viewer".into(), None);
    term.draw(|f| ui::draw(f, state, &ui_state, &Theme::no_color()))
        .unwrap();
    term.backend().buffer().clone()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The folded states agree on everything the cockpit shows.
fn assert_same_state(peer: &State, driver: &State) {
    assert_eq!(peer.events, driver.events, "event count");
    assert_eq!(peer.now, driver.now);
    assert_eq!(peer.mode, driver.mode);
    assert_eq!(peer.operator, driver.operator);
    assert_eq!(peer.started_at, driver.started_at);
    assert_eq!(peer.replication, driver.replication);
    assert_eq!(peer.tables, driver.tables);
    assert_eq!(peer.metrics, driver.metrics);
    assert_eq!(peer.heartbeat_history, driver.heartbeat_history);
    assert_eq!(peer.dns, driver.dns);
    assert_eq!(peer.health, driver.health);
    assert_eq!(peer.steps, driver.steps);
    assert_eq!(peer.holds, driver.holds);
    assert_eq!(peer.rollback, driver.rollback);
    assert_eq!(peer.dialog, driver.dialog);
    assert_eq!(peer.faults, driver.faults);
    assert_eq!(peer.world, driver.world);
    assert_eq!(peer.peers, driver.peers);
    assert_eq!(peer.log, driver.log);
    assert_eq!(peer.ended, driver.ended);
    for i in 0..driver.steps.len() {
        assert_eq!(
            peer.step_gates(i),
            driver.step_gates(i),
            "gates of step {i}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Raw connections, for what a well-behaved client never sends.

/// A TCP connection with no TLS: what a plaintext client (or a port scanner) opens.
async fn plain(d: &Driver) -> TcpStream {
    let ShareAddr::Tcp(sa) = d.addr() else {
        panic!("a TCP share")
    };
    TcpStream::connect(sa).await.unwrap()
}

/// A TLS connection pinned to the driver's certificate, for writing raw frames.
async fn raw(d: &Driver) -> TlsStream<TcpStream> {
    pinned(d, plain(d).await).await
}

async fn pinned(d: &Driver, tcp: TcpStream) -> TlsStream<TcpStream> {
    tls::connect_pinned(tcp, *d.pin().expect("a TCP share has a fingerprint"))
        .await
        .expect("the TLS handshake with the pinned certificate succeeds")
}

fn hello(token: &AttachToken, name: &str, version: u32) -> Vec<u8> {
    protocol::encode(
        &PeerMsg::Hello {
            protocol: PROTOCOL.into(),
            version,
            token: token.clone(),
            name: name.into(),
        },
        MAX_PEER_FRAME,
    )
    .unwrap()
}

/// Reads what the driver sends until it closes; a reset counts as a close.
async fn read_until_closed<R: AsyncRead + Unpin>(r: R) -> Vec<DriverMsg> {
    let mut reader = FrameReader::new(r, MAX_DRIVER_FRAME);
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, reader.next_msg::<DriverMsg>()).await {
            Ok(Ok(Some(m))) => got.push(m),
            Ok(Ok(None)) | Ok(Err(_)) => return got,
            Err(_) => panic!("the driver did not close the connection; got {got:?}"),
        }
    }
}

fn bye_reason(msgs: &[DriverMsg]) -> Option<&str> {
    msgs.iter().rev().find_map(|m| match m {
        DriverMsg::Bye { reason } => Some(reason.as_str()),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_state_matches_the_drivers_at_the_same_event() {
    let mut d = start_driver(DriverOpts::default()).await;
    let mut p = attach(&d, "ann").await;
    assert_eq!(p.welcome.name, "ann");
    assert_eq!(p.welcome.info.operator, "op");
    assert_eq!(p.welcome.plan.hash, plan().hash);
    d.wait_for("ann to be listed as a watcher", |s| s.peers.contains("ann"))
        .await;

    for chunk in 0..4 {
        d.ingest(some_events(50 + chunk)).await;
        let driver = d.state().await;
        p.wait_seq(driver.events).await;
        assert_eq!(p.w.seq, driver.events, "the peer is at the driver's event");
        assert_same_state(&p.w.state, &driver);
        assert_eq!(screen(&p.w.state), screen(&driver), "the screens differ");
    }
    assert!(p.w.caught_up);
    assert!(
        p.w.state.peers.contains("ann"),
        "the peer sees itself listed"
    );
}

/// Joins after 1000 events; the peer folds them all, then follows live.
async fn late_join(opts: DriverOpts) {
    let d = start_driver(opts).await;
    for _ in 0..10 {
        d.ingest(some_events(100)).await;
    }
    let before = d.state().await.events;
    let mut p = attach(&d, "late").await;
    p.wait_for("the catch-up marker", |w| w.caught_up).await;
    assert!(
        p.w.seq >= before,
        "every event before the join arrived ({} < {before})",
        p.w.seq
    );
    assert_eq!(
        p.w.state.started_at,
        d.state().await.started_at,
        "from the session's first event"
    );

    d.ingest(some_events(37)).await;
    d.ingest(vec![note("after the join")]).await;
    let driver = d.state().await;
    p.wait_seq(driver.events).await;
    assert_same_state(&p.w.state, &driver);
    assert_eq!(screen(&p.w.state), screen(&driver), "the screens differ");
    assert!(logged(&p.w.state, "after the join"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_from_memory_without_a_transcript() {
    late_join(DriverOpts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_from_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    late_join(DriverOpts {
        sessions_dir: Some(dir.path().to_path_buf()),
        ..DriverOpts::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_right_one_still_works() {
    let mut d = start_driver(DriverOpts::default()).await;
    let wrong = AttachToken::new("0".repeat(40));
    let err = connect(&d.addr(), d.pin(), &wrong, "mallory")
        .await
        .err()
        .expect("refused");
    match &err {
        AttachError::Refused { reason, .. } => {
            assert!(reason.contains("token is wrong"), "{reason}")
        }
        other => panic!("expected a refusal, got {other}"),
    }
    d.wait_for("the refusal recorded", |s| {
        logged(s, "was refused: the attach token is wrong")
    })
    .await;
    let s = d.state().await;
    assert!(s.peers.is_empty(), "a refused peer is not a watcher");

    // A prefix of the right token is wrong too.
    let prefix = AttachToken::new(&d.token().reveal()[..20]);
    assert!(matches!(
        connect(&d.addr(), d.pin(), &prefix, "mallory").await,
        Err(AttachError::Refused { .. })
    ));

    let mut p = attach(&d, "ann").await;
    d.ingest(vec![note("still serving")]).await;
    p.wait_for("the note", |w| logged(&w.state, "still serving"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_and_receives_no_event_byte() {
    let d = start_driver(DriverOpts::default()).await;
    d.ingest(vec![note("for pinned eyes only")]).await;
    // A client that skips TLS and writes a perfectly good hello, right token included.
    let mut s = plain(&d).await;
    // The driver may close before the write lands; what matters is what comes back.
    let _ = s.write_all(&hello(&d.token(), "plain", VERSION)).await;
    let mut got = Vec::new();
    // A reset counts as a close (`Err`); either way, at most a TLS alert record (type 21)
    // came back.
    let _closed = tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("the driver closes a plaintext connection");
    assert!(
        got.len() <= 7 && got.first().is_none_or(|b| *b == 0x15),
        "a plaintext client got {} bytes: {got:?}",
        got.len()
    );
    assert!(!matches!(
        FrameReader::new(&got[..], MAX_DRIVER_FRAME)
            .next_msg::<DriverMsg>()
            .await,
        Ok(Some(_))
    ));
    let s = d.state().await;
    assert!(!s.peers.contains("plain"), "not admitted");
    assert!(
        !logged(&s, "the attach token is wrong"),
        "its hello was never read"
    );

    // The right fingerprint and token still attach.
    let mut p = attach(&d, "ann").await;
    p.wait_for("the note", |w| logged(&w.state, "for pinned eyes only"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinning_another_fingerprint_is_refused_before_any_event() {
    let d = start_driver(DriverOpts::default()).await;
    d.ingest(vec![note("for pinned eyes only")]).await;
    let pin = *d.pin().unwrap();
    assert!(
        d.share()
            .attach_command()
            .expect("a shared token")
            .ends_with(&format!("--fingerprint {pin}")),
        "{pin}"
    );
    let wrong = Fingerprint::of(b"a certificate the relay made");
    assert_ne!(wrong, pin);

    let err = connect(&d.addr(), Some(&wrong), &d.token(), "mallory")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, AttachError::Fingerprint { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains("--fingerprint"),
        "{msg}"
    );
    assert!(!msg.contains(d.token().reveal()), "{msg}");

    // At the TLS level: the handshake fails, so not one frame can arrive.
    let failed = tls::connect_pinned(plain(&d).await, wrong)
        .await
        .expect_err("the handshake fails on the pin");
    assert!(tls::is_pin_mismatch(&failed), "{failed}");

    // No fingerprint for a TCP address is a clear error, before any connection.
    let err = connect(&d.addr(), None, &d.token(), "ann")
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, AttachError::NoFingerprint { .. })
            && msg.contains("--fingerprint")
            && msg.contains("press T"),
        "{msg}"
    );

    // ... and so it is from the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["attach", &d.addr().to_string(), "--name", "ann"])
        .env("CUTOVER_ATTACH_TOKEN", d.token().reveal())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--fingerprint") && stderr.contains("press T"),
        "{stderr}"
    );
    assert!(!stderr.contains(d.token().reveal()), "{stderr}");

    let s = d.state().await;
    assert!(!s.peers.contains("mallory"));
    assert!(
        !logged(&s, "the attach token is wrong"),
        "no token was sent"
    );
    let mut p = attach(&d, "ann").await;
    p.wait_for("the note", |w| logged(&w.state, "for pinned eyes only"))
        .await;
}

/// The reason the driver gives a raw hello with `name`.
async fn refusal_of(d: &Driver, name: &str) -> String {
    let mut s = raw(d).await;
    s.write_all(&hello(&d.token(), name, VERSION))
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(
        !got.iter().any(|m| matches!(m, DriverMsg::Hello { .. })),
        "{name:?} was admitted"
    );
    bye_reason(&got)
        .unwrap_or_else(|| panic!("{name:?}: no reason given: {got:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_characters_and_the_drivers_name_in_disguise_are_refused() {
    let mut d = start_driver(DriverOpts {
        operator: "olga".into(),
        ..DriverOpts::default()
    })
    .await;
    let reason = refusal_of(&d, "ol\u{200b}ga").await;
    assert!(
        reason.contains("U+200B") && reason.contains("--name"),
        "{reason}"
    );
    let reason = refusal_of(&d, "\u{202e}agl\u{202c}o").await;
    assert!(reason.contains("U+202E"), "{reason}");
    for disguise in ["OLGA", "ｏｌｇａ", " Olga "] {
        let reason = refusal_of(&d, disguise).await;
        assert!(
            reason.contains("driver's own name"),
            "{disguise:?}: {reason}"
        );
    }
    let s = d.state().await;
    assert!(s.peers.is_empty(), "{:?}", s.peers);

    // A fullwidth name is admitted in its NFKC form, and that is the name it is shown under.
    let p = attach(&d, "ｂｏｂ").await;
    assert_eq!(p.welcome.name, "bob");
    d.wait_for("bob listed", |s| s.peers.contains("bob")).await;
    // ... so "BOB" is then the same person, already attached.
    let reason = refusal_of(&d, "BOB").await;
    assert!(reason.contains("already attached"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbage_frames_close_only_that_connection() {
    let mut d = start_driver(DriverOpts::default()).await;
    let mut good = attach(&d, "ann").await;

    // A length prefix far over the limit, before any hello.
    let mut s = raw(&d).await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let got = read_until_closed(&mut s).await;
    if let Some(reason) = bye_reason(&got) {
        assert!(reason.contains("exceeds the limit"), "{reason}");
    }
    assert!(!got.iter().any(|m| matches!(m, DriverMsg::Hello { .. })));

    // Garbage in a well-formed frame.
    let mut s = raw(&d).await;
    let mut frame = 12u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"\x00\xffnot json!!");
    s.write_all(&frame).await.unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(
        bye_reason(&got)
            .unwrap()
            .contains("not a valid attach message"),
        "{got:?}"
    );

    // Plain text (an HTTP client, say) reads as a huge length.
    let mut s = raw(&d).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(!got.iter().any(|m| matches!(m, DriverMsg::Hello { .. })));

    // An admitted peer that sends an oversized frame is dropped, and recorded as such.
    // (Read up to the catch-up marker first: a close with unread bytes may reset the
    // connection, and what matters here is what the driver does, not what bob reads.)
    let (r, mut w) = tokio::io::split(raw(&d).await);
    w.write_all(&hello(&d.token(), "bob", VERSION))
        .await
        .unwrap();
    let mut reader = FrameReader::new(r, MAX_DRIVER_FRAME);
    assert!(matches!(
        reader.next_msg::<DriverMsg>().await.unwrap(),
        Some(DriverMsg::Hello { .. })
    ));
    while !matches!(
        reader.next_msg::<DriverMsg>().await.unwrap(),
        Some(DriverMsg::CaughtUp { .. })
    ) {}
    let mut oversized = (MAX_PEER_FRAME as u32 + 1).to_be_bytes().to_vec();
    oversized.extend(vec![b'x'; 1024]);
    w.write_all(&oversized).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, reader.next_msg::<DriverMsg>())
            .await
            .expect("closed")
        {
            Ok(Some(DriverMsg::Bye { reason })) => {
                assert!(reason.contains("exceeds the limit"), "{reason}");
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    d.wait_for("bob dropped for an oversized frame", |s| {
        logged(s, "bob dropped: frame of") && !s.peers.contains("bob")
    })
    .await;

    // An admitted peer that sends garbage is dropped too.
    let mut s = raw(&d).await;
    s.write_all(&hello(&d.token(), "carl", VERSION))
        .await
        .unwrap();
    s.write_all(&frame).await.unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(
        bye_reason(&got)
            .unwrap()
            .contains("not a valid attach message")
    );
    d.wait_for("carl dropped", |s| {
        logged(s, "carl dropped: not a valid attach message")
    })
    .await;

    // The good peer saw all of it, and the driver still admits newcomers.
    d.ingest(vec![note("after the garbage")]).await;
    let driver = d.state().await;
    good.wait_seq(driver.events).await;
    assert_same_state(&good.w.state, &driver);
    assert!(good.w.closed.is_none());
    let _late = attach(&d, "dora").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_version_or_a_taken_name_is_refused_with_the_reason() {
    let d = start_driver(DriverOpts::default()).await;
    let mut s = raw(&d).await;
    s.write_all(&hello(&d.token(), "ann", VERSION + 1))
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    let reason = bye_reason(&got).unwrap();
    assert!(
        reason.contains(&format!("version {}", VERSION + 1))
            && reason.contains("same cutover release"),
        "{reason}"
    );

    let _ann = attach(&d, "ann").await;
    let err = connect(&d.addr(), d.pin(), &d.token(), "ann")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("already attached") && err.contains("--name"),
        "{err}"
    );
    let err = connect(&d.addr(), d.pin(), &d.token(), "op")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("driver's own name"), "{err}");
    let err = connect(&d.addr(), d.pin(), &d.token(), "  ")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("name is empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_dropped_and_the_driver_never_waits() {
    let mut opts = DriverOpts::default();
    opts.share.peer_queue = 256;
    opts.share.idle_timeout = Duration::from_secs(600);
    let mut d = start_driver(opts).await;

    // Baseline: the same ingests with nobody attached.
    let big = "x".repeat(8 * 1024);
    let mut baseline = Duration::ZERO;
    for i in 0..500 {
        baseline += d.ingest(vec![note(format!("{i} {big}"))]).await;
    }

    // A healthy peer keeps reading; a stalled one says hello and never reads again.
    let mut healthy = attach(&d, "ann").await;
    // A small receive buffer (it turns off autotuning, which may grow to 32 MiB on loopback).
    let ShareAddr::Tcp(sa) = d.addr() else {
        panic!("a TCP share")
    };
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut stalled = pinned(&d, socket.connect(sa).await.unwrap()).await;
    stalled
        .write_all(&hello(&d.token(), "stuck", VERSION))
        .await
        .unwrap();
    d.wait_for("stuck to be listed", |s| s.peers.contains("stuck"))
        .await;

    let reader = tokio::spawn(async move {
        let mut w = healthy.w;
        while let Some(m) = healthy.link.next().await {
            let last = matches!(&m, Incoming::Event { event: Event::Note { text, .. }, .. } if text == "the last note");
            w.handle(m);
            if last {
                break;
            }
        }
        w
    });

    // 4000 notes of 8 KiB: far more than the stalled peer's socket buffers and queue hold.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    for i in 0..4000 {
        let took = d.ingest(vec![note(format!("{i} {big}"))]).await;
        worst = worst.max(took);
        total += took;
    }
    d.ingest(vec![note("the last note")]).await;
    let wall = started.elapsed();
    eprintln!(
        "4000 ingests with a stalled peer: {:?} in ingest (worst {worst:?}), {wall:?} wall; \
         baseline 500 ingests with no peer: {baseline:?}",
        total
    );

    let s = d
        .wait_for("the stalled peer to be dropped", |s| {
            !s.peers.contains("stuck")
        })
        .await;
    assert!(
        d.noted("stuck dropped: fell 256 events behind"),
        "the drop is recorded with its reason"
    );
    assert!(s.peers.contains("ann"), "the healthy peer stays");
    // A blocked tap would have hung the loop above; a slow one shows here. 8 KiB notes take
    // microseconds to fold; a second is only there to absorb a loaded CI machine.
    assert!(worst < Duration::from_secs(1), "an ingest took {worst:?}");
    assert!(
        total / 8 < baseline + Duration::from_millis(500),
        "ingest per event with a stalled peer ({:?}) is far above the baseline ({:?})",
        total / 4000,
        baseline / 500
    );

    let w = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the healthy peer kept up")
        .unwrap();
    assert!(
        w.closed.is_none(),
        "the healthy peer was not dropped: {:?}",
        w.closed
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_eyes_step_waits_for_an_approval_then_runs() {
    let mut d = start_driver(inviting(&["ann:approver", "bob"])).await;
    let confirm = || Event::StepConfirmed {
        at: now_ms(),
        step: "announce".into(),
        by: "op".into(),
    };

    // No approval yet: the driver's confirmation starts nothing.
    d.ingest(vec![confirm()]).await;
    let s = d.state().await;
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert!(
        logged(&s, "needs 1 approval(s) from peers, has 0"),
        "{:?}",
        s.log
    );

    // An observer's approval is refused and recorded; it never counts.
    let mut bob = attach(&d, "bob").await;
    assert_eq!(bob.welcome.role, cutover::event::PeerRole::Observer);
    bob.wait_for("bob sees the step", |w| w.approvable("bob") == Some(0))
        .await;
    bob.approve("announce", "announced");
    let n = bob.wait_notice("refused").await;
    assert!(n.contains("observers cannot approve"), "{n}");
    d.wait_for("the observer's refusal recorded", |s| {
        logged(
            s,
            "bob's approval of announce was refused: you were invited as an observer",
        )
    })
    .await;

    // The name is the invite's, whatever the peer calls itself.
    let (welcome, link) = connect(&d.addr(), d.pin(), &d.token_for("ann"), "mallory")
        .await
        .expect("attach succeeds");
    assert_eq!(
        (welcome.name.as_str(), welcome.role),
        ("ann", cutover::event::PeerRole::Approver)
    );
    let mut p = Peer {
        w: Watcher::new(Arc::clone(&welcome.plan)),
        welcome,
        link,
    };
    d.wait_for("ann present", |s| s.peers.contains("ann")).await;
    p.wait_for("ann sees the step approvable", |w| {
        w.approvable("ann") == Some(0)
    })
    .await;

    // A wrong phrase is refused, told to the peer and recorded.
    p.approve("announce", "announce");
    let n = p.wait_notice("refused").await;
    assert!(n.contains("phrase does not match"), "{n}");
    d.wait_for("the refused approval recorded", |s| {
        logged(s, "ann's approval of announce was refused")
    })
    .await;
    // Approving another step, or one that asks for none, changes nothing.
    p.approve("check", "checked");
    p.wait_notice("does not ask for approvals").await;
    d.ingest(vec![confirm()]).await;
    assert_eq!(
        d.state().await.steps[0].status,
        StepStatus::Pending,
        "still blocked"
    );

    // The exact phrase: approved, recorded under the peer's name.
    p.approve("announce", "announced");
    p.wait_notice("was sent to the driver").await;
    let s = d
        .wait_for("the approval recorded", |s| {
            !s.steps[0].approvals.is_empty()
        })
        .await;
    assert_eq!(s.steps[0].approvals[0].by, "ann");
    p.wait_for("ann sees her approval", |w| w.approvable("ann").is_none())
        .await;

    // Now the driver's confirmation runs the step.
    d.ingest(vec![confirm()]).await;
    let s = d
        .wait_for("the step done", |s| s.steps[0].status == StepStatus::Done)
        .await;
    assert_eq!(s.steps[0].confirmed_by.as_deref(), Some("op"));
    p.wait_for("ann sees it done", |w| {
        w.state.steps[0].status == StepStatus::Done
    })
    .await;
    p.approve("announce", "announced");
    p.wait_notice("nothing is left to approve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_lapses_when_its_approver_leaves() {
    let mut d = start_driver(inviting(&["ann:approver"])).await;
    let mut p = attach(&d, "ann").await;
    p.wait_for("approvable", |w| w.approvable("ann") == Some(0))
        .await;
    p.approve("announce", "announced");
    d.wait_for("approved", |s| !s.steps[0].approvals.is_empty())
        .await;
    p.link.leave().await;
    d.wait_for("ann gone", |s| s.peers.is_empty()).await;

    d.ingest(vec![Event::StepConfirmed {
        at: now_ms(),
        step: "announce".into(),
        by: "op".into(),
    }])
    .await;
    let s = d.state().await;
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert!(
        s.steps[0].approvals.is_empty(),
        "leaving withdraws the approval"
    );
    assert!(
        logged(&s, "announce: approval by ann lapsed: ann left"),
        "{:?}",
        s.log
    );
    assert!(
        logged(&s, "needs 1 approval(s) from peers, has 0"),
        "{:?}",
        s.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_peer_is_dropped_and_heartbeats_keep_a_quiet_one() {
    let mut opts = DriverOpts::default();
    opts.share.idle_timeout = Duration::from_millis(400);
    let mut d = start_driver(opts).await;
    // The client heartbeats at a third of the timeout the driver announces.
    let mut quiet = attach(&d, "ann").await;
    let mut s = raw(&d).await;
    s.write_all(&hello(&d.token(), "mute", VERSION))
        .await
        .unwrap();
    d.wait_for("mute dropped for silence", |s| {
        logged(s, "mute dropped: sent nothing for 400ms")
    })
    .await;
    d.ingest(vec![note("ann still here")]).await;
    quiet
        .wait_for("the note", |w| logged(&w.state, "ann still here"))
        .await;
    assert!(d.state().await.peers.contains("ann"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_stops_with_the_sessions_end_then_a_goodbye() {
    let mut d = start_driver(DriverOpts::default()).await;
    let mut p = attach(&d, "ann").await;
    d.ingest(vec![Event::SessionEnded {
        at: now_ms(),
        reason: "operator quit".into(),
    }])
    .await;
    d.share.take().unwrap().shutdown("the session ended").await;
    p.wait_for("the goodbye", |w| w.closed.is_some()).await;
    assert!(
        p.w.state.ended.is_some(),
        "the session's end arrived before the goodbye"
    );
    assert_eq!(p.w.closed.as_deref(), Some("the session ended"));
    let err = connect(&d.addr(), d.pin(), &d.token(), "late")
        .await
        .err()
        .expect("no longer listening");
    assert!(matches!(err, AttachError::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_and_remote_addresses_are_refused_without_allow_remote() {
    captured_log();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:7878"] {
        let (mut session, _inbox) = Session::open(SessionConfig {
            plan: plan(),
            mode: "test".into(),
            operator: "op".into(),
            sessions_dir: None,
            actuator: None,
            sign_key: None,
        })
        .unwrap();
        let err = start_share(&mut session, ShareOptions::new(addr.parse().unwrap()))
            .await
            .expect_err("refused");
        assert!(matches!(err, ShareError::Remote { .. }), "{addr}: {err}");
        assert!(err.to_string().contains("--allow-remote"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_works_over_a_unix_socket_that_only_the_owner_can_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.sock");
    let d = start_driver(DriverOpts {
        share: ShareOptions::new(ShareAddr::Unix(path.clone())),
        ..DriverOpts::default()
    })
    .await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut p = attach(&d, "ann").await;
    d.ingest(vec![note("over the socket")]).await;
    p.wait_for("the note", |w| logged(&w.state, "over the socket"))
        .await;
    drop(d);
    // The socket file goes with the share.
    let gone = tokio::time::timeout(WAIT, async {
        while path.exists() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the socket file was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_the_transcript_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_driver(DriverOpts {
        sessions_dir: Some(dir.path().to_path_buf()),
        ..inviting(&["ann:approver"])
    })
    .await;
    let token = d.token_for("ann");
    let secret = token.reveal().to_string();
    assert!(secret.len() * 4 >= 128, "at least 128 bits");
    assert!(!format!("{:?}", d.share()).contains(&secret));
    assert!(
        d.share()
            .command_for("ann")
            .is_some_and(|c| c.contains(&secret)),
        "shown to the driver"
    );
    // Written for the driver only: the invites file beside the transcript, mode 0600.
    let invites = d.share().control().invites_file().expect("an invites file");
    assert_eq!(
        invites.display().to_string(),
        format!("{}.invites", d.transcript.as_ref().unwrap().display())
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&invites).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the invites file is the driver's alone");
    }
    assert!(std::fs::read_to_string(&invites).unwrap().contains(&secret));

    let mut p = attach(&d, "ann").await;
    // A wrong guess that differs in one character, and a peer sending the token as a phrase.
    let mut guess = secret.clone().into_bytes();
    guess[0] = if guess[0] == b'a' { b'b' } else { b'a' };
    let guess = String::from_utf8(guess).unwrap();
    assert!(
        connect(&d.addr(), d.pin(), &AttachToken::new(guess.clone()), "eve")
            .await
            .is_err()
    );
    p.approve("announce", &secret);
    p.wait_notice("refused").await;
    d.wait_for("both recorded", |s| {
        logged(s, "was refused: the attach token is wrong")
            && logged(s, "ann's approval of announce was refused")
    })
    .await;
    d.share.take().unwrap().shutdown("done").await;

    let transcript = std::fs::read_to_string(d.transcript.as_ref().unwrap()).unwrap();
    assert!(
        transcript.contains("peer_joined"),
        "the transcript holds the pairing"
    );
    assert!(
        !transcript.contains(&secret),
        "the token is in the transcript"
    );
    assert!(
        !transcript.contains(&guess),
        "a guessed token is in the transcript"
    );
    let log = String::from_utf8_lossy(&captured_log().0.lock().unwrap()).to_string();
    assert!(log.contains("attach refused"), "the log capture works");
    assert!(!log.contains(&secret), "the token is in the log");
    assert!(!log.contains(&guess), "a guessed token is in the log");
    let _ = std::io::stderr().flush();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attach_screen_approves_through_its_dialog() {
    let mut d = start_driver(inviting(&["ann:approver"])).await;
    let mut p = attach(&d, "ann").await;
    let mut screen_state = AttachScreen::new(&p.welcome);
    p.wait_for("approvable", |w| w.approvable("ann") == Some(0))
        .await;

    // The footer says whose session this is and offers the approval.
    let mut term = Terminal::new(TestBackend::new(140, 44)).unwrap();
    term.draw(|f| screen_state.draw(f, &p.w, &Theme::no_color()))
        .unwrap();
    let text = format!("{:?}", term.backend().buffer());
    assert!(
        text.contains("watching op@") && text.contains("a approve announce"),
        "{text}"
    );

    // `a` opens the dialog; a wrong phrase comes back as the driver's refusal.
    assert!(screen_state.key(&p.w, key(KeyCode::Char('a'))).is_empty());
    assert!(screen_state.approval.is_some());
    for c in "nope".chars() {
        screen_state.key(&p.w, key(KeyCode::Char(c)));
    }
    let sent = screen_state.key(&p.w, key(KeyCode::Enter));
    assert_eq!(
        sent,
        vec![PeerAction::Approve {
            step: "announce".into(),
            phrase: "nope".into()
        }]
    );
    p.approve("announce", "nope");
    let n = p.wait_notice("refused").await;
    screen_state.on_notice(&n);
    let dialog = screen_state
        .approval
        .as_ref()
        .expect("the dialog stays open");
    assert!(
        dialog
            .error
            .as_deref()
            .unwrap()
            .contains("phrase does not match")
    );
    term.draw(|f| screen_state.draw(f, &p.w, &Theme::no_color()))
        .unwrap();
    let text = format!("{:?}", term.backend().buffer());
    assert!(
        text.contains("approve (four-eyes)") && text.contains("phrase does not match"),
        "{text}"
    );

    // The right phrase (stray spaces forgiven) is sent and the dialog closes on the answer.
    for _ in 0..4 {
        screen_state.key(&p.w, key(KeyCode::Backspace));
    }
    for c in " announced ".chars() {
        screen_state.key(&p.w, key(KeyCode::Char(c)));
    }
    let sent = screen_state.key(&p.w, key(KeyCode::Enter));
    let [PeerAction::Approve { step, phrase }] = &sent[..] else {
        panic!("{sent:?}")
    };
    p.approve(step, phrase);
    let n = p.wait_notice("was sent").await;
    screen_state.on_notice(&n);
    assert!(screen_state.approval.is_none());
    d.wait_for("approved", |s| {
        s.steps[0].approvals.iter().any(|a| a.by == "ann")
    })
    .await;
    p.wait_for("ann sees her approval", |w| w.approvable("ann").is_none())
        .await;

    // Nothing left to approve: `a` explains; watch mode records nothing; `q` leaves.
    screen_state.key(&p.w, key(KeyCode::Char('a')));
    assert!(screen_state.approval.is_none());
    assert!(
        screen_state
            .ui
            .notice
            .as_deref()
            .unwrap()
            .contains("already approved")
    );
    assert!(
        screen_state.key(&p.w, key(KeyCode::Enter)).is_empty(),
        "Enter confirms nothing"
    );
    assert_eq!(
        screen_state.key(&p.w, key(KeyCode::Char('q'))),
        vec![PeerAction::Quit]
    );
}

// ---------------------------------------------------------------------------------------
// A real second process: `cutover attach` in a pseudo-terminal.

/// A child process on a pseudo-terminal, its screen kept by a vt100 parser.
struct Pty {
    screen: Arc<Mutex<vt100::Parser>>,
    updates: std::sync::mpsc::Receiver<()>,
    writer: Box<dyn std::io::Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

const ROWS: u16 = 44;
const COLS: u16 = 140;

impl Pty {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Pty {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(ROWS).unwrap(),
            std::num::NonZeroU16::new(COLS).unwrap(),
            0,
        )));
        let (tx, updates) = std::sync::mpsc::channel();
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        sink.lock().unwrap().process(&buf[..n]);
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Pty {
            screen,
            updates,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn rows(&self) -> Vec<String> {
        let p = self.screen.lock().unwrap();
        p.screen()
            .rows(0, COLS)
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    /// Waits (on output, with a deadline) until the screen satisfies `cond`.
    async fn wait_for(&self, what: &str, cond: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if cond(&rows) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "pty: timed out waiting for {what}; screen:\n{}",
                    rows.join("\n")
                );
            }
            // Blocking, but bounded: this thread has nothing else to do meanwhile.
            let _ = tokio::task::block_in_place(|| {
                self.updates
                    .recv_timeout(left.min(Duration::from_millis(200)))
            });
        }
    }

    fn keys(&mut self, s: &str) {
        self.writer.write_all(s.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Already gone when the test went well.
        let _ = self.child.kill();
    }
}

/// The text rows of a frame, as a terminal shows them (a wide symbol covers two cells).
fn buffer_rows(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            let mut row = String::new();
            let mut skip = 0;
            for x in 0..area.width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let sym = buf[(x, y)].symbol();
                skip = Line::raw(sym).width().saturating_sub(1);
                row.push_str(sym);
            }
            row.trim_end().to_string()
        })
        .collect()
}

fn contains(rows: &[String], needle: &str) -> bool {
    rows.iter().any(|r| r.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_attaches_sees_the_drivers_screen_and_approves() {
    let wired = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["attach", "--help"])
        .output()
        .unwrap();
    assert!(
        wired.status.success(),
        "`cutover attach` is not wired in src/main.rs yet (see cutover::share::AttachArgs and \
         run_attach): {}",
        String::from_utf8_lossy(&wired.stderr)
    );
    // Bob's own SSH key signs his approval: the plan lists its public half for him.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f"])
        .arg(&key_file)
        .status()
        .expect("ssh-keygen runs (.ci/run installs openssh-client)");
    assert!(made.success());
    let public = std::fs::read_to_string(keys.path().join("id_ed25519.pub")).unwrap();
    let public = public.rsplit_once(' ').unwrap().0.to_string();
    let mut p = (*plan()).clone();
    p.share.approvers =
        cutover::transcript::approval::parse("approvers", &format!("{public} bob\n")).unwrap();
    let mut d = start_driver(DriverOpts {
        plan: Arc::new(p),
        ..inviting(&["bob:approver"])
    })
    .await;
    d.ingest(some_events(40)).await;
    d.ingest(vec![note("before bob")]).await;
    let addr = d.addr().to_string();
    let token = d.token_for("bob");
    let pin = d.pin().unwrap().to_string();
    let key_arg = key_file.display().to_string();
    let mut pty = Pty::spawn(
        &[
            "attach",
            &addr,
            "--fingerprint",
            &pin,
            "--name",
            "bob",
            "--sign-key",
            &key_arg,
        ],
        &[("CUTOVER_ATTACH_TOKEN", token.reveal())],
    );

    d.wait_for("bob to be listed", |s| s.peers.contains("bob"))
        .await;
    pty.wait_for("the watch cockpit", |r| {
        contains(r, "[WATCH]") && contains(r, "watching op@")
    })
    .await;

    // The peer's screen is the driver's state drawn as a peer draws it.
    let driver = d.state().await;
    let welcome = Welcome {
        info: cutover::share::protocol::SessionInfo {
            mode: "test".into(),
            operator: "op".into(),
            plan_name: driver.plan.name.clone(),
            plan_hash: driver.plan.hash.clone(),
            started_at: driver.started_at,
            host: cutover::transcript::host_name(),
            program_version: env!("CARGO_PKG_VERSION").into(),
            transcript_key: None,
        },
        plan: Arc::clone(&driver.plan),
        name: "bob".into(),
        role: cutover::event::PeerRole::Approver,
        idle_timeout: Duration::from_secs(30),
    };
    let mut view = Watcher::new(Arc::clone(&driver.plan));
    view.state = driver.clone();
    view.seq = driver.events;
    view.caught_up = true;
    let mut expected_screen = AttachScreen::new(&welcome);
    let mut term = Terminal::new(TestBackend::new(COLS, ROWS)).unwrap();
    term.draw(|f| expected_screen.draw(f, &view, &Theme::no_color()))
        .unwrap();
    let expected = buffer_rows(term.backend().buffer());
    assert!(contains(&expected, "before bob") || contains(&expected, "announce"));
    pty.wait_for("the driver's screen, cell for cell", |r| {
        r == expected.as_slice()
    })
    .await;

    // Live: a new event shows up in the other process.
    d.ingest(vec![note("after bob")]).await;
    pty.wait_for("the live note", |r| contains(r, "after bob"))
        .await;

    // Four-eyes from the other process: `a`, the phrase, Enter.
    pty.keys("a");
    pty.wait_for("the approval dialog", |r| {
        contains(r, "approve (four-eyes)")
    })
    .await;
    pty.keys("announced\r");
    let s = d
        .wait_for("bob's approval", |s| {
            s.steps[0].approvals.iter().any(|a| a.by == "bob")
        })
        .await;
    assert!(logged(&s, "bob approved announce"));
    let signed = s.steps[0].approvals[0]
        .seen
        .as_ref()
        .and_then(|e| e.signature.as_ref())
        .expect("signed by bob's key");
    assert_eq!(
        cutover::transcript::PublicKey::parse(&public)
            .unwrap()
            .to_text(),
        signed.key
    );
    pty.wait_for("the answer", |r| contains(r, "was sent to the driver"))
        .await;

    // `q` leaves: the driver records it, the process exits 0, the terminal is restored.
    pty.keys("q");
    d.wait_for("bob gone", |s| !s.peers.contains("bob")).await;
    let status = tokio::task::block_in_place(|| pty.child.wait()).unwrap();
    assert!(status.success(), "{status:?}");
    pty.wait_for("the main screen back", |_| {
        !pty.screen.lock().unwrap().screen().alternate_screen()
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Invites, evidence-bound approvals, and a flood of connections.

/// The pairing plan with one step whose gate can go red after an approval.
fn gated_plan() -> Arc<Plan> {
    let header = PLAN
        .split("[[step]]")
        .next()
        .expect("the plan has a header");
    let text = format!(
        "{header}[[step]]\nid = \"freeze\"\ntitle = \"Freeze writes\"\n\
         gates = [\"cdc.latency_target <= 5 fresh 60s\"]\n\
         action = {{ kind = \"manual\", instructions = \"freeze\" }}\n\
         confirm = \"freeze\"\napprovals = 1\n"
    );
    Arc::new(plan::parse("gated.toml", &text).expect("the gated plan is valid"))
}

fn latency(v: f64) -> Event {
    let at = now_ms();
    Event::Observed {
        at,
        reading: Reading::Metrics {
            observed_at: at,
            series: vec![MetricSeries {
                name: "CDCLatencyTarget".into(),
                unit: Some("Seconds".into()),
                points: vec![(at, v)],
            }],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_lapses_when_lag_goes_red_and_a_stale_view_cannot_renew_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_driver(DriverOpts {
        sessions_dir: Some(dir.path().to_path_buf()),
        plan: gated_plan(),
        ..inviting(&["ann:approver"])
    })
    .await;
    let confirm = || Event::StepConfirmed {
        at: now_ms(),
        step: "freeze".into(),
        by: "op".into(),
    };
    d.ingest(vec![latency(0.0)]).await;
    let mut p = attach(&d, "ann").await;
    p.wait_for("green and approvable", |w| w.approvable("ann") == Some(0))
        .await;
    assert!(p.w.caught_up);
    // What ann's screen shows while it is green: the batch head it folded and the gate.
    let green_view = p.w.evidence(0);
    assert!(green_view.head.is_some(), "{green_view:?}");
    assert_eq!(green_view.gates.len(), 1);
    p.approve("freeze", "freeze");
    let s = d
        .wait_for("approved", |s| !s.steps[0].approvals.is_empty())
        .await;
    let seen = s.steps[0].approvals[0]
        .seen
        .clone()
        .expect("evidence recorded");
    assert_eq!(seen.gates[0].gate, "cdc.latency_target <= 5 fresh 60s");

    // Lag jumps to 40 s after the approval: it lapses, for everyone to see.
    d.ingest(vec![latency(40.0)]).await;
    let s = d.state().await;
    assert!(s.steps[0].approvals.is_empty());
    assert!(
        logged(
            &s,
            "freeze: approval by ann lapsed: gate `cdc.latency_target <= 5 fresh 60s` is red"
        ),
        "{:?}",
        s.log
    );
    p.wait_for("ann sees the lapse", |w| {
        w.state.steps[0].approvals.is_empty()
    })
    .await;

    // Green again: the step stays blocked until a new approval.
    d.ingest(vec![latency(0.0)]).await;
    d.ingest(vec![confirm()]).await;
    let s = d.state().await;
    assert_eq!(s.steps[0].status, StepStatus::Pending);
    assert!(
        logged(&s, "needs 1 approval(s) from peers, has 0"),
        "{:?}",
        s.log
    );

    // An approval carrying the view from before the lag is refused as stale.
    p.link.approve("freeze", "freeze", green_view);
    let n = p.wait_notice("left green").await;
    assert!(n.contains("after what your cockpit showed"), "{n}");
    // A forged head is refused and recorded.
    let mut forged = p.w.evidence(0);
    forged.head = Some("00".repeat(32));
    p.link.approve("freeze", "freeze", forged);
    p.wait_notice("not a point this session recorded").await;
    d.wait_for("the forged view recorded", |s| {
        logged(
            s,
            "ann's approval of freeze was refused: what your cockpit showed",
        )
    })
    .await;

    // A fresh look, a fresh approval: now the driver's confirmation runs the step.
    p.wait_for("green again on ann's screen", |w| {
        w.approvable("ann") == Some(0)
    })
    .await;
    p.approve("freeze", "freeze");
    d.wait_for("approved again", |s| s.steps[0].approvals.len() == 1)
        .await;
    d.ingest(vec![confirm()]).await;
    d.wait_for("the step done", |s| s.steps[0].status == StepStatus::Done)
        .await;

    // The postmortem tells the story: what ann saw, the lapse and why, the refusal.
    let report =
        cutover::report::report(d.transcript.as_ref().unwrap(), cutover::report::Format::Md)
            .unwrap();
    for want in [
        "ann approved **freeze**: as their cockpit showed it at event",
        "`cdc.latency_target <= 5 fresh 60s` green: as the approver saw it",
        "ann's approval lapsed on **freeze**: freeze: approval by ann lapsed: gate `cdc.latency_target <= 5 fresh 60s` is red",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    // Every recorded approval names a head this file holds at its seq.
    let r = cutover::transcript::verify::verify(d.transcript.as_ref().unwrap());
    assert_eq!(r.exit_code(), 0, "{}", r.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_invite_is_closed_at_once_and_a_new_one_works() {
    let mut d = start_driver(inviting(&["ann:approver", "bob"])).await;
    let ann_token = d.token_for("ann");
    let mut ann = attach(&d, "ann").await;
    d.wait_for("ann present", |s| s.peers.contains("ann")).await;
    let control = d.share().control();
    let listed: Vec<(String, cutover::event::PeerRole, bool)> = control
        .invites()
        .into_iter()
        .map(|i| (i.name, i.role, i.revoked))
        .collect();
    assert_eq!(
        listed,
        [
            ("ann".to_string(), cutover::event::PeerRole::Approver, false),
            ("bob".to_string(), cutover::event::PeerRole::Observer, false),
        ]
    );

    // Revoked from the cockpit's dialog: `I`, then the command.
    let mut ui_state = UiState::new(Mode::Drive, "op".into(), None);
    ui_state.share = Some(control.clone());
    let s = d.state().await;
    ui::handle_key(&mut ui_state, &s, key(KeyCode::Char('I')), now_ms());
    assert_eq!(ui_state.dialog, Some(ui::Dialog::Invites));
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|f| ui::draw(f, &s, &ui_state, &Theme::no_color()))
        .unwrap();
    let rows = rows_of(term.backend().buffer());
    assert!(
        rows.iter()
            .any(|r| r.contains("ann") && r.contains("approver") && r.contains("attached")),
        "{}",
        rows.join("\n")
    );
    assert!(
        !rows.iter().any(|r| r.contains(ann_token.reveal())),
        "the dialog never draws a token"
    );
    let mut intents = Vec::new();
    for c in "revoke ann".chars() {
        intents.extend(ui::handle_key(
            &mut ui_state,
            &s,
            key(KeyCode::Char(c)),
            now_ms(),
        ));
    }
    intents.extend(ui::handle_key(
        &mut ui_state,
        &s,
        key(KeyCode::Enter),
        now_ms(),
    ));
    let [ui::Intent::Share(cmd)] = &intents[..] else {
        panic!("{intents:?}");
    };
    let revoked_at = Instant::now();
    ui::run_share_command(&mut ui_state, cmd.clone());
    assert!(
        ui_state
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("revoked ann's invite")),
        "{:?}",
        ui_state.notice
    );
    ann.wait_for("ann's connection closed", |w| w.closed.is_some())
        .await;
    let took = revoked_at.elapsed();
    eprintln!("revoke: the revoked peer's connection closed after {took:?}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    assert!(
        ann.w
            .closed
            .as_deref()
            .is_some_and(|r| r.contains("revoked")),
        "{:?}",
        ann.w.closed
    );
    d.wait_for("ann gone, the revocation recorded", |s| {
        !s.peers.contains("ann") && logged(s, "the driver revoked ann's invite")
    })
    .await;
    // Her token no longer admits anyone.
    let Err(err) = connect(&d.addr(), d.pin(), &ann_token, "ann").await else {
        panic!("a revoked token is refused");
    };
    assert!(err.to_string().contains("revoked"), "{err}");

    // A new invite from the cockpit: its command works, under its name and role.
    let cmd = control.issue("carl:approver").expect("invited");
    assert!(
        control
            .issue("carl")
            .unwrap_err()
            .contains("already invited")
    );
    assert!(
        control
            .issue("op:approver")
            .unwrap_err()
            .contains("driver's own name")
    );
    let (welcome, _link) = connect(&d.addr(), d.pin(), &token_in(&cmd), "whoever")
        .await
        .expect("the new invite attaches");
    assert_eq!(
        (welcome.name.as_str(), welcome.role),
        ("carl", cutover::event::PeerRole::Approver)
    );
    d.wait_for("carl invited and present", |s| {
        logged(s, "the driver invited carl (approver)") && s.peers.contains("carl")
    })
    .await;
    let recorded = format!("{:?}", d.recorded.lock().unwrap());
    assert!(!recorded.contains(token_in(&cmd).reveal()));
    assert!(!recorded.contains(ann_token.reveal()));
}

fn rows_of(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_and_a_slowloris_leave_the_driver_responsive() {
    let mut opts = inviting(&["ann:approver"]);
    opts.share.handshake_timeout = Duration::from_secs(3);
    let mut d = start_driver(opts).await;
    let target = match d.addr() {
        ShareAddr::Tcp(sa) => sa,
        other => panic!("{other:?}"),
    };
    // 200 connections at once that never start TLS, plus one that trickles a byte at a
    // time (slowloris): past the pending caps each is closed at once, and the driver's own
    // loop never waits on any of them.
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(target).await {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 150, "only {} connections opened", idle.len());
    let slow = tokio::spawn(async move {
        let Ok(mut s) = TcpStream::connect(target).await else {
            return;
        };
        // A TLS ClientHello's first bytes, one every 100 ms, never finished.
        for b in [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01] {
            if s.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
    });
    let took = d.ingest(some_events(200)).await;
    assert!(took < Duration::from_secs(2), "ingest took {took:?}");
    // Past the caps a connection is closed at once: most of the flood reads its end now.
    let mut reads = tokio::task::JoinSet::new();
    for mut s in idle.drain(..) {
        reads.spawn(async move {
            let mut buf = [0u8; 1];
            let r = tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await;
            (matches!(r, Ok(Ok(0)) | Ok(Err(_))), s)
        });
    }
    let mut closed = 0;
    while let Some(r) = reads.join_next().await {
        let (was_closed, s) = r.unwrap();
        closed += usize::from(was_closed);
        idle.push(s);
    }
    assert!(
        closed >= idle.len() - ShareOptions::DEFAULT_MAX_PENDING,
        "{closed} of {} closed at once",
        idle.len()
    );
    eprintln!(
        "flood: ingest of 200 events took {took:?}; {closed} of {} connections closed at once",
        idle.len()
    );
    // A legitimate peer gets in as soon as the flood's handshakes have timed out.
    let deadline = Instant::now() + WAIT;
    let (welcome, link) = loop {
        match connect(&d.addr(), d.pin(), &d.token_for("ann"), "ann").await {
            Ok(x) => break x,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the driver never admitted a real peer: {e}"),
        }
    };
    let mut p = Peer {
        w: Watcher::new(Arc::clone(&welcome.plan)),
        welcome,
        link,
    };
    p.wait_for("ann live", |w| w.caught_up).await;
    d.wait_for("ann present", |s| s.peers.contains("ann")).await;
    // Most of the flood was refused at once (the caps), the rest timed out; none was
    // recorded in the transcript one by one.
    let refusals = d
        .recorded
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Note { text, .. } if text.contains("was refused")))
        .count();
    assert!(refusals <= 21, "{refusals} refusals recorded");
    drop(idle);
    slow.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_approvers_only_a_signed_approval_counts_and_verify_checks_it() {
    use cutover::transcript::{SessionKey, approval};
    let ann_key = approval::Signer::from(SessionKey::generate().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut p = (*plan()).clone();
    p.share.approvers =
        approval::parse("approvers", &ann_key.public().to_openssh("ann")).expect("valid keys");
    let mut d = start_driver(DriverOpts {
        sessions_dir: Some(dir.path().to_path_buf()),
        plan: Arc::new(p),
        ..inviting(&["ann:approver"])
    })
    .await;
    let mut ann = attach(&d, "ann").await;
    ann.wait_for("approvable", |w| w.approvable("ann") == Some(0))
        .await;
    let plan_hash = ann.welcome.info.plan_hash.clone();

    // Unsigned: refused and recorded, with the fix.
    ann.approve("announce", "announced");
    let n = ann.wait_notice("must be signed").await;
    assert!(n.contains("--sign-key"), "{n}");
    // Signed by a key the approvers file does not list for ann.
    let mut wrong = ann.w.evidence(0);
    approval::sign(
        &approval::Signer::from(SessionKey::generate().unwrap()),
        &plan_hash,
        "announce",
        "ann",
        &mut wrong,
    )
    .unwrap();
    ann.link.approve("announce", "announced", wrong);
    ann.wait_notice("does not list for ann").await;
    assert!(d.state().await.steps[0].approvals.is_empty());

    // Signed by ann's key: recorded with its signature.
    let mut good = ann.w.evidence(0);
    approval::sign(&ann_key, &plan_hash, "announce", "ann", &mut good).unwrap();
    ann.link.approve("announce", "announced", good);
    let s = d
        .wait_for("approved", |s| !s.steps[0].approvals.is_empty())
        .await;
    let sig = s.steps[0].approvals[0]
        .seen
        .as_ref()
        .and_then(|e| e.signature.clone())
        .expect("the signature is recorded");
    assert_eq!(sig.key, ann_key.public().to_text());
    d.ingest(vec![Event::SessionEnded {
        at: now_ms(),
        reason: "done".into(),
    }])
    .await;
    d.share.take().unwrap().shutdown("done").await;

    // The header keeps the keys; verify checks the approval against them.
    let path = d.transcript.clone().unwrap();
    let t = cutover::transcript::read(&path).unwrap();
    assert_eq!(t.header.approvers.len(), 1);
    let r = cutover::transcript::verify::verify(&path);
    assert_eq!(r.exit_code(), 0, "{}", r.render());
    assert_eq!(r.approvals_signed, 1, "{}", r.render());
}
