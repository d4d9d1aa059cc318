//! TLS for TCP attach connections: a fresh self-signed certificate per sharing session,
//! and the peer's verifier that accepts exactly that certificate, pinned by its SHA-256
//! fingerprint (no CA, no trust on first use). Unix sockets do not use TLS: the socket
//! file is the driver's user's alone (mode 0600).
//!
//! Invariant: a peer that does not pin the session's fingerprint (or speaks plaintext)
//! never completes the handshake, so the driver never sends it a frame.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The name in the certificate and the one the peer asks for; only the pin is checked.
const CERT_NAME: &str = "cutover-share";

/// The SHA-256 of a certificate's DER encoding, written as OpenSSH writes key
/// fingerprints, `SHA256:` and unpadded base64 (43 characters, so the attach command fits
/// the cockpit's notice line); 64 hex digits are accepted too.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a `--fingerprint` does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "fingerprint \"{given}\": {reason} (copy it from the attach command the driver's cockpit \
     shows: press T there)"
)]
pub struct BadFingerprint {
    given: String,
    reason: &'static str,
}

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// `SHA256:` (any case, optional) then 43 base64 characters (padding optional), or 64
    /// hex digits with optional colons between bytes.
    fn from_str(s: &str) -> Result<Fingerprint, BadFingerprint> {
        let bad = |reason| BadFingerprint {
            given: s.to_string(),
            reason,
        };
        let t = s.trim();
        let t = match t.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
            _ => t,
        };
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        if hex::decode_to_slice(&digits, &mut out).is_ok() {
            return Ok(Fingerprint(out));
        }
        match STANDARD_NO_PAD.decode(t.trim_end_matches('=')) {
            Ok(bytes) if bytes.len() == 32 => {
                out.copy_from_slice(&bytes);
                Ok(Fingerprint(out))
            }
            _ => Err(bad(
                "it is not SHA256: followed by 43 base64 characters (or 64 hexadecimal digits)",
            )),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for sharing: {0}")]
pub struct TlsSetupError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The driver's side: this session's certificate and its fingerprint.
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub fingerprint: Fingerprint,
}

/// Makes a fresh self-signed certificate (its key lives only in this process's memory) and
/// the TLS server configuration around it.
pub fn server() -> Result<ServerTls, TlsSetupError> {
    let err = |e: &dyn fmt::Display| TlsSetupError(e.to_string());
    let certified =
        rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()]).map_err(|e| err(&e))?;
    let cert = certified.cert.der().clone();
    let fingerprint = Fingerprint::of(&cert);
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| err(&e))?;
    Ok(ServerTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}

/// The peer's side: a connector that accepts only the certificate with `pin`.
fn client(
    pin: Fingerprint,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsSetupError> {
    let provider = provider();
    let verifier = Pinned {
        pin,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = ServerName::try_from(CERT_NAME).map_err(|e| TlsSetupError(e.to_string()))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

pub use tokio_rustls::client::TlsStream;

/// The peer's TLS handshake over `stream`, accepting only the certificate with `pin`.
pub async fn connect_pinned<S>(stream: S, pin: Fingerprint) -> std::io::Result<TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (connector, name) = client(pin).map_err(std::io::Error::other)?;
    connector.connect(name, stream).await
}

/// Whether a failed TLS handshake failed because the driver's certificate is not the
/// pinned one.
pub fn is_pin_mismatch(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure
        ))
    )
}

/// Trusts exactly one certificate, by fingerprint; the handshake's signatures are still
/// verified against it, so only the holder of its key can complete the handshake.
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse_back() {
        let fp = Fingerprint::of(b"cert");
        let s = fp.to_string();
        assert!(s.starts_with("SHA256:") && s.len() == 7 + 43, "{s}");
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);
        let padded = format!("sha256:{}=", &s[7..]);
        assert_eq!(padded.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s[7..].parse::<Fingerprint>().unwrap(), fp);
        let hex = hex::encode(fp.0);
        assert_eq!(hex.to_uppercase().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("SHA256:{hex}").parse::<Fingerprint>().unwrap(), fp);
        let err = "SHA256:abc".parse::<Fingerprint>().unwrap_err().to_string();
        assert!(
            err.contains("43 base64 characters") && err.contains("press T"),
            "{err}"
        );
    }

    #[test]
    fn every_session_has_its_own_certificate() {
        let a = server().unwrap().fingerprint;
        let b = server().unwrap().fingerprint;
        assert_ne!(a, b);
    }
}
