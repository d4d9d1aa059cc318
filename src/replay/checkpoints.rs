//! The checkpoint store behind replay's seeks: one slot every `every` events, filled from
//! the seek file (each checkpoint checked against the transcript line it follows before it
//! is used), by the controller's own folds, and by the background pass, whose fold from the
//! start is the reference every other checkpoint is compared with and replaced by.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::plan::Plan;
use crate::state::State;
use crate::transcript::Reader;
use crate::transcript::index::Index;
use crate::transcript::seek::{self, SeekFile};

use super::ChainCheck;

/// A checkpoint slot (one per `every` events).
#[derive(Clone)]
enum Slot {
    Empty,
    /// Listed in the seek file, not read yet (the entry's index).
    Stored(usize),
    Ready {
        state: Arc<State>,
        /// Folded by this process from a checked base, or compared with such a fold.
        checked: bool,
        /// The seek file's digest of it, when it came from there.
        digest: Option<String>,
    },
}

/// What the background builder and the controller share.
pub(super) struct Shared {
    pub(super) every: usize,
    index: Arc<Index>,
    plan: Arc<Plan>,
    /// Checkpoints listed in a seek file (see [`crate::transcript::seek`]).
    pub(super) seek: Option<SeekFile>,
    checkpoints: Mutex<Vec<Slot>>,
    /// Notified when a checkpoint is stored or the background pass ends.
    stored: Condvar,
    pub(super) chain: Mutex<ChainCheck>,
    pub(super) stop: AtomicBool,
    /// Events the background pass has folded.
    pub(super) built: AtomicUsize,
    /// Bumped when the background pass replaces a checkpoint that disagreed with its fold.
    pub(super) replaced: AtomicUsize,
    /// The first seek-file checkpoint found wrong or unusable, and why.
    pub(super) seek_problem: Mutex<Option<String>>,
}

impl Shared {
    /// The store for `index`: checkpoint 0 (`initial`) ready, the seek file's listed (the
    /// one in `cache` first, see [`find_seek_file`]).
    pub(super) fn new(
        index: Arc<Index>,
        plan: Arc<Plan>,
        every: usize,
        cache: Option<&Path>,
        initial: &State,
    ) -> Shared {
        let slots = index.len() / every + 1;
        let seek_file = find_seek_file(&index, every, cache);
        let mut checkpoints = vec![Slot::Empty; slots];
        if let Some(f) = &seek_file {
            for (i, e) in f.entries.iter().enumerate() {
                if let Some(slot) = checkpoints.get_mut(e.n / every) {
                    *slot = Slot::Stored(i);
                }
            }
        }
        checkpoints[0] = Slot::Ready {
            state: Arc::new(initial.clone()),
            checked: true,
            digest: None,
        };
        Shared {
            every,
            index,
            plan,
            seek: seek_file,
            checkpoints: Mutex::new(checkpoints),
            stored: Condvar::new(),
            chain: Mutex::new(ChainCheck::Checking(0)),
            stop: AtomicBool::new(false),
            built: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
            seek_problem: Mutex::new(None),
        }
    }

    /// The newest usable checkpoint at or before event `n`: (its event count, state,
    /// checked). Reads a seek-file checkpoint when it is the newest, after checking it
    /// still belongs to this transcript's line.
    pub(super) fn best_at_or_before(&self, n: usize) -> Option<(usize, Arc<State>, bool)> {
        loop {
            let (k, entry) = {
                let cps = self.checkpoints.lock().ok()?;
                let top = (n / self.every).min(cps.len().saturating_sub(1));
                let (k, slot) = (0..=top).rev().find_map(|k| match &cps[k] {
                    Slot::Empty => None,
                    slot => Some((k, slot.clone())),
                })?;
                match slot {
                    Slot::Ready { state, checked, .. } => {
                        return Some((k * self.every, state, checked));
                    }
                    Slot::Stored(e) => (k, e),
                    Slot::Empty => unreachable!("skipped above"),
                }
            };
            // Read outside the lock: the background pass keeps storing meanwhile.
            let loaded = self.load_stored(entry);
            let mut cps = self.checkpoints.lock().ok()?;
            if matches!(cps[k], Slot::Stored(e) if e == entry) {
                cps[k] = match loaded {
                    Ok(state) => Slot::Ready {
                        state: Arc::new(state),
                        checked: false,
                        digest: self.seek.as_ref().map(|f| f.entries[entry].digest.clone()),
                    },
                    Err(why) => {
                        self.note_seek_problem(why);
                        Slot::Empty
                    }
                };
            }
        }
    }

