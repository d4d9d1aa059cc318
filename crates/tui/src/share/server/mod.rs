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

mod hub;
mod invite;
mod listener;
mod peer;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::protocol::SessionInfo;
use super::tls::{self, Fingerprint};
use cutover_core::event::Event;
use cutover_runtime::session::Session;
use hub::{History, Hub, HubMsg, run_hub};
use listener::{accept_loop, bind};
use peer::PeerCtx;

pub use invite::{InviteBook, InviteSpec, InviteView, MAX_INVITES};
pub use listener::{MAX_NAME_CHARS, check_name};

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
    #[error("cannot share over TLS: {reason}")]
    Tls { reason: String },
    #[error("cannot share this session: {reason}")]
    Invite { reason: String },
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
    /// One token per person, with their role (`--invite NAME[:observer|:approver]`).
    /// None: one shared token that admits observers only.
    pub invites: Vec<InviteSpec>,
    /// Where the attach commands are written (mode 0600); by default `<transcript>.invites`.
    pub invites_file: Option<PathBuf>,
    /// Connections that have not finished their handshake, at most, in total and from
    /// one address; past these a new connection is closed at once.
    pub max_pending: usize,
    pub max_pending_per_addr: usize,
}

impl ShareOptions {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_PEER_QUEUE: usize = 4096;
    pub const DEFAULT_MAX_PEERS: usize = 16;
    pub const DEFAULT_MAX_PENDING: usize = 64;
    pub const DEFAULT_MAX_PENDING_PER_ADDR: usize = 8;

    pub fn new(addr: ShareAddr) -> ShareOptions {
        ShareOptions {
            addr,
            allow_remote: false,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            peer_queue: Self::DEFAULT_PEER_QUEUE,
            max_peers: Self::DEFAULT_MAX_PEERS,
            invites: Vec::new(),
            invites_file: None,
            max_pending: Self::DEFAULT_MAX_PENDING,
            max_pending_per_addr: Self::DEFAULT_MAX_PENDING_PER_ADDR,
        }
    }
}

/// A running share. Dropping it stops listening and closes every peer; [`shutdown`] does
/// the same but lets the peers receive what is queued (the session's end) first.
///
/// [`shutdown`]: ShareHandle::shutdown
pub struct ShareHandle {
    control: ShareControl,
    addr: ShareAddr,
    fingerprint: Option<Fingerprint>,
    stop: CancellationToken,
    accept: Option<JoinHandle<()>>,
    socket_path: Option<PathBuf>,
}

impl fmt::Debug for ShareHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareHandle")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

/// What the driver's cockpit does to a running share: list, issue and revoke invites.
/// Cheap to clone; every change is recorded (names and roles, never tokens).
#[derive(Clone)]
pub struct ShareControl {
    book: Arc<Mutex<InviteBook>>,
    hub: mpsc::UnboundedSender<HubMsg>,
}

impl fmt::Debug for ShareControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareControl")
    }
}

impl ShareControl {
    fn book(&self) -> std::sync::MutexGuard<'_, InviteBook> {
        // A panic while holding the book leaves it consistent (every change is one step).
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every invite, revoked ones included.
    pub fn invites(&self) -> Vec<InviteView> {
        self.book().list()
    }

    /// Where the attach commands are written.
    pub fn invites_file(&self) -> Option<PathBuf> {
        self.book().file().map(PathBuf::from)
    }

    /// The command for the shared observers' token (a session shared without invites).
    pub fn shared_command(&self) -> Option<String> {
        self.book().shared_command()
    }

    /// `name`'s attach command (token included): for the driver's screen only.
    pub fn command_for(&self, name: &str) -> Option<String> {
        self.book().command_for(name)
    }

    /// Live approver invites.
    pub fn approvers(&self) -> usize {
        self.book().approvers()
    }

    /// Issues an invite (`NAME[:observer|:approver]`); returns its attach command.
    pub fn issue(&self, spec: &str) -> Result<String, String> {
        let spec: InviteSpec = spec.trim().parse()?;
        let cmd = self.book().issue(&spec)?;
        // The hub records it; it is gone only once sharing has stopped.
        let _ = self.hub.send(HubMsg::Issued {
            name: spec.name,
            role: spec.role,
        });
        Ok(cmd)
    }

    /// One line on how colleagues attach, for the notice line: the shared command, or
    /// the invites and where their commands are, with a warning when the plan asks for
    /// more approvals than there are approvers invited.
    pub fn summary(&self, plan: &cutover_core::plan::Plan) -> String {
        let book = self.book();
        let mut line = match book.shared_command() {
            Some(cmd) => format!("share: {cmd}   (observers only; I invites by name)"),
            None => {
                let list: Vec<String> = book
                    .list()
                    .iter()
                    .filter(|i| !i.revoked)
                    .map(|i| format!("{} ({})", i.name, i.role))
                    .collect();
                let at = match book.file() {
                    Some(f) => format!("commands in {}", f.display()),
                    None => "I then `show NAME` for a command".into(),
                };
                format!("invited: {}; {at}; I manages invites", list.join(", "))
            }
        };
        let approvers = book.approvers();
        if let Some(s) = plan
            .steps
            .iter()
            .filter(|s| s.approvals as usize > approvers)
            .max_by_key(|s| s.approvals)
        {
            line = format!(
                "⚠ {} needs {} approval(s) but {approvers} approver(s) are invited (I: invite \
                 NAME:approver) · {line}",
                s.id, s.approvals
            );
        }
        line
    }

    /// Revokes `name`'s invite: its token stops working and its connection closes now.
    pub fn revoke(&self, name: &str) -> Result<String, String> {
        let name = self.book().revoke(name.trim())?;
        let _ = self.hub.send(HubMsg::Revoke { name: name.clone() });
        Ok(name)
    }
}

