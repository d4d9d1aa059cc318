//! The hub: one task that owns the history and every peer's bounded queue. It fans each
//! recorded batch out without ever waiting on a peer (a full queue drops that peer, with
//! the reason recorded), admits and removes peers (their presence becomes events), and
//! checks approvals against a mirror fold of the session before injecting them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ShareOptions;
use super::listener::same_name;
use crate::share::protocol::{self, DriverMsg, Frame, MAX_DRIVER_FRAME};
use cutover_core::event::{Event, now_ms};
use cutover_core::plan::Plan;
use cutover_core::state::{State, StepStatus};

pub(super) enum HubMsg {
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
pub(super) enum History {
    /// The session's transcript: read back (and its hash chain checked) by the joining
    /// peer's own task, so the driver keeps no copy of the session's events.
    Transcript(PathBuf),
    /// A session without a transcript: the hub keeps every encoded event.
    Memory(Vec<Frame>),
}

/// The events a joining peer must catch up on: everything recorded before it joined.
pub(super) enum Backlog {
    Frames(Vec<Frame>),
    Transcript { path: PathBuf, events: u64 },
}

/// What an admitted peer gets: the history so far and its live queue.
pub(super) struct Grant {
    pub(super) id: u64,
    pub(super) backlog: Backlog,
    pub(super) live: mpsc::Receiver<Frame>,
    pub(super) ctl: Arc<PeerCtl>,
}

/// How the hub (or either half of a connection) closes a peer's connection, and why.
pub(super) struct PeerCtl {
    pub(super) closing: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl PeerCtl {
    pub(super) fn new() -> PeerCtl {
        PeerCtl {
            closing: CancellationToken::new(),
            reason: Mutex::new(None),
        }
    }

    /// Records why the connection ends (the first reason wins).
    pub(super) fn set_reason(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
    }

    pub(super) fn close(&self, reason: &str) {
        self.set_reason(reason);
        self.closing.cancel();
    }

    pub(super) fn reason(&self) -> Option<String> {
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

pub(super) struct Hub {
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
    pub(super) fn new(
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
    pub(super) fn record(&mut self, batch: Vec<Event>) {
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
        if same_name(&name, &self.operator) {
            return Err(format!(
                "\"{name}\" is the driver's own name; attach with --name YOUR-NAME (a driver cannot \
                 approve its own steps)"
            ));
        }
        if self.peers.values().any(|p| same_name(&p.name, &name)) {
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
pub(super) fn encode_for_peers(seq: u64, ev: &Event) -> Frame {
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

pub(super) async fn run_hub(mut hub: Hub, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
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
