//! The driver's side of pairing: listens for peers, checks their token, streams them the
//! session's recorded events (from the start, then live) and turns their presence and
//! approvals into events injected through the session's sender.
//!
//! One hub task owns every peer's bounded queue and the catch-up source: a late joiner's
//! own task reads the session's transcript back (hash chain checked) for the events before
//! it joined, so the driver holds no copy of the session; a session without a transcript
//! (tests) keeps the encoded events in memory instead. The hub also folds the stream into a
//! mirror `State`, to check approvals against the step's state at that point.
//!
//! Invariants (absences): the driver never waits for a peer — the session's tap only pushes
//! onto an unbounded channel, and the hub never blocks on a peer's queue (`try_send`; a
//! full queue drops that peer, recorded with the reason). The token is never logged,
//! recorded or put in an error. A peer can change the session only through
//! `PeerJoined`/`PeerLeft` (its presence) and `StepApproved` (an approval whose phrase the
//! hub has checked); a wrong phrase and a refused attach are recorded as notes.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    self, AttachToken, DriverMsg, Frame, FrameReader, MAX_DRIVER_FRAME, MAX_PEER_FRAME, PROTOCOL,
    PeerMsg, ProtocolError, SessionInfo, VERSION,
};
use cutover_core::event::{Event, now_ms};
use cutover_core::plan::Plan;
use cutover_core::state::{State, StepStatus};
use cutover_runtime::session::Session;

/// Where the driver listens: a TCP address or a Unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for ShareAddr {
    type Err = ShareError;

    /// `127.0.0.1:7878`, `[::1]:7878`, `localhost:7878`, or a path (`./cutover.sock`,
    /// `/run/user/1000/cutover.sock`, `unix:name.sock`).
    fn from_str(s: &str) -> Result<ShareAddr, ShareError> {
        let bad = |reason: &str| ShareError::BadAddr {
            addr: s.to_string(),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(ShareAddr::Unix(PathBuf::from(path)));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(ShareAddr::Tcp(sa));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port
                .parse()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
            return Ok(ShareAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        if s.contains('/') || s.ends_with(".sock") {
            return Ok(ShareAddr::Unix(PathBuf::from(s)));
        }
        Err(bad("it is neither IP:PORT nor a Unix socket path"))
    }
}

impl fmt::Display for ShareAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareAddr::Tcp(sa) => write!(f, "{sa}"),
            ShareAddr::Unix(p) => {
                let s = p.display().to_string();
                // A bare file name would parse as neither; keep what we print re-parsable.
                if s.contains('/') || s.ends_with(".sock") {
                    f.write_str(&s)
                } else {
                    write!(f, "unix:{s}")
                }
            }
        }
    }
}

/// Why sharing could not start. Each names the thing, the reason and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(
        "share address \"{addr}\": {reason} (use IP:PORT such as 127.0.0.1:7878, or a Unix \
         socket path such as ./cutover.sock)"
    )]
    BadAddr { addr: String, reason: String },
    #[error(
        "refusing to share on {addr}: {reason}, so anyone who can reach this host could try the \
         token (share on 127.0.0.1 and let colleagues forward it with `ssh -L 7878:127.0.0.1:7878`, \
         or pass --allow-remote if you mean it)"
    )]
    Remote { addr: String, reason: &'static str },
    #[error("cannot listen on {addr}: {source} (choose another port or path)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {path}: the path exists and is not a stale cutover socket (remove it, \
         or choose another path)"
    )]
    PathExists { path: String },
    #[error("cannot share this session: {reason}")]
    Backlog { reason: String },
}

/// How to share a session.
#[derive(Clone, Debug)]
pub struct ShareOptions {
    pub addr: ShareAddr,
    /// Allow a wildcard or non-loopback address.
    pub allow_remote: bool,
    /// A peer that sends nothing (not even its heartbeat) for this long is dropped.
    pub idle_timeout: Duration,
    /// A connection that has not sent a valid Hello within this long is closed.
    pub handshake_timeout: Duration,
    /// Frames a peer may fall behind before it is dropped.
    pub peer_queue: usize,
    pub max_peers: usize,
}

impl ShareOptions {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_PEER_QUEUE: usize = 4096;
    pub const DEFAULT_MAX_PEERS: usize = 16;

    pub fn new(addr: ShareAddr) -> ShareOptions {
        ShareOptions {
            addr,
            allow_remote: false,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            peer_queue: Self::DEFAULT_PEER_QUEUE,
            max_peers: Self::DEFAULT_MAX_PEERS,
        }
    }
}

