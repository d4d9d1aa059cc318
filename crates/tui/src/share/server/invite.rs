//! Invites: one token per person, each with the role the driver gave it. The name a peer
//! is shown and recorded under is its invite's, never what the peer says it is.
//!
//! The attach commands (tokens included) go to the driver's screen and to the invites
//! file (mode 0600, written whole and renamed into place), never to the transcript or the
//! log: what is recorded is the name and role of each invite issued or revoked.
//!
//! A session shared without any `--invite` keeps one shared token, for observers only:
//! its peers name themselves, so nothing they do can count as an approval.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::listener::{check_name, same_name};
use super::{ShareAddr, ShareError};
use crate::share::protocol::AttachToken;
use crate::share::tls::Fingerprint;
use cutover_core::event::PeerRole;

/// Most invites one session holds (issued from the command line and the cockpit).
pub const MAX_INVITES: usize = 32;

/// `NAME[:observer|:approver]` as typed after `--invite` or in the cockpit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteSpec {
    pub name: String,
    pub role: PeerRole,
}

impl FromStr for InviteSpec {
    type Err = String;

    /// `ann` (an observer), `ann:observer`, `ann:approver`.
    fn from_str(s: &str) -> Result<InviteSpec, String> {
        let (name, role) = match s.rsplit_once(':') {
            Some((name, "approver")) => (name, PeerRole::Approver),
            Some((name, "observer")) => (name, PeerRole::Observer),
            Some((_, other)) => {
                return Err(format!(
                    "invite \"{s}\": unknown role \"{other}\" (write NAME, NAME:observer or \
                     NAME:approver)"
                ));
            }
            None => (s, PeerRole::Observer),
        };
        let name = check_name(name).map_err(|e| format!("invite \"{s}\": {e}"))?;
        Ok(InviteSpec { name, role })
    }
}

impl fmt::Display for InviteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.role)
    }
}

struct Invite {
    name: String,
    role: PeerRole,
    token: AttachToken,
    revoked: bool,
}

/// One invite as the cockpit lists it (no token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteView {
    pub name: String,
    pub role: PeerRole,
    pub revoked: bool,
}

/// Who a token admits.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// An invite's person, under its name and role.
    Invited { name: String, role: PeerRole },
    /// The shared observers' token: the peer's own name, observing only.
    Shared,
}

/// Every invite of the session, and where their commands are written.
pub struct InviteBook {
    invites: Vec<Invite>,
    shared: Option<AttachToken>,
    file: Option<PathBuf>,
    addr: ShareAddr,
    fingerprint: Option<Fingerprint>,
    operator: String,
}

impl InviteBook {
    /// The invites for `specs` (a shared observers' token when there are none), their
    /// commands written to `file` if one is given.
    pub(super) fn new(
        specs: &[InviteSpec],
        file: Option<PathBuf>,
        addr: ShareAddr,
        fingerprint: Option<Fingerprint>,
        operator: &str,
    ) -> Result<InviteBook, ShareError> {
        let mut book = InviteBook {
            invites: Vec::new(),
            shared: specs.is_empty().then(AttachToken::generate),
            file,
            addr,
            fingerprint,
            operator: operator.to_string(),
        };
        for spec in specs {
            book.add(spec)
                .map_err(|reason| ShareError::Invite { reason })?;
        }
        book.write_file()
            .map_err(|reason| ShareError::Invite { reason })?;
        Ok(book)
    }

    fn add(&mut self, spec: &InviteSpec) -> Result<AttachToken, String> {
        if same_name(&spec.name, &self.operator) {
            return Err(format!(
                "invite \"{}\": that is the driver's own name (a driver cannot approve its own \
                 steps); invite each colleague by their own name",
                spec.name
            ));
        }
        if self.invites.iter().any(|i| same_name(&i.name, &spec.name)) {
            return Err(format!(
                "invite \"{}\": {} is already invited (revoke it first to change the role)",
                spec, spec.name
            ));
        }
        if self.invites.len() >= MAX_INVITES {
            return Err(format!(
                "a session holds at most {MAX_INVITES} invites, revoked ones included"
            ));
        }
        let token = AttachToken::generate();
        self.invites.push(Invite {
            name: spec.name.clone(),
            role: spec.role,
            token: token.clone(),
            revoked: false,
        });
        Ok(token)
    }

    /// Issues a new invite from the cockpit; returns its attach command (for the driver's
    /// screen only).
    pub(super) fn issue(&mut self, spec: &InviteSpec) -> Result<String, String> {
        let token = self.add(spec)?;
        if let Err(e) = self.write_file() {
            // The invite is useless if the driver cannot hand it out: take it back.
            self.invites.pop();
            return Err(e);
        }
        Ok(self.command(&token))
    }

    /// Revokes `name`'s invite: its token stops working.
    pub(super) fn revoke(&mut self, name: &str) -> Result<String, String> {
        let Some(inv) = self
            .invites
            .iter_mut()
            .find(|i| same_name(&i.name, name) && !i.revoked)
        else {
            return Err(format!("nobody named \"{name}\" holds a live invite"));
        };
        inv.revoked = true;
        let name = inv.name.clone();
        self.write_file()?;
        Ok(name)
    }

    /// Who `token` admits, or why not (and whether that belongs in the audit).
    pub(super) fn admit(&self, token: &str) -> Result<Admit, String> {
        // Every token is compared (in constant time each), so the timing does not tell
        // which invite came close.
        let mut found = None;
        for inv in &self.invites {
            if inv.token.matches(token) {
                found = Some(inv);
            }
        }
        if let Some(inv) = found {
            if inv.revoked {
                return Err(format!(
                    "the invite for {} was revoked by the driver",
                    inv.name
                ));
            }
            return Ok(Admit::Invited {
                name: inv.name.clone(),
                role: inv.role,
            });
        }
        match &self.shared {
            Some(shared) if shared.matches(token) => Ok(Admit::Shared),
            _ => Err(
                "the attach token is wrong (use the attach command the driver's \
                      cockpit shows; tokens change every session)"
                    .into(),
            ),
        }
    }

