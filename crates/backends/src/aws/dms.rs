//! The DMS engine mapped into the engine-neutral replication reading: the task's status,
//! stop reason and full-load progress (DescribeReplicationTasks), every table's statistics
//! with its validation state (DescribeTableStatistics, all pages), and the lag figures from
//! the task's CloudWatch CDC metrics (CDCLatencyTarget → apply lag, CDCLatencySource →
//! capture lag, CDCIncomingChanges → backlog), as one `Reading::Replication` a poll.

use std::time::Duration;

use aws_sdk_databasemigration::types::{ReplicationTask, TableStatistics};

use super::cloudwatch::MetricsSource;
use super::error::describe;
use super::read::DmsRead;
use cutover_core::event::{
    MetricSeries, Reading, ReplicationEngine, ReplicationReading, ReplicationStatus, SourceKind,
    TableStat, Ts, now_ms,
};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// Polls one DMS task.
pub struct ReplicationSource {
    dms: DmsRead,
    /// Identifier or ARN, as the plan names it.
    task: String,
    every: Duration,
    /// The task's CDC metrics in CloudWatch: the lag figures.
    cdc: Option<MetricsSource>,
}

impl ReplicationSource {
    pub fn new(dms: DmsRead, task: String, every: Duration) -> Self {
        ReplicationSource {
            dms,
            task,
            every,
            cdc: None,
        }
    }

    /// Reads the lag figures from the task's CloudWatch CDC metrics too.
    pub fn with_cdc_metrics(mut self, cdc: MetricsSource) -> Self {
        self.cdc = Some(cdc);
        self
    }

    async fn read(&self) -> Result<Vec<Reading>, SourceError> {
        let task = self
            .dms
            .describe_task_with_settings(&self.task)
            .await
            .map_err(|e| describe_tasks_failed(&e))?
            .ok_or_else(|| no_such_task(&self.task))?;
        let observed_at = now_ms();
        let reading = task_reading(&task, &self.task, observed_at);
        let Some(arn) = task.replication_task_arn.as_deref() else {
            return Err(SourceError::new(format!(
                "DMS DescribeReplicationTasks: the answer for task {} has no ARN",
                self.task
            )));
        };
        let mut reading = reading;
        // The status stays fresh when the statistics fail: the table and validation gates
        // say why they are unknown instead.
        match self.dms.table_statistics(arn).await {
            Ok(stats) => reading.tables = Some(stats.iter().map(table_stat).collect()),
            Err(e) => {
                reading.tables_error = Some(
                    describe(
                        "DMS DescribeTableStatistics",
                        "dms:DescribeTableStatistics",
                        &e,
                    )
                    .message,
                )
            }
        }
        if let Some(cdc) = &self.cdc {
            // The status stays fresh when CloudWatch fails: the lag gates say why they are
            // unknown instead.
            match cdc.fetch().await {
                Ok(series) => add_cdc(&mut reading, series),
                Err(e) => reading.figures_error = Some(e.to_string()),
            }
        }
        Ok(vec![Reading::Replication(Box::new(reading))])
    }
}

/// What DMS names a task's metrics and log after: the task's resource id (the last part of
/// its ARN, not the name given to it) and its replication instance's identifier.
pub(crate) struct TaskIds {
    pub resource_id: String,
    pub instance_id: String,
}

/// Looks up [`TaskIds`] (DescribeReplicationTasks, DescribeReplicationInstances).
pub(crate) async fn task_ids(dms: &DmsRead, task: &str) -> Result<TaskIds, SourceError> {
    let t = dms
        .describe_task(task)
        .await
        .map_err(|e| describe_tasks_failed(&e))?
        .ok_or_else(|| no_such_task(task))?;
    let arn = t.replication_task_arn.clone().unwrap_or_default();
    let resource_id = arn.rsplit(':').next().unwrap_or(task).to_string();
    let instance_arn = t.replication_instance_arn.clone().unwrap_or_default();
    let instance_id = dms
        .describe_instance(&instance_arn)
        .await
        .map_err(|e| {
            SourceError::new(
                describe(
                    "DMS DescribeReplicationInstances",
                    "dms:DescribeReplicationInstances",
                    &e,
                )
                .message,
            )
        })?
        .and_then(|i| i.replication_instance_identifier)
        .ok_or_else(|| {
            SourceError::new(format!(
                "DMS: the replication instance of task {task} ({instance_arn}) was not found"
            ))
        })?;
    Ok(TaskIds {
        resource_id,
        instance_id,
    })
}

