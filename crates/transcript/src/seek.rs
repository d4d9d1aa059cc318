//! The seek file: checkpoints of the folded [`State`] beside a transcript, so a replay can
//! seek anywhere in a long session without folding from the start.
//!
//! A live session writes `<transcript>.seek` as it records (a checkpoint every [`EVERY`]
//! events; it folds every event anyway). A replay that had to build its checkpoints itself
//! writes them to its cache directory (`$XDG_CACHE_HOME/cutover/seek/`) instead,
//! so replaying never writes beside the evidence.
//!
//! The file is a cache, never evidence, and never trusted blindly:
//! - its header names the transcript by the hash of the transcript's header line (the root of
//!   the hash chain) and the checkpoint interval; another transcript's file is ignored;
//! - each checkpoint names the hash of the transcript line it was taken after, and the
//!   SHA-256 of its state's bytes: a checkpoint is used only when that line still hashes the
//!   same and the bytes match the digest;
//! - replay's background pass folds the whole transcript anyway (it checks the chain) and
//!   compares its own state with every checkpoint it passes; a disagreement replaces the
//!   checkpoint, re-seeks the screen and is shown in the footer.
//!
//! Format (JSON Lines): `{"format":"cutover-seek","version":2,"root":H,"every":N}`, then one
//! `{"n":N,"hash":H,"digest":D,"state":{...}}` per checkpoint, `n` a multiple of `every`.

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::Recorder;
use super::index::Index;
use cutover_core::plan::Plan;
use cutover_core::state::State;

/// A checkpoint every this many events: a seek folds at most this many.
pub const EVERY: usize = 10_000;

const FORMAT: &str = "cutover-seek";
/// 2: the state holds the engine-neutral replication view (1 held the DMS task reading);
/// a seek file of another version is ignored and the transcript folded instead.
const VERSION: u32 = 2;
/// The longest checkpoint line read back (a folded state; far larger than a record line).
const MAX_SEEK_LINE: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    format: String,
    version: u32,
    root: String,
    every: usize,
}

#[derive(Deserialize)]
struct CheckpointLine<'a> {
    n: usize,
    hash: String,
    digest: String,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// The seek file written beside a transcript.
pub fn beside(transcript: &Path) -> PathBuf {
    let mut name = transcript.as_os_str().to_owned();
    name.push(".seek");
    PathBuf::from(name)
}

/// Where a replay keeps the checkpoints it built for a transcript: named by the start of its
/// chain and its last line, so two transcripts with the same header (a copy cut short, a
/// file still growing) do not share one.
pub fn in_cache(cache_dir: &Path, index: &Index) -> std::io::Result<PathBuf> {
    let last = match index.len() {
        0 => String::new(),
        n => index.record_hash(n - 1)?,
    };
    Ok(cache_dir.join(format!(
        "{}-{}.seek",
        &index.root_hash[..index.root_hash.len().min(32)],
        &last[..last.len().min(32)]
    )))
}

/// The user's cache directory for seek files: `$XDG_CACHE_HOME/cutover/seek`, else
/// `~/.cache/cutover/seek`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cutover").join("seek"))
}

/// The SHA-256 of a state snapshot's bytes, hex.
pub fn digest(snapshot: &[u8]) -> String {
    hex::encode(Sha256::digest(snapshot))
}

/// Appends checkpoints to a seek file. Not synced: a lost tail only costs a slower seek.
pub struct Writer {
    file: std::io::BufWriter<File>,
    path: PathBuf,
    every: usize,
}

