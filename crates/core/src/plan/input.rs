//! The catalogue of gate inputs: the names a plan's gates may test, their types and
//! default freshness bounds. The fold computes their values in `state::gate`.

use std::fmt;

/// The default freshness of a native engine's lag and gap inputs: five polls of its 1 s
/// interval (`BinlogSource`, `LogicalSource`).
pub const NATIVE_LAG_FRESH_MS: i64 = 5_000;

/// The type of value a gate input produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputType {
    Number,
    Text,
    Bool,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::Number => "number",
            InputType::Text => "text",
            InputType::Bool => "bool",
        }
    }
}

/// A replication figure, the same for every engine (`replication.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicationInput {
    /// running, stopping, stopped, starting, failed, unknown.
    Status,
    StopReason,
    /// Apply lag, seconds.
    LagS,
    /// Capture lag (reading the source), seconds.
    CaptureLagS,
    BehindTransactions,
    BehindBytes,
    /// Changes waiting to be applied.
    Backlog,
    TablesErrored,
    FullLoadPct,
    ValidationFailed,
    ValidationPending,
    ValidationSuspended,
    ValidationUnvalidated,
    /// Whether the engine validates what it moves (DMS `EnableValidation`).
    ValidationEnabled,
    /// Seconds the source's GTID set has not moved (`source.gtid_stable_s`): writes have
    /// really stopped. Unknown when the engine has no GTID or it is off.
    SourceGtidStableS,
    /// Sequences whose target value is below the source's (`sequences.behind`: engines that
    /// do not replicate sequences, PostgreSQL logical replication).
    SequencesBehind,
}

/// A named quantity a gate can test.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// `replication.*`, engine-neutral.
    Replication(ReplicationInput),
    /// The engine's own status word (`task.status`, kept for plans written for DMS).
    TaskStatus,
    TaskFullLoadPct,
    TaskTablesErrored,
    CdcLatencySource,
    CdcLatencyTarget,
    CdcIncomingChanges,
    /// Any metric named in the plan (or produced by the source), `metric.<Name>`.
    Metric(String),
    /// A `[[probe]]`'s value, `probe.<name>`: a number, text or boolean; its type is the
    /// gate's value's (`probe.x == false`, `probe.rate <= 0.01`).
    Probe(String),
    ValidationFailed,
    ValidationPending,
    ValidationSuspended,
    /// Tables whose validation state is not "Validated".
    ValidationUnvalidated,
    /// Alias of `replication.validation.enabled`.
    ValidationEnabled,
    /// Alias of `replication.stop_reason`.
    TaskStopReason,
    /// Sum over tables of |source rows - target rows|.
    DriftRows,
    /// Tables whose checksums mismatch.
    DriftMismatched,
    /// Tables without a checksum verdict yet (pending, skipped).
    DriftUnchecked,
    HeartbeatLag,
    DnsValue,
    DnsStatus,
    DnsTtl,
    DnsResolved,
    /// What every authoritative name server of the zone answers, asked directly.
    DnsAuthoritative,
    /// The weight of the record sets pointing at one side (weighted records only).
    DnsWeight(crate::event::Side),
    ReadOnly(crate::event::Side),
    Connections(crate::event::Side),
    LongestTrx(crate::event::Side),
}

