//! A line index of a transcript for replay: where each event's line starts, when it
//! happened and what kind it is, built without parsing the events. Opening a 24-hour
//! transcript (about 1.7 million events) reads the file once, in parallel segments, and
//! extracts only each record's `type` and `at`; events are parsed when a seek needs them.
//!
//! The index does not check the hash chain: replay checks it in the background
//! ([`super::Reader`]) and `cutover verify` audits it.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cutover_core::event::{Event, Ts};

use super::{EventLineIn, Header, MAX_LINE, TranscriptError, parse_header_line, too_long};

/// What kind of record a line holds, as far as the timeline cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `tick`: time passing, nothing else.
    Tick,
    /// `observed`: a reading.
    Reading,
    /// `world_measured`: the rehearsal world's figures.
    Measure,
    /// A step decision or action ([`Event::is_step_event`]).
    Step,
    /// A step event that is bad news: a failed action, a timeout, a rollback.
    Alarm,
    /// Anything else worth stopping at: faults, failures, notes, dialogs, peers.
    Other,
}

impl Kind {
    /// Whether the timeline draws a marker for it.
    pub fn is_step(self) -> bool {
        matches!(self, Kind::Step | Kind::Alarm)
    }

    /// Whether idle-skipping stops at it (ticks, readings and measures are the idle noise).
    pub fn is_notable(self) -> bool {
        matches!(self, Kind::Step | Kind::Alarm | Kind::Other)
    }

    /// The kind of a parsed event.
    pub fn of(ev: &Event) -> Kind {
        match ev {
            Event::Tick { .. } => Kind::Tick,
            Event::Observed { .. } => Kind::Reading,
            Event::WorldMeasured { .. } => Kind::Measure,
            Event::ActionFinished { ok: false, .. }
            | Event::StepTimedOut { .. }
            | Event::RollbackConfirmed { .. } => Kind::Alarm,
            e if e.is_step_event() => Kind::Step,
            _ => Kind::Other,
        }
    }
}

/// The index of one transcript.
pub struct Index {
    path: PathBuf,
    file: File,
    pub header: Header,
    pub version: u32,
    /// The header line's hash: the start of the chain, the transcript's identity.
    pub root_hash: String,
    /// Byte offset of each event line; one extra entry: the end of the last indexed line.
    offsets: Vec<u64>,
    ats: Vec<Ts>,
    kinds: Vec<Kind>,
    /// A last line cut short by a crash (not indexed).
    pub torn_tail: Option<String>,
    /// A line that is not a readable record: the index (and replay) ends before it.
    pub stopped: Option<String>,
}

/// Bytes read at a time by each indexing thread.
const CHUNK: usize = 4 << 20;
/// Below this size one thread indexes the whole file.
const PARALLEL_MIN: u64 = 16 << 20;

struct Segment {
    offsets: Vec<u64>,
    ats: Vec<Ts>,
    kinds: Vec<Kind>,
    /// Offset just past the last line indexed.
    end: u64,
    torn_tail: Option<String>,
    /// (offset of the bad line, reason)
    stopped: Option<(u64, String)>,
    /// The bad line is longer than [`MAX_LINE`] (the reason is made with its number).
    too_long: bool,
}

