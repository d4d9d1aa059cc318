//! GTID arithmetic: how many source transactions a replica has not applied, exactly.
//!
//! MySQL GTID sets are `uuid[:tag]:interval[:interval...]` joined by commas (`@@gtid_executed`);
//! the gap is the number of GTIDs in the source's set that are not in the replica's (set
//! subtraction, counted). MariaDB GTIDs are `domain-server-seqno`, one per replication domain
//! (`@@gtid_binlog_pos`, `@@gtid_slave_pos`); seqnos grow within a domain, so the gap is the
//! sum over the source's domains of its seqno minus the replica's.

use std::collections::BTreeMap;
use std::fmt;

/// A text that is not a GTID set, with what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a GTID set: {0}")]
pub struct GtidError(String);

/// A MySQL GTID set: per source (uuid, or uuid:tag), sorted disjoint closed intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MysqlGtidSet(BTreeMap<String, Vec<(u64, u64)>>);

impl MysqlGtidSet {
    /// Parses `@@gtid_executed` (whitespace and newlines after commas allowed; empty is the
    /// empty set).
    pub fn parse(text: &str) -> Result<MysqlGtidSet, GtidError> {
        let mut set = MysqlGtidSet::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':').map(str::trim);
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(GtidError(format!(
                    "\"{part}\" does not start with a server uuid"
                )));
            }
            let mut key = uuid.clone();
            let mut any = false;
            for f in fields {
                match interval(f) {
                    Some((a, b)) => {
                        set.0.entry(key.clone()).or_default().push((a, b));
                        any = true;
                    }
                    // A tag (MySQL 8.4: uuid:tag:1-5) names the intervals that follow it.
                    None if !f.is_empty()
                        && f.len() <= 32
                        && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        key = format!("{uuid}:{}", f.to_ascii_lowercase());
                    }
                    None => {
                        return Err(GtidError(format!(
                            "\"{f}\" in \"{part}\" is not an interval"
                        )));
                    }
                }
            }
            if !any {
                return Err(GtidError(format!("\"{part}\" has no interval")));
            }
        }
        for intervals in set.0.values_mut() {
            normalise(intervals);
        }
        Ok(set)
    }

    /// How many GTIDs the set holds.
    pub fn count(&self) -> u64 {
        self.0
            .values()
            .flatten()
            .fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1))
    }

    /// The GTIDs of `self` that `other` lacks.
    pub fn minus(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut out = MysqlGtidSet::default();
        for (key, mine) in &self.0 {
            let left = match other.0.get(key) {
                Some(theirs) => subtract(mine, theirs),
                None => mine.clone(),
            };
            if !left.is_empty() {
                out.0.insert(key.clone(), left);
            }
        }
        out
    }
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, intervals)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(key)?;
            for (a, b) in intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

fn interval(f: &str) -> Option<(u64, u64)> {
    let (a, b) = match f.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let n = f.parse().ok()?;
            (n, n)
        }
    };
    (a >= 1 && a <= b).then_some((a, b))
}

/// Sorts and merges overlapping or adjacent intervals.
fn normalise(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
}

/// `a \ b` over normalised interval lists.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(start, end) in a {
        let mut from = start;
        let mut covered = false;
        for &(bs, be) in b.iter().skip_while(|(_, be)| *be < start) {
            if bs > end {
                break;
            }
            if bs > from {
                out.push((from, bs - 1));
            }
            if be >= end {
                covered = true;
                break;
            }
            from = be + 1;
        }
        if !covered {
            out.push((from, end));
        }
    }
    out
}

/// A MariaDB GTID position: per replication domain, the last (server id, seqno).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MariaPos(BTreeMap<u32, (u32, u64)>);