impl ShareHandle {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn addr(&self) -> &ShareAddr {
        &self.addr
    }

    /// The fingerprint of this session's TLS certificate (TCP only; a Unix socket is plain).
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprint.as_ref()
    }

    /// The invites, for the cockpit.
    pub fn control(&self) -> ShareControl {
        self.control.clone()
    }

    /// The command a colleague runs with the shared observers' token (a session shared
    /// without invites), token and fingerprint included: show it in the driver's
    /// cockpit, never in a log.
    pub fn attach_command(&self) -> Option<String> {
        self.control.shared_command()
    }

    /// `name`'s attach command.
    pub fn command_for(&self, name: &str) -> Option<String> {
        self.control.command_for(name)
    }

    /// Stops accepting, sends every peer what is still queued and a goodbye, and waits (at
    /// most two seconds) for them to be sent. Call after the session's last event.
    pub async fn shutdown(mut self, reason: &str) {
        let (done_tx, done_rx) = oneshot::channel();
        let sent = self.control.hub.send(HubMsg::Shutdown {
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
        let _ = self.control.hub.send(HubMsg::Shutdown {
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
    start_share_after(session, opts, &[]).await
}

/// [`start_share`] for a resumed session: `prior` are the interrupted session's events,
/// which the session folded before its own transcript began; peers catch up on both.
pub async fn start_share_after(
    session: &mut Session,
    opts: ShareOptions,
    prior: &[Event],
) -> Result<ShareHandle, ShareError> {
    check_exposure(&opts.addr, opts.allow_remote)?;
    let backlog = recorded_so_far(session, prior)?;
    // A fresh certificate per session: its fingerprint, in the attach command, is what a
    // peer pins.
    let tls = match &opts.addr {
        ShareAddr::Tcp(_) => Some(tls::server().map_err(|e| ShareError::Tls {
            reason: e.to_string(),
        })?),
        ShareAddr::Unix(_) => None,
    };
    let fingerprint = tls.as_ref().map(|t| t.fingerprint);
    let (listener, addr, socket_path) = bind(&opts.addr, tls.map(|t| t.acceptor)).await?;
    if opts.allow_remote {
        tracing::warn!(%addr, "sharing on a non-loopback address (--allow-remote)");
    }
    let invites_file = opts.invites_file.clone().or_else(|| {
        session.transcript_path().map(|p| {
            let mut s = p.as_os_str().to_owned();
            s.push(".invites");
            PathBuf::from(s)
        })
    });
    let book = InviteBook::new(
        &opts.invites,
        invites_file,
        addr.clone(),
        fingerprint,
        session.state.operator.as_deref().unwrap_or_default(),
    )?;
    let book = Arc::new(Mutex::new(book));
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
        transcript_key: session.transcript_key().map(|k| k.to_text()),
    };

    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let history = match session.transcript_path() {
        Some(path) => History::Transcript {
            prior: prior
                .iter()
                .enumerate()
                .map(|(i, ev)| hub::encode_for_peers(i as u64 + 1, ev, None))
                .collect(),
            path: path.to_path_buf(),
        },
        None => History::Memory(Vec::new()),
    };
    let mut hub = Hub::new(
        &session.plan,
        &opts,
        history,
        info.operator.clone(),
        session.sender(),
    );
    hub.record(backlog, session.transcript_head().map(str::to_string));
    tokio::spawn(run_hub(hub, hub_rx));

    let tap_tx = hub_tx.clone();
    session.add_tap(Box::new(move |batch: &[Event], head: Option<&str>| {
        // Never blocks: an unbounded send. It fails only once sharing has stopped.
        let _ = tap_tx.send(HubMsg::Batch(batch.to_vec(), head.map(str::to_string)));
    }));

    let ctx = Arc::new(PeerCtx {
        book: Arc::clone(&book),
        hub: hub_tx.clone(),
        info,
        plan_text: session.plan.source_text.clone(),
        idle_timeout: opts.idle_timeout,
        handshake_timeout: opts.handshake_timeout,
    });
    let stop = CancellationToken::new();
    let limits = listener::Pending::new(opts.max_pending, opts.max_pending_per_addr);
    let accept = tokio::spawn(accept_loop(listener, ctx, limits, stop.clone()));
    tracing::info!(%addr, "sharing the session");
    Ok(ShareHandle {
        control: ShareControl { book, hub: hub_tx },
        addr,
        fingerprint,
        stop,
        accept: Some(accept),
        socket_path,
    })
}

fn check_exposure(addr: &ShareAddr, allow_remote: bool) -> Result<(), ShareError> {
    let ShareAddr::Tcp(sa) = addr else {
        return Ok(());
    };
    match cutover_runtime::net::exposure(sa, allow_remote) {
        None => Ok(()),
        Some(reason) => Err(ShareError::Remote {
            addr: sa.to_string(),
            reason,
        }),
    }
}

/// The events the session folded before the tap existed: `prior` (an interrupted
/// session's, when resumed) then what its own transcript holds.
fn recorded_so_far(session: &Session, prior: &[Event]) -> Result<Vec<Event>, ShareError> {
    let folded = session.state.events;
    if let Some(path) = session.transcript_path() {
        let t = cutover_transcript::read(path).map_err(|e| ShareError::Backlog {
            reason: format!("cannot read back its transcript to replay to peers: {e}"),
        })?;
        if (prior.len() + t.events.len()) as u64 == folded {
            let mut all = prior.to_vec();
            all.extend(t.events);
            return Ok(all);
        }
        return Err(ShareError::Backlog {
            reason: format!(
                "its transcript {} holds {} events (and {} before a resume) but the session has \
                 folded {folded}; start sharing right after opening the session",
                path.display(),
                t.events.len(),
                prior.len()
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
}
