//! The hub: one task that owns the history and every peer's bounded queue. It fans each
//! recorded batch out without ever waiting on a peer (a full queue drops that peer, with
//! the reason recorded), admits and removes peers (their presence becomes events), and
//! checks approvals against a mirror fold of the session before injecting them.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ShareOptions;
use super::listener::same_name;
use crate::share::protocol::{self, DriverMsg, Frame, MAX_DRIVER_FRAME};
use cutover_core::event::{Event, Evidence, PeerRole, now_ms};
use cutover_core::plan::Plan;
use cutover_core::state::{GateState, State, StepStatus};

pub(super) enum HubMsg {
    /// Events as recorded by the session (from the tap), with the batch's head hash.
    Batch(Vec<Event>, Option<String>),
    /// A peer passed the token check and asks to be admitted.
    Join {
        name: String,
        role: PeerRole,
        from: String,
        reply: oneshot::Sender<Result<Grant, String>>,
    },
    /// A peer's connection ended; `reason` is `None` when it left normally.
    Leave { id: u64, reason: Option<String> },
    Approve {
        id: u64,
        step: String,
        phrase: String,
        seen: Box<Evidence>,
    },
    /// The driver issued an invite (recorded: name and role, never the token).
    Issued { name: String, role: PeerRole },
    /// The driver revoked an invite: its connection closes now.
    Revoke { name: String },
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
    /// peer's own task, so the driver keeps no copy of the session's events. `prior` are
    /// the encoded events of the session this one resumed (folded before its transcript).
    Transcript { prior: Vec<Frame>, path: PathBuf },
    /// A session without a transcript: the hub keeps every encoded event.
    Memory(Vec<Frame>),
}

/// The events a joining peer must catch up on: everything recorded before it joined.
pub(super) enum Backlog {
    Frames(Vec<Frame>),
    Transcript {
        prior: Vec<Frame>,
        path: PathBuf,
        events: u64,
    },
}

/// What an admitted peer gets: the history so far and its live queue.
pub(super) struct Grant {
    pub(super) id: u64,
    pub(super) backlog: Backlog,
    /// The transcript's head at the end of the backlog.
    pub(super) head: Option<String>,
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
    role: PeerRole,
    tx: mpsc::Sender<Frame>,
    ctl: Arc<PeerCtl>,
    refused_approvals: u32,
}