/// A failed DescribeReplicationTasks, as a source's error.
pub(crate) fn describe_tasks_failed(
    e: &aws_sdk_databasemigration::error::SdkError<
        aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksError,
        aws_sdk_databasemigration::config::http::HttpResponse,
    >,
) -> SourceError {
    SourceError::new(
        describe(
            "DMS DescribeReplicationTasks",
            "dms:DescribeReplicationTasks",
            e,
        )
        .message,
    )
}

pub(crate) fn no_such_task(task: &str) -> SourceError {
    SourceError::new(format!(
        "DMS: no replication task \"{task}\" in this account and region; check [replication] task in the plan, --region and --profile"
    ))
}

impl Source for ReplicationSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Replication
    }

    fn name(&self) -> String {
        format!("dms:{}", self.task)
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(self.read())
    }
}

/// The task's identifier for display: its identifier when known, else what the plan said.
pub(crate) fn task_label(task: &ReplicationTask, planned: &str) -> String {
    task.replication_task_identifier
        .clone()
        .unwrap_or_else(|| planned.to_string())
}

/// The task's status as the engine-neutral reading (tables and lag figures not yet in).
pub(crate) fn task_reading(
    task: &ReplicationTask,
    planned: &str,
    observed_at: Ts,
) -> ReplicationReading {
    let stats = task.replication_task_stats.as_ref();
    let count = |n: i32| u32::try_from(n).ok();
    let word = task.status.clone().unwrap_or_else(|| "unknown".into());
    ReplicationReading {
        observed_at,
        engine: ReplicationEngine::Dms,
        name: task_label(task, planned),
        status: ReplicationStatus::from_dms(&word),
        status_text: word,
        stop_reason: task
            .stop_reason
            .clone()
            .or_else(|| task.last_failure_message.clone())
            .filter(|s| !s.is_empty()),
        last_error: task.last_failure_message.clone().filter(|s| !s.is_empty()),
        figures_error: None,
        tables_error: None,
        validation_enabled: task
            .replication_task_settings
            .as_deref()
            .and_then(validation_enabled),
        lag_s: Vec::new(),
        capture_lag_s: Vec::new(),
        backlog: Vec::new(),
        behind_transactions: None,
        behind_bytes: None,
        full_load_pct: stats.map(|s| f64::from(s.full_load_progress_percent)),
        tables_loaded: stats.and_then(|s| count(s.tables_loaded)),
        tables_loading: stats.and_then(|s| count(s.tables_loading)),
        tables_queued: stats.and_then(|s| count(s.tables_queued)),
        tables_errored: stats.and_then(|s| count(s.tables_errored)),
        tables: None,
        source_position: None,
        // DMS keeps its own position; the task's recovery checkpoint is what a resume uses.
        target_position: task.recovery_checkpoint.clone().filter(|s| !s.is_empty()),
        source_gtid: None,
        facts: Vec::new(),
        logical: None,
        sequences: None,
        sequences_error: None,
        gap_error: None,
    }
}

/// `ValidationSettings.EnableValidation` from the task's settings JSON; `None` when the
/// settings are absent or do not say (AWS writes the key in every task's settings).
pub(crate) fn validation_enabled(settings: &str) -> Option<bool> {
    let doc: serde_json::Value = serde_json::from_str(settings).ok()?;
    doc.get("ValidationSettings")?
        .get("EnableValidation")?
        .as_bool()
}

/// The CDC metric series into the reading's lag figures.
fn add_cdc(reading: &mut ReplicationReading, series: Vec<MetricSeries>) {
    for s in series {
        match s.name.as_str() {
            "CDCLatencyTarget" => reading.lag_s = s.points,
            "CDCLatencySource" => reading.capture_lag_s = s.points,
            "CDCIncomingChanges" => reading.backlog = s.points,
            _ => {}
        }
    }
}

