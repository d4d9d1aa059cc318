//! The one connect-and-handshake deadline every outgoing connection honours: databases
//! (TCP, TLS and the login handshake), pairing peers, and anything else that dials out. A
//! port that accepts and never answers (a black-holed load balancer, a MySQL URL on a
//! PostgreSQL port) fails within it with "no answer from host:port within 5s" instead of
//! hanging a check, a drift compare or a poll for minutes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The default deadline: a few seconds, long enough for a TLS handshake across regions.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest accepted `--connect-timeout`.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

static CONNECT_TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_CONNECT_TIMEOUT.as_millis() as u64);

/// Sets the process's deadline (from `--connect-timeout`). Refuses zero and values over
/// [`MAX_CONNECT_TIMEOUT`].
pub fn set_connect_timeout(d: Duration) -> Result<(), String> {
    if d.is_zero() || d > MAX_CONNECT_TIMEOUT {
        return Err(format!(
            "--connect-timeout must be between 1ms and {}s, not {}",
            MAX_CONNECT_TIMEOUT.as_secs(),
            humantime::format_duration(d)
        ));
    }
    CONNECT_TIMEOUT_MS.store(d.as_millis() as u64, Ordering::Relaxed);
    Ok(())
}

/// The deadline for connecting and completing the handshake.
pub fn connect_timeout() -> Duration {
    Duration::from_millis(CONNECT_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// The error text when `addr` did not answer in time.
pub fn no_answer(addr: &str, limit: Duration) -> String {
    format!(
        "no answer from {addr} within {} (connect and handshake; is it the right host and port for this engine, and reachable? --connect-timeout sets the limit)",
        humantime::format_duration(limit)
    )
}

/// Runs a connect (and handshake) within [`connect_timeout`]; `Err` says nothing answered.
pub async fn within<T>(addr: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    let limit = connect_timeout();
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| no_answer(addr, limit))
}

/// Why a listener on `addr` would expose the session beyond this machine, or `None` when it
/// is loopback (or `allow_remote` was given). One rule for every listener: `--share` and
/// `--status-addr`.
pub fn exposure(addr: &std::net::SocketAddr, allow_remote: bool) -> Option<&'static str> {
    if allow_remote {
        return None;
    }
    let ip = addr.ip().to_canonical();
    if ip.is_unspecified() {
        Some("it is a wildcard address that listens on every interface")
    } else if !ip.is_loopback() {
        Some("it is not a loopback address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_deadline_is_range_checked() {
        assert!(super::set_connect_timeout(std::time::Duration::ZERO).is_err());
        assert!(super::set_connect_timeout(std::time::Duration::from_secs(301)).is_err());
    }

    #[tokio::test]
    async fn a_silent_future_fails_with_the_address_and_the_limit() {
        let e = super::within("db:3306", std::future::pending::<()>())
            .await
            .expect_err("never answers");
        assert!(e.contains("no answer from db:3306 within 5s"), "{e}");
    }
}
