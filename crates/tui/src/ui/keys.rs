//! Keys to UI changes and intents. Pure apart from mutating `UiState`: decisions leave as
//! events (`StepConfirmRequested` → `StepConfirmed`, as gitui pairs ConfirmAction and
//! ConfirmedAction) so the transcript holds every one of them, refusals included.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::dialogs::ROLLBACK_PHRASE;
use super::{Dialog, Intent, Pane, ShareCommand, UiState};
use cutover_core::event::{Event, Ts};
use cutover_core::plan::GuardAction;
use cutover_core::state::{CLEAR_PHRASE, RollbackStatus, State, StepStatus};

/// Longest phrase we keep typing into; past this a stuck key is not a phrase.
const MAX_INPUT: usize = 200;
const PAGE: usize = 10;

pub fn handle_key(ui: &mut UiState, state: &State, key: KeyEvent, now: Ts) -> Vec<Intent> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    ui.notice = None;
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let ctrl_c = ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C'));

    if ui.quit_confirm {
        ui.quit_confirm = false;
        return match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => vec![Intent::Quit],
            // Put things back before leaving: the rollback dialog, as `R` opens it.
            KeyCode::Char('R') | KeyCode::Char('r') => open_rollback(ui, state, now),
            // A second Ctrl-C means it.
            _ if ctrl_c => vec![Intent::Quit],
            _ => Vec::new(),
        };
    }
    if ui.help {
        // Any key closes the help and does nothing else: a key pressed to dismiss an
        // overlay must not also act. Ctrl-C still means "get me out".
        ui.help = false;
        return if ctrl_c { quit(ui, state) } else { Vec::new() };
    }
    if ui.dialog == Some(Dialog::Invites) {
        return if ctrl_c {
            close(ui);
            quit(ui, state)
        } else {
            invites_key(ui, key)
        };
    }
    if let Some(dialog) = ui.dialog {
        if ctrl_c {
            let mut out = cancel(ui, state, dialog, now);
            out.extend(quit(ui, state));
            return out;
        }
        return in_dialog(ui, state, dialog, key, now);
    }
    if ctrl_c {
        return quit(ui, state);
    }
    match key.code {
        KeyCode::Char('?') => ui.help = true,
        KeyCode::Char('q') => return quit(ui, state),
        KeyCode::Tab => ui.focus = ui.focus.next(),
        KeyCode::BackTab => ui.focus = ui.focus.prev(),
        KeyCode::Char('z') => ui.zoomed = !ui.zoomed,
        KeyCode::Esc => {
            if ui.zoomed {
                ui.zoomed = false;
            } else {
                ui.selected = None;
            }
        }
        KeyCode::Up | KeyCode::Char('k') => scroll(ui, state, -1),
        KeyCode::Down | KeyCode::Char('j') => scroll(ui, state, 1),
        KeyCode::PageUp => scroll(ui, state, -(PAGE as i64)),
        KeyCode::PageDown => scroll(ui, state, PAGE as i64),
        KeyCode::Home | KeyCode::Char('g') => scroll(ui, state, i64::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => scroll(ui, state, i64::MAX / 2),
        KeyCode::Enter => return open_confirm(ui, state, now),
        KeyCode::Char('R') => return open_rollback(ui, state, now),
        KeyCode::Char('H') => open_clear_hold(ui, state),
        KeyCode::Char('T') => {
            ui.notice = Some(match &ui.share {
                Some(share) => share.summary(&state.plan),
                None => NOT_SHARED.into(),
            });
        }
        KeyCode::Char('I') => match &ui.share {
            Some(_) if ui.mode.can_act() => {
                ui.input.clear();
                ui.dialog_error = None;
                ui.dialog = Some(Dialog::Invites);
            }
            Some(_) => read_only(ui),
            None => ui.notice = Some(NOT_SHARED.into()),
        },
        _ => {}
    }
    Vec::new()
}

const NOT_SHARED: &str =
    "this session is not shared (start it with --share ADDR --invite NAME:approver)";

/// The invites dialog: a command line (`invite NAME[:approver]`, `revoke NAME`, `show
/// NAME`); Esc closes it. Nothing here is recorded by the view: the share records what
/// it does.
fn invites_key(ui: &mut UiState, key: KeyEvent) -> Vec<Intent> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => close(ui),
        KeyCode::Enter => {
            let typed = ui.input.trim().to_string();
            let (verb, rest) = typed.split_once(' ').unwrap_or((typed.as_str(), ""));
            let arg = rest.trim().to_string();
            let cmd = match verb {
                "invite" | "i" if !arg.is_empty() => ShareCommand::Invite(arg),
                "revoke" | "r" if !arg.is_empty() => ShareCommand::Revoke(arg),
                "show" | "s" if !arg.is_empty() => ShareCommand::Show(arg),
                _ => {
                    ui.dialog_error = Some(format!(
                        "{} type `invite NAME:approver`, `invite NAME` (observer), `revoke NAME` \
                         or `show NAME`",
                        super::panes::sym::BAD
                    ));
                    return Vec::new();
                }
            };
            ui.input.clear();
            ui.dialog_error = None;
            return vec![Intent::Share(cmd)];
        }
        KeyCode::Backspace => {
            ui.input.pop();
        }
        KeyCode::Char('u') if ctrl => ui.input.clear(),
        KeyCode::Char(c)
            if !ctrl
                && !key.modifiers.contains(KeyModifiers::ALT)
                && ui.input.chars().count() < MAX_INPUT =>
        {
            ui.input.push(c);
        }
        _ => {}
    }
    Vec::new()
}