pub(crate) fn table_stat(t: &TableStatistics) -> TableStat {
    let n = |v: i64| u64::try_from(v).ok();
    let table = match (t.schema_name.as_deref(), t.table_name.as_deref()) {
        (Some(s), Some(name)) if !s.is_empty() => format!("{s}.{name}"),
        (_, Some(name)) => name.to_string(),
        (Some(s), None) => format!("{s}.?"),
        (None, None) => "?".to_string(),
    };
    TableStat {
        table,
        full_load_rows: n(t.full_load_rows),
        inserts: n(t.inserts),
        updates: n(t.updates),
        deletes: n(t.deletes),
        validation_state: t.validation_state.clone(),
        validation_pending: n(t.validation_pending_records),
        validation_failed: n(t.validation_failed_records),
        validation_suspended: n(t.validation_suspended_records),
        table_state: t.table_state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_databasemigration::Client;
    use aws_sdk_databasemigration::operation::describe_replication_tasks::{
        DescribeReplicationTasksError, DescribeReplicationTasksOutput,
    };
    use aws_sdk_databasemigration::operation::describe_table_statistics::DescribeTableStatisticsOutput;
    use aws_sdk_databasemigration::types::{
        ReplicationTask, ReplicationTaskStats, TableStatistics,
    };
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use super::*;
    use crate::aws::testing;

    const ARN: &str = "arn:aws:dms:us-east-1:123456789012:task:ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    fn source(rules: &[&Rule]) -> ReplicationSource {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let conf = testing::tuning()
            .dms(&testing::sdk_config())
            .interceptor(interceptor);
        ReplicationSource::new(
            DmsRead::new(conf),
            "shop-cdc".into(),
            Duration::from_secs(1),
        )
    }

    fn running_task() -> Rule {
        mock!(Client::describe_replication_tasks)
            .match_requests(|r| {
                r.filters().first().is_some_and(|f| {
                    f.name() == "replication-task-id" && f.values() == ["shop-cdc".to_string()]
                })
            })
            .then_output(|| {
                DescribeReplicationTasksOutput::builder()
                    .replication_tasks(
                        ReplicationTask::builder()
                            .replication_task_identifier("shop-cdc")
                            .replication_task_arn(ARN)
                            .status("running")
                            .replication_task_stats(
                                ReplicationTaskStats::builder()
                                    .full_load_progress_percent(100)
                                    .tables_loaded(45)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
    }

    fn page(from: usize, to: usize, marker: Option<&str>) -> DescribeTableStatisticsOutput {
        let mut out = DescribeTableStatisticsOutput::builder().replication_task_arn(ARN);
        for i in from..to {
            out = out.table_statistics(
                TableStatistics::builder()
                    .schema_name("shop")
                    .table_name(format!("t{i:02}"))
                    .full_load_rows(i as i64)
                    .validation_state(if i == 44 {
                        "Mismatched records"
                    } else {
                        "Validated"
                    })
                    .validation_failed_records(if i == 44 { 3 } else { 0 })
                    .build(),
            );
        }
        out.set_marker(marker.map(str::to_string)).build()
    }

    #[tokio::test]
    async fn table_statistics_follow_every_page() {
        let stats = mock!(Client::describe_table_statistics)
            .match_requests(|r| r.replication_task_arn() == Some(ARN))
            .sequence()
            .output(|| page(0, 20, Some("20")))
            .output(|| page(20, 40, Some("40")))
            .output(|| page(40, 45, None))
            .build();
        let task = running_task();
        let src = source(&[&task, &stats]);
        let readings = src.poll().await.expect("the poll succeeds");
        assert_eq!(stats.num_calls(), 3, "three pages read");
        let [Reading::Replication(t)] = readings.as_slice() else {
            panic!("one replication reading: {readings:?}")
        };
        assert_eq!(
            (t.name.as_str(), t.status_text.as_str(), t.status),
            ("shop-cdc", "running", ReplicationStatus::Running)
        );
        assert_eq!(t.engine, ReplicationEngine::Dms);
        assert_eq!(t.full_load_pct, Some(100.0));
        let tables = t.tables.as_ref().expect("the table statistics");
        assert_eq!(tables.len(), 45);
        assert_eq!(tables[0].table, "shop.t00");
        assert_eq!(tables[44].validation_failed, Some(3));
        let mut names: Vec<_> = tables.iter().map(|t| t.table.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), 45, "no table twice");
    }

    #[tokio::test]
    async fn throttling_then_success_is_retried() {
        let throttled = mock!(Client::describe_replication_tasks)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()),
            )
            .times(2)
            .output(|| {
                DescribeReplicationTasksOutput::builder()
                    .replication_tasks(
                        ReplicationTask::builder()
                            .replication_task_identifier("shop-cdc")
                            .replication_task_arn(ARN)
                            .status("running")
                            .build(),
                    )
                    .build()
            })
            .build();
        let stats = mock!(Client::describe_table_statistics).then_output(|| page(0, 3, None));
        let src = source(&[&throttled, &stats]);
        let readings = src.poll().await.expect("retried to success");
        assert_eq!(
            throttled.num_calls(),
            3,
            "two throttled attempts, then the answer"
        );
        assert_eq!(readings.len(), 1, "one replication reading: {readings:?}");
    }

    #[tokio::test]
    async fn throttling_beyond_the_retries_is_a_clear_source_error() {
        let throttled = mock!(Client::describe_replication_tasks)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()),
            )
            .repeatedly()
            .build();
        let src = source(&[&throttled]);
        let err = src.poll().await.unwrap_err().0;
        assert_eq!(throttled.num_calls(), 3, "bounded by max_attempts");
        assert!(
            err.starts_with("DMS DescribeReplicationTasks: throttled by AWS"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_reported() {
        let failing = mock!(Client::describe_replication_tasks)
            .sequence()
            .http_status(
                503,
                Some(r#"{"__type":"ServiceUnavailable","message":"busy"}"#.into()),
            )
            .repeatedly()
            .build();
        let src = source(&[&failing]);
        let err = src.poll().await.unwrap_err().0;
        assert_eq!(failing.num_calls(), 3);
        assert!(err.contains("server error"), "{err}");
        assert!(
            err.contains("503") || err.contains("ServiceUnavailable"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn expired_credentials_name_the_fix_and_no_secret() {
        let expired = mock!(Client::describe_replication_tasks).then_error(|| {
            DescribeReplicationTasksError::generic(
                aws_sdk_databasemigration::error::ErrorMetadata::builder()
                    .code("ExpiredTokenException")
                    .message(format!(
                        "The security token included in the request is expired (key {} secret {})",
                        testing::KEY_ID,
                        testing::SECRET
                    ))
                    .build(),
            )
        });
        let src = source(&[&expired]);
        let err = src.poll().await.unwrap_err().0;
        assert!(err.contains("credentials have expired"), "{err}");
        assert!(err.contains("aws sso login"), "{err}");
        assert!(!err.contains(testing::SECRET), "{err}");
        assert!(!err.contains(testing::KEY_ID), "{err}");
    }

    #[tokio::test]
    async fn an_unknown_task_says_what_to_check() {
        let none = mock!(Client::describe_replication_tasks)
            .then_output(|| DescribeReplicationTasksOutput::builder().build());
        let src = source(&[&none]);
        let err = src.poll().await.unwrap_err().0;
        assert!(err.contains("no replication task \"shop-cdc\""), "{err}");
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out_into_a_clear_source_error() {
        // Accepts connections on 127.0.0.1 and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let tuning = crate::aws::Tuning {
            max_attempts: 2,
            attempt_timeout: Duration::from_millis(200),
            operation_timeout: Duration::from_millis(1500),
            ..testing::tuning()
        };
        let sdk = testing::sdk_config_at(&format!("http://{addr}"));
        let src = ReplicationSource::new(
            DmsRead::new(tuning.dms(&sdk)),
            "shop-cdc".into(),
            Duration::from_secs(1),
        );
        let started = std::time::Instant::now();
        let err = src.poll().await.unwrap_err().0;
        holder.abort();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded: {:?}",
            started.elapsed()
        );
        assert!(
            err.starts_with("DMS DescribeReplicationTasks: no answer in time"),
            "{err}"
        );
        assert!(!err.contains(testing::SECRET), "{err}");
    }
}
