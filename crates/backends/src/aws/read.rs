//! The read-only AWS clients: wrappers whose only methods are Describe/Get/List calls.
//!
//! Read-only by construction: the SDK clients are private fields here, so nothing outside
//! this module can reach a mutating call through them, and `AwsReader` (what `watch` builds)
//! holds nothing else. As a second barrier every read client carries [`ReadOnlyGuard`], an
//! interceptor that refuses, before anything is sent, any request that is not a read.

use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataError, GetMetricDataOutput};
use aws_sdk_cloudwatch::types::{MetricDataQuery, ScanBy};
use aws_sdk_cloudwatchlogs::operation::filter_log_events::{
    FilterLogEventsError, FilterLogEventsOutput,
};
use aws_sdk_databasemigration::config::http::HttpResponse;
use aws_sdk_databasemigration::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_databasemigration::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_databasemigration::error::SdkError;
use aws_sdk_databasemigration::operation::describe_replication_instances::DescribeReplicationInstancesError;
use aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksError;
use aws_sdk_databasemigration::operation::describe_table_statistics::DescribeTableStatisticsError;
use aws_sdk_databasemigration::types::{
    Filter, ReplicationInstance, ReplicationTask, TableStatistics,
};
use aws_sdk_route53::operation::get_change::{GetChangeError, GetChangeOutput};
use aws_sdk_route53::operation::get_hosted_zone::{GetHostedZoneError, GetHostedZoneOutput};
use aws_sdk_route53::operation::list_hosted_zones_by_name::{
    ListHostedZonesByNameError, ListHostedZonesByNameOutput,
};
use aws_sdk_route53::operation::list_resource_record_sets::{
    ListResourceRecordSetsError, ListResourceRecordSetsOutput,
};
use aws_sdk_route53::types::RrType;
use aws_smithy_types::DateTime;

/// Result of one SDK call.
pub type CallResult<T, E> = Result<T, SdkError<E, HttpResponse>>;

/// How many pages of table statistics one poll may read (500 tables a page): a bound against
/// a misbehaving endpoint that never stops handing out markers.
const MAX_TABLE_PAGES: usize = 200;

/// Refuses every request that is not a read, before it is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnlyGuard;

/// Whether a request is a read: awsJson/rpcv2Cbor operations named Describe*/List*/Get* (and
/// CloudWatch Logs' FilterLogEvents), and REST (Route 53) GETs. Everything else is refused with the operation's name.
pub fn check_read_only(method: &str, uri: &str, target: Option<&str>) -> Result<(), String> {
    let path = uri
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/"))
        .unwrap_or(uri);
    let path = path.split('?').next().unwrap_or(path);
    let operation = match target {
        Some(t) => Some(t.rsplit('.').next().unwrap_or(t)),
        None => path
            .strip_prefix("/service/")
            .and_then(|p| p.split_once("/operation/"))
            .map(|(_, op)| op.trim_end_matches('/')),
    };
    let allowed = match operation {
        // FilterLogEvents reads a log; no other Filter* operation is sent.
        Some(op) => {
            ["Describe", "List", "Get"]
                .iter()
                .any(|p| op.starts_with(p))
                || op == "FilterLogEvents"
        }
        None => matches!(method, "GET" | "HEAD"),
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "refused {} {}: the read-only AWS reader never sends a request that could change anything",
            operation.unwrap_or(method),
            if operation.is_some() { "" } else { path }
        )
        .trim_end()
        .to_string())
    }
}

impl Intercept for ReadOnlyGuard {
    fn name(&self) -> &'static str {
        "cutover::aws::ReadOnlyGuard"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        check_read_only(
            request.method(),
            request.uri(),
            request.headers().get("x-amz-target"),
        )
        .map_err(Into::into)
    }
}

/// DMS, read side.
#[derive(Clone, Debug)]
pub struct DmsRead {
    client: aws_sdk_databasemigration::Client,
}

