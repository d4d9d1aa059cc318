//! The attach protocol: length-prefixed JSON frames between a driver and its peers.
//!
//! A frame is a 4-byte big-endian payload length followed by that many bytes of UTF-8 JSON,
//! one message per frame. The peer speaks first (`PeerMsg::Hello` with the token), so nothing
//! about the session leaves the driver before the token checks out; the driver answers with
//! `DriverMsg::Hello` (session info and the exact plan text), then every recorded event from
//! the start of the session as `DriverMsg::Event` (the same `Event` JSON as the transcript's
//! `event` field), a `CaughtUp` marker, and live events after it.
//!
//! Invariants: the decoder never panics and never allocates more than the frame limit plus
//! one read chunk, whatever the bytes; a length prefix over the limit is refused before its
//! payload is read. Only this module knows the wire format.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use cutover_core::event::{Event, Evidence, PeerRole, Ts};

/// Names the protocol in both Hellos, so a stray client gets a clear refusal.
pub const PROTOCOL: &str = "cutover-attach";
/// The protocol version this program speaks. Both sides must speak the same. Version 2:
/// per-person invites (the name and role come from the invite), batch heads on events,
/// approvals that carry what the approver saw.
pub const VERSION: u32 = 2;
/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;
/// Largest frame a driver sends (the Hello carries the plan; readings can be large).
pub const MAX_DRIVER_FRAME: usize = 16 * 1024 * 1024;
/// Largest frame a peer may send: its messages are a name, a token and a phrase.
pub const MAX_PEER_FRAME: usize = 64 * 1024;

/// One encoded frame (prefix included), shared between every peer that sends it.
pub type Frame = Arc<[u8]>;

/// Why a frame or message was refused. Each closes only the connection it arrived on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes: the other end is not a cutover \
         attach peer, or a different release (use the same cutover version on both ends)"
    )]
    TooLarge { len: u64, max: usize },
    #[error(
        "the connection closed in the middle of a frame ({have} of {want} bytes): the other end \
         went away; attach again"
    )]
    Truncated { have: usize, want: usize },
    #[error("not a valid attach message: {reason} (the other end speaks something else)")]
    Malformed { reason: String },
    #[error("cannot encode a {what} message: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The attach token: random, shown once by the driver, typed by the peer.
///
/// Its `Debug` and `Display` never show the secret, so it cannot leak into a log line or an
/// error by accident; [`AttachToken::reveal`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttachToken(String);

impl AttachToken {
    /// Bytes of randomness in a generated token (160 bits).
    pub const BYTES: usize = 20;

    /// A fresh token from the operating system's CSPRNG (through `rand`'s thread RNG, which
    /// is seeded from it and cryptographically secure), hex-encoded.
    pub fn generate() -> AttachToken {
        use rand::Rng;
        let mut bytes = [0u8; Self::BYTES];
        rand::rng().fill_bytes(&mut bytes);
        AttachToken(hex::encode(bytes))
    }

    pub fn new(secret: impl Into<String>) -> AttachToken {
        AttachToken(secret.into())
    }

    /// The secret itself, to print once to the driver's terminal or to send in a Hello.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Compares in constant time: both sides are hashed first, so neither the position of
    /// the first differing byte nor the length of the guess shows in the timing.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

impl From<String> for AttachToken {
    fn from(secret: String) -> AttachToken {
        AttachToken(secret)
    }
}

impl fmt::Debug for AttachToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttachToken(***)")
    }
}

impl fmt::Display for AttachToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Who is driving what, sent to a peer in the driver's Hello.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub mode: String,
    pub operator: String,
    pub plan_name: String,
    /// SHA-256 of the plan text, as in the transcript header.
    pub plan_hash: String,
    pub started_at: Option<Ts>,
    pub host: String,
    pub program_version: String,
    /// The public key the driver signs its transcript with (`ed25519:<base64>`): handed to
    /// every peer so each holds an anchor apart from the file (`cutover verify --key`).
    /// Optional on the wire, so peers and drivers of version 1 without it still talk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_key: Option<String>,
}

