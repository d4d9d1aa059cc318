//! What the window cost: the ledger of acknowledged writes (to count the ones whose effect
//! the authoritative database lost) and the refusal intervals (to measure downtime).

use std::collections::HashMap;

use tokio::time::Instant;

use super::db::RowDigest;

/// The effect one acknowledged write had on its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The row now holds this image (insert or update); `version` is the write's sequence.
    Wrote {
        version: i64,
        digest: RowDigest,
    },
    Deleted,
}

/// Acknowledged writes per row `(table index, id)`, oldest first.
///
/// Every write rewrites the whole row and keys are never reused, so a row's current state
/// on a database names exactly one point in its chain: the writes up to it are reflected
/// (a later write supersedes an earlier one), the writes after it were lost.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    rows: HashMap<(usize, i64), Vec<Effect>>,
}

impl Ledger {
    pub fn record(&mut self, table: usize, id: i64, effect: Effect) {
        self.rows.entry((table, id)).or_default().push(effect);
    }

    /// Acknowledged writes whose effect is absent from a database whose rows are given as
    /// `state(table, id) -> Some((version, digest))`, `None` when the row is absent.
    pub fn lost(&self, state: impl Fn(usize, i64) -> Option<(i64, RowDigest)>) -> u64 {
        let mut lost = 0u64;
        for (&(table, id), chain) in &self.rows {
            let reflected_upto = match state(table, id) {
                Some((version, digest)) => chain
                    .iter()
                    .rposition(|e| *e == Effect::Wrote { version, digest }),
                None => chain.iter().rposition(|e| *e == Effect::Deleted),
            };
            let reflected = reflected_upto.map_or(0, |k| k + 1);
            lost += (chain.len() - reflected) as u64;
        }
        lost
    }
}

/// Seconds covered by the union of intervals; open ones end at `now`.
pub(crate) fn union_seconds(
    closed: &[(Instant, Instant)],
    open: impl Iterator<Item = Instant>,
    now: Instant,
) -> f64 {
    let mut all: Vec<(Instant, Instant)> = closed.to_vec();
    all.extend(open.map(|from| (from, now.max(from))));
    all.sort_by_key(|(from, _)| *from);
    let mut total = 0.0;
    let mut current: Option<(Instant, Instant)> = None;
    for (from, to) in all {
        current = match current {
            Some((cf, ct)) if from <= ct => Some((cf, ct.max(to))),
            Some((cf, ct)) => {
                total += (ct - cf).as_secs_f64();
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((cf, ct)) = current {
        total += (ct - cf).as_secs_f64();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wrote(v: i64) -> Effect {
        Effect::Wrote {
            version: v,
            digest: [v as u8; 32],
        }
    }

    #[test]
    fn ledger_counts_writes_after_the_reflected_state() {
        let mut l = Ledger::default();
        // Row 1: insert v1, update v2, update v3; the database holds v2: one write lost.
        for v in 1..=3 {
            l.record(0, 1, wrote(v));
        }
        // Row 2: update v4 then delete; the database has no row: nothing lost.
        l.record(0, 2, wrote(4));
        l.record(0, 2, Effect::Deleted);
        // Row 3: insert v5; absent on the database: lost.
        l.record(1, 3, wrote(5));
        // Row 4: delete; still present with an older image: lost.
        l.record(1, 4, Effect::Deleted);
        let state = |t: usize, id: i64| match (t, id) {
            (0, 1) => Some((2, [2u8; 32])),
            (1, 4) => Some((0, [0u8; 32])),
            _ => None,
        };
        assert_eq!(l.lost(state), 3);
        // Same version, different content: not reflected.
        let mut l = Ledger::default();
        l.record(0, 1, wrote(7));
        assert_eq!(l.lost(|_, _| Some((7, [9u8; 32]))), 1);
    }

    #[test]
    fn union_merges_overlaps_and_closes_open_intervals() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let closed = [(s(0), s(2)), (s(1), s(3)), (s(5), s(6))];
        let total = union_seconds(&closed, [s(8)].into_iter(), s(10));
        assert!((total - 6.0).abs() < 1e-9, "{total}");
    }
}
