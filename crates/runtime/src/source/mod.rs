//! Sources of readings: the trait every backend implements (rehearsal world, AWS, databases)
//! and the poller that turns polls into events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod probe;

use crate::clock::Clock;
use cutover_core::event::{Event, Reading, SourceKind, Ts, now_ms};

/// A boxed future that can cross tasks; keeps the traits object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a poll failed. The message must already be free of secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    pub fn new(msg: impl Into<String>) -> Self {
        SourceError(msg.into())
    }
}

/// Something that can be asked for readings. One poll may return several readings
/// (e.g. task status and table statistics from one backend).
pub trait Source: Send + Sync {
    /// Which health slot its failures are shown in.
    fn kind(&self) -> SourceKind;
    /// Short name for logs ("dms", "rehearsal-drift", ...).
    fn name(&self) -> String;
    /// How often to poll it.
    fn interval(&self) -> Duration;
    /// Reads once.
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>>;
}

/// Polls every source at its interval until `stop` is cancelled or the receiver is gone.
pub fn spawn_pollers(
    sources: Vec<Arc<dyn Source>>,
    tx: mpsc::UnboundedSender<Event>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    spawn_pollers_on(Clock::real(), sources, tx, stop)
}

/// [`spawn_pollers`], stamping readings with `clock`.
pub fn spawn_pollers_on(
    clock: Clock,
    sources: Vec<Arc<dyn Source>>,
    tx: mpsc::UnboundedSender<Event>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    sources
        .into_iter()
        .map(|source| {
            let tx = tx.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(source.interval());
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    // Biased: a simulated run must not depend on tokio's random branch order.
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        _ = every.tick() => {}
                    }
                    let result = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        r = crate::task::catch(source.poll()) => r.unwrap_or_else(|panic| {
                            tracing::error!(source = %source.name(), %panic, "poll panicked");
                            Err(SourceError(crate::task::panicked(
                                &format!("the {} source", source.name()),
                                &panic,
                            )))
                        }),
                    };
                    for ev in poll_events_at(clock.now_ms(), source.kind(), result) {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
            })
        })
        .collect()
}

/// The events one poll produces.
pub fn poll_events(kind: SourceKind, result: Result<Vec<Reading>, SourceError>) -> Vec<Event> {
    poll_events_at(now_ms(), kind, result)
}

/// [`poll_events`], stamped `at`.
pub fn poll_events_at(
    at: Ts,
    kind: SourceKind,
    result: Result<Vec<Reading>, SourceError>,
) -> Vec<Event> {
    match result {
        Ok(readings) => readings
            .into_iter()
            .map(|reading| Event::Observed { at, reading })
            .collect(),
        Err(e) => {
            tracing::warn!(source = kind.as_str(), error = %e, "poll failed");
            vec![Event::SourceFailed {
                at,
                source: kind,
                error: e.0,
            }]
        }
    }
}

/// Polls every source once, concurrently (for `check` and tests).
pub async fn poll_once(sources: &[Arc<dyn Source>]) -> Vec<Event> {
    let polls = sources.iter().map(|s| {
        let s = Arc::clone(s);
        async move { poll_events(s.kind(), s.poll().await) }
    });
    futures::future::join_all(polls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod probe_tests;
