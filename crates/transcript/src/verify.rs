//! `cutover verify`: audits a transcript's hash chain and schema and names the first bad
//! line and why — edited, deleted, inserted, reordered, truncated, unknown version — telling
//! them apart where the chain leaves evidence:
//!
//! - an edited line changes its own hash, so the *next* line's `prev` no longer matches it
//!   (while the next line's `seq` still follows);
//! - a deleted line leaves a gap in `seq` and a `prev` that matches no line in the file;
//! - an inserted line is jumped over: the line after it chains to the line before it;
//! - a reordered line's `prev` names a line that comes later in the file (or its `seq` goes
//!   back);
//! - a truncated file ends in a line without its newline that is not a complete record.
//!
//! What a chain cannot show: the last lines cut off at a line boundary, or the last line
//! edited. The report says when the file does not end with `session_ended`, and prints the
//! last hash so it can be compared with a copy kept elsewhere (a resumed session's header
//! keeps the hash of the file it continues, and verify checks that link).
//!
//! Exit codes for the CLI: 0 intact, 1 tampered or damaged, 2 unreadable.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use cutover_core::event::{Event, Ts};

use super::{
    ChainFields, EventLineIn, FORMAT, Header, HeaderLine, HeaderProbe, MIN_VERSION, Reader,
    VERSION, line_hash,
};

/// Why a line is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line's content changed after it was written.
    Edited,
    /// Records are missing.
    Deleted,
    /// A line was added that the recorder did not write there.
    Inserted,
    /// Lines are out of the order they were written in.
    Reordered,
    /// The file ends in the middle of a line.
    Truncated,
    /// The header names a format version this program does not know.
    UnknownVersion,
    /// A resumed session does not match the file it says it continues.
    LinkBroken,
    /// Not a transcript, or it cannot be read at all.
    Unreadable,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::UnknownVersion => "unknown version",
            ProblemKind::LinkBroken => "link broken",
            ProblemKind::Unreadable => "unreadable",
        }
    }
}

/// The first bad line and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    pub kind: ProblemKind,
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every line chains and parses.
    Intact,
    /// Tampered with or damaged: the first bad line.
    Damaged(Problem),
    /// Not a transcript this program can read.
    Unreadable(Problem),
}

/// What `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub path: PathBuf,
    pub verdict: Verdict,
    pub version: Option<u32>,
    pub plan_name: Option<String>,
    pub operator: Option<String>,
    pub mode: Option<String>,
    /// Lines in the file, the header included.
    pub lines: usize,
    /// Event records that chain intact from the header, up to the first problem.
    pub intact_records: u64,
    /// Seq and hash of the last intact record (the header's hash when there is none).
    pub last_seq: u64,
    pub last_hash: String,
    pub first_at: Option<Ts>,
    pub last_at: Option<Ts>,
    /// Whether the intact part ends with `session_ended`.
    pub ended: bool,
    /// Further lines, after the first problem, that do not chain to the line before them.
    pub later_breaks: usize,
    /// Observations that are not failures (an interrupted session, a checked link).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// 0 intact, 1 tampered or damaged, 2 unreadable.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Verdict::Intact => 0,
            Verdict::Damaged(_) => 1,
            Verdict::Unreadable(_) => 2,
        }
    }

    pub fn is_intact(&self) -> bool {
        self.verdict == Verdict::Intact
    }

    /// The first problem, if any.
    pub fn problem(&self) -> Option<&Problem> {
        match &self.verdict {
            Verdict::Intact => None,
            Verdict::Damaged(p) | Verdict::Unreadable(p) => Some(p),
        }
    }

    /// The report for a terminal: a verdict line naming file:line, then details.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let p = self.path.display();
        match &self.verdict {
            Verdict::Intact => {
                s.push_str(&format!(
                    "{p}: INTACT: {} record(s) chain from the header, version {}\n",
                    self.intact_records,
                    self.version.unwrap_or(0)
                ));
            }
            Verdict::Damaged(pr) => {
                s.push_str(&format!(
                    "{p}:{}: {}: {}\n",
                    pr.line,
                    pr.kind.as_str().to_uppercase(),
                    pr.detail
                ));
                s.push_str(&format!(
                    "  the first {} record(s) chain intact (up to seq {})\n",
                    self.intact_records, self.last_seq
                ));
                if self.later_breaks > 0 {
                    s.push_str(&format!(
                        "  {} more line(s) after it do not chain to the line before them\n",
                        self.later_breaks
                    ));
                }
            }
            Verdict::Unreadable(pr) => {
                // Line 0: the file itself (it could not be opened).
                let at = if pr.line == 0 {
                    String::new()
                } else {
                    format!(":{}", pr.line)
                };
                let kind = match pr.kind {
                    ProblemKind::Unreadable => String::new(),
                    k => format!(" ({})", k.as_str()),
                };
                s.push_str(&format!("{p}{at}: UNREADABLE{kind}: {}\n", pr.detail));
            }
        }
        if let Some(plan) = &self.plan_name {
            s.push_str(&format!(
                "  plan {plan}, mode {}, operator {}\n",
                self.mode.as_deref().unwrap_or("?"),
                self.operator.as_deref().unwrap_or("?")
            ));
        }
        if let (Some(a), Some(b)) = (self.first_at, self.last_at) {
            s.push_str(&format!("  from {} to {}\n", fmt_ts(a), fmt_ts(b)));
        }
        if self.version.is_some() {
            s.push_str(&format!(
                "  last intact hash: {} (seq {})\n",
                self.last_hash, self.last_seq
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }

    /// The report as JSON (for scripts and the audit file).
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn fmt_ts(t: Ts) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.to_string())
}