/// Carries out an invites-dialog command on the running share: the result goes to the
/// notice line, a refusal stays in the dialog.
pub fn run_share_command(ui: &mut UiState, cmd: ShareCommand) {
    let Some(share) = ui.share.clone() else {
        ui.notice = Some(NOT_SHARED.into());
        return;
    };
    let done = match cmd {
        ShareCommand::Invite(spec) => share
            .issue(&spec)
            .map(|cmd| format!("invited — hand this to them only: {cmd}")),
        ShareCommand::Revoke(name) => share
            .revoke(&name)
            .map(|name| format!("revoked {name}'s invite: their token no longer works")),
        ShareCommand::Show(name) => share
            .command_for(&name)
            .map(|cmd| format!("{name}: {cmd}"))
            .ok_or_else(|| format!("nobody named \"{name}\" holds a live invite")),
    };
    match done {
        Ok(text) => {
            close(ui);
            ui.notice = Some(text);
        }
        Err(e) => ui.dialog_error = Some(format!("{} {e}", super::panes::sym::BAD)),
    }
}

fn quit(ui: &mut UiState, state: &State) -> Vec<Intent> {
    // Watchers and replays change nothing by leaving; a driver leaving mid-cutover might.
    if ui.mode.can_act() && state.under_way() {
        ui.quit_confirm = true;
        Vec::new()
    } else {
        vec![Intent::Quit]
    }
}

/// Rows of content a pane scrolls over.
fn content_len(state: &State, pane: Pane) -> usize {
    match pane {
        Pane::Checklist => state.steps.len(),
        Pane::Validation => state.tables.values().filter(|t| t.stat.is_some()).count(),
        Pane::Drift => state.tables.len(),
        Pane::Metrics => state.metrics.len(),
        Pane::Log => state.log.len(),
        Pane::Replication | Pane::Dns => 0,
    }
}

/// Moves the selection (checklist) or the scroll offset (other panes) by `delta`, clamped
/// to the content. The draw clamps again to what fits on screen.
fn scroll(ui: &mut UiState, state: &State, delta: i64) {
    let pane = ui.focus;
    let len = content_len(state, pane);
    let max = len.saturating_sub(1) as i64;
    match pane {
        Pane::Checklist => {
            let cur = ui.selected_step(state).unwrap_or(0) as i64;
            ui.selected = Some((cur + delta).clamp(0, max.max(0)) as usize);
        }
        // The log counts up from the newest line: "down" is towards now.
        Pane::Log => {
            let cur = ui.scroll[pane.index()] as i64;
            ui.scroll[pane.index()] = (cur - delta).clamp(0, max.max(0)) as usize;
        }
        _ => {
            let cur = ui.scroll[pane.index()] as i64;
            ui.scroll[pane.index()] = (cur + delta).clamp(0, max.max(0)) as usize;
        }
    }
}

fn read_only(ui: &mut UiState) {
    ui.notice = Some(format!(
        "{} read-only: this screen cannot confirm or roll back",
        ui.mode.label()
    ));
}

fn open_confirm(ui: &mut UiState, state: &State, now: Ts) -> Vec<Intent> {
    if !ui.mode.can_act() {
        read_only(ui);
        return Vec::new();
    }
    let Some(step) = ui.selected_step(state) else {
        ui.notice = Some(if state.completed() {
            "every step is done".into()
        } else {
            "no step can run now".into()
        });
        return Vec::new();
    };
    let id = state.plan.steps[step].id.clone();
    if state.next_step() != Some(step) {
        ui.notice = Some(match (state.steps[step].status, state.next_step()) {
            (StepStatus::Done, _) => format!("step {} {id} is already done", step + 1),
            (_, Some(n)) => format!(
                "step {} {id} is not next: only step {} {} can run next",
                step + 1,
                n + 1,
                state.plan.steps[n].id
            ),
            (_, None) => "no step can run now".into(),
        });
        return Vec::new();
    }
    if let Some(why) = state.confirm_blocker(step) {
        ui.notice = Some(format!("cannot confirm {id}: {why}"));
        return Vec::new();
    }
    ui.dialog = Some(Dialog::Confirm { step });
    ui.input.clear();
    ui.dialog_error = None;
    vec![Intent::Record(Event::StepConfirmRequested {
        at: now,
        step: id,
        by: ui.operator.clone(),
    })]
}

