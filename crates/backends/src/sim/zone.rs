//! The simulated Route 53 record: its value, the change in flight and its propagation,
//! what the authoritative servers answer, and the world's UPSERT of it.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::fault::Fault;
use super::world::*;
use cutover_core::event::Side;
use cutover_core::plan::DnsRecord;

/// The simulated Route 53 record.
pub(crate) struct Zone {
    pub name: String,
    pub record_type: String,
    pub ttl: u64,
    /// The record's value as the API returns it.
    pub value: String,
    /// What the authoritative servers answer (the value of the last change to sync).
    pub served: String,
    pub change: Option<DnsChange>,
    pub changes: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct DnsChange {
    pub id: String,
    pub value: String,
    pub submitted: Instant,
    pub sync_at: Instant,
}

impl Zone {
    pub(crate) fn settle(&mut self, now: Instant) {
        if let Some(c) = &self.change
            && now >= c.sync_at
        {
            self.served.clone_from(&c.value);
        }
    }

    /// What a client resolving now gets.
    pub fn resolve(&mut self, now: Instant) -> String {
        self.settle(now);
        self.served.clone()
    }

    pub fn status(&self, now: Instant) -> Option<&'static str> {
        self.change.as_ref().map(|c| {
            if now >= c.sync_at {
                "INSYNC"
            } else {
                "PENDING"
            }
        })
    }
}

pub(super) fn default_dns() -> DnsRecord {
    DnsRecord {
        zone_id: None,
        name: "db.rehearsal.internal.".into(),
        record_type: "CNAME".into(),
        ttl: 3,
        source: "source.rehearsal.internal.".into(),
        target: "target.rehearsal.internal.".into(),
        resolve: false,
        role_arn: None,
        authoritative: false,
        authoritative_servers: Vec::new(),
        source_set: "source".into(),
        target_set: "target".into(),
    }
}

impl World {
    /// The side a resolved DNS value names, if any.
    pub(crate) fn side_of(&self, value: &str) -> Option<Side> {
        if value == self.cfg.dns.source {
            Some(Side::Source)
        } else if value == self.cfg.dns.target {
            Some(Side::Target)
        } else {
            None
        }
    }

    /// Whether the record's value (as the API returns it) names the target.
    pub(crate) fn points_at_target(&self) -> bool {
        lock(&self.zone).value == self.cfg.dns.target
    }

    /// UPSERTs the record: a new change, PENDING until it propagates.
    pub(crate) fn upsert_dns(self: &Arc<Self>, value: &str) -> DnsChange {
        let now = Instant::now();
        let slow = self.has_fault(Fault::DnsSlow);
        let propagation = if slow {
            self.cfg.timings.dns_slow
        } else {
            Duration::from_millis(u64::try_from(self.cfg.settings.dns_propagation_ms).unwrap_or(0))
        };
        let change = {
            let mut zone = lock(&self.zone);
            zone.settle(now);
            zone.changes += 1;
            let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ zone.changes);
            let change = DnsChange {
                id: format!(
                    "/change/C{:012X}{:02}",
                    rng.random::<u64>() & 0xFFFF_FFFF_FFFF,
                    zone.changes
                ),
                value: value.to_string(),
                submitted: now,
                sync_at: now + propagation,
            };
            zone.value = value.to_string();
            zone.ttl = self.cfg.dns.ttl;
            zone.change = Some(change.clone());
            change
        };
        if slow {
            self.fault_changed(
                Fault::DnsSlow,
                true,
                format!(
                    "change {} stays PENDING for {}s",
                    change.id,
                    propagation.as_secs_f64()
                ),
            );
            let weak = Arc::downgrade(self);
            let signals = Arc::clone(&self.signals);
            let (id, at) = (change.id.clone(), change.sync_at);
            let h = tokio::spawn(async move {
                tokio::select! {
                    biased;
                    _ = signals.cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(at) => {
                        if let Some(w) = weak.upgrade() {
                            w.fault_changed(Fault::DnsSlow, false, format!("change {id} is INSYNC"));
                        }
                    }
                }
            });
            lock(&self.handles).push(h);
        }
        change
    }
}