    pub fn list(&self) -> Vec<InviteView> {
        self.invites
            .iter()
            .map(|i| InviteView {
                name: i.name.clone(),
                role: i.role,
                revoked: i.revoked,
            })
            .collect()
    }

    /// The approvers' invites still live.
    pub fn approvers(&self) -> usize {
        self.invites
            .iter()
            .filter(|i| i.role == PeerRole::Approver && !i.revoked)
            .count()
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The attach command for the shared observers' token (a session without invites).
    pub fn shared_command(&self) -> Option<String> {
        self.shared.as_ref().map(|t| self.command(t))
    }

    /// `name`'s attach command, while the invite is live.
    pub fn command_for(&self, name: &str) -> Option<String> {
        self.invites
            .iter()
            .find(|i| same_name(&i.name, name) && !i.revoked)
            .map(|i| self.command(&i.token))
    }

    fn command(&self, token: &AttachToken) -> String {
        let mut cmd = format!("cutover attach {} --token {}", self.addr, token.reveal());
        if let Some(fp) = &self.fingerprint {
            cmd.push_str(&format!(" --fingerprint {fp}"));
        }
        cmd
    }

    /// Writes every invite's command to the invites file: a fresh file of mode 0600 beside
    /// it, renamed over the old one, so a reader never sees half of it and nobody else
    /// can read it.
    fn write_file(&self) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut text = String::from(
            "# cutover invites: one line per person, NAME ROLE then the command they run.\n\
             # Hand each line to its person only; this file is the driver's alone (0600).\n",
        );
        if let Some(cmd) = self.shared_command() {
            text.push_str(&format!("(anyone) observer {cmd}\n"));
        }
        for inv in &self.invites {
            if inv.revoked {
                text.push_str(&format!("{} {} revoked\n", inv.name, inv.role));
            } else {
                text.push_str(&format!(
                    "{} {} {}\n",
                    inv.name,
                    inv.role,
                    self.command(&inv.token)
                ));
            }
        }
        write_private(path, text.as_bytes())
            .map_err(|e| format!("cannot write the invites file {}: {e}", path.display()))
    }
}

impl fmt::Debug for InviteBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteBook")
            .field("invites", &self.list())
            .field("shared", &self.shared.is_some())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to `path` through a new file of mode 0600 in the same directory.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "invites".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    // A stale temporary of an earlier crash of this pid: remove it, never follow it.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(specs: &[&str], file: Option<PathBuf>) -> Result<InviteBook, ShareError> {
        let specs: Vec<InviteSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
        InviteBook::new(
            &specs,
            file,
            "127.0.0.1:7878".parse().unwrap(),
            None,
            "olga",
        )
    }

    fn token_of(b: &InviteBook, name: &str) -> String {
        let cmd = b.command_for(name).unwrap();
        cmd.split("--token ").nth(1).unwrap().to_string()
    }

    #[test]
    fn specs_parse_with_an_observer_by_default() {
        let s: InviteSpec = "ann".parse().unwrap();
        assert_eq!((s.name.as_str(), s.role), ("ann", PeerRole::Observer));
        let s: InviteSpec = "ann:approver".parse().unwrap();
        assert_eq!(s.role, PeerRole::Approver);
        let e = "ann:boss".parse::<InviteSpec>().unwrap_err();
        assert!(
            e.contains("unknown role \"boss\"") && e.contains("NAME:approver"),
            "{e}"
        );
        assert!("ol\u{200b}ga:approver".parse::<InviteSpec>().is_err());
        assert!(":approver".parse::<InviteSpec>().is_err());
    }

    #[test]
    fn each_token_admits_its_own_person_and_a_revoked_one_nobody() {
        let mut b = book(&["ann:approver", "bob"], None).unwrap();
        assert_eq!(
            b.admit(&token_of(&b, "ann")),
            Ok(Admit::Invited {
                name: "ann".into(),
                role: PeerRole::Approver
            })
        );
        let bob = token_of(&b, "bob");
        assert_eq!(
            b.admit(&bob),
            Ok(Admit::Invited {
                name: "bob".into(),
                role: PeerRole::Observer
            })
        );
        assert!(b.admit("nope").unwrap_err().contains("token is wrong"));
        assert_eq!(b.revoke("BOB").unwrap(), "bob");
        assert!(b.admit(&bob).unwrap_err().contains("revoked"));
        assert!(b.revoke("bob").is_err());
        assert_eq!(b.approvers(), 1);
        // No shared token once anyone is invited.
        assert!(b.shared_command().is_none());
    }

    #[test]
    fn the_drivers_name_and_a_second_invite_of_a_name_are_refused() {
        let e = book(&["OLGA:approver"], None).unwrap_err().to_string();
        assert!(e.contains("the driver's own name"), "{e}");
        let e = book(&["ann", "Ann:approver"], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already invited"), "{e}");
    }

    #[test]
    fn the_invites_file_is_private_and_never_holds_a_revoked_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl.invites");
        let mut b = book(&["ann:approver"], Some(path.clone())).unwrap();
        let ann = token_of(&b, "ann");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!(
            "ann approver cutover attach 127.0.0.1:7878 --token {ann}"
        )));
        let cmd = b.issue(&"bob".parse().unwrap()).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains(&cmd));
        b.revoke("ann").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&ann) && text.contains("ann approver revoked"),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
