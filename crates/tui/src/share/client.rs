//! The peer's side of pairing: connects to a sharing driver, shows its cockpit live and
//! read-only, and sends presence and (for four-eyes steps) approvals.
//!
//! The peer folds the stream with the same `State::apply` as replay, over a `State` built
//! from the plan text the driver sent, so its screen is the driver's at the same event.
//! Invariants (absences): the peer has no `Actuator` and records nothing; the only messages
//! it can send are presence, an approval and a goodbye.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use futures::StreamExt;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::protocol::{
    self, AttachToken, DriverMsg, FrameReader, MAX_DRIVER_FRAME, MAX_PEER_FRAME, PROTOCOL, PeerMsg,
    ProtocolError, SessionInfo, VERSION,
};
use super::server::ShareAddr;
use super::tls::Fingerprint;
use crate::ui::{self, Intent, Mode, Theme, UiState};
use cutover_core::event::{Event, Evidence, GateSeen, PeerRole};
use cutover_core::plan::Plan;
use cutover_core::state::{GateState, State, StepStatus};

/// Why attaching failed or the attachment ended. Each names the thing, the reason and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "cannot connect to {addr}: {source} (is the driver running with --share {addr}? From \
         another host, forward the port first: ssh -L 7878:127.0.0.1:7878 DRIVER-HOST)"
    )]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "attaching to {addr} over TCP needs --fingerprint SHA256:... (it is in the attach \
         command the driver's cockpit shows: press T there)"
    )]
    NoFingerprint { addr: String },
    #[error(
        "the driver at {addr} presented a certificate that is not the one pinned with \
         --fingerprint {pin}: refusing to send the token (copy the attach command again from \
         the driver's cockpit, T; if it matches, something between you and the driver is \
         intercepting the connection)"
    )]
    Fingerprint { addr: String, pin: Fingerprint },
    #[error(
        "the TLS handshake with {addr} failed: {source} (is it a cutover driver sharing on TCP?)"
    )]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("the driver at {addr} refused to attach: {reason}")]
    Refused { addr: String, reason: String },
    #[error("the driver at {addr} did not answer within {secs}s (is it a cutover driver?)")]
    Timeout { addr: String, secs: u64 },
    #[error("talking to the driver at {addr}: {source}")]
    Protocol { addr: String, source: ProtocolError },
    #[error(
        "the driver at {addr} speaks {protocol} version {version}, this program speaks \
         {PROTOCOL} version {VERSION}: attach with the same cutover release as the driver"
    )]
    Version {
        addr: String,
        protocol: String,
        version: u32,
    },
    #[error(
        "the driver's plan \"{plan}\" does not load here: {reason} (attach with the same cutover \
         release as the driver)"
    )]
    Plan { plan: String, reason: String },
}

/// What the driver told us when it admitted us.
#[derive(Clone, Debug)]
pub struct Welcome {
    pub info: SessionInfo,
    pub plan: Arc<Plan>,
    /// The name we were admitted under: our invite's (or, with a shared observers'
    /// token, the one we gave).
    pub name: String,
    /// What the driver's invite lets us do.
    pub role: PeerRole,
    pub idle_timeout: Duration,
}

/// One thing received from the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Event {
        seq: u64,
        event: Event,
        /// The transcript line hash when this event ends a recorded batch.
        head: Option<String>,
    },
    /// Everything recorded before we joined has arrived.
    CaughtUp {
        seq: u64,
        head: Option<String>,
    },
    Notice(String),
    /// The connection ended; why (the driver's goodbye, or what went wrong).
    Closed(String),
}

