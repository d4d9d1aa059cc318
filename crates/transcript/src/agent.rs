//! Signing with a key held by ssh-agent (`$SSH_AUTH_SOCK`), so an approver's private key
//! never has to be readable by cutover: `cutover attach --sign-key ~/.ssh/id_ed25519.pub`
//! names the public half, and the agent signs (as `ssh-keygen -Y sign` does).
//!
//! Only the two requests of the agent protocol (draft-miller-ssh-agent) this needs:
//! REQUEST_IDENTITIES to find the key, SIGN_REQUEST to sign. Frames are bounded; an agent
//! that answers anything else is an error naming what it said.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sign::PublicKey;

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
const FAILURE: u8 = 5;
/// Largest agent answer read (a long list of keys fits easily).
const MAX_FRAME: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// An Ed25519 key the agent holds.
#[derive(Clone, Debug)]
pub struct AgentKey {
    socket: PathBuf,
    blob: Vec<u8>,
    public: PublicKey,
}

impl AgentKey {
    /// The agent at `socket`'s copy of `want`.
    pub fn find(socket: &Path, want: &PublicKey) -> Result<AgentKey, String> {
        let mut conn = connect(socket)?;
        let answer = request(&mut conn, &[REQUEST_IDENTITIES])?;
        let mut b = answer.as_slice();
        match take_u8(&mut b)? {
            IDENTITIES_ANSWER => {}
            other => return Err(format!("the agent answered {other} to a list of keys")),
        }
        let n = take_u32(&mut b)?;
        for _ in 0..n {
            let blob = take_string(&mut b)?.to_vec();
            let _comment = take_string(&mut b)?;
            if let Ok(k) = PublicKey::from_ssh_blob(&blob)
                && k == *want
            {
                return Ok(AgentKey {
                    socket: socket.to_path_buf(),
                    blob,
                    public: k,
                });
            }
        }
        Err(format!(
            "the agent does not hold {want} (add it with `ssh-add`, or give the private key file)"
        ))
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The agent's Ed25519 signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Result<[u8; 64], String> {
        let mut conn = connect(&self.socket)?;
        let mut req = vec![SIGN_REQUEST];
        put_string(&mut req, &self.blob);
        put_string(&mut req, data);
        req.extend_from_slice(&0u32.to_be_bytes());
        let answer = request(&mut conn, &req)?;
        let mut b = answer.as_slice();
        match take_u8(&mut b)? {
            SIGN_RESPONSE => {}
            FAILURE => {
                return Err("the agent refused to sign (a locked agent, or a confirm-only key that was declined)".into());
            }
            other => return Err(format!("the agent answered {other} to a sign request")),
        }
        let mut sig = take_string(&mut b)?;
        let kind = take_string(&mut sig)?;
        if kind != b"ssh-ed25519" {
            return Err("the agent made a signature that is not ssh-ed25519".into());
        }
        let raw = take_string(&mut sig)?;
        raw.try_into().map_err(|_| {
            format!(
                "an Ed25519 signature is 64 bytes, the agent's is {}",
                raw.len()
            )
        })
    }
}

fn connect(socket: &Path) -> Result<UnixStream, String> {
    let conn = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach ssh-agent at {}: {e}", socket.display()))?;
    // Both directions bounded: an agent waiting for a confirmation cannot hang us forever.
    let _ = conn.set_read_timeout(Some(TIMEOUT));
    let _ = conn.set_write_timeout(Some(TIMEOUT));
    Ok(conn)
}

fn request(conn: &mut UnixStream, body: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("talking to ssh-agent: {e}");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    conn.write_all(&frame).map_err(io)?;
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).map_err(io)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(format!("ssh-agent sent a frame of {len} bytes"));
    }
    let mut out = vec![0u8; len];
    conn.read_exact(&mut out).map_err(io)?;
    Ok(out)
}

fn take_u8(b: &mut &[u8]) -> Result<u8, String> {
    let (&x, rest) = b.split_first().ok_or("a short answer from ssh-agent")?;
    *b = rest;
    Ok(x)
}

fn take_u32(b: &mut &[u8]) -> Result<u32, String> {
    if b.len() < 4 {
        return Err("a short answer from ssh-agent".into());
    }
    let (n, rest) = b.split_at(4);
    *b = rest;
    Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
}

fn take_string<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = take_u32(b)? as usize;
    if b.len() < n {
        return Err("a short answer from ssh-agent".into());
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    Ok(s)
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}
