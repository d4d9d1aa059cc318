//! Pairing: a driver shares its live session; colleagues attach from their own terminals
//! and see the same cockpit, read-only, and approve four-eyes steps.
//!
//! Codemap: `protocol` (frames, messages, the token; the only module that knows the wire
//! format), `server` (the driver's listener, the hub that fans events out, presence and
//! approvals), `client` (connecting, the peer's fold, the attach cockpit).
//!
//! Invariants: a peer never slows the driver (bounded queues, a slow peer is dropped); a
//! peer changes the session only through presence and checked approvals, both recorded as
//! events; the attach token is never logged, recorded or shown in an error.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{
    AttachEnd, AttachError, AttachScreen, Incoming, PeerAction, PeerLink, Watcher, Welcome,
    connect, run_attach,
};
pub use protocol::AttachToken;
pub use server::{ShareAddr, ShareError, ShareHandle, ShareOptions, start_share};

/// `--share ADDR [--allow-remote]`, for `cutover run` and `cutover rehearse`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ShareArgs {
    /// Let colleagues attach read-only: 127.0.0.1:PORT or a Unix socket path. Prints a
    /// one-time token to give them.
    #[arg(long, value_name = "ADDR")]
    pub share: Option<String>,
    /// Allow --share on a wildcard or non-loopback address (prefer an SSH tunnel).
    #[arg(long, requires = "share")]
    pub allow_remote: bool,
}

impl ShareArgs {
    /// The options to share with, if `--share` was given.
    pub fn options(&self) -> Result<Option<ShareOptions>, ShareError> {
        let Some(addr) = &self.share else {
            return Ok(None);
        };
        let mut opts = ShareOptions::new(addr.parse()?);
        opts.allow_remote = self.allow_remote;
        Ok(Some(opts))
    }
}

/// `cutover attach ADDR --token T [--name N]`.
#[derive(Clone, Debug, clap::Args)]
pub struct AttachArgs {
    /// The driver's --share address (127.0.0.1:PORT, or a Unix socket path).
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// The token the driver's terminal printed (or set CUTOVER_ATTACH_TOKEN, which keeps it
    /// out of the process list).
    #[arg(long, env = "CUTOVER_ATTACH_TOKEN", hide_env_values = true)]
    pub token: AttachToken,
    /// Your name, as the driver's status bar and your approvals show it.
    #[arg(long, env = "USER")]
    pub name: String,
    /// Colour theme: a preset name or a theme file (as for the other cockpits).
    #[arg(long, value_name = "NAME|FILE")]
    pub theme: Option<String>,
}

impl AttachArgs {
    /// The address to attach to.
    pub fn share_addr(&self) -> Result<ShareAddr, ShareError> {
        self.addr.parse()
    }
}