    /// A seek-file checkpoint's state, if the transcript line it follows is unchanged.
    fn load_stored(&self, entry: usize) -> Result<State, String> {
        let file = self.seek.as_ref().ok_or("no seek file")?;
        let e = &file.entries[entry];
        let line = self
            .index
            .record_hash(e.n - 1)
            .map_err(|err| format!("reading event {}: {err}", e.n))?;
        if line != e.hash {
            return Err(format!(
                "{}: checkpoint at event {} follows a line the transcript no longer has",
                file.path.display(),
                e.n
            ));
        }
        file.load(entry, Arc::clone(&self.plan))
    }

    fn note_seek_problem(&self, why: String) {
        tracing::warn!("seek file: {why}");
        if let Ok(mut p) = self.seek_problem.lock()
            && p.is_none()
        {
            *p = Some(why);
        }
    }

    /// Stores a checkpoint the controller folded (`checked`: from a checked base).
    pub(super) fn store(&self, n: usize, state: &State, checked: bool) {
        if !n.is_multiple_of(self.every) {
            return;
        }
        if let Ok(mut cps) = self.checkpoints.lock()
            && let Some(slot) = cps.get_mut(n / self.every)
            && matches!(slot, Slot::Empty)
        {
            *slot = Slot::Ready {
                state: Arc::new(state.clone()),
                checked,
                digest: None,
            };
        }
        self.stored.notify_all();
    }

    /// Stores a checkpoint of the background fold, which is the reference: a checkpoint
    /// already there (from the seek file, or folded from one) is compared with it and
    /// replaced when it differs.
    fn store_checked(&self, n: usize, state: &State) {
        if !n.is_multiple_of(self.every) {
            return;
        }
        let k = n / self.every;
        let existing = match self.checkpoints.lock() {
            Ok(cps) => cps.get(k).cloned(),
            Err(_) => return,
        };
        let (expected, keep) = match existing {
            None | Some(Slot::Ready { checked: true, .. }) => return self.stored.notify_all(),
            Some(Slot::Empty) => (None, None),
            Some(Slot::Stored(e)) => (
                self.seek.as_ref().map(|f| f.entries[e].digest.clone()),
                None,
            ),
            Some(Slot::Ready {
                state: s, digest, ..
            }) => (
                digest.or_else(|| s.snapshot().ok().map(|b| seek::digest(&b))),
                Some(s),
            ),
        };
        let mut agrees = expected.is_none();
        if let Some(expected) = &expected {
            agrees = state
                .snapshot()
                .is_ok_and(|b| seek::digest(&b) == *expected);
            if !agrees {
                self.note_seek_problem(format!(
                    "the checkpoint at event {n} differs from the transcript folded from the start; replaced"
                ));
            }
        }
        if let Ok(mut cps) = self.checkpoints.lock() {
            cps[k] = Slot::Ready {
                state: match keep {
                    Some(s) if agrees => s,
                    _ => Arc::new(state.clone()),
                },
                checked: true,
                digest: None,
            };
        }
        if !agrees {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.stored.notify_all();
    }

    /// Whether slot `k` holds a checked checkpoint.
    pub(super) fn is_checked(&self, k: usize) -> bool {
        self.checkpoints
            .lock()
            .is_ok_and(|cps| matches!(cps.get(k), Some(Slot::Ready { checked: true, .. })))
    }

    /// Waits (at most `timeout`) for a checkpoint past event `pos`.
    pub(super) fn wait_for_progress(&self, pos: usize, timeout: Duration) {
        let Ok(cps) = self.checkpoints.lock() else {
            return;
        };
        let k = pos / self.every + 1;
        // Spurious wake-ups and timeouts only make the caller look again.
        let _ = self.stored.wait_timeout_while(cps, timeout, |cps| {
            cps.get(k).is_some_and(|c| matches!(c, Slot::Empty))
        });
    }
}

/// Starts the background pass on its own thread; when it ends, its checkpoints are kept in
/// `cache` (see [`save_checkpoints`]).
pub(super) fn spawn_builder(
    index: Arc<Index>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    cache: Option<PathBuf>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("replay-checkpoints".into())
        .spawn(move || {
            build_checkpoints(&index, plan, &shared);
            if let Some(dir) = cache {
                save_checkpoints(&index, &shared, &dir);
            }
        })
}

/// The background pass: folds every event once, keeping a checkpoint every `every`. A
/// second thread parses ahead and checks the hash chain with the streaming reader; after a
/// break it goes on parsing from the index (the events still replay; the footer says the
/// chain is broken).
fn build_checkpoints(index: &Index, plan: Arc<Plan>, shared: &Shared) {
    const BATCH: usize = 2048;
    let total = index.len();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<crate::event::Event>>(8);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut reader = match Reader::open(index.path()) {
                Ok(r) => Some(r),
                Err(e) => {
                    set_chain(shared, ChainCheck::Broken(e.to_string()));
                    None
                }
            };
            let mut n = 0usize;
            while n < total && !shared.stop.load(Ordering::Relaxed) {
                let mut batch = Vec::with_capacity(BATCH);
                if let Some(r) = reader.as_mut() {
                    while batch.len() < BATCH && n + batch.len() < total {
                        match r.next_event() {
                            Ok(Some(ev)) => batch.push(ev),
                            Ok(None) => break,
                            Err(e) => {
                                set_chain(shared, ChainCheck::Broken(e.to_string()));
                                reader = None;
                                break;
                            }
                        }
                    }
                }
                if batch.is_empty() {
                    // No reader (or it stopped short): parse from the index instead.
                    reader = None;
                    match index.events(n..(n + BATCH).min(total)) {
                        Ok(evs) if !evs.is_empty() => batch = evs,
                        _ => break,
                    }
                }
                n += batch.len();
                if reader.is_some() {
                    set_chain(shared, ChainCheck::Checking(n));
                }
                if tx.send(batch).is_err() {
                    break;
                }
            }
            if reader.is_some() && n >= total {
                set_chain(shared, ChainCheck::Intact);
            }
        });
        let mut state = State::new(plan);
        let mut n = 0usize;
        for batch in rx {
            if shared.stop.load(Ordering::Relaxed) {
                // Dropping the receiver ends the parser at its next send.
                break;
            }
            for ev in &batch {
                let _ = state.apply(ev);
                n += 1;
                shared.store_checked(n, &state);
            }
            shared.built.store(n, Ordering::Relaxed);
        }
    });
}