impl DmsRead {
    pub fn new(conf: aws_sdk_databasemigration::config::Builder) -> Self {
        DmsRead {
            client: aws_sdk_databasemigration::Client::from_conf(
                conf.interceptor(ReadOnlyGuard).build(),
            ),
        }
    }

    /// The task named by identifier or ARN, if it exists (without its settings).
    pub async fn describe_task(
        &self,
        task: &str,
    ) -> CallResult<Option<ReplicationTask>, DescribeReplicationTasksError> {
        self.describe(task, false).await
    }

    /// The task with its settings (the JSON `ReplicationTaskSettings`: whether it validates).
    pub async fn describe_task_with_settings(
        &self,
        task: &str,
    ) -> CallResult<Option<ReplicationTask>, DescribeReplicationTasksError> {
        self.describe(task, true).await
    }

    async fn describe(
        &self,
        task: &str,
        settings: bool,
    ) -> CallResult<Option<ReplicationTask>, DescribeReplicationTasksError> {
        let filter = task_filter(task).map_err(SdkError::construction_failure)?;
        let out = self
            .client
            .describe_replication_tasks()
            .filters(filter)
            .without_settings(!settings)
            .send()
            .await?;
        Ok(out.replication_tasks.unwrap_or_default().into_iter().next())
    }

    /// Every table's statistics, following every page.
    pub async fn table_statistics(
        &self,
        task_arn: &str,
    ) -> CallResult<Vec<TableStatistics>, DescribeTableStatisticsError> {
        let mut tables = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_TABLE_PAGES {
            let out = self
                .client
                .describe_table_statistics()
                .replication_task_arn(task_arn)
                .max_records(500)
                .set_marker(marker.take())
                .send()
                .await?;
            tables.extend(out.table_statistics.unwrap_or_default());
            match out.marker {
                Some(m) if !m.is_empty() => marker = Some(m),
                _ => return Ok(tables),
            }
        }
        tracing::warn!(
            task_arn,
            pages = MAX_TABLE_PAGES,
            "table statistics truncated"
        );
        Ok(tables)
    }

    pub async fn describe_instance(
        &self,
        instance_arn: &str,
    ) -> CallResult<Option<ReplicationInstance>, DescribeReplicationInstancesError> {
        let filter = Filter::builder()
            .name("replication-instance-arn")
            .values(instance_arn)
            .build()
            .map_err(SdkError::construction_failure)?;
        let out = self
            .client
            .describe_replication_instances()
            .filters(filter)
            .send()
            .await?;
        Ok(out
            .replication_instances
            .unwrap_or_default()
            .into_iter()
            .next())
    }
}

/// The DescribeReplicationTasks filter for a task named by identifier or ARN.
pub fn task_filter(task: &str) -> Result<Filter, aws_sdk_databasemigration::error::BuildError> {
    let name = if task.starts_with("arn:") {
        "replication-task-arn"
    } else {
        "replication-task-id"
    };
    Filter::builder().name(name).values(task).build()
}

/// CloudWatch, read side.
#[derive(Clone, Debug)]
pub struct CloudWatchRead {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchRead {
    pub fn new(conf: aws_sdk_cloudwatch::config::Builder) -> Self {
        CloudWatchRead {
            client: aws_sdk_cloudwatch::Client::from_conf(conf.interceptor(ReadOnlyGuard).build()),
        }
    }

    /// One batched GetMetricData over [start, end), oldest datapoints first.
    pub async fn get_metric_data(
        &self,
        queries: Vec<MetricDataQuery>,
        start: DateTime,
        end: DateTime,
    ) -> CallResult<GetMetricDataOutput, GetMetricDataError> {
        self.client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(start)
            .end_time(end)
            .scan_by(ScanBy::TimestampAscending)
            .send()
            .await
    }
}

/// CloudWatch Logs, read side: the replication task's log stream.
#[derive(Clone, Debug)]
pub struct LogsRead {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl LogsRead {
    pub fn new(conf: aws_sdk_cloudwatchlogs::config::Builder) -> Self {
        LogsRead {
            client: aws_sdk_cloudwatchlogs::Client::from_conf(
                conf.interceptor(ReadOnlyGuard).build(),
            ),
        }
    }