/// A running share. Dropping it stops listening and closes every peer; [`shutdown`] does
/// the same but lets the peers receive what is queued (the session's end) first.
///
/// [`shutdown`]: ShareHandle::shutdown
pub struct ShareHandle {
    token: AttachToken,
    addr: ShareAddr,
    hub: mpsc::UnboundedSender<HubMsg>,
    stop: CancellationToken,
    accept: Option<JoinHandle<()>>,
    socket_path: Option<PathBuf>,
}

impl fmt::Debug for ShareHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareHandle")
            .field("addr", &self.addr)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ShareHandle {
    /// The attach token; `reveal()` it once, to the driver's terminal only.
    pub fn token(&self) -> &AttachToken {
        &self.token
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn addr(&self) -> &ShareAddr {
        &self.addr
    }

    /// The command a colleague runs, token included: print it to the driver's terminal,
    /// never to a log.
    pub fn attach_command(&self) -> String {
        format!(
            "cutover attach {} --token {}",
            self.addr,
            self.token.reveal()
        )
    }

    /// Stops accepting, sends every peer what is still queued and a goodbye, and waits (at
    /// most two seconds) for them to be sent. Call after the session's last event.
    pub async fn shutdown(mut self, reason: &str) {
        let (done_tx, done_rx) = oneshot::channel();
        let sent = self.hub.send(HubMsg::Shutdown {
            reason: reason.to_string(),
            done: Some(done_tx),
        });
        if sent.is_ok() {
            // The hub has already gone if this fails; nothing is left to close.
            let _ = done_rx.await;
        }
        self.stop.cancel();
        if let Some(accept) = self.accept.take() {
            // The accept loop ends itself within its goodbye deadline; a panic there leaves
            // nothing to clean up that Drop does not.
            let _ = accept.await;
        }
    }
}

impl Drop for ShareHandle {
    fn drop(&mut self) {
        // After `shutdown` the hub is gone and this fails harmlessly.
        let _ = self.hub.send(HubMsg::Shutdown {
            reason: "the driver stopped sharing".into(),
            done: None,
        });
        self.stop.cancel();
        if let Some(path) = &self.socket_path {
            // Already removed or never created: nothing to clean.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts sharing `session`: binds `opts.addr`, generates the token and adds the tap that
/// streams every recorded event. Call it before the session's loop runs; the events
/// recorded so far (its transcript, or the `SessionStarted` of a session without one) are
/// the start of every peer's catch-up.
pub async fn start_share(
    session: &mut Session,
    opts: ShareOptions,
) -> Result<ShareHandle, ShareError> {
    check_exposure(&opts.addr, opts.allow_remote)?;
    let backlog = recorded_so_far(session)?;
    let (listener, addr, socket_path) = bind(&opts.addr).await?;
    if opts.allow_remote {
        tracing::warn!(%addr, "sharing on a non-loopback address (--allow-remote)");
    }
    let token = AttachToken::generate();
    let info = SessionInfo {
        mode: session
            .state
            .mode
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        operator: session.state.operator.clone().unwrap_or_default(),
        plan_name: session.plan.name.clone(),
        plan_hash: session.plan.hash.clone(),
        started_at: session.state.started_at,
        host: cutover_transcript::host_name(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
    };

    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let history = match session.transcript_path() {
        Some(path) => History::Transcript(path.to_path_buf()),
        None => History::Memory(Vec::new()),
    };
    let mut hub = Hub::new(
        &session.plan,
        &opts,
        history,
        info.operator.clone(),
        session.sender(),
    );
    hub.record(backlog);
    tokio::spawn(run_hub(hub, hub_rx));

    let tap_tx = hub_tx.clone();
    session.add_tap(Box::new(move |batch: &[Event]| {
        // Never blocks: an unbounded send. It fails only once sharing has stopped.
        let _ = tap_tx.send(HubMsg::Batch(batch.to_vec()));
    }));

    let ctx = Arc::new(PeerCtx {
        token: token.clone(),
        hub: hub_tx.clone(),
        info,
        plan_text: session.plan.source_text.clone(),
        idle_timeout: opts.idle_timeout,
        handshake_timeout: opts.handshake_timeout,
    });
    let stop = CancellationToken::new();
    let accept = tokio::spawn(accept_loop(listener, ctx, stop.clone()));
    tracing::info!(%addr, "sharing the session");
    Ok(ShareHandle {
        token,
        addr,
        hub: hub_tx,
        stop,
        accept: Some(accept),
        socket_path,
    })
}

fn check_exposure(addr: &ShareAddr, allow_remote: bool) -> Result<(), ShareError> {
    let ShareAddr::Tcp(sa) = addr else {
        return Ok(());
    };
    if allow_remote {
        return Ok(());
    }
    let ip = sa.ip().to_canonical();
    let reason = if ip.is_unspecified() {
        "it is a wildcard address that listens on every interface"
    } else if !ip.is_loopback() {
        "it is not a loopback address"
    } else {
        return Ok(());
    };
    Err(ShareError::Remote {
        addr: sa.to_string(),
        reason,
    })
}

/// The events the session recorded before the tap existed.
fn recorded_so_far(session: &Session) -> Result<Vec<Event>, ShareError> {
    let folded = session.state.events;
    if let Some(path) = session.transcript_path() {
        let t = cutover_transcript::read(path).map_err(|e| ShareError::Backlog {
            reason: format!("cannot read back its transcript to replay to peers: {e}"),
        })?;
        if t.events.len() as u64 == folded {
            return Ok(t.events);
        }
        return Err(ShareError::Backlog {
            reason: format!(
                "its transcript {} holds {} events but the session has folded {folded}; start \
                 sharing right after opening the session",
                path.display(),
                t.events.len()
            ),
        });
    }
    match (
        folded,
        &session.state.started_at,
        &session.state.mode,
        &session.state.operator,
    ) {
        (1, Some(at), Some(mode), Some(operator)) => Ok(vec![Event::SessionStarted {
            at: *at,
            mode: mode.clone(),
            operator: operator.clone(),
        }]),
        _ => Err(ShareError::Backlog {
            reason: format!(
                "it records no transcript and has already folded {folded} events, which peers \
                 could not catch up on; start sharing right after opening the session"
            ),
        }),
    }
}

/// A bound listener of either kind.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

type ConnRead = Box<dyn AsyncRead + Send + Unpin>;
type ConnWrite = Box<dyn AsyncWrite + Send + Unpin>;

impl Listener {
    /// The next connection, split, with a label for logs and notes.
    async fn accept(&self) -> std::io::Result<(ConnRead, ConnWrite, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, from) = l.accept().await?;
                // Latency matters more than packet count for a live screen.
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w), from.to_string()))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w), "the Unix socket".to_string()))
            }
        }
    }
}

