//! The Route 53 source: the record's value and TTL at the authority (ListResourceRecordSets),
//! the status of the last change this cockpit made (GetChange), and what this host's resolver
//! answers for the name (hickory-resolver), because that is what new connections will use.
//!
//! The hosted zone is the plan's `dns.zone_id`, or else the zone whose name is the longest
//! suffix of the record's name (ListHostedZonesByName); two zones of that name (public and
//! private) are ambiguous and need `zone_id`.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_route53::types::{ResourceRecordSet, RrType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::sync::OnceCell;

use super::error::describe;
use super::read::Route53Read;
use super::{ChangeTracker, Tuning};
use cutover_core::event::{DnsReading, Reading, SourceKind, now_ms};
use cutover_core::plan::DnsRecord;
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// Polls the record the applications follow.
pub struct DnsSource {
    route53: Route53Read,
    record: DnsRecord,
    changes: ChangeTracker,
    nameserver: Option<SocketAddr>,
    tuning: Tuning,
    zone: OnceCell<String>,
    resolver: OnceCell<Option<TokioResolver>>,
    /// The zone's authoritative servers, named and resolved once, each with the resolver
    /// that asks it alone (`None`: one could not be built; that server gives no answer).
    authorities: OnceCell<Vec<(String, Option<TokioResolver>)>>,
}

impl DnsSource {
    pub fn new(
        route53: Route53Read,
        record: DnsRecord,
        changes: ChangeTracker,
        nameserver: Option<SocketAddr>,
        tuning: Tuning,
    ) -> Self {
        DnsSource {
            route53,
            record,
            changes,
            nameserver,
            tuning,
            zone: OnceCell::new(),
            resolver: OnceCell::new(),
            authorities: OnceCell::new(),
        }
    }