impl Index {
    /// Reads the header and indexes every event line.
    pub fn open(path: &Path) -> Result<Index, TranscriptError> {
        let p = path.display().to_string();
        let open_err = |error| TranscriptError::Open {
            path: p.clone(),
            error,
        };
        let file = super::open_regular(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let bad1 = |reason: String| TranscriptError::Bad {
            path: p.clone(),
            line: 1,
            reason,
        };
        // The header line: read until its newline (it holds the plan, a few KB).
        let mut head = Vec::new();
        let mut pos = 0u64;
        let header_end = loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = file
                .read_at(&mut buf, pos)
                .map_err(|e| bad1(format!("read error: {e}")))?;
            if n == 0 {
                break None;
            }
            buf.truncate(n);
            if let Some(i) = memchr::memchr(b'\n', &buf) {
                head.extend_from_slice(&buf[..i]);
                break Some(pos + i as u64 + 1);
            }
            head.extend_from_slice(&buf);
            if head.len() > MAX_LINE {
                return Err(bad1(too_long(1)));
            }
            pos += n as u64;
        };
        if head.is_empty() && header_end.is_none() {
            return Err(bad1(
                "empty file: no transcript header (the file was truncated or is not a transcript)"
                    .into(),
            ));
        }
        let parsed = parse_header_line(&head).map_err(bad1)?;
        let (version, header) = (parsed.version, parsed.header);
        let root_hash = super::line_hash(&head);
        let Some(body) = header_end else {
            return Ok(Index {
                path: path.to_path_buf(),
                file,
                header,
                version,
                root_hash,
                offsets: vec![len],
                ats: Vec::new(),
                kinds: Vec::new(),
                torn_tail: None,
                stopped: None,
            });
        };

        let threads = if len - body < PARALLEL_MIN {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 8)
        };
        let step = (len - body).div_ceil(threads as u64).max(1);
        let bounds: Vec<(u64, u64)> = (0..threads as u64)
            .map(|i| (body + i * step, (body + (i + 1) * step).min(len)))
            .filter(|(a, b)| a < b)
            .collect();
        let segments: Vec<std::io::Result<Segment>> = std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| {
                    let file = &file;
                    s.spawn(move || scan_segment(file, a, b, len, i == 0))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(std::io::Error::other("an indexing thread panicked"))
                    })
                })
                .collect()
        });

        let mut index = Index {
            path: path.to_path_buf(),
            file,
            header,
            version,
            root_hash,
            offsets: Vec::new(),
            ats: Vec::new(),
            kinds: Vec::new(),
            torn_tail: None,
            stopped: None,
        };
        let mut end = body;
        for seg in segments {
            let seg = seg.map_err(|e| TranscriptError::Bad {
                path: p.clone(),
                line: index.ats.len() + 2,
                reason: format!("read error: {e}"),
            })?;
            index.offsets.extend_from_slice(&seg.offsets);
            index.ats.extend_from_slice(&seg.ats);
            index.kinds.extend_from_slice(&seg.kinds);
            end = seg.end;
            if let Some((_, reason)) = seg.stopped {
                let line = index.ats.len() + 2;
                let reason = if seg.too_long { too_long(line) } else { reason };
                index.stopped = Some(format!("{p}:{line}: {reason}"));
                break;
            }
            if let Some(t) = seg.torn_tail {
                index.torn_tail = Some(format!("line {} {t}", index.ats.len() + 2));
                break;
            }
        }
        index.offsets.push(end);
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many events are indexed.
    pub fn len(&self) -> usize {
        self.ats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ats.is_empty()
    }

    /// The hash of event line `i` (0-based) as the next record's `prev` must carry it.
    pub fn record_hash(&self, i: usize) -> std::io::Result<String> {
        let (Some(&from), Some(&to)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
            return Err(std::io::Error::other(format!(
                "no event line {i} in the index"
            )));
        };
        let mut buf = vec![0u8; (to - from) as usize];
        self.file.read_exact_at(&mut buf, from)?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        Ok(super::line_hash(&buf))
    }

    /// Every event's time, in file order.
    pub fn times(&self) -> &[Ts] {
        &self.ats
    }

    /// Every event's kind, in file order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The transcript's size in bytes up to the last indexed line.
    pub fn bytes(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// How many events happened at or before `t` (the position of the time cursor).
    pub fn count_at_or_before(&self, t: Ts) -> usize {
        self.ats.partition_point(|&a| a <= t)
    }

    /// Parses the events in `range` (indexes into the file's event order).
    pub fn events(&self, range: Range<usize>) -> Result<Vec<Event>, TranscriptError> {
        let range = range.start.min(self.len())..range.end.min(self.len());
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let from = self.offsets[range.start];
        let to = self.offsets[range.end];
        let mut buf = vec![0u8; (to - from) as usize];
        let bad = |line: usize, reason: String| TranscriptError::Bad {
            path: self.path.display().to_string(),
            line,
            reason,
        };
        self.file.read_exact_at(&mut buf, from).map_err(|e| {
            bad(
                range.start + 2,
                format!("read error: {e} (was the file changed while open?)"),
            )
        })?;
        let mut out = Vec::with_capacity(range.len());
        for (i, line) in buf.split(|&b| b == b'\n').take(range.len()).enumerate() {
            let rec: EventLineIn = serde_json::from_slice(line).map_err(|e| {
                bad(
                    range.start + i + 2,
                    format!("not a valid record: {e} (run `cutover verify` for details)"),
                )
            })?;
            out.push(rec.event);
        }
        Ok(out)
    }
}