/// The engine-neutral replication names and what they read.
const REPLICATION_NAMES: &[(&str, ReplicationInput, &str)] = &[
    (
        "replication.status",
        ReplicationInput::Status,
        "running, stopping, stopped, starting, failed or unknown, for every engine",
    ),
    (
        "replication.stop_reason",
        ReplicationInput::StopReason,
        "why the engine stopped, in its own words",
    ),
    (
        "replication.lag_s",
        ReplicationInput::LagS,
        "apply lag: how far the target trails the source, seconds",
    ),
    (
        "replication.capture_lag_s",
        ReplicationInput::CaptureLagS,
        "capture lag: how far reading the source trails it, seconds",
    ),
    (
        "replication.behind_transactions",
        ReplicationInput::BehindTransactions,
        "source transactions not yet applied on the target (engines that count them)",
    ),
    (
        "replication.behind_bytes",
        ReplicationInput::BehindBytes,
        "bytes of change stream not yet applied (engines that measure them)",
    ),
    (
        "replication.backlog",
        ReplicationInput::Backlog,
        "changes received and waiting to be applied",
    ),
    (
        "replication.tables_errored",
        ReplicationInput::TablesErrored,
        "tables the engine reports in error",
    ),
    (
        "replication.full_load_pct",
        ReplicationInput::FullLoadPct,
        "full-load progress, percent",
    ),
    (
        "replication.validation.failed",
        ReplicationInput::ValidationFailed,
        "rows failing validation, all tables",
    ),
    (
        "replication.validation.pending",
        ReplicationInput::ValidationPending,
        "rows pending validation, all tables",
    ),
    (
        "replication.validation.suspended",
        ReplicationInput::ValidationSuspended,
        "rows whose validation is suspended, all tables",
    ),
    (
        "replication.validation.unvalidated",
        ReplicationInput::ValidationUnvalidated,
        "tables whose validation state is not Validated",
    ),
    (
        "replication.validation.enabled",
        ReplicationInput::ValidationEnabled,
        "whether the engine validates the rows it moves (DMS EnableValidation); with it off the validation counts prove nothing",
    ),
    (
        "source.gtid_stable_s",
        ReplicationInput::SourceGtidStableS,
        "seconds the source's GTID set has not moved (MySQL/MariaDB with GTID): writes have stopped",
    ),
    (
        "sequences.behind",
        ReplicationInput::SequencesBehind,
        "sequences whose target last_value is below the source's (PostgreSQL logical replication does not copy them; see kind = \"sync-sequences\")",
    ),
];

/// The other fixed names (the replication ones are in `REPLICATION_NAMES`).
const OTHER_NAMES: &[(&str, &str)] = &[
    (
        "task.status",
        "the engine's own status word (DMS: running, stopped, ready, ...)",
    ),
    ("task.full_load_pct", "alias of replication.full_load_pct"),
    ("task.tables_errored", "alias of replication.tables_errored"),
    ("task.stop_reason", "alias of replication.stop_reason"),
    (
        "cdc.latency_source",
        "alias of replication.capture_lag_s (DMS CDCLatencySource)",
    ),
    (
        "cdc.latency_target",
        "alias of replication.lag_s (DMS CDCLatencyTarget)",
    ),
    (
        "cdc.incoming_changes",
        "alias of replication.backlog (DMS CDCIncomingChanges)",
    ),
    ("validation.failed", "rows failing validation, all tables"),
    ("validation.pending", "rows pending validation, all tables"),
    (
        "validation.suspended",
        "rows whose validation is suspended, all tables",
    ),
    (
        "validation.unvalidated",
        "tables whose validation state is not Validated",
    ),
    (
        "validation.enabled",
        "alias of replication.validation.enabled",
    ),
    (
        "drift.rows",
        "sum over tables of |source rows - target rows|",
    ),
    ("drift.mismatched", "tables whose checksums differ"),
    ("drift.unchecked", "tables without a checksum verdict yet"),
    (
        "lag.heartbeat",
        "end-to-end lag from the heartbeat row, seconds",
    ),
    ("dns.value", "the record's value at the authority"),
    (
        "dns.status",
        "status of our last DNS change (PENDING, INSYNC)",
    ),
    ("dns.ttl", "the record's TTL, seconds"),
    (
        "dns.resolved",
        "what this host's resolver answers for the name",
    ),
    (
        "dns.authoritative",
        "what every authoritative name server of the zone answers ([dns] authoritative = true)",
    ),
    (
        "dns.weight.source",
        "weight of the weighted sets pointing at the source (unknown for a plain record)",
    ),
    (
        "dns.weight.target",
        "weight of the weighted sets pointing at the target (unknown for a plain record)",
    ),
    ("source.read_only", "source database refuses writes"),
    ("target.read_only", "target database refuses writes"),
    ("source.connections", "open connections on the source"),
    ("target.connections", "open connections on the target"),
    (
        "source.longest_trx_s",
        "age of the oldest open transaction on the source, seconds",
    ),
    (
        "target.longest_trx_s",
        "age of the oldest open transaction on the target, seconds",
    ),
];