/// Refused approvals a peer may send before it is dropped (each one is recorded).
const MAX_REFUSED_APPROVALS: u32 = 5;
/// Refused attach attempts recorded in the transcript before the rest are only logged.
const MAX_RECORDED_REFUSALS: u32 = 20;
/// Refusals logged per window; past it they are counted and summed up once.
const REFUSAL_LOGS_PER_WINDOW: u32 = 10;
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);
/// Batch heads an approval's evidence may name (older views are refused as stale).
const HEADS_KEPT: usize = 4096;

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
    /// The refusal log's rate limit: the window's start, lines logged and left out in it.
    refusal_window: (Instant, u32, u32),
    /// (seq, head) of the recent recorded batches, oldest first.
    heads: VecDeque<(u64, String)>,
    /// Step index -> the last seq after which its gates were not all green.
    not_green: HashMap<usize, u64>,
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
            refusal_window: (Instant::now(), 0, 0),
            heads: VecDeque::new(),
            not_green: HashMap::new(),
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

    /// Appends recorded events to the history and sends them to every peer; the last one
    /// carries the batch's `head`.
    pub(super) fn record(&mut self, batch: Vec<Event>, head: Option<String>) {
        let mut slow = Vec::new();
        let n = batch.len();
        for (k, ev) in batch.into_iter().enumerate() {
            self.recorded += 1;
            // The mirror only checks approvals; its effects are the driver's business.
            let _ = self.mirror.apply(&ev);
            // The fold has just computed the next step's gates; read them, not again.
            let next = match self.mirror.next_gates() {
                Some((i, gates)) => Some((i, gates.iter().all(|g| *g == GateState::Green))),
                None => self
                    .mirror
                    .next_step()
                    .map(|i| (i, self.mirror.step_readiness(i).0 == GateState::Green)),
            };
            if let Some((i, false)) = next {
                self.not_green.insert(i, self.recorded);
            }
            let keep = matches!(self.history, History::Memory(_));
            if self.peers.is_empty() && !keep {
                continue;
            }
            let last_head = if k + 1 == n { head.as_deref() } else { None };
            let frame = encode_for_peers(self.recorded, &ev, last_head);
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
        if let Some(h) = head {
            if self.heads.len() >= HEADS_KEPT {
                self.heads.pop_front();
            }
            self.heads.push_back((self.recorded, h));
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

    /// The head recorded at `seq`, if it is one this hub still remembers.
    fn head_at(&self, seq: u64) -> Option<&str> {
        let i = self.heads.partition_point(|(s, _)| *s < seq);
        self.heads
            .get(i)
            .filter(|(s, _)| *s == seq)
            .map(|(_, h)| h.as_str())
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

    fn join(&mut self, name: String, role: PeerRole, from: &str) -> Result<Grant, String> {
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
                role,
                tx,
                ctl: Arc::clone(&ctl),
                refused_approvals: 0,
            },
        );
        tracing::info!(peer = %name, %role, %from, "peer attached");
        self.inject(Event::PeerJoined {
            at: now_ms(),
            peer: name,
            role: Some(role),
        });
        let backlog = match &self.history {
            History::Memory(frames) => Backlog::Frames(frames.clone()),
            History::Transcript { prior, path } => Backlog::Transcript {
                prior: prior.clone(),
                path: path.clone(),
                events: self.recorded,
            },
        };
        Ok(Grant {
            id,
            backlog,
            head: self.heads.back().map(|(_, h)| h.clone()),
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

    fn approve(&mut self, id: u64, step: &str, phrase: &str, seen: Evidence) {
        let Some((name, role)) = self.peers.get(&id).map(|p| (p.name.clone(), p.role)) else {
            return;
        };
        let verdict = self.check_approval(&name, role, step, phrase, &seen);
        match verdict {
            Ok(()) => {
                self.inject(Event::StepApproved {
                    at: now_ms(),
                    step: step.to_string(),
                    by: name,
                    seen: Some(seen),
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
    fn check_approval(
        &self,
        name: &str,
        role: PeerRole,
        step: &str,
        phrase: &str,
        seen: &Evidence,
    ) -> Result<(), (String, bool)> {
        if role == PeerRole::Observer {
            return Err((
                "you were invited as an observer, and observers cannot approve (ask the driver \
                 for an approver invite: I in their cockpit)"
                    .into(),
                true,
            ));
        }
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
        self.check_evidence(i, name, seen)
    }

    /// The approval's evidence against what this session recorded: the approver saw every
    /// gate of the step green, at a point of the stream that exists, signed it with their
    /// own key when the plan names approvers' keys, and no gate left green since.
    fn check_evidence(&self, i: usize, name: &str, seen: &Evidence) -> Result<(), (String, bool)> {
        let def = &self.plan.steps[i];
        let texts: Vec<&str> = seen.gates.iter().map(|g| g.gate.as_str()).collect();
        let plan_texts: Vec<&str> = def.gates.iter().map(|g| g.text.as_str()).collect();
        if texts != plan_texts {
            return Err((
                format!(
                    "the gates your cockpit showed for {} are not this plan's (attach again)",
                    def.id
                ),
                true,
            ));
        }
        if let Some(g) = seen.gates.iter().find(|g| g.state != GateState::Green) {
            return Err((
                format!(
                    "your cockpit showed gate `{}` {}: approve only what you saw green",
                    g.gate,
                    g.state.as_str()
                ),
                false,
            ));
        }
        let known = match &self.history {
            // Without a transcript there are no heads: the position alone is checked.
            History::Memory(_) => seen.head.is_none() && seen.seq <= self.recorded,
            History::Transcript { .. } => {
                seen.head.is_some() && seen.head.as_deref() == self.head_at(seen.seq)
            }
        };
        if !known {
            return Err((
                format!(
                    "what your cockpit showed (event {}) is not a point this session recorded, or \
                     too old; let your screen catch up and approve again",
                    seen.seq
                ),
                true,
            ));
        }
        if !self.plan.share.approvers.is_empty() {
            cutover_transcript::approval::check(
                &self.plan.share.approvers,
                &self.plan.hash,
                &def.id,
                name,
                seen,
            )
            .map_err(|e| (e, true))?;
        }
        if let Some(&changed) = self.not_green.get(&i)
            && changed >= seen.seq
        {
            return Err((
                format!(
                    "a gate of {} left green at event {changed}, after what your cockpit showed \
                     (event {}); look again and approve what you see",
                    def.id, seen.seq
                ),
                false,
            ));
        }
        Ok(())
    }

    fn issued(&mut self, name: &str, role: PeerRole) {
        tracing::info!(peer = %name, %role, "invite issued");
        self.note(format!("the driver invited {name} ({role})"));
    }

    /// Closes the revoked invite's connection (if it is attached) and records it.
    fn revoke(&mut self, name: &str) {
        tracing::info!(peer = %name, "invite revoked");
        self.note(format!("the driver revoked {name}'s invite"));
        let ids: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| same_name(&p.name, name))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove(id, Some("dropped: the driver revoked the invite".into()));
        }
    }

    fn refused(&mut self, from: &str, reason: &str, record: bool) {
        self.log_refusal(from, reason);
        if record {
            if self.refusals_recorded < MAX_RECORDED_REFUSALS {
                self.note(format!("an attach from {from} was refused: {reason}"));
            } else if self.refusals_recorded == MAX_RECORDED_REFUSALS {
                self.note("further refused attach attempts are only logged".into());
            }
            self.refusals_recorded += 1;
        }
    }

    /// Logs a refusal, at most [`REFUSAL_LOGS_PER_WINDOW`] per window: a flood of bad
    /// connections cannot fill the log or cost the driver its disk.
    fn log_refusal(&mut self, from: &str, reason: &str) {
        let (start, logged, left_out) = &mut self.refusal_window;
        if start.elapsed() >= REFUSAL_LOG_WINDOW {
            if *left_out > 0 {
                tracing::warn!(
                    "{left_out} more attach attempts were refused in {}s and not logged one by one",
                    REFUSAL_LOG_WINDOW.as_secs()
                );
            }
            *start = Instant::now();
            *logged = 0;
            *left_out = 0;
        }
        if *logged < REFUSAL_LOGS_PER_WINDOW {
            *logged += 1;
            tracing::warn!(%from, "attach refused: {reason}");
        } else {
            *left_out += 1;
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
pub(super) fn encode_for_peers(seq: u64, ev: &Event, head: Option<&str>) -> Frame {
    match protocol::encode_event(seq, ev, head) {
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
            protocol::encode_event(seq, &stand_in, head).unwrap_or_else(|_| Frame::from(Vec::new()))
        }
    }
}

pub(super) async fn run_hub(mut hub: Hub, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            HubMsg::Batch(batch, head) => hub.record(batch, head),
            HubMsg::Join {
                name,
                role,
                from,
                reply,
            } => {
                let grant = hub.join(name, role, &from);
                if let Err(Ok(grant)) = reply.send(grant) {
                    // The connection went away while it waited: undo the join.
                    hub.remove(grant.id, None);
                }
            }
            HubMsg::Leave { id, reason } => hub.remove(id, reason),
            HubMsg::Approve {
                id,
                step,
                phrase,
                seen,
            } => hub.approve(id, &step, &phrase, *seen),
            HubMsg::Issued { name, role } => hub.issued(&name, role),
            HubMsg::Revoke { name } => hub.revoke(&name),
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
