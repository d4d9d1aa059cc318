//! The transcript: the session's event log on disk, and the only module that knows its
//! format. JSON Lines: a header record, then one record per event. Every record carries the
//! SHA-256 of the previous line, so an edit, deletion, reordering or truncation shows.
//!
//! Appends are group-committed: a batch is written and `fdatasync`ed before the cockpit acts
//! on it, so a confirmed step is durable before its action runs.
//!
//! Format versions (the header's `version`):
//! - **1**: the header, then `{"seq","prev","event"}` records.
//! - **2**: a resumed session (`cutover resume`): the header carries `resumed_from` (the
//!   file it continues, its last seq and last hash); the records start with the interrupted
//!   session's events re-recorded under their original seq numbers (so the file replays
//!   alone), and may contain `step_resolved` records.
//! - **3**: replication is one engine-neutral reading (`"kind":"replication"`: status as a
//!   typed word beside the engine's own, lag figures, what is behind, tables, positions),
//!   produced by every engine. Versions 1 and 2 carry a DMS-shaped `task` reading, separate
//!   `table_stats` and the lag figures as the `CDC*` series of `metrics` readings; the fold
//!   still reads them (`cutover_core::state` maps them into the same replication view), so
//!   old transcripts verify, replay and report as they did.
//!
//! - **4**: signed. The header line carries the session's Ed25519 public key
//!   (`"signing":{"alg":"ed25519","public":"<base64>","origin":"session"|"ssh ..."}`), and
//!   the last record of every group commit carries `"sig"`, a signature of the chain head
//!   (see [`sign`]). Records and events are otherwise those of version 3.
//! - **5**: guards over the window: `guard_warned` records (the downtime budget's 80 %
//!   warning), `hold_cleared` (a guard's hold cleared by the operator) and
//!   `notify_delivered` (a webhook's delivery outcome, never its URL). Signed like 4; a
//!   version 4 file simply has none of them, and reads as it did.
//! - **6**: moving traffic in stages: `probe` readings (a `[[probe]]`'s value or its
//!   failure). Signed like 4; a version 5 file simply has none of them, and reads as it did.
//!
//! Every writer of this release writes version 6 (ordinary and resumed sessions alike); a
//! reader reads versions 1 to 6 and refuses versions it does not know, saying which release
//! to use.
//!
//! Every reader holds at most [`MAX_LINE`] bytes of a line ("line N longer than 16 MiB"),
//! and opens only regular files (a FIFO or a device is refused before it can block or
//! stream forever).
//!
//! Submodules: [`verify`] (chain, schema and signature audit naming the first bad line),
//! [`sign`] (the session's signing key), [`index`] (a line-offset index with timestamps for
//! fast open and seek in replay), [`seek`] (the seek file: folded-state checkpoints beside
//! a transcript, so replay seeks without folding from the start).

pub mod agent;
pub mod approval;
pub mod index;
pub mod lock;
pub mod seek;
pub mod sign;
pub mod verify;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

pub use sign::{PublicKey, SessionKey, SigningInfo};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cutover_core::event::{Event, Ts};

/// Identifies the file type in the header.
pub const FORMAT: &str = "cutover-transcript";
/// The newest record format version this program writes and reads.
pub const VERSION: u32 = 6;
/// The oldest version this program reads.
pub const MIN_VERSION: u32 = 1;
/// The first version whose records are signed.
pub const SIGNED_VERSION: u32 = 4;
/// The longest line any reader holds in memory. A header with a large plan is a few hundred
/// KB and a record a few KB; a longer line is not a transcript's.
pub const MAX_LINE: usize = 16 << 20;

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// End of file, nothing read.
    Eof,
    /// A line (with its newline, unless it is the file's last bytes).
    Line,
    /// The line is longer than the cap; `buf` holds its first bytes.
    TooLong,
}

/// Reads one line into `buf` (cleared first), with its newline if it has one, holding no
/// more than `max` bytes of it.
pub(crate) fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let content = if done { take - 1 } else { take };
        if buf.len() + content > max {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(LineRead::Line);
        }
    }
}

