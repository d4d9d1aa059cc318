//! Where peers come in: binding the TCP or Unix listener (a stale socket replaced, the path
//! kept to its owner), accepting connections, each into its own peer task, and the
//! handshake that checks a peer's hello, token and name before the hub hears of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::invite::Admit;
use super::peer::{PeerCtx, serve_peer};
use super::{ShareAddr, ShareError};
use crate::share::protocol::{FrameReader, PROTOCOL, PeerMsg, VERSION};
use cutover_core::event::PeerRole;

/// Longest peer name.
pub const MAX_NAME_CHARS: usize = 40;
/// How long peers get to receive their last events when sharing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound listener of either kind. TCP connections are TLS with this session's
/// certificate; the Unix socket is the driver's user's alone (mode 0600) and plain.
pub(super) enum Listener {
    Tcp(TcpListener, TlsAcceptor),
    Unix(UnixListener),
}

pub(super) type ConnRead = Box<dyn AsyncRead + Send + Unpin>;
pub(super) type ConnWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An accepted connection whose TLS handshake (for TCP) has not happened yet: it runs in
/// the connection's own task, so a slow client never holds up the accept loop.
pub(super) enum Accepted {
    Tcp(TcpStream, TlsAcceptor),
    Unix(UnixStream),
}

impl Listener {
    /// The next connection, with a label for logs and notes and the key its pending
    /// handshakes are counted under (its IP address).
    async fn accept(&self) -> std::io::Result<(Accepted, String, String)> {
        match self {
            Listener::Tcp(l, tls) => {
                let (s, from) = l.accept().await?;
                // Latency matters more than packet count for a live screen.
                let _ = s.set_nodelay(true);
                let key = from.ip().to_canonical().to_string();
                Ok((Accepted::Tcp(s, tls.clone()), from.to_string(), key))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((
                    Accepted::Unix(s),
                    "the Unix socket".to_string(),
                    "unix".to_string(),
                ))
            }
        }
    }
}

