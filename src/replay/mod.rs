//! `cutover replay FILE`: the cockpit's own screens rebuilt by folding the recorded events
//! with a time cursor — the panes the operator saw, not a byte recording.
//!
//! Read-only by construction: a replay holds a transcript [`Index`] and a [`State`], never a
//! session or an actuator; the effects the fold asks for are dropped.
//!
//! Large files: opening indexes the lines (offset, time, kind) without parsing the events,
//! and lists the checkpoints of the seek file ([`crate::transcript::seek`]) the live session
//! left beside the transcript (or that an earlier replay kept in the cache). A seek restores
//! the nearest checkpoint at or before the target, after checking it follows the same
//! transcript line, and folds at most [`CHECKPOINT_EVERY`] events: any point of a 24-hour
//! session is on screen in milliseconds right after opening.
//!
//! A background thread folds the whole file once anyway, checking the hash chain, keeping
//! its own checkpoints and comparing them with the seek file's: a checkpoint that differs is
//! replaced, the screen is folded again and the footer says `SEEK FILE WRONG`; while the
//! screen rests on a checkpoint not yet compared, it says `seek file …`. Without a seek file,
//! a seek past the background pass folds forward in bounded slices per frame (the footer
//! shows its progress); when the pass ends, its checkpoints are kept in the cache for next
//! time (never beside the transcript: replay writes nothing next to the evidence).
//!
//! Keys: space pause/play · `+`/`-` speed 0.5×..64× · ←/→ ±10 s · `[`/`]` previous/next step
//! event · `g`/`G` start/end · `s` skip to the next notable event · `a` auto-skip idle
//! stretches · everything else as in the cockpit (Tab, ↑↓, z, ?, q).

mod checkpoints;
mod controller;
mod terminal;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;

use crate::event::Ts;
use crate::transcript::TranscriptError;
use crate::transcript::seek;

pub use controller::Replay;
pub use terminal::{run_replay, run_replay_args};

/// A `State` checkpoint every this many events: a seek folds at most this many.
pub const CHECKPOINT_EVERY: usize = seek::EVERY;
/// Most events folded per frame while a seek catches up (keeps keys responsive).
pub const FOLD_BUDGET: usize = 20_000;
/// The playback speeds `+` and `-` step through.
pub const SPEEDS: [f64; 8] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// What ←/→ move the cursor by.
pub const SEEK_STEP_MS: Ts = 10_000;
/// The default threshold of `a` (auto-skip idle stretches).
pub const DEFAULT_SKIP_IDLE_MS: Ts = 10_000;

/// Why a transcript cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error(
        "{path}:1: the recorded plan does not parse: {errors} (the header was edited; run `cutover verify {path}`)"
    )]
    Plan { path: String, errors: String },
    #[error("{path}: no events to replay (the session recorded nothing after its header)")]
    Empty { path: String },
}

/// How the background pass is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Checked up to this many events.
    Checking(usize),
    Intact,
    /// The first break, as the reader reports it (`file:line: reason`).
    Broken(String),
}

/// Options of [`Replay::open_with`].
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub checkpoint_every: usize,
    /// Where to keep the checkpoints a replay had to build (`None`: keep none). The seek
    /// file beside the transcript is read either way.
    pub seek_cache: Option<PathBuf>,
    /// Build checkpoints and check the chain in a background thread.
    pub background: bool,
    pub speed: f64,
    pub skip_idle_ms: Option<Ts>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            checkpoint_every: CHECKPOINT_EVERY,
            seek_cache: None,
            background: true,
            speed: 1.0,
            skip_idle_ms: None,
        }
    }
}

/// What a key did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// A replay control.
    Handled,
    /// Not a replay key: give it to the cockpit's key handler.
    NotMine,
}
