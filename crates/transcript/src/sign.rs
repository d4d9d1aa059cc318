//! Authorship: the Ed25519 key a session signs its chain with (format 4).
//!
//! A hash chain shows accidents — an edited, deleted or reordered line — but anyone who
//! rewrites a file can recompute every hash. So each session holds a signing key and, at
//! every group commit (each [`crate::Recorder::append`], the batch that is `fdatasync`ed
//! before the cockpit acts on it), signs the chain head: the last record of the batch
//! carries a `sig` field, the last field of its line,
//!
//! ```text
//! {"seq":N,"prev":"<hash of line N>","event":{...},"sig":"<base64 Ed25519 signature>"}
//! ```
//!
//! over [`DOMAIN`] followed by the SHA-256 of that line *without* its `sig` field (the
//! line as the recorder would have written it unsigned). That record's `prev` chains to
//! every line before it, so one signature covers the file up to and including it; the
//! session's last batch holds `session_ended`, so the end is signed too. The next record's
//! `prev` is the hash of the whole line, signature included.
//!
//! The public key is in the header line (`"signing":{"alg":"ed25519","public":...}`), so a
//! file checks itself against it. That proves nothing against someone who rewrote the whole
//! file with a key of their own: authorship needs the key handed out of band (printed at the
//! end of the session, sent in the share hello) and given back to `cutover verify --key`.
//!
//! **The private key.** A per-session key is generated from the operating system's random
//! source when the recorder is created, held in memory by the recorder only, never written,
//! logged or shown, and zeroed when the recorder is dropped (`ed25519-dalek`'s
//! `ZeroizeOnDrop`). An operator's OpenSSH Ed25519 key (`--sign-key`) is read from its file
//! the same way and kept no longer.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of every signed message, so a transcript signature cannot be replayed as
/// another protocol's (and the reverse).
pub const DOMAIN: &[u8] = b"cutover-transcript-v4 chain head\0";

/// The `sig` field as the recorder writes it: the last field of a record's line.
pub(crate) const SIG_FIELD: &[u8] = b",\"sig\":\"";

/// The signing key's public half as the header carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningInfo {
    /// Always `ed25519`.
    pub alg: String,
    /// The 32-byte public key, base64.
    pub public: String,
    /// Where the key came from: `session` (generated for this session) or `ssh` (the
    /// operator's OpenSSH key, with its SHA256 fingerprint and comment).
    pub origin: String,
}

/// A verifying key, parsed from any spelling an operator may paste.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:<base64>`, bare base64 (44 characters), hex (64 characters) or an
    /// OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let t = text.trim();
        let t = t.strip_prefix("ed25519:").unwrap_or(t);
        let bytes: Vec<u8> = if t.starts_with("ssh-ed25519 ") {
            let blob = t
                .split_whitespace()
                .nth(1)
                .ok_or("an OpenSSH key line without its key")?;
            let blob = B64
                .decode(blob)
                .map_err(|e| format!("the OpenSSH key is not base64: {e}"))?;
            ssh_public_from_blob(&blob)?.to_vec()
        } else if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|e| format!("bad hex: {e}"))?
        } else {
            B64.decode(t).map_err(|_| {
                "not an Ed25519 public key: expected ed25519:<base64>, 64 hex digits or an `ssh-ed25519 ...` line".to_string()
            })?
        };
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "an Ed25519 public key is 32 bytes, this one is {}",
                bytes.len()
            )
        })?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|e| format!("not a valid Ed25519 public key: {e}"))
    }

    /// The key in an OpenSSH public key blob (`string "ssh-ed25519"`, `string key`).
    pub fn from_ssh_blob(blob: &[u8]) -> Result<PublicKey, String> {
        let arr = ssh_public_from_blob(blob)?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|e| format!("not a valid Ed25519 public key: {e}"))
    }

    /// Like [`PublicKey::parse`], reading the key from a file when `arg` names one.
    pub fn from_arg(arg: &str) -> Result<PublicKey, String> {
        let p = Path::new(arg);
        if p.is_file() {
            let meta = std::fs::metadata(p).map_err(|e| format!("{arg}: {e}"))?;
            if meta.len() > 64 * 1024 {
                return Err(format!("{arg}: too large for a public key file"));
            }
            let text = std::fs::read_to_string(p).map_err(|e| format!("{arg}: {e}"))?;
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .ok_or_else(|| format!("{arg}: empty key file"))?;
            return PublicKey::parse(line).map_err(|e| format!("{arg}: {e}"));
        }
        PublicKey::parse(arg)
    }

    /// `ed25519:<base64>`: how the key is printed and handed out.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", B64.encode(self.0.as_bytes()))
    }

    /// The bare base64, as the header stores it.
    pub fn base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// Checks `sig` (base64) over the unsigned form of a record line whose SHA-256 is
    /// `unsigned_hash`.
    pub fn verify_head(&self, unsigned_hash: &[u8; 32], sig: &str) -> Result<(), String> {
        let raw = B64
            .decode(sig)
            .map_err(|_| "the signature is not base64".to_string())?;
        let arr: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| format!("a signature is 64 bytes, this one is {}", raw.len()))?;
        self.0
            .verify_strict(&message(unsigned_hash), &Signature::from_bytes(&arr))
            .map_err(|_| "the signature does not verify".to_string())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Prefix of a signed approval: it cannot pass for a transcript signature or the reverse.