/// The reason for a line over [`MAX_LINE`].
pub(crate) fn too_long(line: usize) -> String {
    format!(
        "line {line} longer than {} MiB: no transcript record is that long (not a transcript, or corrupted)",
        MAX_LINE >> 20
    )
}

/// Opens `path` for reading if it is a regular file: a FIFO would block the open, a
/// device (`/dev/zero`) would stream forever.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(std::io::Error::other(format!(
            "{what}: a transcript is a regular file"
        )));
    }
    File::open(path)
}

/// Links a resumed session to the file it continues.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumedFrom {
    pub file: String,
    pub last_seq: u64,
    pub last_hash: String,
}

/// Who ran what, where: the first record of every transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub created_at: Ts,
    pub mode: cutover_core::event::SessionMode,
    pub operator: String,
    pub host: String,
    pub program_version: String,
    pub plan_name: String,
    /// SHA-256 of `plan_text`.
    pub plan_hash: String,
    /// The exact plan the session ran, so replay rebuilds the same checklist.
    pub plan_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<ResumedFrom>,
    /// The approvers' public keys (`[share] approvers`), as the session read them: every
    /// approval in the file must be signed by its approver's key here (`cutover verify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<cutover_core::plan::ApproverKey>,
    /// Who the AWS calls were made as (`sts:GetCallerIdentity` at start); absent in older
    /// files and in sessions without AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<cutover_core::event::AwsIdentity>,
}

impl Header {
    /// The version a file with this header is written in. Any session may record a guard's
    /// warning, a cleared hold or a probe reading, so every new file is version 6.
    pub fn format_version(&self) -> u32 {
        VERSION
    }
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    format: String,
    version: u32,
    seq: u64,
    header: Header,
    /// Version 4: the public key the records are signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing: Option<SigningInfo>,
}

/// Only the fields that identify a header, so an unknown version is reported as such even
/// when the rest of its header has changed shape.
#[derive(Deserialize)]
struct HeaderProbe {
    format: String,
    version: u32,
}

#[derive(Serialize)]
struct EventLineOut<'a> {
    seq: u64,
    prev: &'a str,
    event: &'a Event,
}

#[derive(Deserialize)]
struct EventLineIn {
    seq: u64,
    prev: String,
    event: Event,
    /// Version 4: a signature of this record (the last of its batch).
    #[serde(default)]
    sig: Option<String>,
}

/// The chain fields of a record without its event (verify checks them apart from the schema).
#[derive(Deserialize)]
struct ChainFields {
    seq: u64,
    prev: String,
}

/// Problems reading a transcript. Each names the file and line, the reason and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("{path}: cannot open: {error} (check the path and its permissions)")]
    Open { path: String, error: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Bad {
        path: String,
        line: usize,
        reason: String,
    },
}

/// A transcript read back from disk.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub path: PathBuf,
    pub header: Header,
    pub events: Vec<Event>,
    /// A last line cut short by a crash: reported, then ignored.
    pub torn_tail: Option<String>,
    pub last_seq: u64,
    pub last_hash: String,
}

/// Options that create a file only its owner can read (mode 0600): transcripts and seek
/// files hold what the window saw.
pub(crate) fn private_file() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// The SHA-256 (hex) of a line without its newline: what the next record's `prev` holds.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// A header line read: its version, the header and (version 4) the signing key.
pub(crate) struct ParsedHeader {
    version: u32,
    header: Header,
    signing: Option<SigningInfo>,
}

/// Why a header line cannot be used, or what it holds.
fn parse_header_line(line: &[u8]) -> Result<ParsedHeader, String> {
    let probe: HeaderProbe = serde_json::from_slice(line).map_err(|e| {
        format!("not a cutover transcript header: {e} (is this a transcript written by cutover?)")
    })?;
    if probe.format != FORMAT {
        return Err(format!(
            "format is \"{}\", expected \"{FORMAT}\"",
            probe.format
        ));
    }
    if !(MIN_VERSION..=VERSION).contains(&probe.version) {
        return Err(unknown_version(probe.version));
    }
    let h: HeaderLine = serde_json::from_slice(line).map_err(|e| {
        format!(
            "not a valid version {} header: {e} (run `cutover verify`)",
            probe.version
        )
    })?;
    Ok(ParsedHeader {
        version: h.version,
        header: h.header,
        signing: h.signing,
    })
}