async fn bind(addr: &ShareAddr) -> Result<(Listener, ShareAddr, Option<PathBuf>), ShareError> {
    match addr {
        ShareAddr::Tcp(sa) => {
            let l = TcpListener::bind(sa)
                .await
                .map_err(|source| ShareError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            let bound = l.local_addr().map_err(|source| ShareError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            Ok((Listener::Tcp(l), ShareAddr::Tcp(bound), None))
        }
        ShareAddr::Unix(path) => {
            remove_stale_socket(path).await?;
            let l = UnixListener::bind(path).map_err(|source| ShareError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            restrict_to_owner(path).map_err(|source| ShareError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            Ok((Listener::Unix(l), addr.clone(), Some(path.clone())))
        }
    }
}

/// A socket file left by a crashed driver is removed; anything else at the path is kept.
async fn remove_stale_socket(path: &Path) -> Result<(), ShareError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let exists = || ShareError::PathExists {
        path: path.display().to_string(),
    };
    if !meta.file_type().is_socket() {
        return Err(exists());
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => Err(exists()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|source| ShareError::Bind {
                addr: path.display().to_string(),
                source,
            }),
        Err(_) => Err(exists()),
    }
}

/// Only the driver's user may connect to the socket (the token is still required).
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

// ---------------------------------------------------------------------------------------
// The hub: one task that owns the history and every peer's queue.

enum HubMsg {
    /// Events as recorded by the session (from the tap).
    Batch(Vec<Event>),
    /// A peer passed the token check and asks to be admitted.
    Join {
        name: String,
        from: String,
        reply: oneshot::Sender<Result<Grant, String>>,
    },
    /// A peer's connection ended; `reason` is `None` when it left normally.
    Leave { id: u64, reason: Option<String> },
    Approve {
        id: u64,
        step: String,
        phrase: String,
    },
    /// A connection was refused at the handshake; recorded when it is audit-worthy.
    Refused {
        from: String,
        reason: String,
        record: bool,
    },
    Shutdown {
        reason: String,
        done: Option<oneshot::Sender<()>>,
    },
}

/// Where a late joiner's catch-up comes from.
enum History {
    /// The session's transcript: read back (and its hash chain checked) by the joining
    /// peer's own task, so the driver keeps no copy of the session's events.
    Transcript(PathBuf),
    /// A session without a transcript: the hub keeps every encoded event.
    Memory(Vec<Frame>),
}

/// The events a joining peer must catch up on: everything recorded before it joined.
enum Backlog {
    Frames(Vec<Frame>),
    Transcript { path: PathBuf, events: u64 },
}

/// What an admitted peer gets: the history so far and its live queue.
struct Grant {
    id: u64,
    backlog: Backlog,
    live: mpsc::Receiver<Frame>,
    ctl: Arc<PeerCtl>,
}

/// How the hub (or either half of a connection) closes a peer's connection, and why.
struct PeerCtl {
    closing: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl PeerCtl {
    fn new() -> PeerCtl {
        PeerCtl {
            closing: CancellationToken::new(),
            reason: Mutex::new(None),
        }
    }

    /// Records why the connection ends (the first reason wins).
    fn set_reason(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
    }

    fn close(&self, reason: &str) {
        self.set_reason(reason);
        self.closing.cancel();
    }

    fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

struct PeerSlot {
    name: String,
    tx: mpsc::Sender<Frame>,
    ctl: Arc<PeerCtl>,
    refused_approvals: u32,
}

/// Refused approvals a peer may send before it is dropped (each one is recorded).
const MAX_REFUSED_APPROVALS: u32 = 5;
/// Refused attach attempts recorded in the transcript before the rest are only logged.
const MAX_RECORDED_REFUSALS: u32 = 20;
/// Longest peer name.
pub const MAX_NAME_CHARS: usize = 40;

struct Hub {
    history: History,
    /// Events recorded so far (the last seq).
    recorded: u64,
    peers: HashMap<u64, PeerSlot>,
    next_id: u64,
    /// The same fold as the driver's, to check approvals against the step's state.
    mirror: State,
    plan: Arc<Plan>,
    operator: String,
    session: mpsc::UnboundedSender<Event>,
    peer_queue: usize,
    max_peers: usize,
    refusals_recorded: u32,
    closed: bool,
}

impl Hub {
    fn new(
        plan: &Arc<Plan>,
        opts: &ShareOptions,
        history: History,
        operator: String,
        session: mpsc::UnboundedSender<Event>,
    ) -> Hub {
        Hub {
            history,
            recorded: 0,
            peers: HashMap::new(),
            next_id: 1,
            mirror: State::new(Arc::clone(plan)),
            plan: Arc::clone(plan),
            operator,
            session,
            peer_queue: opts.peer_queue.max(1),
            max_peers: opts.max_peers,
            refusals_recorded: 0,
            closed: false,
        }
    }

    /// Injects an event into the session (recorded, folded, then streamed back here).
    fn inject(&self, ev: Event) {
        // Fails only once the session is gone, when there is nobody left to tell.
        let _ = self.session.send(ev);
    }

    fn note(&self, text: String) {
        self.inject(Event::Note { at: now_ms(), text });
    }

    /// Appends recorded events to the history and sends them to every peer.
    fn record(&mut self, batch: Vec<Event>) {
        let mut slow = Vec::new();
        for ev in batch {
            self.recorded += 1;
            // The mirror only checks approvals; its effects are the driver's business.
            let _ = self.mirror.apply(&ev);
            let keep = matches!(self.history, History::Memory(_));
            if self.peers.is_empty() && !keep {
                continue;
            }
            let frame = encode_for_peers(self.recorded, &ev);
            if let History::Memory(frames) = &mut self.history {
                frames.push(Arc::clone(&frame));
            }
            for (id, peer) in &self.peers {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    peer.tx.try_send(Arc::clone(&frame))
                {
                    slow.push(*id);
                }
            }
        }
        for id in slow {
            let reason = format!(
                "dropped: fell {} events behind (not reading fast enough); the driver never waits \
                 for a peer — attach again to catch up",
                self.peer_queue
            );
            self.remove(id, Some(reason));
        }
    }

    /// Removes a peer, closes its connection and records that it left.
    fn remove(&mut self, id: u64, reason: Option<String>) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        peer.ctl.close(reason.as_deref().unwrap_or("left"));
        self.inject(Event::PeerLeft {
            at: now_ms(),
            peer: peer.name.clone(),
        });
        if let Some(r) = reason {
            tracing::info!(peer = %peer.name, "peer disconnected: {r}");
            self.note(format!("{} {r}", peer.name));
        }
    }

    fn join(&mut self, name: String, from: &str) -> Result<Grant, String> {
        if self.closed {
            return Err("the driver has stopped sharing".into());
        }
        if name.eq_ignore_ascii_case(&self.operator) {
            return Err(format!(
                "\"{name}\" is the driver's own name; attach with --name YOUR-NAME (a driver cannot \
                 approve its own steps)"
            ));
        }
        if self
            .peers
            .values()
            .any(|p| p.name.eq_ignore_ascii_case(&name))
        {
            return Err(format!(
                "a peer named \"{name}\" is already attached; attach with --name OTHER-NAME"
            ));
        }
        if self.peers.len() >= self.max_peers {
            return Err(format!(
                "{} peers are already attached, the most this session admits",
                self.max_peers
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, live) = mpsc::channel(self.peer_queue);
        let ctl = Arc::new(PeerCtl::new());
        self.peers.insert(
            id,
            PeerSlot {
                name: name.clone(),
                tx,
                ctl: Arc::clone(&ctl),
                refused_approvals: 0,
            },
        );
        tracing::info!(peer = %name, %from, "peer attached");
        self.inject(Event::PeerJoined {
            at: now_ms(),
            peer: name,
        });
        let backlog = match &self.history {
            History::Memory(frames) => Backlog::Frames(frames.clone()),
            History::Transcript(path) => Backlog::Transcript {
                path: path.clone(),
                events: self.recorded,
            },
        };
        Ok(Grant {
            id,
            backlog,
            live,
            ctl,
        })
    }

    fn tell(&mut self, id: u64, text: String) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let frame = match protocol::encode(&DriverMsg::Notice { text }, MAX_DRIVER_FRAME) {
            Ok(f) => Frame::from(f),
            Err(e) => {
                tracing::error!("cannot encode a notice: {e}");
                return;
            }
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = peer.tx.try_send(frame) {
            let reason = format!(
                "dropped: fell {} events behind (not reading fast enough)",
                self.peer_queue
            );
            self.remove(id, Some(reason));
        }
    }

    fn approve(&mut self, id: u64, step: &str, phrase: &str) {
        let Some(name) = self.peers.get(&id).map(|p| p.name.clone()) else {
            return;
        };
        let verdict = self.check_approval(&name, step, phrase);
        match verdict {
            Ok(()) => {
                self.inject(Event::StepApproved {
                    at: now_ms(),
                    step: step.to_string(),
                    by: name,
                });
                self.tell(
                    id,
                    format!("your approval of {step} was sent to the driver"),
                );
            }
            Err((reason, record)) => {
                self.tell(id, format!("approval of {step} refused: {reason}"));
                if record {
                    self.note(format!("{name}'s approval of {step} was refused: {reason}"));
                    let refused = self.peers.get_mut(&id).map(|p| {
                        p.refused_approvals += 1;
                        p.refused_approvals
                    });
                    if refused.is_some_and(|n| n >= MAX_REFUSED_APPROVALS) {
                        self.remove(
                            id,
                            Some(format!(
                                "dropped: {MAX_REFUSED_APPROVALS} refused approvals"
                            )),
                        );
                    }
                }
            }
        }
    }

    /// Whether `name` may approve `step` with `phrase` now; the error says why not and
    /// whether the attempt belongs in the audit (a wrong phrase does).
    fn check_approval(&self, name: &str, step: &str, phrase: &str) -> Result<(), (String, bool)> {
        let Some(i) = self.plan.step_index(step) else {
            return Err((format!("this plan has no step \"{step}\""), false));
        };
        let def = &self.plan.steps[i];
        if def.approvals == 0 {
            return Err(("this step does not ask for approvals".into(), false));
        }
        let st = &self.mirror.steps[i];
        if st.status != StepStatus::Pending {
            return Err((
                format!(
                    "the step is {}, nothing is left to approve",
                    st.status.as_str()
                ),
                false,
            ));
        }
        match self.mirror.next_step() {
            Some(next) if next == i => {}
            Some(next) => {
                let id = &self.plan.steps[next].id;
                return Err((
                    format!("only the next step ({id}) can be approved now"),
                    false,
                ));
            }
            None => {
                return Err((
                    "no step can be approved now (a rollback owns the session)".into(),
                    false,
                ));
            }
        }
        if st.approvals.iter().any(|a| a.by == name) {
            return Err(("you have already approved it".into(), false));
        }
        // Surrounding spaces are forgiven, as in the driver's own confirmation dialog.
        if phrase.trim() != def.confirm {
            return Err((
                "the phrase does not match the step's confirmation phrase".into(),
                true,
            ));
        }
        Ok(())
    }

    fn refused(&mut self, from: &str, reason: &str, record: bool) {
        tracing::warn!(%from, "attach refused: {reason}");
        if record {
            if self.refusals_recorded < MAX_RECORDED_REFUSALS {
                self.note(format!("an attach from {from} was refused: {reason}"));
            } else if self.refusals_recorded == MAX_RECORDED_REFUSALS {
                self.note("further refused attach attempts are only logged".into());
            }
            self.refusals_recorded += 1;
        }
    }

    /// Lets every peer drain its queue, then say goodbye with `reason`.
    fn close_all(&mut self, reason: &str) {
        self.closed = true;
        for (_, peer) in self.peers.drain() {
            // Dropping the sender ends the writer after what is queued; no event is
            // injected, since the session has ended or is ending.
            peer.ctl.set_reason(reason);
        }
    }
}

/// Encodes event `seq` for peers. An event too large for a frame (none should be) goes as a
/// note saying so, so the stream keeps its numbering.
fn encode_for_peers(seq: u64, ev: &Event) -> Frame {
    match protocol::encode_event(seq, ev) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(
                seq,
                event = ev.name(),
                "cannot stream an event to peers: {e}"
            );
            let stand_in = Event::Note {
                at: ev.at(),
                text: format!(
                    "a {} event too large to stream to peers was left out",
                    ev.name()
                ),
            };
            protocol::encode_event(seq, &stand_in).unwrap_or_else(|_| Frame::from(Vec::new()))
        }
    }
}

async fn run_hub(mut hub: Hub, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            HubMsg::Batch(batch) => hub.record(batch),
            HubMsg::Join { name, from, reply } => {
                let grant = hub.join(name, &from);
                if let Err(Ok(grant)) = reply.send(grant) {
                    // The connection went away while it waited: undo the join.
                    hub.remove(grant.id, None);
                }
            }
            HubMsg::Leave { id, reason } => hub.remove(id, reason),
            HubMsg::Approve { id, step, phrase } => hub.approve(id, &step, &phrase),
            HubMsg::Refused {
                from,
                reason,
                record,
            } => hub.refused(&from, &reason, record),
            HubMsg::Shutdown { reason, done } => {
                hub.close_all(&reason);
                if let Some(done) = done {
                    // The caller stopped waiting; the peers are closing anyway.
                    let _ = done.send(());
                }
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One connection.

/// What every connection task needs.
struct PeerCtx {
    token: AttachToken,
    hub: mpsc::UnboundedSender<HubMsg>,
    info: SessionInfo,
    plan_text: String,
    idle_timeout: Duration,
    handshake_timeout: Duration,
}

/// How long a goodbye may take to send before the connection is simply closed.
const BYE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long peers get to receive their last events when sharing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

async fn accept_loop(listener: Listener, ctx: Arc<PeerCtx>, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((r, w, from)) => {
                    conns.spawn(serve_peer(r, w, from, Arc::clone(&ctx)));
                }
                Err(e) => {
                    tracing::warn!("accepting a peer failed: {e}");
                    // Out of descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// A refusal at the handshake: told to the peer, logged, and recorded if `record`.
struct Refusal {
    reason: String,
    record: bool,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            record: false,
        }
    }
}

async fn serve_peer(r: ConnRead, w: ConnWrite, from: String, ctx: Arc<PeerCtx>) {
    let mut reader = FrameReader::new(r, MAX_PEER_FRAME);
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let admitted = match handshake(&mut reader, &ctx).await {
        Ok(name) => {
            let (reply, granted) = oneshot::channel();
            let asked = ctx.hub.send(HubMsg::Join {
                name: name.clone(),
                from: from.clone(),
                reply,
            });
            match (asked, granted.await) {
                (Ok(()), Ok(Ok(grant))) => Ok((name, grant)),
                (Ok(()), Ok(Err(reason))) => Err(Refusal::new(reason)),
                _ => Err(Refusal::new("the driver has stopped sharing")),
            }
        }
        Err(refusal) => Err(refusal),
    };
    let (name, grant) = match admitted {
        Ok(x) => x,
        Err(refusal) => {
            // The hub is gone only when sharing stopped; the refusal is logged there otherwise.
            let _ = ctx.hub.send(HubMsg::Refused {
                from,
                reason: refusal.reason.clone(),
                record: refusal.record,
            });
            say_bye(&mut w, &refusal.reason).await;
            return;
        }
    };
    let Grant {
        id,
        backlog,
        live,
        ctl,
    } = grant;
    let hello = DriverMsg::Hello {
        protocol: PROTOCOL.into(),
        version: VERSION,
        session: ctx.info.clone(),
        plan_text: ctx.plan_text.clone(),
        peer: name,
        idle_timeout_ms: ctx.idle_timeout.as_millis() as u64,
    };
    let reading = read_loop(&mut reader, id, &ctx, &ctl);
    let writing = write_loop(&mut w, hello, backlog, live, &ctl);
    let (read_end, write_end) = tokio::join!(reading, writing);
    // A hub that is gone has already forgotten this peer.
    let _ = ctx.hub.send(HubMsg::Leave {
        id,
        reason: read_end.or(write_end),
    });
}

/// Reads and checks the peer's Hello; returns the name it is admitted under.
async fn handshake<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    ctx: &PeerCtx,
) -> Result<String, Refusal> {
    let first = tokio::time::timeout(ctx.handshake_timeout, reader.next_msg::<PeerMsg>()).await;
    let msg = match first {
        Err(_) => {
            return Err(Refusal::new(format!(
                "no hello within {} (attach with `cutover attach ADDR --token T`)",
                humantime::format_duration(ctx.handshake_timeout)
            )));
        }
        Ok(Err(e)) => return Err(Refusal::new(e.to_string())),
        Ok(Ok(None)) => return Err(Refusal::new("the connection closed before its hello")),
        Ok(Ok(Some(m))) => m,
    };
    let PeerMsg::Hello {
        protocol,
        version,
        token,
        name,
    } = msg
    else {
        return Err(Refusal::new("the first message must be a hello"));
    };
    if protocol != PROTOCOL {
        return Err(Refusal::new(format!(
            "protocol \"{protocol}\" is not \"{PROTOCOL}\" (the other end is not cutover attach)"
        )));
    }
    if version != VERSION {
        return Err(Refusal::new(format!(
            "the peer speaks attach protocol version {version}, this driver speaks {VERSION}; \
             attach with the same cutover release as the driver"
        )));
    }
    // Checked before the name so a wrong token learns nothing else about the session.
    if !ctx.token.matches(token.reveal()) {
        return Err(Refusal {
            reason: "the attach token is wrong (copy it from the driver's terminal; it changes \
                     every session)"
                .into(),
            record: true,
        });
    }
    check_name(&name).map_err(Refusal::new)
}

/// A peer name is what approvals are recorded under: short, printable, one line.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the peer name is empty; attach with --name YOUR-NAME".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the peer name is longer than {MAX_NAME_CHARS} characters; attach with a shorter --name"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the peer name contains control characters; attach with a plain --name".into());
    }
    Ok(name.to_string())
}

/// Reads the peer's messages until it leaves, misbehaves, idles out or is closed. Returns
/// why the connection should end when that is not a normal leave.
async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    id: u64,
    ctx: &PeerCtx,
    ctl: &PeerCtl,
) -> Option<String> {
    let reason = loop {
        let next = tokio::select! {
            _ = ctl.closing.cancelled() => return None,
            r = tokio::time::timeout(ctx.idle_timeout, reader.next_msg::<PeerMsg>()) => r,
        };
        match next {
            Err(_) => {
                break Some(format!(
                    "dropped: sent nothing for {}",
                    humantime::format_duration(ctx.idle_timeout)
                ));
            }
            Ok(Err(e)) => break Some(format!("dropped: {e}")),
            Ok(Ok(None)) | Ok(Ok(Some(PeerMsg::Bye))) => break None,
            Ok(Ok(Some(PeerMsg::Presence))) => {}
            Ok(Ok(Some(PeerMsg::Approve { step, phrase }))) => {
                if ctx.hub.send(HubMsg::Approve { id, step, phrase }).is_err() {
                    break None;
                }
            }
            Ok(Ok(Some(PeerMsg::Hello { .. }))) => {
                break Some("dropped: sent a second hello".to_string());
            }
        }
    };
    ctl.close(reason.as_deref().unwrap_or("left"));
    reason
}

/// Why the writer stopped early.
enum WriteFail {
    /// The connection failed: nothing more can be sent.
    Conn(ProtocolError),
    /// The catch-up could not be read: the peer is told why.
    CatchUp(String),
}

impl From<ProtocolError> for WriteFail {
    fn from(e: ProtocolError) -> WriteFail {
        WriteFail::Conn(e)
    }
}

/// Sends the backlog: frames kept by the hub, or the transcript's first `events` events,
/// read back with its hash chain checked.
async fn send_backlog<W: AsyncWrite + Unpin>(
    w: &mut W,
    backlog: Backlog,
) -> Result<u64, WriteFail> {
    match backlog {
        Backlog::Frames(frames) => {
            for frame in &frames {
                protocol::write_frame(w, frame).await?;
            }
            Ok(frames.len() as u64)
        }
        Backlog::Transcript { path, events } => {
            let shown = path.display().to_string();
            let read = tokio::task::spawn_blocking(move || cutover_transcript::read(&path)).await;
            let t = match read {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    return Err(WriteFail::CatchUp(format!(
                        "the driver cannot read its transcript back for your catch-up: {e}"
                    )));
                }
                Err(e) => {
                    return Err(WriteFail::CatchUp(format!(
                        "reading the transcript {shown} for your catch-up failed: {e}"
                    )));
                }
            };
            if (t.events.len() as u64) < events {
                return Err(WriteFail::CatchUp(format!(
                    "the transcript {shown} holds {} events, {events} were recorded; attach again",
                    t.events.len()
                )));
            }
            for (i, ev) in t.events.iter().take(events as usize).enumerate() {
                protocol::write_frame(w, &encode_for_peers(i as u64 + 1, ev)).await?;
            }
            Ok(events)
        }
    }
}

/// Sends the Hello, the backlog, the catch-up marker, then live frames until the queue
/// closes (sharing stopped) or the connection is closed; then says goodbye.
async fn write_loop<W: AsyncWrite + Unpin>(
    w: &mut W,
    hello: DriverMsg,
    backlog: Backlog,
    mut live: mpsc::Receiver<Frame>,
    ctl: &PeerCtl,
) -> Option<String> {
    let outcome = async {
        protocol::send(&mut *w, &hello, MAX_DRIVER_FRAME).await?;
        let seq = send_backlog(&mut *w, backlog).await?;
        let caught_up = protocol::encode(&DriverMsg::CaughtUp { seq }, MAX_DRIVER_FRAME)?;
        protocol::write_frame(&mut *w, &caught_up).await?;
        w.flush().await.map_err(ProtocolError::from)?;
        while let Some(frame) = live.recv().await {
            protocol::write_frame(&mut *w, &frame).await?;
            if live.is_empty() {
                w.flush().await.map_err(ProtocolError::from)?;
            }
        }
        Ok::<(), WriteFail>(())
    };
    let failed = tokio::select! {
        _ = ctl.closing.cancelled() => None,
        r = outcome => r.err(),
    };
    let reason = match failed {
        None => {
            let bye = ctl
                .reason()
                .unwrap_or_else(|| "the driver stopped sharing".into());
            say_bye(w, &bye).await;
            None
        }
        Some(WriteFail::Conn(e)) => Some(format!("dropped: {e}")),
        Some(WriteFail::CatchUp(why)) => {
            tracing::error!("a peer's catch-up failed: {why}");
            say_bye(w, &why).await;
            Some(format!("dropped: {why}"))
        }
    };
    if let Some(r) = &reason {
        ctl.set_reason(r);
    }
    ctl.closing.cancel();
    reason
}

/// Best effort: a peer that does not take the goodbye within `BYE_TIMEOUT` is just closed.
async fn say_bye<W: AsyncWrite + Unpin>(w: &mut W, reason: &str) {
    let bye = DriverMsg::Bye {
        reason: reason.to_string(),
    };
    let sent = tokio::time::timeout(BYE_TIMEOUT, async {
        protocol::send(w, &bye, MAX_DRIVER_FRAME).await?;
        w.shutdown().await?;
        Ok::<(), ProtocolError>(())
    })
    .await;
    if let Ok(Err(e)) = sent {
        tracing::debug!("goodbye not delivered: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_tcp_or_unix() {
        assert_eq!(
            "127.0.0.1:7878".parse::<ShareAddr>().unwrap(),
            ShareAddr::Tcp("127.0.0.1:7878".parse().unwrap())
        );
        assert_eq!(
            "localhost:7878".parse::<ShareAddr>().unwrap(),
            ShareAddr::Tcp("127.0.0.1:7878".parse().unwrap())
        );
        assert_eq!(
            "./c.sock".parse::<ShareAddr>().unwrap(),
            ShareAddr::Unix("./c.sock".into())
        );
        assert_eq!(
            "unix:c".parse::<ShareAddr>().unwrap(),
            ShareAddr::Unix("c".into())
        );
        assert_eq!(ShareAddr::Unix("c".into()).to_string(), "unix:c");
        let err = "nonsense".parse::<ShareAddr>().unwrap_err().to_string();
        assert!(
            err.contains("neither IP:PORT nor a Unix socket path"),
            "{err}"
        );
    }

    #[test]
    fn loopback_is_allowed_and_the_rest_needs_allow_remote() {
        let ok = |s: &str, allow| check_exposure(&s.parse().unwrap(), allow).is_ok();
        assert!(ok("127.0.0.1:1", false));
        assert!(ok("[::1]:1", false));
        assert!(ok("[::ffff:127.0.0.1]:1", false));
        assert!(!ok("0.0.0.0:1", false));
        assert!(!ok("[::]:1", false));
        assert!(!ok("10.1.2.3:1", false));
        assert!(ok("0.0.0.0:1", true));
        let err = check_exposure(&"0.0.0.0:1".parse().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wildcard") && err.contains("--allow-remote"),
            "{err}"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  ann ").unwrap(), "ann");
        assert!(check_name("").is_err());
        assert!(check_name("a\u{1b}[2J").is_err());
        assert!(check_name(&"x".repeat(41)).is_err());
    }
}
