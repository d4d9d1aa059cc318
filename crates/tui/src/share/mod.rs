//! Pairing: a driver shares its live session; colleagues attach from their own terminals
//! and see the same cockpit, read-only, and approve four-eyes steps.
//!
//! Codemap: `protocol` (frames, messages, the token; the only module that knows the wire
//! format), `tls` (the session's certificate and the peer's pinning verifier), `server` (the
//! driver's listener, the hub that fans events out, presence and approvals), `client`
//! (connecting, the peer's fold, the attach cockpit).
//!
//! Invariants: a peer never slows the driver (bounded queues, a slow peer is dropped); a
//! peer changes the session only through presence and checked approvals, both recorded as
//! events; the attach token is never logged, recorded or shown in an error; over TCP nothing
//! is sent either way before a TLS handshake pinned to the session's certificate completes.

pub mod client;
pub mod protocol;
pub mod server;
pub mod tls;

pub use client::{
    AttachEnd, AttachError, AttachScreen, Incoming, PeerAction, PeerLink, Watcher, Welcome,
    connect, run_attach,
};
pub use protocol::AttachToken;
pub use server::{
    InviteSpec, InviteView, ShareAddr, ShareControl, ShareError, ShareHandle, ShareOptions,
    start_share, start_share_after,
};
pub use tls::Fingerprint;
