//! What the replay tests share: a transcript of the rehearsal plan, the fold to compare
//! with, and a seek file written as a live session would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{Event, Ts};
use crate::plan;
use crate::replay::ReplayOptions;
use crate::state::State;
use crate::transcript::index::Index;
use crate::transcript::seek;
use crate::transcript::{Header, Recorder};

pub(super) const T0: Ts = 1_767_225_600_000;

/// A transcript of the rehearsal plan: ticks, a note every 100 events, a confirmation
/// now and then; returns its path and events.
pub(super) fn transcript(dir: &Path, n: usize) -> (PathBuf, Vec<Event>) {
    transcript_created(dir, n, T0)
}

pub(super) fn transcript_created(dir: &Path, n: usize, created_at: Ts) -> (PathBuf, Vec<Event>) {
    let plan = plan::rehearsal_plan();
    let mut r = Recorder::create(
        dir,
        Header {
            created_at,
            mode: "test".into(),
            operator: "op".into(),
            host: "h".into(),
            program_version: "0".into(),
            plan_name: plan.name.clone(),
            plan_hash: plan.hash.clone(),
            plan_text: plan.source_text.clone(),
            resumed_from: None,
            approvers: Vec::new(),
            aws: None,
        },
    )
    .unwrap();
    let mut events = vec![Event::SessionStarted {
        at: T0,
        mode: "test".into(),
        operator: "op".into(),
    }];
    for i in 1..n as i64 {
        let at = T0 + i * 500;
        events.push(match i % 100 {
            50 => Event::Note {
                at,
                text: format!("note {i}"),
            },
            99 => Event::StepConfirmed {
                at,
                step: "preflight".into(),
                by: "op".into(),
            },
            _ => Event::Tick { at },
        });
    }
    r.append(&events).unwrap();
    (r.path().to_path_buf(), events)
}

pub(super) fn fold(events: &[Event]) -> State {
    let mut s = State::new(Arc::new(plan::rehearsal_plan()));
    for e in events {
        let _ = s.apply(e);
    }
    s
}

pub(super) fn same(a: &State, b: &State) {
    assert_eq!(a.events, b.events);
    assert_eq!(a.now, b.now);
    assert_eq!(a.log, b.log);
    assert_eq!(a.steps, b.steps);
    assert!(
        a.snapshot().unwrap() == b.snapshot().unwrap(),
        "states differ at event {}",
        a.events
    );
}

/// Writes the seek file a live session would have written beside `path` (a checkpoint
/// every `every` events), folding `states_from` instead of the recorded events when given
/// (a forged file whose digests and line hashes are right).
pub(super) fn write_seek(
    path: &Path,
    every: usize,
    events: &[Event],
    states_from: Option<&[Event]>,
) {
    let index = Index::open(path).unwrap();
    let mut w = seek::Writer::create(&seek::beside(path), &index.root_hash, every).unwrap();
    for n in (every..=events.len()).step_by(every) {
        let state = fold(&states_from.unwrap_or(events)[..n]);
        w.checkpoint(&index.record_hash(n - 1).unwrap(), &state)
            .unwrap();
    }
}

pub(super) fn opts(every: usize, background: bool) -> ReplayOptions {
    ReplayOptions {
        checkpoint_every: every,
        background,
        ..ReplayOptions::default()
    }
}
