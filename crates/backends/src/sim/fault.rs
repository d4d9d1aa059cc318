//! Rehearsal faults: named disturbances of the world that the operator practises on.
//!
//! Each fault is deterministic for a seed; when it starts and ends the world emits
//! `Event::FaultChanged`, so the transcript says what was injected and when.

use std::fmt;
use std::str::FromStr;

/// A disturbance the rehearsal world can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Replication lag jumps to about 6 s for about 8 s, shortly after the start.
    LagSpike,
    /// The replicator silently loses one data change still in its backlog at the freeze.
    DropChange,
    /// The API sources (replication, metrics, DNS) are throttled for about 10 s.
    ApiThrottle,
    /// DNS changes stay PENDING about 15 s.
    DnsSlow,
    /// The replicator stops applying for about 10 s while its task still reports running.
    ReplicatorStall,
    /// The drift source's poll panics (an internal error) for about 10 s.
    SourcePanic,
    /// After the drain was green: when replication is stopped, a stray writer inserts a row
    /// on the target behind the replicator's back, so the sides diverge late.
    LateDrift,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::LagSpike,
        Fault::DropChange,
        Fault::ApiThrottle,
        Fault::DnsSlow,
        Fault::ReplicatorStall,
        Fault::SourcePanic,
        Fault::LateDrift,
    ];

    /// The name used on the command line and in `FaultChanged` events.
    pub fn name(self) -> &'static str {
        match self {
            Fault::LagSpike => "lag-spike",
            Fault::DropChange => "drop-change",
            Fault::ApiThrottle => "api-throttle",
            Fault::DnsSlow => "dns-slow",
            Fault::ReplicatorStall => "replicator-stall",
            Fault::SourcePanic => "source-panic",
            Fault::LateDrift => "late-drift",
        }
    }

    /// One line for `--help` and the fault pane.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::LagSpike => "replication lag jumps to ~6s for ~8s, ~3s after the start",
            Fault::DropChange => {
                "the replicator silently loses one change still in its backlog when the source is frozen"
            }
            Fault::ApiThrottle => {
                "replication, metrics and DNS APIs answer ThrottlingException for ~10s, ~3s after the start"
            }
            Fault::DnsSlow => {
                "DNS changes stay PENDING ~15s instead of the plan's propagation time"
            }
            Fault::ReplicatorStall => {
                "the replicator stops applying for ~10s, ~3s after the start, while the task reports running"
            }
            Fault::SourcePanic => {
                "the drift source panics on every poll for ~10s, ~3s after the start (an internal error: the cockpit records it as a source failure and carries on)"
            }
            Fault::LateDrift => {
                "after the drain was green, when replication is stopped, a stray writer inserts a row on the target (the sides diverge late: abort conditions must catch it)"
            }
        }
    }

    fn valid_names() -> String {
        Fault::ALL.map(Fault::name).join(", ")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`Fault::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault \"{name}\"{suggestion}; valid faults: {valid}")]
pub struct UnknownFault {
    pub name: String,
    suggestion: String,
    valid: String,
}

impl UnknownFault {
    fn new(name: &str) -> Self {
        let closest = Fault::ALL
            .iter()
            .map(|f| (strsim::levenshtein(name, f.name()), f.name()))
            .min_by_key(|(d, _)| *d);
        let suggestion = match closest {
            Some((d, best)) if d <= 3 => format!(" (did you mean \"{best}\"?)"),
            _ => String::new(),
        };
        UnknownFault {
            name: name.to_string(),
            suggestion,
            valid: Fault::valid_names(),
        }
    }
}

impl FromStr for Fault {
    type Err = UnknownFault;

    /// Accepts the names of [`Fault::name`], case-insensitively, with `_` for `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == wanted)
            .ok_or_else(|| UnknownFault::new(s.trim()))
    }
}

/// Parses a comma-separated list such as `"lag-spike,dns-slow"`. Empty entries are
/// ignored and duplicates kept once, so `""` is no faults.
pub fn parse_faults(list: &str) -> Result<Vec<Fault>, String> {
    let mut faults = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let fault: Fault = part.parse().map_err(|e: UnknownFault| e.to_string())?;
        if !faults.contains(&fault) {
            faults.push(fault);
        }
    }
    Ok(faults)
}
