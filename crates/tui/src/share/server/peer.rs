//! One peer's connection task: asks the hub to admit it after the handshake, then reads
//! its messages (presence, approvals) and writes its stream (hello, catch-up, live frames)
//! side by side until either half ends or the hub closes it, and says goodbye.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use super::hub::{Backlog, Grant, HubMsg, PeerCtl, encode_for_peers};
use super::invite::InviteBook;
use super::listener::{Accepted, ConnRead, ConnWrite, PendingSlot, Refusal, handshake};
use crate::share::protocol::{
    self, DriverMsg, Frame, FrameReader, MAX_DRIVER_FRAME, MAX_PEER_FRAME, PROTOCOL, PeerMsg,
    ProtocolError, SessionInfo, VERSION,
};

/// What every connection task needs.
pub(super) struct PeerCtx {
    pub(super) book: Arc<Mutex<InviteBook>>,
    pub(super) hub: mpsc::UnboundedSender<HubMsg>,
    pub(super) info: SessionInfo,
    pub(super) plan_text: String,
    pub(super) idle_timeout: Duration,
    pub(super) handshake_timeout: Duration,
}

/// How long a goodbye may take to send before the connection is simply closed.
const BYE_TIMEOUT: Duration = Duration::from_millis(500);

pub(super) async fn serve_peer(conn: Accepted, from: String, slot: PendingSlot, ctx: Arc<PeerCtx>) {
    // One deadline for the TLS handshake and the hello together: a client that trickles
    // either gets no more time than one that sends nothing.
    let deadline = tokio::time::Instant::now() + ctx.handshake_timeout;
    let (r, w) = match conn.open(deadline, ctx.handshake_timeout).await {
        Ok(rw) => rw,
        Err(refusal) => {
            // Nothing can be said to a peer without TLS; the hub logs why (and is gone
            // only when sharing stopped).
            let _ = ctx.hub.send(HubMsg::Refused {
                from,
                reason: refusal.reason,
                record: refusal.record,
            });
            return;
        }
    };
    serve_open(r, w, from, slot, deadline, ctx).await;
}

async fn serve_open(
    r: ConnRead,
    w: ConnWrite,
    from: String,
    slot: PendingSlot,
    deadline: tokio::time::Instant,
    ctx: Arc<PeerCtx>,
) {
    let mut reader = FrameReader::new(r, MAX_PEER_FRAME);
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let shaken = handshake(&mut reader, &ctx, deadline).await;
    // The handshake is over, passed or not: its place goes to the next connection.
    drop(slot);
    let admitted = match shaken {
        Ok((name, role)) => {
            let (reply, granted) = oneshot::channel();
            let asked = ctx.hub.send(HubMsg::Join {
                name: name.clone(),
                role,
                from: from.clone(),
                reply,
            });
            match (asked, granted.await) {
                (Ok(()), Ok(Ok(grant))) => Ok((name, role, grant)),
                (Ok(()), Ok(Err(reason))) => Err(Refusal::new(reason)),
                _ => Err(Refusal::new("the driver has stopped sharing")),
            }
        }
        Err(refusal) => Err(refusal),
    };
    let (name, role, grant) = match admitted {
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
        head,
        live,
        ctl,
    } = grant;
    let hello = DriverMsg::Hello {
        protocol: PROTOCOL.into(),
        version: VERSION,
        session: ctx.info.clone(),
        plan_text: ctx.plan_text.clone(),
        peer: name,
        role,
        idle_timeout_ms: ctx.idle_timeout.as_millis() as u64,
    };
    let reading = read_loop(&mut reader, id, &ctx, &ctl);
    let writing = write_loop(&mut w, hello, (backlog, head), live, &ctl);
    let (read_end, write_end) = tokio::join!(reading, writing);
    // A hub that is gone has already forgotten this peer.
    let _ = ctx.hub.send(HubMsg::Leave {
        id,
        reason: read_end.or(write_end),
    });
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
            Ok(Ok(Some(PeerMsg::Approve { step, phrase, seen }))) => {
                let msg = HubMsg::Approve {
                    id,
                    step,
                    phrase,
                    seen: Box::new(seen),
                };
                if ctx.hub.send(msg).is_err() {
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
        Backlog::Transcript {
            prior,
            path,
            events,
        } => {
            for frame in &prior {
                protocol::write_frame(w, frame).await?;
            }
            let skip = prior.len() as u64;
            let events = events.saturating_sub(skip);
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
                let seq = skip + i as u64 + 1;
                protocol::write_frame(w, &encode_for_peers(seq, ev, None)).await?;
            }
            Ok(skip + events)
        }
    }
}

/// Sends the Hello, the backlog, the catch-up marker, then live frames until the queue
/// closes (sharing stopped) or the connection is closed; then says goodbye.
async fn write_loop<W: AsyncWrite + Unpin>(
    w: &mut W,
    hello: DriverMsg,
    (backlog, head): (Backlog, Option<String>),
    mut live: mpsc::Receiver<Frame>,
    ctl: &PeerCtl,
) -> Option<String> {
    let outcome = async {
        protocol::send(&mut *w, &hello, MAX_DRIVER_FRAME).await?;
        let seq = send_backlog(&mut *w, backlog).await?;
        let caught_up = protocol::encode(&DriverMsg::CaughtUp { seq, head }, MAX_DRIVER_FRAME)?;
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