const APPROVAL_DOMAIN: &[u8] = b"cutover approval v1\0";

pub(crate) fn approval_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(APPROVAL_DOMAIN.len() + 32);
    m.extend_from_slice(APPROVAL_DOMAIN);
    m.extend_from_slice(digest);
    m
}

impl PublicKey {
    /// The key as an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), as an
    /// authorized_keys or approvers file holds it.
    pub fn to_openssh(&self, comment: &str) -> String {
        let mut blob = Vec::with_capacity(51);
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(self.0.as_bytes());
        format!("ssh-ed25519 {} {comment}", B64.encode(blob))
            .trim_end()
            .to_string()
    }

    /// Checks an approval signature (base64) over the approval digest.
    pub fn verify_approval(&self, digest: &[u8; 32], sig: &str) -> Result<(), String> {
        let raw = B64
            .decode(sig.trim())
            .map_err(|_| "the signature is not base64".to_string())?;
        let arr: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| format!("a signature is 64 bytes, this one is {}", raw.len()))?;
        self.0
            .verify_strict(&approval_message(digest), &Signature::from_bytes(&arr))
            .map_err(|_| "the signature does not verify".to_string())
    }
}

/// A key file's text: a regular file of at most 64 KiB. Errors name the file and never
/// quote its content.
pub fn read_key_file(path: &Path) -> Result<String, String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{p}: cannot read: {e}"))?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return Err(format!(
            "{p}: not an OpenSSH key file (not a regular file, or too large)"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{p}: cannot read: {e}"))
}

/// The message signed for a record whose unsigned line hashes to `unsigned_hash`.
fn message(unsigned_hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 32);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(unsigned_hash);
    m
}