impl Accepted {
    /// The connection, split: for TCP once the TLS handshake has completed before
    /// `deadline` (the one deadline for TLS and the hello together). Nothing is sent to the
    /// peer before that (a TLS alert at most).
    pub(super) async fn open(
        self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(ConnRead, ConnWrite), Refusal> {
        match self {
            Accepted::Unix(s) => {
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Accepted::Tcp(s, tls) => match tokio::time::timeout_at(deadline, tls.accept(s)).await {
                Ok(Ok(stream)) => {
                    let (r, w) = tokio::io::split(stream);
                    Ok((Box::new(r), Box::new(w)))
                }
                Ok(Err(e)) => Err(Refusal::new(format!(
                    "the TLS handshake failed ({e}): a plaintext client, or one not pinning this \
                     session's fingerprint (attach with the command the cockpit shows, T)"
                ))),
                Err(_) => Err(Refusal::new(format!(
                    "no TLS handshake and hello within {}",
                    humantime::format_duration(timeout)
                ))),
            },
        }
    }
}

pub(super) async fn bind(
    addr: &ShareAddr,
    tls: Option<TlsAcceptor>,
) -> Result<(Listener, ShareAddr, Option<PathBuf>), ShareError> {
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
            let tls = tls.ok_or_else(|| ShareError::Tls {
                reason: "no certificate was made for a TCP address".into(),
            })?;
            Ok((Listener::Tcp(l, tls), ShareAddr::Tcp(bound), None))
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

/// Connections still in their handshake, in total and per address: a flood of
/// connections that never finish one (slowloris) is bounded, and costs the driver nothing
/// but a closed socket past the caps.
pub(super) struct Pending {
    counts: Mutex<(usize, HashMap<String, usize>)>,
    max: usize,
    max_per_addr: usize,
}

/// One handshake's place in [`Pending`], given back when dropped.
pub(super) struct PendingSlot {
    pending: Arc<Pending>,
    key: String,
}

impl Pending {
    pub(super) fn new(max: usize, max_per_addr: usize) -> Arc<Pending> {
        Arc::new(Pending {
            counts: Mutex::new((0, HashMap::new())),
            max: max.max(1),
            max_per_addr: max_per_addr.max(1),
        })
    }

    /// A place for one more handshake from `key`, or why not.
    pub(super) fn admit(self: &Arc<Pending>, key: &str) -> Result<PendingSlot, String> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 >= self.max {
            return Err(format!(
                "closed at once: {} connections are already in their handshake",
                self.max
            ));
        }
        let here = c.1.get(key).copied().unwrap_or(0);
        if here >= self.max_per_addr {
            return Err(format!(
                "closed at once: {} connections from this address are already in their handshake",
                self.max_per_addr
            ));
        }
        c.0 += 1;
        c.1.insert(key.to_string(), here + 1);
        Ok(PendingSlot {
            pending: Arc::clone(self),
            key: key.to_string(),
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut c = self
            .pending
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        c.0 = c.0.saturating_sub(1);
        if let Some(n) = c.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.key);
            }
        }
    }
}

pub(super) async fn accept_loop(
    listener: Listener,
    ctx: Arc<PeerCtx>,
    pending: Arc<Pending>,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((conn, from, key)) => match pending.admit(&key) {
                    Ok(slot) => {
                        conns.spawn(serve_peer(conn, from, slot, Arc::clone(&ctx)));
                    }
                    Err(reason) => {
                        drop(conn);
                        // The hub logs it, rate-limited; gone only once sharing stopped.
                        let _ = ctx.hub.send(super::hub::HubMsg::Refused {
                            from,
                            reason,
                            record: false,
                        });
                    }
                },
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
pub(super) struct Refusal {
    pub(super) reason: String,
    pub(super) record: bool,
}

impl Refusal {
    pub(super) fn new(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            record: false,
        }
    }
}

/// Reads and checks the peer's Hello before `deadline`; returns the name and role it is
/// admitted under: its invite's, or (with the shared observers' token) the name it gave.
pub(super) async fn handshake<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    ctx: &PeerCtx,
    deadline: Instant,
) -> Result<(String, PeerRole), Refusal> {
    let first = tokio::time::timeout_at(deadline, reader.next_msg::<PeerMsg>()).await;
    let msg = match first {
        Err(_) => {
            return Err(Refusal::new(format!(
                "no hello within {} (attach with the command the driver's cockpit shows, T)",
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
    let admit = ctx
        .book
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(token.reveal());
    match admit {
        Ok(Admit::Invited { name, role }) => Ok((name, role)),
        Ok(Admit::Shared) => check_name(&name)
            .map(|n| (n, PeerRole::Observer))
            .map_err(Refusal::new),
        Err(reason) => Err(Refusal {
            reason,
            record: true,
        }),
    }
}

/// A peer name is what approvals are recorded under: short, printable, one line, and in
/// its NFKC form (so a fullwidth "ａｎｎ" is "ann"). Invisible format characters (Unicode
/// category Cf: zero-width spaces and joiners, bidi overrides, the BOM) are refused: they
/// would let "ol\u{200b}ga" pass for "olga".
pub fn check_name(name: &str) -> Result<String, String> {
    let name: String = name.nfkc().collect();
    let name = name.trim();
    if name.is_empty() {
        return Err("the peer name is empty; attach with --name YOUR-NAME".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the peer name is longer than {MAX_NAME_CHARS} characters; attach with a shorter --name"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err("the peer name contains control characters; attach with a plain --name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.general_category() == GeneralCategory::Format)
    {
        return Err(format!(
            "the peer name contains the invisible format character U+{:04X} (zero-width or \
             bidi characters can make one name look like another); attach with a plain --name",
            c as u32
        ));
    }
    Ok(name.to_string())
}

/// Whether two names are the same person's as the cockpit shows them: equal after NFKC and
/// case folding ("OLGA", "ｏｌｇａ" and "olga" are one name).
pub fn same_name(a: &str, b: &str) -> bool {
    let fold = |s: &str| s.trim().nfkc().collect::<String>().to_lowercase();
    fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::protocol::{AttachToken, SessionInfo, encode};
    use proptest::prelude::*;

    fn ctx() -> (PeerCtx, String) {
        let spec: super::super::InviteSpec = "ann:approver".parse().unwrap();
        let book = super::super::InviteBook::new(
            &[spec],
            None,
            "127.0.0.1:1".parse().unwrap(),
            None,
            "op",
        )
        .unwrap();
        let cmd = book.command_for("ann").unwrap();
        let token = cmd.split("--token ").nth(1).unwrap().to_string();
        let (hub, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = PeerCtx {
            book: Arc::new(Mutex::new(book)),
            hub,
            info: SessionInfo {
                mode: "test".into(),
                operator: "op".into(),
                plan_name: "p".into(),
                plan_hash: "h".into(),
                started_at: None,
                host: "h".into(),
                program_version: "0".into(),
                transcript_key: None,
            },
            plan_text: String::new(),
            idle_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
        };
        (ctx, token)
    }

    fn shake(bytes: Vec<u8>) -> Result<(String, PeerRole), String> {
        let (ctx, _) = ctx();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = FrameReader::new(&bytes[..], crate::share::protocol::MAX_PEER_FRAME);
            let deadline = Instant::now() + Duration::from_secs(1);
            handshake(&mut r, &ctx, deadline)
                .await
                .map_err(|e| e.reason)
        })
    }

    fn hello(token: &str, name: &str, version: u32) -> Vec<u8> {
        encode(
            &PeerMsg::Hello {
                protocol: PROTOCOL.into(),
                version,
                token: AttachToken::new(token),
                name: name.into(),
            },
            crate::share::protocol::MAX_PEER_FRAME,
        )
        .unwrap()
    }

    #[test]
    fn the_invites_name_and_role_win_over_what_the_peer_says() {
        let (_, token) = ctx();
        // A fresh ctx has a fresh token: take the one that goes with it.
        let (ctx, token2) = ctx();
        assert_ne!(token, token2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let bytes = hello(&token2, "olga", VERSION);
        let got = rt.block_on(async {
            let mut r = FrameReader::new(&bytes[..], crate::share::protocol::MAX_PEER_FRAME);
            handshake(&mut r, &ctx, Instant::now() + Duration::from_secs(1))
                .await
                .map_err(|e| e.reason)
        });
        assert_eq!(got, Ok(("ann".to_string(), PeerRole::Approver)));
        let err = shake(hello("wrong", "ann", VERSION)).unwrap_err();
        assert!(err.contains("token is wrong"), "{err}");
        let err = shake(hello("x", "ann", VERSION + 1)).unwrap_err();
        assert!(err.contains("version"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever arrives first, the handshake answers with a refusal, never a panic
        /// and never an admission.
        #[test]
        fn the_handshake_never_panics_or_admits_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            prop_assert!(shake(bytes).is_err());
        }

        /// A well-formed hello with any strings in it is refused without the token.
        #[test]
        fn any_hello_without_the_token_is_refused(
            token in ".{0,64}",
            name in ".{0,80}",
            version in any::<u32>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = hello(&token, &name, version);
            bytes.extend(garbage);
            prop_assert!(shake(bytes).is_err());
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  ann ").unwrap(), "ann");
        assert!(check_name("").is_err());
        assert!(check_name("a\u{1b}[2J").is_err());
        assert!(check_name(&"x".repeat(41)).is_err());
        assert_eq!(check_name("ａｎｎ").unwrap(), "ann");
        for sneaky in [
            "ol\u{200b}ga",
            "\u{202e}agl",
            "a\u{2066}b",
            "\u{feff}ann",
            "a\u{2028}b",
        ] {
            assert!(check_name(sneaky).is_err(), "{sneaky:?}");
        }
        let err = check_name("ol\u{200b}ga").unwrap_err();
        assert!(err.contains("U+200B") && err.contains("--name"), "{err}");
        assert!(same_name("OLGA", "olga"));
        assert!(same_name("ｏｌｇａ", "Olga"));
        assert!(!same_name("olga", "olga2"));
    }
}