/// A live connection to a driver.
pub struct PeerLink {
    incoming: mpsc::Receiver<Incoming>,
    out: mpsc::UnboundedSender<PeerMsg>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

/// How long the driver may take to answer the Hello.
/// Received messages buffered before the reader stops reading (and the driver, seeing us
/// fall behind, eventually drops us: a peer that cannot keep up must not slow the driver).
const INCOMING_QUEUE: usize = 1024;

impl PeerLink {
    /// The next message from the driver; `None` after `Closed` has been returned.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// A message if one is waiting.
    pub fn try_next(&mut self) -> Option<Incoming> {
        self.incoming.try_recv().ok()
    }

    /// Sends an approval of `step` with its typed phrase and what this cockpit showed
    /// (`Watcher::evidence`); the driver answers with a notice and, when it accepts, a
    /// recorded `StepApproved`.
    pub fn approve(&self, step: &str, phrase: &str, seen: Evidence) {
        // The writer is gone only once the connection closed, which `next` reports.
        let _ = self.out.send(PeerMsg::Approve {
            step: step.to_string(),
            phrase: phrase.to_string(),
            seen,
        });
    }

    /// Says goodbye and waits (briefly) for it to be sent.
    pub async fn leave(mut self) {
        // See `approve`: a closed connection needs no goodbye.
        let _ = self.out.send(PeerMsg::Bye);
        if let Some(writer) = self.writer.take() {
            // A writer that panicked or hangs has nothing more to send.
            let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        }
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

type ConnRead = Box<dyn AsyncRead + Send + Unpin>;
type ConnWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Connects: over TCP, TLS pinned to `pin` (within the process's connect deadline); over
/// a Unix socket, plain.
async fn dial(
    addr: &ShareAddr,
    pin: Option<&Fingerprint>,
) -> Result<(ConnRead, ConnWrite), AttachError> {
    let a = addr.to_string();
    let conn_err = |source| AttachError::Connect {
        addr: a.clone(),
        source,
    };
    match addr {
        ShareAddr::Tcp(sa) => {
            let pin = *pin.ok_or_else(|| AttachError::NoFingerprint { addr: a.clone() })?;
            let opened = cutover_runtime::net::within(&a, async {
                let s = tokio::net::TcpStream::connect(sa)
                    .await
                    .map_err(&conn_err)?;
                // Latency matters more than packet count (approvals, heartbeats).
                let _ = s.set_nodelay(true);
                super::tls::connect_pinned(s, pin).await.map_err(|e| {
                    if super::tls::is_pin_mismatch(&e) {
                        AttachError::Fingerprint {
                            addr: a.clone(),
                            pin,
                        }
                    } else {
                        AttachError::Tls {
                            addr: a.clone(),
                            source: e,
                        }
                    }
                })
            })
            .await
            .map_err(|e| conn_err(std::io::Error::new(std::io::ErrorKind::TimedOut, e)))??;
            let (r, w) = tokio::io::split(opened);
            Ok((Box::new(r), Box::new(w)))
        }
        ShareAddr::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p).await.map_err(conn_err)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

/// Connects, sends our Hello and waits for the driver's. On success the link delivers the
/// session from its first event.
pub async fn connect(
    addr: &ShareAddr,
    pin: Option<&Fingerprint>,
    token: &AttachToken,
    name: &str,
) -> Result<(Welcome, PeerLink), AttachError> {
    let a = addr.to_string();
    let (r, mut w) = dial(addr, pin).await?;
    let proto = |source| AttachError::Protocol {
        addr: a.clone(),
        source,
    };
    let hello = PeerMsg::Hello {
        protocol: PROTOCOL.into(),
        version: VERSION,
        token: token.clone(),
        name: name.to_string(),
    };
    protocol::send(&mut w, &hello, MAX_PEER_FRAME)
        .await
        .map_err(proto)?;
    let mut reader = FrameReader::new(r, MAX_DRIVER_FRAME);
    let hello_timeout = cutover_runtime::net::connect_timeout();
    let first = tokio::time::timeout(hello_timeout, reader.next_msg::<DriverMsg>())
        .await
        .map_err(|_| AttachError::Timeout {
            addr: a.clone(),
            secs: hello_timeout.as_secs().max(1),
        })?
        .map_err(proto)?;
    let (session, plan_text, peer, role, idle_ms) = match first {
        Some(DriverMsg::Hello {
            protocol,
            version,
            session,
            plan_text,
            peer,
            role,
            idle_timeout_ms,
        }) => {
            if protocol != PROTOCOL || version != VERSION {
                return Err(AttachError::Version {
                    addr: a,
                    protocol,
                    version,
                });
            }
            (session, plan_text, peer, role, idle_timeout_ms)
        }
        Some(DriverMsg::Bye { reason }) => return Err(AttachError::Refused { addr: a, reason }),
        Some(other) => {
            return Err(proto(ProtocolError::Malformed {
                reason: format!("expected the driver's hello, got {other:?}"),
            }));
        }
        None => {
            return Err(AttachError::Refused {
                addr: a,
                reason: "it closed the connection without a word".into(),
            });
        }
    };
    let plan = cutover_core::plan::parse(
        &format!("{} (from the driver)", session.plan_name),
        &plan_text,
    )
    .map_err(|e| AttachError::Plan {
        plan: session.plan_name.clone(),
        reason: e.to_string(),
    })?;
    if plan.hash != session.plan_hash {
        return Err(AttachError::Plan {
            plan: session.plan_name.clone(),
            reason: "its text does not hash to the hash the driver announced".into(),
        });
    }
    let idle_timeout = Duration::from_millis(idle_ms.max(1));
    let (in_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
    let (out, out_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_driver(reader, in_tx));
    let writer = tokio::spawn(write_driver(w, out_rx, heartbeat_every(idle_timeout)));
    Ok((
        Welcome {
            info: session,
            plan: Arc::new(plan),
            name: peer,
            role,
            idle_timeout,
        },
        PeerLink {
            incoming,
            out,
            reader,
            writer: Some(writer),
        },
    ))
}

/// Heartbeats often enough that two can be lost before the driver gives up on us.
fn heartbeat_every(idle: Duration) -> Duration {
    (idle / 3).clamp(Duration::from_millis(10), Duration::from_secs(10))
}

async fn read_driver(mut reader: FrameReader<ConnRead>, tx: mpsc::Sender<Incoming>) {
    let closed = loop {
        let msg = match reader.next_msg::<DriverMsg>().await {
            Ok(Some(m)) => m,
            Ok(None) => break "the driver closed the connection".to_string(),
            Err(e) => break format!("the connection to the driver failed: {e}"),
        };
        let item = match msg {
            DriverMsg::Event { seq, event, head } => Incoming::Event { seq, event, head },
            DriverMsg::CaughtUp { seq, head } => Incoming::CaughtUp { seq, head },
            DriverMsg::Notice { text } => Incoming::Notice(text),
            DriverMsg::Bye { reason } => break reason,
            DriverMsg::Hello { .. } => break "the driver sent a second hello".to_string(),
        };
        if tx.send(item).await.is_err() {
            return;
        }
    };
    // Nobody may be listening any more; then nobody needs to know.
    let _ = tx.send(Incoming::Closed(closed)).await;
}

async fn write_driver(mut w: ConnWrite, mut rx: mpsc::UnboundedReceiver<PeerMsg>, every: Duration) {
    let mut beat = tokio::time::interval(every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m.unwrap_or(PeerMsg::Bye),
            _ = beat.tick() => PeerMsg::Presence,
        };
        let bye = msg == PeerMsg::Bye;
        if let Err(e) = protocol::send(&mut w, &msg, MAX_PEER_FRAME).await {
            tracing::debug!("sending to the driver failed: {e}");
            return;
        }
        if bye {
            // The driver may already have closed; the goodbye was best effort.
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// The peer's fold: the driver's state rebuilt from the stream, plus what only this peer
/// knows (the catch-up progress, notices, how the connection ended).
#[derive(Clone, Debug)]
pub struct Watcher {
    pub state: State,
    /// The last event folded (1-based, as the driver numbers them).
    pub seq: u64,
    /// Whether the backlog has been folded (the screen is live).
    pub caught_up: bool,
    /// The last batch head folded: (seq, transcript line hash).
    pub head: Option<(u64, String)>,
    pub notices: VecDeque<String>,
    pub closed: Option<String>,
}

impl Watcher {
    pub fn new(plan: Arc<Plan>) -> Watcher {
        Watcher {
            state: State::new(plan),
            seq: 0,
            caught_up: false,
            head: None,
            notices: VecDeque::new(),
            closed: None,
        }
    }

    /// Folds one message. Effects are dropped: a peer acts on nothing.
    pub fn handle(&mut self, msg: Incoming) {
        match msg {
            Incoming::Event { seq, event, head } => {
                if self.closed.is_some() {
                    return;
                }
                if seq != self.seq + 1 {
                    self.closed = Some(format!(
                        "the stream skipped from event {} to {seq}; attach again",
                        self.seq
                    ));
                    return;
                }
                self.seq = seq;
                // A read-only fold: effects are the driver's to carry out.
                let _ = self.state.apply(&event);
                if let Some(h) = head {
                    self.head = Some((seq, h));
                }
            }
            Incoming::CaughtUp { seq, head } => {
                self.caught_up = true;
                if let Some(h) = head
                    && seq == self.seq
                {
                    self.head = Some((seq, h));
                }
            }
            Incoming::Notice(text) => {
                if self.notices.len() == 20 {
                    self.notices.pop_front();
                }
                self.notices.push_back(text);
            }
            Incoming::Closed(reason) => {
                self.closed.get_or_insert(reason);
            }
        }
    }

    /// The step this peer could approve now, with the phrase it must type: once caught
    /// up, the next step, when it asks for approvals, its gates are all green on this
    /// screen and this peer has not approved it yet.
    pub fn approvable(&self, name: &str) -> Option<usize> {
        let i = self.state.next_step()?;
        let def = self.state.plan.steps.get(i)?;
        let st = self.state.steps.get(i)?;
        (self.caught_up
            && def.approvals > 0
            && st.status == StepStatus::Pending
            && self.state.step_readiness(i).0 == GateState::Green
            && !st.approvals.iter().any(|a| a.by == name))
        .then_some(i)
    }

    /// What this screen shows of `step` now, as an approval carries it: the last batch
    /// head folded (or, without a transcript, the last event) and each gate's state.
    pub fn evidence(&self, step: usize) -> Evidence {
        let gates = self
            .state
            .plan
            .steps
            .get(step)
            .map(|def| {
                self.state
                    .step_gates(step)
                    .into_iter()
                    .zip(&def.gates)
                    .map(|(g, d)| GateSeen {
                        gate: d.text.clone(),
                        state: g.state,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (seq, head) = match &self.head {
            Some((seq, h)) => (*seq, Some(h.clone())),
            None => (self.seq, None),
        };
        Evidence {
            seq,
            head,
            gates,
            signature: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The attach cockpit: the driver's screen in Watch mode, plus the approval dialog.

/// What a key asks of the attach loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAction {
    Approve { step: String, phrase: String },
    Quit,
}

/// The approval dialog: the step, what has been typed, and the driver's last answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDialog {
    pub step: usize,
    pub input: String,
    pub error: Option<String>,
    /// Sent; waiting for the driver's notice.
    pub pending: bool,
}

/// Longest phrase kept while typing (as in the driver's dialog).
const MAX_INPUT: usize = 200;

/// The peer's screen state: the view's `UiState` (Watch mode) and the approval dialog,
/// which lives here because only a peer approves. Never sent, never recorded.
#[derive(Clone, Debug)]
pub struct AttachScreen {
    pub ui: UiState,
    pub approval: Option<ApprovalDialog>,
    name: String,
    role: PeerRole,
    whose: String,
}

impl AttachScreen {
    pub fn new(welcome: &Welcome) -> AttachScreen {
        AttachScreen {
            ui: UiState::new(Mode::Watch, welcome.name.clone(), None),
            approval: None,
            name: welcome.name.clone(),
            role: welcome.role,
            whose: format!("{}@{}", welcome.info.operator, welcome.info.host),
        }
    }

    /// Handles one key: the approval dialog's when it is open, `a` to open it, the rest
    /// as the cockpit's (navigation, help, quit). Nothing a key does here is recorded.
    pub fn key(&mut self, w: &Watcher, key: KeyEvent) -> Vec<PeerAction> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(d) = &mut self.approval {
            match key.code {
                KeyCode::Esc => self.approval = None,
                KeyCode::Char('c') if ctrl => self.approval = None,
                KeyCode::Enter if !d.pending => {
                    let Some(def) = w.state.plan.steps.get(d.step) else {
                        self.approval = None;
                        return Vec::new();
                    };
                    d.pending = true;
                    d.error = None;
                    // Surrounding spaces are forgiven, as in the driver's own dialog.
                    return vec![PeerAction::Approve {
                        step: def.id.clone(),
                        phrase: d.input.trim().to_string(),
                    }];
                }
                KeyCode::Backspace => {
                    d.input.pop();
                }
                KeyCode::Char('u') if ctrl => d.input.clear(),
                KeyCode::Char(c)
                    if !ctrl
                        && !key.modifiers.contains(KeyModifiers::ALT)
                        && d.input.chars().count() < MAX_INPUT =>
                {
                    d.input.push(c);
                }
                _ => {}
            }
            return Vec::new();
        }
        let plain = !ctrl && !key.modifiers.contains(KeyModifiers::ALT);
        if plain && key.code == KeyCode::Char('a') && !self.ui.help && !self.ui.quit_confirm {
            self.ui.notice = None;
            if self.role == PeerRole::Observer {
                self.ui.notice = Some(
                    "you attached as an observer: only an approver's invite can approve (ask the \
                     driver)"
                        .into(),
                );
            } else if w.closed.is_some() {
                self.ui.notice = Some("disconnected: approvals cannot reach the driver".into());
            } else {
                match w.approvable(&self.name) {
                    Some(step) => {
                        self.approval = Some(ApprovalDialog {
                            step,
                            input: String::new(),
                            error: None,
                            pending: false,
                        });
                    }
                    None => self.ui.notice = Some(self.why_nothing_to_approve(w)),
                }
            }
            return Vec::new();
        }
        ui::handle_key(&mut self.ui, &w.state, key, w.state.now)
            .into_iter()
            .filter_map(|intent| match intent {
                Intent::Quit => Some(PeerAction::Quit),
                // Watch mode records nothing; the view only explains why.
                Intent::Record(_) | Intent::Share(_) => None,
            })
            .collect()
    }

    fn why_nothing_to_approve(&self, w: &Watcher) -> String {
        let st = &w.state;
        let Some(i) = st.next_step() else {
            return "nothing to approve: no step is waiting".into();
        };
        let def = &st.plan.steps[i];
        if def.approvals == 0 {
            format!(
                "nothing to approve: the next step, {}, needs no approvals",
                def.id
            )
        } else if st.steps[i].approvals.iter().any(|a| a.by == self.name) {
            format!("you have already approved {}", def.id)
        } else if let (state, Some(why)) = st.step_readiness(i)
            && state != GateState::Green
        {
            format!(
                "{} is not green on your screen ({why}): approve what you see green",
                def.id
            )
        } else {
            format!(
                "{} is {}; nothing to approve",
                def.id,
                st.steps[i].status_label()
            )
        }
    }

    /// A notice from the driver: an answer to our approval, or something to show.
    pub fn on_notice(&mut self, text: &str) {
        match &mut self.approval {
            Some(d) if d.pending && text.contains("refused") => {
                d.pending = false;
                d.error = Some(text.to_string());
            }
            Some(d) if d.pending => {
                self.approval = None;
                self.ui.notice = Some(text.to_string());
            }
            _ => self.ui.notice = Some(text.to_string()),
        }
    }

    /// Keeps the footer and the dialog in step with the stream.
    fn refresh(&mut self, w: &Watcher) {
        let status = match (&w.closed, w.caught_up) {
            (Some(reason), _) => format!("DISCONNECTED: {reason}"),
            (None, false) => format!("catching up: event {}", w.seq),
            (None, true) => "live".to_string(),
        };
        let hint = match w.approvable(&self.name) {
            Some(i) if w.closed.is_none() && self.role == PeerRole::Approver => {
                format!(
                    " · a approve {}",
                    w.state.plan.steps.get(i).map_or("", |s| s.id.as_str())
                )
            }
            _ => String::new(),
        };
        self.ui.footer = Some(format!(
            "watching {} as {} ({}) · {status}{hint} · q leave",
            self.whose, self.name, self.role
        ));
        if let Some(d) = &self.approval
            && !d.pending
            && (w.closed.is_some() || w.approvable(&self.name) != Some(d.step))
        {
            self.approval = None;
            self.ui.notice =
                Some("the approval dialog closed: the step no longer waits for you".into());
        }
    }

    /// Draws the driver's cockpit as the peer folded it, then the approval dialog.
    pub fn draw(&mut self, frame: &mut Frame, w: &Watcher, theme: &Theme) {
        self.refresh(w);
        ui::draw(frame, &w.state, &self.ui, theme);
        if let Some(d) = &self.approval {
            draw_approval(frame, w, d, theme);
        }
    }
}

fn draw_approval(frame: &mut Frame, w: &Watcher, d: &ApprovalDialog, theme: &Theme) {
    let Some(def) = w.state.plan.steps.get(d.step) else {
        return;
    };
    let st = &w.state.steps[d.step];
    let mut lines = vec![
        Line::from(Span::styled(
            format!("{} — {}", def.id, def.title),
            theme.title,
        )),
        Line::from(Span::styled(
            format!(
                "needs {} approval(s) from peers, has {}; the driver still confirms it",
                def.approvals,
                st.approvals.len()
            ),
            theme.dim,
        )),
        Line::raw(""),
        Line::from(vec![
            Span::styled("type the step's phrase to approve: ", theme.text),
            Span::styled(def.confirm.clone(), theme.key),
        ]),
        Line::from(vec![
            Span::styled("> ", theme.dim),
            Span::styled(format!("{}_", d.input), theme.input),
        ]),
    ];
    if d.pending {
        lines.push(Line::from(Span::styled(
            "sent; waiting for the driver…",
            theme.dim,
        )));
    } else if let Some(e) = &d.error {
        lines.push(Line::from(Span::styled(e.clone(), theme.bad)));
    } else {
        lines.push(Line::raw(""));
    }
    lines.push(Line::from(vec![
        Span::styled("Enter", theme.key),
        Span::styled(" approve  ", theme.dim),
        Span::styled("Esc", theme.key),
        Span::styled(" cancel", theme.dim),
    ]));
    let area = frame.area();
    let width = 72.min(area.width.saturating_sub(2)).max(10);
    let height = (lines.len() as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + area.width.saturating_sub(width) / 2,
        area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, r);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(theme.dialog_border)
        .style(theme.dialog)
        .title(Line::from(Span::styled(
            " approve (four-eyes) ",
            theme.dialog_border,
        )));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        r,
    );
}

/// How an attach session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The peer quit while connected.
    Left,
    /// The peer quit after the connection had ended; why it ended.
    Disconnected(String),
}

/// At most this many frames a second.
const FPS: u64 = 30;
/// Messages folded before the screen is drawn and keys are read again (catch-up stays
/// responsive).
const DRAIN: usize = 10_000;

/// `cutover attach`: connects, then shows the driver's cockpit live and read-only until the
/// peer quits (or a signal arrives). Connection errors are returned before the terminal is
/// taken over, so they print plainly.
pub async fn run_attach(
    addr: &ShareAddr,
    pin: Option<&Fingerprint>,
    token: &AttachToken,
    name: &str,
    signer: Option<&cutover_transcript::approval::Signer>,
    theme: &Theme,
) -> anyhow::Result<AttachEnd> {
    let (welcome, mut link) = connect(addr, pin, token, name).await?;
    if let Some(key) = &welcome.info.transcript_key {
        // On the main screen, so it is there after the cockpit closes: an anchor the driver
        // cannot take back (`cutover verify FILE --key KEY`).
        eprintln!(
            "the driver signs its transcript with {key}; keep it to check the file later: cutover verify FILE --key {key}"
        );
    }
    let mut watcher = Watcher::new(Arc::clone(&welcome.plan));
    let mut screen = AttachScreen::new(&welcome);

    let (mut terminal, _guard) = crate::app::enter_terminal()?;
    let mut keys = EventStream::new();
    let mut signals = crate::app::Signals::new()?;
    let frame = Duration::from_millis(1000 / FPS);
    let mut last_draw = Instant::now() - frame;
    let mut dirty = true;
    let mut link_open = true;

    let quit_while_connected = loop {
        if dirty && last_draw.elapsed() >= frame {
            terminal.draw(|f| screen.draw(f, &watcher, theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let until_frame = frame.saturating_sub(last_draw.elapsed());
        tokio::select! {
            msg = link.next(), if link_open => {
                let mut next = msg;
                let mut n = 0;
                loop {
                    match next {
                        Some(m) => {
                            if let Incoming::Notice(text) = &m {
                                screen.on_notice(text);
                            }
                            watcher.handle(m);
                        }
                        None => {
                            link_open = false;
                            watcher.handle(Incoming::Closed("the connection ended".into()));
                            break;
                        }
                    }
                    n += 1;
                    if n >= DRAIN {
                        break;
                    }
                    match link.try_next() {
                        Some(m) => next = Some(m),
                        None => break,
                    }
                }
                dirty = true;
            }
            term = keys.next() => match term {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    let actions = screen.key(&watcher, key);
                    dirty = true;
                    let mut quit = false;
                    for action in actions {
                        match action {
                            PeerAction::Approve { step, phrase } => {
                                let seen = watcher
                                    .state
                                    .plan
                                    .step_index(&step)
                                    .map(|i| watcher.evidence(i));
                                if let Some(mut seen) = seen {
                                    let signed = match signer {
                                        Some(key) => cutover_transcript::approval::sign(
                                            key,
                                            &welcome.info.plan_hash,
                                            &step,
                                            &welcome.name,
                                            &mut seen,
                                        ),
                                        None => Ok(()),
                                    };
                                    match signed {
                                        Ok(()) => link.approve(&step, &phrase, seen),
                                        Err(e) => screen.on_notice(&format!(
                                            "approval of {step} refused here: cannot sign it: {e}"
                                        )),
                                    }
                                }
                            }
                            PeerAction::Quit => quit = true,
                        }
                    }
                    if quit {
                        break watcher.closed.is_none();
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => break watcher.closed.is_none(),
            },
            _ = signals.next() => break watcher.closed.is_none(),
            _ = tokio::time::sleep(until_frame), if dirty => {}
        }
    };
    if quit_while_connected {
        link.leave().await;
        Ok(AttachEnd::Left)
    } else {
        Ok(AttachEnd::Disconnected(
            watcher
                .closed
                .unwrap_or_else(|| "the connection ended".into()),
        ))
    }
}