/// What pass one keeps of each line: 24 bytes, so a 1.7-million-line file costs ~40 MB.
#[derive(Clone, Copy)]
struct LineInfo {
    /// The first 8 bytes of the line's SHA-256.
    h64: u64,
    /// The record's `seq`, if its chain fields parse.
    seq: Option<u64>,
    /// The first 8 bytes of the record's `prev`.
    prev64: Option<u64>,
}

fn h64_of_hex(hex_str: &str) -> Option<u64> {
    let bytes = hex::decode(hex_str.get(..16)?).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Why the first bad line is bad, before classification.
enum Cause {
    /// Not a record (JSON or chain fields), or not a valid event.
    Unparsable {
        complete: bool,
        error: String,
        schema: bool,
    },
    /// `prev` does not match the previous line.
    Chain,
    /// `prev` matches but `seq` does not follow.
    Seq { found: u64, expected: u64 },
}

fn unreadable(line: usize, kind: ProblemKind, detail: String) -> Verdict {
    Verdict::Unreadable(Problem { line, kind, detail })
}

fn problem(line: usize, kind: ProblemKind, detail: String) -> Problem {
    Problem { line, kind, detail }
}

impl VerifyReport {
    /// A report with nothing found yet: intact until a line says otherwise.
    fn new(path: &Path) -> Self {
        VerifyReport {
            path: path.to_path_buf(),
            verdict: Verdict::Intact,
            version: None,
            plan_name: None,
            operator: None,
            mode: None,
            lines: 0,
            intact_records: 0,
            last_seq: 0,
            last_hash: String::new(),
            first_at: None,
            last_at: None,
            ended: false,
            later_breaks: 0,
            notes: Vec::new(),
        }
    }
}

/// Audits the transcript at `path`. Never fails: every problem is in the report.
pub fn verify(path: &Path) -> VerifyReport {
    let mut report = VerifyReport::new(path);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            report.verdict = unreadable(
                0,
                ProblemKind::Unreadable,
                format!("cannot open: {e} (check the path and its permissions)"),
            );
            return report;
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let Some((header, header_hash)) = read_header(&mut reader, &mut report) else {
        return report;
    };
    let Some(scan) = scan_records(&mut reader, header_hash, &mut report) else {
        return report;
    };
    conclude(path, header, scan, report)
}

/// Line 1: the header and its hash, or `None` when the report already says why nothing
/// after it can be checked. A header whose plan was edited is returned (and reported):
/// the records after it still chain to it.
fn read_header(reader: &mut impl BufRead, report: &mut VerifyReport) -> Option<(Header, String)> {
    let mut raw = Vec::new();
    match reader.read_until(b'\n', &mut raw) {
        Ok(0) => {
            report.verdict = Verdict::Damaged(Problem {
                line: 1,
                kind: ProblemKind::Truncated,
                detail: "the file is empty: even the header is gone".into(),
            });
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            report.verdict = unreadable(1, ProblemKind::Unreadable, format!("read error: {e}"));
            return None;
        }
    }
    report.lines = 1;
    let complete = raw.last() == Some(&b'\n');
    let head = raw.strip_suffix(b"\n").unwrap_or(&raw);
    if let Some(verdict) = probe_header(head) {
        report.verdict = verdict;
        return None;
    }
    let header = parse_header(head, complete, report)?;
    let header_hash = line_hash(head);
    report.last_hash = header_hash.clone();
    Some((header, header_hash))
}

/// Refuses another format or a version this program does not know, before the rest of the
/// header (whose shape may differ in that version) is parsed.
fn probe_header(head: &[u8]) -> Option<Verdict> {
    match serde_json::from_slice::<HeaderProbe>(head) {
        Ok(probe)
            if probe.format == FORMAT && !(MIN_VERSION..=VERSION).contains(&probe.version) =>
        {
            Some(unreadable(
                1,
                ProblemKind::UnknownVersion,
                super::unknown_version(probe.version),
            ))
        }
        Ok(probe) if probe.format != FORMAT => Some(unreadable(
            1,
            ProblemKind::Unreadable,
            format!(
                "format is \"{}\", expected \"{FORMAT}\": not a cutover transcript",
                probe.format
            ),
        )),
        _ => None,
    }
}

/// Parses the header into the report; `None` (with the verdict set) when it does not parse.
fn parse_header(head: &[u8], complete: bool, report: &mut VerifyReport) -> Option<Header> {
    match serde_json::from_slice::<HeaderLine>(head) {
        Ok(h) => {
            report.version = Some(h.version);
            report.plan_name = Some(h.header.plan_name.clone());
            report.operator = Some(h.header.operator.clone());
            report.mode = Some(h.header.mode.to_string());
            if h.header.plan_hash != hex::encode(Sha256::digest(h.header.plan_text.as_bytes())) {
                report.verdict = Verdict::Damaged(Problem {
                    line: 1,
                    kind: ProblemKind::Edited,
                    detail:
                        "the header's plan text does not match its plan_hash: the plan was edited"
                            .into(),
                });
            }
            Some(h.header)
        }
        Err(e) => {
            let ours = memchr::memmem::find(head, FORMAT.as_bytes()).is_some();
            report.verdict = if !complete && ours {
                Verdict::Damaged(Problem {
                    line: 1,
                    kind: ProblemKind::Truncated,
                    detail: format!("the header is cut short ({} bytes, no newline)", head.len()),
                })
            } else if ours {
                Verdict::Damaged(Problem {
                    line: 1,
                    kind: ProblemKind::Edited,
                    detail: format!("the header is not a valid transcript header: {e}"),
                })
            } else {
                unreadable(
                    1,
                    ProblemKind::Unreadable,
                    format!("not a cutover transcript: the first line is not its header ({e})"),
                )
            };
            None
        }
    }
}

/// What pass one has seen so far.
struct Scan {
    /// One entry per line, the header's first.
    info: Vec<LineInfo>,
    /// Hash and seq of the last line that chained.
    prev_full: String,
    prev_seq: u64,
    /// The first bad line (1-based) and why.
    first: Option<(usize, Cause)>,
    last_event: Option<Event>,
}

/// Pass one: every line's hash and chain fields; the first line that breaks the chain,
/// the sequence or the schema. `None` when a read error made the file unreadable.
fn scan_records(
    reader: &mut impl BufRead,
    header_hash: String,
    report: &mut VerifyReport,
) -> Option<Scan> {
    let mut scan = Scan {
        info: vec![LineInfo {
            h64: h64_of_hex(&header_hash).unwrap_or(0),
            seq: Some(0),
            prev64: None,
        }],
        prev_full: header_hash,
        prev_seq: 0,
        first: None,
        last_event: None,
    };
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                report.verdict = unreadable(
                    report.lines + 1,
                    ProblemKind::Unreadable,
                    format!("read error: {e}"),
                );
                return None;
            }
        }
        report.lines += 1;
        scan.line(&raw, report);
    }
    if scan.first.is_none() {
        report.last_hash = scan.prev_full.clone();
    }
    report.ended = matches!(scan.last_event, Some(Event::SessionEnded { .. }));
    Some(scan)
}