/// A session's signing key. Its secret half never leaves this type: no serialization, and
/// `Debug` shows only the public key.
pub struct SessionKey {
    key: SigningKey,
    origin: String,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("public", &self.public().to_text())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// A fresh key from the operating system's random source, for one session.
    pub fn generate() -> std::io::Result<SessionKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            std::io::Error::other(format!(
                "no random source for the session's signing key: {e}"
            ))
        })?;
        let key = SigningKey::from_bytes(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        Ok(SessionKey {
            key,
            origin: "session".into(),
        })
    }

    /// The operator's OpenSSH Ed25519 private key (`ssh-keygen -t ed25519`), unencrypted.
    /// Errors name the file and never quote its content.
    pub fn from_openssh_file(path: &Path) -> Result<SessionKey, String> {
        let text = read_key_file(path)?;
        Self::from_openssh_text(path, &text)
    }

    /// [`SessionKey::from_openssh_file`] on the file's text, already read.
    pub fn from_openssh_text(path: &Path, text: &str) -> Result<SessionKey, String> {
        parse_openssh_private(text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub fn info(&self) -> SigningInfo {
        SigningInfo {
            alg: "ed25519".into(),
            public: self.public().base64(),
            origin: self.origin.clone(),
        }
    }

    /// Signs an approval whose canonical bytes hash to `digest` (see [`crate::approval`]).
    pub fn sign_approval(&self, digest: &[u8; 32]) -> String {
        B64.encode(self.key.sign(&approval_message(digest)).to_bytes())
    }

    /// Signs the chain head: a record line whose unsigned form hashes to `unsigned_hash`.
    pub(crate) fn sign_head(&self, unsigned_hash: &[u8; 32]) -> String {
        B64.encode(self.key.sign(&message(unsigned_hash)).to_bytes())
    }
}

/// A record line split at its `sig` field: the SHA-256 of the line without it, and the
/// signature. `None` when the line carries no signature.
pub(crate) fn split_signed(line: &[u8]) -> Option<([u8; 32], &str)> {
    let at = memchr::memmem::rfind(line, SIG_FIELD)?;
    let tail = line[at + SIG_FIELD.len()..].strip_suffix(b"\"}")?;
    if !tail
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let sig = std::str::from_utf8(tail).ok()?;
    let mut h = Sha256::new();
    h.update(&line[..at]);
    h.update(b"}");
    Some((h.finalize().into(), sig))
}

// -- OpenSSH key files --------------------------------------------------------------------

/// Reads an SSH wire string (u32 length, bytes) off the front of `b`.
fn ssh_string<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len_bytes: [u8; 4] = b
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or("the key file is cut short")?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let s = b.get(4..4 + len).ok_or("the key file is cut short")?;
    *b = &b[4 + len..];
    Ok(s)
}

fn ssh_public_from_blob(blob: &[u8]) -> Result<[u8; 32], String> {
    let mut b = blob;
    let kind = ssh_string(&mut b)?;
    if kind != b"ssh-ed25519" {
        return Err(format!(
            "an {} key; only ssh-ed25519 keys sign transcripts",
            String::from_utf8_lossy(kind)
        ));
    }
    ssh_string(&mut b)?
        .try_into()
        .map_err(|_| "an ssh-ed25519 key that is not 32 bytes".to_string())
}