fn open_rollback(ui: &mut UiState, state: &State, now: Ts) -> Vec<Intent> {
    if !ui.mode.can_act() {
        read_only(ui);
        return Vec::new();
    }
    if state
        .rollback
        .as_ref()
        .is_some_and(|r| matches!(r.status, RollbackStatus::Running | RollbackStatus::Waiting))
    {
        ui.notice = Some("a rollback is already under way".into());
        return Vec::new();
    }
    let anything = state.steps.iter().any(|s| {
        matches!(
            s.status,
            StepStatus::Done | StepStatus::Failed | StepStatus::UndoFailed | StepStatus::Running
        )
    });
    if !anything {
        ui.notice = Some("nothing to roll back: no step has run".into());
        return Vec::new();
    }
    ui.dialog = Some(Dialog::Rollback);
    ui.input.clear();
    ui.dialog_error = None;
    vec![Intent::Record(Event::RollbackRequested {
        at: now,
        by: ui.operator.clone(),
    })]
}

/// The guard whose hold the `H` dialog clears: the oldest one an operator may clear.
pub fn clearable_hold(state: &State) -> Option<&cutover_core::state::GuardHold> {
    state
        .guard_holds
        .iter()
        .find(|h| h.then == GuardAction::Hold)
}

/// Opens the clear-hold dialog. Opening it records nothing: only the clear is a decision.
fn open_clear_hold(ui: &mut UiState, state: &State) {
    if !ui.mode.can_act() {
        read_only(ui);
        return;
    }
    if clearable_hold(state).is_none() {
        ui.notice = Some("nothing is held: no abort condition or step timeout fired".into());
        return;
    }
    ui.dialog = Some(Dialog::ClearHold);
    ui.input.clear();
    ui.dialog_error = None;
}

fn close(ui: &mut UiState) {
    ui.dialog = None;
    ui.input.clear();
    ui.dialog_error = None;
}

fn cancel(ui: &mut UiState, state: &State, dialog: Dialog, now: Ts) -> Vec<Intent> {
    close(ui);
    let by = ui.operator.clone();
    vec![Intent::Record(match dialog {
        Dialog::Confirm { step } => Event::StepConfirmCancelled {
            at: now,
            step: state
                .plan
                .steps
                .get(step)
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            by,
        },
        Dialog::Rollback => Event::RollbackCancelled { at: now, by },
        // Closed without a record: the share records what the dialog did.
        Dialog::Invites => return Vec::new(),
        // Opening it was not recorded; closing it decides nothing.
        Dialog::ClearHold => return Vec::new(),
    })]
}

fn in_dialog(
    ui: &mut UiState,
    state: &State,
    dialog: Dialog,
    key: KeyEvent,
    now: Ts,
) -> Vec<Intent> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => cancel(ui, state, dialog, now),
        KeyCode::Enter => submit(ui, state, dialog, now),
        KeyCode::Backspace => {
            ui.input.pop();
            Vec::new()
        }
        KeyCode::Char('u') if ctrl => {
            ui.input.clear();
            Vec::new()
        }
        KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
            if ui.input.chars().count() < MAX_INPUT {
                ui.input.push(c);
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn submit(ui: &mut UiState, state: &State, dialog: Dialog, now: Ts) -> Vec<Intent> {
    let by = ui.operator.clone();
    // Surrounding spaces are forgiven: a stray space at 2 a.m. is not a wrong decision.
    let typed = ui.input.trim().to_string();
    match dialog {
        Dialog::Confirm { step } => {
            let Some(def) = state.plan.steps.get(step) else {
                close(ui);
                return Vec::new();
            };
            let id = def.id.clone();
            let reason = if typed != def.confirm {
                ui.dialog_error = Some(format!(
                    "{} that is not the phrase: type `{}` exactly",
                    super::panes::sym::BAD,
                    def.confirm
                ));
                "wrong phrase".to_string()
            } else if let Some(why) = state.confirm_blocker(step) {
                ui.dialog_error = Some(format!(
                    "{} cannot confirm now: {why}",
                    super::panes::sym::BAD
                ));
                why
            } else {
                close(ui);
                ui.selected = None;
                return vec![Intent::Record(Event::StepConfirmed {
                    at: now,
                    step: id,
                    by,
                })];
            };
            vec![Intent::Record(Event::StepConfirmRejected {
                at: now,
                step: id,
                by,
                reason,
            })]
        }
        Dialog::Invites => Vec::new(),
        Dialog::ClearHold => {
            let Some(hold) = clearable_hold(state) else {
                close(ui);
                return Vec::new();
            };
            if typed != CLEAR_PHRASE {
                ui.dialog_error = Some(format!(
                    "{} that is not the phrase: type `{CLEAR_PHRASE}` exactly",
                    super::panes::sym::BAD
                ));
                return Vec::new();
            }
            let guard = hold.guard.clone();
            close(ui);
            vec![Intent::Record(Event::HoldCleared { at: now, guard, by })]
        }
        Dialog::Rollback => {
            if typed != ROLLBACK_PHRASE {
                // No rejection event exists for a rollback; the dialog stays open.
                ui.dialog_error = Some(format!(
                    "{} that is not the phrase: type `{ROLLBACK_PHRASE}` exactly",
                    super::panes::sym::BAD
                ));
                return Vec::new();
            }
            close(ui);
            ui.selected = None;
            vec![Intent::Record(Event::RollbackConfirmed {
                at: now,
                by,
                reason: "operator".into(),
            })]
        }
    }
}