impl Scan {
    /// Takes line number `report.lines`, `raw` with its newline if it has one.
    fn line(&mut self, raw: &[u8], report: &mut VerifyReport) {
        let lineno = report.lines;
        let complete = raw.last() == Some(&b'\n');
        let line = if complete { &raw[..raw.len() - 1] } else { raw };
        let full = line_hash(line);
        // The whole record once; only a record that fails is parsed again for its chain
        // fields, to tell a schema problem from a broken line.
        let parsed = if self.first.is_some() {
            Err(None)
        } else {
            serde_json::from_slice::<EventLineIn>(line).map_err(Some)
        };
        let chain: Option<ChainFields> = match &parsed {
            Ok(rec) => Some(ChainFields {
                seq: rec.seq,
                prev: rec.prev.clone(),
            }),
            Err(_) => serde_json::from_slice(line).ok(),
        };
        self.info.push(LineInfo {
            h64: h64_of_hex(&full).unwrap_or(0),
            seq: chain.as_ref().map(|c| c.seq),
            prev64: chain.as_ref().and_then(|c| h64_of_hex(&c.prev)),
        });
        if self.first.is_some() {
            let prev_h = self.info[lineno - 2].h64;
            if self.info[lineno - 1].prev64 != Some(prev_h) {
                report.later_breaks += 1;
            }
            return;
        }
        match self.cause(chain, parsed, complete, report) {
            None => {
                self.prev_full = full;
                self.prev_seq = report.last_seq;
            }
            Some(c) => {
                self.first = Some((lineno, c));
                report.last_hash = self.prev_full.clone();
            }
        }
    }