/// Every fixed name with what it reads, in the order `plan inputs` lists them.
pub fn names() -> impl Iterator<Item = (&'static str, &'static str)> {
    REPLICATION_NAMES
        .iter()
        .map(|(name, _, what)| (*name, *what))
        .chain(OTHER_NAMES.iter().copied())
}

impl Input {
    /// Parses an input name; `metric.<Name>` accepts any metric name.
    pub fn parse(name: &str) -> Option<Input> {
        use crate::event::Side::*;
        if let Some((_, r, _)) = REPLICATION_NAMES.iter().find(|(n, _, _)| *n == name) {
            return Some(Input::Replication(*r));
        }
        Some(match name {
            "task.status" => Input::TaskStatus,
            "task.full_load_pct" => Input::TaskFullLoadPct,
            "task.tables_errored" => Input::TaskTablesErrored,
            "task.stop_reason" => Input::TaskStopReason,
            "cdc.latency_source" => Input::CdcLatencySource,
            "cdc.latency_target" => Input::CdcLatencyTarget,
            "cdc.incoming_changes" => Input::CdcIncomingChanges,
            "validation.failed" => Input::ValidationFailed,
            "validation.pending" => Input::ValidationPending,
            "validation.suspended" => Input::ValidationSuspended,
            "validation.unvalidated" => Input::ValidationUnvalidated,
            "validation.enabled" => Input::ValidationEnabled,
            "drift.rows" => Input::DriftRows,
            "drift.mismatched" => Input::DriftMismatched,
            "drift.unchecked" => Input::DriftUnchecked,
            "lag.heartbeat" => Input::HeartbeatLag,
            "dns.value" => Input::DnsValue,
            "dns.status" => Input::DnsStatus,
            "dns.ttl" => Input::DnsTtl,
            "dns.resolved" => Input::DnsResolved,
            "dns.authoritative" => Input::DnsAuthoritative,
            "dns.weight.source" => Input::DnsWeight(Source),
            "dns.weight.target" => Input::DnsWeight(Target),
            "source.read_only" => Input::ReadOnly(Source),
            "target.read_only" => Input::ReadOnly(Target),
            "source.connections" => Input::Connections(Source),
            "target.connections" => Input::Connections(Target),
            "source.longest_trx_s" => Input::LongestTrx(Source),
            "target.longest_trx_s" => Input::LongestTrx(Target),
            other if other.starts_with("probe.") => {
                let name = &other["probe.".len()..];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return None;
                }
                Input::Probe(name.to_string())
            }
            other => {
                let metric = other.strip_prefix("metric.")?;
                if metric.is_empty()
                    || !metric
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/')
                {
                    return None;
                }
                Input::Metric(metric.to_string())
            }
        })
    }

    /// The closest known name, for "did you mean" hints.
    pub fn suggest(name: &str) -> Option<&'static str> {
        names()
            .map(|(n, _)| (n, strsim::jaro_winkler(name, n)))
            .filter(|(_, score)| *score > 0.8)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, _)| n)
    }

    /// The engine-neutral input an alias reads (`cdc.latency_target` is `replication.lag_s`);
    /// other inputs are their own.
    pub fn canonical(&self) -> Input {
        use ReplicationInput as R;
        Input::Replication(match self {
            Input::TaskFullLoadPct => R::FullLoadPct,
            Input::TaskTablesErrored => R::TablesErrored,
            Input::CdcLatencySource => R::CaptureLagS,
            Input::CdcLatencyTarget => R::LagS,
            Input::CdcIncomingChanges => R::Backlog,
            Input::ValidationFailed => R::ValidationFailed,
            Input::ValidationPending => R::ValidationPending,
            Input::ValidationSuspended => R::ValidationSuspended,
            Input::ValidationUnvalidated => R::ValidationUnvalidated,
            Input::ValidationEnabled => R::ValidationEnabled,
            Input::TaskStopReason => R::StopReason,
            other => return other.clone(),
        })
    }

    pub fn value_type(&self) -> InputType {
        match self {
            Input::TaskStatus
            | Input::Replication(ReplicationInput::Status | ReplicationInput::StopReason)
            | Input::TaskStopReason
            | Input::DnsValue
            | Input::DnsStatus
            | Input::DnsResolved
            | Input::DnsAuthoritative => InputType::Text,
            Input::ReadOnly(_)
            | Input::ValidationEnabled
            | Input::Replication(ReplicationInput::ValidationEnabled) => InputType::Bool,
            _ => InputType::Number,
        }
    }

    /// [`Input::default_fresh_ms`] for a plan replicating with `engine`: a native engine
    /// (a binlog replica, logical replication) reads its lag and its gap directly from both
    /// servers every second, so a reading older than a few polls ([`NATIVE_LAG_FRESH_MS`])
    /// means the reading failed, not that CloudWatch has not published the minute yet.
    pub fn default_fresh_ms_for(&self, engine: Option<crate::event::ReplicationEngine>) -> i64 {
        use crate::event::ReplicationEngine as E;
        use ReplicationInput as R;
        match (self, engine) {
            (
                Input::Replication(
                    R::LagS | R::CaptureLagS | R::Backlog | R::BehindTransactions | R::BehindBytes,
                ),
                Some(E::Mysql | E::Postgres),
            ) => NATIVE_LAG_FRESH_MS,
            _ => self.default_fresh_ms(),
        }
    }

    /// How old a reading may be before a gate on it turns unknown, in milliseconds, when
    /// the gate does not say and the engine does not change it ([`Input::default_fresh_ms_for`]).
    /// CloudWatch is minute-grained, so metrics get the longest bound.
    pub fn default_fresh_ms(&self) -> i64 {
        use ReplicationInput as R;
        match self {
            Input::Replication(
                R::Status
                | R::StopReason
                | R::TablesErrored
                | R::FullLoadPct
                | R::ValidationEnabled
                | R::SourceGtidStableS
                | R::SequencesBehind,
            ) => 30_000,
            // The DMS lag figures are CloudWatch's, minute-grained (a native engine's are
            // direct: `default_fresh_ms_for`).
            Input::Replication(
                R::LagS | R::CaptureLagS | R::Backlog | R::BehindTransactions | R::BehindBytes,
            ) => 180_000,
            Input::Replication(
                R::ValidationFailed
                | R::ValidationPending
                | R::ValidationSuspended
                | R::ValidationUnvalidated,
            ) => 60_000,
            Input::TaskStatus
            | Input::TaskFullLoadPct
            | Input::TaskTablesErrored
            | Input::TaskStopReason
            | Input::ValidationEnabled => 30_000,
            Input::CdcLatencySource
            | Input::CdcLatencyTarget
            | Input::CdcIncomingChanges
            | Input::Metric(_) => 180_000,
            // The plan gives a probe's gates three of its polls (`Probe::fresh_ms`).
            Input::Probe(_) => 30_000,
            Input::ValidationFailed
            | Input::ValidationPending
            | Input::ValidationSuspended
            | Input::ValidationUnvalidated => 60_000,
            Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked => 60_000,
            Input::HeartbeatLag => 5_000,
            Input::DnsValue
            | Input::DnsStatus
            | Input::DnsTtl
            | Input::DnsResolved
            | Input::DnsAuthoritative
            | Input::DnsWeight(_) => 30_000,
            Input::ReadOnly(_) | Input::Connections(_) | Input::LongestTrx(_) => 15_000,
        }
    }

    /// The metric series this input reads, if it is a metric.
    pub fn metric_name(&self) -> Option<&str> {
        match self {
            Input::Metric(name) => Some(name),
            _ => None,
        }
    }

    /// The DMS CloudWatch metric an alias was named after (for its messages).
    pub fn dms_metric_name(&self) -> Option<&'static str> {
        match self {
            Input::CdcLatencySource => Some("CDCLatencySource"),
            Input::CdcLatencyTarget => Some("CDCLatencyTarget"),
            Input::CdcIncomingChanges => Some("CDCIncomingChanges"),
            _ => None,
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::event::Side;
        let side = |s: &Side| s.as_str();
        match self {
            Input::Replication(r) => {
                let name = REPLICATION_NAMES
                    .iter()
                    .find(|(_, x, _)| x == r)
                    .map_or("replication.?", |(n, _, _)| n);
                f.write_str(name)
            }
            Input::Metric(name) => write!(f, "metric.{name}"),
            Input::Probe(name) => write!(f, "probe.{name}"),
            Input::ReadOnly(s) => write!(f, "{}.read_only", side(s)),
            Input::Connections(s) => write!(f, "{}.connections", side(s)),
            Input::LongestTrx(s) => write!(f, "{}.longest_trx_s", side(s)),
            Input::DnsWeight(s) => write!(f, "dns.weight.{}", side(s)),
            other => {
                let name = match other {
                    Input::TaskStatus => "task.status",
                    Input::TaskFullLoadPct => "task.full_load_pct",
                    Input::TaskTablesErrored => "task.tables_errored",
                    Input::TaskStopReason => "task.stop_reason",
                    Input::CdcLatencySource => "cdc.latency_source",
                    Input::CdcLatencyTarget => "cdc.latency_target",
                    Input::CdcIncomingChanges => "cdc.incoming_changes",
                    Input::ValidationFailed => "validation.failed",
                    Input::ValidationPending => "validation.pending",
                    Input::ValidationSuspended => "validation.suspended",
                    Input::ValidationUnvalidated => "validation.unvalidated",
                    Input::ValidationEnabled => "validation.enabled",
                    Input::DriftRows => "drift.rows",
                    Input::DriftMismatched => "drift.mismatched",
                    Input::DriftUnchecked => "drift.unchecked",
                    Input::HeartbeatLag => "lag.heartbeat",
                    Input::DnsValue => "dns.value",
                    Input::DnsStatus => "dns.status",
                    Input::DnsTtl => "dns.ttl",
                    Input::DnsResolved => "dns.resolved",
                    Input::DnsAuthoritative => "dns.authoritative",
                    _ => unreachable!("handled above"),
                };
                f.write_str(name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_prints_back() {
        for (name, _) in names() {
            let input = Input::parse(name).unwrap_or_else(|| panic!("{name} must parse"));
            assert_eq!(input.to_string(), *name);
        }
    }

    #[test]
    fn every_replication_input_has_a_listed_name_and_aliases_read_it() {
        for (name, r, what) in REPLICATION_NAMES {
            assert!(
                names().any(|n| n == (*name, *what)),
                "{name} is listed for help"
            );
            assert_eq!(Input::parse(name), Some(Input::Replication(*r)));
        }
        assert_eq!(
            Input::parse("cdc.latency_target").map(|i| i.canonical()),
            Input::parse("replication.lag_s")
        );
        assert_eq!(
            Input::parse("validation.failed").map(|i| i.canonical()),
            Input::parse("replication.validation.failed")
        );
        // The engine's own word stays its own input.
        assert_eq!(
            Input::parse("task.status").map(|i| i.canonical()),
            Some(Input::TaskStatus)
        );
    }

    #[test]
    fn metric_names_parse_and_typos_get_a_suggestion() {
        assert_eq!(
            Input::parse("metric.CPUUtilization"),
            Some(Input::Metric("CPUUtilization".into()))
        );
        assert_eq!(Input::parse("metric."), None);
        assert_eq!(Input::parse("cdc.latency_targt"), None);
        assert_eq!(
            Input::suggest("cdc.latency_targt"),
            Some("cdc.latency_target")
        );
        assert_eq!(Input::suggest("zzzz"), None);
    }
}
