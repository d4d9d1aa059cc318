//! CloudWatch: the plan's metrics (a source of their own), and the DMS task's
//! CDCLatencySource, CDCLatencyTarget and CDCIncomingChanges, which the DMS replication source
//! reads through [`MetricsSource::dms_cdc`] for its lag figures. Each is ONE batched
//! GetMetricData a poll.
//!
//! CloudWatch is minute-grained. Every point keeps the datapoint's own timestamp (the start of
//! its one-minute period), never the poll's time, so the fold ages it honestly; a datapoint
//! typically appears a minute or two after its period starts. Gates on these inputs therefore
//! need a freshness bound of a few minutes: the default for metric inputs is 180 s.
//!
//! The task's metrics carry the dimensions DMS publishes them under:
//! `ReplicationInstanceIdentifier` (the instance's identifier) and `ReplicationTaskIdentifier`
//! (the task's resource id, the last part of its ARN — not the name given to the task). They
//! are looked up once (DescribeReplicationTasks, DescribeReplicationInstances) and cached.
//! A plan metric in the AWS/DMS namespace without dimensions gets the same ones.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};
use aws_smithy_types::DateTime;
use tokio::sync::OnceCell;

use super::Tuning;
use super::error::describe;
use super::read::{CloudWatchRead, DmsRead};
use cutover_core::event::{MetricSeries, Reading, SourceKind, now_ms};
use cutover_core::plan::{DEFAULT_METRICS, MetricDef};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// The period of every query: CloudWatch's standard resolution.
const PERIOD_S: i32 = 60;

/// The DMS task's CloudWatch dimensions.
pub type Dimensions = Vec<(String, String)>;

/// Polls CloudWatch for the plan's metrics and the task's CDC metrics.
pub struct MetricsSource {
    cloudwatch: CloudWatchRead,
    dms: DmsRead,
    task: Option<String>,
    plan_metrics: Vec<MetricDef>,
    /// Also fetch the task's CDC metrics (for the DMS replication source).
    cdc: bool,
    tuning: Tuning,
    dimensions: OnceCell<Dimensions>,
}

/// One series to fetch.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub name: String,
    pub namespace: String,
    pub stat: String,
    pub dimensions: Dimensions,
    pub unit: Option<String>,
}

impl MetricsSource {
    pub fn new(
        cloudwatch: CloudWatchRead,
        dms: DmsRead,
        task: Option<String>,
        plan_metrics: Vec<MetricDef>,
        tuning: Tuning,
    ) -> Self {
        MetricsSource {
            cloudwatch,
            dms,
            task,
            plan_metrics,
            cdc: false,
            tuning,
            dimensions: OnceCell::new(),
        }
    }

    /// The DMS task's CDC metrics alone, for the DMS replication source's lag figures.
    pub fn dms_cdc(cloudwatch: CloudWatchRead, dms: DmsRead, task: String, tuning: Tuning) -> Self {
        MetricsSource {
            cdc: true,
            ..MetricsSource::new(cloudwatch, dms, Some(task), Vec::new(), tuning)
        }
    }

    /// Looks the task's dimensions up once; a failure is retried on the next poll.
    async fn task_dimensions(&self, task: &str) -> Result<&Dimensions, SourceError> {
        self.dimensions
            .get_or_try_init(|| async {
                let ids = super::dms::task_ids(&self.dms, task).await?;
                Ok(vec![
                    ("ReplicationInstanceIdentifier".to_string(), ids.instance_id),
                    ("ReplicationTaskIdentifier".to_string(), ids.resource_id),
                ])
            })
            .await
    }

