//! The AWS actuator: the only type in the program that holds mutating AWS calls. It stops and
//! starts the DMS task (each idempotent, waiting until the task reaches the wanted status,
//! bounded) and flips the Route 53 record (UPSERT with the plan's TTL, then GetChange until
//! INSYNC, bounded). Every step it takes is an output line in the transcript.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_databasemigration::config::http::HttpResponse;
use aws_sdk_databasemigration::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_databasemigration::types::{ReplicationTask, StartReplicationTaskTypeValue};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet,
};

use super::error::{FailureKind, describe};
use super::read::{DmsRead, Route53Read};
use super::route53::{
    change_line, current_sets, describe_sets, find_zone, fqdn, record_value, rr_type,
};
use super::{ChangeTracker, Tuning};
use cutover_core::event::Direction;
use cutover_core::plan::{Action, DnsRecord, Plan, ReplicationEngine};
use cutover_runtime::action::{ActionError, Actuator, Output};
use cutover_runtime::source::BoxFuture;

/// Runs replication and DNS actions against AWS.
#[derive(Clone, Debug)]
pub struct AwsActuator {
    dms_read: DmsRead,
    dms: aws_sdk_databasemigration::Client,
    pub(super) route53_read: Route53Read,
    pub(super) route53: aws_sdk_route53::Client,
    parameter_groups: super::rds::ParameterGroups,
    /// Where flips are recorded; `None`: the process-wide tracker of the record.
    pub(super) changes: Option<ChangeTracker>,
    pub(super) tuning: Tuning,
}

/// Attempts at stopping a task whose state keeps DMS from accepting the stop.
const STOP_ROUNDS: usize = 3;

pub(super) fn fail(msg: impl Into<String>) -> ActionError {
    ActionError::new(msg)
}

impl AwsActuator {
    pub fn new(cfg: &SdkConfig) -> Self {
        Self::with_tuning(cfg, Tuning::default())
    }

    pub fn with_tuning(cfg: &SdkConfig, tuning: Tuning) -> Self {
        AwsActuator {
            dms_read: DmsRead::new(tuning.dms(cfg)),
            dms: aws_sdk_databasemigration::Client::from_conf(tuning.dms(cfg).build()),
            route53_read: Route53Read::new(tuning.route53(cfg)),
            route53: aws_sdk_route53::Client::from_conf(tuning.route53(cfg).build()),
            parameter_groups: super::rds::ParameterGroups::new(
                aws_sdk_rds::Client::from_conf(tuning.rds(cfg).build()),
                tuning.clone(),
            ),
            changes: None,
            tuning,
        }
    }

    /// Record the changes it makes in this tracker (by default: the process-wide tracker of
    /// the plan's record, which `AwsReader` follows too).
    pub fn with_changes(mut self, changes: ChangeTracker) -> Self {
        self.changes = Some(changes);
        self
    }

    /// A `parameter-group` freeze's AWS half: `read_only` set (or restored) in the side's
    /// parameter group, in sync. The proof on the connection is the caller's.
    pub async fn parameter_group_read_only(
        &self,
        plan: &Plan,
        side: cutover_core::event::Side,
        frozen: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        self.parameter_groups
            .set_read_only(plan, side, frozen, out)
            .await
    }

    /// How long the proof of a parameter-group freeze may take (see [`Tuning`]).
    pub fn read_only_wait(&self) -> Duration {
        self.tuning.read_only_wait
    }

    /// How often the proof reads `@@GLOBAL.read_only`.
    pub fn action_poll(&self) -> Duration {
        self.tuning.action_poll
    }

    fn task_of(plan: &Plan) -> Result<&str, ActionError> {
        match &plan.replication {
            Some(r) if r.engine == ReplicationEngine::Dms => Ok(&r.task),
            Some(_) => Err(fail(
                "the plan's replication engine is not dms; the AWS actuator drives DMS tasks only",
            )),
            None => Err(fail(
                "the plan has no [replication] section naming a DMS task",
            )),
        }
    }

    async fn describe(&self, task: &str) -> Result<ReplicationTask, ActionError> {
        self.dms_read
            .describe_task(task)
            .await
            .map_err(|e| fail(describe("DMS DescribeReplicationTasks", "dms:DescribeReplicationTasks", &e).message))?
            .ok_or_else(|| {
                fail(format!(
                    "DMS: no replication task \"{task}\" in this account and region; check [replication] task, --region and --profile"
                ))
            })
    }