/// The seek file for this transcript: the one a previous replay built and checked (in the
/// cache) before the one the live session wrote beside it.
fn find_seek_file(index: &Index, every: usize, cache: Option<&Path>) -> Option<SeekFile> {
    let candidates = cache
        .and_then(|dir| seek::in_cache(dir, index).ok())
        .into_iter()
        .chain([seek::beside(index.path())]);
    for path in candidates {
        match SeekFile::open(&path, &index.root_hash, every) {
            Ok(Some(f)) if !f.entries.is_empty() => return Some(f),
            Ok(_) => {}
            Err(e) => tracing::warn!("seek file {}: {e}; not used", path.display()),
        }
    }
    None
}

/// After a complete background pass over an intact chain, keeps its checkpoints in the cache
/// when no seek file had them all (or one was wrong), so the next replay seeks at once.
fn save_checkpoints(index: &Index, shared: &Shared, dir: &Path) {
    let total = index.len();
    let every = shared.every;
    let complete = shared
        .seek
        .as_ref()
        .is_some_and(|f| f.entries.len() >= total / every);
    if shared.stop.load(Ordering::Relaxed)
        || total < every
        || shared.built.load(Ordering::Relaxed) < total
        || !matches!(
            *shared.chain.lock().unwrap_or_else(|e| e.into_inner()),
            ChainCheck::Intact
        )
        || (complete && shared.seek_problem.lock().is_ok_and(|p| p.is_none()))
    {
        return;
    }
    let save = || -> std::io::Result<PathBuf> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let to = seek::in_cache(dir, index)?;
        let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
        let mut w = seek::Writer::create(&tmp, &index.root_hash, every)?;
        let cleanup = RemoveOnDrop(Some(tmp.clone()));
        for k in 1..=total / every {
            let state = match shared.checkpoints.lock() {
                Ok(cps) => match &cps[k] {
                    Slot::Ready {
                        state,
                        checked: true,
                        ..
                    } => Arc::clone(state),
                    _ => break,
                },
                Err(_) => break,
            };
            let n = k * every;
            let bytes = state.snapshot().map_err(std::io::Error::other)?;
            w.write_snapshot(n, &index.record_hash(n - 1)?, &bytes)?;
        }
        w.finish_as(&to)?;
        cleanup.disarm();
        Ok(to)
    };
    match save() {
        Ok(to) => tracing::info!("seek checkpoints kept in {}", to.display()),
        Err(e) => tracing::warn!("cannot keep seek checkpoints in {}: {e}", dir.display()),
    }
}

