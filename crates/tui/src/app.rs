//! The terminal loop: one `select!` over the terminal, the session's inbox, a one-second
//! tick and termination signals. It drains every pending event, records and folds them, and
//! draws at most once per frame. The terminal is restored on every exit, panics included
//! (by the thread that owns it; see [`enter_terminal`]).

use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::ui::{self, Intent, Theme, UiState};
use cutover_core::event::{Event, now_ms};
use cutover_runtime::session::{Inbox, Session};

/// At most this many frames a second.
const FPS: u64 = 30;
/// Time advances on screen (ages, sustained windows) once a second with no other event.
const TICK: Duration = Duration::from_secs(1);

/// The thread that has the terminal in raw mode on the alternate screen, if any. Only that
/// thread's panics restore the terminal: a panic in a background task (a poller, an action,
/// the rehearsal world) is caught where it runs and recorded as a failure, and must not pull
/// the screen out from under the loop that keeps drawing on it.
static TERMINAL_OWNER: Mutex<Option<ThreadId>> = Mutex::new(None);

fn owner() -> std::sync::MutexGuard<'static, Option<ThreadId>> {
    TERMINAL_OWNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Restores the terminal when dropped, whatever the exit path.
pub struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let mut owner = owner();
        if owner.take().is_some() {
            ratatui::restore();
        }
    }
}

/// What the panic hook does for a panic on `thread` while `owner` has the terminal.
#[derive(Debug, PartialEq, Eq)]
pub enum OnPanic {
    /// No cockpit on screen: print it as usual.
    Print,
    /// The terminal's own thread: restore the terminal, then print.
    RestoreAndPrint,
    /// Another thread while the cockpit draws: log it only (its task records the failure;
    /// printing would scribble over the screen).
    LogOnly,
}

pub fn on_panic(owner: Option<ThreadId>, thread: ThreadId) -> OnPanic {
    match owner {
        None => OnPanic::Print,
        Some(o) if o == thread => OnPanic::RestoreAndPrint,
        Some(_) => OnPanic::LogOnly,
    }
}

/// Installs (once) the process's panic hook, chained before the default one.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let me = std::thread::current().id();
            let decision = {
                let mut o = owner();
                let d = on_panic(*o, me);
                if d == OnPanic::RestoreAndPrint {
                    *o = None;
                }
                d
            };
            match decision {
                OnPanic::Print => default(info),
                OnPanic::RestoreAndPrint => {
                    ratatui::restore();
                    default(info);
                }
                OnPanic::LogOnly => {
                    tracing::error!(
                        thread = std::thread::current().name().unwrap_or("?"),
                        "background panic: {info}"
                    );
                }
            }
        }));
    });
}

/// Takes over the terminal for a cockpit (live, replay, attach). Keep the guard for as long
/// as the screen is in use. The calling thread becomes the terminal's owner: its panics
/// restore the terminal first; other threads' panics never touch it.
pub fn enter_terminal() -> anyhow::Result<(ratatui::DefaultTerminal, TerminalGuard)> {
    install_panic_hook();
    *owner() = Some(std::thread::current().id());
    let guard = TerminalGuard;
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
    let terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    Ok((terminal, guard))
}

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Quit,
    Signal(&'static str),
    InputClosed,
}

/// Runs the cockpit on the terminal until the operator quits or a signal arrives.
pub async fn run(
    session: &mut Session,
    inbox: &mut Inbox,
    mut ui_state: UiState,
    theme: &Theme,
) -> anyhow::Result<Exit> {
    let (mut terminal, _guard) = enter_terminal()?;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let frame = Duration::from_millis(1000 / FPS);
    let mut last_draw = Instant::now() - frame;
    let mut dirty = true;
    let mut signals = Signals::new()?;

    let exit = loop {
        if dirty && last_draw.elapsed() >= frame {
            terminal.draw(|f| ui::draw(f, &session.state, &ui_state, theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let until_frame = frame.saturating_sub(last_draw.elapsed());
        tokio::select! {
            batch = inbox.next_batch() => {
                session.ingest(batch)?;
                dirty = true;
            }
            _ = tick.tick() => {
                let mut batch = inbox.pending();
                batch.push(Event::Tick { at: now_ms() });
                session.ingest(batch)?;
                dirty = true;
            }
            term = keys.next() => match term {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    let intents = ui::handle_key(&mut ui_state, &session.state, key, now_ms());
                    let mut quit = false;
                    let mut batch = inbox.pending();
                    for intent in intents {
                        match intent {
                            Intent::Record(ev) => batch.push(ev),
                            Intent::Share(cmd) => ui::run_share_command(&mut ui_state, cmd),
                            Intent::Quit => quit = true,
                        }
                    }
                    session.ingest(batch)?;
                    dirty = true;
                    if quit {
                        break Exit::Quit;
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => break Exit::InputClosed,
            },
            name = signals.next() => break Exit::Signal(name),
            _ = tokio::time::sleep(until_frame), if dirty => {}
        }
    };
    // Record what arrived while the loop wound down; the caller records the end itself,
    // after its last measurements.
    session.ingest(inbox.pending())?;
    Ok(exit)
}

impl Exit {
    /// Why the session ended, for `SessionEnded`.
    pub fn reason(&self) -> String {
        match self {
            Exit::Quit => "operator quit".to_string(),
            Exit::Signal(name) => format!("terminated by {name}"),
            Exit::InputClosed => "terminal closed".to_string(),
        }
    }
}

/// SIGTERM, SIGHUP and SIGINT end a cockpit's loop cleanly (raw mode turns Ctrl-C into a
/// key).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for one of them; returns its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