    /// Re-reads the task until its status is `want`, bounded by `task_wait`. A transient
    /// describe failure is shown and retried; a failed task ends the wait.
    async fn wait_for(&self, task: &str, want: &str, out: &Output) -> Result<String, ActionError> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            match self.describe(task).await {
                Ok(t) => {
                    let status = t.status.clone().unwrap_or_default();
                    if status != last {
                        out.line(format!("task {task} is {status}"));
                        last = status.clone();
                    }
                    if status == want {
                        let why = t
                            .stop_reason
                            .as_deref()
                            .filter(|r| want == "stopped" && !r.is_empty())
                            .map(|r| format!(" (stop reason: {r})"))
                            .unwrap_or_default();
                        return Ok(format!(
                            "task {task} {want} after {}{why}",
                            humantime::format_duration(Duration::from_secs(
                                started.elapsed().as_secs()
                            ))
                        ));
                    }
                    if status == "failed" {
                        return Err(fail(format!(
                            "task {task} failed while waiting for {want}: {}",
                            t.last_failure_message
                                .as_deref()
                                .unwrap_or("no failure message")
                        )));
                    }
                }
                Err(e) => out.line(format!("{e}; retrying")),
            }
            if started.elapsed() >= self.tuning.task_wait {
                return Err(fail(format!(
                    "task {task} is still {} after {}; check it in the DMS console",
                    if last.is_empty() { "unknown" } else { &last },
                    humantime::format_duration(self.tuning.task_wait)
                )));
            }
            tokio::time::sleep(self.tuning.action_poll).await;
        }
    }

    async fn stop(&self, plan: &Plan, out: &Output) -> Result<String, ActionError> {
        let task = Self::task_of(plan)?;
        // A few rounds: DMS refuses a stop while the task is starting (InvalidResourceState),
        // so a starting task is waited for until it runs, then stopped.
        for _ in 0..STOP_ROUNDS {
            let t = self.describe(task).await?;
            let status = t.status.clone().unwrap_or_default();
            match status.as_str() {
                "stopped" | "ready" => {
                    out.line(format!("task {task} is already {status}: nothing to stop"));
                    return Ok(format!("task {task} already {status}"));
                }
                // Replication did not stop cleanly at a point this step chose: it broke. The
                // step fails so nobody flips DNS believing the target caught up.
                "failed" => {
                    return Err(fail(format!(
                        "task {task} is failed, not stopped by this step ({}); find out how far it replicated (validation, drift) before going on or rolling back",
                        t.last_failure_message
                            .as_deref()
                            .or(t.stop_reason.as_deref())
                            .unwrap_or("no failure message")
                    )));
                }
                "stopping" => {
                    out.line(format!("task {task} is already stopping"));
                    return self.wait_for(task, "stopped", out).await;
                }
                "starting" | "resuming" => {
                    out.line(format!(
                        "task {task} is {status}: DMS cannot stop it now; waiting until it runs"
                    ));
                    self.wait_for(task, "running", out).await?;
                }
                _ => {
                    let arn = t.replication_task_arn.clone().unwrap_or_default();
                    out.line(format!("stopping task {task} (was {status})"));
                    match self
                        .dms
                        .stop_replication_task()
                        .replication_task_arn(&arn)
                        .send()
                        .await
                    {
                        Ok(_) => return self.wait_for(task, "stopped", out).await,
                        Err(e) => {
                            let f =
                                describe("DMS StopReplicationTask", "dms:StopReplicationTask", &e);
                            if f.kind != FailureKind::InvalidState {
                                return Err(fail(f.message));
                            }
                            // Raced with another stop or a status change: look again.
                            out.line(format!("{}; re-reading the task", f.message));
                        }
                    }
                }
            }
        }
        Err(fail(format!(
            "task {task} could not be stopped in {STOP_ROUNDS} attempts (DMS kept refusing in its current state); check it in the DMS console"
        )))
    }

    async fn start(&self, plan: &Plan, out: &Output) -> Result<String, ActionError> {
        let task = Self::task_of(plan)?;
        let t = self.describe(task).await?;
        let mut status = t.status.clone().unwrap_or_default();
        if status == "stopping" {
            out.line(format!(
                "task {task} is stopping; waiting for it to stop before resuming"
            ));
            self.wait_for(task, "stopped", out).await?;
            status = "stopped".into();
        }
        let kind = match status.as_str() {
            "running" => {
                out.line(format!("task {task} is already running: nothing to start"));
                return Ok(format!("task {task} already running"));
            }
            "starting" => None,
            // Resume CDC from where it stopped: a fresh start would reload every table.
            "stopped" | "failed" => Some(StartReplicationTaskTypeValue::ResumeProcessing),
            // A task that never ran: starting it is a full load, which drops the target's
            // tables under the default preparation mode. Never as an undo.
            "ready" if out.direction() == Direction::Undo => {
                return Err(fail(format!(
                    "task {task} is ready (it never replicated): starting it now would run a full load and may drop the target's tables; during a rollback this is refused — check the task and start it by hand if that is what you want"
                )));
            }
            "ready" => Some(StartReplicationTaskTypeValue::StartReplication),
            other => {
                return Err(fail(format!(
                    "task {task} is {other}; it cannot be started now (wait until it is stopped or ready)"
                )));
            }
        };
        if let Some(kind) = kind {
            let arn = t.replication_task_arn.clone().unwrap_or_default();
            out.line(format!(
                "starting task {task} ({}, was {status})",
                kind.as_str()
            ));
            if let Err(e) = self
                .dms
                .start_replication_task()
                .replication_task_arn(&arn)
                .start_replication_task_type(kind)
                .send()
                .await
            {
                let f = describe("DMS StartReplicationTask", "dms:StartReplicationTask", &e);
                if f.kind != FailureKind::InvalidState {
                    return Err(fail(f.message));
                }
                out.line(format!("{}; re-reading the task", f.message));
            }
        }
        self.wait_for(task, "running", out).await
    }

    async fn flip(
        &self,
        plan: &Plan,
        value: &str,
        wait: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let Some(record) = &plan.dns else {
            return Err(fail("the plan has no [dns] section"));
        };
        let zone = find_zone(&self.route53_read, record).await.map_err(fail)?;
        // What is there now: the batch deletes exactly this, so a change made by anyone
        // between this read and the flip makes Route 53 refuse the whole batch.
        // A failed read stops here: without it there is nothing to compare and swap.
        let old = current_sets(&self.route53_read, &zone, record)
            .await
            .map_err(fail)?;
        if old.is_empty() {
            out.line(format!(
                "{} {} does not exist in zone {zone}; the flip creates it",
                record.name, record.record_type
            ));
        } else {
            out.line(format!(
                "{} {} was {}",
                record.name,
                record.record_type,
                describe_sets(&old)
            ));
        }
        let batch = compare_and_swap(record, &old, value).map_err(fail)?;
        out.line(format!(
            "DELETE the {} set{} read above + CREATE {} {} -> {value} TTL {} in zone {zone}, in one batch",
            old.len(),
            if old.len() == 1 { "" } else { "s" },
            record.name,
            record.record_type,
            record.ttl
        ));
        let info = self.submit(record, &zone, batch).await?;
        self.follow(record, &info, &format!("points at {value}"), wait, out)
            .await
    }

    /// Sends one compare-and-swap change batch for `record` to `zone`: the change it made, or
    /// why Route 53 refused it (a set changed since it was read fails the whole batch).
    pub(super) async fn submit(
        &self,
        record: &DnsRecord,
        zone: &str,
        batch: ChangeBatch,
    ) -> Result<aws_sdk_route53::types::ChangeInfo, ActionError> {
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| fail(flip_refused(record, &e)))?
            .change_info
            .ok_or_else(|| fail("Route 53 ChangeResourceRecordSets: the answer has no change info"))
    }

    /// After Route 53 accepted a change: its id recorded (the tracker and an output line,
    /// so `dns.status` and `resume` can follow it), then — if asked — GetChange until
    /// INSYNC, bounded. `done` says what the change did ("points at X").
    pub(super) async fn follow(
        &self,
        record: &DnsRecord,
        info: &aws_sdk_route53::types::ChangeInfo,
        done: &str,
        wait: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let id = info.id().to_string();
        self.changes
            .clone()
            .unwrap_or_else(|| ChangeTracker::for_record(&record.name))
            .record(&id);
        out.line(change_line(&id, info.status().as_str()));
        if !wait || *info.status() == ChangeStatus::Insync {
            return Ok(format!(
                "{} {done} (change {id} {})",
                record.name,
                info.status().as_str()
            ));
        }
        let started = Instant::now();
        loop {
            if started.elapsed() >= self.tuning.dns_wait {
                return Err(fail(format!(
                    "change {id} is not INSYNC after {}; the record already {done} — check Route 53 before going on",
                    humantime::format_duration(self.tuning.dns_wait)
                )));
            }
            tokio::time::sleep(self.tuning.action_poll).await;
            match self.route53_read.get_change(&id).await {
                Ok(o) => {
                    let status = o
                        .change_info
                        .map(|c| c.status)
                        .unwrap_or(ChangeStatus::Pending);
                    if status == ChangeStatus::Insync {
                        out.line(change_line(&id, "INSYNC"));
                        return Ok(format!(
                            "{} {done}; change {id} INSYNC after {}",
                            record.name,
                            humantime::format_duration(Duration::from_secs(
                                started.elapsed().as_secs()
                            ))
                        ));
                    }
                }
                Err(e) => out.line(format!(
                    "{}; retrying",
                    describe("Route 53 GetChange", "route53:GetChange", &e).message
                )),
            }
        }
    }
}