    /// Why a line is the first bad one; `None` when it chains, and then it is counted.
    fn cause(
        &mut self,
        chain: Option<ChainFields>,
        parsed: Result<EventLineIn, Option<serde_json::Error>>,
        complete: bool,
        report: &mut VerifyReport,
    ) -> Option<Cause> {
        match (&chain, parsed) {
            (_, Ok(rec)) if rec.prev != self.prev_full => Some(Cause::Chain),
            (_, Ok(rec)) if rec.seq != self.prev_seq + 1 => Some(Cause::Seq {
                found: rec.seq,
                expected: self.prev_seq + 1,
            }),
            (_, Ok(rec)) => {
                report.intact_records += 1;
                report.last_seq = rec.seq;
                report.first_at.get_or_insert(rec.event.at());
                report.last_at = Some(rec.event.at());
                self.last_event = Some(rec.event);
                None
            }
            (Some(c), Err(_)) if c.prev != self.prev_full => Some(Cause::Chain),
            (chain, Err(e)) => Some(Cause::Unparsable {
                complete,
                error: e.map(|e| e.to_string()).unwrap_or_default(),
                schema: chain.is_some(),
            }),
        }
    }
}

/// The verdict after pass one, then what an intact file still deserves: the note on an
/// interrupted session and the check of the file a resumed session continues.
fn conclude(path: &Path, header: Header, scan: Scan, mut report: VerifyReport) -> VerifyReport {
    if let Some((i, cause)) = scan.first {
        // A header found edited already is the first bad line.
        if report.verdict == Verdict::Intact {
            report.verdict = Verdict::Damaged(classify(&scan.info, i, cause, report.lines));
        }
        return report;
    }
    if report.verdict != Verdict::Intact {
        return report;
    }
    if !report.ended {
        report.notes.push(
            "the file does not end with session_ended: the session was interrupted (crash, kill -9, lost terminal) \
             or its last records were cut off at a line boundary, which a hash chain cannot show; \
             compare the last hash with a copy kept elsewhere"
                .into(),
        );
    }
    if let Some(from) = header.resumed_from {
        check_link(path, &from, &mut report);
    }
    report
}