/// Indexes the lines that start in `[start, end)`; the last may run past `end`.
fn scan_segment(
    file: &File,
    start: u64,
    end: u64,
    len: u64,
    first: bool,
) -> std::io::Result<Segment> {
    let mut seg = Segment {
        offsets: Vec::new(),
        ats: Vec::new(),
        kinds: Vec::new(),
        end: start,
        torn_tail: None,
        stopped: None,
        too_long: false,
    };
    // A segment other than the first starts at the first line beginning at or after `start`.
    let mut pos = if first { start } else { start - 1 };
    let mut buf = vec![0u8; CHUNK];
    let mut carry: Vec<u8> = Vec::new();
    let mut line_start = pos;
    let mut skipping = !first;
    loop {
        if !skipping && carry.is_empty() && line_start >= end {
            break;
        }
        let n = if pos < len {
            let want = CHUNK.min((len - pos) as usize);
            file.read_at(&mut buf[..want], pos)?
        } else {
            0
        };
        if n == 0 {
            // End of file: whatever is left is a line without its newline.
            if !carry.is_empty() && !skipping {
                let line = std::mem::take(&mut carry);
                match index_line(&line) {
                    Some((at, kind)) => {
                        seg.offsets.push(line_start);
                        seg.ats.push(at);
                        seg.kinds.push(kind);
                        seg.end = len;
                    }
                    None => {
                        seg.torn_tail = Some(format!(
                            "is cut short ({} bytes, no newline): a crash mid-write; ignored",
                            line.len()
                        ));
                    }
                }
            }
            break;
        }
        let chunk = &buf[..n];
        let mut i = 0usize;
        while i < n {
            let Some(nl) = memchr::memchr(b'\n', &chunk[i..]) else {
                carry.extend_from_slice(&chunk[i..]);
                if carry.len() > MAX_LINE {
                    if skipping {
                        // The segment before this one reports the long line.
                        return Ok(seg);
                    }
                    seg.stopped = Some((line_start, String::new()));
                    seg.too_long = true;
                    return Ok(seg);
                }
                break;
            };
            let nl_abs = pos + (i + nl) as u64;
            if skipping {
                skipping = false;
                carry.clear();
                line_start = nl_abs + 1;
                i += nl + 1;
                if line_start >= end {
                    return Ok(seg);
                }
                continue;
            }
            let line: &[u8] = if carry.is_empty() {
                &chunk[i..i + nl]
            } else {
                carry.extend_from_slice(&chunk[i..i + nl]);
                &carry
            };
            match index_line(line) {
                Some((at, kind)) => {
                    seg.offsets.push(line_start);
                    seg.ats.push(at);
                    seg.kinds.push(kind);
                    seg.end = nl_abs + 1;
                }
                None => {
                    let reason = match serde_json::from_slice::<EventLineIn>(line) {
                        Err(e) => {
                            format!("not a valid record: {e} (run `cutover verify` for details)")
                        }
                        Ok(_) => "not a valid record (run `cutover verify` for details)".into(),
                    };
                    seg.stopped = Some((line_start, reason));
                    return Ok(seg);
                }
            }
            carry.clear();
            line_start = nl_abs + 1;
            i += nl + 1;
            if line_start >= end {
                return Ok(seg);
            }
        }
        pos += n as u64;
    }
    Ok(seg)
}