/// Driver -> peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverMsg {
    /// The token checked out: what the session is, and the plan to fold it with.
    Hello {
        protocol: String,
        version: u32,
        session: SessionInfo,
        plan_text: String,
        /// The name the peer was admitted under (its approvals carry it).
        peer: String,
        /// What the peer may do: watch, or also approve.
        role: PeerRole,
        /// The peer must send something at least this often or it is dropped.
        idle_timeout_ms: u64,
    },
    /// One recorded event; `seq` counts from 1 at the session's first event. `head` is
    /// the hash of its transcript line when it ends a recorded (and signed) batch.
    Event {
        seq: u64,
        event: Event,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<String>,
    },
    /// Every event recorded before the peer joined has been sent; what follows is live.
    /// `head` is the transcript's last line hash at that point.
    CaughtUp {
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<String>,
    },
    /// A message for this peer only (an approval refused, ...). Never recorded.
    Notice { text: String },
    /// The driver closes this connection; `reason` says why.
    Bye { reason: String },
}

/// The borrowed form of `DriverMsg::Event`, so the driver serializes an event without
/// cloning it. Encodes to exactly the same JSON as the owned form.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DriverEventRef<'a> {
    Event {
        seq: u64,
        event: &'a Event,
        #[serde(skip_serializing_if = "Option::is_none")]
        head: Option<&'a str>,
    },
}

/// Peer -> driver. Nothing here can change the session except `Approve`, which the driver
/// checks against the plan before it records anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerMsg {
    Hello {
        protocol: String,
        version: u32,
        token: AttachToken,
        name: String,
    },
    /// "Still here": keeps the connection from idling out.
    Presence,
    /// Four-eyes: approve `step` by typing its confirmation phrase. `seen` is what the
    /// approver's cockpit showed: the last batch head it folded and the step's gates.
    Approve {
        step: String,
        phrase: String,
        seen: Evidence,
    },
    /// The peer leaves.
    Bye,
}

/// Serializes `msg` into one frame, refusing one over `max` bytes.
pub fn encode<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = vec![0u8; HEADER_LEN];
    serde_json::to_writer(&mut out, msg).map_err(|e| ProtocolError::Encode {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("attach"),
        reason: e.to_string(),
    })?;
    let len = out.len() - HEADER_LEN;
    if len > max {
        return Err(ProtocolError::TooLarge {
            len: len as u64,
            max,
        });
    }
    let prefix = u32::try_from(len).map_err(|_| ProtocolError::TooLarge {
        len: len as u64,
        max,
    })?;
    out[..HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(out)
}

/// Encodes one recorded event as a driver frame.
pub fn encode_event(seq: u64, event: &Event, head: Option<&str>) -> Result<Frame, ProtocolError> {
    encode(
        &DriverEventRef::Event { seq, event, head },
        MAX_DRIVER_FRAME,
    )
    .map(Frame::from)
}

/// Parses one frame's payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(payload).map_err(|e| ProtocolError::Malformed {
        reason: e.to_string(),
    })
}

/// Splits a byte stream into frame payloads. Feed it what arrives with [`push`], take frames
/// with [`next_frame`]. Never panics; refuses an oversized frame as soon as its prefix is in.
///
/// [`push`]: FrameDecoder::push
/// [`next_frame`]: FrameDecoder::next_frame
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
    max: usize,
}

impl FrameDecoder {
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            // Reclaim the consumed prefix once it dominates, so the buffer stays bounded.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame's payload, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; HEADER_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max {
            return Err(ProtocolError::TooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        if len == 0 {
            return Err(ProtocolError::Malformed {
                reason: "empty frame".into(),
            });
        }
        let Some(payload) = pending.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += HEADER_LEN + len;
        Ok(Some(payload))
    }

    /// Call at end of stream: an error if a frame was cut short.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        let pending = &self.buf[self.start..];
        let want = match pending.get(..HEADER_LEN) {
            Some(p) => {
                let mut b = [0u8; HEADER_LEN];
                b.copy_from_slice(p);
                HEADER_LEN + u32::from_be_bytes(b) as usize
            }
            None => HEADER_LEN,
        };
        Err(ProtocolError::Truncated { have, want })
    }
}

/// Reads frames from an async byte stream through a [`FrameDecoder`].
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    chunk: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> FrameReader<R> {
        FrameReader {
            inner,
            decoder: FrameDecoder::new(max),
            chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    /// The next frame's payload; `None` at a clean end of stream (between frames).
    /// Cancel-safe: bytes already read stay in the decoder.
    pub async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            let n = self.inner.read(&mut self.chunk).await?;
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.push(self.chunk.get(..n).unwrap_or_default());
        }
    }

    /// The next frame parsed as `T`.
    pub async fn next_msg<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtocolError> {
        match self.next_frame().await? {
            Some(payload) => decode(&payload).map(Some),
            None => Ok(None),
        }
    }
}

