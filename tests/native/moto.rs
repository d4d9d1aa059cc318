//! The shipped plans' traffic switch is a Route 53 CNAME flip: the drives run it against the
//! moto emulator on 127.0.0.1:$MOTO_PORT (default 5000, `tests/support/start_moto.sh`), the
//! binary's endpoint overridden with `--endpoint-url` as tests/aws.rs does. Nothing here
//! contacts another address: dummy keys, no instance metadata, no profile files.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

const SECRET: &str = "dummySecretKeyForTheMotoEmulatorOnly0000";

fn port() -> u16 {
    std::env::var("MOTO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000)
}

pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}", port())
}

/// A hosted zone of this test's own holding the shipped plan's record, and the keys the
/// binary signs with (STS answers them with the plan's `[aws] account`).
pub struct Zone {
    pub key: String,
    pub zone_id: String,
    pub record: String,
    client: aws_sdk_route53::Client,
}

/// A 20-character access key id, unique per call (moto keeps state between runs).
fn access_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("AKIANTV{:09}{n:04}", nanos % 1_000_000_000)
        .chars()
        .take(20)
        .collect()
}

async fn control(client: &reqwest::Client, path: &str, body: serde_json::Value) {
    let url = format!("{}{path}", endpoint());
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("POST {url}: {e} (start moto with tests/support/start_moto.sh)")
        });
    assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
}

/// Fails (never skips) when the emulator is not there.
async fn require_moto(client: &reqwest::Client) {
    let url = format!("{}/_cutover/health", endpoint());
    let body = match client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!(
            "the moto emulator is not reachable on {url}: {e}. Start it with tests/support/start_moto.sh"
        ),
    };
    assert_eq!(
        body, "ok",
        "something else answers on {url}; start tests/support/start_moto.sh"
    );
}

impl Zone {
    /// A new zone (the record's parent) with `record` CNAME `value`, TTL 30, and keys whose
    /// caller identity is `account`.
    pub async fn new(record: &str, value: &str, account: &str) -> Zone {
        let http = reqwest::Client::new();
        require_moto(&http).await;
        let key = access_key();
        control(
            &http,
            "/_cutover/accounts",
            serde_json::json!({"access_key": key, "account": account}),
        )
        .await;
        let cfg = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                &key, SECRET, None, None, "tests",
            )))
            .endpoint_url(endpoint())
            .build();
        let client = aws_sdk_route53::Client::new(&cfg);
        let parent = record.split_once('.').map_or(record, |(_, p)| p);
        let zone = client
            .create_hosted_zone()
            .name(parent)
            .caller_reference(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create the hosted zone {parent}: {e:?}"));
        let zone_id = zone
            .hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
            .unwrap_or_else(|| panic!("no zone id"));
        let zone = Zone {
            key,
            zone_id,
            record: record.to_string(),
            client,
        };
        zone.upsert(value).await;
        zone
    }

    async fn upsert(&self, value: &str) {
        let rr = ResourceRecordSet::builder()
            .name(&self.record)
            .r#type(RrType::Cname)
            .ttl(30)
            .resource_records(
                ResourceRecord::builder()
                    .value(value)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Upsert)
                            .resource_record_set(rr)
                            .build()
                            .unwrap_or_else(|e| panic!("{e}")),
                    )
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("upsert {}: {e:?}", self.record));
    }

    /// The record's values as Route 53 holds them now.
    pub async fn values(&self) -> Vec<String> {
        let sets = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list the zone's sets: {e:?}"));
        sets.resource_record_sets()
            .iter()
            .filter(|s| s.name() == self.record && s.r#type() == &RrType::Cname)
            .flat_map(|s| s.resource_records().iter().map(|r| r.value().to_string()))
            .collect()
    }

    /// The environment the binary needs to sign with this zone's keys and nothing else.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ]
    }
}
