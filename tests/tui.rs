//! The real binary in a pseudo-terminal, read through a terminal emulator: open the
//! rehearsal, confirm a step by typing its phrase, see it run, quit, check the transcript.

#[path = "support/pty.rs"]
mod pty;

use std::time::Duration;

use cutover::event::Event;

const T: Duration = Duration::from_secs(60);

fn transcript(dir: &std::path::Path) -> cutover::transcript::Transcript {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("a transcript was written");
    cutover::transcript::read(&file).expect("the transcript reads back intact")
}

#[test]
fn operator_confirms_a_step_in_the_terminal_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &[
            "rehearse",
            "--operator",
            "pty-test",
            "--sessions-dir",
            sessions.to_str().unwrap(),
        ],
        dir.path(),
        100,
        30,
    );
    term.wait_for("[REHEARSAL]", T);
    term.wait_for("ready: preflight", T);

    // A wrong phrase is refused and the dialog stays open.
    term.send("\r");
    term.wait_for("type `ready` to confirm", T);
    term.send("nope\r");
    term.wait_for("not the phrase", T);
    // Esc cancels; then the real phrase.
    term.send("\x1b");
    term.wait_until("the dialog to close", T, |s| {
        !s.contains("type `ready` to confirm")
    });
    term.send("\r");
    term.wait_for("type `ready` to confirm", T);
    term.send("ready\r");
    term.wait_for("✔ preflight", T);
    term.wait_for("ready: freeze", T);

    // Freeze: a cutover is now under way, so quitting asks first.
    term.send("\r");
    term.wait_for("type `freeze writes` to confirm", T);
    term.send("freeze writes\r");
    term.wait_for("✔ freeze", T);
    term.send("q");
    term.wait_for("under way", T);
    term.send("y");
    let status = term.wait_exit(T);
    // Quitting before the cutover completed is not a safe completion.
    assert_eq!(status.exit_code(), 1, "exit status {status:?}");
    term.wait_for("ABORTED", T);

    let t = transcript(&sessions);
    assert_eq!(t.header.operator, "pty-test");
    assert!(t.torn_tail.is_none());
    let has = |f: &dyn Fn(&Event) -> bool| t.events.iter().any(f);
    assert!(has(
        &|e| matches!(e, Event::StepConfirmRejected { step, .. } if step == "preflight")
    ));
    assert!(has(
        &|e| matches!(e, Event::StepConfirmCancelled { step, .. } if step == "preflight")
    ));
    assert!(has(
        &|e| matches!(e, Event::StepConfirmed { step, by, .. } if step == "preflight" && by == "pty-test")
    ));
    assert!(has(
        &|e| matches!(e, Event::ActionFinished { step, ok: true, .. } if step == "freeze")
    ));
    assert!(
        matches!(t.events.last(), Some(Event::SessionEnded { reason, .. }) if reason == "operator quit")
    );
}

#[test]
fn the_terminal_is_restored_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &["rehearse", "--sessions-dir", sessions.to_str().unwrap()],
        dir.path(),
        80,
        24,
    );
    term.wait_for("[REHEARSAL]", T);
    let pid = term.pid().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    term.wait_exit(T);
    // Leaving the alternate screen brings back the (empty) primary screen.
    term.wait_until("the alternate screen to be left", T, |s| {
        !s.contains("[REHEARSAL]")
    });
    let t = transcript(&sessions);
    assert!(
        matches!(t.events.last(), Some(Event::SessionEnded { reason, .. }) if reason == "terminated by SIGTERM")
    );
}

/// Finding 3 of the hardening issue: a panic in a background task (here the rehearsal's
/// drift source, through the `source-panic` fault) used to run the process-wide panic hook,
/// which restored the terminal under the running cockpit and printed over it. Now the
/// panic is caught in its task and recorded as a source failure; the screen stays the
/// cockpit's and keys keep working.
#[test]
fn a_panic_in_a_background_task_leaves_the_cockpit_on_screen() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &[
            "rehearse",
            "--chaos",
            "source-panic",
            "--sessions-dir",
            sessions.to_str().unwrap(),
        ],
        dir.path(),
        120,
        40,
    );
    term.wait_for("[REHEARSAL]", T);
    term.wait_for("internal error", T);
    let screen = term.screen();
    assert!(screen.contains("[REHEARSAL]"), "{screen}");
    assert!(!screen.contains("panicked at"), "{screen}");
    // Keys still reach the cockpit: `?` opens the help.
    term.send("?");
    term.wait_for("Keys", T);
    // Any key closes the help (not Esc: followed at once by `q` it reads as Alt-q).
    term.send(" ");
    term.wait_until("the help to close", T, |s| !s.contains("Keys"));
    term.send("q");
    term.wait_exit(T);
    let t = transcript(&sessions);
    assert!(
        t.events.iter().any(|e| matches!(e, Event::SourceFailed { source: cutover::event::SourceKind::Drift, error, .. } if error.contains("panicked"))),
        "the panic is recorded as a drift failure"
    );
}