    async fn read(&self) -> Result<Vec<Reading>, SourceError> {
        let zone = self
            .zone
            .get_or_try_init(|| find_zone(&self.route53, &self.record))
            .await
            .map_err(|e| SourceError::new(e.clone()))?;
        let found = current_sets(&self.route53, zone, &self.record)
            .await
            .map_err(SourceError::new)?;
        let (value, ttl) =
            effective_or_missing(&found, zone, &self.record).map_err(SourceError::new)?;
        // One plain set says everything in `value`; several (weighted, failover) or an
        // alias are listed, so the pane shows where each share of traffic goes.
        let sets = if found.len() > 1 || found.iter().any(|s| s.alias_target().is_some()) {
            found.iter().map(dns_set).collect()
        } else {
            Vec::new()
        };
        let change_id = self.changes.last();
        let change_status = match &change_id {
            Some(id) => Some(
                self.route53
                    .get_change(id)
                    .await
                    .map_err(|e| {
                        SourceError::new(
                            describe("Route 53 GetChange", "route53:GetChange", &e).message,
                        )
                    })?
                    .change_info
                    .map(|c| c.status.as_str().to_string())
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let resolved = if self.record.resolve {
            self.resolve().await
        } else {
            None
        };
        let (authoritative, authoritative_error) = if self.record.authoritative {
            match self.ask_authorities(zone).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        Ok(vec![Reading::Dns(Box::new(DnsReading {
            observed_at: now_ms(),
            name: self.record.name.clone(),
            record_type: self.record.record_type.clone(),
            value: Some(value),
            ttl,
            change_status,
            change_id,
            resolved,
            authoritative,
            authoritative_error,
            sets,
        }))])
    }

    /// The servers to ask as the authority: the plan's `authoritative_servers`, else the
    /// zone's delegation set (GetHostedZone), each name resolved by this host's resolver.
    async fn authorities(&self, zone: &str) -> Result<Vec<(String, SocketAddr)>, String> {
        if !self.record.authoritative_servers.is_empty() {
            return Ok(self
                .record
                .authoritative_servers
                .iter()
                .map(|a| (a.to_string(), *a))
                .collect());
        }
        let out =
            self.route53.get_hosted_zone(zone).await.map_err(|e| {
                describe("Route 53 GetHostedZone", "route53:GetHostedZone", &e).message
            })?;
        if out
            .hosted_zone()
            .and_then(|z| z.config())
            .is_some_and(|c| c.private_zone())
        {
            return Err(format!(
                "zone {zone} is private: its records are served by the VPC resolver, not by public name servers; set [dns] authoritative_servers to that resolver's address, or drop authoritative"
            ));
        }
        let names: Vec<String> = out
            .delegation_set()
            .map(|d| d.name_servers().to_vec())
            .unwrap_or_default();
        if names.is_empty() {
            return Err(format!("Route 53 names no name servers for zone {zone}"));
        }
        let resolver = TokioResolver::builder(TokioRuntimeProvider::default())
            .and_then(|b| b.build())
            .map_err(|e| format!("no resolver to find the zone's name servers: {e}"))?;
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            let ip = tokio::time::timeout(
                self.tuning.resolve_timeout * 2,
                resolver.lookup_ip(fqdn(&name).as_str()),
            )
            .await
            .map_err(|_| format!("resolving name server {name} timed out"))?
            .map_err(|e| format!("cannot resolve name server {name}: {e}"))?
            .iter()
            .next()
            .ok_or_else(|| format!("name server {name} has no address"))?;
            servers.push((name, SocketAddr::new(ip, 53)));
        }
        Ok(servers)
    }

    /// Asks every authoritative server directly (no recursion, no cache) and returns the
    /// answer when they all give the same one; otherwise says who answered what.
    async fn ask_authorities(&self, zone: &str) -> Result<String, String> {
        let servers = self
            .authorities
            .get_or_try_init(|| async {
                let servers = self.authorities(zone).await?;
                Ok::<_, String>(
                    servers
                        .into_iter()
                        .map(|(name, addr)| (name, build_authority_resolver(addr, &self.tuning)))
                        .collect(),
                )
            })
            .await?;
        let asks = servers.iter().map(|(name, resolver)| async move {
            let answer = match resolver {
                Some(r) => self.lookup(r).await,
                None => None,
            };
            (name.as_str(), answer)
        });
        let answers = futures::future::join_all(asks).await;
        let first = answers.first().and_then(|(_, a)| a.clone());
        if let Some(v) = &first
            && answers.iter().all(|(_, a)| a.as_ref() == Some(v))
        {
            return Ok(v.clone());
        }
        Err(format!(
            "the authoritative servers disagree: {}",
            answers
                .iter()
                .map(|(name, a)| match a {
                    Some(v) => format!("{name} answers {v}"),
                    None => format!("{name} gives no answer"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// What this host's resolver (or the configured nameserver) answers, in the plan's
    /// spelling (with or without the final dot), or `None` when it has no answer.
    async fn resolve(&self) -> Option<String> {
        let resolver = self
            .resolver
            .get_or_init(|| async { build_resolver(self.nameserver, &self.tuning) })
            .await
            .as_ref()?;
        self.lookup(resolver).await
    }

    /// The record's values as `resolver` answers them, in the plan's spelling.
    async fn lookup(&self, resolver: &TokioResolver) -> Option<String> {
        let name = fqdn(&self.record.name);
        let rtype = match self.record.record_type.as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::AAAA,
            _ => RecordType::CNAME,
        };
        let lookup = match tokio::time::timeout(
            self.tuning.resolve_timeout * 2,
            resolver.lookup(name.as_str(), rtype),
        )
        .await
        {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::debug!(name, error = %e, "resolver has no answer");
                return None;
            }
            Err(_) => {
                tracing::debug!(name, "resolver timed out");
                return None;
            }
        };
        let mut values: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::CNAME(c) if rtype == RecordType::CNAME => {
                    Some(plan_spelling(&c.0.to_string(), &self.record.target))
                }
                RData::A(a) if rtype == RecordType::A => Some(a.0.to_string()),
                RData::AAAA(a) if rtype == RecordType::AAAA => Some(a.0.to_string()),
                _ => None,
            })
            .collect();
        values.sort();
        values.dedup();
        (!values.is_empty()).then(|| values.join(","))
    }
}

impl Source for DnsSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Dns
    }

    fn name(&self) -> String {
        format!("route53:{}", self.record.name)
    }

    fn interval(&self) -> Duration {
        self.tuning.dns_every
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(self.read())
    }
}

/// A resolver that asks only `addr`, as an authority: no recursion, no cache.
fn build_authority_resolver(addr: SocketAddr, tuning: &Tuning) -> Option<TokioResolver> {
    build(Some(addr), tuning, true)
}

fn build_resolver(nameserver: Option<SocketAddr>, tuning: &Tuning) -> Option<TokioResolver> {
    build(nameserver, tuning, false)
}

fn build(
    nameserver: Option<SocketAddr>,
    tuning: &Tuning,
    authority: bool,
) -> Option<TokioResolver> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match nameserver {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), vec![server]),
                provider,
            )
        }
        None => match TokioResolver::builder(provider) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no system resolver configuration; dns.resolved stays unknown");
                return None;
            }
        },
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = tuning.resolve_timeout;
    opts.attempts = 1;
    if authority {
        opts.recursion_desired = false;
        opts.cache_size = 0;
    }
    match builder.build() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "the resolver could not be built; dns.resolved stays unknown");
            None
        }
    }
}

