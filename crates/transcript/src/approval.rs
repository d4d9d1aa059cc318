//! Signed approvals (`[share] approvers = "FILE"`): each approver signs, with their own
//! Ed25519 SSH key, the step, their name and what their cockpit showed (the batch head
//! and the gate states). The driver checks the signature before it records the approval;
//! the transcript's header keeps the approvers' keys, so `cutover verify` checks every
//! approval again, long after the session.
//!
//! The approvers file is in authorized_keys form: `ssh-ed25519 AAAA… NAME`, one per line,
//! the comment being the approver's invite name; `#` comments and blank lines are
//! skipped; options before the key type are refused (nothing here would honour them).

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::agent::AgentKey;
use crate::sign::{PublicKey, SessionKey};
use cutover_core::event::{ApprovalSignature, Evidence, GateSeen};
use cutover_core::plan::{ApproverKey, Plan, PlanError, PlanErrors};

/// Names as the cockpit compares them: the invite's name is NFKC-normalised already, and
/// an approvers file written by hand may differ in case only.
fn same(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Zero-width and bidi characters that would let one name pass for another.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Largest approvers file read.
const MAX_FILE: u64 = 256 * 1024;

/// The bytes an approval's signature covers, hashed: the plan, the step, the approver and
/// the evidence (without its signature), in one fixed JSON form.
pub fn digest(plan_hash: &str, step: &str, by: &str, seen: &Evidence) -> [u8; 32] {
    #[derive(Serialize)]
    struct Signed<'a> {
        plan_hash: &'a str,
        step: &'a str,
        by: &'a str,
        seq: u64,
        head: Option<&'a str>,
        gates: &'a [GateSeen],
    }
    let bytes = serde_json::to_vec(&Signed {
        plan_hash,
        step,
        by,
        seq: seen.seq,
        head: seen.head.as_deref(),
        gates: &seen.gates,
    })
    // Strings, integers and enums only: serializing cannot fail.
    .unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// What signs an approver's approvals: their private key file, or their key in ssh-agent.
#[derive(Debug)]
pub enum Signer {
    Key(SessionKey),
    Agent(AgentKey),
}

impl From<SessionKey> for Signer {
    fn from(k: SessionKey) -> Signer {
        Signer::Key(k)
    }
}

impl Signer {
    /// `--sign-key FILE`: an unencrypted OpenSSH Ed25519 private key, or a public key line
    /// (`id_ed25519.pub`) whose private half ssh-agent holds (`$SSH_AUTH_SOCK`).
    pub fn from_file(path: &Path, agent_socket: Option<&Path>) -> Result<Signer, String> {
        let p = path.display();
        let text = crate::sign::read_key_file(path)?;
        if text.trim_start().starts_with("ssh-") {
            let public = PublicKey::parse(text.lines().next().unwrap_or_default())
                .map_err(|e| format!("{p}: {e}"))?;
            let socket = agent_socket.ok_or_else(|| {
                format!(
                    "{p} is a public key: its private half must be in ssh-agent, and \
                     SSH_AUTH_SOCK is not set (start the agent and `ssh-add` the key, or give \
                     the private key file)"
                )
            })?;
            return AgentKey::find(socket, &public).map(Signer::Agent);
        }
        SessionKey::from_openssh_text(path, &text).map(Signer::Key)
    }

    pub fn public(&self) -> PublicKey {
        match self {
            Signer::Key(k) => k.public(),
            Signer::Agent(a) => a.public(),
        }
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<String, String> {
        match self {
            Signer::Key(k) => Ok(k.sign_approval(digest)),
            Signer::Agent(a) => {
                use base64::Engine as _;
                let sig = a.sign(&crate::sign::approval_message(digest))?;
                Ok(base64::engine::general_purpose::STANDARD.encode(sig))
            }
        }
    }
}

/// Signs `seen` as `by`'s approval of `step`.
pub fn sign(
    signer: &Signer,
    plan_hash: &str,
    step: &str,
    by: &str,
    seen: &mut Evidence,
) -> Result<(), String> {
    seen.signature = None;
    let d = digest(plan_hash, step, by, seen);
    seen.signature = Some(ApprovalSignature {
        key: signer.public().to_text(),
        sig: signer.sign_digest(&d)?,
    });
    Ok(())
}

/// Whether `seen` carries `by`'s valid signature under one of `approvers`' keys; the error
/// says what is wrong and what to do.
pub fn check(
    approvers: &[ApproverKey],
    plan_hash: &str,
    step: &str,
    by: &str,
    seen: &Evidence,
) -> Result<(), String> {
    let Some(signature) = &seen.signature else {
        return Err(format!(
            "approvals in this session must be signed: attach with --sign-key and the key the \
             approvers file lists for {by}"
        ));
    };
    let key = PublicKey::parse(&signature.key)
        .map_err(|e| format!("the approval's key is not an Ed25519 key: {e}"))?;
    let listed = approvers
        .iter()
        .any(|a| same(&a.name, by) && PublicKey::parse(&a.key).is_ok_and(|k| k == key));
    if !listed {
        return Err(format!(
            "it is signed by {key}, which the approvers file does not list for {by}"
        ));
    }
    let mut unsigned = seen.clone();
    unsigned.signature = None;
    key.verify_approval(&digest(plan_hash, step, by, &unsigned), &signature.sig)
        .map_err(|e| {
            format!("{by}'s signature does not verify ({e}): it was not made over this approval")
        })
}

/// Reads the approvers file the plan names (relative to the plan file's directory) into
/// the plan, so the session's header records the keys.
pub fn load_into(plan: &mut Plan, plan_path: &Path) -> Result<(), PlanErrors> {
    let Some(file) = plan.share.approvers_file.clone() else {
        return Ok(());
    };
    let path = match Path::new(&file) {
        p if p.is_absolute() => p.to_path_buf(),
        p => plan_path.parent().unwrap_or(Path::new(".")).join(p),
    };
    let shown = path.display().to_string();
    let fail = |message: String| {
        PlanErrors(vec![PlanError {
            file: shown.clone(),
            line: 1,
            col: 1,
            message,
            hint: Some(
                "[share] approvers names an authorized_keys file of ssh-ed25519 keys, each \
                 line's comment the approver's invite name"
                    .into(),
            ),
        }])
    };
    let meta = std::fs::metadata(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(fail(format!(
            "not a regular file of at most {} KiB",
            MAX_FILE / 1024
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
    plan.share.approvers = parse(&shown, &text)?;
    Ok(())
}

/// Parses an approvers file; errors name file:line:col.
pub fn parse(file: &str, text: &str) -> Result<Vec<ApproverKey>, PlanErrors> {
    let mut out: Vec<ApproverKey> = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let col = line.len() - trimmed.len() + 1;
        let err = |message: String, hint: &str| PlanError {
            file: file.to_string(),
            line: i + 1,
            col,
            message,
            hint: Some(hint.to_string()),
        };
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut fields = trimmed.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        if kind != "ssh-ed25519" {
            errors.push(err(
                format!("expected an ssh-ed25519 key, found `{}`", kind.chars().take(20).collect::<String>()),
                "only Ed25519 keys sign approvals, and options before the key are not supported: write `ssh-ed25519 AAAA… NAME`",
            ));
            continue;
        }
        let blob = fields.next().unwrap_or_default();
        let key = match PublicKey::parse(&format!("ssh-ed25519 {blob}")) {
            Ok(k) => k,
            Err(e) => {
                errors.push(err(
                    e,
                    "paste the line of the approver's ~/.ssh/id_ed25519.pub",
                ));
                continue;
            }
        };
        let name: Vec<&str> = fields.collect();
        let name = name.join(" ");
        if name.chars().any(|c| c.is_control() || is_invisible(c)) {
            errors.push(err(
                "the approver's name holds control or invisible characters".into(),
                "write the approver's invite name in plain characters",
            ));
            continue;
        }
        if name.is_empty() {
            errors.push(err(
                "the key has no comment naming its approver".into(),
                "end the line with the approver's invite name: `ssh-ed25519 AAAA… ann`",
            ));
            continue;
        }
        if out.iter().any(|a| same(&a.name, &name)) {
            errors.push(err(
                format!("{name} is listed twice"),
                "keep one key per approver",
            ));
            continue;
        }
        out.push(ApproverKey {
            name,
            key: key.to_text(),
        });
    }
    if !errors.is_empty() {
        return Err(PlanErrors(errors));
    }
    if out.is_empty() {
        return Err(PlanErrors(vec![PlanError {
            file: file.to_string(),
            line: 1,
            col: 1,
            message: "the approvers file lists no key".into(),
            hint: Some("add `ssh-ed25519 AAAA… NAME` lines, or remove [share] approvers".into()),
        }]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_core::state::GateState;

    fn key() -> Signer {
        Signer::Key(SessionKey::generate().unwrap())
    }

    fn ssh_line(k: &Signer, name: &str) -> String {
        k.public().to_openssh(name)
    }

    fn seen() -> Evidence {
        Evidence {
            seq: 7,
            head: Some("ab".repeat(32)),
            gates: vec![GateSeen {
                gate: "lag == 0".into(),
                state: GateState::Green,
            }],
            signature: None,
        }
    }

    #[test]
    fn a_signed_approval_checks_and_any_change_breaks_it() {
        let ann = key();
        let file = format!("# approvers\n\n{}\n", ssh_line(&ann, "ann"));
        let approvers = parse("approvers", &file).unwrap();
        assert_eq!(approvers[0].name, "ann");
        let mut s = seen();
        sign(&ann, "ph", "freeze", "ann", &mut s).unwrap();
        assert_eq!(check(&approvers, "ph", "freeze", "ann", &s), Ok(()));
        // Another step, another approver name, another view: refused.
        assert!(check(&approvers, "ph", "drain", "ann", &s).is_err());
        let e = check(&approvers, "ph", "freeze", "bob", &s).unwrap_err();
        assert!(e.contains("does not list for bob"), "{e}");
        let mut other = s.clone();
        other.seq = 8;
        assert!(
            check(&approvers, "ph", "freeze", "ann", &other)
                .unwrap_err()
                .contains("does not verify")
        );
        // Unsigned, or signed by a key not listed for ann.
        let mut unsigned = seen();
        unsigned.signature = None;
        assert!(
            check(&approvers, "ph", "freeze", "ann", &unsigned)
                .unwrap_err()
                .contains("--sign-key")
        );
        let mut wrong = seen();
        sign(&key(), "ph", "freeze", "ann", &mut wrong).unwrap();
        assert!(
            check(&approvers, "ph", "freeze", "ann", &wrong)
                .unwrap_err()
                .contains("does not list")
        );
    }

    /// A transcript whose header lists ann's key, holding one approval made with `seen`.
    /// ann's view at the transcript's first event (seq 1), whose line hashes to `head`.
    fn view_at(head: String) -> Evidence {
        Evidence {
            seq: 1,
            head: Some(head),
            ..seen()
        }
    }

    /// A transcript whose header lists ann's key, holding one approval whose evidence
    /// `make` builds from the head of the line before it (seq 1).
    fn transcript_with(
        dir: &Path,
        ann: &Signer,
        make: impl FnOnce(String) -> Evidence,
    ) -> std::path::PathBuf {
        let mut h = crate::tests_support::header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        h.approvers = parse("k", &ssh_line(ann, "ann")).unwrap();
        let mut r = crate::Recorder::create(dir, h).unwrap();
        r.append(&[cutover_core::event::Event::Note {
            at: 1,
            text: "before".into(),
        }])
        .unwrap();
        let seen = make(r.last_hash().to_string());
        r.append(&[cutover_core::event::Event::StepApproved {
            at: 2,
            step: "freeze".into(),
            by: "ann".into(),
            seen: Some(seen),
        }])
        .unwrap();
        r.append(&[cutover_core::event::Event::SessionEnded {
            at: 3,
            reason: "done".into(),
        }])
        .unwrap();
        r.path().to_path_buf()
    }

    #[test]
    fn verify_checks_every_approval_against_the_headers_keys_and_names_the_line() {
        let ann = key();
        let dir = tempfile::tempdir().unwrap();
        let plan_hash = {
            let h = crate::tests_support::header();
            hex::encode(Sha256::digest(h.plan_text.as_bytes()))
        };
        let signed = |mut e: Evidence| {
            sign(&ann, &plan_hash, "freeze", "ann", &mut e).unwrap();
            e
        };
        let mut good = None;
        let p = transcript_with(dir.path(), &ann, |head| {
            let e = signed(view_at(head));
            good = Some(e.clone());
            e
        });
        let good = good.unwrap();
        let r = crate::verify::verify(&p);
        assert_eq!(r.exit_code(), 0, "{}", r.render());
        assert_eq!(r.approvals_signed, 1);
        assert!(
            r.render()
                .contains("1 approval(s) signed by their approvers' keys")
        );

        // One byte of the signature flipped by whoever wrote the file (its chain and the
        // session's signatures are whole): line 3 is named.
        let dir2 = tempfile::tempdir().unwrap();
        let mut bad = good.clone();
        let sig = bad.signature.as_mut().unwrap();
        let mut bytes = sig.sig.clone().into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        sig.sig = String::from_utf8(bytes).unwrap();
        let p2 = transcript_with(dir2.path(), &ann, |head| {
            let mut e = view_at(head);
            e.signature = bad.signature.clone();
            e
        });
        let r = crate::verify::verify(&p2);
        let pr = r
            .problem()
            .unwrap_or_else(|| panic!("{}", r.render()))
            .clone();
        assert_eq!(
            (pr.line, pr.kind),
            (3, crate::verify::ProblemKind::Approval),
            "{}",
            r.render()
        );
        assert!(
            r.render()
                .contains(":3: BAD APPROVAL: line 3: ann's approval of freeze is not theirs"),
            "{}",
            r.render()
        );

        // Unsigned where the header lists approvers: named too.
        let dir3 = tempfile::tempdir().unwrap();
        let p3 = transcript_with(dir3.path(), &ann, view_at);
        let r = crate::verify::verify(&p3);
        assert_eq!(r.problem().map(|p| p.line), Some(3), "{}", r.render());
        assert!(r.render().contains("must be signed"), "{}", r.render());

        // Signed, but naming a head this file does not hold at that seq.
        let dir4 = tempfile::tempdir().unwrap();
        let p4 = transcript_with(dir4.path(), &ann, |_| signed(view_at("cd".repeat(32))));
        let r = crate::verify::verify(&p4);
        assert_eq!(r.problem().map(|p| p.line), Some(3), "{}", r.render());
        assert!(
            r.render()
                .contains("names a view this file does not hold: line 2 (seq 1) does not hash to"),
            "{}",
            r.render()
        );

        // The same byte flipped in the file itself: the chain names the line as edited.
        let text = std::fs::read_to_string(&p).unwrap();
        let good_sig = &good.signature.as_ref().unwrap().sig;
        let mut flipped = good_sig.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let text = text.replace(good_sig.as_str(), std::str::from_utf8(&flipped).unwrap());
        std::fs::write(&p, text).unwrap();
        let r = crate::verify::verify(&p);
        assert_eq!(r.problem().map(|p| p.line), Some(3), "{}", r.render());
    }

    #[test]
    fn ssh_agent_signs_with_the_key_it_holds_when_given_the_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("id_ed25519");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ann", "-f"])
            .arg(&key_file)
            .status()
            .expect("ssh-keygen runs");
        assert!(ok.success());
        let pub_file = dir.path().join("id_ed25519.pub");
        let sock = dir.path().join("agent.sock");
        let mut agent = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent never made its socket"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Not in the agent yet: named, with the fix.
        let e = Signer::from_file(&pub_file, Some(&sock)).unwrap_err();
        assert!(e.contains("does not hold") && e.contains("ssh-add"), "{e}");
        let added = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(&key_file)
            .env("SSH_AUTH_SOCK", &sock)
            .status()
            .expect("ssh-add runs");
        assert!(added.success());
        let signer = Signer::from_file(&pub_file, Some(&sock)).unwrap();
        assert!(matches!(signer, Signer::Agent(_)));
        let approvers = parse("k", &std::fs::read_to_string(&pub_file).unwrap()).unwrap();
        let mut s = seen();
        sign(&signer, "ph", "freeze", "ann", &mut s).unwrap();
        assert_eq!(check(&approvers, "ph", "freeze", "ann", &s), Ok(()));
        // The private key file signs the same way, and without an agent a public key is
        // an error naming SSH_AUTH_SOCK.
        let from_file = Signer::from_file(&key_file, None).unwrap();
        assert_eq!(from_file.public(), signer.public());
        let e = Signer::from_file(&pub_file, None).unwrap_err();
        assert!(e.contains("SSH_AUTH_SOCK"), "{e}");
        let _ = agent.kill();
        let _ = agent.wait();
    }

    #[test]
    fn a_bad_approvers_file_names_the_line_and_column() {
        let ann = key();
        let text = format!(
            "{}\n  ssh-rsa AAAA bob\nssh-ed25519 !!! carl\n{}\n{}\n",
            ssh_line(&ann, "ann"),
            ssh_line(&key(), ""),
            ssh_line(&key(), "ann")
        );
        let e = parse("keys", &text).unwrap_err().to_string();
        assert!(
            e.contains("keys:2:3: expected an ssh-ed25519 key, found `ssh-rsa`"),
            "{e}"
        );
        assert!(e.contains("keys:3:1:"), "{e}");
        assert!(
            e.contains("keys:4:1: the key has no comment naming its approver"),
            "{e}"
        );
        assert!(e.contains("keys:5:1: ann is listed twice"), "{e}");
        let e = parse("keys", &ssh_line(&ann, "ol\u{200b}ga"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invisible"), "{e}");
        // Case does not matter between the file and the invite.
        let listed = parse("keys", &ssh_line(&ann, "Ann")).unwrap();
        let mut s = seen();
        sign(&ann, "ph", "freeze", "ann", &mut s).unwrap();
        assert_eq!(check(&listed, "ph", "freeze", "ann", &s), Ok(()));
        assert!(
            parse("keys", "# nobody\n")
                .unwrap_err()
                .to_string()
                .contains("lists no key")
        );
    }
}