/// The `openssh-key-v1` format (PROTOCOL.key in OpenSSH): magic, cipher, kdf, one public
/// key, then the private section (check ints, key type, public key, 64-byte secret, comment).
fn parse_openssh_private(text: &str) -> Result<SessionKey, String> {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    let body = text
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(b, _)| b)
        .ok_or("not an OpenSSH private key (no BEGIN OPENSSH PRIVATE KEY block)")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = zeroize::Zeroizing::new(
        B64.decode(b64)
            .map_err(|_| "the OpenSSH key block is not base64")?,
    );
    let mut b: &[u8] = raw
        .strip_prefix(b"openssh-key-v1\0")
        .ok_or("not an openssh-key-v1 key")?;
    let cipher = ssh_string(&mut b)?;
    let _kdf = ssh_string(&mut b)?;
    let _kdf_options = ssh_string(&mut b)?;
    if cipher != b"none" {
        return Err(
            "the key is encrypted with a passphrase, which cutover cannot use yet; \
             use a dedicated unencrypted ed25519 key kept mode 0600, or drop --sign-key for a per-session key"
                .into(),
        );
    }
    let n: [u8; 4] = b
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or("cut short")?;
    if u32::from_be_bytes(n) != 1 {
        return Err("the file holds more than one key".into());
    }
    b = &b[4..];
    let public = ssh_public_from_blob(ssh_string(&mut b)?)?;
    let mut private = ssh_string(&mut b)?;
    let c1 = private.get(..4).ok_or("cut short")?;
    let c2 = private.get(4..8).ok_or("cut short")?;
    if c1 != c2 {
        return Err("the private section is damaged (check ints differ)".into());
    }
    private = &private[8..];
    if ssh_string(&mut private)? != b"ssh-ed25519" {
        return Err("only ssh-ed25519 keys sign transcripts".into());
    }
    let public2 = ssh_string(&mut private)?;
    let secret = ssh_string(&mut private)?;
    let comment = String::from_utf8_lossy(ssh_string(&mut private)?).into_owned();
    let mut seed: [u8; 32] = secret
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or("the ed25519 secret is not 64 bytes")?;
    let key = SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    if key.verifying_key().as_bytes() != &public || public2 != public {
        return Err("the private key does not match its public key".into());
    }
    let fingerprint = {
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], &public[..]] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
    };
    let comment: String = comment.chars().filter(|c| !c.is_control()).collect();
    Ok(SessionKey {
        key,
        origin: format!("ssh SHA256:{fingerprint} {comment}")
            .trim_end()
            .into(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway fixture (`ssh-keygen -t ed25519 -N '' -C test-key`), used nowhere else.
    pub const SSH_PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACC1wpuFhpumqvl1YUUFEs8cJmjAeOwhNJBkGdVnfVB/DwAAAJDrhFNj64RT
YwAAAAtzc2gtZWQyNTUxOQAAACC1wpuFhpumqvl1YUUFEs8cJmjAeOwhNJBkGdVnfVB/Dw
AAAEDndHuFb4oOstLW0YrARBY59r8vpRm20b1qd8/ONTOSMbXCm4WGm6aq+XVhRQUSzxwm
aMB47CE0kGQZ1Wd9UH8PAAAACHRlc3Qta2V5AQIDBAU=
-----END OPENSSH PRIVATE KEY-----
";
    pub const SSH_PUBLIC: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXCm4WGm6aq+XVhRQUSzxwmaMB47CE0kGQZ1Wd9UH8P test-key";

    #[test]
    fn every_spelling_of_a_public_key_parses_to_the_same_key() {
        let k = SessionKey::generate().unwrap();
        let pk = k.public();
        let raw = pk.0.to_bytes();
        for s in [
            pk.to_text(),
            pk.base64(),
            hex::encode(raw),
            format!("  {}\n", pk.to_text()),
        ] {
            assert_eq!(PublicKey::parse(&s).unwrap(), pk, "{s}");
        }
        assert!(PublicKey::parse("hello").is_err());
        assert!(PublicKey::parse(&B64.encode([1u8; 31])).is_err());
    }

    #[test]
    fn a_signed_head_verifies_only_under_its_key_and_its_hash() {
        let k = SessionKey::generate().unwrap();
        let other = SessionKey::generate().unwrap();
        let h = [7u8; 32];
        let sig = k.sign_head(&h);
        assert!(k.public().verify_head(&h, &sig).is_ok());
        assert!(other.public().verify_head(&h, &sig).is_err());
        assert!(k.public().verify_head(&[8u8; 32], &sig).is_err());
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let k = SessionKey::generate().unwrap();
        let secret = hex::encode(k.key.to_bytes());
        let b64 = B64.encode(k.key.to_bytes());
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&secret) && !dbg.contains(&b64), "{dbg}");
    }

    #[test]
    fn an_openssh_key_pair_reads_and_its_public_line_matches() {
        let k = parse_openssh_private(SSH_PRIVATE).unwrap();
        assert_eq!(k.public(), PublicKey::parse(SSH_PUBLIC).unwrap());
        assert!(k.origin.starts_with("ssh SHA256:"), "{}", k.origin);
        assert!(k.origin.ends_with("test-key"), "{}", k.origin);
        let err = parse_openssh_private(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
        )
        .unwrap_err();
        assert!(err.contains("openssh-key-v1"), "{err}");
        assert!(parse_openssh_private("garbage").is_err());
    }

    #[test]
    fn a_signed_line_splits_at_its_last_sig_field() {
        let unsigned =
            br#"{"seq":1,"prev":"ab","event":{"type":"note","at":1,"text":"\",\"sig\":\"x"}}"#;
        let mut signed = unsigned[..unsigned.len() - 1].to_vec();
        signed.extend_from_slice(b",\"sig\":\"QUJD\"}");
        let (h, sig) = split_signed(&signed).unwrap();
        assert_eq!(sig, "QUJD");
        assert_eq!(h, <[u8; 32]>::from(Sha256::digest(unsigned)));
        assert!(split_signed(unsigned).is_none());
    }
}