/// Removes a half-written file unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn set_chain(shared: &Shared, c: ChainCheck) {
    if let Ok(mut chain) = shared.chain.lock() {
        // The first break is the one to report.
        if !matches!(*chain, ChainCheck::Broken(_)) {
            *chain = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::event::Event;
    use crate::replay::{Replay, ReplayOptions};
    use crate::transcript::index::Index;
    use crate::transcript::seek;

    #[test]
    fn seeks_from_a_seek_file_equal_a_fold_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 2_345);
        write_seek(&path, 100, &events, None);
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        assert_eq!(r.seek_file(), Some(seek::beside(&path).as_path()));
        for n in [2_345, 2_300, 7, 1_999, 1_000, 0, 2_200, 150] {
            let got = r.state_at(n).unwrap().clone();
            same(&got, &fold(&events[..n]));
            // Without a background pass nothing checked the file's checkpoints.
            assert_eq!(r.checked(), n < 100, "at {n}");
        }
        // The only folding done was from the nearest checkpoint: at most 99 events a seek.
        assert!(r.timeline(200).contains("seek file …"));
        assert_eq!(r.seek_problem(), None);

        // With the background pass every checkpoint gets compared and found right.
        let mut r = Replay::open_with(&path, opts(100, true)).unwrap();
        same(r.state_at(2_250).unwrap(), &fold(&events[..2_250]));
        r.wait_for_checkpoints();
        assert_eq!(r.seek_problem(), None);
        assert!(r.checked());
        assert!(!r.timeline(200).contains("seek file"));
    }

    #[test]
    fn a_forged_seek_file_is_caught_by_the_background_fold_and_the_screen_refolded() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 1_000);
        // Right digests and line hashes, wrong states: notes that never happened.
        let mut forged = events.clone();
        for e in &mut forged {
            if let Event::Note { text, .. } = e {
                *text = "all good, nothing to see".into();
            }
        }
        write_seek(&path, 100, &events, Some(&forged));
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        let shown = r.state_at(950).unwrap().clone();
        assert!(
            shown.log.iter().any(|l| l.text.contains("nothing to see")),
            "without a check the forged checkpoint is what a seek restores"
        );
        drop(r);

        let mut r = Replay::open_with(&path, opts(100, true)).unwrap();
        r.state_at(950).unwrap();
        r.wait_for_checkpoints();
        let problem = r.seek_problem().expect("the forgery is reported");
        assert!(problem.contains("differs from the transcript"), "{problem}");
        assert!(r.timeline(200).contains("SEEK FILE WRONG"));
        // The next frame folds the screen again from checked checkpoints.
        r.work(usize::MAX);
        same(r.state(), &fold(&events[..950]));
        for n in [100, 500, 999] {
            same(r.state_at(n).unwrap(), &fold(&events[..n]));
        }
    }

    #[test]
    fn a_seek_file_is_not_used_for_lines_that_changed_or_another_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let (path, events) = transcript(dir.path(), 1_000);
        write_seek(&path, 100, &events, None);
        // Another interval: the file is not for this replay.
        let r = Replay::open_with(&path, opts(50, false)).unwrap();
        assert_eq!(r.seek_file(), None);
        drop(r);
        // Rewrite event 800's line (whitespace only, still the same event): the checkpoint
        // taken right after it no longer follows a line of this file.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[800] = lines[800].replacen("\"at\":", "\"at\" :", 1);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut r = Replay::open_with(&path, opts(100, false)).unwrap();
        assert!(r.seek_file().is_some());
        same(r.state_at(750).unwrap(), &fold(&events[..750]));
        assert_eq!(
            r.seek_problem(),
            None,
            "checkpoints before the edit are fine"
        );
        same(r.state_at(850).unwrap(), &fold(&events[..850]));
        let problem = r.seek_problem().expect("the stale checkpoint is reported");
        assert!(problem.contains("no longer has"), "{problem}");
        same(r.state_at(950).unwrap(), &fold(&events[..950]));
        // A transcript with another header: the file names another root.
        let (other, _) = transcript_created(&dir.path().join("other"), 1_000, T0 + 1);
        std::fs::copy(seek::beside(&path), seek::beside(&other)).unwrap();
        let r = Replay::open_with(&other, opts(100, false)).unwrap();
        assert_eq!(r.seek_file(), None);
    }

    #[test]
    fn a_replay_that_built_its_checkpoints_keeps_them_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let (path, events) = transcript(dir.path(), 1_234);
        let with_cache = || ReplayOptions {
            seek_cache: Some(cache.clone()),
            ..opts(100, true)
        };
        let mut r = Replay::open_with(&path, with_cache()).unwrap();
        assert_eq!(r.seek_file(), None);
        r.wait_for_checkpoints();
        drop(r);
        let kept = seek::in_cache(&cache, &Index::open(&path).unwrap()).unwrap();
        assert!(kept.exists(), "{}", kept.display());
        assert!(
            !seek::beside(&path).exists(),
            "nothing is written beside the evidence"
        );
        let mut r = Replay::open_with(
            &path,
            ReplayOptions {
                background: false,
                ..with_cache()
            },
        )
        .unwrap();
        assert_eq!(r.seek_file(), Some(kept.as_path()));
        for n in [1_234, 1_200, 345] {
            same(r.state_at(n).unwrap(), &fold(&events[..n]));
        }
    }
}
