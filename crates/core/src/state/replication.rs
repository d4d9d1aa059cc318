//! The replication view: what the cockpit knows of replication, whatever the engine.
//!
//! It folds [`Reading::Replication`](crate::event::Reading::Replication), the engine-neutral
//! reading every backend produces, and the readings transcripts of format 1 carry instead
//! (`Task`, `TableStats`, and the DMS CDC series inside `Metrics`), so an old transcript
//! replays and reports as it did when it was recorded. Gate inputs, panes and reports read
//! only this view.

use serde::{Deserialize, Serialize};

use super::{Series, State};
use crate::event::{
    MetricSeries, ReplicationEngine, ReplicationReading, ReplicationStatus, SourceKind, TableStat,
    TaskReading, Ts,
};
use crate::plan::ReplicationInput;

/// The DMS CloudWatch series format-1 transcripts carry the lag figures in.
const LEGACY_LAG: &str = "CDCLatencyTarget";
const LEGACY_CAPTURE_LAG: &str = "CDCLatencySource";
const LEGACY_BACKLOG: &str = "CDCIncomingChanges";

/// Replication as last read, with the lag figures' history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// The newest status reading. Its samples and tables are moved into the fields below.
    pub last: Option<ReplicationReading>,
    /// Apply lag, seconds.
    pub lag: Series,
    /// Capture lag, seconds.
    pub capture_lag: Series,
    /// Changes waiting to be applied.
    pub backlog: Series,
    /// When the per-table state was last read.
    pub tables_at: Option<Ts>,
    /// Which source the lag figures came from: replication once an engine-neutral reading was
    /// folded, the metrics source in format 1.
    pub figures_from: Option<SourceKind>,
    /// The source's GTID set and the reading time it was first seen at that value
    /// (`source.gtid_stable_s`); `None` while the engine reports no GTID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_since: Option<(String, Ts)>,
}

impl ReplicationView {
    /// The status reading, if any.
    pub fn status(&self) -> Option<&ReplicationReading> {
        self.last.as_ref()
    }

    /// An engine-neutral reading was folded: format-1 metric series no longer feed the lag.
    pub fn engine_neutral(&self) -> bool {
        self.figures_from == Some(SourceKind::Replication)
    }

    /// How long the source's GTID set has stood still as of the newest reading, seconds.
    pub fn gtid_stable_s(&self) -> Option<f64> {
        let (_, since) = self.gtid_since.as_ref()?;
        let last = self.last.as_ref()?;
        Some((last.observed_at - since).max(0) as f64 / 1000.0)
    }

    /// The history of a replication figure that has one.
    pub fn series(&self, which: ReplicationInput) -> Option<&Series> {
        match which {
            ReplicationInput::LagS => Some(&self.lag),
            ReplicationInput::CaptureLagS => Some(&self.capture_lag),
            ReplicationInput::Backlog => Some(&self.backlog),
            _ => None,
        }
    }
}

impl State {
    /// An engine-neutral reading: replaces the status and the tables, appends the samples.
    pub(super) fn observe_replication(&mut self, at: Ts, r: &ReplicationReading) {
        let view = &mut self.replication;
        view.figures_from = Some(SourceKind::Replication);
        view.lag.merge(r.observed_at, Some("s"), &r.lag_s);
        view.capture_lag
            .merge(r.observed_at, Some("s"), &r.capture_lag_s);
        view.backlog.merge(r.observed_at, None, &r.backlog);
        if let Some(tables) = &r.tables {
            self.set_tables(r.observed_at, tables);
        }
        self.replication.gtid_since = match (&r.source_gtid, self.replication.gtid_since.take()) {
            (Some(now), Some((was, since))) if *now == was => Some((was, since)),
            (Some(now), _) => Some((now.clone(), r.observed_at)),
            (None, _) => None,
        };
        // The status alone: the samples and tables live in the view already (and a 500-table
        // reading is not cloned a second time).
        let last = ReplicationReading {
            observed_at: r.observed_at,
            engine: r.engine,
            name: r.name.clone(),
            status: r.status,
            status_text: r.status_text.clone(),
            stop_reason: r.stop_reason.clone(),
            last_error: r.last_error.clone(),
            figures_error: r.figures_error.clone(),
            tables_error: r.tables_error.clone(),
            validation_enabled: r.validation_enabled,
            lag_s: Vec::new(),
            capture_lag_s: Vec::new(),
            backlog: Vec::new(),
            behind_transactions: r.behind_transactions,
            behind_bytes: r.behind_bytes,
            full_load_pct: r.full_load_pct,
            tables_loaded: r.tables_loaded,
            tables_loading: r.tables_loading,
            tables_queued: r.tables_queued,
            tables_errored: r.tables_errored,
            tables: None,
            source_position: r.source_position.clone(),
            target_position: r.target_position.clone(),
            source_gtid: r.source_gtid.clone(),
            facts: r.facts.clone(),
            logical: r.logical.clone(),
            sequences: r.sequences.clone(),
            sequences_error: r.sequences_error.clone(),
            gap_error: r.gap_error.clone(),
        };
        self.set_replication_status(at, last);
    }