    async fn read(&self) -> Result<Vec<Reading>, SourceError> {
        let series = self.fetch().await?;
        if series.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Reading::Metrics {
            observed_at: now_ms(),
            series,
        }])
    }

    /// One batched GetMetricData: every series this source reads, each datapoint with its own
    /// timestamp.
    pub async fn fetch(&self) -> Result<Vec<MetricSeries>, SourceError> {
        let mut lookup_failed = None;
        let dims = match &self.task {
            // Plan metrics in AWS/DMS without dimensions need the task's too.
            Some(task)
                if self.cdc || self.plan_metrics.iter().any(|m| m.namespace == "AWS/DMS") =>
            {
                match self.task_dimensions(task).await {
                    Ok(d) => Some(d.clone()),
                    // The CDC figures need them; the plan's other metrics do not, and a
                    // failed lookup must not hide them.
                    Err(e) if !self.cdc => {
                        lookup_failed = Some(e);
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        let mut queries = queries(&self.plan_metrics, dims.as_ref(), self.cdc);
        if let Some(e) = &lookup_failed {
            let skipped: Vec<String> = queries
                .iter()
                .filter(|q| q.namespace == "AWS/DMS" && q.dimensions.is_empty())
                .map(|q| q.name.clone())
                .collect();
            queries.retain(|q| !(q.namespace == "AWS/DMS" && q.dimensions.is_empty()));
            if queries.is_empty() {
                return Err(e.clone());
            }
            tracing::warn!(
                skipped = skipped.join(", "),
                error = %e,
                "the task's CloudWatch dimensions could not be looked up; its metrics are skipped this poll"
            );
        }
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let now_s = now_ms().div_euclid(1000);
        // Whole minutes, so every period lines up with CloudWatch's own.
        let end = (now_s.div_euclid(60) + 1) * 60;
        let start = end - self.tuning.metrics_window.as_secs().max(60) as i64;
        let out = self
            .cloudwatch
            .get_metric_data(
                queries
                    .iter()
                    .enumerate()
                    .map(|(i, q)| to_query(i, q))
                    .collect(),
                DateTime::from_secs(start),
                DateTime::from_secs(end),
            )
            .await
            .map_err(|e| {
                SourceError::new(
                    describe("CloudWatch GetMetricData", "cloudwatch:GetMetricData", &e).message,
                )
            })?;
        let mut series: Vec<MetricSeries> = queries
            .iter()
            .map(|q| MetricSeries {
                name: q.name.clone(),
                unit: q.unit.clone(),
                points: Vec::new(),
            })
            .collect();
        if out.next_token().is_some() {
            // A 10-minute window of one-minute points is far below a page (100,800 points);
            // more pages would mean a misconfigured window, so say so instead of paging.
            tracing::warn!("GetMetricData has more pages; only the first is shown");
        }
        let mut failed = Vec::new();
        for result in out.metric_data_results() {
            let Some(i) = result
                .id()
                .and_then(|id| id.strip_prefix('m'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|i| *i < series.len())
            else {
                continue;
            };
            if matches!(
                result.status_code(),
                Some(StatusCode::InternalError) | Some(StatusCode::Forbidden)
            ) {
                failed.push(format!(
                    "{} ({})",
                    series[i].name,
                    result.status_code().map(|s| s.as_str()).unwrap_or("?")
                ));
                continue;
            }
            let mut points: Vec<(i64, f64)> = result
                .timestamps()
                .iter()
                .zip(result.values())
                .filter_map(|(t, v)| t.to_millis().ok().map(|ms| (ms, *v)))
                .collect();
            points.sort_by_key(|p| p.0);
            series[i].points = points;
        }
        if !failed.is_empty() && failed.len() == series.len() {
            return Err(SourceError::new(format!(
                "CloudWatch GetMetricData: no series could be read: {}; check cloudwatch:GetMetricData in the IAM policy",
                failed.join(", ")
            )));
        }
        if !failed.is_empty() {
            tracing::warn!(series = failed.join(", "), "some CloudWatch series failed");
        }
        Ok(series)
    }
}

/// The series one poll fetches: with `cdc`, the DMS task's CDC metrics (unless the plan
/// defines one of the same name), then the plan's metrics (an AWS/DMS one without dimensions
/// gets the task's).
pub fn queries(
    plan_metrics: &[MetricDef],
    task_dims: Option<&Dimensions>,
    cdc: bool,
) -> Vec<Query> {
    let mut out = Vec::new();
    if let Some(dims) = task_dims.filter(|_| cdc) {
        for name in DEFAULT_METRICS {
            if plan_metrics.iter().any(|m| m.name == *name) {
                continue;
            }
            out.push(Query {
                name: name.to_string(),
                namespace: "AWS/DMS".into(),
                // The worst value of each minute: a gate must not pass on an average.
                stat: "Maximum".into(),
                dimensions: dims.clone(),
                unit: Some(
                    if name.starts_with("CDCLatency") {
                        "s"
                    } else {
                        "changes"
                    }
                    .into(),
                ),
            });
        }
    }
    for m in plan_metrics {
        let dimensions = match (m.dimensions.is_empty(), m.namespace == "AWS/DMS", task_dims) {
            (true, true, Some(dims)) => dims.clone(),
            _ => m.dimensions.clone(),
        };
        out.push(Query {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            stat: m.stat.clone(),
            dimensions,
            unit: m.unit.clone(),
        });
    }
    out
}

fn to_query(i: usize, q: &Query) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace(&q.namespace)
        .metric_name(&q.name);
    for (name, value) in &q.dimensions {
        metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
    }
    MetricDataQuery::builder()
        // Ids must start with a lower-case letter; the index maps the answer back.
        .id(format!("m{i}"))
        .label(&q.name)
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(PERIOD_S)
                .stat(&q.stat)
                .build(),
        )
        .return_data(true)
        .build()
}

impl Source for MetricsSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Metrics
    }

    fn name(&self) -> String {
        "cloudwatch".into()
    }

    fn interval(&self) -> Duration {
        self.tuning.metrics_every
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(self.read())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_sdk_databasemigration::operation::describe_replication_instances::DescribeReplicationInstancesOutput;
    use aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksOutput;
    use aws_sdk_databasemigration::types::{ReplicationInstance, ReplicationTask};
    use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};

    use super::*;
    use crate::aws::testing;

    fn plan_metric(name: &str, namespace: &str) -> MetricDef {
        MetricDef {
            name: name.into(),
            namespace: namespace.into(),
            stat: "Average".into(),
            dimensions: Vec::new(),
            unit: None,
        }
    }

    #[test]
    fn task_metrics_come_first_and_plan_definitions_win() {
        let dims = vec![
            (
                "ReplicationInstanceIdentifier".to_string(),
                "ri".to_string(),
            ),
            ("ReplicationTaskIdentifier".to_string(), "RES".to_string()),
        ];
        let plan = vec![
            plan_metric("CDCLatencyTarget", "AWS/DMS"),
            plan_metric("CPUUtilization", "AWS/RDS"),
        ];
        let q = queries(&plan, Some(&dims), true);
        let names: Vec<_> = q.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CDCLatencySource",
                "CDCIncomingChanges",
                "CDCLatencyTarget",
                "CPUUtilization"
            ]
        );
        assert_eq!(
            q[2].dimensions, dims,
            "an AWS/DMS plan metric gets the task's dimensions"
        );
        assert!(q[3].dimensions.is_empty());
        assert!(queries(&[], None, true).is_empty());
        // The plan's metrics source: no CDC series, the AWS/DMS metric still gets the task's
        // dimensions.
        let q = queries(&plan, Some(&dims), false);
        let names: Vec<_> = q.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["CDCLatencyTarget", "CPUUtilization"]);
        assert_eq!(q[0].dimensions, dims);
    }

    #[tokio::test]
    async fn one_batched_call_keeps_each_datapoints_own_timestamp() {
        let tasks = mock!(aws_sdk_databasemigration::Client::describe_replication_tasks)
            .then_output(|| {
                DescribeReplicationTasksOutput::builder()
                    .replication_tasks(
                        ReplicationTask::builder()
                            .replication_task_identifier("shop-cdc")
                            .replication_task_arn("arn:aws:dms:us-east-1:1:task:RESOURCEID")
                            .replication_instance_arn("arn:aws:dms:us-east-1:1:rep:INST")
                            .build(),
                    )
                    .build()
            });
        let instances = mock!(aws_sdk_databasemigration::Client::describe_replication_instances)
            .then_output(|| {
                DescribeReplicationInstancesOutput::builder()
                    .replication_instances(
                        ReplicationInstance::builder()
                            .replication_instance_identifier("shop-ri")
                            .build(),
                    )
                    .build()
            });
        let metrics = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                let qs = r.metric_data_queries();
                qs.len() == 3
                    && qs.iter().all(|q| {
                        let dims = q
                            .metric_stat()
                            .and_then(|s| s.metric())
                            .map(|m| m.dimensions().to_vec());
                        dims.is_some_and(|d| {
                            d.iter().any(|d| d.value() == Some("RESOURCEID"))
                                && d.iter().any(|d| d.value() == Some("shop-ri"))
                        })
                    })
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("m1")
                            .timestamps(DateTime::from_secs(1_700_000_060))
                            .timestamps(DateTime::from_secs(1_700_000_000))
                            .values(0.0)
                            .values(4.0)
                            .status_code(StatusCode::Complete)
                            .build(),
                    )
                    .build()
            });
        let interceptor = || {
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .with_rule(&tasks)
                .with_rule(&instances)
                .with_rule(&metrics)
        };
        let sdk = testing::sdk_config();
        let tuning = testing::tuning();
        let src = MetricsSource::dms_cdc(
            CloudWatchRead::new(tuning.cloudwatch(&sdk).interceptor(interceptor())),
            DmsRead::new(tuning.dms(&sdk).interceptor(interceptor())),
            "shop-cdc".into(),
            tuning,
        );
        for _ in 0..2 {
            let readings = src.poll().await.expect("poll");
            let Reading::Metrics { series, .. } = &readings[0] else {
                panic!("{readings:?}")
            };
            assert_eq!(series.len(), 3);
            assert_eq!(series[1].name, "CDCLatencyTarget");
            assert_eq!(
                series[1].points,
                vec![(1_700_000_000_000, 4.0), (1_700_000_060_000, 0.0)],
                "datapoint timestamps, oldest first"
            );
            assert!(series[0].points.is_empty());
        }
        assert_eq!(metrics.num_calls(), 2, "one GetMetricData a poll");
        assert_eq!(tasks.num_calls(), 1, "dimensions are looked up once");
    }

    #[tokio::test]
    async fn a_failed_dimension_lookup_never_hides_the_plan_s_other_metrics() {
        let tasks = mock!(aws_sdk_databasemigration::Client::describe_replication_tasks)
            .then_error(|| {
                aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksError::generic(
                    aws_sdk_databasemigration::error::ErrorMetadata::builder()
                        .code("AccessDeniedFault")
                        .message("not allowed")
                        .build(),
                )
            });
        let metrics = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                let names: Vec<_> = r
                    .metric_data_queries()
                    .iter()
                    .filter_map(|q| q.metric_stat()?.metric()?.metric_name())
                    .collect();
                names == ["DatabaseConnections"]
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("m0")
                            .timestamps(DateTime::from_secs(1_700_000_000))
                            .values(12.0)
                            .status_code(StatusCode::Complete)
                            .build(),
                    )
                    .build()
            });
        let interceptor = || {
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .with_rule(&tasks)
                .with_rule(&metrics)
        };
        let sdk = testing::sdk_config();
        let tuning = testing::tuning();
        let src = MetricsSource::new(
            CloudWatchRead::new(tuning.cloudwatch(&sdk).interceptor(interceptor())),
            DmsRead::new(tuning.dms(&sdk).interceptor(interceptor())),
            Some("shop-cdc".into()),
            vec![
                plan_metric("DatabaseConnections", "AWS/RDS"),
                plan_metric("CDCChangesDiskTarget", "AWS/DMS"),
            ],
            tuning,
        );
        let readings = src.poll().await.expect("the RDS metric is still read");
        let Reading::Metrics { series, .. } = &readings[0] else {
            panic!("{readings:?}")
        };
        let names: Vec<_> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["DatabaseConnections"]);
        assert_eq!(series[0].points, vec![(1_700_000_000_000, 12.0)]);
        assert_eq!(metrics.num_calls(), 1);
    }
}
