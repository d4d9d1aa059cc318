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
//! **Integrity is not authorship.** Whoever rewrites a whole file recomputes the chain. In
//! version 4 every group commit's last record is signed with the session's key (see
//! [`crate::sign`]); verify checks each signature against the key in the header, which
//! catches a rewrite by someone who cannot sign — but the header's key is the file's own
//! claim. Authorship needs an anchor kept apart from the file, as CloudTrail's signed digest
//! files are: `--key` (the public key printed at the end of the session and sent to peers)
//! or `--expect-head` (the last hash printed at the end). Without one, the report says that
//! it shows integrity against accidents only.
//!
//! A resumed session's link is followed only to a regular file in or below the
//! transcript's directory, or to the file given with `--follow`.
//!
//! Exit codes for the CLI: 0 intact (and, with an anchor, authentic), 1 tampered, damaged,
//! forged or not provably authentic, 2 unreadable.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use cutover_core::event::{Event, Ts};

use super::sign::{PublicKey, SigningInfo, split_signed};
use super::{
    ChainFields, EventLineIn, FORMAT, Header, HeaderLine, HeaderProbe, LineRead, MAX_LINE,
    MIN_VERSION, Reader, SIGNED_VERSION, VERSION, line_hash, read_line, too_long,
};

/// The largest file a resumed session's link is followed to.
pub const MAX_LINKED_BYTES: u64 = 64 << 30;

/// Anchors kept apart from the file, and the file a resumed session continues.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The session's public key, as handed out at its end.
    pub key: Option<PublicKey>,
    /// The hash of the file's last line, as printed at the session's end.
    pub expect_head: Option<String>,
    /// The file a resumed session continues, wherever it is.
    pub follow: Option<PathBuf>,
}

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
    /// The chain is intact but a record does not parse in this release.
    Schema,
    /// A line too long for any transcript.
    TooLong,
    /// A signature is missing where the format puts one, or does not verify.
    Signature,
    /// An approval is not signed by the key the header lists for its approver.
    Approval,
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
            ProblemKind::Schema => "schema",
            ProblemKind::TooLong => "line too long",
            ProblemKind::Signature => "bad signature",
            ProblemKind::Approval => "bad approval",
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

/// Who wrote the file, as far as the anchors given can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorshipStatus {
    /// The anchors given match: signed by that key, or ending at that head.
    Authentic,
    /// No anchor given: the chain (and the header's own key) show accidents, not authorship.
    IntegrityOnly,
    /// An anchor given does not match: another key, another head, a bad signature.
    Forged,
    /// An anchor was given but the file cannot be held to it (unsigned, damaged, a tail
    /// beyond the last signature).
    Untrusted,
}

impl AuthorshipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorshipStatus::Authentic => "AUTHENTIC",
            AuthorshipStatus::IntegrityOnly => "INTEGRITY ONLY",
            AuthorshipStatus::Forged => "FORGED",
            AuthorshipStatus::Untrusted => "UNTRUSTED",
        }
    }
}

/// The authorship part of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Authorship {
    pub status: AuthorshipStatus,
    /// The key the header says signed the file (`ed25519:<base64>`), version 4.
    pub header_key: Option<String>,
    /// `session` or `ssh SHA256:... comment`.
    pub key_origin: Option<String>,
    /// Signatures that verified under the header's key.
    pub signatures: u64,
    /// The last signed line and its seq (0: none).
    pub signed_through_line: usize,
    pub signed_through_seq: u64,
    /// What the status means here, in a sentence.
    pub detail: String,
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
    /// Who wrote it, as far as the anchors given can tell.
    pub authorship: Authorship,
    /// Some line ends in CRLF (the file went through an editor or git's autocrlf).
    pub crlf: bool,
    /// Approvals whose approver's signature verified under the header's approvers' keys.
    pub approvals_signed: u64,
}

impl VerifyReport {
    /// 0 intact (and authentic, when an anchor was given), 1 tampered, damaged, forged or
    /// not provably authentic, 2 unreadable.
    pub fn exit_code(&self) -> i32 {
        let chain = match self.verdict {
            Verdict::Intact => 0,
            Verdict::Damaged(_) => 1,
            Verdict::Unreadable(_) => 2,
        };
        match self.authorship.status {
            AuthorshipStatus::Forged | AuthorshipStatus::Untrusted => chain.max(1),
            AuthorshipStatus::Authentic | AuthorshipStatus::IntegrityOnly => chain,
        }
    }

