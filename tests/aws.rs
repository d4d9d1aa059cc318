//! Wire tests of the AWS backends against the moto emulator on 127.0.0.1:$MOTO_PORT (default
//! 5000), extended by tests/support/moto_server.py. Start it first:
//!
//!     tests/support/start_moto.sh && cargo test --test aws
//!
//! Nothing here contacts any address but 127.0.0.1: every client gets dummy credentials and
//! the emulator's endpoint, and instance metadata is disabled. Each test builds its own world
//! (replication instance, endpoints, task, hosted zone, record, metric data) under unique
//! names and its own access keys, so tests run in parallel and the emulator's request log can
//! be read per client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_databasemigration::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_databasemigration::types::{MigrationTypeValue, StartReplicationTaskTypeValue};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_types::DateTime;
use cutover::action::{Actuator, Output};
use cutover::aws::{AwsActuator, AwsOverrides, AwsReader, ReadOnlyGuard, Tuning};
use cutover::event::{Direction, Event, Reading};
use cutover::plan::{Action, DnsTo, Plan};
use cutover::state::GateState;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/pty.rs"]
mod pty;

const SECRET: &str = "dummySecretKeyForTheMotoEmulatorOnly0000";

fn port() -> u16 {
    std::env::var("MOTO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000)
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{}", port())
}

/// Makes sure nothing can fall through to real AWS: no instance metadata, dummy credentials
/// in the environment (for the default chain that `load_config` uses), no profile files.
fn init_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, before any test of this binary reads the environment (every
        // test calls it first, and `Once` makes the others wait until it is done).
        unsafe {
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAENVDUMMY00000000");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
            std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            std::env::remove_var("AWS_PROFILE");
            std::env::remove_var("AWS_SESSION_TOKEN");
        }
    });
}

/// A raw HTTP/1.1 call to the launcher's own routes.
async fn http(method: &str, path: &str, body: Option<Json>) -> Result<(u16, String), String> {
    let addr = format!("127.0.0.1:{}", port());
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| format!("connecting to {addr} timed out"))?
    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| format!("{method} {path}: no answer within 10 s"))?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: not an HTTP answer: {head}"))?;
    Ok((status, body.to_string()))
}

/// Fails (never skips) when the emulator is not there, naming the script that starts it.
async fn require_moto() {
    init_env();
    match http("GET", "/_cutover/health", None).await {
        Ok((200, body)) if body == "ok" => {}
        Ok((status, body)) => panic!(
            "something else answers on 127.0.0.1:{} (HTTP {status}: {body}); start the moto launcher with tests/support/start_moto.sh (MOTO_PORT={})",
            port(),
            port()
        ),
        Err(e) => panic!(
            "the moto emulator is not reachable on 127.0.0.1:{}: {e}. Start it with tests/support/start_moto.sh (MOTO_PORT={})",
            port(),
            port()
        ),
    }
}

async fn control(path: &str, body: Json) {
    let (status, text) = http("POST", path, Some(body)).await.expect("launcher call");
    assert_eq!(status, 200, "POST {path}: {text}");
}

/// The emulator's log of the requests signed with `access_key`.
async fn requests(access_key: &str) -> Vec<Json> {
    let (status, body) = http(
        "GET",
        &format!("/_cutover/requests?access_key={access_key}"),
        None,
    )
    .await
    .expect("request log");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("request log is JSON")
}

/// Whether every request in a log slice read (no Stop/Start/Change/Modify call).
fn only_reads(log: &[Json]) -> bool {
    log.iter().all(|r| r["mutating"] == json!(false))
}

/// A fresh name for this test run: moto keeps state between runs.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}{:x}{}",
        std::process::id() % 10_000,
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A 20-character access key id (the shape moto recognises), unique per client.
fn access_key(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let raw = format!("AKIA{tag}{:012}{n:04}", nanos % 1_000_000_000_000);
    raw.chars().take(20).collect::<String>().to_uppercase()
}

fn sdk(access_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key, SECRET, None, None, "tests",
        )))
        .endpoint_url(endpoint())
        .build()
}

fn fast() -> Tuning {
    Tuning {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        action_poll: Duration::from_millis(20),
        task_wait: Duration::from_secs(20),
        dns_wait: Duration::from_secs(20),
        ..Tuning::default()
    }
}

/// What a test's setup created in the emulator.
struct World {
    setup_key: String,
    /// The replication instance's identifier (DMS names the task's log group after it).
    instance_id: String,
    task_id: String,
    task_arn: String,
    zone_id: String,
    record: String,
    source_value: String,
    target_value: String,
    /// The minute-aligned datapoint times (s) of the CDC metrics put.
    metric_times: Vec<i64>,
}

impl World {
    fn dms(&self) -> aws_sdk_databasemigration::Client {
        aws_sdk_databasemigration::Client::new(&sdk(&self.setup_key))
    }

    fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&sdk(&self.setup_key))
    }

    async fn task_status(&self) -> String {
        let out = self
            .dms()
            .describe_replication_tasks()
            .filters(
                aws_sdk_databasemigration::types::Filter::builder()
                    .name("replication-task-arn")
                    .values(&self.task_arn)
                    .build()
                    .expect("filter"),
            )
            .send()
            .await
            .expect("describe the task");
        out.replication_tasks()[0]
            .status()
            .unwrap_or_default()
            .to_string()
    }

    async fn record_in_moto(&self) -> (String, i64) {
        let out = self
            .route53()
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .start_record_name(&self.record)
            .start_record_type(RrType::Cname)
            .max_items(1)
            .send()
            .await
            .expect("list the record");
        let set = &out.resource_record_sets()[0];
        (
            set.resource_records()[0].value().to_string(),
            set.ttl().unwrap_or(-1),
        )
    }

    async fn seed_tables(&self, failed_on: Option<usize>) {
        let tables: Vec<Json> = (0..45)
            .map(|i| {
                let failed = failed_on == Some(i);
                json!({
                    "SchemaName": "shop",
                    "TableName": format!("t{i:02}"),
                    "FullLoadRows": 1000 + i,
                    "Inserts": i, "Updates": 0, "Deletes": 0, "Ddls": 0,
                    "TableState": "Table completed",
                    "LastUpdateTime": "2026-01-01T00:00:00",
                    "ValidationState": if failed { "Mismatched records" } else { "Validated" },
                    "ValidationPendingRecords": 0,
                    "ValidationFailedRecords": if failed { 7 } else { 0 },
                    "ValidationSuspendedRecords": 0,
                })
            })
            .collect();
        control(
            "/_cutover/table-statistics",
            json!({"task_arn": self.task_arn, "tables": tables}),
        )
        .await;
    }

    /// The plan the tests drive: AWS inputs only (no database sources in these tests).
    fn plan(&self, with_zone_id: bool) -> Arc<Plan> {
        let zone = if with_zone_id {
            format!("zone_id = \"{}\"\n", self.zone_id)
        } else {
            String::new()
        };
        let text = format!(
            r#"
name = "aws-wire-test"
[source]
engine = "rehearsal"
[target]
engine = "rehearsal"
[replication]
engine = "dms"
task = "{task}"
[dns]
{zone}name = "{record}"
type = "CNAME"
ttl = 30
source = "{source}"
target = "{target}"

[[step]]
id = "preflight"
gates = [
  "task.status == running",
  "task.tables_errored == 0",
  "validation.failed == 0",
  "validation.unvalidated == 0",
  "cdc.latency_target <= 1 for 2m",
  "cdc.latency_source <= 1",
  "cdc.incoming_changes == 0",
  "dns.value == $dns.source",
  "dns.ttl == 60",
]
confirm = "ready"

[[step]]
id = "stop-replication"
action = {{ kind = "replication", op = "stop" }}
undo = {{ kind = "replication", op = "start" }}
confirm = "stop replication"

[[step]]
id = "flip-dns"
gates = ["task.status == stopped", "dns.value == $dns.source"]
action = {{ kind = "dns", to = "target", wait = true }}
undo = {{ kind = "dns", to = "source", wait = true }}
confirm = "flip dns"
"#,
            task = self.task_id,
            record = self.record,
            source = self.source_value,
            target = self.target_value,
        );
        Arc::new(cutover::plan::parse("aws-wire-test.toml", &text).expect("the test plan parses"))
    }
}