impl MariaPos {
    /// Parses `@@gtid_binlog_pos` / `@@gtid_slave_pos` (`0-1-100,1-2-50`; empty is none).
    pub fn parse(text: &str) -> Result<MariaPos, GtidError> {
        let mut pos = MariaPos::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let fields: Vec<&str> = part.split('-').collect();
            let parsed = match fields.as_slice() {
                [d, s, n] => d
                    .parse::<u32>()
                    .ok()
                    .zip(s.parse::<u32>().ok())
                    .zip(n.parse::<u64>().ok()),
                _ => None,
            };
            let Some(((domain, server), seqno)) = parsed else {
                return Err(GtidError(format!("\"{part}\" is not domain-server-seqno")));
            };
            // Two entries for one domain (gtid_binlog_state lists one per server): the
            // newest seqno is the domain's position.
            let e = pos.0.entry(domain).or_insert((server, seqno));
            if seqno > e.1 {
                *e = (server, seqno);
            }
        }
        Ok(pos)
    }

    /// Transactions of `self` (the source) not in `replica`: per domain, the seqno gap.
    pub fn behind(&self, replica: &MariaPos) -> u64 {
        self.0.iter().fold(0u64, |n, (domain, (_, seqno))| {
            let have = replica.0.get(domain).map_or(0, |(_, s)| *s);
            n.saturating_add(seqno.saturating_sub(have))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4c1c1f2a-0000-11e1-9e33-c80aa9429562";

    fn set(text: &str) -> MysqlGtidSet {
        MysqlGtidSet::parse(text).expect("valid set")
    }

    #[test]
    fn mysql_sets_count_and_subtract_with_gaps_and_several_servers() {
        let src = set(&format!("{A}:1-100:105-110,\n{B}:1-5"));
        assert_eq!(src.count(), 100 + 6 + 5);
        let rep = set(&format!("{A}:1-90:106,{B}:1-5"));
        let gap = src.minus(&rep);
        assert_eq!(gap.count(), 10 + 5);
        assert_eq!(gap.to_string(), format!("{A}:91-100:105:107-110"));
        assert_eq!(
            rep.minus(&src).count(),
            0,
            "the replica has nothing the source lacks"
        );
        assert_eq!(set("").count(), 0);
        assert_eq!(src.minus(&set("")).count(), src.count());
        // Upper case uuids, unsorted and overlapping intervals are the same set.
        assert_eq!(
            set(&format!("{}:5-10:1-6", A.to_uppercase())),
            set(&format!("{A}:1-10"))
        );
    }

    #[test]
    fn mysql_tagged_gtids_are_their_own_source() {
        let src = set(&format!("{A}:1-10:blue:1-3"));
        assert_eq!(src.count(), 13);
        assert_eq!(src.minus(&set(&format!("{A}:1-10"))).count(), 3);
    }

    #[test]
    fn bad_mysql_sets_say_what_is_wrong() {
        for bad in ["nope:1-5", A, &format!("{A}:5-1"), &format!("{A}:0")] {
            assert!(MysqlGtidSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mariadb_positions_count_per_domain() {
        let src = MariaPos::parse("0-11-5026,1-12-40").expect("valid");
        let rep = MariaPos::parse("0-11-5012").expect("valid");
        assert_eq!(src.behind(&rep), 14 + 40);
        assert_eq!(src.behind(&src), 0);
        // A replica ahead in a domain (or with a domain the source lacks) is not negative.
        let ahead = MariaPos::parse("0-11-6000,2-1-7").expect("valid");
        assert_eq!(src.behind(&ahead), 40);
        assert_eq!(MariaPos::parse("").expect("empty").behind(&rep), 0);
        assert!(MariaPos::parse("0-1").is_err());
        assert!(MariaPos::parse("a-b-c").is_err());
    }

    fn naive(intervals: &[(u64, u64)]) -> std::collections::BTreeSet<u64> {
        intervals.iter().flat_map(|&(a, b)| a..=b).collect()
    }

    fn text(intervals: &[(u64, u64)]) -> String {
        let mut s = A.to_string();
        for (a, b) in intervals {
            s.push_str(&format!(":{a}-{b}"));
        }
        s
    }

    proptest! {
        #[test]
        fn subtraction_counts_like_sets_of_numbers(
            a in prop::collection::vec((1u64..200, 0u64..20), 1..8),
            b in prop::collection::vec((1u64..200, 0u64..20), 1..8),
        ) {
            let a: Vec<(u64, u64)> = a.into_iter().map(|(s, l)| (s, s + l)).collect();
            let b: Vec<(u64, u64)> = b.into_iter().map(|(s, l)| (s, s + l)).collect();
            let expected = naive(&a).difference(&naive(&b)).count() as u64;
            let got = set(&text(&a)).minus(&set(&text(&b)));
            prop_assert_eq!(got.count(), expected);
            prop_assert_eq!(set(&text(&a)).count(), naive(&a).len() as u64);
            // What is left prints back as the same set.
            prop_assert_eq!(set(&got.to_string()), got.clone());
        }
    }
}