impl Writer {
    /// Creates (or replaces) the seek file at `path` for the transcript whose chain starts at
    /// `root`.
    pub fn create(path: &Path, root: &str, every: usize) -> std::io::Result<Writer> {
        let file = super::private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut w = Writer {
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            path: path.to_path_buf(),
            every: every.max(1),
        };
        serde_json::to_writer(
            &mut w.file,
            &HeaderLine {
                format: FORMAT.into(),
                version: VERSION,
                root: root.into(),
                every: w.every,
            },
        )
        .map_err(std::io::Error::other)?;
        w.file.write_all(b"\n")?;
        w.file.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn every(&self) -> usize {
        self.every
    }

    /// Records `state` (folded over the first `state.events` events; a multiple of
    /// `every`), taken right after the line that hashes to `line_hash`.
    pub fn checkpoint(&mut self, line_hash: &str, state: &State) -> std::io::Result<()> {
        let snapshot = state.snapshot().map_err(std::io::Error::other)?;
        self.write_snapshot(state.events as usize, line_hash, &snapshot)
    }

    /// Records an already serialized state.
    pub fn write_snapshot(
        &mut self,
        n: usize,
        line_hash: &str,
        snapshot: &[u8],
    ) -> std::io::Result<()> {
        if !n.is_multiple_of(self.every) {
            return Err(std::io::Error::other(format!(
                "checkpoint at event {n} is not a multiple of {}",
                self.every
            )));
        }
        write!(
            self.file,
            r#"{{"n":{n},"hash":"{line_hash}","digest":"{}","state":"#,
            digest(snapshot)
        )?;
        self.file.write_all(snapshot)?;
        self.file.write_all(b"}\n")?;
        self.file.flush()
    }

    /// Flushes and syncs, then renames the file to `to` (a whole file appears at once).
    pub fn finish_as(self, to: &Path) -> std::io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.path, to)
    }
}

/// A live session's seek file beside its transcript, opened at the first checkpoint (short
/// sessions get none). Failing to write it never stops a session (it is a cache; replay
/// builds its own): the first error is logged and checkpointing stops.
#[derive(Default)]
pub struct Live {
    writer: Option<Writer>,
    failed: bool,
}

impl Live {
    /// Takes a checkpoint if one is due: `state` has folded a multiple of [`EVERY`] events,
    /// the last of them the recorder's last line.
    pub fn after_fold(&mut self, recorder: &Recorder, state: &State) {
        if self.failed || !(state.events as usize).is_multiple_of(EVERY) {
            return;
        }
        let path = beside(recorder.path());
        let result = match &mut self.writer {
            Some(w) => w.checkpoint(recorder.last_hash(), state),
            None => Writer::create(&path, recorder.root_hash(), EVERY).and_then(|mut w| {
                let r = w.checkpoint(recorder.last_hash(), state);
                self.writer = Some(w);
                r
            }),
        };
        if let Err(e) = result {
            tracing::warn!(
                "seek checkpoints stop ({}: {e}); replay will build its own",
                path.display()
            );
            self.failed = true;
            self.writer = None;
        }
    }
}

/// One checkpoint listed in a seek file (its state is read when needed).
#[derive(Clone, Debug)]
pub struct Entry {
    /// Events folded into it.
    pub n: usize,
    /// The hash of transcript event line `n` (1-based), the last one folded.
    pub hash: String,
    /// SHA-256 of the state's bytes.
    pub digest: String,
    offset: u64,
    len: usize,
}

/// A seek file opened for a transcript: its checkpoints, listed.
pub struct SeekFile {
    pub path: PathBuf,
    file: File,
    pub every: usize,
    pub entries: Vec<Entry>,
}