/// Hardening finding 8: the attach token was printed to stderr before the cockpit opened, so
/// it stayed in the terminal after the session. Now it is shown in the cockpit only (and
/// again on `T`), and the terminal holds no token once the cockpit is gone.
#[test]
fn the_attach_token_is_shown_in_the_cockpit_and_not_left_in_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &[
            "rehearse",
            "--share",
            "127.0.0.1:0",
            "--sessions-dir",
            sessions.to_str().unwrap(),
        ],
        dir.path(),
        160,
        40,
    );
    term.wait_for("[REHEARSAL]", T);
    term.wait_for("--token", T);
    // The whole command fits the notice line, the certificate's fingerprint included.
    term.wait_until("the whole fingerprint in the notice", T, |s| {
        s.split("--fingerprint SHA256:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|fp| fp.len() == 43)
    });
    // Any key hides it; T shows it again.
    term.send("j");
    term.wait_until("the token to be hidden", T, |s| !s.contains("--token"));
    term.send("T");
    term.wait_for("--token", T);
    term.send("q");
    term.wait_exit(T);
    term.wait_until("the alternate screen to be left", T, |s| {
        !s.contains("[REHEARSAL]")
    });
    let screen = term.screen();
    assert!(!screen.contains("--token"), "{screen}");
    assert!(!screen.contains("--fingerprint"), "{screen}");
}

#[test]
fn invites_are_written_private_and_managed_from_the_cockpit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut term = pty::Pty::spawn(
        &[
            "rehearse",
            "--operator",
            "olga",
            "--share",
            "127.0.0.1:0",
            "--invite",
            "ann:approver",
            "--invite",
            "bob",
            "--sessions-dir",
            sessions.to_str().unwrap(),
        ],
        dir.path(),
        160,
        40,
    );
    term.wait_for("[REHEARSAL]", T);
    term.wait_for("invited: ann (approver), bob (observer); commands in", T);
    let invites = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl.invites"))
        .expect("the invites file beside the transcript");
    let mode = std::fs::metadata(&invites).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&invites).unwrap();
    let ann_line = text
        .lines()
        .find(|l| l.starts_with("ann approver cutover attach 127.0.0.1:"))
        .unwrap_or_else(|| panic!("{text}"));
    let ann_token = ann_line
        .split("--token ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();

    // I lists the invites (no token drawn); `invite carl:approver` issues one.
    term.send("I");
    term.wait_until("the invites dialog", T, |s| {
        s.contains("Invites") && s.contains("approver") && s.contains("not attached")
    });
    assert!(!term.screen().contains(&ann_token));
    term.send("invite carl:approver\r");
    term.wait_for("invited — hand this to them only: cutover attach", T);
    term.wait_until("carl in the invites file", T, |_| {
        std::fs::read_to_string(&invites)
            .unwrap()
            .contains("carl approver cutover attach")
    });
    // `revoke ann`: her line loses its token.
    term.send("I");
    term.wait_for("Invites", T);
    term.send("revoke ann\r");
    term.wait_for("revoked ann's invite", T);
    let text = std::fs::read_to_string(&invites).unwrap();
    assert!(
        text.contains("ann approver revoked") && !text.contains(&ann_token),
        "{text}"
    );
    term.send("q");
    term.wait_exit(T);

    // The transcript records who was invited or revoked, never a token.
    let t = transcript(&sessions);
    let notes: Vec<String> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Note { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n == "the driver invited carl (approver)"),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n == "the driver revoked ann's invite"),
        "{notes:?}"
    );
    let raw = std::fs::read_to_string(&t.path).unwrap();
    assert!(!raw.contains(&ann_token));
}
