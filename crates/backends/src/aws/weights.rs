//! A weighted DNS stage (`kind = "dns"` with `weights`): the plan's two weighted record sets
//! (`[dns] source_set` → the source's value, `target_set` → the target's) set to the stage's
//! weights in one compare-and-swap batch — DELETE every set exactly as read, CREATE the two
//! sets — so a change made by anyone between the read and the write makes Route 53 refuse the
//! whole batch. The weights read first are written as an output line before anything
//! changes (`Weights::before_line`): the fold keeps them, and an undo with
//! `weights = "previous"` restores exactly those, in this session or after `resume`.

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet,
};

use super::drive::{AwsActuator, fail};
use super::route53::{
    current_sets, describe_sets, find_zone, fqdn, record_value, rr_type, same_name,
};
use cutover_core::plan::{DnsRecord, DnsWeights, Plan, Weights};
use cutover_runtime::action::{ActionError, Output};

impl AwsActuator {
    pub(super) async fn weigh(
        &self,
        plan: &Plan,
        weights: DnsWeights,
        wait: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let Some(record) = &plan.dns else {
            return Err(fail("the plan has no [dns] section"));
        };
        let DnsWeights::Set(want) = weights else {
            // The session resolves `previous` from the fold; still unresolved means the
            // step's action never read (so never changed) the record.
            return Ok(format!(
                "no weights of {} were read before this step's change: it changed nothing, nothing to restore",
                record.name
            ));
        };
        let zone = find_zone(&self.route53_read, record).await.map_err(fail)?;
        let old = current_sets(&self.route53_read, &zone, record)
            .await
            .map_err(fail)?;
        let before = weights_as_read(record, &old).map_err(fail)?;
        out.line(format!(
            "{} {} was {}",
            record.name,
            record.record_type,
            describe_sets(&old)
        ));
        out.line(before.before_line());
        if before == want && old.iter().all(|s| s.weight().is_some()) {
            return Ok(format!(
                "{} already weighted {want}; nothing changed",
                record.name
            ));
        }
        let batch = weighted_batch(record, &old, want).map_err(fail)?;
        out.line(format!(
            "DELETE the {} set{} read above + CREATE {} {} set {} -> {} weight {} and set {} -> {} weight {}, TTL {}, in zone {zone}, in one batch",
            old.len(),
            if old.len() == 1 { "" } else { "s" },
            record.name,
            record.record_type,
            record.source_set,
            record.source,
            want.source,
            record.target_set,
            record.target,
            want.target,
            record.ttl
        ));
        let info = self.submit(record, &zone, batch).await?;
        self.follow(
            record,
            &info,
            &format!(
                "is weighted {want} ({:.0} % to the target)",
                want.target_percent()
            ),
            wait,
            out,
        )
        .await
    }
}

/// Whether a set's value is the plan's `value` (names without regard to case or the final
/// dot; A/AAAA value lists in any order).
fn is_value(record: &DnsRecord, set: &ResourceRecordSet, value: &str) -> bool {
    if record.record_type == "CNAME" || set.alias_target().is_some() {
        return same_name(&record_value(set), value);
    }
    let mut want: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    want.sort_unstable();
    record_value(set) == want.join(",")
}

/// The weights the record carries now, in the plan's terms. Weighted: exactly the plan's
/// two set identifiers (a missing one weighs 0), each with its side's value. A plain record
/// pointing at one side counts as all its traffic there (source 100, target 0 or the
/// reverse), so the first stage turns it into the two weighted sets. Anything else (no
/// record, failover, an alias, a set or value the plan does not name) is refused: a
/// stage never overwrites what it cannot restore.
pub(crate) fn weights_as_read(
    record: &DnsRecord,
    old: &[ResourceRecordSet],
) -> Result<Weights, String> {
    let shown = || describe_sets(old);
    if old.is_empty() {
        return Err(format!(
            "{} {} does not exist: a weighted stage re-weighs the record the applications use — create it first",
            record.name, record.record_type
        ));
    }
    if old
        .iter()
        .any(|s| s.failover().is_some() || s.alias_target().is_some())
    {
        return Err(format!(
            "{} is a failover or alias record ({}): a weighted stage writes two plain weighted sets — change the record by hand first",
            record.name,
            shown()
        ));
    }
    if old.iter().all(|s| s.weight().is_none()) {
        let [only] = old else {
            return Err(format!(
                "{}: more than one plain set ({})",
                record.name,
                shown()
            ));
        };
        return if is_value(record, only, &record.source) {
            Ok(Weights {
                source: 100,
                target: 0,
            })
        } else if is_value(record, only, &record.target) {
            Ok(Weights {
                source: 0,
                target: 100,
            })
        } else {
            Err(format!(
                "{} points at {}, neither the plan's source ({}) nor its target ({}): a weighted stage would lose it — check the record",
                record.name,
                record_value(only),
                record.source,
                record.target
            ))
        };
    }
    let mut weights = Weights {
        source: 0,
        target: 0,
    };
    for set in old {
        let id = set.set_identifier().unwrap_or("");
        let (side, value, slot) = if id == record.source_set {
            ("source", &record.source, &mut weights.source)
        } else if id == record.target_set {
            ("target", &record.target, &mut weights.target)
        } else {
            return Err(format!(
                "{} has a set the plan does not name (id {id:?}; the plan's are source_set {:?} and target_set {:?}): {} — name it in [dns] or remove it first",
                record.name,
                record.source_set,
                record.target_set,
                shown()
            ));
        };
        if !is_value(record, set, value) {
            return Err(format!(
                "{}: set {id} points at {}, not the plan's {side} ({value}): {} — fix the set or the plan",
                record.name,
                record_value(set),
                shown()
            ));
        }
        *slot = u8::try_from(set.weight().unwrap_or(0).clamp(0, 255)).unwrap_or(u8::MAX);
    }
    Ok(weights)
}

/// DELETE every set exactly as read, CREATE the plan's two weighted sets.
pub(crate) fn weighted_batch(
    record: &DnsRecord,
    old: &[ResourceRecordSet],
    want: Weights,
) -> Result<ChangeBatch, String> {
    let err = |e: aws_sdk_route53::error::BuildError| {
        format!("Route 53: could not build the change: {e}")
    };
    let change = |action: ChangeAction, set: ResourceRecordSet| {
        Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .map_err(err)
    };
    let mut changes = Vec::new();
    for set in old {
        changes.push(change(ChangeAction::Delete, set.clone())?);
    }
    for (id, value, weight) in [
        (&record.source_set, &record.source, want.source),
        (&record.target_set, &record.target, want.target),
    ] {
        let mut set = ResourceRecordSet::builder()
            .name(fqdn(&record.name))
            .r#type(rr_type(&record.record_type))
            .set_identifier(id)
            .weight(i64::from(weight))
            .ttl(i64::try_from(record.ttl).unwrap_or(i64::MAX));
        let values: Vec<&str> = if record.record_type == "CNAME" {
            vec![value.as_str()]
        } else {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect()
        };
        for v in values {
            set = set.resource_records(ResourceRecord::builder().value(v).build().map_err(err)?);
        }
        changes.push(change(ChangeAction::Create, set.build().map_err(err)?)?);
    }
    ChangeBatch::builder()
        .comment(format!("cutover: weigh {} {want}", record.name))
        .set_changes(Some(changes))
        .build()
        .map_err(err)
}
