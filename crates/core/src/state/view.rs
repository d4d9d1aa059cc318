//! Derived, read-only views of the state for the screen (no fold logic lives here).

use super::{State, StepStatus};

impl State {
    /// The steps a rollback confirmed now would undo, in the order it would run them
    /// (newest first): steps that ran (or are running) and have an undo. Mirrors the
    /// fold's own choice of the next undo, so the dialog shows what will really happen.
    pub fn rollback_preview(&self) -> Vec<usize> {
        (0..self.steps.len())
            .rev()
            .filter(|&i| {
                let s = &self.steps[i];
                let ran = matches!(
                    s.status,
                    StepStatus::Done
                        | StepStatus::Failed
                        | StepStatus::UndoFailed
                        | StepStatus::Running
                ) && s.started_at.is_some();
                ran && self.plan.steps.get(i).is_some_and(|p| p.undo.is_some())
            })
            .collect()
    }

    /// Steps a rollback would mark undone without running anything: done (or failed)
    /// steps that have no undo, or never started an action.
    pub fn rollback_marks_only(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| {
                let s = &self.steps[i];
                matches!(s.status, StepStatus::Done | StepStatus::Failed)
                    && (s.started_at.is_none()
                        || self.plan.steps.get(i).is_some_and(|p| p.undo.is_none()))
            })
            .collect()
    }
}
