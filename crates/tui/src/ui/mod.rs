//! The view: draws the folded [`State`] and turns keys into UI changes or recorded intents.
//!
//! Invariants (absences): `draw` never mutates `State`, never reads the clock, the disk or
//! the network — the same state draws the same frame, which is what makes replay and the
//! snapshot tests honest. `handle_key` mutates only [`UiState`]; anything that must reach
//! the transcript leaves as an [`Intent::Record`] for the app loop to record and fold.
//!
//! Codemap: `theme` (styles and presets), `keys` (key handling), `layout` (where each pane
//! goes), `panes/*` (one file per pane), `dialogs` (confirmation, rollback, quit, help),
//! `text` (formatting helpers), `bench` (a big state for the draw benchmark).

pub mod bench;
mod dialogs;
mod keys;
mod layout;
mod panes;
mod text;
mod theme;

#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::widgets::{Block, Widget};

use cutover_core::event::Event;
use cutover_core::state::State;

pub use bench::bench_state;
pub use keys::{handle_key, run_share_command};
pub use theme::{ROLES, Theme, ThemeError};

/// How the cockpit was started. Decides the label and whether keys may act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Driving the embedded rehearsal world.
    Rehearsal,
    /// Driving real systems.
    Drive,
    /// Attached to someone else's session, read-only.
    Watch,
    /// Replaying a transcript, read-only.
    Replay,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Rehearsal => "[REHEARSAL]",
            Mode::Drive => "[DRIVE]",
            Mode::Watch => "[WATCH]",
            Mode::Replay => "[REPLAY]",
        }
    }

    /// Whether step and rollback keys may record decisions.
    pub fn can_act(self) -> bool {
        matches!(self, Mode::Rehearsal | Mode::Drive)
    }
}

/// The panes, in focus (Tab) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Checklist,
    Replication,
    Validation,
    Metrics,
    Drift,
    Dns,
    Log,
}

impl Pane {
    pub const ALL: [Pane; 7] = [
        Pane::Checklist,
        Pane::Replication,
        Pane::Validation,
        Pane::Metrics,
        Pane::Drift,
        Pane::Dns,
        Pane::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Checklist => "Checklist",
            Pane::Replication => "Replication",
            Pane::Validation => "Validation",
            Pane::Metrics => "Metrics",
            Pane::Drift => "Drift",
            Pane::Dns => "DNS",
            Pane::Log => "Log",
        }
    }

    /// Where the pane sits in [`Pane::ALL`] and so in every [`PerPane`] table. An exhaustive
    /// match, so a new pane does not compile until it has its place.
    pub const fn index(self) -> usize {
        match self {
            Pane::Checklist => 0,
            Pane::Replication => 1,
            Pane::Validation => 2,
            Pane::Metrics => 3,
            Pane::Drift => 4,
            Pane::Dns => 5,
            Pane::Log => 6,
        }
    }

    fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

// `ALL` lists each pane at its own index, so indexing a table by `index()` finds that pane.
const _: () = {
    let mut i = 0;
    while i < Pane::ALL.len() {
        assert!(
            Pane::ALL[i].index() == i,
            "Pane::ALL is out of step with Pane::index"
        );
        i += 1;
    }
};

/// One `T` per pane, at [`Pane::index`]. Sized by [`Pane::ALL`], so a new pane changes
/// every table's length and the compiler names each literal that must grow with it.
pub type PerPane<T> = [T; Pane::ALL.len()];

/// A dialog this cockpit's operator has open (their typing goes into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialog {
    Confirm {
        step: usize,
    },
    Rollback,
    /// The invites of a shared session: list, issue, revoke (`I`).
    Invites,
    /// Clear the hold of a guard that fired (`H`): type the phrase.
    ClearHold,
}

/// What the invites dialog asks of the running share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareCommand {
    /// `invite NAME[:observer|:approver]`
    Invite(String),
    /// `revoke NAME`
    Revoke(String),
    /// `show NAME`: their attach command, in the notice line.
    Show(String),
}

/// What the view remembers between frames. Never recorded: nothing here changes the
/// cutover, only what this screen shows.
#[derive(Clone, Debug)]
pub struct UiState {
    pub mode: Mode,
    /// Who is at this keyboard; stamped on recorded decisions.
    pub operator: String,
    /// Where the transcript is written (or read from, in replay).
    pub transcript: Option<String>,
    /// One line explaining why the last key did nothing; cleared by the next key.
    pub notice: Option<String>,
    /// An extra line above the key hints (replay fills it with its timeline).
    pub footer: Option<String>,
    pub focus: Pane,
    /// Per pane scroll offset (rows from the top; for the log, rows up from the newest).
    pub scroll: PerPane<usize>,
    /// The checklist selection; `None` follows the running or next step.
    pub selected: Option<usize>,
    pub dialog: Option<Dialog>,
    /// What has been typed into the open dialog.
    pub input: String,
    /// Why the last submit was refused, shown in the dialog.
    pub dialog_error: Option<String>,
    pub help: bool,
    pub quit_confirm: bool,
    /// The focused pane fills the screen.
    pub zoomed: bool,
    /// The running share, while sharing: its invites are listed, issued and revoked from
    /// the cockpit (`I`); attach commands (tokens included) go to the notice line and the
    /// invites file, never to the terminal's scrollback.
    pub share: Option<crate::share::server::ShareControl>,
    /// Who the AWS calls are made as (`aws <account> <principal>`), when the plan uses AWS.
    pub aws: Option<String>,
}

impl UiState {
    pub fn new(mode: Mode, operator: String, transcript: Option<String>) -> Self {
        UiState {
            mode,
            operator,
            transcript,
            notice: None,
            footer: None,
            focus: Pane::Checklist,
            scroll: [0; Pane::ALL.len()],
            selected: None,
            dialog: None,
            input: String::new(),
            dialog_error: None,
            help: false,
            quit_confirm: false,
            zoomed: false,
            share: None,
            aws: None,
        }
    }

    /// The pane shown full-screen, if any.
    pub fn zoom(&self) -> Option<Pane> {
        self.zoomed.then_some(self.focus)
    }

    /// The step the checklist shows as selected.
    pub fn selected_step(&self, state: &State) -> Option<usize> {
        let n = state.steps.len();
        match self.selected {
            Some(i) if i < n => Some(i),
            _ => state.running_step().or_else(|| state.next_step()),
        }
    }
}

/// What a key asks of the app loop.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Record this event in the transcript (and fold it).
    Record(Event),
    /// Change the running share's invites (the loop holds the share).
    Share(ShareCommand),
    Quit,
}

/// Below this the layout cannot show the checklist next to anything useful.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Draws one frame. Pure: reads `state`, `ui` and `theme`, writes only the frame.
pub fn draw(frame: &mut Frame, state: &State, ui: &UiState, theme: &Theme) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    // Paint the base style first so every cell has the theme's colours, even blank ones.
    Block::new().style(theme.text).render(area, buf);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        dialogs::too_small(buf, area, theme);
        return;
    }
    let ctx = panes::Ctx::new(state, ui, theme);
    let areas = layout::compute(area, &ctx);
    panes::status::render(&ctx, areas.status, buf);
    for (pane, rect) in areas.panes {
        if !rect.is_empty() {
            panes::render(&ctx, pane, rect, areas.frame, buf);
        }
    }
    panes::footer::render(&ctx, areas.footer, buf);
    dialogs::render(&ctx, area, buf);
}
