//! The AWS actuator: the only type in the program that holds mutating AWS calls. It stops and
//! starts the DMS task (each idempotent, waiting until the task reaches the wanted status,
//! bounded) and flips the Route 53 record (UPSERT with the plan's TTL, then GetChange until
//! INSYNC, bounded). Every step it takes is an output line in the transcript.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_databasemigration::types::{ReplicationTask, StartReplicationTaskTypeValue};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet,
};

use super::error::{FailureKind, describe};
use super::read::{DmsRead, Route53Read};
use super::route53::{current_value, find_zone, fqdn, rr_type};
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
    route53_read: Route53Read,
    route53: aws_sdk_route53::Client,
    /// Where flips are recorded; `None`: the process-wide tracker of the record.
    changes: Option<ChangeTracker>,
    tuning: Tuning,
}

fn fail(msg: impl Into<String>) -> ActionError {
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
        let t = self.describe(task).await?;
        let status = t.status.clone().unwrap_or_default();
        match status.as_str() {
            "stopped" | "ready" | "failed" => {
                out.line(format!("task {task} is already {status}: nothing to stop"));
                return Ok(format!("task {task} already {status}"));
            }
            "stopping" => out.line(format!("task {task} is already stopping")),
            _ => {
                let arn = t.replication_task_arn.clone().unwrap_or_default();
                out.line(format!("stopping task {task} (was {status})"));
                if let Err(e) = self
                    .dms
                    .stop_replication_task()
                    .replication_task_arn(&arn)
                    .send()
                    .await
                {
                    let f = describe("DMS StopReplicationTask", "dms:StopReplicationTask", &e);
                    if f.kind != FailureKind::InvalidState {
                        return Err(fail(f.message));
                    }
                    // Raced with another stop or a status change: the wait below tells.
                    out.line(format!("{}; re-reading the task", f.message));
                }
            }
        }
        self.wait_for(task, "stopped", out).await
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
        match current_value(&self.route53_read, &zone, record).await {
            Ok((old, ttl)) => out.line(format!(
                "{} {} was {old} (TTL {})",
                record.name,
                record.record_type,
                ttl.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
            )),
            // The UPSERT creates a missing record; say so and go on.
            Err(e) => out.line(e),
        }
        out.line(format!(
            "UPSERT {} {} -> {value} TTL {} in zone {zone}",
            record.name, record.record_type, record.ttl
        ));
        let batch = upsert(record, value).map_err(fail)?;
        let info = self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| {
                fail(
                    describe(
                        "Route 53 ChangeResourceRecordSets",
                        "route53:ChangeResourceRecordSets",
                        &e,
                    )
                    .message,
                )
            })?
            .change_info;
        let Some(info) = info else {
            return Err(fail(
                "Route 53 ChangeResourceRecordSets: the answer has no change info",
            ));
        };
        let id = info.id().to_string();
        self.changes
            .clone()
            .unwrap_or_else(|| ChangeTracker::for_record(&record.name))
            .record(&id);
        out.line(format!("change {id} is {}", info.status().as_str()));
        if !wait || *info.status() == ChangeStatus::Insync {
            return Ok(format!(
                "{} points at {value} (change {id} {})",
                record.name,
                info.status().as_str()
            ));
        }
        let started = Instant::now();
        loop {
            if started.elapsed() >= self.tuning.dns_wait {
                return Err(fail(format!(
                    "change {id} is not INSYNC after {}; the record already points at {value} — check Route 53 before going on",
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
                        out.line(format!("change {id} is INSYNC"));
                        return Ok(format!(
                            "{} points at {value}; change {id} INSYNC after {}",
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

/// The UPSERT batch: the record with the plan's TTL and the new value (A/AAAA values may be a
/// comma-separated list).
fn upsert(record: &DnsRecord, value: &str) -> Result<ChangeBatch, String> {
    let err = |e: aws_sdk_route53::error::BuildError| {
        format!("Route 53: could not build the change: {e}")
    };
    let mut set = ResourceRecordSet::builder()
        .name(fqdn(&record.name))
        .r#type(rr_type(&record.record_type))
        .ttl(i64::try_from(record.ttl).unwrap_or(i64::MAX));
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
        set = set.resource_records(ResourceRecord::builder().value(v).build().map_err(err)?);
    }
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(set.build().map_err(err)?)
        .build()
        .map_err(err)?;
    ChangeBatch::builder()
        .comment(format!("cutover: point {} at {value}", record.name))
        .changes(change)
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
                other => Err(fail(format!(
                    "the AWS actuator runs replication and DNS actions only, not \"{}\"",
                    other.describe(plan)
                ))),
            }
        })
    }
}