/// Creates the replication instance, endpoints and a running task, the hosted zone and the
/// CNAME, table statistics, and three minutes of CDC metrics at 0.
async fn setup(name: &str) -> World {
    require_moto().await;
    let setup_key = access_key("SET");
    let cfg = sdk(&setup_key);
    let id = unique(name);
    let dms = aws_sdk_databasemigration::Client::new(&cfg);
    let instance_id = format!("{id}-ri");
    let instance = dms
        .create_replication_instance()
        .replication_instance_identifier(&instance_id)
        .replication_instance_class("dms.t3.medium")
        .allocated_storage(50)
        .send()
        .await
        .expect("create the replication instance (moto's ISO timestamps must be rewritten)");
    let instance_arn = instance
        .replication_instance()
        .and_then(|i| i.replication_instance_arn())
        .expect("instance ARN")
        .to_string();
    let endpoint_arn = |kind: aws_sdk_databasemigration::types::ReplicationEndpointTypeValue,
                        engine: &str| {
        let dms = dms.clone();
        let ident = format!("{id}-{}", kind.as_str());
        let engine = engine.to_string();
        async move {
            dms.create_endpoint()
                .endpoint_identifier(ident)
                .endpoint_type(kind)
                .engine_name(engine)
                .server_name("db.invalid")
                .port(3306)
                .username("dms")
                .send()
                .await
                .expect("create an endpoint")
                .endpoint()
                .and_then(|e| e.endpoint_arn())
                .expect("endpoint ARN")
                .to_string()
        }
    };
    use aws_sdk_databasemigration::types::ReplicationEndpointTypeValue as Kind;
    let source_arn = endpoint_arn(Kind::Source, "mysql").await;
    let target_arn = endpoint_arn(Kind::Target, "aurora").await;
    let task_id = format!("{id}-cdc");
    let task = dms
        .create_replication_task()
        .replication_task_identifier(&task_id)
        .source_endpoint_arn(source_arn)
        .target_endpoint_arn(target_arn)
        .replication_instance_arn(&instance_arn)
        .migration_type(MigrationTypeValue::FullLoadAndCdc)
        .replication_task_settings(
            r#"{"ValidationSettings":{"EnableValidation":true},"Logging":{"EnableLogging":true}}"#,
        )
        .table_mappings(r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"shop","table-name":"%"},"rule-action":"include"}]}"#)
        .send()
        .await
        .expect("create the task");
    let task_arn = task
        .replication_task()
        .and_then(|t| t.replication_task_arn())
        .expect("task ARN")
        .to_string();
    dms.start_replication_task()
        .replication_task_arn(&task_arn)
        .start_replication_task_type(StartReplicationTaskTypeValue::StartReplication)
        .send()
        .await
        .expect("start the task");

    // DMS writes a logging task's log to this group and stream.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    let log_group = format!("dms-tasks-{instance_id}");
    logs.create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .expect("the task's log group");
    logs.create_log_stream()
        .log_group_name(&log_group)
        .log_stream_name(format!(
            "dms-task-{}",
            task_arn.rsplit(':').next().expect("ARN")
        ))
        .send()
        .await
        .expect("the task's log stream");

    let route53 = aws_sdk_route53::Client::new(&cfg);
    let zone_name = format!("{id}.example.com.");
    let zone = route53
        .create_hosted_zone()
        .name(&zone_name)
        .caller_reference(&id)
        .send()
        .await
        .expect("create the hosted zone");
    let zone_id = zone
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .expect("zone id");
    let record = format!("db.{zone_name}");
    let source_value = format!("{id}-mysql.source.example.net.");
    let target_value = format!("{id}-aurora.target.example.net.");
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(&record)
                                .r#type(RrType::Cname)
                                .ttl(60)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value(&source_value)
                                        .build()
                                        .expect("rr"),
                                )
                                .build()
                                .expect("set"),
                        )
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("create the CNAME");

    // DMS publishes task metrics under the instance's identifier and the task's resource id
    // (the last part of its ARN; in moto, the identifier).
    let resource_id = task_arn.rsplit(':').next().expect("ARN").to_string();
    let now = cutover::event::now_ms() / 1000;
    let minute = now - now.rem_euclid(60);
    let metric_times = vec![minute - 120, minute - 60, minute];
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&cfg);
    let mut data = Vec::new();
    for name in ["CDCLatencySource", "CDCLatencyTarget", "CDCIncomingChanges"] {
        for t in &metric_times {
            data.push(
                MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(
                        Dimension::builder()
                            .name("ReplicationInstanceIdentifier")
                            .value(&instance_id)
                            .build(),
                    )
                    .dimensions(
                        Dimension::builder()
                            .name("ReplicationTaskIdentifier")
                            .value(&resource_id)
                            .build(),
                    )
                    .timestamp(DateTime::from_secs(*t))
                    .value(0.0)
                    .build(),
            );
        }
    }
    cloudwatch
        .put_metric_data()
        .namespace("AWS/DMS")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("put metric data over rpcv2Cbor (served by the launcher)");

    let world = World {
        setup_key,
        instance_id,
        task_id,
        task_arn,
        zone_id,
        record,
        source_value,
        target_value,
        metric_times,
    };
    world.seed_tables(None).await;
    world
}

fn output() -> (Output, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Output::new("test-step".into(), Direction::Do, tx), rx)
}