/// `name.` (absolute, so no search domain is appended).
pub(crate) fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Names compare case-insensitively, with or without the final dot.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    fqdn(a).eq_ignore_ascii_case(&fqdn(b)) || unescape(&fqdn(a)).eq_ignore_ascii_case(&fqdn(b))
}

/// Route 53 writes `*` as `\052` in names it returns.
fn unescape(name: &str) -> String {
    name.replace("\\052", "*")
}

/// A resolver answer (always absolute) spelt like the plan's value.
fn plan_spelling(answer: &str, plan_value: &str) -> String {
    if plan_value.ends_with('.') {
        fqdn(answer)
    } else {
        answer.trim_end_matches('.').to_string()
    }
}

pub(crate) fn rr_type(record_type: &str) -> RrType {
    RrType::from(record_type)
}

/// The hosted zone id (without the `/hostedzone/` prefix) the record lives in.
pub(crate) async fn find_zone(route53: &Route53Read, record: &DnsRecord) -> Result<String, String> {
    if let Some(id) = &record.zone_id {
        return Ok(id.trim_start_matches("/hostedzone/").to_string());
    }
    let name = fqdn(&record.name).to_ascii_lowercase();
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    // The record's own name first (an apex record), then each parent, longest first.
    for i in 0..labels.len() {
        let candidate = format!("{}.", labels[i..].join("."));
        let out = route53.zones_by_name(&candidate).await.map_err(|e| {
            describe(
                "Route 53 ListHostedZonesByName",
                "route53:ListHostedZonesByName",
                &e,
            )
            .message
        })?;
        let zones: Vec<_> = out
            .hosted_zones()
            .iter()
            .filter(|z| same_name(z.name(), &candidate))
            .collect();
        match zones.as_slice() {
            [] => continue,
            [zone] => return Ok(zone.id().trim_start_matches("/hostedzone/").to_string()),
            several => {
                let ids: Vec<_> = several
                    .iter()
                    .map(|z| z.id().trim_start_matches("/hostedzone/"))
                    .collect();
                return Err(format!(
                    "Route 53: {} hosted zones are named {candidate} ({}); set dns.zone_id in the plan to pick one",
                    several.len(),
                    ids.join(", ")
                ));
            }
        }
    }
    Err(format!(
        "Route 53: no hosted zone holds {}; check dns.name, or set dns.zone_id in the plan",
        record.name
    ))
}