/// The time and kind of one record line: read from the record's fixed layout when it has
/// it (what the recorder writes), else by parsing the whole record.
pub(super) fn index_line(line: &[u8]) -> Option<(Ts, Kind)> {
    if let Some(fast) = fast_at_kind(line) {
        return Some(fast);
    }
    let rec: EventLineIn = serde_json::from_slice(line).ok()?;
    Some((rec.event.at(), Kind::of(&rec.event)))
}

fn fast_at_kind(line: &[u8]) -> Option<(Ts, Kind)> {
    // The recorder writes `{"seq":N,"prev":"<64 hex>","event":{"type":"name","at":T,...}}`:
    // walk that layout by offsets; anything else takes the parsing path.
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(b",\"prev\":\"")?;
    let rest = rest.get(64..)?.strip_prefix(b"\",\"event\":{\"type\":\"")?;
    if line.last() != Some(&b'}') {
        return None;
    }
    let name_len = memchr::memchr(b'"', rest)?;
    let name = &rest[..name_len];
    let rest = rest[name_len + 1..].strip_prefix(b",\"at\":")?;
    let (neg, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 18 || !matches!(digits.get(n), Some(b',') | Some(b'}')) {
        return None;
    }
    let mut at: i64 = 0;
    for &d in &digits[..n] {
        at = at * 10 + i64::from(d - b'0');
    }
    if neg {
        at = -at;
    }
    let kind = match name {
        b"tick" => Kind::Tick,
        b"observed" => Kind::Reading,
        b"world_measured" => Kind::Measure,
        b"source_failed" | b"note" | b"peer_joined" | b"peer_left" | b"fault_changed" => {
            Kind::Other
        }
        // The rare rest: parse to classify exactly as the fold would.
        _ => return None,
    };
    Some((at, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recorder, tests_support::header};

    #[test]
    fn index_matches_a_full_read_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), header()).unwrap();
        let mut all = Vec::new();
        for i in 0..3000i64 {
            let ev = match i % 7 {
                0 => Event::StepConfirmed {
                    at: i,
                    step: "s".into(),
                    by: "me".into(),
                },
                1 => Event::Note {
                    at: i,
                    text: "x".repeat((i % 50) as usize),
                },
                _ => Event::Tick { at: i },
            };
            all.push(ev);
        }
        r.append(&all).unwrap();
        let len = std::fs::metadata(r.path()).unwrap().len();
        let file = File::open(r.path()).unwrap();
        // Force several segments on a small file by scanning it by hand in pieces.
        let body = {
            let text = std::fs::read(r.path()).unwrap();
            memchr::memchr(b'\n', &text).unwrap() as u64 + 1
        };
        let mut offsets = Vec::new();
        let mut kinds = Vec::new();
        let parts = 7u64;
        let step = (len - body).div_ceil(parts);
        for i in 0..parts {
            let a = body + i * step;
            let b = (a + step).min(len);
            if a >= b {
                continue;
            }
            let seg = scan_segment(&file, a, b, len, i == 0).unwrap();
            assert!(seg.stopped.is_none() && seg.torn_tail.is_none());
            offsets.extend(seg.offsets);
            kinds.extend(seg.kinds);
        }
        assert_eq!(offsets.len(), 3000);
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(kinds[0], Kind::Step);
        assert_eq!(kinds[1], Kind::Other);
        assert_eq!(kinds[2], Kind::Tick);

        let idx = Index::open(r.path()).unwrap();
        assert_eq!(idx.len(), 3000);
        assert_eq!(idx.events(0..3000).unwrap(), all);
        assert_eq!(idx.events(2990..2995).unwrap(), all[2990..2995].to_vec());
        assert_eq!(idx.count_at_or_before(10), 11);
    }

    #[test]
    fn a_torn_tail_ends_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), header()).unwrap();
        r.append(&(0..5).map(|i| Event::Tick { at: i }).collect::<Vec<_>>())
            .unwrap();
        let mut text = std::fs::read(r.path()).unwrap();
        text.truncate(text.len() - 5);
        std::fs::write(r.path(), &text).unwrap();
        let idx = Index::open(r.path()).unwrap();
        assert_eq!(idx.len(), 4);
        assert!(
            idx.torn_tail
                .as_deref()
                .unwrap()
                .starts_with("line 6 is cut short")
        );
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;
    use crate::EventLineOut;
    use cutover_core::event::{Direction, Reading, SourceKind, WorldMeasures};

    /// The layout shortcut and the full parse agree on every kind of event.
    #[test]
    fn the_fast_path_classifies_like_the_fold() {
        let s = |x: &str| x.to_string();
        let events = vec![
            Event::SessionStarted {
                at: 1,
                mode: s("m").into(),
                operator: s("o"),
            },
            Event::Tick { at: -5 },
            Event::Observed {
                at: 2,
                reading: Reading::Heartbeat {
                    observed_at: 1,
                    lag_s: 0.5,
                },
            },
            Event::SourceFailed {
                at: 3,
                source: SourceKind::Dns,
                error: s("e"),
            },
            Event::StepConfirmRequested {
                at: 4,
                step: s("a"),
                by: s("b"),
            },
            Event::StepConfirmCancelled {
                at: 4,
                step: s("a"),
                by: s("b"),
            },
            Event::StepConfirmRejected {
                at: 4,
                step: s("a"),
                by: s("b"),
                reason: s("r"),
            },
            Event::StepConfirmed {
                at: 5,
                step: s("a"),
                by: s("b"),
            },
            Event::StepApproved {
                at: 5,
                step: s("a"),
                by: s("b"),
                seen: Some(cutover_core::event::Evidence {
                    seq: 4,
                    head: Some(s("ab")),
                    gates: vec![cutover_core::event::GateSeen {
                        gate: s("x == 1"),
                        state: cutover_core::state::GateState::Green,
                    }],
                    signature: None,
                }),
            },
            Event::ActionStarted {
                at: 6,
                step: s("a"),
                direction: Direction::Do,
                description: s("d"),
            },
            Event::ActionOutput {
                at: 6,
                step: s("a"),
                direction: Direction::Do,
                line: s("l"),
            },
            Event::ActionFinished {
                at: 7,
                step: s("a"),
                direction: Direction::Do,
                ok: false,
                message: s("m"),
            },
            Event::ActionFinished {
                at: 7,
                step: s("a"),
                direction: Direction::Undo,
                ok: true,
                message: s("m"),
            },
            Event::StepTimedOut {
                at: 8,
                step: s("a"),
                reason: s("r"),
            },
            Event::StepResolved {
                at: 8,
                step: s("a"),
                done: true,
                by: s("b"),
            },
            Event::RollbackRequested { at: 9, by: s("b") },
            Event::RollbackCancelled { at: 9, by: s("b") },
            Event::RollbackConfirmed {
                at: 9,
                by: s("b"),
                reason: s("r"),
            },
            Event::FaultChanged {
                at: 10,
                fault: s("f"),
                active: true,
                detail: s("d"),
            },
            Event::WorldMeasured {
                at: 11,
                measures: WorldMeasures::default(),
            },
            Event::PeerJoined {
                at: 12,
                peer: s("p"),
                role: Some(cutover_core::event::PeerRole::Observer),
            },
            Event::PeerLeft {
                at: 12,
                peer: s("p"),
            },
            Event::Note {
                at: 13,
                text: s("n"),
            },
            Event::SessionEnded {
                at: 14,
                reason: s("r"),
            },
        ];
        let prev = "0".repeat(64);
        for ev in &events {
            let line = serde_json::to_vec(&EventLineOut {
                seq: 42,
                prev: &prev,
                event: ev,
            })
            .unwrap();
            let want = (ev.at(), Kind::of(ev));
            assert_eq!(index_line(&line), Some(want), "{}", ev.name());
            if let Some(fast) = fast_at_kind(&line) {
                assert_eq!(fast, want, "{}", ev.name());
            }
        }
        assert_eq!(Kind::of(&events[11]), Kind::Alarm);
        assert_eq!(Kind::of(&events[14]), Kind::Step);
    }
}