/// Why Route 53 refused the flip. A DELETE whose values no longer match (or a CREATE of a
/// set that now exists) means someone changed the record after it was read: named as such.
fn flip_refused<E>(record: &DnsRecord, e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let f = describe(
        "Route 53 ChangeResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        e,
    );
    let text = e.message().unwrap_or("").to_ascii_lowercase();
    let raced = e.code() == Some("InvalidChangeBatch")
        && (text.contains("do not match")
            || text.contains("already exists")
            || text.contains("not found"));
    if raced {
        format!(
            "{}: {} changed after it was read (a concurrent change): the flip was NOT applied — read the record again, decide, then retry the step ({})",
            "Route 53 ChangeResourceRecordSets", record.name, f.message
        )
    } else {
        f.message
    }
}

/// The flip as one compare-and-swap batch: DELETE every set exactly as read, CREATE the new
/// one(s) with the plan's TTL.
///
/// - A simple record (or none): one set with the new value (A/AAAA values may be a
///   comma-separated list). An alias stays an alias (same hosted zone, health evaluation),
///   with the new DNS name.
/// - Weighted sets: the weights move instead of the values — the set whose value is the new
///   one gets all the weight (the sum of the old weights, at least 1), every other set 0.
/// - Failover sets: refused (their routing is Route 53's health checks', not a flip's).
pub(crate) fn compare_and_swap(
    record: &DnsRecord,
    old: &[ResourceRecordSet],
    value: &str,
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
    if old.iter().any(|s| s.failover().is_some()) {
        return Err(format!(
            "{} is a failover record ({}): Route 53 health checks choose its set, a flip cannot; change the record by hand or make it a simple or weighted one",
            record.name,
            describe_sets(old)
        ));
    }
    let mut changes = Vec::new();
    for set in old {
        changes.push(change(ChangeAction::Delete, set.clone())?);
    }
    if old.iter().any(|s| s.weight().is_some()) {
        let total: i64 = old.iter().filter_map(|s| s.weight()).sum::<i64>().max(1);
        let want = super::route53::fqdn(value);
        if !old
            .iter()
            .any(|s| super::route53::same_name(&record_value(s), &want))
        {
            return Err(format!(
                "no weighted set of {} has the value {value} ({}); a weighted flip moves the weight to an existing set — add the set first",
                record.name,
                describe_sets(old)
            ));
        }
        for set in old {
            let weight = if super::route53::same_name(&record_value(set), &want) {
                total.min(255)
            } else {
                0
            };
            let mut new = set.clone();
            new.weight = Some(weight);
            changes.push(change(ChangeAction::Create, new)?);
        }
    } else {
        let mut set = ResourceRecordSet::builder()
            .name(fqdn(&record.name))
            .r#type(rr_type(&record.record_type));
        match old.first().and_then(|s| s.alias_target()) {
            Some(alias) => {
                set = set.alias_target(
                    AliasTarget::builder()
                        .hosted_zone_id(alias.hosted_zone_id())
                        .dns_name(value)
                        .evaluate_target_health(alias.evaluate_target_health())
                        .build()
                        .map_err(err)?,
                );
            }
            None => {
                set = set.ttl(i64::try_from(record.ttl).unwrap_or(i64::MAX));
                let values: Vec<&str> = if record.record_type == "CNAME" {
                    vec![value]
                } else {
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .collect()
                };
                for v in values {
                    set = set
                        .resource_records(ResourceRecord::builder().value(v).build().map_err(err)?);
                }
            }
        }
        changes.push(change(ChangeAction::Create, set.build().map_err(err)?)?);
    }
    ChangeBatch::builder()
        .comment(format!("cutover: point {} at {value}", record.name))
        .set_changes(Some(changes))
        .build()
        .map_err(err)
}

impl Actuator for AwsActuator {
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async move {
            match action {
                Action::ReplicationStop => self.stop(plan, out).await,
                Action::ReplicationStart => self.start(plan, out).await,
                Action::Dns { to, wait } => {
                    let value = plan
                        .dns_value(to)
                        .ok_or_else(|| fail("the plan has no [dns] section"))?;
                    self.flip(plan, &value, *wait, out).await
                }
                Action::DnsWeights { weights, wait } => {
                    self.weigh(plan, *weights, *wait, out).await
                }
                other => Err(fail(format!(
                    "the AWS actuator runs replication and DNS actions only, not \"{}\"",
                    other.describe(plan)
                ))),
            }
        })
    }
}
