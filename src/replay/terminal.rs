//! The terminal loop of `cutover replay`: advance the cursor by the wall time that passed,
//! fold a bounded slice towards it, draw when the screen or the footer changed, and hand
//! keys to the controller first and to the cockpit's handler second.

use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::event::Ts;
use crate::transcript::seek;
use crate::ui::{self, Intent, Mode, Theme, UiState};

use super::{FOLD_BUDGET, KeyOutcome, Replay, ReplayOptions};

/// Replays `path` on the terminal until the viewer quits.
pub async fn run_replay(path: &Path, theme: &Theme) -> anyhow::Result<()> {
    run_replay_with(path, theme, ReplayOptions::default(), true).await
}

/// [`run_replay`] with the command line's options.
pub async fn run_replay_args(args: &crate::cli::ReplayArgs, theme: &Theme) -> anyhow::Result<()> {
    run_replay_with(
        &args.file,
        theme,
        ReplayOptions {
            speed: args.speed,
            skip_idle_ms: args.skip_idle.map(|s| s as Ts * 1000),
            seek_cache: seek::default_cache_dir(),
            ..ReplayOptions::default()
        },
        !args.paused,
    )
    .await
}

async fn run_replay_with(
    path: &Path,
    theme: &Theme,
    opts: ReplayOptions,
    play: bool,
) -> anyhow::Result<()> {
    let mut replay = Replay::open_with(path, opts)?;
    if play {
        replay.toggle_play();
    }
    let mut ui_state = UiState::new(
        Mode::Replay,
        replay.index().header.operator.clone(),
        Some(path.display().to_string()),
    );
    let (mut terminal, _guard) = crate::app::enter_terminal()?;
    let mut keys = EventStream::new();
    let frame = Duration::from_millis(1000 / 30);
    let mut ticker = tokio::time::interval(frame);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut signals = crate::app::Signals::new()?;
    let mut last = Instant::now();
    let mut drawn: Option<(usize, String)> = None;
    let mut dirty = true;
    loop {
        let now = Instant::now();
        replay.advance(now - last);
        last = now;
        replay.work(FOLD_BUDGET);
        let width = terminal.size().map(|s| s.width as usize).unwrap_or(80);
        let footer = replay.timeline(width.saturating_sub(1));
        let key = (replay.position(), footer.clone());
        if dirty || drawn.as_ref() != Some(&key) {
            ui_state.footer = Some(footer);
            terminal.draw(|f| ui::draw(f, replay.state(), &ui_state, theme))?;
            drawn = Some(key);
            dirty = false;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            term = keys.next() => match term {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    dirty = true;
                    if replay.handle_key(key) == KeyOutcome::Handled {
                        ui_state.notice = None;
                        continue;
                    }
                    let now = replay.state().now;
                    for intent in ui::handle_key(&mut ui_state, replay.state(), key, now) {
                        match intent {
                            Intent::Quit => return Ok(()),
                            // Read-only: nothing is recorded (the replay mode refuses it anyway).
                            Intent::Record(_) | Intent::Share(_) => {}
                        }
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => return Ok(()),
            },
            _ = signals.next() => return Ok(()),
        }
    }
}
