//! The catalogue of gate inputs: the names a plan's gates may test, their types and
//! default freshness bounds. The fold computes their values in `state::gate`.

use std::fmt;

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

/// A named quantity a gate can test.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    TaskStatus,
    TaskFullLoadPct,
    TaskTablesErrored,
    CdcLatencySource,
    CdcLatencyTarget,
    CdcIncomingChanges,
    /// Any metric named in the plan (or produced by the source), `metric.<Name>`.
    Metric(String),
    ValidationFailed,
    ValidationPending,
    ValidationSuspended,
    /// Tables whose validation state is not "Validated".
    ValidationUnvalidated,
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
    ReadOnly(crate::event::Side),
    Connections(crate::event::Side),
    LongestTrx(crate::event::Side),
}

/// The fixed names, in the order `help` lists them.
pub const NAMES: &[(&str, &str)] = &[
    (
        "task.status",
        "replication task status (running, stopped, ...)",
    ),
    ("task.full_load_pct", "full-load progress, percent"),
    (
        "task.tables_errored",
        "tables in error in the replication task",
    ),
    (
        "cdc.latency_source",
        "CDC latency reading the source, seconds",
    ),
    (
        "cdc.latency_target",
        "CDC latency applying to the target, seconds",
    ),
    ("cdc.incoming_changes", "changes waiting to be applied"),
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

impl Input {
    /// Parses an input name; `metric.<Name>` accepts any metric name.
    pub fn parse(name: &str) -> Option<Input> {
        use crate::event::Side::*;
        Some(match name {
            "task.status" => Input::TaskStatus,
            "task.full_load_pct" => Input::TaskFullLoadPct,
            "task.tables_errored" => Input::TaskTablesErrored,
            "cdc.latency_source" => Input::CdcLatencySource,
            "cdc.latency_target" => Input::CdcLatencyTarget,
            "cdc.incoming_changes" => Input::CdcIncomingChanges,
            "validation.failed" => Input::ValidationFailed,
            "validation.pending" => Input::ValidationPending,
            "validation.suspended" => Input::ValidationSuspended,
            "validation.unvalidated" => Input::ValidationUnvalidated,
            "drift.rows" => Input::DriftRows,
            "drift.mismatched" => Input::DriftMismatched,
            "drift.unchecked" => Input::DriftUnchecked,
            "lag.heartbeat" => Input::HeartbeatLag,
            "dns.value" => Input::DnsValue,
            "dns.status" => Input::DnsStatus,
            "dns.ttl" => Input::DnsTtl,
            "dns.resolved" => Input::DnsResolved,
            "source.read_only" => Input::ReadOnly(Source),
            "target.read_only" => Input::ReadOnly(Target),
            "source.connections" => Input::Connections(Source),
            "target.connections" => Input::Connections(Target),
            "source.longest_trx_s" => Input::LongestTrx(Source),
            "target.longest_trx_s" => Input::LongestTrx(Target),
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
        NAMES
            .iter()
            .map(|(n, _)| (*n, strsim::jaro_winkler(name, n)))
            .filter(|(_, score)| *score > 0.8)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, _)| n)
    }

    pub fn value_type(&self) -> InputType {
        match self {
            Input::TaskStatus | Input::DnsValue | Input::DnsStatus | Input::DnsResolved => {
                InputType::Text
            }
            Input::ReadOnly(_) => InputType::Bool,
            _ => InputType::Number,
        }
    }

    /// How old a reading may be before a gate on it turns unknown, in milliseconds, when
    /// the gate does not say. CloudWatch is minute-grained, so metrics get the longest bound.
    pub fn default_fresh_ms(&self) -> i64 {
        match self {
            Input::TaskStatus | Input::TaskFullLoadPct | Input::TaskTablesErrored => 30_000,
            Input::CdcLatencySource
            | Input::CdcLatencyTarget
            | Input::CdcIncomingChanges
            | Input::Metric(_) => 180_000,
            Input::ValidationFailed
            | Input::ValidationPending
            | Input::ValidationSuspended
            | Input::ValidationUnvalidated => 60_000,
            Input::DriftRows | Input::DriftMismatched | Input::DriftUnchecked => 60_000,
            Input::HeartbeatLag => 5_000,
            Input::DnsValue | Input::DnsStatus | Input::DnsTtl | Input::DnsResolved => 30_000,
            Input::ReadOnly(_) | Input::Connections(_) | Input::LongestTrx(_) => 15_000,
        }
    }

    /// The metric series this input reads, if it is a metric.
    pub fn metric_name(&self) -> Option<&str> {
        match self {
            Input::CdcLatencySource => Some("CDCLatencySource"),
            Input::CdcLatencyTarget => Some("CDCLatencyTarget"),
            Input::CdcIncomingChanges => Some("CDCIncomingChanges"),
            Input::Metric(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::event::Side;
        let side = |s: &Side| s.as_str();
        match self {
            Input::Metric(name) => write!(f, "metric.{name}"),
            Input::ReadOnly(s) => write!(f, "{}.read_only", side(s)),
            Input::Connections(s) => write!(f, "{}.connections", side(s)),
            Input::LongestTrx(s) => write!(f, "{}.longest_trx_s", side(s)),
            other => {
                let name = match other {
                    Input::TaskStatus => "task.status",
                    Input::TaskFullLoadPct => "task.full_load_pct",
                    Input::TaskTablesErrored => "task.tables_errored",
                    Input::CdcLatencySource => "cdc.latency_source",
                    Input::CdcLatencyTarget => "cdc.latency_target",
                    Input::CdcIncomingChanges => "cdc.incoming_changes",
                    Input::ValidationFailed => "validation.failed",
                    Input::ValidationPending => "validation.pending",
                    Input::ValidationSuspended => "validation.suspended",
                    Input::ValidationUnvalidated => "validation.unvalidated",
                    Input::DriftRows => "drift.rows",
                    Input::DriftMismatched => "drift.mismatched",
                    Input::DriftUnchecked => "drift.unchecked",
                    Input::HeartbeatLag => "lag.heartbeat",
                    Input::DnsValue => "dns.value",
                    Input::DnsStatus => "dns.status",
                    Input::DnsTtl => "dns.ttl",
                    Input::DnsResolved => "dns.resolved",
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
        for (name, _) in NAMES {
            let input = Input::parse(name).unwrap_or_else(|| panic!("{name} must parse"));
            assert_eq!(input.to_string(), *name);
        }
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