/// Writes one already-encoded frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
) -> Result<(), ProtocolError> {
    w.write_all(frame).await?;
    Ok(())
}

/// Encodes and writes one message, then flushes.
pub async fn send<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    max: usize,
) -> Result<(), ProtocolError> {
    let frame = encode(msg, max)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_of(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn borrowed_event_encodes_like_the_owned_message() {
        let ev = Event::Note {
            at: 5,
            text: "hi".into(),
        };
        let borrowed = encode_event(7, &ev, Some("ab12")).unwrap();
        let owned = encode(
            &DriverMsg::Event {
                seq: 7,
                event: ev.clone(),
                head: Some("ab12".into()),
            },
            MAX_DRIVER_FRAME,
        )
        .unwrap();
        assert_eq!(&borrowed[..], &owned[..]);
        let headless = encode_event(7, &ev, None).unwrap();
        assert!(!String::from_utf8_lossy(&headless).contains("head"));
        assert_eq!(&borrowed[..], &owned[..]);
        let back: DriverMsg = decode(&owned[HEADER_LEN..]).unwrap();
        assert!(matches!(back, DriverMsg::Event { seq: 7, .. }));
    }

    #[test]
    fn event_json_is_the_transcript_event_json() {
        let ev = Event::PeerJoined {
            at: 1,
            peer: "ann".into(),
            role: Some(PeerRole::Approver),
        };
        let frame = encode_event(1, &ev, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&frame[HEADER_LEN..]).unwrap();
        assert_eq!(v["event"], serde_json::to_value(&ev).unwrap());
    }

    #[test]
    fn the_hello_carries_the_transcript_key_and_reads_without_it() {
        let info = |key: Option<&str>| SessionInfo {
            mode: "drive".into(),
            operator: "op".into(),
            plan_name: "p".into(),
            plan_hash: "h".into(),
            started_at: Some(1),
            host: "host".into(),
            program_version: "0".into(),
            transcript_key: key.map(str::to_string),
        };
        let with = serde_json::to_value(info(Some("ed25519:AAAA"))).unwrap();
        assert_eq!(with["transcript_key"], "ed25519:AAAA");
        // A driver of this protocol version without the field (an older release).
        let mut old = serde_json::to_value(info(None)).unwrap();
        assert!(old.get("transcript_key").is_none());
        old.as_object_mut().unwrap().remove("transcript_key");
        let back: SessionInfo = serde_json::from_value(old).unwrap();
        assert_eq!(back, info(None));
    }

    #[test]
    fn token_never_shows_in_debug_or_display() {
        let t = AttachToken::new("s3cret-token");
        let hello = PeerMsg::Hello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            token: t.clone(),
            name: "ann".into(),
        };
        assert!(!format!("{t:?} {t} {hello:?}").contains("s3cret"));
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = AttachToken::generate();
        let b = AttachToken::generate();
        assert_eq!(a.reveal().len(), AttachToken::BYTES * 2);
        const { assert!(AttachToken::BYTES * 8 >= 128) };
        assert_ne!(a, b);
        assert!(a.matches(a.reveal()));
        assert!(!a.matches(b.reveal()));
        assert!(!a.matches(""));
        assert!(!a.matches(&a.reveal()[..10]));
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_payload() {
        let mut d = FrameDecoder::new(16);
        d.push(&100u32.to_be_bytes());
        assert!(matches!(
            d.next_frame(),
            Err(ProtocolError::TooLarge { len: 100, max: 16 })
        ));
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut bytes = frame_of(b"{\"type\":\"presence\"}");
        bytes.extend(frame_of(b"{\"type\":\"bye\"}"));
        for cut in 0..bytes.len() {
            let mut d = FrameDecoder::new(MAX_PEER_FRAME);
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(decode::<PeerMsg>(&f).unwrap());
                }
            }
            assert_eq!(got, vec![PeerMsg::Presence, PeerMsg::Bye], "cut at {cut}");
            d.finish().unwrap();
        }
    }

    #[test]
    fn a_truncated_frame_is_reported_at_the_end() {
        let bytes = frame_of(b"{\"type\":\"presence\"}");
        let mut d = FrameDecoder::new(MAX_PEER_FRAME);
        d.push(&bytes[..bytes.len() - 3]);
        assert!(d.next_frame().unwrap().is_none());
        assert!(matches!(d.finish(), Err(ProtocolError::Truncated { .. })));
    }

    #[tokio::test]
    async fn reader_reads_frames_then_a_clean_end() {
        let mut bytes = frame_of(b"{\"type\":\"presence\"}");
        bytes.extend(frame_of(
            b"{\"type\":\"approve\",\"step\":\"s\",\"phrase\":\"go\",\"seen\":{\"seq\":3,\"gates\":[]}}",
        ));
        let mut r = FrameReader::new(&bytes[..], MAX_PEER_FRAME);
        assert_eq!(
            r.next_msg::<PeerMsg>().await.unwrap(),
            Some(PeerMsg::Presence)
        );
        assert_eq!(
            r.next_msg::<PeerMsg>().await.unwrap(),
            Some(PeerMsg::Approve {
                step: "s".into(),
                phrase: "go".into(),
                seen: Evidence {
                    seq: 3,
                    head: None,
                    gates: Vec::new(),
                    signature: None,
                },
            })
        );
        assert_eq!(r.next_msg::<PeerMsg>().await.unwrap(), None);
    }

    fn arb_peer_msg() -> impl Strategy<Value = PeerMsg> {
        prop_oneof![
            Just(PeerMsg::Presence),
            Just(PeerMsg::Bye),
            (
                ".{0,40}",
                ".{0,40}",
                any::<u64>(),
                proptest::option::of("[0-9a-f]{0,64}")
            )
                .prop_map(|(step, phrase, seq, head)| PeerMsg::Approve {
                    step,
                    phrase,
                    seen: Evidence {
                        seq,
                        head,
                        gates: Vec::new(),
                        signature: None,
                    },
                }),
            (".{0,40}", ".{0,20}", any::<u32>()).prop_map(|(token, name, version)| {
                PeerMsg::Hello {
                    protocol: PROTOCOL.into(),
                    version,
                    token: AttachToken::new(token),
                    name,
                }
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            max in 0usize..4096,
        ) {
            let mut d = FrameDecoder::new(max);
            'outer: for c in &chunks {
                d.push(c);
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => {
                            prop_assert!(f.len() <= max);
                            // Parsing garbage is an error, never a panic.
                            let _ = decode::<PeerMsg>(&f);
                            let _ = decode::<DriverMsg>(&f);
                        }
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
                prop_assert!(d.buffered() <= max + HEADER_LEN + 300 * chunks.len());
            }
            let _ = d.finish();
        }

        #[test]
        fn huge_length_prefixes_are_refused(len in (MAX_PEER_FRAME as u32 + 1)..=u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = FrameDecoder::new(MAX_PEER_FRAME);
            d.push(&len.to_be_bytes());
            d.push(&tail);
            let refused = matches!(d.next_frame(), Err(ProtocolError::TooLarge { .. }));
            prop_assert!(refused);
        }

        #[test]
        fn messages_round_trip_through_any_split(msgs in proptest::collection::vec(arb_peer_msg(), 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend(encode(m, MAX_PEER_FRAME).unwrap());
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            let mut d = FrameDecoder::new(MAX_PEER_FRAME);
            let mut got = Vec::new();
            for w in points.windows(2) {
                d.push(&bytes[w[0]..w[1]]);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(decode::<PeerMsg>(&f).unwrap());
                }
            }
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn truncated_valid_streams_never_panic(msgs in proptest::collection::vec(arb_peer_msg(), 1..4), cut in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend(encode(m, MAX_PEER_FRAME).unwrap());
            }
            let cut = cut.index(bytes.len());
            let mut d = FrameDecoder::new(MAX_PEER_FRAME);
            d.push(&bytes[..cut]);
            let mut n = 0;
            while let Some(f) = d.next_frame().unwrap() {
                prop_assert!(decode::<PeerMsg>(&f).is_ok());
                n += 1;
            }
            prop_assert!(n < msgs.len());
            prop_assert_eq!(d.finish().is_err(), d.buffered() > 0);
        }
    }
}