    /// One page of the stream's events from `start_ms` on (inclusive), oldest first.
    pub async fn filter_log_events(
        &self,
        group: &str,
        stream: &str,
        start_ms: i64,
        next_token: Option<String>,
    ) -> CallResult<FilterLogEventsOutput, FilterLogEventsError> {
        self.client
            .filter_log_events()
            .log_group_name(group)
            .log_stream_names(stream)
            .start_time(start_ms)
            .set_next_token(next_token)
            .limit(1000)
            .send()
            .await
    }
}

/// Route 53, read side.
#[derive(Clone, Debug)]
pub struct Route53Read {
    client: aws_sdk_route53::Client,
}

impl Route53Read {
    pub fn new(conf: aws_sdk_route53::config::Builder) -> Self {
        Route53Read {
            client: aws_sdk_route53::Client::from_conf(conf.interceptor(ReadOnlyGuard).build()),
        }
    }

    /// The record sets starting at (name, type): every weighted, failover or latency set of
    /// the name comes in the same page (the caller keeps those of the name and type).
    pub async fn list_record(
        &self,
        zone_id: &str,
        name: &str,
        record_type: RrType,
    ) -> CallResult<ListResourceRecordSetsOutput, ListResourceRecordSetsError> {
        self.client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(name)
            .start_record_type(record_type)
            .max_items(100)
            .send()
            .await
    }

    pub async fn zones_by_name(
        &self,
        dns_name: &str,
    ) -> CallResult<ListHostedZonesByNameOutput, ListHostedZonesByNameError> {
        self.client
            .list_hosted_zones_by_name()
            .dns_name(dns_name)
            .max_items(100)
            .send()
            .await
    }

    pub async fn get_change(&self, id: &str) -> CallResult<GetChangeOutput, GetChangeError> {
        self.client.get_change().id(id).send().await
    }

    /// The zone's configuration and delegation set (its authoritative name servers).
    pub async fn get_hosted_zone(
        &self,
        zone_id: &str,
    ) -> CallResult<GetHostedZoneOutput, GetHostedZoneError> {
        self.client.get_hosted_zone().id(zone_id).send().await
    }
}

#[cfg(test)]
mod tests {
    use super::check_read_only;

    #[test]
    fn reads_pass_and_writes_are_refused_by_name() {
        let dms = Some("AmazonDMSv20160101.DescribeReplicationTasks");
        assert!(check_read_only("POST", "http://127.0.0.1:5000/", dms).is_ok());
        let stop = check_read_only(
            "POST",
            "https://dms.us-east-1.amazonaws.com/",
            Some("AmazonDMSv20160101.StopReplicationTask"),
        )
        .unwrap_err();
        assert!(stop.contains("StopReplicationTask"), "{stop}");
        let cw = "https://monitoring.us-east-1.amazonaws.com/service/GraniteServiceVersion20100801/operation/GetMetricData";
        assert!(check_read_only("POST", cw, None).is_ok());
        let put = cw.replace("GetMetricData", "PutMetricData");
        assert!(check_read_only("POST", &put, None).is_err());
        let logs = Some("Logs_20140328.FilterLogEvents");
        assert!(check_read_only("POST", "https://logs.eu-west-1.amazonaws.com/", logs).is_ok());
        let put_logs = Some("Logs_20140328.PutLogEvents");
        assert!(
            check_read_only("POST", "https://logs.eu-west-1.amazonaws.com/", put_logs).is_err()
        );
        let rr = "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1/rrset?name=db";
        assert!(check_read_only("GET", rr, None).is_ok());
        let change = check_read_only(
            "POST",
            "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1/rrset/",
            None,
        )
        .unwrap_err();
        assert!(
            change.contains("POST /2013-04-01/hostedzone/Z1/rrset/"),
            "{change}"
        );
    }
}
