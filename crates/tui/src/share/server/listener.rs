//! Where peers come in: binding the TCP or Unix listener (a stale socket replaced, the path
//! kept to its owner), accepting connections, each into its own peer task, and the
//! handshake that checks a peer's hello, token and name before the hub hears of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::peer::{PeerCtx, serve_peer};
use super::{ShareAddr, ShareError};
use crate::share::protocol::{FrameReader, PROTOCOL, PeerMsg, VERSION};

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
    /// The next connection, with a label for logs and notes.
    async fn accept(&self) -> std::io::Result<(Accepted, String)> {
        match self {
            Listener::Tcp(l, tls) => {
                let (s, from) = l.accept().await?;
                // Latency matters more than packet count for a live screen.
                let _ = s.set_nodelay(true);
                Ok((Accepted::Tcp(s, tls.clone()), from.to_string()))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Accepted::Unix(s), "the Unix socket".to_string()))
            }
        }
    }
}

impl Accepted {
    /// The connection, split: for TCP once the TLS handshake has completed within
    /// `timeout`. Nothing is sent to the peer before that (a TLS alert at most).
    pub(super) async fn open(self, timeout: Duration) -> Result<(ConnRead, ConnWrite), Refusal> {
        match self {
            Accepted::Unix(s) => {
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Accepted::Tcp(s, tls) => match tokio::time::timeout(timeout, tls.accept(s)).await {
                Ok(Ok(stream)) => {
                    let (r, w) = tokio::io::split(stream);
                    Ok((Box::new(r), Box::new(w)))
                }
                Ok(Err(e)) => Err(Refusal::new(format!(
                    "the TLS handshake failed ({e}): a plaintext client, or one not pinning this \
                     session's fingerprint (attach with the command the cockpit shows, T)"
                ))),
                Err(_) => Err(Refusal::new(format!(
                    "no TLS handshake within {}",
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

pub(super) async fn accept_loop(listener: Listener, ctx: Arc<PeerCtx>, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((conn, from)) => {
                    conns.spawn(serve_peer(conn, from, Arc::clone(&ctx)));
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

/// Reads and checks the peer's Hello; returns the name it is admitted under.
pub(super) async fn handshake<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    ctx: &PeerCtx,
) -> Result<String, Refusal> {
    let first = tokio::time::timeout(ctx.handshake_timeout, reader.next_msg::<PeerMsg>()).await;
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