/// Names the first bad line and why, from the evidence around line `i` (1-based).
fn classify(info: &[LineInfo], i: usize, cause: Cause, lines: usize) -> Problem {
    match cause {
        Cause::Unparsable {
            complete,
            error,
            schema,
        } => classify_unparsable(info, i, lines, complete, &error, schema),
        Cause::Seq { found, expected } => classify_seq(info, i, found, expected),
        Cause::Chain => classify_chain(info, i),
    }
}

/// Line `n` (1-based).
fn line_at(info: &[LineInfo], n: usize) -> Option<&LineInfo> {
    info.get(n - 1)
}

/// Does the next line chain over line i to line i-1? Then line i was inserted.
fn jumped_over(info: &[LineInfo], i: usize) -> bool {
    match (line_at(info, i + 1), line_at(info, i - 1)) {
        (Some(next), Some(before)) => next.prev64 == Some(before.h64),
        _ => false,
    }
}

/// Line `i` is not a record: cut short at the end, inserted, or edited.
fn classify_unparsable(
    info: &[LineInfo],
    i: usize,
    lines: usize,
    complete: bool,
    error: &str,
    schema: bool,
) -> Problem {
    if !complete && i == lines {
        return problem(
            i,
            ProblemKind::Truncated,
            format!(
                "line {i} is cut short (no newline, not a complete record): the file was truncated \
                 (a crash mid-write, or cut by hand); the records before it are intact"
            ),
        );
    }
    if jumped_over(info, i) {
        return problem(
            i,
            ProblemKind::Inserted,
            format!(
                "line {i} was inserted: it is not a record, and line {} chains to line {}",
                i + 1,
                i - 1
            ),
        );
    }
    let what = if schema {
        "does not match the record schema"
    } else {
        "is not a valid record"
    };
    problem(
        i,
        ProblemKind::Edited,
        format!("line {i} was edited: it {what}: {error}"),
    )
}

/// Line `i` chains to the line before it but its seq does not follow.
fn classify_seq(info: &[LineInfo], i: usize, found: u64, expected: u64) -> Problem {
    if jumped_over(info, i) {
        return problem(
            i,
            ProblemKind::Inserted,
            format!(
                "line {i} was inserted: line {} chains to line {} over it",
                i + 1,
                i - 1
            ),
        );
    }
    if found < expected {
        // It chains to the line before it, so it was written there: its seq was changed.
        problem(
            i,
            ProblemKind::Edited,
            format!(
                "line {i} was edited: its seq is {found} where {expected} was expected, yet it chains to line {}",
                i - 1
            ),
        )
    } else {
        problem(
            i,
            ProblemKind::Edited,
            format!(
                "line {i} was edited: its seq jumps from {} to {found}, yet it chains to line {}",
                expected - 1,
                i - 1
            ),
        )
    }
}

/// Line `i`'s `prev` does not match line `i - 1`: told apart by the line it does chain to,
/// if any, and then by its seq.
fn classify_chain(info: &[LineInfo], i: usize) -> Problem {
    let me = info[i - 1];
    if let Some(found) = inserted_just_before(info, i, me) {
        return found;
    }
    let by_hash: HashMap<u64, usize> = info
        .iter()
        .enumerate()
        .map(|(n, l)| (l.h64, n + 1))
        .collect();
    if let Some(&j) = me.prev64.and_then(|h| by_hash.get(&h))
        && let Some(found) = chains_to_another_line(info, &by_hash, i, j)
    {
        return found;
    }
    classify_by_seq(info, i, me)
}

