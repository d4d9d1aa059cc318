//! `cutover report FILE [--format md|json]`: the postmortem, as a fold over the transcript.
//!
//! The same `State::apply` the cockpit ran rebuilds the steps and the gate states at each
//! decision; alongside it the report collects what a screen forgets: every decision with
//! who and when, the write-downtime window, lag and drift over the whole session, and the
//! anomalies (source failures and stale readings, faults, cancellations, rejected
//! confirmations, timeouts, failed actions, rollbacks, restarts and steps in doubt).
//!
//! It streams the file (memory stays flat for a 24-hour transcript), checks the hash chain
//! as it reads, and says so when it stops at a break. Before the fold it runs `verify`'s
//! audit (header, plan hash, chain, signatures, and the `--key`/`--expect-head` anchors),
//! so every format shows the same verdict and authorship status as `cutover verify`. Free
//! text from the transcript goes through [`crate::redact`] once more on its way out.
//!
//! `collect` is the fold, `render` turns its [`Report`] into Markdown or JSON, `html` into
//! one self-contained HTML page with inline SVG charts.

mod collect;
mod html;
mod render;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Ts, WorldMeasures};
use crate::plan;
pub use crate::state::{GateAt, GuardFigures};
use crate::transcript::verify::{
    Authorship, AuthorshipStatus, ProblemKind, VerifyOptions, verify_with,
};
use crate::transcript::{Reader, TranscriptError};
pub use html::render_html;
pub use render::{render_json, render_md, sparkline};

/// Columns of the sparklines (and points of each series in the JSON).
pub const CHART_WIDTH: usize = 60;
/// A source silent this long (and three times its usual interval) is reported as stale.
pub const STALE_GAP_MS: Ts = 5_000;

/// The output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Md,
    Json,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error(
        "{path}:1: the recorded plan does not parse: {errors} (the header was edited; run `cutover verify {path}`)"
    )]
    Plan { path: String, errors: String },
    #[error("cannot render the report as JSON: {0}")]
    Json(String),
}

/// The whole postmortem.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub integrity: Integrity,
    pub session: SessionInfo,
    pub steps: Vec<StepReport>,
    pub decisions: Vec<Decision>,
    pub downtime: Downtime,
    /// What the guards measured: detection of each rehearsal fault, the rollback, downtime
    /// against the budget, which guards fired.
    pub guards: GuardFigures,
    pub series: Vec<SeriesReport>,
    pub anomalies: Vec<Anomaly>,
}

/// How much of the file could be trusted.
#[derive(Clone, Debug, Serialize)]
pub struct Integrity {
    /// Every record chains from the header.
    pub chain_intact: bool,
    pub records: u64,
    pub last_hash: String,
    /// Why the report stopped early (a chain break), if it did.
    pub stopped: Option<String>,
    pub torn_tail: Option<String>,
    /// `cutover verify`'s verdict: `intact`, or the first bad line and why.
    pub verdict: String,
    /// The kind of verify's first problem, if any.
    #[serde(skip)]
    pub problem: Option<ProblemKind>,
    /// The header's plan text hashes to its `plan_hash`.
    pub plan_hash_matches: bool,
    /// Who wrote the file, as far as the anchors given can tell (integrity only without).
    pub authorship: Authorship,
}

impl Integrity {
    /// Nothing in the audit calls the file into doubt (with an anchor: it is authentic). A
    /// last line cut short by a crash is not doubt: it is reported as the torn tail.
    pub fn trusted(&self) -> bool {
        self.chain_intact
            && self.plan_hash_matches
            && matches!(self.problem, None | Some(ProblemKind::Truncated))
            && matches!(
                self.authorship.status,
                AuthorshipStatus::Authentic | AuthorshipStatus::IntegrityOnly
            )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub plan: String,
    pub plan_hash: String,
    pub mode: String,
    pub operator: String,
    pub host: String,
    pub program_version: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub duration_s: Option<f64>,
    /// completed, rolled back, rollback failed, interrupted, not completed; when the
    /// rehearsal world measured lost writes or diverged rows, "completed WITH DATA LOSS: ..."
    /// (or ", with data loss: ..." after the others).
    pub outcome: String,
    /// The file this session continues (a `cutover resume`), and restarts inside this file.
    pub resumed_from: Option<String>,
    pub restarts: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub number: usize,
    pub id: String,
    pub title: String,
    pub action: String,
    pub status: String,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the confirmation to the end of the action.
    pub duration_s: Option<f64>,
    /// How long the step waited to become green after the previous one finished.
    pub waited_s: Option<f64>,
    pub message: Option<String>,
    pub undo: Option<String>,
}

/// Who decided what, when, and what the gates said.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub at: String,
    pub by: String,
    /// confirmed, confirmation refused, rejected, cancelled, approved, rollback, rollback
    /// cancelled, marked done, marked not done.
    pub kind: String,
    pub step: Option<String>,
    pub detail: Option<String>,
    pub gates: Vec<GateAt>,
}