    /// Format 1: the task status alone.
    pub(super) fn observe_legacy_task(&mut self, at: Ts, t: &TaskReading) {
        if !self.replication.engine_neutral() {
            // In format 1 the lag figures come with the metrics source's readings.
            self.replication.figures_from = Some(SourceKind::Metrics);
        }
        let engine = self
            .plan
            .replication
            .as_ref()
            .map_or(ReplicationEngine::Dms, |r| r.engine);
        let last = ReplicationReading {
            observed_at: t.observed_at,
            engine,
            name: t.task.clone(),
            status: ReplicationStatus::from_dms(&t.status),
            status_text: t.status.clone(),
            stop_reason: t.stop_reason.clone(),
            last_error: None,
            figures_error: None,
            tables_error: None,
            validation_enabled: None,
            lag_s: Vec::new(),
            capture_lag_s: Vec::new(),
            backlog: Vec::new(),
            behind_transactions: None,
            behind_bytes: None,
            full_load_pct: t.full_load_pct,
            tables_loaded: t.tables_loaded,
            tables_loading: t.tables_loading,
            tables_queued: t.tables_queued,
            tables_errored: t.tables_errored,
            tables: None,
            source_position: None,
            target_position: None,
            source_gtid: None,
            facts: Vec::new(),
            logical: None,
            sequences: None,
            sequences_error: None,
            gap_error: None,
        };
        self.set_replication_status(at, last);
    }

    /// Format 1: the table statistics alone.
    pub(super) fn observe_legacy_tables(&mut self, observed_at: Ts, tables: &[TableStat]) {
        self.set_tables(observed_at, tables);
    }

    /// The per-table state, as either format reads it.
    fn set_tables(&mut self, observed_at: Ts, tables: &[TableStat]) {
        self.replication.tables_at = Some(observed_at);
        for t in tables {
            self.tables.entry(t.table.clone()).or_default().stat = Some(t.clone());
        }
    }

    /// Format 1: DMS's CDC series arrived with the other metrics. They feed the lag figures
    /// until an engine-neutral reading arrives (which carries its own).
    pub(super) fn observe_legacy_cdc(&mut self, polled_at: Ts, series: &MetricSeries) {
        let view = &mut self.replication;
        if view.engine_neutral() {
            return;
        }
        let target = match series.name.as_str() {
            LEGACY_LAG => &mut view.lag,
            LEGACY_CAPTURE_LAG => &mut view.capture_lag,
            LEGACY_BACKLOG => &mut view.backlog,
            _ => return,
        };
        target.merge(polled_at, series.unit.as_deref(), &series.points);
        view.figures_from = Some(SourceKind::Metrics);
    }

    fn set_replication_status(&mut self, at: Ts, last: ReplicationReading) {
        let changed = self
            .replication
            .last
            .as_ref()
            .is_some_and(|prev| prev.status_text != last.status_text);
        let text = format!("task {} is {}", last.name, last.status_text);
        self.replication.last = Some(last);
        if changed {
            self.log(at, super::Level::Info, text);
        }
    }
}
