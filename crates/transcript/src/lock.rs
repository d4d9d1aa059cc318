//! One driver per session: the process that writes a transcript (a live session, or `resume`
//! continuing one) holds an exclusive lock on it for as long as it runs, and `resume`
//! refuses a transcript whose lock is held.
//!
//! The lock is an advisory `flock` on the transcript file itself, so the kernel drops it
//! when its process dies however it dies (kill -9, a crash, a lost ssh session): a lock is
//! never stale on the host that took it. Beside it, `FILE.lock` says who holds it (pid,
//! host, since, mode) so a refusal can name them; it is removed when the holder ends
//! normally. Because `flock` does not reach across hosts on every network file system, a
//! `.lock` record written on another host is honoured even when the `flock` is free: only
//! that host can tell whether its process still runs, and `--force` is the way past it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds a transcript's lock, as written in its `.lock` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// When the holder took the lock (UTC, RFC 3339).
    pub since: String,
    /// What the holder is doing ("rehearsal", "drive", "resume", ...).
    pub mode: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} ({} since {})",
            self.pid, self.host, self.mode, self.since
        )
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A live process on this host holds it.
    #[error(
        "{path} is in use by {holder}: that cockpit is still running (a detached tmux or a lost ssh session?). Quit it first; `--force` takes over anyway, and then two cockpits may act on the same systems at once"
    )]
    Held { path: String, holder: Holder },
    /// The flock is held but nobody says who (the `.lock` record is missing or unreadable).
    #[error(
        "{path} is locked by another process on this host (its .lock record is missing, so it cannot be named; see `fuser {path}`). Quit it first; `--force` takes over anyway, and then two cockpits may act on the same systems at once"
    )]
    HeldByUnknown { path: String },
    /// The record names another host; its process cannot be checked from here.
    #[error(
        "{path} was locked by {holder}, another host: whether that process still runs cannot be checked from here. If it has stopped (or that machine is gone), `--force` takes over; if it is still running, two cockpits would act on the same systems at once"
    )]
    OtherHost { path: String, holder: Holder },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock on a transcript, released when dropped (and by the kernel when the
/// process dies).
#[derive(Debug)]
pub struct TranscriptLock {
    /// Holds the `flock`; `None` when taken over with `--force` while another process holds it.
    _file: Option<File>,
    record: PathBuf,
    /// Whether this process wrote the `.lock` record (and so removes it).
    wrote_record: bool,
}

/// The `.lock` record beside a transcript.
pub fn record_path(transcript: &Path) -> PathBuf {
    let mut name = transcript.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Reads the `.lock` record beside `transcript`, if there is a readable one.
pub fn holder(transcript: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(record_path(transcript)).ok()?;
    serde_json::from_str(text.trim()).ok()
}

impl TranscriptLock {
    /// Takes the lock on `transcript` for a process doing `mode`. Refuses when a live process
    /// on this host holds it, or when the record names another host.
    pub fn acquire(transcript: &Path, mode: &str) -> Result<TranscriptLock, LockError> {
        Self::take(transcript, mode, false).map(|(lock, _)| lock)
    }

    /// Like [`acquire`](Self::acquire), but takes over whatever holds it. Returns who held
    /// it, so the caller can say what it overrode.
    pub fn force(
        transcript: &Path,
        mode: &str,
    ) -> Result<(TranscriptLock, Option<Holder>), LockError> {
        Self::take(transcript, mode, true)
    }

    fn take(
        transcript: &Path,
        mode: &str,
        force: bool,
    ) -> Result<(TranscriptLock, Option<Holder>), LockError> {
        let path = transcript.display().to_string();
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(transcript).map_err(io)?;
        let here = crate::host_name();
        let previous = holder(transcript);
        let file = match file.try_lock() {
            Ok(()) => {
                if let Some(h) = previous.as_ref().filter(|h| h.host != here)
                    && !force
                {
                    return Err(LockError::OtherHost {
                        path,
                        holder: h.clone(),
                    });
                }
                Some(file)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if !force {
                    return Err(match previous {
                        Some(holder) => LockError::Held { path, holder },
                        None => LockError::HeldByUnknown { path },
                    });
                }
                None
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        };
        let record = record_path(transcript);
        let me = Holder {
            pid: std::process::id(),
            host: here,
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            mode: mode.to_string(),
        };
        // Only the flock's holder writes the record; a forced take-over of a live lock leaves
        // the live holder's record in place (it is still the one holding the flock).
        let wrote_record = file.is_some() && write_record(&record, &me).is_ok();
        let overridden = previous.filter(|p| p.pid != me.pid || p.host != me.host);
        Ok((
            TranscriptLock {
                _file: file,
                record,
                wrote_record,
            },
            overridden,
        ))
    }
}

fn write_record(path: &Path, me: &Holder) -> std::io::Result<()> {
    let mut f = crate::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let json = serde_json::to_string(me).map_err(std::io::Error::other)?;
    writeln!(f, "{json}")?;
    f.sync_data()
}

impl Drop for TranscriptLock {
    fn drop(&mut self) {
        if self.wrote_record {
            // Only our own record: another process may have forced its way in since.
            if holder_is_me(&self.record) {
                let _ = std::fs::remove_file(&self.record);
            }
        }
    }
}

fn holder_is_me(record: &Path) -> bool {
    std::fs::read_to_string(record)
        .ok()
        .and_then(|t| serde_json::from_str::<Holder>(t.trim()).ok())
        .is_some_and(|h| h.pid == std::process::id() && h.host == crate::host_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(dir: &Path) -> PathBuf {
        let p = dir.join("t.jsonl");
        std::fs::write(&p, "{}\n").unwrap();
        p
    }

    #[test]
    fn a_second_lock_in_another_open_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = transcript(dir.path());
        let first = TranscriptLock::acquire(&p, "drive").expect("free");
        let h = holder(&p).expect("the record names the holder");
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.mode, "drive");
        // flock locks belong to the open file, so a second open in this process conflicts
        // just as another process would.
        let err = TranscriptLock::acquire(&p, "resume").expect_err("held");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("--force"), "{msg}");
        drop(first);
        assert!(holder(&p).is_none(), "the record goes with the lock");
        TranscriptLock::acquire(&p, "resume").expect("free again");
    }

    #[test]
    fn a_record_from_another_host_is_honoured_until_forced() {
        let dir = tempfile::tempdir().unwrap();
        let p = transcript(dir.path());
        let other = Holder {
            pid: 4242,
            host: "laptop-that-crashed".into(),
            since: "2026-12-01T02:00:00Z".into(),
            mode: "drive".into(),
        };
        write_record(&record_path(&p), &other).unwrap();
        let err = TranscriptLock::acquire(&p, "resume").expect_err("other host");
        assert!(
            matches!(&err, LockError::OtherHost { holder, .. } if *holder == other),
            "{err}"
        );
        let (_lock, overridden) = TranscriptLock::force(&p, "resume").expect("forced");
        assert_eq!(overridden, Some(other));
        assert_eq!(holder(&p).unwrap().pid, std::process::id());
    }

    #[test]
    fn a_held_lock_can_be_forced_and_the_live_record_stays() {
        let dir = tempfile::tempdir().unwrap();
        let p = transcript(dir.path());
        let _first = TranscriptLock::acquire(&p, "drive").unwrap();
        let (forced, overridden) = TranscriptLock::force(&p, "resume").expect("forced");
        assert_eq!(overridden, None, "the holder is this very process");
        drop(forced);
        assert!(holder(&p).is_some(), "the live holder's record is kept");
    }
}