/// Every record set under the plan's name and type (a simple record is one; weighted,
/// failover and latency records are one per set identifier), as the authority holds them;
/// empty when there is no such record.
pub(crate) async fn current_sets(
    route53: &Route53Read,
    zone: &str,
    record: &DnsRecord,
) -> Result<Vec<ResourceRecordSet>, String> {
    let out = route53
        .list_record(zone, &fqdn(&record.name), rr_type(&record.record_type))
        .await
        .map_err(|e| {
            describe(
                "Route 53 ListResourceRecordSets",
                "route53:ListResourceRecordSets",
                &e,
            )
            .message
        })?;
    let sets: Vec<ResourceRecordSet> = out
        .resource_record_sets()
        .iter()
        .filter(|s| same_name(s.name(), &record.name) && s.r#type().as_str() == record.record_type)
        .cloned()
        .collect();
    Ok(sets)
}

/// The record's value and TTL at the authority ([`effective`]: for weighted sets, the values
/// that carry traffic; for failover sets, the primary's), or the error that names the
/// missing record.
fn effective_or_missing(
    sets: &[ResourceRecordSet],
    zone: &str,
    record: &DnsRecord,
) -> Result<(String, Option<u64>), String> {
    if sets.is_empty() {
        return Err(format!(
            "Route 53: no {} record named {} in zone {zone}; check [dns] name and type in the plan",
            record.record_type, record.name
        ));
    }
    Ok(effective(sets))
}

/// A set as the reading carries it.
fn dns_set(set: &ResourceRecordSet) -> cutover_core::event::DnsSet {
    cutover_core::event::DnsSet {
        value: record_value(set),
        set_identifier: set.set_identifier().map(str::to_string),
        weight: set.weight().and_then(|w| u64::try_from(w).ok()),
        failover: set.failover().map(|f| f.as_str().to_string()),
        alias: set.alias_target().is_some(),
        ttl: set.ttl().and_then(|t| u64::try_from(t).ok()),
    }
}

/// What the applications are sent to by these sets, and the TTL.
pub(crate) fn effective(sets: &[ResourceRecordSet]) -> (String, Option<u64>) {
    let live: Vec<&ResourceRecordSet> = if sets.iter().any(|s| s.weight().is_some()) {
        sets.iter()
            .filter(|s| s.weight().unwrap_or(0) > 0)
            .collect()
    } else if sets.iter().any(|s| s.failover().is_some()) {
        sets.iter()
            .filter(|s| s.failover().is_some_and(|f| f.as_str() == "PRIMARY"))
            .collect()
    } else {
        sets.iter().collect()
    };
    let mut values: Vec<String> = live.iter().map(|s| record_value(s)).collect();
    values.sort();
    values.dedup();
    let ttl = live
        .first()
        .copied()
        .or(sets.first())
        .and_then(|s| s.ttl())
        .and_then(|t| u64::try_from(t).ok());
    (values.join(","), ttl)
}

/// One line naming every set: `a. (weight 100, id blue), b. (weight 0, id green)`.
pub(crate) fn describe_sets(sets: &[ResourceRecordSet]) -> String {
    sets.iter()
        .map(|s| {
            let mut notes = Vec::new();
            if s.alias_target().is_some() {
                notes.push("alias".to_string());
            }
            if let Some(w) = s.weight() {
                notes.push(format!("weight {w}"));
            }
            if let Some(f) = s.failover() {
                notes.push(format!("failover {}", f.as_str()));
            }
            if let Some(id) = s.set_identifier() {
                notes.push(format!("id {id}"));
            }
            if let Some(t) = s.ttl() {
                notes.push(format!("TTL {t}"));
            }
            format!("{} ({})", record_value(s), notes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn record_value(set: &ResourceRecordSet) -> String {
    if let Some(alias) = set.alias_target() {
        return alias.dns_name().to_string();
    }
    let mut values: Vec<&str> = set.resource_records().iter().map(|r| r.value()).collect();
    values.sort();
    values.join(",")
}

/// The output line the flip writes when Route 53 accepts its change; [`last_change_id`]
/// reads it back from a transcript.
pub(crate) fn change_line(id: &str, status: &str) -> String {
    format!("change {id} is {status}")
}

/// The last Route 53 change recorded in a transcript's events: the flip's own output line
/// (written the moment Route 53 accepted it, so it survives a crash right after), or a DNS
/// reading that followed a change.
pub fn last_change_id(events: &[cutover_core::event::Event]) -> Option<String> {
    use cutover_core::event::Event;
    events.iter().rev().find_map(|ev| match ev {
        Event::ActionOutput { line, .. } => line
            .strip_prefix("change ")
            .and_then(|rest| rest.split_once(" is "))
            .map(|(id, _)| id.to_string())
            .filter(|id| id.starts_with("/change/") || !id.contains(' ')),
        Event::Observed {
            reading: Reading::Dns(d),
            ..
        } => d.change_id.clone(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {

    use aws_sdk_route53::Client;
    use aws_sdk_route53::operation::get_change::GetChangeOutput;
    use aws_sdk_route53::operation::list_hosted_zones_by_name::ListHostedZonesByNameOutput;
    use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput;
    use aws_sdk_route53::types::{ChangeInfo, ChangeStatus, HostedZone, ResourceRecord};
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};
    use hickory_resolver::proto::op::{Message, MessageType};
    use hickory_resolver::proto::rr::rdata::CNAME;
    use hickory_resolver::proto::rr::{Name, Record};

    use super::*;
    use crate::aws::testing;

    fn record(resolve: bool) -> DnsRecord {
        DnsRecord {
            zone_id: None,
            name: "db.shop.example.com.".into(),
            record_type: "CNAME".into(),
            ttl: 60,
            source: "old.example.com.".into(),
            target: "new.example.com.".into(),
            resolve,
            role_arn: None,
            authoritative: false,
            authoritative_servers: Vec::new(),
            source_set: "source".into(),
            target_set: "target".into(),
        }
    }

    fn zone_rules() -> (Rule, Rule) {
        let zones = mock!(Client::list_hosted_zones_by_name).then_compute_output(|req| {
            let mut out = ListHostedZonesByNameOutput::builder()
                .is_truncated(false)
                .max_items(100)
                .set_hosted_zones(Some(Vec::new()));
            if req.dns_name() == Some("shop.example.com.") {
                out = out.hosted_zones(
                    HostedZone::builder()
                        .id("/hostedzone/ZSHOP")
                        .name("shop.example.com.")
                        .caller_reference("t")
                        .build()
                        .expect("zone"),
                );
            }
            out.build().expect("output")
        });
        let rrset = mock!(Client::list_resource_record_sets)
            .match_requests(|r| r.hosted_zone_id() == Some("ZSHOP"))
            .then_output(|| {
                ListResourceRecordSetsOutput::builder()
                    .resource_record_sets(
                        ResourceRecordSet::builder()
                            .name("db.shop.example.com.")
                            .r#type(RrType::Cname)
                            .ttl(60)
                            .resource_records(
                                ResourceRecord::builder()
                                    .value("old.example.com.")
                                    .build()
                                    .expect("rr"),
                            )
                            .build()
                            .expect("set"),
                    )
                    .is_truncated(false)
                    .max_items(2)
                    .build()
                    .expect("output")
            });
        (zones, rrset)
    }

    fn source(rules: &[&Rule], record: DnsRecord, nameserver: Option<SocketAddr>) -> DnsSource {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let tuning = testing::tuning();
        let conf = tuning
            .route53(&testing::sdk_config())
            .interceptor(interceptor);
        DnsSource::new(
            Route53Read::new(conf),
            record,
            ChangeTracker::default(),
            nameserver,
            tuning,
        )
    }

    #[tokio::test]
    async fn the_zone_is_found_by_the_longest_suffix_and_the_value_read() {
        let (zones, rrset) = zone_rules();
        let src = source(&[&zones, &rrset], record(false), None);
        let change = src.changes.clone();
        let readings = src.poll().await.expect("poll");
        let Reading::Dns(d) = &readings[0] else {
            panic!("{readings:?}")
        };
        assert_eq!(d.value.as_deref(), Some("old.example.com."));
        assert_eq!(d.ttl, Some(60));
        assert_eq!(d.change_status, None, "no change of ours yet");
        assert_eq!(
            zones.num_calls(),
            2,
            "db.shop.example.com. then shop.example.com."
        );
        src.poll().await.expect("second poll");
        assert_eq!(zones.num_calls(), 2, "the zone is cached");

        let get_change = mock!(Client::get_change)
            .match_requests(|r| r.id().is_some_and(|id| id.ends_with("C1")))
            .then_output(|| {
                GetChangeOutput::builder()
                    .change_info(
                        ChangeInfo::builder()
                            .id("/change/C1")
                            .status(ChangeStatus::Pending)
                            .submitted_at(aws_smithy_types::DateTime::from_secs(0))
                            .build()
                            .expect("info"),
                    )
                    .build()
            });
        let src = source(&[&zones, &rrset, &get_change], record(false), None);
        src.changes.record("/change/C1");
        let readings = src.poll().await.expect("poll");
        let Reading::Dns(d) = &readings[0] else {
            panic!("{readings:?}")
        };
        assert_eq!(d.change_status.as_deref(), Some("PENDING"));
        assert_eq!(d.change_id.as_deref(), Some("/change/C1"));
        drop(change);
    }

    /// A one-shot DNS server on 127.0.0.1 that answers one CNAME query with `target`.
    async fn one_shot_dns(target: &'static str) -> (SocketAddr, tokio::task::JoinHandle<bool>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = socket.recv_from(&mut buf).await.expect("query");
            let query = Message::from_vec(&buf[..n]).expect("parse query");
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.message_type = MessageType::Response;
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.add_queries(query.queries.clone());
            answer.add_answer(Record::from_rdata(
                Name::from_ascii("db.shop.example.com.").expect("name"),
                60,
                RData::CNAME(CNAME(Name::from_ascii(target).expect("name"))),
            ));
            let bytes = answer.to_vec().expect("encode");
            socket.send_to(&bytes, peer).await.expect("answer");
            // Whether the query asked for recursion (an authority is asked without).
            query.metadata.recursion_desired
        });
        (addr, server)
    }

    #[tokio::test]
    async fn the_resolver_answer_is_reported_in_the_plans_spelling() {
        let (addr, server) = one_shot_dns("new.example.com.").await;
        let (zones, rrset) = zone_rules();
        let mut rec = record(true);
        rec.target = "new.example.com".into();
        let src = source(&[&zones, &rrset], rec, Some(addr));
        let readings = src.poll().await.expect("poll");
        assert!(
            server.await.expect("server task"),
            "a resolver asks for recursion"
        );
        let Reading::Dns(d) = &readings[0] else {
            panic!("{readings:?}")
        };
        assert_eq!(
            d.resolved.as_deref(),
            Some("new.example.com"),
            "spelt like the plan's target"
        );
        assert_eq!(
            d.value.as_deref(),
            Some("old.example.com."),
            "the authority still says old"
        );
    }

    /// `dns.authoritative`: every authority asked directly, without recursion; their common
    /// answer, or who answered what when they disagree.
    #[tokio::test]
    async fn the_authoritative_servers_are_asked_directly_and_must_agree() {
        for (answers, agreed) in [
            (["new.example.com.", "new.example.com."], true),
            (["new.example.com.", "old.example.com."], false),
        ] {
            let (a, first) = one_shot_dns(answers[0]).await;
            let (b, second) = one_shot_dns(answers[1]).await;
            let (zones, rrset) = zone_rules();
            let mut rec = record(false);
            rec.authoritative = true;
            rec.authoritative_servers = vec![a, b];
            let src = source(&[&zones, &rrset], rec, None);
            let readings = src.poll().await.expect("poll");
            for server in [first, second] {
                assert!(
                    !server.await.expect("server task"),
                    "an authority is asked without recursion"
                );
            }
            let Reading::Dns(d) = &readings[0] else {
                panic!("{readings:?}")
            };
            if agreed {
                assert_eq!(
                    d.authoritative.as_deref(),
                    Some("new.example.com."),
                    "{d:?}"
                );
                assert_eq!(d.authoritative_error, None);
            } else {
                assert_eq!(d.authoritative, None, "{d:?}");
                let why = d.authoritative_error.as_deref().unwrap_or_default();
                assert!(
                    why.contains(&format!("{a} answers new.example.com."))
                        && why.contains(&format!("{b} answers old.example.com.")),
                    "{why}"
                );
            }
        }
    }

    #[test]
    fn names_compare_loosely() {
        assert!(same_name("DB.Shop.example.com", "db.shop.example.com."));
        assert!(same_name("\\052.example.com.", "*.example.com"));
        assert!(!same_name("db.example.com", "db.example.org"));
        assert_eq!(
            plan_spelling("x.example.com.", "y.example.com"),
            "x.example.com"
        );
        assert_eq!(
            plan_spelling("x.example.com.", "y.example.com."),
            "x.example.com."
        );
    }
}
