//! `[[probe]]` sources: one HTTP GET every `every`, the value at the probe's JSON pointer as a
//! `Reading::Probe` stamped with the time the request was sent. Every failure — no answer
//! within the timeout, a status other than 2xx, a body that is not JSON, nothing at the
//! pointer, a value that is not a number, text or boolean — is a reading too, with the
//! reason and no value: `probe.<name>` is then unknown, and the other probes unaffected.

use std::sync::Arc;
use std::time::Duration;

use super::{BoxFuture, Source, SourceError};
use cutover_core::event::{ProbeReading, Reading, SourceKind, now_ms};
use cutover_core::plan::Value;
use cutover_core::plan::probe::Probe;

/// Longest body a probe reads (a flag service's answer is small; a huge one is refused).
const MAX_BODY: usize = 1 << 20;

pub struct HttpProbe {
    probe: Probe,
    client: reqwest::Client,
}

/// One source per `[[probe]]` of the plan.
pub fn sources(probes: &[Probe]) -> Vec<Arc<dyn Source>> {
    probes
        .iter()
        .filter_map(|p| match HttpProbe::new(p.clone()) {
            Ok(s) => Some(Arc::new(s) as Arc<dyn Source>),
            Err(e) => {
                tracing::error!(probe = %p.name, error = %e, "cannot make the probe's client");
                None
            }
        })
        .collect()
}

impl HttpProbe {
    pub fn new(probe: Probe) -> Result<Self, String> {
        let timeout = Duration::from_millis(u64::try_from(probe.timeout_ms.max(1)).unwrap_or(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(crate::net::connect_timeout().min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot make the probe client: {e}"))?;
        Ok(HttpProbe { probe, client })
    }

    /// The value at the pointer, or why there is none.
    async fn read(&self) -> Result<Value, String> {
        let answer = self.client.get(&self.probe.url).send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "no answer within {}",
                    cutover_core::plan::limits::show_ms(self.probe.timeout_ms)
                )
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                cutover_core::redact::text(&e.without_url().to_string(), &[])
            }
        })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let body = answer
            .bytes()
            .await
            .map_err(|_| "the answer's body could not be read in time".to_string())?;
        if body.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON ({e})"))?;
        let pointer = &self.probe.pointer;
        match doc.pointer(pointer) {
            None => Err(format!("the answer has nothing at {pointer:?}")),
            Some(serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            Some(serde_json::Value::String(s)) => Ok(Value::Text(s.clone())),
            Some(serde_json::Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Value::Number)
                .ok_or_else(|| format!("the number at {pointer:?} is out of range")),
            Some(other) => Err(format!(
                "the value at {pointer:?} is {}, not a number, text or boolean",
                match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Array(_) => "an array",
                    _ => "an object",
                }
            )),
        }
    }
}

impl Source for HttpProbe {
    fn kind(&self) -> SourceKind {
        SourceKind::Probe
    }

    fn name(&self) -> String {
        format!("probe-{}", self.probe.name)
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.probe.every_ms.max(1)).unwrap_or(1))
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(async move {
            let sent = now_ms();
            let (value, error) = match self.read().await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            };
            Ok(vec![Reading::Probe(ProbeReading {
                observed_at: sent,
                name: self.probe.name.clone(),
                value,
                error,
            })])
        })
    }
}