    /// Whether the anchors given proved who wrote it (false when none was given).
    pub fn is_authentic(&self) -> bool {
        self.authorship.status == AuthorshipStatus::Authentic
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
        let a = &self.authorship;
        let distrusted = matches!(
            a.status,
            AuthorshipStatus::Forged | AuthorshipStatus::Untrusted
        );
        match &self.verdict {
            Verdict::Intact if distrusted => {
                s.push_str(&format!("{p}: {}: {}\n", a.status.as_str(), a.detail));
                s.push_str(&format!(
                    "  the hash chain is intact ({} record(s), version {}), which proves nothing here: a rewrite recomputes it\n",
                    self.intact_records,
                    self.version.unwrap_or(0)
                ));
            }
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
        if self.approvals_signed > 0 {
            s.push_str(&format!(
                "  {} approval(s) signed by their approvers' keys (as the header lists them)\n",
                self.approvals_signed
            ));
        }
        if self.version.is_some() {
            s.push_str(&format!(
                "  last intact hash: {} (seq {})\n",
                self.last_hash, self.last_seq
            ));
        }
        if !(distrusted && self.verdict == Verdict::Intact) {
            s.push_str(&format!(
                "  authorship: {}: {}\n",
                a.status.as_str(),
                a.detail
            ));
        }
        if let Some(k) = &a.header_key {
            s.push_str(&format!(
                "  signed by {k} ({}), {} signature(s) verify, through line {} (seq {})\n",
                a.key_origin.as_deref().unwrap_or("?"),
                a.signatures,
                a.signed_through_line,
                a.signed_through_seq
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
    Seq {
        found: u64,
        expected: u64,
    },
    /// Longer than any record.
    TooLong,
    /// Chains, but its signature does not verify (why).
    Signature(String),
    Approval(String),
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
            crlf: false,
            approvals_signed: 0,
            authorship: Authorship {
                status: AuthorshipStatus::IntegrityOnly,
                header_key: None,
                key_origin: None,
                signatures: 0,
                signed_through_line: 0,
                signed_through_seq: 0,
                detail: String::new(),
            },
        }
    }
}

/// Audits the transcript at `path` without anchors. Never fails: every problem is in the
/// report.
pub fn verify(path: &Path) -> VerifyReport {
    verify_with(path, &VerifyOptions::default())
}

/// Audits the transcript at `path`, holding it to the anchors in `opts`.
pub fn verify_with(path: &Path, opts: &VerifyOptions) -> VerifyReport {
    let mut report = VerifyReport::new(path);
    let file = match super::open_regular(path) {
        Ok(f) => f,
        Err(e) => {
            report.verdict = unreadable(
                0,
                ProblemKind::Unreadable,
                format!("cannot open: {e} (check the path and its permissions)"),
            );
            return finish_authorship(report, None, opts);
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let Some((header, header_hash, key)) = read_header(&mut reader, &mut report) else {
        return finish_authorship(report, None, opts);
    };
    let approvers = Approvers {
        plan_hash: header.plan_hash.clone(),
        keys: header.approvers.clone(),
        resumed: header.resumed_from.is_some(),
    };
    let Some(scan) = scan_records(&mut reader, header_hash, key, approvers, &mut report) else {
        return finish_authorship(report, None, opts);
    };
    conclude(path, header, scan, report, opts)
}

/// Line 1: the header, its hash and (version 4) its key, or `None` when the report already
/// says why nothing after it can be checked. A header whose plan was edited is returned
/// (and reported): the records after it still chain to it.
fn read_header(
    reader: &mut impl BufRead,
    report: &mut VerifyReport,
) -> Option<(Header, String, Option<PublicKey>)> {
    let mut raw = Vec::new();
    match read_line(reader, &mut raw, MAX_LINE) {
        Ok(LineRead::Eof) => {
            report.verdict = Verdict::Damaged(Problem {
                line: 1,
                kind: ProblemKind::Truncated,
                detail: "the file is empty: even the header is gone".into(),
            });
            return None;
        }
        Ok(LineRead::TooLong) => {
            report.verdict = unreadable(1, ProblemKind::TooLong, too_long(1));
            return None;
        }
        Ok(LineRead::Line) => {}
        Err(e) => {
            report.verdict = unreadable(1, ProblemKind::Unreadable, format!("read error: {e}"));
            return None;
        }
    }
    report.lines = 1;
    if raw.ends_with(b"\r\n") {
        report.crlf = true;
    }
    let complete = raw.last() == Some(&b'\n');
    let head = raw.strip_suffix(b"\n").unwrap_or(&raw);
    if let Some(verdict) = probe_header(head) {
        report.verdict = verdict;
        return None;
    }
    let (header, signing) = parse_header(head, complete, report)?;
    let key = header_key(signing.as_ref(), report);
    let header_hash = line_hash(head);
    report.last_hash = header_hash.clone();
    Some((header, header_hash, key))
}

/// The header's signing key, into the report; a version 4 header without a usable one is
/// the first bad line.
fn header_key(signing: Option<&SigningInfo>, report: &mut VerifyReport) -> Option<PublicKey> {
    let version = report.version.unwrap_or(0);
    let damaged = |detail: String| {
        Verdict::Damaged(Problem {
            line: 1,
            kind: ProblemKind::Signature,
            detail,
        })
    };
    let Some(info) = signing else {
        if version >= SIGNED_VERSION && report.verdict == Verdict::Intact {
            report.verdict = damaged(format!(
                "the version {version} header carries no signing key: it was removed (a version {version} writer always records one)"
            ));
        }
        return None;
    };
    report.authorship.key_origin = Some(info.origin.clone());
    match PublicKey::parse(&info.public) {
        Ok(k) if info.alg == "ed25519" => {
            report.authorship.header_key = Some(k.to_text());
            Some(k)
        }
        Ok(_) => {
            if report.verdict == Verdict::Intact {
                report.verdict = damaged(format!(
                    "the header's signing key is of an unknown kind \"{}\" (only ed25519 is written)",
                    info.alg
                ));
            }
            None
        }
        Err(e) => {
            if report.verdict == Verdict::Intact {
                report.verdict = damaged(format!("the header's signing key does not parse: {e}"));
            }
            None
        }
    }
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

/// Whether the plan text is the one `plan_hash` names (the header check `report` repeats).
pub fn plan_hash_matches(header: &Header) -> bool {
    header.plan_hash == hex::encode(Sha256::digest(header.plan_text.as_bytes()))
}

/// Parses the header into the report; `None` (with the verdict set) when it does not parse.
fn parse_header(
    head: &[u8],
    complete: bool,
    report: &mut VerifyReport,
) -> Option<(Header, Option<SigningInfo>)> {
    match serde_json::from_slice::<HeaderLine>(head) {
        Ok(h) => {
            report.version = Some(h.version);
            report.plan_name = Some(h.header.plan_name.clone());
            report.operator = Some(h.header.operator.clone());
            report.mode = Some(h.header.mode.to_string());
            if !plan_hash_matches(&h.header) {
                report.verdict = Verdict::Damaged(Problem {
                    line: 1,
                    kind: ProblemKind::Edited,
                    detail:
                        "the header's plan text does not match its plan_hash: the plan was edited"
                            .into(),
                });
            }
            Some((h.header, h.signing))
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
    /// Version 4: the header's key, which every `sig` must verify under.
    key: Option<PublicKey>,
    signed: bool,
    /// The plan's hash and the header's approvers: approvals are checked against them.
    approvers: Approvers,
}

/// What an approval is held to.
struct Approvers {
    plan_hash: String,
    keys: Vec<cutover_core::plan::ApproverKey>,
    /// A resumed session numbers its stream after the interrupted one's events, so an
    /// approval's `seq` does not name a line of this file.
    resumed: bool,
}

/// Pass one: every line's hash and chain fields; the first line that breaks the chain,
/// the sequence, the schema or a signature. `None` when a read error made the file
/// unreadable.
fn scan_records(
    reader: &mut impl BufRead,
    header_hash: String,
    key: Option<PublicKey>,
    approvers: Approvers,
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
        key,
        signed: report.version.unwrap_or(0) >= SIGNED_VERSION,
        approvers,
    };
    let mut raw = Vec::new();
    loop {
        match read_line(reader, &mut raw, MAX_LINE) {
            Ok(LineRead::Eof) => break,
            Ok(LineRead::Line) => {}
            Ok(LineRead::TooLong) => {
                report.lines += 1;
                if scan.first.is_none() {
                    scan.first = Some((report.lines, Cause::TooLong));
                    report.last_hash = scan.prev_full.clone();
                }
                // Nothing after a line this long can be told apart from it.
                break;
            }
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
        if raw.ends_with(b"\r\n") {
            report.crlf = true;
        }
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
        let signature = match &parsed {
            Ok(rec) => rec.sig.is_some(),
            Err(_) => false,
        };
        let approval = match &parsed {
            Ok(rec) => self.check_approval(&rec.event),
            Err(_) => None,
        };
        let approval_ok = matches!(approval, Some(Ok(())));
        match self.cause(chain, parsed, complete, report) {
            None if approval.as_ref().is_some_and(Result::is_err) => {
                // Chains, but the approval it records is not its approver's.
                report.intact_records -= 1;
                report.last_seq = self.prev_seq;
                let why = approval.and_then(Result::err).unwrap_or_default();
                self.first = Some((lineno, Cause::Approval(why)));
                report.last_hash = self.prev_full.clone();
            }
            None if signature && self.signed => match self.check_signature(line) {
                Ok(()) => {
                    report.authorship.signatures += 1;
                    report.authorship.signed_through_line = lineno;
                    report.authorship.signed_through_seq = report.last_seq;
                    self.prev_full = full;
                    self.prev_seq = report.last_seq;
                }
                Err(why) => {
                    // Not counted as intact: its content is not what was signed.
                    report.intact_records -= 1;
                    report.last_seq = self.prev_seq;
                    self.first = Some((lineno, Cause::Signature(why)));
                    report.last_hash = self.prev_full.clone();
                }
            },
            None => {
                self.prev_full = full;
                self.prev_seq = report.last_seq;
            }
            Some(c) => {
                self.first = Some((lineno, c));
                report.last_hash = self.prev_full.clone();
            }
        }
        // Counted only once the line is known to chain (and its session signature holds).
        if approval_ok && self.first.is_none() {
            report.approvals_signed += 1;
        }
    }

    /// An approval against the header's approvers: `None` for any other record, and for
    /// every record when the header lists no approvers (an unsigned session). Counted in
    /// the report only once the line is known to chain.
    fn check_approval(&self, ev: &Event) -> Option<Result<(), String>> {
        let Event::StepApproved { step, by, seen, .. } = ev else {
            return None;
        };
        if let Some(seen) = seen
            && let Err(e) = self.check_head(seen)
        {
            return Some(Err(format!(
                "{by}'s approval of {step} names a view this file does not hold: {e}"
            )));
        }
        let a = &self.approvers;
        if a.keys.is_empty() {
            return None;
        }
        Some(match seen {
            None => Err(format!(
                "{by}'s approval of {step} carries no evidence and no signature, but the header \
                 lists the approvers' keys"
            )),
            Some(seen) => crate::approval::check(&a.keys, &a.plan_hash, step, by, seen)
                .map_err(|e| format!("{by}'s approval of {step} is not theirs: {e}")),
        })
    }

    /// An approval's head is the hash of the line holding its `seq`, earlier in this file
    /// (its first 64 bits, as pass one keeps them). Not checked in a resumed session, whose
    /// stream counts the interrupted session's events first.
    fn check_head(&self, seen: &cutover_core::event::Evidence) -> Result<(), String> {
        let Some(head) = &seen.head else {
            return Ok(());
        };
        if self.approvers.resumed {
            return Ok(());
        }
        let line = usize::try_from(seen.seq).unwrap_or(usize::MAX);
        match self.info.get(line) {
            Some(l) if l.seq == Some(seen.seq) && Some(l.h64) == h64_of_hex(head) => Ok(()),
            Some(_) => Err(format!(
                "line {} (seq {}) does not hash to {}",
                line + 1,
                seen.seq,
                head.get(..16).unwrap_or(head)
            )),
            None => Err(format!("seq {} comes after the approval", seen.seq)),
        }
    }

    /// The record's `sig` against the header's key.
    fn check_signature(&self, line: &[u8]) -> Result<(), String> {
        let Some(key) = &self.key else {
            return Err("it carries a signature, but the header has no key to check it".into());
        };
        let (unsigned, sig) = split_signed(line).ok_or_else(|| {
            "its sig field is not where the recorder writes it (the last field)".to_string()
        })?;
        key.verify_head(&unsigned, sig).map_err(|_| {
            format!(
                "its signature does not verify under the header's key {key}: the records were rewritten after they were signed"
            )
        })
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
/// interrupted session, the check of the file a resumed session continues, and authorship.
fn conclude(
    path: &Path,
    header: Header,
    scan: Scan,
    mut report: VerifyReport,
    opts: &VerifyOptions,
) -> VerifyReport {
    let program = header.program_version.clone();
    if let Some((i, cause)) = scan.first {
        // A header found edited already is the first bad line.
        if report.verdict == Verdict::Intact {
            let problem = classify(&scan.info, i, cause, report.lines, &program);
            report.verdict = match problem.kind {
                ProblemKind::Schema => Verdict::Unreadable(problem),
                _ => Verdict::Damaged(problem),
            };
        }
        crlf_hint(&mut report);
        let key = scan.key;
        return finish_authorship(report, key, opts);
    }
    if report.verdict != Verdict::Intact {
        crlf_hint(&mut report);
        let key = scan.key;
        return finish_authorship(report, key, opts);
    }
    if !report.ended {
        report.notes.push(
            "the file does not end with session_ended: the session was interrupted (crash, kill -9, lost terminal) \
             or its last records were cut off at a line boundary, which a hash chain cannot show; \
             compare the last hash with a copy kept elsewhere"
                .into(),
        );
    }
    if scan.signed
        && let Some((from, to)) = unsigned_tail(&report)
    {
        report.notes.push(format!(
            "lines {from}..{to} carry no signature: {} (a batch cut short by a power loss, or lines appended or re-chained later)",
            last_signed(&report.authorship)
        ));
    }
    if let Some(from) = &header.resumed_from {
        check_link(path, from, opts.follow.as_deref(), &mut report);
    }
    finish_authorship(report, scan.key, opts)
}

/// A file whose lines end in CRLF was converted by an editor or git's `core.autocrlf`:
/// every line's hash changed with it. Said with the fix.
fn crlf_hint(report: &mut VerifyReport) {
    if !report.crlf {
        return;
    }
    let hint = format!(
        "the file has CRLF (\\r\\n) line endings: it was converted by an editor or git (core.autocrlf), which changes every line's hash; \
         restore the LF endings with `dos2unix {0}` or `sed -i 's/\\r$//' {0}` and verify again",
        report.path.display()
    );
    match &mut report.verdict {
        Verdict::Damaged(p) | Verdict::Unreadable(p) => {
            p.detail = format!("{} ({hint})", p.detail);
        }
        Verdict::Intact => report.notes.push(hint),
    }
}

/// Holds the file to the anchors given, or says that without one the report shows
/// integrity only.
fn finish_authorship(
    mut report: VerifyReport,
    key: Option<PublicKey>,
    opts: &VerifyOptions,
) -> VerifyReport {
    let mut verdicts: Vec<(AuthorshipStatus, String)> = Vec::new();
    if let Some(given) = &opts.key {
        verdicts.push(by_key(&report, key.as_ref(), given));
    }
    if let Some(head) = &opts.expect_head {
        verdicts.push(by_head(&report, head));
    }
    let worst = verdicts
        .iter()
        .find(|(s, _)| *s == AuthorshipStatus::Forged)
        .or_else(|| {
            verdicts
                .iter()
                .find(|(s, _)| *s == AuthorshipStatus::Untrusted)
        })
        .cloned();
    let (status, detail) = match (worst, verdicts.is_empty()) {
        (Some(w), _) => w,
        (None, false) => (
            AuthorshipStatus::Authentic,
            verdicts
                .into_iter()
                .map(|(_, d)| d)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, true) => (AuthorshipStatus::IntegrityOnly, integrity_only(&report)),
    };
    report.authorship.status = status;
    report.authorship.detail = detail;
    report
}

fn integrity_only(report: &VerifyReport) -> String {
    let base = "no --key or --expect-head given: the hash chain proves integrity against accidents, not authorship";
    match &report.authorship.header_key {
        Some(k) => format!(
            "{base}; the header's key {k} is the file's own claim and proves nothing against someone who rewrote the whole file with a key of their own: \
             pass the key printed at the end of the session (or sent to attached peers) with --key, or its last hash with --expect-head"
        ),
        None => format!(
            "{base}; this file carries no signature (version {}, before cutover signed transcripts): compare its last hash with a copy kept elsewhere (--expect-head)",
            report.version.unwrap_or(0)
        ),
    }
}

/// The lines after the last signed record (the header is covered by any signature).
fn unsigned_tail(report: &VerifyReport) -> Option<(usize, usize)> {
    let from = report.authorship.signed_through_line.max(1) + 1;
    (from <= report.lines).then_some((from, report.lines))
}

fn last_signed(a: &Authorship) -> String {
    match a.signed_through_line {
        0 => "no record is signed".into(),
        n => format!("the last signed record is line {n}"),
    }
}

/// The file against the key handed out of band.
fn by_key(
    report: &VerifyReport,
    header: Option<&PublicKey>,
    given: &PublicKey,
) -> (AuthorshipStatus, String) {
    let a = &report.authorship;
    let Some(header) = header else {
        let why = match report.version {
            Some(v) if v < SIGNED_VERSION => format!(
                "the file carries no signature (version {v}, written before cutover signed transcripts): it cannot be shown to be signed by {given}"
            ),
            _ => format!(
                "the file carries no usable signing key: it cannot be shown to be signed by {given}"
            ),
        };
        return (AuthorshipStatus::Untrusted, why);
    };
    if header != given {
        return (
            AuthorshipStatus::Forged,
            format!(
                "signed by {header}, not by the key given ({given}): the file was rewritten and signed by someone else, or it is another session's transcript"
            ),
        );
    }
    if let Some(p) = report.problem() {
        let status = if p.kind == ProblemKind::Signature {
            AuthorshipStatus::Forged
        } else {
            AuthorshipStatus::Untrusted
        };
        return (
            status,
            format!(
                "line {}: {}; only lines up to {} (seq {}) are signed by {given}",
                p.line, p.detail, a.signed_through_line, a.signed_through_seq
            ),
        );
    }
    if let Some((from, to)) = unsigned_tail(report) {
        return (
            AuthorshipStatus::Untrusted,
            format!(
                "line {from}: lines {from}..{to} carry no signature by {given} ({}): appended or re-chained after the session signed, or a batch cut short",
                last_signed(a)
            ),
        );
    }
    (
        AuthorshipStatus::Authentic,
        format!(
            "every record is covered by a signature of {given} (the key given), through line {}",
            a.signed_through_line
        ),
    )
}

/// The file against the last hash handed out of band.
fn by_head(report: &VerifyReport, expected: &str) -> (AuthorshipStatus, String) {
    let expected = expected.trim().to_ascii_lowercase();
    if let Some(p) = report.problem() {
        return (
            AuthorshipStatus::Untrusted,
            format!(
                "line {}: the file is damaged, so it cannot end at the expected head {expected}",
                p.line
            ),
        );
    }
    if report.last_hash == expected {
        return (
            AuthorshipStatus::Authentic,
            format!(
                "the last line hashes to the expected head {expected}, so every line before it is the one that was written"
            ),
        );
    }
    (
        AuthorshipStatus::Forged,
        format!(
            "the file's head is {}, not the expected {expected}: it was rewritten, cut or extended after that head was handed out",
            report.last_hash
        ),
    )
}

/// Names the first bad line and why, from the evidence around line `i` (1-based).
fn classify(info: &[LineInfo], i: usize, cause: Cause, lines: usize, program: &str) -> Problem {
    match cause {
        Cause::Unparsable {
            complete,
            error,
            schema,
        } => classify_unparsable(info, i, lines, complete, &error, schema, program),
        Cause::Seq { found, expected } => classify_seq(info, i, found, expected),
        Cause::Chain => classify_chain(info, i),
        Cause::TooLong => problem(i, ProblemKind::TooLong, too_long(i)),
        // A signed line the next line no longer chains to was changed in place: that is
        // an edit, whether or not the line happened to carry a signature.
        Cause::Signature(_)
            if line_at(info, i + 1).is_some_and(|n| n.prev64 != Some(info[i - 1].h64)) =>
        {
            problem(
                i,
                ProblemKind::Edited,
                format!(
                    "line {i} was edited: line {} no longer chains to it, and its signature does not verify",
                    i + 1
                ),
            )
        }
        Cause::Signature(why) => problem(
            i,
            ProblemKind::Signature,
            format!("line {i} chains, but {why}"),
        ),
        Cause::Approval(why) => problem(i, ProblemKind::Approval, format!("line {i}: {why}")),
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
    program: &str,
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
    // Its chain fields parse and link to the line before; if the next line links to it
    // too, it is the line that was written: this release cannot read what it holds.
    let next_links = line_at(info, i + 1).is_some_and(|n| n.prev64 == Some(info[i - 1].h64));
    let last = i == lines && complete;
    if schema && (next_links || last) {
        let caveat = if next_links {
            ""
        } else {
            " (it is the last line, so no later line vouches for it)"
        };
        return problem(
            i,
            ProblemKind::Schema,
            format!(
                "the chain is intact{caveat}, but line {i} is not readable by this release ({}): {error}; \
                 a schema problem, not an edit: the file was probably written by a newer or older cutover \
                 (its header says {program}); verify it with that release",
                env!("CARGO_PKG_VERSION")
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

/// Where the file a resumed session continues may be read without `--follow`: its name in
/// this transcript's directory, or the recorded path when it is in or below it. `Ok(None)`:
/// neither exists; `Err`: it exists only outside, and is not opened.
fn linked_file(path: &Path, recorded: &str) -> Result<Option<PathBuf>, String> {
    let recorded = PathBuf::from(recorded);
    let dir = path
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(Path::new("."));
    if let Some(name) = recorded.file_name() {
        let sibling = dir.join(name);
        if sibling.symlink_metadata().is_ok() {
            return Ok(Some(sibling));
        }
    }
    if recorded.symlink_metadata().is_err() {
        return Ok(None);
    }
    let inside = match (recorded.canonicalize(), dir.canonicalize()) {
        (Ok(r), Ok(d)) => r.starts_with(d),
        _ => false,
    };
    if inside {
        Ok(Some(recorded))
    } else {
        Err(format!(
            "{} is outside this transcript's directory, so it is not opened",
            recorded.display()
        ))
    }
}

/// Checks that a resumed session continues the file it names: that file's record at
/// `last_seq` has `last_hash`, and the history re-recorded here equals its events.
///
/// The file is looked for beside this one (its name in this directory) or at the recorded
/// path if that is in or below this directory; `follow` overrides both. Only a regular
/// file of at most [`MAX_LINKED_BYTES`] is opened: the header is the file's own claim,
/// and a path such as `/dev/zero` or a FIFO must not make verify stream or block.
fn check_link(
    path: &Path,
    from: &super::ResumedFrom,
    follow: Option<&Path>,
    report: &mut VerifyReport,
) {
    let broken = |detail: String| {
        Verdict::Damaged(Problem {
            line: 1,
            kind: ProblemKind::LinkBroken,
            detail,
        })
    };
    let old = match follow {
        Some(f) => f.to_path_buf(),
        None => match linked_file(path, &from.file) {
            Ok(Some(p)) => p,
            Ok(None) => {
                report.notes.push(format!(
                    "continues {} (seq {}, hash {}), which is not here: verify it separately",
                    from.file, from.last_seq, from.last_hash
                ));
                return;
            }
            Err(why) => {
                report.notes.push(format!(
                    "continues {} (seq {}, hash {}): {why}; pass --follow PATH to check the link",
                    from.file, from.last_seq, from.last_hash
                ));
                return;
            }
        },
    };
    match std::fs::metadata(&old) {
        Ok(m) if m.is_file() && m.len() <= MAX_LINKED_BYTES => {}
        Ok(m) if m.is_file() => {
            report.verdict = broken(format!(
                "{} is {} bytes, more than any transcript this program follows ({} GiB): not opened",
                old.display(),
                m.len(),
                MAX_LINKED_BYTES >> 30
            ));
            return;
        }
        Ok(_) => {
            report.verdict = broken(format!(
                "{} is not a regular file (a FIFO, socket, device or directory): not opened; the resumed_from link names something that is not a transcript",
                old.display()
            ));
            return;
        }
        Err(e) => {
            report.verdict = broken(format!("cannot read {}: {e}", old.display()));
            return;
        }
    }
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
        std::fs::write(&p, text.replacen("\"version\":6", "\"version\":7", 1)).unwrap();
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

    /// Re-chains `lines` as a forger would: every `prev` recomputed; the signatures kept
    /// as they were, or dropped (the forger cannot make new ones).
    fn rechain_keeping(lines: &mut [String], keep_sigs: bool) {
        for i in 1..lines.len() {
            let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
            let o = v.as_object_mut().unwrap();
            if !keep_sigs {
                o.remove("sig");
            }
            o.insert(
                "prev".into(),
                serde_json::Value::String(line_hash(lines[i - 1].as_bytes())),
            );
            lines[i] = serde_json::to_string(&v).unwrap();
        }
    }

    fn rechain(lines: &mut [String]) {
        rechain_keeping(lines, false);
    }

    /// The test header with a plan hash that matches its plan.
    fn good_header() -> Header {
        let mut h = header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        h
    }

    fn with_key(key: PublicKey) -> VerifyOptions {
        VerifyOptions {
            key: Some(key),
            ..VerifyOptions::default()
        }
    }

    #[test]
    fn every_batch_is_signed_and_the_real_key_and_head_prove_authorship() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), good_header()).unwrap();
        r.append(&[
            Event::Note {
                at: 1,
                text: "a".into(),
            },
            Event::Note {
                at: 2,
                text: "b".into(),
            },
        ])
        .unwrap();
        r.append(&[Event::SessionEnded {
            at: 3,
            reason: "done".into(),
        }])
        .unwrap();
        let l = lines(r.path());
        assert!(
            !l[1].contains("\"sig\""),
            "a batch's middle is not signed: {}",
            l[1]
        );
        assert!(
            l[2].ends_with("\"}") && l[2].contains(",\"sig\":\""),
            "{}",
            l[2]
        );
        assert!(l[3].contains(",\"sig\":\""), "{}", l[3]);
        assert!(
            l[0].contains("\"signing\":{\"alg\":\"ed25519\""),
            "{}",
            l[0]
        );

        let plain = verify(r.path());
        assert_eq!(plain.exit_code(), 0, "{}", plain.render());
        assert_eq!(plain.authorship.status, AuthorshipStatus::IntegrityOnly);
        assert_eq!(plain.authorship.signatures, 2);
        assert!(
            plain
                .render()
                .contains("proves integrity against accidents, not authorship"),
            "{}",
            plain.render()
        );

        let anchored = verify_with(
            r.path(),
            &VerifyOptions {
                key: Some(r.public_key()),
                expect_head: Some(r.last_hash().to_string()),
                follow: None,
            },
        );
        assert_eq!(anchored.exit_code(), 0, "{}", anchored.render());
        assert!(anchored.is_authentic(), "{}", anchored.render());
        assert!(
            anchored.render().contains("authorship: AUTHENTIC"),
            "{}",
            anchored.render()
        );
    }

    #[test]
    fn a_signed_line_edited_in_place_is_an_edit_not_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        let mut r = Recorder::create(dir.path(), h).unwrap();
        // Two batches: line 3 is the first batch's signed head, line 4 chains to it.
        let note = |i: i64| Event::Note {
            at: 1_700_000_000_000 + i * 1000,
            text: format!("note {i}"),
        };
        r.append(&[note(0), note(1)]).unwrap();
        r.append(&[note(2), note(3)]).unwrap();
        let p = r.path().to_path_buf();
        drop(r);
        let mut l = lines(&p);
        assert!(l[2].contains("\"sig\":"), "{}", l[2]);
        l[2] = l[2].replace("note 1", "note X");
        put(&p, &l);
        let r = verify(&p);
        let pr = r
            .problem()
            .unwrap_or_else(|| panic!("{}", r.render()))
            .clone();
        assert_eq!(
            (pr.line, pr.kind),
            (3, ProblemKind::Edited),
            "{}",
            r.render()
        );
        assert!(
            r.render()
                .contains(":3: EDITED: line 3 was edited: line 4 no longer chains to it"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn a_rechained_forgery_fails_under_the_real_key_and_head_and_is_integrity_only_without() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 5);
        let real = {
            let text = std::fs::read_to_string(&p).unwrap();
            let h: HeaderLine = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            PublicKey::parse(&h.signing.unwrap().public).unwrap()
        };
        let real_head = verify(&p).last_hash;

        // Re-recorded under the forger's own key: a file as consistent as the real one.
        let events: Vec<Event> = crate::read(&p)
            .unwrap()
            .events
            .into_iter()
            .map(|e| match e {
                Event::Note { at, text } => Event::Note {
                    at,
                    text: text.replace("note", "forged"),
                },
                e => e,
            })
            .collect();
        let mut h = header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        h.operator = "mallory".into();
        let forged_path = dir.path().join("forged.jsonl");
        let mut f = Recorder::create_at(&forged_path, h).unwrap();
        f.append(&events).unwrap();

        let alone = verify(&forged_path);
        assert_eq!(
            alone.exit_code(),
            0,
            "a chain alone cannot tell: {}",
            alone.render()
        );
        assert_eq!(alone.authorship.status, AuthorshipStatus::IntegrityOnly);
        assert!(
            alone
                .render()
                .contains("proves nothing against someone who rewrote the whole file"),
            "{}",
            alone.render()
        );

        let by_key = verify_with(&forged_path, &with_key(real));
        assert_eq!(
            by_key.authorship.status,
            AuthorshipStatus::Forged,
            "{}",
            by_key.render()
        );
        assert_eq!(by_key.exit_code(), 1);
        assert!(
            by_key
                .render()
                .starts_with(&format!("{}: FORGED: signed by ", forged_path.display())),
            "{}",
            by_key.render()
        );

        let by_head = verify_with(
            &forged_path,
            &VerifyOptions {
                expect_head: Some(real_head),
                ..VerifyOptions::default()
            },
        );
        assert_eq!(
            by_head.authorship.status,
            AuthorshipStatus::Forged,
            "{}",
            by_head.render()
        );
        assert_eq!(by_head.exit_code(), 1);

        // Re-chained in place, keeping the real header and key: the signatures give it away
        // even without an anchor, at the first signed line.
        let original = lines(&p);
        let mut l = original.clone();
        l[3] = l[3].replace("note 2", "note X");
        rechain_keeping(&mut l, true);
        put(&p, &l);
        let r = verify(&p);
        let pr = r
            .problem()
            .unwrap_or_else(|| panic!("{}", r.render()))
            .clone();
        assert_eq!(pr.kind, ProblemKind::Signature, "{}", r.render());
        assert_eq!(
            pr.line,
            7,
            "the last line, the batch's signed one: {}",
            r.render()
        );
        assert!(
            r.render()
                .contains(":7: BAD SIGNATURE: line 7 chains, but its signature does not verify"),
            "{}",
            r.render()
        );
        let r = verify_with(&p, &with_key(real));
        assert_eq!(
            r.authorship.status,
            AuthorshipStatus::Forged,
            "{}",
            r.render()
        );

        // Signatures dropped instead: without an anchor only a note can say so (a power
        // loss leaves an unsigned tail too); under the key it is untrusted, at the line.
        let mut l = original;
        l[3] = l[3].replace("note 2", "note X");
        rechain(&mut l);
        put(&p, &l);
        let r = verify(&p);
        assert!(
            r.render().contains("lines 2..7 carry no signature"),
            "{}",
            r.render()
        );
        let r = verify_with(&p, &with_key(real));
        assert_eq!(
            r.authorship.status,
            AuthorshipStatus::Untrusted,
            "{}",
            r.render()
        );
        assert!(
            r.render()
                .contains("UNTRUSTED: line 2: lines 2..7 carry no signature"),
            "{}",
            r.render()
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn signatures_stripped_or_a_tail_appended_are_untrusted_under_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), good_header()).unwrap();
        r.append(&[Event::Note {
            at: 1,
            text: "a".into(),
        }])
        .unwrap();
        let key = r.public_key();
        let p = r.path().to_path_buf();
        drop(r);
        // A line appended with a valid chain link but no signature.
        let mut l = lines(&p);
        l.push(format!(
            "{{\"seq\":2,\"prev\":\"{}\",\"event\":{{\"type\":\"note\",\"at\":2,\"text\":\"added\"}}}}",
            line_hash(l[1].as_bytes())
        ));
        put(&p, &l);
        let plain = verify(&p);
        assert_eq!(plain.exit_code(), 0, "{}", plain.render());
        assert!(
            plain.render().contains("lines 3..3 carry no signature"),
            "{}",
            plain.render()
        );
        let keyed = verify_with(&p, &with_key(key));
        assert_eq!(
            keyed.authorship.status,
            AuthorshipStatus::Untrusted,
            "{}",
            keyed.render()
        );
        assert_eq!(keyed.exit_code(), 1);
        assert!(
            keyed
                .render()
                .contains("UNTRUSTED: line 3: lines 3..3 carry no signature"),
            "{}",
            keyed.render()
        );

        // An old, unsigned version cannot be held to a key.
        let mut l = lines(&p);
        l.truncate(2);
        l[0] = l[0].replacen("\"version\":6", "\"version\":3", 1);
        let mut v: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
        v.as_object_mut().unwrap().remove("signing");
        l[0] = serde_json::to_string(&v).unwrap();
        rechain(&mut l);
        put(&p, &l);
        let old = verify_with(&p, &with_key(key));
        assert!(old.is_intact(), "{}", old.render());
        assert_eq!(
            old.authorship.status,
            AuthorshipStatus::Untrusted,
            "{}",
            old.render()
        );
        assert!(
            old.render().contains("carries no signature (version 3"),
            "{}",
            old.render()
        );

        // A version 4 header whose key was removed is named at line 1.
        l[0] = l[0].replacen("\"version\":3", "\"version\":4", 1);
        rechain(&mut l);
        put(&p, &l);
        let r = verify(&p);
        assert_eq!(
            r.problem().map(|p| (p.line, p.kind)),
            Some((1, ProblemKind::Signature)),
            "{}",
            r.render()
        );
    }

    #[test]
    fn a_schema_error_in_an_intact_chain_is_not_called_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 4);
        let mut l = lines(&p);
        // A record kind this release does not know, chained as the writer would chain it.
        l[2] = l[2].replace("\"type\":\"note\"", "\"type\":\"from_the_future\"");
        rechain(&mut l);
        put(&p, &l);
        let r = verify(&p);
        let pr = r.problem().unwrap().clone();
        assert_eq!(
            (pr.line, pr.kind),
            (3, ProblemKind::Schema),
            "{}",
            r.render()
        );
        assert_eq!(r.exit_code(), 2);
        assert!(!r.render().contains("EDITED"), "{}", r.render());
        assert!(
            r.render()
                .contains("the chain is intact, but line 3 is not readable by this release"),
            "{}",
            r.render()
        );
        assert!(
            r.render().contains("newer or older cutover"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn crlf_line_endings_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 3);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace('\n', "\r\n")).unwrap();
        let r = verify(&p);
        assert_eq!(r.exit_code(), 1, "{}", r.render());
        let out = r.render();
        assert!(out.contains("CRLF"), "{out}");
        assert!(
            out.contains("dos2unix") && out.contains("sed -i 's/\\r$//'"),
            "{out}"
        );
    }

    /// A 4 GiB file of NULs without a byte on disk.
    fn sparse(path: &Path) {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(4 << 30).unwrap();
    }

    fn fifo(path: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    #[test]
    fn a_huge_line_and_a_fifo_are_refused_quickly_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = dir.path().join("zeros.jsonl");
        sparse(&zeros);
        let r = verify(&zeros);
        assert_eq!(r.exit_code(), 2, "{}", r.render());
        assert!(
            r.render()
                .contains(":1: UNREADABLE (line too long): line 1 longer than 16 MiB"),
            "{}",
            r.render()
        );
        let e = crate::Reader::open(&zeros).err().unwrap().to_string();
        assert!(e.contains(":1: line 1 longer than 16 MiB"), "{e}");
        let e = crate::index::Index::open(&zeros).err().unwrap().to_string();
        assert!(e.contains(":1: line 1 longer than 16 MiB"), "{e}");

        // A huge line after a good header: named at its line.
        let p = write(dir.path(), 2);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, &vec![b' '; MAX_LINE + 10]).unwrap();
        drop(f);
        let r = verify(&p);
        assert_eq!(
            r.problem().map(|p| (p.line, p.kind)),
            Some((5, ProblemKind::TooLong)),
            "{}",
            r.render()
        );
        let mut rd = crate::Reader::open(&p).unwrap();
        let e = loop {
            match rd.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(e.contains(":5: line 5 longer than 16 MiB"), "{e}");
        let idx = crate::index::Index::open(&p).unwrap();
        let e = idx.stopped.clone().unwrap_or_default();
        assert!(e.contains(":5: line 5 longer than 16 MiB"), "{e}");

        let pipe = dir.path().join("pipe.jsonl");
        fifo(&pipe);
        let r = verify(&pipe);
        assert_eq!(r.exit_code(), 2);
        assert!(r.render().contains("not a regular file"), "{}", r.render());
        assert!(
            crate::Reader::open(&pipe)
                .err()
                .unwrap()
                .to_string()
                .contains("not a regular file")
        );
        assert!(
            crate::index::Index::open(&pipe)
                .err()
                .unwrap()
                .to_string()
                .contains("not a regular file")
        );
    }

    /// A resumed session's transcript whose link names `target`.
    fn resumed_pointing_at(dir: &Path, target: &str) -> PathBuf {
        let mut h = header();
        h.plan_hash = hex::encode(Sha256::digest(h.plan_text.as_bytes()));
        h.resumed_from = Some(crate::ResumedFrom {
            file: target.into(),
            last_seq: 1,
            last_hash: "00".repeat(32),
        });
        let mut r = Recorder::create(dir, h).unwrap();
        r.append(&[Event::Note {
            at: 1,
            text: "old".into(),
        }])
        .unwrap();
        r.path().to_path_buf()
    }

    #[test]
    fn resumed_from_is_followed_only_to_a_regular_file_here_or_with_follow() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();

        let p = resumed_pointing_at(dir.path(), "/dev/zero");
        let r = verify(&p);
        assert_eq!(r.exit_code(), 0, "{}", r.render());
        assert!(
            r.render()
                .contains("/dev/zero is outside this transcript's directory, so it is not opened"),
            "{}",
            r.render()
        );
        let r = verify_with(
            &p,
            &VerifyOptions {
                follow: Some("/dev/zero".into()),
                ..VerifyOptions::default()
            },
        );
        assert_eq!(
            r.problem().map(|p| p.kind),
            Some(ProblemKind::LinkBroken),
            "{}",
            r.render()
        );
        assert!(
            r.render().contains("/dev/zero is not a regular file"),
            "{}",
            r.render()
        );

        // A FIFO beside it: refused without opening (an open would block).
        let pipe = dir.path().join("old.jsonl");
        fifo(&pipe);
        let p = resumed_pointing_at(dir.path(), "old.jsonl");
        let r = verify(&p);
        assert!(
            r.render().contains("is not a regular file"),
            "{}",
            r.render()
        );
        assert_eq!(r.exit_code(), 1);
        std::fs::remove_file(&pipe).unwrap();

        // 4 GiB of NULs beside it: the line cap answers at once.
        sparse(&pipe);
        let r = verify(&p);
        assert_eq!(
            r.problem().map(|p| p.kind),
            Some(ProblemKind::LinkBroken),
            "{}",
            r.render()
        );
        assert!(
            r.render().contains("line 1 longer than 16 MiB"),
            "{}",
            r.render()
        );

        // A real transcript outside the directory: only with --follow.
        let old = write(elsewhere.path(), 0);
        let p = resumed_pointing_at(dir.path(), old.to_str().unwrap());
        std::fs::remove_file(&pipe).unwrap();
        let r = verify(&p);
        assert!(r.render().contains("pass --follow PATH"), "{}", r.render());
        let r = verify_with(
            &p,
            &VerifyOptions {
                follow: Some(old.clone()),
                ..VerifyOptions::default()
            },
        );
        assert!(
            r.render()
                .contains(&format!("differs from {}", old.display())),
            "it was opened and compared: {}",
            r.render()
        );
    }

    #[test]
    fn an_operators_ssh_key_signs_and_its_public_line_verifies_and_no_secret_is_written() {
        use crate::sign::tests::{SSH_PRIVATE, SSH_PUBLIC};
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("id_ed25519");
        std::fs::write(&key_file, SSH_PRIVATE).unwrap();
        let key = crate::SessionKey::from_openssh_file(&key_file).unwrap();
        let mut r = Recorder::create_signed(dir.path(), good_header(), key).unwrap();
        r.append(&[Event::SessionEnded {
            at: 1,
            reason: "done".into(),
        }])
        .unwrap();
        let pub_file = dir.path().join("id_ed25519.pub");
        std::fs::write(&pub_file, format!("{SSH_PUBLIC}\n")).unwrap();
        for anchor in [SSH_PUBLIC.to_string(), pub_file.display().to_string()] {
            let k = PublicKey::from_arg(&anchor).unwrap();
            let v = verify_with(r.path(), &with_key(k));
            assert!(v.is_authentic(), "{anchor}: {}", v.render());
            assert!(
                v.authorship
                    .key_origin
                    .as_deref()
                    .is_some_and(|o| o.starts_with("ssh SHA256:") && o.ends_with("test-key")),
                "{:?}",
                v.authorship
            );
        }
        // The private half: nothing of the key block's body reaches the transcript.
        let text = std::fs::read_to_string(r.path()).unwrap();
        for chunk in SSH_PRIVATE.lines().skip(2).take(3) {
            assert!(!text.contains(chunk), "{chunk}");
        }
        let err = crate::SessionKey::from_openssh_file(&pub_file).unwrap_err();
        assert!(
            err.contains("not an OpenSSH private key") && !err.contains("AAAA"),
            "{err}"
        );
    }
}