/// Line `i` is a copy of the line before it, or line `i - 1` was jumped over.
fn inserted_just_before(info: &[LineInfo], i: usize, me: LineInfo) -> Option<Problem> {
    if me.h64 == info[i - 2].h64 {
        return Some(problem(
            i,
            ProblemKind::Inserted,
            format!("line {i} was inserted: it is a copy of line {}", i - 1),
        ));
    }
    if i >= 3 && me.prev64 == Some(info[i - 3].h64) {
        return Some(problem(
            i - 1,
            ProblemKind::Inserted,
            format!(
                "line {} was inserted: line {i} chains to line {} over it",
                i - 1,
                i - 2
            ),
        ));
    }
    None
}

/// Line `i` was written right after line `j`: later in the file (reordered), or earlier
/// with lines moved or inserted between them.
fn chains_to_another_line(
    info: &[LineInfo],
    by_hash: &HashMap<u64, usize>,
    i: usize,
    j: usize,
) -> Option<Problem> {
    if j > i {
        return Some(problem(
            i,
            ProblemKind::Reordered,
            format!(
                "line {i} is out of order: it was written right after line {j}, which now comes later"
            ),
        ));
    }
    if j == i {
        return None;
    }
    // Lines j+1..i-1 sit between a record and the one written after it.
    let moved = (j + 1..i).any(|n| {
        let l = info[n - 1];
        let chains_elsewhere = l
            .prev64
            .and_then(|h| by_hash.get(&h))
            .is_some_and(|&m| m + 1 != n);
        let referenced = info.iter().any(|o| o.prev64 == Some(l.h64));
        chains_elsewhere || referenced
    });
    let kind = if moved {
        ProblemKind::Reordered
    } else {
        ProblemKind::Inserted
    };
    let verb = if moved {
        "were moved here"
    } else {
        "were inserted"
    };
    Some(problem(
        j + 1,
        kind,
        format!(
            "lines {}..{} {verb}: line {i} was written right after line {j}",
            j + 1,
            i - 1
        ),
    ))
}

/// Line `i`'s `prev` matches no line: a gap in seq is a deletion, a seq going back a move;
/// a seq that follows means an edit.
fn classify_by_seq(info: &[LineInfo], i: usize, me: LineInfo) -> Problem {
    let before_seq = info[i - 2].seq;
    match (me.seq, before_seq) {
        (Some(s), Some(b)) if s > b + 1 => problem(
            i,
            ProblemKind::Deleted,
            if s == b + 2 {
                format!(
                    "record seq {} was deleted before line {i}: line {i} (seq {s}) follows a line that is not in the file",
                    b + 1
                )
            } else {
                format!(
                    "records seq {}..{} were deleted before line {i}: line {i} (seq {s}) follows a line that is not in the file",
                    b + 1,
                    s - 1
                )
            },
        ),
        (Some(s), Some(b)) if s <= b => problem(
            i,
            ProblemKind::Reordered,
            format!(
                "line {i} is out of order: its seq {s} goes back (the line before it has seq {b})"
            ),
        ),
        _ => classify_edit(info, i, me),
    }
}

/// Seq follows: either line i-1 changed (its hash no longer matches), or line i's own prev
/// was changed — then line i+1 breaks too.
fn classify_edit(info: &[LineInfo], i: usize, me: LineInfo) -> Problem {
    let next_breaks = line_at(info, i + 1).is_some_and(|n| n.prev64 != Some(me.h64));
    if next_breaks {
        problem(
            i,
            ProblemKind::Edited,
            format!(
                "line {i} was edited: its prev matches no line, and line {} no longer chains to it",
                i + 1
            ),
        )
    } else {
        let what = if i - 1 == 1 {
            "the header (line 1)".to_string()
        } else {
            format!("line {}", i - 1)
        };
        problem(
            i - 1,
            ProblemKind::Edited,
            format!("{what} was edited: line {i} records a different hash for it"),
        )
    }
}