fn lines(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::ActionOutput { line, .. } = ev {
            out.push(line);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_task_tables_metrics_and_dns_from_the_emulator() {
    let w = setup("chk").await;
    let plan = w.plan(false);
    let reader = AwsReader::with_tuning(&sdk(&access_key("CHK")), &plan, fast());
    let sources = reader.sources();
    let kinds: Vec<_> = sources.iter().map(|s| s.kind().as_str()).collect();
    // The task's CDC metrics are the replication source's lag figures; this plan charts no
    // metric of its own, so there is no metrics source. The task's log has its own.
    assert_eq!(kinds, ["replication", "task_log", "dns"]);

    let report = cutover::check::check(Arc::clone(&plan), &sources).await;
    let text = cutover::check::render_check(&report, false);
    assert_eq!(report.state, GateState::Green, "{text}");
    assert_eq!(report.exit_code, 0);
    assert_eq!(
        report.step.as_ref().map(|s| s.id.as_str()),
        Some("preflight")
    );

    let value = |kind: &str| {
        report
            .readings
            .iter()
            .filter(|r| r.source.as_str() == kind)
            .map(|r| {
                r.value
                    .clone()
                    .unwrap_or_else(|| panic!("{kind} failed: {:?}", r.error))
            })
            .collect::<Vec<_>>()
    };
    let replication = value("replication");
    let [Reading::Replication(task)] = replication.as_slice() else {
        panic!("{replication:?}")
    };
    assert_eq!(
        (task.name.as_str(), task.status_text.as_str()),
        (w.task_id.as_str(), "running")
    );
    assert_eq!(task.status, cutover::event::ReplicationStatus::Running);
    let tables = task.tables.as_ref().expect("table statistics");
    assert_eq!(tables.len(), 45, "every table, over several pages of 20");
    assert!(
        tables
            .iter()
            .all(|t| t.validation_state.as_deref() == Some("Validated"))
    );

    // The lag figures are DMS's CDC metrics, read by the replication source.
    assert_eq!(task.figures_error, None);
    let times: Vec<i64> = task.lag_s.iter().map(|p| p.0).collect();
    let want: Vec<i64> = w.metric_times.iter().map(|t| t * 1000).collect();
    assert_eq!(
        times, want,
        "each datapoint keeps its own (minute) timestamp"
    );
    let cdc_gate = report
        .gates
        .iter()
        .find(|g| g.input == "cdc.latency_target")
        .expect("gate");
    assert_eq!(cdc_gate.observed_at, Some(w.metric_times[2] * 1000));
    assert_eq!(
        cdc_gate.fresh_ms, 180_000,
        "metric inputs default to a 3-minute bound"
    );

    let Reading::Dns(dns) = &value("dns")[0] else {
        panic!("dns")
    };
    assert_eq!(dns.value.as_deref(), Some(w.source_value.as_str()));
    assert_eq!(dns.ttl, Some(60));

    let json: Json =
        serde_json::from_str(&cutover::check::render_check(&report, true)).expect("JSON");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["gates"].as_array().map(Vec::len), Some(9));
    assert!(json["readings"][0]["observed_at"].is_i64(), "{json}");

    // A table failing validation turns the step red and names the table.
    w.seed_tables(Some(44)).await;
    let report = cutover::check::check(Arc::clone(&plan), &sources).await;
    assert_eq!(report.state, GateState::Red);
    assert_eq!(report.exit_code, 1);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("validation.failed = 7") && reason.contains("shop.t44"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_style_polls_issue_no_mutating_request() {
    let w = setup("ro").await;
    let plan = w.plan(false);
    let key = access_key("RDO");
    let reader = AwsReader::with_tuning(&sdk(&key), &plan, fast());
    let sources = reader.sources();
    for _ in 0..3 {
        let events = cutover::source::poll_once(&sources).await;
        let failed: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::SourceFailed { .. }))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let log = requests(&key).await;
    assert!(!log.is_empty(), "the reader's requests are in the log");
    let mutating: Vec<_> = log
        .iter()
        .filter(|r| r["mutating"] != json!(false))
        .collect();
    assert!(
        mutating.is_empty(),
        "a watch session sent mutating requests: {mutating:?}"
    );
    let ops: Vec<&str> = log.iter().filter_map(|r| r["operation"].as_str()).collect();
    for op in [
        "DescribeReplicationTasks",
        "DescribeTableStatistics",
        "GetMetricData",
        "ListResourceRecordSets",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert_eq!(
        ops.iter().filter(|o| **o == "GetMetricData").count(),
        3,
        "one batched GetMetricData a poll"
    );

    // The guard refuses a mutating call before it is sent, even on a raw client.
    let guard_key = access_key("GRD");
    let guarded = aws_sdk_databasemigration::Client::from_conf(
        aws_sdk_databasemigration::config::Builder::from(&sdk(&guard_key))
            .interceptor(ReadOnlyGuard)
            .build(),
    );
    let err = guarded
        .stop_replication_task()
        .replication_task_arn(&w.task_arn)
        .send()
        .await
        .expect_err("refused");
    let text = format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    assert!(text.contains("refused StopReplicationTask"), "{text}");
    assert!(
        requests(&guard_key).await.is_empty(),
        "nothing reached the emulator"
    );
    assert_eq!(w.task_status().await, "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actuator_stops_the_task_and_flips_the_cname_idempotently() {
    let w = setup("drv").await;
    let plan = w.plan(true);
    let reader = AwsReader::with_tuning(&sdk(&access_key("RDR")), &plan, fast());
    let drive_key = access_key("DRV");
    // Built apart from the reader, as `run` does: they meet through the record's tracker.
    let actuator = AwsActuator::with_tuning(&sdk(&drive_key), fast());
    // Route 53 changes made with this key stay PENDING for two GetChange polls.
    control(
        "/_cutover/dns-pending",
        json!({"access_key": drive_key, "polls": 2}),
    )
    .await;

    let (out, mut rx) = output();
    let msg = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect("stop");
    assert!(msg.contains("stopped"), "{msg}");
    assert_eq!(w.task_status().await, "stopped");
    let stop_lines = lines(&mut rx);
    assert!(
        stop_lines.iter().any(|l| l.starts_with("stopping task")),
        "{stop_lines:?}"
    );

    let again = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect("stopping a stopped task succeeds");
    assert!(again.contains("already stopped"), "{again}");

    // The next step's gates now hold: the task is stopped, the record still points at the source.
    let flip_gates = cutover::check::evaluate(
        Arc::clone(&plan),
        0,
        &cutover::source::poll_once(&reader.sources()).await,
        cutover::event::now_ms(),
    );
    let stopped = flip_gates.readings.iter().find_map(|r| match &r.value {
        Some(Reading::Replication(t)) => Some(t.status_text.clone()),
        _ => None,
    });
    assert_eq!(stopped.as_deref(), Some("stopped"));

    let flip = Action::Dns {
        to: DnsTo::Target,
        wait: true,
    };
    let msg = actuator.run(&plan, &flip, &out).await.expect("flip");
    assert!(msg.contains("INSYNC"), "{msg}");
    let flip_lines = lines(&mut rx);
    assert!(
        flip_lines.iter().any(|l| l.contains("is PENDING")),
        "{flip_lines:?}"
    );
    assert!(
        flip_lines.iter().any(|l| l.contains("is INSYNC")),
        "{flip_lines:?}"
    );
    assert!(
        flip_lines
            .iter()
            .any(|l| l.contains(&format!("was {}", w.source_value))),
        "{flip_lines:?}"
    );
    assert_eq!(
        w.record_in_moto().await,
        (w.target_value.clone(), 30),
        "the value and the plan's TTL"
    );

    // The reader follows the actuator's change.
    let events = cutover::source::poll_once(&reader.sources()).await;
    let dns = events.iter().find_map(|e| match e {
        Event::Observed {
            reading: Reading::Dns(d),
            ..
        } => Some(d.clone()),
        _ => None,
    });
    let dns = dns.expect("a DNS reading");
    assert_eq!(dns.value.as_deref(), Some(w.target_value.as_str()));
    assert_eq!(dns.change_status.as_deref(), Some("INSYNC"));
    assert!(dns.change_id.is_some());

    // Rollback: resume the task (idempotent too) and point the record back.
    let msg = actuator
        .run(&plan, &Action::ReplicationStart, &out)
        .await
        .expect("start");
    assert!(msg.contains("running"), "{msg}");
    assert_eq!(w.task_status().await, "running");
    let again = actuator
        .run(&plan, &Action::ReplicationStart, &out)
        .await
        .expect("starting a running task succeeds");
    assert!(again.contains("already running"), "{again}");
    let back = Action::Dns {
        to: DnsTo::Source,
        wait: true,
    };
    actuator.run(&plan, &back, &out).await.expect("flip back");
    assert_eq!(w.record_in_moto().await.0, w.source_value);

    // Actions of other kinds are not the AWS actuator's.
    let sql = Action::Sql {
        on: cutover::event::Side::Source,
        statement: "SELECT 1".into(),
    };
    let err = actuator
        .run(&plan, &sql, &out)
        .await
        .expect_err("not an AWS action");
    assert!(err.0.contains("replication and DNS actions only"), "{err}");

    let log = requests(&drive_key).await;
    let mutating: Vec<&str> = log
        .iter()
        .filter(|r| r["mutating"] == json!(true))
        .filter_map(|r| r["operation"].as_str())
        .collect();
    assert_eq!(
        mutating,
        [
            "StopReplicationTask",
            "ChangeResourceRecordSets",
            "StartReplicationTask",
            "ChangeResourceRecordSets"
        ],
        "exactly the mutating calls the actions need"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_5xx_and_expired_credentials_from_the_emulator() {
    let w = setup("flt").await;
    let plan = w.plan(false);
    let key = access_key("FLT");
    let reader = AwsReader::with_tuning(&sdk(&key), &plan, fast());
    let sources = reader.sources();
    let replication = &sources[0];
    // Looks the task's metric dimensions and log stream up now, so the faults below meet
    // only the calls they name.
    for s in &sources {
        s.poll().await.expect("a first poll");
    }

    // Throttled twice, then answered: the retries hide it.
    control(
        "/_cutover/faults",
        json!({"access_key": key, "operation": "DescribeReplicationTasks", "status": 400,
               "code": "ThrottlingException", "message": "Rate exceeded", "count": 2}),
    )
    .await;
    replication.poll().await.expect("throttling is retried");

    // 503 on every attempt: a clear error, the gates go unknown, the next poll recovers.
    control(
        "/_cutover/faults",
        json!({"access_key": key, "operation": "DescribeReplicationTasks", "status": 503,
               "code": "ServiceUnavailable", "message": "try later", "count": 3}),
    )
    .await;
    let report = cutover::check::check(Arc::clone(&plan), &sources).await;
    assert_eq!(report.exit_code, 1);
    let task_gate = &report.gates[0];
    assert_eq!(task_gate.state, GateState::Unknown, "{task_gate:?}");
    assert!(
        task_gate.reason.contains("server error"),
        "{}",
        task_gate.reason
    );
    replication.poll().await.expect("the next poll recovers");

    // Expired credentials on GetMetricData: named, with the fix, and no secret.
    control(
        "/_cutover/faults",
        json!({"access_key": key, "operation": "GetMetricData", "status": 400,
               "code": "ExpiredTokenException",
               "message": format!("The security token included in the request is expired ({key} {SECRET})"),
               "count": 1}),
    )
    .await;
    // The task status stays fresh; the lag figures say why they are missing.
    let readings = replication.poll().await.expect("the status is still read");
    let [Reading::Replication(r)] = readings.as_slice() else {
        panic!("{readings:?}")
    };
    assert!(r.lag_s.is_empty(), "{r:?}");
    let err = r.figures_error.clone().expect("the lag figures' error");
    assert!(
        err.starts_with("CloudWatch GetMetricData: the AWS credentials have expired"),
        "{err}"
    );
    assert!(!err.contains(SECRET) && !err.contains(&key), "{err}");
    let readings = replication
        .poll()
        .await
        .expect("fresh credentials, fresh readings");
    let [Reading::Replication(r)] = readings.as_slice() else {
        panic!("{readings:?}")
    };
    assert_eq!(r.figures_error, None);
    assert!(!r.lag_s.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_config_applies_cli_overrides_over_the_plan() {
    let w = setup("cfg").await;
    let mut plan = (*w.plan(false)).clone();
    plan.aws.region = Some("eu-west-1".into());
    plan.aws.endpoint_url = Some("http://127.0.0.1:9".into());
    let args = AwsOverrides {
        profile: None,
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    };
    let session = cutover::aws::load_config(&plan, &args)
        .await
        .expect("config from env credentials");
    let cfg = &session.sdk;
    assert_eq!(cfg.region().map(|r| r.as_ref()), Some("us-east-1"));
    assert_eq!(cfg.endpoint_url(), Some(endpoint().as_str()));
    // Who the calls are made as: sts:GetCallerIdentity, and where the keys came from.
    assert_eq!(
        session.identity.account, "123456789012",
        "{:?}",
        session.identity
    );
    assert!(
        session.identity.arn.starts_with("arn:aws:"),
        "{:?}",
        session.identity
    );
    assert!(
        session
            .identity
            .credentials
            .starts_with("environment (AWS_ACCESS_KEY_ID)"),
        "{:?}",
        session.identity
    );
    let reader = AwsReader::with_tuning(cfg, &plan, fast());
    let readings = reader.sources()[0]
        .poll()
        .await
        .expect("the task through the loaded config");
    assert!(matches!(&readings[0], Reading::Replication(t) if t.name == w.task_id));

    let bad = AwsOverrides {
        endpoint_url: Some("127.0.0.1:5000".into()),
        ..args
    };
    let err = cutover::aws::load_config(&plan, &bad)
        .await
        .expect_err("bad endpoint")
        .to_string();
    assert!(
        err.contains("bad endpoint URL") && err.contains("no scheme"),
        "{err}"
    );
}

#[test]
fn the_iam_policies_are_least_privilege_for_what_the_code_calls() {
    let actions = |file: &str| -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/iam")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut out = Vec::new();
        for st in doc["Statement"].as_array().expect("statements") {
            assert_eq!(st["Effect"], "Allow", "{file}: {st}");
            match &st["Action"] {
                Json::String(a) => out.push(a.clone()),
                Json::Array(a) => out.extend(a.iter().filter_map(|a| a.as_str().map(String::from))),
                other => panic!("{file}: bad Action {other}"),
            }
        }
        out
    };
    let watch = actions("cutover-watch.json");
    let reads = [
        "dms:DescribeReplicationTasks",
        "dms:DescribeReplicationInstances",
        "dms:DescribeTableStatistics",
        "cloudwatch:GetMetricData",
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:GetChange",
        "route53:GetHostedZone",
        "sts:GetCallerIdentity",
        "logs:FilterLogEvents",
    ];
    let mut sorted = watch.clone();
    sorted.sort();
    let mut want: Vec<String> = reads.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sorted, want, "watch grants exactly the reads");
    let drive = actions("cutover-drive.json");
    for a in reads.iter().chain(&[
        "dms:StopReplicationTask",
        "dms:StartReplicationTask",
        "route53:ChangeResourceRecordSets",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "rds:DescribeDBParameters",
        "rds:DescribeDBClusterParameters",
        "rds:ModifyDBParameterGroup",
        "rds:ModifyDBClusterParameterGroup",
    ]) {
        assert!(drive.iter().any(|d| d == a), "drive lacks {a}");
    }
    assert!(
        drive.iter().all(|a| !a.contains('*')),
        "no wildcard actions: {drive:?}"
    );
}

#[test]
fn the_shipped_aws_plan_builds_the_three_aws_sources() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/aws-dms-route53.toml");
    let plan = cutover::plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!plan.is_rehearsal());
    // Building clients sends nothing; no source is polled here.
    let reader = AwsReader::new(&sdk("AKIANOTUSED000000000"), &plan);
    let kinds: Vec<_> = reader.sources().iter().map(|s| s.kind().as_str()).collect();
    assert_eq!(kinds, ["replication", "task_log", "metrics", "dns"]);
    let metrics: Vec<_> = plan.metric_names();
    assert!(
        metrics.contains(&"CDCLatencyTarget".to_string())
            && metrics.contains(&"DatabaseConnections".to_string())
    );
}

/// An empty MariaDB database on 127.0.0.1:3306 (started by .ci/run): `cutover check` refuses
/// plans without real database endpoints, and these gates read AWS inputs only.
async fn empty_mariadb_database() -> String {
    let admin = "mysql://root@127.0.0.1:3306/mysql";
    let pool = tokio::time::timeout(Duration::from_secs(10), sqlx::MySqlPool::connect(admin))
        .await
        .unwrap_or_else(|_| panic!("MariaDB on 127.0.0.1:3306 did not answer within 10 s (.ci/run starts it)"))
        .unwrap_or_else(|e| panic!("the binary check test needs MariaDB on 127.0.0.1:3306 as root without a password (.ci/run starts it): {e}"));
    sqlx::query("CREATE DATABASE IF NOT EXISTS cutover_aws_check")
        .execute(&pool)
        .await
        .expect("create the database");
    pool.close().await;
    "mysql://root@127.0.0.1:3306/cutover_aws_check".into()
}

/// Runs the `cutover` binary with dummy credentials and no way to real AWS.
async fn cutover_bin(args: &[&str], access_key: &str) -> (i32, String, String) {
    cutover_bin_env(args, access_key, &[]).await
}

/// [`cutover_bin`] with more environment (`env` pairs win over the defaults).
async fn cutover_bin_env(
    args: &[&str],
    access_key: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("cutover check finishes within 2 minutes")
        .expect("run the cutover binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The plan of the binary tests: AWS gates only, on an empty MariaDB database; `aws` is the
/// body of its `[aws]` section (more sections may follow it).
fn binary_plan(w: &World, db: &str, task: &str, aws: &str) -> String {
    format!(
        r#"
name = "aws-binary-check"
[source]
engine = "mysql"
url = "{db}"
[target]
engine = "mysql"
url = "{db}"
[replication]
engine = "dms"
task = "{task}"
[dns]
name = "{record}"
ttl = 30
source = "{source}"
target = "{target}"
[[step]]
id = "preflight"
gates = [
  "task.status == running",
  "validation.failed == 0",
  "validation.enabled == true",
  "cdc.latency_target <= 1 for 2m",
  "cdc.incoming_changes == 0",
  "dns.value == $dns.source",
]
confirm = "ready"
[[step]]
id = "stop-replication"
action = {{ kind = "replication", op = "stop" }}
undo = {{ kind = "replication", op = "start" }}
confirm = "stop"
[aws]
{aws}"#,
        record = w.record,
        source = w.source_value,
        target = w.target_value,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_check_json_answers_from_the_emulator() {
    let w = setup("bin").await;
    let db = empty_mariadb_database().await;
    let plan_text = binary_plan(&w, &db, &w.task_arn, "region = \"eu-west-1\"\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan_text).expect("write the plan");
    let plan_arg = plan_path.to_str().expect("utf-8 path");
    let moto = endpoint();
    let key = access_key("BIN");
    let args = [
        "check",
        plan_arg,
        "--json",
        "--region",
        "us-east-1",
        "--endpoint-url",
        moto.as_str(),
    ];

    let (code, stdout, stderr) = cutover_bin(&args, &key).await;
    let report: Json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert_eq!(code, 0, "{report:#}\nstderr: {stderr}");
    assert_eq!(report["state"], "green");
    assert_eq!(report["step"]["id"], "preflight");
    // Who the calls were made as, and where the keys came from — never a secret.
    assert_eq!(report["aws"]["account"], "123456789012", "{report:#}");
    assert!(
        report["aws"]["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:")),
        "{report:#}"
    );
    assert!(
        report["aws"]["credentials"]
            .as_str()
            .is_some_and(|c| c.starts_with("environment (AWS_ACCESS_KEY_ID)")),
        "{report:#}"
    );
    assert!(
        !stdout.contains(SECRET) && !stdout.contains(&key),
        "{stdout}"
    );
    let gates = report["gates"].as_array().expect("gates");
    assert_eq!(gates.len(), 6);
    assert!(gates.iter().all(|g| g["state"] == "green"), "{gates:#?}");
    let sources: Vec<&str> = report["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    for s in ["replication", "dns"] {
        assert!(sources.contains(&s), "{s} missing from {sources:?}");
    }
    assert!(only_reads(&requests(&key).await), "check only reads");

    // Replication stopped behind the cockpit's back: red, exit 1, the reason names it.
    w.dms()
        .stop_replication_task()
        .replication_task_arn(&w.task_arn)
        .send()
        .await
        .expect("stop the task");
    let (code, stdout, stderr) = cutover_bin(&args, &key).await;
    let report: Json =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["state"], "red");
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or("")
            .contains("task.status = stopped"),
        "{report:#}"
    );

    // A configuration error is exit 2, with the fix.
    let bad = [
        "check",
        plan_arg,
        "--json",
        "--region",
        "us-east-1",
        "--endpoint-url",
        "127.0.0.1:1",
    ];
    let (code, _, stderr) = cutover_bin(&bad, &key).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad endpoint URL"), "{stderr}");
}

/// One poll of every source; the DNS reading.
async fn poll_dns(reader: &AwsReader) -> cutover::event::DnsReading {
    let events = cutover::source::poll_once(&reader.sources()).await;
    events
        .into_iter()
        .find_map(|e| match e {
            Event::Observed {
                reading: Reading::Dns(d),
                ..
            } => Some(*d),
            _ => None,
        })
        .expect("a DNS reading")
}

/// Writes `plan_text` into a temp dir; the dir lives as long as the returned guard.
fn write_plan(plan_text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, plan_text).expect("write the plan");
    let arg = path.to_str().expect("utf-8 path").to_string();
    (dir, arg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_beats_keys_in_the_environment_and_the_account_is_checked() {
    let w = setup("prf").await;
    let db = empty_mariadb_database().await;
    let env_key = access_key("ENV");
    let prof_key = access_key("PRF");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile staging]\naws_access_key_id = {env_key}\naws_secret_access_key = {SECRET}\n\
             [profile prod]\naws_access_key_id = {prof_key}\naws_secret_access_key = {SECRET}\nregion = us-east-1\n"
        ),
    )
    .expect("write the config file");
    let config = config.to_str().expect("utf-8").to_string();
    let env = [("AWS_CONFIG_FILE", config.as_str())];
    let (_plan_dir, plan) = write_plan(&binary_plan(&w, &db, &w.task_id, ""));
    let moto = endpoint();
    let args = [
        "check",
        &plan,
        "--json",
        "--profile",
        "prod",
        "--endpoint-url",
        &moto,
    ];
    // The environment holds staging's keys (as after `aws-vault exec staging`).
    let (code, stdout, stderr) = cutover_bin_env(&args, &env_key, &env).await;
    let report: Json =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let credentials = report["aws"]["credentials"].as_str().unwrap_or("");
    assert!(
        credentials.starts_with("profile prod (AWS_ACCESS_KEY_ID in the environment ignored)"),
        "{report:#}"
    );
    assert!(
        requests(&env_key).await.is_empty(),
        "no call with the environment's keys"
    );
    let used: Vec<String> = requests(&prof_key)
        .await
        .iter()
        .filter_map(|r| r["operation"].as_str().map(String::from))
        .collect();
    for op in [
        "GetCallerIdentity",
        "DescribeReplicationTasks",
        "ListResourceRecordSets",
    ] {
        assert!(
            used.iter().any(|u| u == op),
            "{op} not made with the profile's key: {used:?}"
        );
    }

    // The same key in another account: the task ARN names 123456789012, so it refuses.
    control(
        "/_cutover/accounts",
        json!({"access_key": prof_key, "account": "111122223333"}),
    )
    .await;
    let (_d, plan) = write_plan(&binary_plan(&w, &db, &w.task_arn, ""));
    let args = [
        "check",
        &plan,
        "--json",
        "--profile",
        "prod",
        "--endpoint-url",
        &moto,
    ];
    let before = requests(&prof_key).await.len();
    let (code, _, stderr) = cutover_bin_env(&args, &env_key, &env).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("wrong AWS account")
            && stderr.contains("account 111122223333")
            && stderr.contains("the task ARN in [replication] task says 123456789012")
            && stderr.contains("profile prod"),
        "{stderr}"
    );
    let after: Vec<String> = requests(&prof_key).await[before..]
        .iter()
        .filter_map(|r| r["operation"].as_str().map(String::from))
        .collect();
    assert_eq!(
        after,
        ["GetCallerIdentity"],
        "nothing read in the wrong account"
    );

    // [aws] account names the account the plan is for.
    let (_d, plan) = write_plan(&binary_plan(
        &w,
        &db,
        &w.task_id,
        "account = \"222233334444\"\n",
    ));
    let args = [
        "check",
        &plan,
        "--json",
        "--profile",
        "prod",
        "--endpoint-url",
        &moto,
    ];
    let (code, _, stderr) = cutover_bin_env(&args, &env_key, &env).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the plan's [aws] account says 222233334444"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// A second launcher on a free port, stopped when dropped.
struct SecondLauncher {
    port: u16,
}

impl SecondLauncher {
    fn start() -> SecondLauncher {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/start_moto.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .env("MOTO_PORT", port.to_string())
            .output()
            .expect("run start_moto.sh");
        assert!(
            out.status.success(),
            "the second launcher did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SecondLauncher { port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for SecondLauncher {
    fn drop(&mut self) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/start_moto.sh");
        // Stopping is best effort: the next run starts a fresh one on another port anyway.
        let _ = std::process::Command::new("bash")
            .arg(&script)
            .arg("--stop")
            .env("MOTO_PORT", self.port.to_string())
            .output();
    }
}

/// The request log of `access_key` on the launcher at `port`.
async fn requests_at(port: u16, access_key: &str) -> Vec<Json> {
    let addr = format!("127.0.0.1:{port}");
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /_cutover/requests?access_key={access_key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the log within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn services(log: &[Json]) -> Vec<String> {
    let mut out: Vec<String> = log
        .iter()
        .filter_map(|r| r["service"].as_str().map(String::from))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_service_endpoints_send_each_service_to_its_own() {
    let w = setup("eps").await;
    let db = empty_mariadb_database().await;
    let other = SecondLauncher::start();
    let key = access_key("EPS");
    let moto = endpoint();
    // DMS and STS from the plan, CloudWatch from the SDK's own variable, Route 53 elsewhere.
    let aws = format!(
        "region = \"us-east-1\"\n[aws.endpoints]\ndms = \"{moto}\"\nsts = \"{moto}\"\nroute53 = \"{}\"\n",
        other.url()
    );
    let (_d, plan) = write_plan(&binary_plan(&w, &db, &w.task_id, &aws));
    let env = [("AWS_ENDPOINT_URL_CLOUDWATCH", moto.as_str())];
    let (code, stdout, stderr) = cutover_bin_env(&["check", &plan, "--json"], &key, &env).await;
    let report: Json =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    // Route 53 went to the other launcher, which has no such zone: DNS is unknown, named.
    assert_eq!(code, 1, "{report:#}");
    let dns_error = report["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .find(|r| r["source"] == "dns")
        .and_then(|r| r["error"].as_str())
        .unwrap_or("")
        .to_string();
    assert!(dns_error.contains("no hosted zone holds"), "{report:#}");
    let here = services(&requests(&key).await);
    assert_eq!(
        here,
        ["dms", "monitoring", "sts"],
        "on 127.0.0.1:{}",
        port()
    );
    let there = services(&requests_at(other.port, &key).await);
    assert_eq!(there, ["route53"], "on {}", other.url());
    // Everything else was green: DMS, its metrics and the identity came through.
    let green = report["gates"]
        .as_array()
        .expect("gates")
        .iter()
        .filter(|g| g["state"] == "green")
        .count();
    assert_eq!(green, 5, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_between_read_and_flip_fails_the_flip_by_name() {
    let w = setup("cas").await;
    let plan = w.plan(true);
    let drive_key = access_key("CAS");
    let actuator = AwsActuator::with_tuning(&sdk(&drive_key), fast())
        .with_changes(cutover::aws::ChangeTracker::default());
    let elsewhere = format!("someone-else.{}", w.target_value);
    control(
        "/_cutover/route53-race",
        json!({"access_key": drive_key, "value": elsewhere}),
    )
    .await;
    let (out, mut rx) = output();
    let flip = Action::Dns {
        to: DnsTo::Target,
        wait: true,
    };
    let err = actuator
        .run(&plan, &flip, &out)
        .await
        .expect_err("the record changed after it was read");
    assert!(
        err.0.contains("a concurrent change") && err.0.contains("NOT applied"),
        "{err}"
    );
    assert!(err.0.contains(&w.record), "{err}");
    assert_eq!(
        w.record_in_moto().await.0,
        elsewhere,
        "the other writer's value stands"
    );
    let said = lines(&mut rx);
    assert!(
        said.iter()
            .any(|l| l.contains("DELETE the 1 set read above + CREATE")),
        "{said:?}"
    );
    // Read again and retried: the swap goes through from the value now there.
    let msg = actuator.run(&plan, &flip, &out).await.expect("the retry");
    assert!(msg.contains("INSYNC"), "{msg}");
    assert_eq!(w.record_in_moto().await, (w.target_value.clone(), 30));
    let said = lines(&mut rx);
    assert!(
        said.iter().any(|l| l.contains(&format!("was {elsewhere}"))),
        "{said:?}"
    );
}

/// Flips the plan's record to the target as another process would (its own change tracker,
/// no wait) and returns the events its action sent.
async fn flip_in_another_process(plan: &Plan) -> Vec<Event> {
    let actuator = AwsActuator::with_tuning(&sdk(&access_key("OTH")), fast())
        .with_changes(cutover::aws::ChangeTracker::default());
    let (out, mut rx) = output();
    let flip = Action::Dns {
        to: DnsTo::Target,
        wait: false,
    };
    actuator.run(plan, &flip, &out).await.expect("flip");
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_status_follows_the_change_recorded_before_a_restart() {
    let w = setup("rsm").await;
    let plan = w.plan(true);
    // The interrupted session: it flipped, then died before anything polled the change.
    let history = flip_in_another_process(&plan).await;
    // The new process: its reader knows no change of its own.
    let key = access_key("NEW");
    let reader = AwsReader::with_tuning(&sdk(&key), &plan, fast());
    let before = poll_dns(&reader).await;
    assert_eq!(before.change_status, None, "{before:?}");
    let id = cutover::aws::route53::last_change_id(&history).expect("the flip's change id");
    assert!(id.starts_with("/change/"), "{id}");
    reader.changes().record(&id);
    let after = poll_dns(&reader).await;
    assert_eq!(after.change_status.as_deref(), Some("INSYNC"), "{after:?}");
    assert_eq!(after.change_id.as_deref(), Some(id.as_str()));
    assert_eq!(after.value.as_deref(), Some(w.target_value.as_str()));
    let log = requests(&key).await;
    assert!(only_reads(&log), "no new change: {log:?}");
    // A change id Route 53 never handed out is not INSYNC.
    reader.changes().record("/change/CNEVERISSUED");
    let readings = cutover::source::poll_once(&reader.sources()).await;
    assert!(
        readings.iter().any(
            |e| matches!(e, Event::SourceFailed { error, .. } if error.contains("NoSuchChange"))
        ),
        "{readings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_task_states_move_over_polls_and_a_starting_task_is_stopped_once_it_runs() {
    let w = setup("sta").await;
    let plan = w.plan(true);
    control(
        "/_cutover/dms-transitions",
        json!({"task_arn": w.task_arn, "polls": 3}),
    )
    .await;
    let drive_key = access_key("STA");
    let actuator = AwsActuator::with_tuning(&sdk(&drive_key), fast());
    let (out, mut rx) = output();
    let msg = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect("stop");
    assert!(msg.contains("stopped after"), "{msg}");
    let said = lines(&mut rx);
    let at = |needle: &str| said.iter().position(|l| l.contains(needle));
    assert!(
        at("is stopping")
            .zip(at("is stopped"))
            .is_some_and(|(a, b)| a < b),
        "stopping, then stopped: {said:?}"
    );

    // Started behind the cockpit's back: DMS refuses a stop while it starts ...
    w.dms()
        .start_replication_task()
        .replication_task_arn(&w.task_arn)
        .start_replication_task_type(StartReplicationTaskTypeValue::ResumeProcessing)
        .send()
        .await
        .expect("start");
    let refused = w
        .dms()
        .stop_replication_task()
        .replication_task_arn(&w.task_arn)
        .send()
        .await
        .expect_err("no stop while starting");
    assert_eq!(
        aws_sdk_databasemigration::error::ProvideErrorMetadata::code(&refused),
        Some("InvalidResourceStateFault")
    );
    // ... so the actuator waits until it runs, then stops it.
    let msg = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect("stop once running");
    assert!(msg.contains("stopped"), "{msg}");
    let said = lines(&mut rx);
    assert!(
        said.iter()
            .any(|l| l.contains("DMS cannot stop it now; waiting until it runs")),
        "{said:?}"
    );
    assert_eq!(w.task_status().await, "stopped");
    let msg = actuator
        .run(&plan, &Action::ReplicationStart, &out)
        .await
        .expect("start");
    assert!(msg.contains("running after"), "{msg}");
    let said = lines(&mut rx);
    assert!(said.iter().any(|l| l.contains("is starting")), "{said:?}");
    let mutating: Vec<String> = requests(&drive_key)
        .await
        .iter()
        .filter(|r| r["mutating"] == json!(true) && r["status"] == json!(200))
        .filter_map(|r| r["operation"].as_str().map(String::from))
        .collect();
    assert_eq!(
        mutating,
        [
            "StopReplicationTask",
            "StopReplicationTask",
            "StartReplicationTask"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_does_not_stop_and_an_undo_never_starts_a_ready_task() {
    let w = setup("fld").await;
    let plan = w.plan(true);
    let drive_key = access_key("FLD");
    let actuator = AwsActuator::with_tuning(&sdk(&drive_key), fast());
    control(
        "/_cutover/dms-task-state",
        json!({"task_arn": w.task_arn, "status": "failed",
               "message": "Last Error Stream Component Fatal error. Task error notification received"}),
    )
    .await;
    let (out, _rx) = output();
    let err = actuator
        .run(&plan, &Action::ReplicationStop, &out)
        .await
        .expect_err("a failed task is not a stopped one");
    assert!(err.0.contains("is failed, not stopped"), "{err}");
    assert!(err.0.contains("Stream Component Fatal error"), "{err}");

    control(
        "/_cutover/dms-task-state",
        json!({"task_arn": w.task_arn, "status": "ready"}),
    )
    .await;
    let (tx, _undo_rx) = tokio::sync::mpsc::unbounded_channel();
    let undo = Output::new("stop-replication".into(), Direction::Undo, tx);
    let err = actuator
        .run(&plan, &Action::ReplicationStart, &undo)
        .await
        .expect_err("an undo never runs a full load");
    assert!(err.0.contains("during a rollback this is refused"), "{err}");
    assert!(
        only_reads(&requests(&drive_key).await),
        "neither stop nor start was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_table_statistics_leave_the_task_status_fresh() {
    let w = setup("tst").await;
    let plan = w.plan(false);
    let key = access_key("TST");
    let reader = AwsReader::with_tuning(&sdk(&key), &plan, fast());
    control(
        "/_cutover/faults",
        json!({"access_key": key, "operation": "DescribeTableStatistics", "status": 500,
               "code": "InternalFailure", "message": "boom", "count": 3}),
    )
    .await;
    let started = cutover::event::now_ms();
    let events = cutover::source::poll_once(&reader.sources()).await;
    let r = events
        .iter()
        .find_map(|e| match e {
            Event::Observed {
                reading: Reading::Replication(r),
                ..
            } => Some(r.clone()),
            _ => None,
        })
        .expect("the task is still read");
    assert_eq!(r.status_text, "running");
    assert_eq!(r.tables, None);
    assert_eq!(r.validation_enabled, Some(true));
    let why = r.tables_error.clone().expect("the statistics' own error");
    assert!(why.starts_with("DMS DescribeTableStatistics:"), "{why}");
    let report = cutover::check::evaluate(
        Arc::clone(&plan),
        started,
        &events,
        cutover::event::now_ms(),
    );
    let gate = |g: &str| {
        report
            .gates
            .iter()
            .find(|x| x.gate == g)
            .unwrap_or_else(|| panic!("{g}: {:#?}", report.gates))
            .clone()
    };
    assert_eq!(gate("task.status == running").state, GateState::Green);
    let validation = gate("validation.failed == 0");
    assert_eq!(validation.state, GateState::Unknown, "{validation:?}");
    assert!(
        validation.reason.contains("could not be read")
            && validation.reason.contains("DescribeTableStatistics"),
        "{validation:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_sets_are_read_and_the_flip_moves_the_weight() {
    let w = setup("wgt").await;
    let name = format!("w.{}", w.record.trim_start_matches("db."));
    let set = |id: &str, value: &str, weight: i64| {
        ResourceRecordSet::builder()
            .name(&name)
            .r#type(RrType::Cname)
            .ttl(30)
            .set_identifier(id)
            .weight(weight)
            .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
            .build()
            .expect("set")
    };
    let create = |s: ResourceRecordSet| {
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(s)
            .build()
            .expect("change")
    };
    w.route53()
        .change_resource_record_sets()
        .hosted_zone_id(&w.zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(create(set("blue", &w.source_value, 100)))
                .changes(create(set("green", &w.target_value, 0)))
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("two weighted sets");
    let mut plan = (*w.plan(true)).clone();
    if let Some(d) = plan.dns.as_mut() {
        d.name = name.clone();
    }
    let plan = Arc::new(plan);
    let reader = AwsReader::with_tuning(&sdk(&access_key("WRD")), &plan, fast());
    let before = poll_dns(&reader).await;
    assert_eq!(
        before.value.as_deref(),
        Some(w.source_value.as_str()),
        "only the weighted-in set"
    );
    let mut read: Vec<(Option<String>, Option<u64>, String)> = before
        .sets
        .iter()
        .map(|s| (s.set_identifier.clone(), s.weight, s.value.clone()))
        .collect();
    read.sort();
    assert_eq!(
        read,
        [
            (Some("blue".into()), Some(100), w.source_value.clone()),
            (Some("green".into()), Some(0), w.target_value.clone()),
        ],
        "every set is in the reading"
    );
    let dns_weights = |d: &cutover::event::DnsReading| gate_weights(&plan, d);
    assert_eq!(
        dns_weights(&before),
        [100.0, 0.0],
        "dns.weight.source / target"
    );
    let actuator = AwsActuator::with_tuning(&sdk(&access_key("WDR")), fast());
    let (out, mut rx) = output();
    let flip = Action::Dns {
        to: DnsTo::Target,
        wait: true,
    };
    actuator
        .run(&plan, &flip, &out)
        .await
        .expect("the weighted flip");
    let said = lines(&mut rx);
    assert!(
        said.iter()
            .any(|l| l.contains("weight 100, id blue") && l.contains("weight 0, id green")),
        "every set is shown: {said:?}"
    );
    let sets = w
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(&w.zone_id)
        .start_record_name(&name)
        .start_record_type(RrType::Cname)
        .send()
        .await
        .expect("list");
    let mut weights: Vec<(String, i64)> = sets
        .resource_record_sets()
        .iter()
        .filter(|s| s.set_identifier().is_some())
        .map(|s| {
            (
                s.set_identifier().unwrap_or("").to_string(),
                s.weight().unwrap_or(-1),
            )
        })
        .collect();
    weights.sort();
    assert_eq!(
        weights,
        [("blue".to_string(), 0), ("green".to_string(), 100)]
    );
    let after = poll_dns(&reader).await;
    assert_eq!(after.value.as_deref(), Some(w.target_value.as_str()));
    assert_eq!(dns_weights(&after), [0.0, 100.0], "the weight moved");
}

/// The record's weighted sets as moto holds them: (set id, weight, value), sorted.
async fn weighted_sets_in_moto(w: &World) -> Vec<(String, i64, String)> {
    let out = w
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(&w.zone_id)
        .start_record_name(&w.record)
        .start_record_type(RrType::Cname)
        .send()
        .await
        .expect("list");
    let mut sets: Vec<(String, i64, String)> = out
        .resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == w.record.trim_end_matches('.'))
        .map(|s| {
            (
                s.set_identifier().unwrap_or("(plain)").to_string(),
                s.weight().unwrap_or(-1),
                s.resource_records()
                    .first()
                    .map(|r| r.value().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    sets.sort();
    sets
}

/// `dns.weight.source` / `dns.weight.target` folded from one reading.
fn gate_weights(plan: &Arc<Plan>, d: &cutover::event::DnsReading) -> [f64; 2] {
    let mut st = cutover::state::State::new(Arc::clone(plan));
    st.apply(&Event::Observed {
        at: d.observed_at,
        reading: Reading::Dns(Box::new(d.clone())),
    });
    [
        cutover::plan::Input::DnsWeight(cutover::event::Side::Source),
        cutover::plan::Input::DnsWeight(cutover::event::Side::Target),
    ]
    .map(|i| match st.input_value(&i) {
        cutover::state::InputValue::Known {
            value: cutover::plan::Value::Number(n),
            ..
        } => n,
        other => panic!("{i}: {other:?}"),
    })
}

fn stage(source: u8, target: u8) -> Action {
    Action::DnsWeights {
        weights: cutover::plan::DnsWeights::Set(cutover::plan::Weights { source, target }),
        wait: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_stages_create_reweigh_and_the_undo_restores_the_weights_read_before() {
    let w = setup("wst").await;
    // The plan's last step becomes the first weighted stage; its undo restores what it read.
    let mut plan = (*w.plan(true)).clone();
    let mut step = plan.steps.last().expect("a step").clone();
    step.id = "canary-5".into();
    step.action = stage(95, 5);
    step.undo = Some(Action::DnsWeights {
        weights: cutover::plan::DnsWeights::Previous,
        wait: true,
    });
    plan.steps.push(step);
    let plan = Arc::new(plan);
    let i = plan.steps.len() - 1;
    let reader = AwsReader::with_tuning(&sdk(&access_key("WSR")), &plan, fast());
    let actuator = AwsActuator::with_tuning(&sdk(&access_key("WSD")), fast())
        .with_changes(cutover::aws::ChangeTracker::default());

    // Stage 1, run as the step: the plain record (all traffic on the source) becomes the
    // plan's two weighted sets.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = Output::new("canary-5".into(), Direction::Do, tx.clone());
    let forward = plan.steps[i].action.clone();
    let msg = actuator
        .run(&plan, &forward, &out)
        .await
        .expect("the first stage");
    assert!(
        msg.contains("INSYNC") && msg.contains("5 % to the target"),
        "{msg}"
    );
    assert_eq!(
        weighted_sets_in_moto(&w).await,
        [
            ("source".to_string(), 95, w.source_value.clone()),
            ("target".to_string(), 5, w.target_value.clone()),
        ]
    );
    let read = poll_dns(&reader).await;
    let mut shown: Vec<_> = read
        .sets
        .iter()
        .map(|s| (s.set_identifier.clone(), s.weight))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            (Some("source".into()), Some(95)),
            (Some("target".into()), Some(5))
        ],
        "the reading carries every set with its weight"
    );
    assert_eq!(gate_weights(&plan, &read), [95.0, 5.0]);
    // The same stage again (resume re-runs an idempotent action) sends nothing.
    let again = actuator.run(&plan, &forward, &out).await.expect("again");
    assert!(again.contains("nothing changed"), "{again}");

    // Stage 2 re-weighs the sets.
    let (out2, mut rx2) = output();
    actuator
        .run(&plan, &stage(75, 25), &out2)
        .await
        .expect("the second stage");
    let said = lines(&mut rx2);
    assert!(
        said.contains(&"weights before the change: source 95, target 5".to_string()),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("DELETE the 2 sets read above + CREATE")),
        "{said:?}"
    );
    assert_eq!(
        weighted_sets_in_moto(&w).await,
        [
            ("source".to_string(), 75, w.source_value.clone()),
            ("target".to_string(), 25, w.target_value.clone()),
        ]
    );
    assert_eq!(gate_weights(&plan, &poll_dns(&reader).await), [75.0, 25.0]);

    // A fold of what the step wrote (as a resumed session folds the transcript) knows the
    // weights read before the step's first run, not its second (which read its own 95/5).
    let mut st = cutover::state::State::new(Arc::clone(&plan));
    let mut befores = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::ActionOutput { line, .. } = &ev
            && line.starts_with("weights before")
        {
            befores.push(line.clone());
        }
        st.apply(&ev);
    }
    assert_eq!(
        befores,
        [
            "weights before the change: source 100, target 0",
            "weights before the change: source 95, target 5"
        ],
        "each run wrote what it read"
    );
    let undo = st
        .action_to_run(i, Direction::Undo)
        .expect("the step has an undo");
    assert_eq!(undo, stage(100, 0), "previous = the weights read before");
    let back = Output::new("canary-5".into(), Direction::Undo, tx);
    actuator.run(&plan, &undo, &back).await.expect("the undo");
    assert_eq!(
        weighted_sets_in_moto(&w).await,
        [
            ("source".to_string(), 100, w.source_value.clone()),
            ("target".to_string(), 0, w.target_value.clone()),
        ],
        "the undo restored all the traffic to the source, as read before the stage"
    );
    let after = poll_dns(&reader).await;
    assert_eq!(gate_weights(&plan, &after), [100.0, 0.0]);
    assert_eq!(after.value.as_deref(), Some(w.source_value.as_str()));
    // An undo whose action never read the record has nothing to restore and sends nothing.
    let unread = cutover::state::State::new(Arc::clone(&plan))
        .action_to_run(i, Direction::Undo)
        .expect("undo");
    let (out, _rx) = output();
    let msg = actuator.run(&plan, &unread, &out).await.expect("no-op");
    assert!(msg.contains("nothing to restore"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_fails_the_weighted_swap_and_nothing_is_overwritten() {
    let w = setup("wcs").await;
    let plan = w.plan(true);
    let drive_key = access_key("WCS");
    let actuator = AwsActuator::with_tuning(&sdk(&drive_key), fast())
        .with_changes(cutover::aws::ChangeTracker::default());
    let elsewhere = format!("someone-else.{}", w.target_value);
    control(
        "/_cutover/route53-race",
        json!({"access_key": drive_key, "value": elsewhere}),
    )
    .await;
    let (out, _rx) = output();
    let err = actuator
        .run(&plan, &stage(95, 5), &out)
        .await
        .expect_err("the record changed after it was read");
    assert!(
        err.0.contains("a concurrent change") && err.0.contains("NOT applied"),
        "{err}"
    );
    assert_eq!(
        weighted_sets_in_moto(&w).await,
        [("(plain)".to_string(), -1, elsewhere.clone())],
        "the other writer's value stands; no weighted set was created"
    );
    // Read again: the record now points at neither side, and a stage refuses to guess.
    let err = actuator
        .run(&plan, &stage(95, 5), &out)
        .await
        .expect_err("neither side");
    assert!(
        err.0.contains("neither the plan's source") && err.0.contains(&elsewhere),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_follows_the_change_the_driver_recorded() {
    let w = setup("fol").await;
    let db = empty_mariadb_database().await;
    let text = binary_plan(&w, &db, &w.task_id, "region = \"us-east-1\"\n");
    let (_plan_dir, plan_arg) = write_plan(&text);
    let plan = Arc::new(cutover::plan::parse("plan.toml", &text).expect("the plan parses"));
    // The driver's session: it flipped (its transcript holds the change's line) and is gone.
    let history = flip_in_another_process(&plan).await;
    let sessions = tempfile::tempdir().expect("sessions dir");
    {
        let (mut session, _inbox) =
            cutover::session::Session::open(cutover::session::SessionConfig {
                plan: Arc::clone(&plan),
                mode: cutover::event::SessionMode::Drive,
                operator: "driver".into(),
                sessions_dir: Some(sessions.path().to_path_buf()),
                actuator: None,
                sign_key: None,
            })
            .expect("the driver's transcript");
        session.ingest(history).expect("record the flip's lines");
    }
    let key = access_key("FOL");
    let moto = endpoint();
    let dir = sessions.path().to_str().expect("utf-8").to_string();
    let args = [
        "check",
        &plan_arg,
        "--json",
        "--endpoint-url",
        &moto,
        "--sessions-dir",
        &dir,
    ];
    let (_, stdout, stderr) = cutover_bin(&args, &key).await;
    let report: Json =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let dns = report["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .find(|r| r["source"] == "dns")
        .map(|r| r["value"].clone())
        .expect("a DNS reading");
    assert_eq!(dns["change_status"], "INSYNC", "{report:#}");
    assert!(
        dns["change_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("/change/")),
        "{report:#}"
    );
    assert!(only_reads(&requests(&key).await), "check only reads");
}

/// Sets MariaDB's global read_only, as RDS does once a parameter group applies.
async fn mariadb_read_only(on: bool) {
    let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/mysql")
        .await
        .expect("MariaDB as root");
    sqlx::query(if on {
        "SET GLOBAL read_only = 1"
    } else {
        "SET GLOBAL read_only = 0"
    })
    .execute(&pool)
    .await
    .expect("set read_only");
    pool.close().await;
}

/// Plays RDS applying the parameter group to the server: after the `n`th
/// ModifyDBParameterGroup of `key` on `group`, MariaDB's read_only becomes `on`.
fn apply_like_rds(key: String, n: usize, on: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = requests(&key)
                .await
                .iter()
                .filter(|r| r["operation"] == "ModifyDBParameterGroup" && r["status"] == 200)
                .count();
            if seen >= n {
                mariadb_read_only(on).await;
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no ModifyDBParameterGroup #{n} within 30 s"
            );
            tokio::task::yield_now().await;
        }
    })
}

async fn parameter(rds: &aws_sdk_rds::Client, group: &str) -> Option<String> {
    rds.describe_db_parameters()
        .db_parameter_group_name(group)
        .send()
        .await
        .expect("describe the parameters")
        .parameters()
        .iter()
        .find(|p| p.parameter_name() == Some("read_only"))
        .and_then(|p| p.parameter_value().map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parameter_group_freeze_sets_proves_and_restores_read_only() {
    require_moto().await;
    let db = empty_mariadb_database().await;
    mariadb_read_only(false).await;
    let setup_key = access_key("RDS");
    let rds = aws_sdk_rds::Client::new(&sdk(&setup_key));
    let id = unique("rds");
    let group = |name: String| {
        let rds = rds.clone();
        async move {
            rds.create_db_parameter_group()
                .db_parameter_group_name(&name)
                .db_parameter_group_family("mysql8.0")
                .description("cutover test")
                .send()
                .await
                .expect("create a parameter group");
            name
        }
    };
    let instance = |name: String, group: String| {
        let rds = rds.clone();
        async move {
            rds.create_db_instance()
                .db_instance_identifier(&name)
                .db_instance_class("db.t3.micro")
                .engine("mysql")
                .allocated_storage(20)
                .master_username("admin")
                .master_user_password("not-a-real-password-1")
                .db_parameter_group_name(group)
                .send()
                .await
                .expect("create an instance");
            name
        }
    };
    let own = group(format!("{id}-own")).await;
    // What was there before the freeze, for the unfreeze to restore.
    rds.modify_db_parameter_group()
        .db_parameter_group_name(&own)
        .parameters(
            aws_sdk_rds::types::Parameter::builder()
                .parameter_name("read_only")
                .parameter_value("{TrueIfReplica}")
                .apply_method(aws_sdk_rds::types::ApplyMethod::Immediate)
                .build(),
        )
        .send()
        .await
        .expect("the previous value");
    let alone = instance(format!("{id}-a"), own.clone()).await;
    let shared = group(format!("{id}-shared")).await;
    let b = instance(format!("{id}-b"), shared.clone()).await;
    let c = instance(format!("{id}-c"), shared.clone()).await;

    let plan_for = |instance: &str| {
        let text = format!(
            r#"
name = "rds-freeze"
[aws]
region = "us-east-1"
[source]
engine = "mysql"
url = "{db}"
[target]
engine = "mysql"
url = "{db}"
[rds]
source = {{ instance = "{instance}" }}
[[step]]
id = "freeze"
action = {{ kind = "freeze", on = "source", method = "parameter-group" }}
undo = {{ kind = "unfreeze", on = "source", method = "parameter-group" }}
confirm = "freeze"
"#
        );
        Arc::new(cutover::plan::parse("rds.toml", &text).expect("the plan parses"))
    };
    let overrides = AwsOverrides {
        profile: None,
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    };
    let freeze = Action::Freeze {
        on: cutover::event::Side::Source,
        method: cutover::plan::FreezeMethod::ParameterGroup,
    };
    let unfreeze = Action::Unfreeze {
        on: cutover::event::Side::Source,
        method: cutover::plan::FreezeMethod::ParameterGroup,
    };

    // A group shared with another instance would freeze it too: refused, nothing changed.
    let plan = plan_for(&b);
    let backends = cutover::backend::Backends::connect(&plan, &overrides)
        .await
        .expect("connect");
    let (out, _rx) = output();
    let err = backends
        .actuator()
        .run(&plan, &freeze, &out)
        .await
        .expect_err("a shared group");
    assert!(
        err.0.contains(&format!(
            "parameter group {shared} is shared with other instances ({c})"
        )) && err.0.contains("shared_parameter_group = true"),
        "{err}"
    );
    assert_eq!(parameter(&rds, &shared).await, None, "nothing was set");

    // Its own group: set, in sync, proven on the connection, then restored.
    let plan = plan_for(&alone);
    let backends = cutover::backend::Backends::connect(&plan, &overrides)
        .await
        .expect("connect");
    let actuator = backends.actuator();
    let env_key = "AKIAENVDUMMY00000000".to_string();
    let before = requests(&env_key)
        .await
        .iter()
        .filter(|r| r["operation"] == "ModifyDBParameterGroup")
        .count();
    let rds_applies = apply_like_rds(env_key.clone(), before + 1, true);
    let (out, mut rx) = output();
    let msg = actuator
        .run(&plan, &freeze, &out)
        .await
        .expect("the freeze");
    rds_applies.await.expect("RDS applied it");
    assert!(
        msg.contains(&format!("read_only = 1 in DB parameter group {own}"))
            && msg.contains("source read_only = ON (SELECT @@GLOBAL.read_only)"),
        "{msg}"
    );
    assert_eq!(parameter(&rds, &own).await.as_deref(), Some("1"));
    let said = lines(&mut rx);
    assert!(
        said.iter().any(|l| l.contains("read_only was {TrueIfReplica}; setting 1 (ApplyMethod=immediate)")),
        "{said:?}"
    );
    assert!(said.iter().any(|l| l.contains("is in sync on")), "{said:?}");

    let rds_applies = apply_like_rds(env_key.clone(), before + 2, false);
    let msg = actuator
        .run(&plan, &unfreeze, &out)
        .await
        .expect("the undo");
    rds_applies.await.expect("RDS applied it");
    assert!(msg.contains("source read_only = OFF"), "{msg}");
    assert_eq!(
        parameter(&rds, &own).await.as_deref(),
        Some("{TrueIfReplica}"),
        "the value from before the freeze"
    );
    mariadb_read_only(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_log_stream_is_tailed_into_the_log_with_errors_marked() {
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    let w = setup("log").await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk(&w.setup_key));
    let group = format!("dms-tasks-{}", w.instance_id);
    let stream = format!("dms-task-{}", w.task_arn.rsplit(':').next().expect("ARN"));
    // The group and stream exist (setup made them, as DMS does for a logging task).
    let put = |lines: Vec<(i64, &str)>| {
        let logs = logs.clone();
        let (group, stream) = (group.clone(), stream.clone());
        let events: Vec<InputLogEvent> = lines
            .into_iter()
            .map(|(at, text)| {
                InputLogEvent::builder()
                    .timestamp(at)
                    .message(text)
                    .build()
                    .expect("event")
            })
            .collect();
        async move {
            logs.put_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await
                .expect("put log events");
        }
    };
    let now = cutover::event::now_ms();
    put(vec![(
        now - 60_000,
        "[TASK_MANAGER    ]I:  before the session",
    )])
    .await;

    let plan = w.plan(true);
    let key = access_key("LOG");
    let reader = AwsReader::with_tuning(&sdk(&key), &plan, fast());
    let sources = reader.sources();
    let tail = sources
        .iter()
        .find(|s| s.kind() == cutover::event::SourceKind::TaskLog)
        .expect("a task log source");
    let t = cutover::event::now_ms();
    put(vec![
        (
            t,
            "[TARGET_APPLY    ]E:  Failed to apply INSERT on shop.orders (duplicate key)",
        ),
        (t + 1, "[SOURCE_CAPTURE  ]W:  Binary log retention is short"),
        (t + 2, "[TASK_MANAGER    ]I:  Task is running"),
    ])
    .await;
    let readings = tail.poll().await.expect("the tail");
    let [Reading::TaskLog(l)] = readings.as_slice() else {
        panic!("one task log reading: {readings:?}")
    };
    let texts: Vec<&str> = l.lines.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "from the session's start only: {texts:?}");
    assert!(texts[0].contains("Failed to apply"), "{texts:?}");
    assert_eq!(l.stream, format!("{group} / {stream}"));
    assert!(
        tail.poll().await.expect("again").is_empty(),
        "every line once"
    );
    put(vec![(
        t + 2,
        "[TASK_MANAGER    ]I:  same millisecond, new line",
    )])
    .await;
    let again = tail.poll().await.expect("the new line");
    let [Reading::TaskLog(l2)] = again.as_slice() else {
        panic!("{again:?}")
    };
    assert_eq!(l2.lines.len(), 1, "{l2:?}");

    // Into the log, errors and warnings marked.
    let mut state = cutover::state::State::new(Arc::clone(&plan));
    state.apply(&Event::Observed {
        at: l.observed_at,
        reading: Reading::TaskLog(l.clone()),
    });
    let level_of = |needle: &str| {
        state
            .log
            .iter()
            .find(|x| x.text.contains(needle))
            .map(|x| x.level)
            .unwrap_or_else(|| panic!("{needle} not in the log: {:?}", state.log))
    };
    assert_eq!(level_of("Failed to apply"), cutover::state::Level::Error);
    assert_eq!(level_of("retention is short"), cutover::state::Level::Warn);
    assert_eq!(level_of("Task is running"), cutover::state::Level::Info);
    assert!(only_reads(&requests(&key).await), "the tail only reads");
}

/// `[dns] role_arn`: the zone lives in another account. The role is assumed through STS
/// with the operator's keys, and every Route 53 call is signed with the role's keys — never
/// the operator's; DMS still uses the operator's. (moto keeps hosted zones per account, as
/// AWS does, so the role here is in the account that holds the test's zone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_role_signs_the_route53_calls_and_nothing_else() {
    let w = setup("rol").await;
    let db = empty_mariadb_database().await;
    let text = binary_plan(&w, &db, &w.task_arn, "region = \"us-east-1\"\n").replace(
        "[dns]\n",
        "[dns]\nrole_arn = \"arn:aws:iam::123456789012:role/zone-admin\"\n",
    );
    let (_dir, plan_arg) = write_plan(&text);
    let moto = endpoint();
    let key = access_key("ROL");
    let (code, stdout, stderr) = cutover_bin(
        &[
            "check",
            &plan_arg,
            "--json",
            "--endpoint-url",
            moto.as_str(),
        ],
        &key,
    )
    .await;
    assert_eq!(code, 0, "{stdout}\nstderr: {stderr}");
    let mine = requests(&key).await;
    let ops = |service: &str| -> Vec<String> {
        mine.iter()
            .filter(|r| r["service"] == service)
            .filter_map(|r| r["operation"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        ops("sts").iter().any(|o| o == "AssumeRole"),
        "the role is assumed with the operator's keys: {mine:#?}"
    );
    assert!(ops("route53").is_empty(), "{:?}", ops("route53"));
    assert!(
        !ops("dms").is_empty(),
        "DMS is read with the operator's keys"
    );
    let (status, body) = http("GET", "/_cutover/requests", None)
        .await
        .expect("request log");
    assert_eq!(status, 200);
    let all: Vec<Json> = serde_json::from_str(&body).expect("JSON");
    let zone: Vec<&Json> = all
        .iter()
        .filter(|r| {
            r["service"] == "route53" && r["path"].as_str().is_some_and(|p| p.contains(&w.zone_id))
        })
        .collect();
    assert!(!zone.is_empty(), "the zone was read");
    assert!(
        zone.iter().all(|r| r["access_key"]
            .as_str()
            .is_some_and(|k| k != key && !k.is_empty())),
        "every call on the zone is signed with the role's keys: {zone:#?}"
    );
}

/// The incident path of issue "AWS as it really behaves": the cockpit flips the record and is
/// killed (-9) before the unfreeze. `cutover resume` in a new process follows the change the
/// old transcript recorded, so `dns.status == INSYNC` turns green and the unfreeze can run —
/// without making a new change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_flip_resume_turns_dns_status_insync_without_a_new_change() {
    let w = setup("k9r").await;
    let db = empty_mariadb_database().await;
    let text = format!(
        r#"
name = "aws-kill-resume"
[source]
engine = "mysql"
url = "{db}"
[target]
engine = "mysql"
url = "{db}"
[dns]
name = "{record}"
ttl = 30
source = "{source}"
target = "{target}"
[aws]
region = "us-east-1"
[[step]]
id = "flip-dns"
gates = ["dns.value == $dns.source"]
action = {{ kind = "dns", to = "target", wait = false }}
undo = {{ kind = "dns", to = "source", wait = false }}
confirm = "flip dns"
[[step]]
id = "unfreeze"
gates = ["dns.status == INSYNC", "dns.value == $dns.target"]
confirm = "unfreeze target"
"#,
        record = w.record,
        source = w.source_value,
        target = w.target_value,
    );
    let (dir, plan_arg) = write_plan(&text);
    let sessions = dir.path().join("sessions");
    let sessions_arg = sessions.to_str().expect("utf-8").to_string();
    let moto = endpoint();
    let driver_key = access_key("K9D");
    let resume_key = access_key("K9R");
    let cwd = dir.path().to_path_buf();
    let t = Duration::from_secs(90);
    let (driver, resumer) = (driver_key.clone(), resume_key.clone());
    let (old, resume_screen) = tokio::task::spawn_blocking(move || {
        let env = |key: &str| {
            vec![
                ("AWS_ACCESS_KEY_ID".to_string(), key.to_string()),
                ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
            ]
        };
        let driver_env = env(&driver);
        let driver_env: Vec<(&str, &str)> = driver_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut term = pty::Pty::spawn_env(
            &[
                "run",
                &plan_arg,
                "--operator",
                "alice",
                "--sessions-dir",
                &sessions_arg,
                "--endpoint-url",
                &moto,
            ],
            &cwd,
            120,
            40,
            &driver_env,
        );
        term.wait_for("ready: flip-dns", t);
        term.send("\r");
        term.wait_for("type `flip dns` to confirm", t);
        term.send("flip dns\r");
        let jsonl = || {
            std::fs::read_dir(&sessions).ok().and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
            })
        };
        let deadline = std::time::Instant::now() + t;
        let old = loop {
            let done = jsonl().and_then(|p| {
                let s = cutover::resume::load(&p).ok()?;
                let i = s.plan.step_index("flip-dns")?;
                (s.state.steps[i].status == cutover::state::StepStatus::Done).then_some(p)
            });
            if let Some(p) = done {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the flip did not finish:\n{}",
                term.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let pid = term.pid().expect("pid") as i32;
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        term.wait_exit(t);
        drop(term);

        let resume_env = env(&resumer);
        let resume_env: Vec<(&str, &str)> = resume_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut term = pty::Pty::spawn_env(
            &[
                "resume",
                old.to_str().expect("utf-8"),
                "--operator",
                "bob",
                "--sessions-dir",
                &sessions_arg,
                "--endpoint-url",
                &moto,
            ],
            &cwd,
            120,
            40,
            &resume_env,
        );
        let screen = term.wait_for("ready: unfreeze", t);
        term.kill();
        (old, screen)
    })
    .await
    .expect("the pty drive");
    assert!(
        resume_screen.contains("dns.status == INSYNC"),
        "{resume_screen}"
    );
    let driver = requests(&driver_key).await;
    assert!(
        driver
            .iter()
            .any(|r| r["operation"] == "ChangeResourceRecordSets"),
        "the driver flipped: {driver:#?}"
    );
    let resumed = requests(&resume_key).await;
    assert!(
        resumed.iter().any(|r| r["operation"] == "GetChange"),
        "resume follows the recorded change: {resumed:#?}"
    );
    assert!(only_reads(&resumed), "resume made no change: {resumed:#?}");
    assert!(old.exists());
}

/// Keys that refresh into another account's (a profile edited mid-window, a role chain
/// pointing elsewhere) are refused before any call signs with them: the call fails naming
/// both accounts. Keys proven before pass without another STS call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_credentials_of_another_account_are_refused_before_any_call() {
    use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
    let _w = setup("rfr").await;
    let home = access_key("RFA");
    let other = access_key("RFB");
    control(
        "/_cutover/accounts",
        json!({"access_key": other, "account": "999988887777"}),
    )
    .await;
    // Hands out `home`'s keys, then `other`'s (the refresh), then `home`'s again.
    let keys = [home.clone(), other.clone(), home.clone()];
    let n = Arc::new(AtomicU32::new(0));
    let turn = Arc::clone(&n);
    let rotating = aws_credential_types::credential_fn::provide_credentials_fn(move || {
        let i = turn.fetch_add(1, Ordering::SeqCst) as usize;
        let key = keys[i.min(keys.len() - 1)].clone();
        async move { Ok(Credentials::new(key, SECRET, None, None, "rotating")) }
    });
    let sts = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .build();
    let checked = cutover::aws::identity::CheckedCredentials::new(
        SharedCredentialsProvider::new(rotating),
        sts,
        "123456789012",
        None,
    );
    let first = checked.provide_credentials().await.expect("home's keys");
    assert_eq!(first.access_key_id(), home);
    let refused = aws_smithy_types::error::display::DisplayErrorContext(
        checked
            .provide_credentials()
            .await
            .expect_err("another account's keys"),
    )
    .to_string();
    assert!(
        refused.contains("999988887777") && refused.contains("123456789012"),
        "the refusal names both accounts: {refused}"
    );
    let again = checked
        .provide_credentials()
        .await
        .expect("home's keys again");
    assert_eq!(again.access_key_id(), home);
    let sts_calls = |key: &str| {
        let key = key.to_string();
        async move {
            requests(&key)
                .await
                .iter()
                .filter(|r| r["operation"] == "GetCallerIdentity")
                .count()
        }
    };
    assert_eq!(
        sts_calls(&home).await,
        1,
        "home's keys are proven once, not on every hand-out"
    );
    assert_eq!(sts_calls(&other).await, 1);
    assert_eq!(n.load(Ordering::SeqCst), 3);
}