impl SeekFile {
    /// Opens the seek file at `path` if it belongs to the transcript whose chain starts at
    /// `root` and uses the interval `every`. `Ok(None)`: there is none, or it is for another
    /// transcript or interval. Lines that cannot be read end the list (a torn tail).
    pub fn open(path: &Path, root: &str, every: usize) -> std::io::Result<Option<SeekFile>> {
        let file = match super::open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone()?);
        let mut line = Vec::new();
        if super::read_line(&mut reader, &mut line, MAX_SEEK_LINE)? != super::LineRead::Line {
            return Ok(None);
        }
        let header: HeaderLine = match serde_json::from_slice(trim_newline(&line)) {
            Ok(h) => h,
            Err(_) => return Ok(None),
        };
        if header.format != FORMAT
            || header.version != VERSION
            || header.root != root
            || header.every != every
        {
            return Ok(None);
        }
        let mut offset = line.len() as u64;
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            // A line over the cap ends the list like a torn tail: the seek file is a cache.
            if super::read_line(&mut reader, &mut line, MAX_SEEK_LINE)? != super::LineRead::Line
                || line.last() != Some(&b'\n')
            {
                break;
            }
            let n = line.len();
            let Ok(cp) = serde_json::from_slice::<CheckpointLine>(trim_newline(&line)) else {
                break;
            };
            let in_order = entries.last().is_none_or(|e| e.n < cp.n);
            if cp.n == 0 || !cp.n.is_multiple_of(every) || !in_order {
                break;
            }
            entries.push(Entry {
                n: cp.n,
                hash: cp.hash,
                digest: cp.digest,
                offset,
                len: n,
            });
            offset += n as u64;
        }
        Ok(Some(SeekFile {
            path: path.to_path_buf(),
            file,
            every,
            entries,
        }))
    }

    /// The state of entry `i`, checked against its digest and restored under `plan`. The
    /// caller checks the transcript line hash ([`Entry::hash`]).
    pub fn load(&self, i: usize, plan: Arc<Plan>) -> Result<State, String> {
        let e = self
            .entries
            .get(i)
            .ok_or_else(|| format!("no checkpoint {i}"))?;
        let mut buf = vec![0u8; e.len];
        self.file
            .read_exact_at(&mut buf, e.offset)
            .map_err(|err| format!("{}: read error: {err}", self.path.display()))?;
        let cp: CheckpointLine = serde_json::from_slice(trim_newline(&buf)).map_err(|err| {
            format!(
                "{}: checkpoint at event {} unreadable: {err}",
                self.path.display(),
                e.n
            )
        })?;
        let bytes = cp.state.get().as_bytes();
        if digest(bytes) != e.digest {
            return Err(format!(
                "{}: checkpoint at event {} does not match its digest",
                self.path.display(),
                e.n
            ));
        }
        State::restore(bytes, plan)
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Arc<Plan> {
        Arc::new(cutover_core::plan::rehearsal_plan())
    }

    fn folded(n: usize) -> State {
        let mut s = State::new(plan());
        for i in 0..n {
            let _ = s.apply(&cutover_core::event::Event::Tick {
                at: 1000 + i as i64,
            });
        }
        s
    }

    #[test]
    fn checkpoints_round_trip_and_other_transcripts_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl.seek");
        let mut w = Writer::create(&path, "root-a", 5).unwrap();
        w.checkpoint("h5", &folded(5)).unwrap();
        w.checkpoint("h10", &folded(10)).unwrap();
        assert!(w.checkpoint("h11", &folded(11)).is_err());
        drop(w);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let f = SeekFile::open(&path, "root-a", 5).unwrap().unwrap();
        assert_eq!(
            f.entries
                .iter()
                .map(|e| (e.n, e.hash.as_str()))
                .collect::<Vec<_>>(),
            [(5, "h5"), (10, "h10")]
        );
        let s = f.load(1, plan()).unwrap();
        assert_eq!(s.events, 10);
        assert_eq!(s.snapshot().unwrap(), folded(10).snapshot().unwrap());

        assert!(SeekFile::open(&path, "root-b", 5).unwrap().is_none());
        assert!(SeekFile::open(&path, "root-a", 6).unwrap().is_none());
        assert!(
            SeekFile::open(&dir.path().join("none.seek"), "root-a", 5)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_edited_state_fails_its_digest_and_a_torn_tail_ends_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.seek");
        let mut w = Writer::create(&path, "r", 5).unwrap();
        w.checkpoint("h5", &folded(5)).unwrap();
        w.checkpoint("h10", &folded(10)).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        // Edit the first checkpoint's state (its event count) without fixing the digest,
        // and cut the last line short.
        let edited = text.replacen("\"events\":5", "\"events\":6", 1);
        assert_ne!(edited, text);
        std::fs::write(&path, &edited[..edited.len() - 10]).unwrap();
        let f = SeekFile::open(&path, "r", 5).unwrap().unwrap();
        assert_eq!(f.entries.len(), 1);
        let err = f.load(0, plan()).unwrap_err();
        assert!(err.contains("does not match its digest"), "{err}");
    }
}