/// Checks that a resumed session continues the file it names: that file's record at
/// `last_seq` has `last_hash`, and the history re-recorded here equals its events.
fn check_link(path: &Path, from: &super::ResumedFrom, report: &mut VerifyReport) {
    let recorded = PathBuf::from(&from.file);
    let sibling = path
        .parent()
        .zip(recorded.file_name())
        .map(|(dir, name)| dir.join(name));
    let old = [Some(recorded.clone()), sibling]
        .into_iter()
        .flatten()
        .find(|p| p.exists());
    let Some(old) = old else {
        report.notes.push(format!(
            "continues {} (seq {}, hash {}), which is not here: verify it separately",
            from.file, from.last_seq, from.last_hash
        ));
        return;
    };
    let broken = |detail: String| {
        Verdict::Damaged(Problem {
            line: 1,
            kind: ProblemKind::LinkBroken,
            detail,
        })
    };
    let (mut a, mut b) = match (Reader::open(&old), Reader::open(path)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            report.verdict = broken(format!(
                "cannot read {} to check the link: {e}",
                old.display()
            ));
            return;
        }
    };
    for seq in 1..=from.last_seq {
        let (ea, eb) = (a.next_event(), b.next_event());
        match (ea, eb) {
            (Ok(Some(x)), Ok(Some(y))) if x == y => {}
            (Ok(Some(_)), Ok(Some(_))) => {
                report.verdict = Verdict::Damaged(Problem {
                    line: seq as usize + 1,
                    kind: ProblemKind::Edited,
                    detail: format!(
                        "line {} (re-recorded history) differs from {}:{}: the history was changed",
                        seq + 1,
                        old.display(),
                        seq + 1
                    ),
                });
                return;
            }
            (Err(e), _) => {
                report.verdict = broken(format!(
                    "{} is damaged before seq {}: {e}",
                    old.display(),
                    from.last_seq
                ));
                return;
            }
            (Ok(None), _) => {
                report.verdict = broken(format!(
                    "{} ends at seq {} but this file continues it from seq {}: records were cut from it",
                    old.display(),
                    a.last_seq(),
                    from.last_seq
                ));
                return;
            }
            (_, _) => {
                report.verdict = broken(format!(
                    "this file holds less history than the {} records of {} it claims to continue",
                    from.last_seq,
                    old.display()
                ));
                return;
            }
        }
    }
    if a.last_hash() != from.last_hash {
        report.verdict = broken(format!(
            "{}'s record seq {} has hash {}, not {} as this file's header says: one of them was changed",
            old.display(),
            from.last_seq,
            a.last_hash(),
            from.last_hash
        ));
        return;
    }
    report.notes.push(format!(
        "continues {} at seq {} (hash matches, history re-recorded here is identical)",
        old.display(),
        from.last_seq
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recorder, tests_support::header};

    /// A transcript of `n` notes; returns its path (inside `dir`).
    fn write(dir: &Path, n: i64) -> PathBuf {
        let mut h = header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        let mut r = Recorder::create(dir, h).unwrap();
        let mut evs: Vec<Event> = (0..n)
            .map(|i| Event::Note {
                at: 1_700_000_000_000 + i * 1000,
                text: format!("note {i}"),
            })
            .collect();
        evs.push(Event::SessionEnded {
            at: 1_700_000_000_000 + n * 1000,
            reason: "done".into(),
        });
        r.append(&evs).unwrap();
        r.path().to_path_buf()
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn put(p: &Path, lines: &[String]) {
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }

    /// Verifies after `damage` and returns (line, kind).
    fn check(damage: impl FnOnce(&Path)) -> (usize, ProblemKind, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 10);
        assert!(verify(&p).is_intact(), "{}", verify(&p).render());
        damage(&p);
        let r = verify(&p);
        let pr = r
            .problem()
            .unwrap_or_else(|| panic!("no problem found: {}", r.render()))
            .clone();
        (pr.line, pr.kind, r.render())
    }

    #[test]
    fn intact_file_reports_its_records_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 10);
        let r = verify(&p);
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.intact_records, 11);
        assert!(r.ended);
        assert!(r.render().contains("INTACT"), "{}", r.render());
    }

    #[test]
    fn each_kind_of_damage_is_named_at_its_line() {
        // Lines: 1 header, 2..=11 notes 0..=9, 12 session_ended.
        let edit = check(|p| {
            let mut l = lines(p);
            l[4] = l[4].replace("note 3", "note X");
            put(p, &l);
        });
        assert_eq!((edit.0, edit.1), (5, ProblemKind::Edited), "{}", edit.2);

        let structural = check(|p| {
            let mut b = std::fs::read(p).unwrap();
            let pos = b.iter().position(|&c| c == b'\n').unwrap() + 3;
            b[pos] ^= 0x01;
            std::fs::write(p, b).unwrap();
        });
        assert_eq!(
            (structural.0, structural.1),
            (2, ProblemKind::Edited),
            "{}",
            structural.2
        );

        let deleted = check(|p| {
            let mut l = lines(p);
            l.remove(5);
            put(p, &l);
        });
        assert_eq!(
            (deleted.0, deleted.1),
            (6, ProblemKind::Deleted),
            "{}",
            deleted.2
        );
        assert!(deleted.2.contains("seq 5 was deleted"), "{}", deleted.2);

        let swapped = check(|p| {
            let mut l = lines(p);
            l.swap(6, 7);
            put(p, &l);
        });
        assert_eq!(
            (swapped.0, swapped.1),
            (7, ProblemKind::Reordered),
            "{}",
            swapped.2
        );

        let inserted = check(|p| {
            let mut l = lines(p);
            let copy = l[3].clone();
            l.insert(4, copy);
            put(p, &l);
        });
        assert_eq!(
            (inserted.0, inserted.1),
            (5, ProblemKind::Inserted),
            "{}",
            inserted.2
        );

        let garbage = check(|p| {
            let mut l = lines(p);
            l.insert(4, "{\"hello\":1}".into());
            put(p, &l);
        });
        assert_eq!(
            (garbage.0, garbage.1),
            (5, ProblemKind::Inserted),
            "{}",
            garbage.2
        );

        let truncated = check(|p| {
            let mut b = std::fs::read(p).unwrap();
            b.truncate(b.len() - 20);
            std::fs::write(p, b).unwrap();
        });
        assert_eq!(
            (truncated.0, truncated.1),
            (12, ProblemKind::Truncated),
            "{}",
            truncated.2
        );

        let header_edit = check(|p| {
            let mut l = lines(p);
            l[0] = l[0].replace("\"operator\":\"op\"", "\"operator\":\"mallory\"");
            put(p, &l);
        });
        assert_eq!(
            (header_edit.0, header_edit.1),
            (1, ProblemKind::Edited),
            "{}",
            header_edit.2
        );

        let seq_edit = check(|p| {
            let mut l = lines(p);
            l[6] = l[6].replacen("\"seq\":6", "\"seq\":9", 1);
            put(p, &l);
        });
        assert_eq!(
            (seq_edit.0, seq_edit.1),
            (7, ProblemKind::Edited),
            "{}",
            seq_edit.2
        );

        let first_gone = check(|p| {
            let mut l = lines(p);
            l.remove(1);
            put(p, &l);
        });
        assert_eq!(
            (first_gone.0, first_gone.1),
            (2, ProblemKind::Deleted),
            "{}",
            first_gone.2
        );
    }

    #[test]
    fn unknown_version_and_foreign_files_are_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 2);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replacen("\"version\":3", "\"version\":7", 1)).unwrap();
        let r = verify(&p);
        assert_eq!(r.exit_code(), 2);
        assert_eq!(r.problem().unwrap().kind, ProblemKind::UnknownVersion);
        assert!(
            r.render().contains(":1: UNREADABLE (unknown version)"),
            "{}",
            r.render()
        );

        let other = dir.path().join("other.jsonl");
        std::fs::write(&other, "{\"a\":1}\n").unwrap();
        assert_eq!(verify(&other).exit_code(), 2);
        assert_eq!(verify(&dir.path().join("missing.jsonl")).exit_code(), 2);
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(verify(&empty).exit_code(), 1);
    }

    #[test]
    fn an_interrupted_session_is_intact_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 3);
        let mut l = lines(&p);
        l.pop();
        put(&p, &l);
        let r = verify(&p);
        assert!(r.is_intact());
        assert!(!r.ended);
        assert!(
            r.render().contains("does not end with session_ended"),
            "{}",
            r.render()
        );
    }
}
