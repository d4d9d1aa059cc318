//! The transcript: the session's event log on disk, and the only module that knows its
//! format. JSON Lines: a header record, then one record per event. Every record carries the
//! SHA-256 of the previous line, so an edit, deletion, reordering or truncation shows.
//!
//! Appends are group-committed: a batch is written and `fdatasync`ed before the cockpit acts
//! on it, so a confirmed step is durable before its action runs.


use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Event, Ts};

/// Identifies the file type in the header.
pub const FORMAT: &str = "cutover-transcript";
/// The record format version this program writes and reads.
pub const VERSION: u32 = 1;

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
    pub mode: String,
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
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    format: String,
    version: u32,
    seq: u64,
    header: Header,
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
}

/// Problems reading a transcript. Each names the line and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
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

fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Appends events durably. Owns the file; one per session.
pub struct Recorder {
    file: File,
    path: PathBuf,
    seq: u64,
    last_hash: String,
    buf: Vec<u8>,
}

impl Recorder {
    /// Creates `dir/<UTC timestamp>-<plan name>.jsonl` (mode 0600) and writes the header.
    pub fn create(dir: &Path, header: Header) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(header.created_at)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        let safe_name: String = header
            .plan_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let mut path = dir.join(format!("{stamp}-{safe_name}.jsonl"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("{stamp}-{safe_name}-{n}.jsonl"));
        }
        Self::create_at(&path, header)
    }

    /// Creates the transcript at an exact path (which must not exist).
    pub fn create_at(path: &Path, header: Header) -> std::io::Result<Recorder> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path)?;
        let line = serde_json::to_vec(&HeaderLine {
            format: FORMAT.into(),
            version: VERSION,
            seq: 0,
            header,
        })
        .map_err(std::io::Error::other)?;
        let mut rec = Recorder {
            file,
            path: path.to_path_buf(),
            seq: 0,
            last_hash: line_hash(&line),
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

    /// Appends a batch and makes it durable (one `fdatasync` per batch: group commit).
    pub fn append(&mut self, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for event in events {
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
            self.last_hash = line_hash(&self.buf[start..]);
            self.buf.push(b'\n');
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()
    }
}

/// Reads a transcript, checking the format, the version and the hash chain. A torn last
/// line is tolerated and reported in `torn_tail`.
pub fn read(path: &Path) -> Result<Transcript, TranscriptError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| TranscriptError::Open {
        path: p.clone(),
        source,
    })?;
    let bad = |line: usize, reason: String| TranscriptError::Bad {
        path: p.clone(),
        line,
        reason,
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut raw = Vec::new();
    let mut lineno = 0usize;
    let mut header: Option<Header> = None;
    let mut events = Vec::new();
    let mut last_hash = String::new();
    let mut last_seq = 0u64;
    let mut torn_tail = None;
    loop {
        raw.clear();
        let n = reader
            .read_until(b'\n', &mut raw)
            .map_err(|e| bad(lineno + 1, format!("read error: {e}")))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let complete = raw.last() == Some(&b'\n');
        let line = if complete { &raw[..raw.len() - 1] } else { &raw[..] };
        if header.is_none() {
            let h: HeaderLine = serde_json::from_slice(line).map_err(|e| {
                bad(lineno, format!("not a cutover transcript header: {e}"))
            })?;
            if h.format != FORMAT {
                return Err(bad(lineno, format!("format is \"{}\", expected \"{FORMAT}\"", h.format)));
            }
            if h.version != VERSION {
                return Err(bad(
                    lineno,
                    format!(
                        "unknown format version {} (this program reads version {VERSION}); use a cutover release that writes version {}",
                        h.version, h.version
                    ),
                ));
            }
            last_hash = line_hash(line);
            header = Some(h.header);
            continue;
        }
        let parsed: Result<EventLineIn, _> = serde_json::from_slice(line);
        let rec = match parsed {
            Ok(r) => r,
            Err(e) => {
                if !complete {
                    torn_tail = Some(format!(
                        "line {lineno} is cut short ({} bytes, no newline): a crash mid-write; ignored",
                        line.len()
                    ));
                    break;
                }
                return Err(bad(lineno, format!("not a valid record: {e}")));
            }
        };
        if rec.prev != last_hash {
            return Err(bad(
                lineno,
                "hash chain broken: this record does not follow the previous line (edited, deleted, inserted or reordered)".into(),
            ));
        }
        if rec.seq != last_seq + 1 {
            return Err(bad(
                lineno,
                format!("sequence {} where {} was expected (a record was deleted or reordered)", rec.seq, last_seq + 1),
            ));
        }
        last_seq = rec.seq;
        last_hash = line_hash(line);
        events.push(rec.event);
    }
    let header = header.ok_or_else(|| bad(1, "empty file: no transcript header".into()))?;
    Ok(Transcript {
        path: path.to_path_buf(),
        header,
        events,
        torn_tail,
        last_seq,
        last_hash,
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