fn unknown_version(v: u32) -> String {
    format!(
        "unknown format version {v} (this program reads versions {MIN_VERSION} to {VERSION}); use a cutover release that writes version {v}"
    )
}

/// Appends events durably and signs each batch. Owns the file and the session's signing
/// key (in memory only, zeroed on drop); one per session.
pub struct Recorder {
    file: File,
    path: PathBuf,
    seq: u64,
    /// The header line's hash: where the chain starts, and the transcript's identity.
    root_hash: String,
    last_hash: String,
    key: SessionKey,
    buf: Vec<u8>,
}

impl Recorder {
    /// Creates `dir/<UTC timestamp>-<plan name>.jsonl` (mode 0600) and writes the header,
    /// signing with a key generated for this session.
    pub fn create(dir: &Path, header: Header) -> std::io::Result<Recorder> {
        Self::create_signed(dir, header, SessionKey::generate()?)
    }

    /// [`Recorder::create`] with the key to sign with (the operator's, or a test's).
    pub fn create_signed(dir: &Path, header: Header, key: SessionKey) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(header.created_at)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        let safe_name: String = header
            .plan_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let suffix = if header.resumed_from.is_some() {
            "-resumed"
        } else {
            ""
        };
        let mut path = dir.join(format!("{stamp}-{safe_name}{suffix}.jsonl"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("{stamp}-{safe_name}{suffix}-{n}.jsonl"));
        }
        Self::create_at_signed(&path, header, key)
    }

    /// Creates the transcript at an exact path (which must not exist).
    pub fn create_at(path: &Path, header: Header) -> std::io::Result<Recorder> {
        Self::create_at_signed(path, header, SessionKey::generate()?)
    }

    /// [`Recorder::create_at`] with the key to sign with.
    pub fn create_at_signed(
        path: &Path,
        header: Header,
        key: SessionKey,
    ) -> std::io::Result<Recorder> {
        let file = private_file().write(true).create_new(true).open(path)?;
        let line = serde_json::to_vec(&HeaderLine {
            format: FORMAT.into(),
            version: header.format_version(),
            seq: 0,
            header,
            signing: Some(key.info()),
        })
        .map_err(std::io::Error::other)?;
        let mut rec = Recorder {
            file,
            path: path.to_path_buf(),
            seq: 0,
            root_hash: line_hash(&line),
            last_hash: line_hash(&line),
            key,
            buf: Vec::with_capacity(64 * 1024),
        };
        rec.file.write_all(&line)?;
        rec.file.write_all(b"\n")?;
        rec.file.sync_all()?;
        if let Some(parent) = path.parent() {
            // Make the new directory entry durable too; not all filesystems allow it.
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(rec)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the header line: the start of the chain.
    pub fn root_hash(&self) -> &str {
        &self.root_hash
    }

    /// The hash of the last line written (the header's when no event was): the head to
    /// hand out for `cutover verify --expect-head`.
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// The key this transcript is signed with: hand it out of band for `verify --key`.
    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// Appends a batch, signs its last record (the chain head) and makes it durable (one
    /// `fdatasync` per batch: group commit).
    pub fn append(&mut self, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for (i, event) in events.iter().enumerate() {
            let start = self.buf.len();
            self.seq += 1;
            serde_json::to_writer(
                &mut self.buf,
                &EventLineOut {
                    seq: self.seq,
                    prev: &self.last_hash,
                    event,
                },
            )
            .map_err(std::io::Error::other)?;
            if i + 1 == events.len() {
                self.sign_last(start);
            }
            self.last_hash = line_hash(&self.buf[start..]);
            self.buf.push(b'\n');
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()
    }

    /// Turns the unsigned record at `buf[start..]` into `{...,"sig":"<signature>"}`.
    fn sign_last(&mut self, start: usize) {
        let unsigned: [u8; 32] = Sha256::digest(&self.buf[start..]).into();
        let sig = self.key.sign_head(&unsigned);
        // The record is a JSON object: its last byte is the closing brace.
        self.buf.pop();
        self.buf.extend_from_slice(sign::SIG_FIELD);
        self.buf.extend_from_slice(sig.as_bytes());
        self.buf.extend_from_slice(b"\"}");
    }
}

/// Streams a transcript's events, checking the format, the version, the schema and the
/// hash chain as it goes. A torn last line ends the stream and is reported in
/// [`Reader::torn_tail`]. Memory stays flat, so a 24-hour transcript folds in one pass.
pub struct Reader {
    path: PathBuf,
    reader: BufReader<File>,
    raw: Vec<u8>,
    lineno: usize,
    header: Header,
    version: u32,
    signing: Option<SigningInfo>,
    last_hash: String,
    last_seq: u64,
    torn_tail: Option<String>,
    done: bool,
}

impl Reader {
    /// Opens the file and reads its header.
    pub fn open(path: &Path) -> Result<Reader, TranscriptError> {
        let p = path.display().to_string();
        let file = open_regular(path).map_err(|error| TranscriptError::Open {
            path: p.clone(),
            error,
        })?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut raw = Vec::new();
        let bad1 = |reason: String| TranscriptError::Bad {
            path: p.clone(),
            line: 1,
            reason,
        };
        let read = read_line(&mut reader, &mut raw, MAX_LINE)
            .map_err(|e| bad1(format!("read error: {e}")))?;
        if read == LineRead::TooLong {
            return Err(bad1(too_long(1)));
        }
        if read == LineRead::Eof {
            return Err(TranscriptError::Bad {
                path: p.clone(),
                line: 1,
                reason: "empty file: no transcript header (the file was truncated or is not a transcript)".into(),
            });
        }
        let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let parsed = parse_header_line(line).map_err(bad1)?;
        let last_hash = line_hash(line);
        Ok(Reader {
            path: path.to_path_buf(),
            reader,
            raw,
            lineno: 1,
            header: parsed.header,
            version: parsed.version,
            signing: parsed.signing,
            last_hash,
            last_seq: 0,
            torn_tail: None,
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Version 4: the key the header says the records are signed with (unchecked here:
    /// [`verify`] checks the signatures).
    pub fn signing(&self) -> Option<&SigningInfo> {
        self.signing.as_ref()
    }

    /// The line number of the last line read (1 is the header).
    pub fn line(&self) -> usize {
        self.lineno
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Set once the stream has ended on a line cut short by a crash.
    pub fn torn_tail(&self) -> Option<&str> {
        self.torn_tail.as_deref()
    }

    fn bad(&self, reason: String) -> TranscriptError {
        TranscriptError::Bad {
            path: self.path.display().to_string(),
            line: self.lineno,
            reason,
        }
    }

    /// The next event, `None` at the end (or at a torn last line).
    pub fn next_event(&mut self) -> Result<Option<Event>, TranscriptError> {
        if self.done {
            return Ok(None);
        }
        let read = read_line(&mut self.reader, &mut self.raw, MAX_LINE)
            .map_err(|e| self.bad(format!("read error: {e}")))?;
        if read == LineRead::Eof {
            self.done = true;
            return Ok(None);
        }
        self.lineno += 1;
        if read == LineRead::TooLong {
            self.done = true;
            return Err(self.bad(too_long(self.lineno)));
        }
        let complete = self.raw.last() == Some(&b'\n');
        let line = if complete {
            &self.raw[..self.raw.len() - 1]
        } else {
            &self.raw[..]
        };
        let rec: EventLineIn = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                if !complete {
                    self.torn_tail = Some(format!(
                        "line {} is cut short ({} bytes, no newline): a crash mid-write; ignored",
                        self.lineno,
                        line.len()
                    ));
                    self.done = true;
                    return Ok(None);
                }
                return Err(self.bad(format!(
                    "not a valid record: {e} (edited or corrupted; run `cutover verify` for details)"
                )));
            }
        };
        if rec.prev != self.last_hash {
            return Err(self.bad(
                "hash chain broken: this record does not follow the previous line (edited, deleted, inserted or reordered; run `cutover verify` for details)".into(),
            ));
        }
        if rec.seq != self.last_seq + 1 {
            return Err(self.bad(format!(
                "sequence {} where {} was expected (a record was deleted or reordered; run `cutover verify`)",
                rec.seq,
                self.last_seq + 1
            )));
        }
        self.last_seq = rec.seq;
        self.last_hash = line_hash(line);
        Ok(Some(rec.event))
    }
}

impl Iterator for Reader {
    type Item = Result<Event, TranscriptError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a transcript, checking the format, the version and the hash chain. A torn last
/// line is tolerated and reported in `torn_tail`.
pub fn read(path: &Path) -> Result<Transcript, TranscriptError> {
    let mut reader = Reader::open(path)?;
    let mut events = Vec::new();
    while let Some(ev) = reader.next_event()? {
        events.push(ev);
    }
    Ok(Transcript {
        path: path.to_path_buf(),
        header: reader.header.clone(),
        events,
        torn_tail: reader.torn_tail.clone(),
        last_seq: reader.last_seq,
        last_hash: reader.last_hash.clone(),
    })
}

/// This host's name, for the header.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::Header;

    pub fn header() -> Header {
        Header {
            created_at: 1_700_000_000_000,
            mode: "test".into(),
            operator: "op".into(),
            host: "h".into(),
            program_version: "0".into(),
            plan_name: "p".into(),
            plan_hash: "x".into(),
            plan_text: "name = \"p\"".into(),
            resumed_from: None,
            approvers: Vec::new(),
            aws: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::header;
    use super::*;

    fn events(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| Event::Tick {
                at: 1_700_000_000_000 + i,
            })
            .collect()
    }

    #[test]
    fn round_trip_keeps_every_event_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), header()).unwrap();
        r.append(&events(3)).unwrap();
        r.append(&events(2)).unwrap();
        let t = read(r.path()).unwrap();
        assert_eq!(t.header, header());
        assert_eq!(t.events.len(), 5);
        assert_eq!(t.last_seq, 5);
        assert!(t.torn_tail.is_none());
        assert!(
            r.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("-p.jsonl")
        );
    }

    #[test]
    fn file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), header()).unwrap();
        let mode = std::fs::metadata(r.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn torn_last_line_is_tolerated_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), header()).unwrap();
        r.append(&events(3)).unwrap();
        let mut text = std::fs::read(r.path()).unwrap();
        text.truncate(text.len() - 10);
        std::fs::write(r.path(), &text).unwrap();
        let t = read(r.path()).unwrap();
        assert_eq!(t.events.len(), 2);
        assert!(t.torn_tail.unwrap().contains("line 4 is cut short"));
    }

    #[test]
    fn an_edited_line_breaks_the_chain_at_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), header()).unwrap();
        r.append(&events(3)).unwrap();
        let text = std::fs::read_to_string(r.path()).unwrap();
        let edited = text.replacen("1700000000001", "1700000000009", 1);
        std::fs::write(r.path(), edited).unwrap();
        match read(r.path()) {
            Err(TranscriptError::Bad { line, reason, .. }) => {
                assert_eq!(line, 4);
                assert!(reason.contains("hash chain broken"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn unknown_version_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), header()).unwrap();
        let text = std::fs::read_to_string(r.path()).unwrap();
        std::fs::write(r.path(), text.replacen("\"version\":6", "\"version\":9", 1)).unwrap();
        let err = read(r.path()).unwrap_err().to_string();
        assert!(err.contains(":1: unknown format version 9"), "{err}");
    }
}