/// When writes were frozen.
#[derive(Clone, Debug, Serialize)]
pub struct Downtime {
    pub freeze_step: Option<String>,
    pub unfreeze_step: Option<String>,
    /// The freeze action started.
    pub from: Option<String>,
    /// The unfreeze action (or the freeze's undo) finished.
    pub to: Option<String>,
    /// What ended the window: `unfreeze finished` or `freeze undone`.
    pub ended_by: Option<String>,
    pub window_s: Option<f64>,
    /// The plan's `max_downtime`, and when its 80 % warning and its 100 % came.
    pub max_downtime_s: Option<f64>,
    pub budget_warned_at: Option<String>,
    pub budget_spent_at: Option<String>,
    /// Still frozen when the transcript ends.
    pub open: bool,
    /// What the rehearsal world measured, if it was a rehearsal.
    pub measured: Option<WorldMeasures>,
}

/// A value over the session: min, max, last, and `CHART_WIDTH` buckets (max per bucket).
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    pub name: String,
    pub unit: String,
    pub samples: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub last: Option<f64>,
    pub sparkline: String,
    pub buckets: Vec<Bucket>,
}

/// One column of a series' chart. In JSON a `[start, max]` pair, as reports have always
/// written it (tools read them).
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub start: String,
    /// The maximum in the bucket; the last value held when the bucket has no sample;
    /// `None` before the first sample.
    pub max: Option<f64>,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.start, self.max).serialize(s)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub at: String,
    pub kind: String,
    pub text: String,
}

fn iso(t: Ts) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.to_string())
}

fn secs(ms: Ts) -> f64 {
    ms as f64 / 1000.0
}

fn clean(s: &str) -> String {
    crate::redact::text(s, &[])
}

/// Folds the transcript at `path` into a [`Report`], without anchors.
pub fn build(path: &Path) -> Result<Report, ReportError> {
    build_with(path, &VerifyOptions::default())
}

/// Folds the transcript at `path` into a [`Report`], holding it to the anchors in `opts`.
pub fn build_with(path: &Path, opts: &VerifyOptions) -> Result<Report, ReportError> {
    let audit = verify_with(path, opts);
    let mut reader = Reader::open(path)?;
    let header = reader.header().clone();
    let p = path.display().to_string();
    let plan = Arc::new(
        plan::parse(&format!("{p} (recorded plan)"), &header.plan_text).map_err(|e| {
            ReportError::Plan {
                path: p.clone(),
                errors: e.to_string(),
            }
        })?,
    );
    let mut c = collect::Collector::new(plan);
    let mut stopped = None;
    loop {
        match reader.next_event() {
            Ok(Some(ev)) => c.apply(&ev),
            Ok(None) => break,
            Err(e) => {
                stopped = Some(format!("{e}; the report covers the records before it"));
                break;
            }
        }
    }
    let verdict = match audit.problem() {
        None => "intact".to_string(),
        Some(pr) => format!("{} at line {}: {}", pr.kind.as_str(), pr.line, pr.detail),
    };
    let integrity = Integrity {
        chain_intact: stopped.is_none(),
        records: reader.last_seq(),
        last_hash: reader.last_hash().to_string(),
        stopped,
        torn_tail: reader.torn_tail().map(str::to_string),
        verdict,
        problem: audit.problem().map(|p| p.kind),
        plan_hash_matches: crate::transcript::verify::plan_hash_matches(&header),
        authorship: audit.authorship,
    };
    Ok(c.finish(&header, integrity, p))
}

/// `cutover report`: the postmortem of `path` as Markdown or JSON.
pub fn report(path: &Path, format: Format) -> Result<String, ReportError> {
    report_with(path, format, &VerifyOptions::default())
}

/// [`report`], holding the file to the anchors in `opts` (`--key`, `--expect-head`).
pub fn report_with(
    path: &Path,
    format: Format,
    opts: &VerifyOptions,
) -> Result<String, ReportError> {
    let r = build_with(path, opts)?;
    match format {
        Format::Md => Ok(render_md(&r)),
        Format::Json => render_json(&r),
        Format::Html => Ok(render_html(&r)),
    }
}
