//! The rehearsal world: real software on embedded SQLite that stands in for the source and
//! target databases, the CDC replicator, the DNS record and the applications, behind the same
//! `Source` and `Actuator` traits as the AWS and database backends.
//!
//! Nothing is scripted: the workload really writes, the replicator really copies rows after
//! its lag, clients really cache the CNAME for its TTL, and every reading and every measure
//! (writes refused, writes lost, rows diverged, downtime) is measured from the running world.
//! Faults ([`Fault`]) disturb it deterministically for a seed.

mod actuator;
mod db;
mod fault;
mod ledger;
mod measures;
mod replicator;
mod sources;
mod workload;
mod world;
mod zone;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use db::WorldError;
pub use fault::{Fault, UnknownFault, parse_faults};
pub use world::{World, WorldOptions};

use cutover_core::event::SourceKind;
use cutover_runtime::action::Actuator;
use cutover_runtime::source::Source;

impl World {
    /// One source per [`SourceKind`] the world simulates, polled at the plan's
    /// `rehearsal.poll`. The plan's `[[probe]]`s are real HTTP requests: the caller adds
    /// them (`cutover_runtime::source::probe::sources`).
    pub fn sources(self: &Arc<Self>) -> Vec<Arc<dyn Source>> {
        SourceKind::ALL
            .into_iter()
            .filter(|kind| *kind != SourceKind::Probe)
            .map(|kind| {
                Arc::new(sources::SimSource {
                    world: Arc::clone(self),
                    kind,
                }) as Arc<dyn Source>
            })
            .collect()
    }

    /// Carries out the plan's actions on this world.
    pub fn actuator(self: &Arc<Self>) -> Arc<dyn Actuator> {
        Arc::new(actuator::SimActuator {
            world: Arc::clone(self),
        })
    }
}
