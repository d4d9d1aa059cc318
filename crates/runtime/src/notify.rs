//! `[[notify]]` webhooks: the window's moments (session start and end, steps confirmed, done
//! and failed, a guard firing, the rollback starting and finishing) told to a chat channel
//! or any HTTP receiver, without ever slowing the cockpit.
//!
//! The session's observer only diffs the folded state and pushes onto one bounded queue per
//! receiver (never waiting); a task per receiver sends, in order, with a per-request
//! timeout and bounded retries with backoff. When a queue is full the oldest notification
//! is dropped. Every outcome (delivered, failed, dropped) comes back to the session as a
//! `NotifyDelivered` event, so the transcript and the log pane say what was sent. The URL is
//! a secret: it is read from the environment or a file, held here only, and scrubbed from
//! every error text.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::session::Session;
use cutover_core::event::{DeliveryOutcome, Event, Ts, now_ms};
use cutover_core::plan::{NotifyKind, NotifyOn, Plan, UrlSecret};
use cutover_core::state::{RollbackStatus, State, StepStatus};

/// How notifications are sent.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Notifications waiting per receiver; past it the oldest is dropped (and recorded).
    pub queue: usize,
    /// Requests per notification, the first included.
    pub attempts: u32,
    /// One request's limit, connect to last byte.
    pub timeout: Duration,
    /// The wait before the second attempt; doubled before each further one.
    pub backoff: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            queue: 64,
            attempts: 3,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(500),
        }
    }
}

/// One moment to tell, as the JSON receivers get it (a Slack-style receiver gets `text`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub event: NotifyOn,
    /// When it happened (ms since the epoch, UTC).
    pub at: Ts,
    pub plan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepInfo>,
    /// Who decided (the operator, a peer, `abort <id>`), where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The key the session's transcript is signed with (`ed25519:<base64>`), on
    /// `session-start` and `session-end`: handed out of band, so `cutover verify --key`
    /// can later tell the session's own records from a re-chained forgery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// One line for people.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepInfo {
    /// 1-based, as the checklist numbers steps.
    pub number: usize,
    pub id: String,
    pub title: String,
}

/// A receiver with its URL read.
struct Receiver {
    name: String,
    kind: NotifyKind,
    url: String,
    on: Vec<NotifyOn>,
}

/// The plan's receivers, their URLs read, ready to attach to a session.
pub struct Notifiers {
    receivers: Vec<Receiver>,
    config: NotifyConfig,
}

impl Notifiers {
    /// Reads every receiver's URL (`url_env`, `url_file`) before the session opens, so a
    /// missing or malformed one stops the command with its name, never its value.
    pub fn resolve(plan: &Plan) -> Result<Notifiers, String> {
        let mut receivers = Vec::new();
        for n in &plan.notify {
            let (url, from) = match &n.url {
                UrlSecret::Env(var) => (
                    std::env::var(var).map_err(|_| {
                        format!(
                            "notify \"{}\": the environment variable {var} (url_env) is not set; export it with the webhook URL",
                            n.name
                        )
                    })?,
                    format!("${var}"),
                ),
                UrlSecret::File(f) => (
                    crate::secrets::read_secret_file(&crate::secrets::expand_home(f), "url_file")
                        .map_err(|e| format!("notify \"{}\": {e}", n.name))?,
                    f.clone(),
                ),
            };
            let url = url.trim().to_string();
            let scheme_ok = reqwest::Url::parse(&url)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !scheme_ok {
                return Err(format!(
                    "notify \"{}\": what {from} holds is not an http(s) URL (put the receiver's webhook URL there, e.g. https://hooks.slack.com/services/...)",
                    n.name
                ));
            }
            receivers.push(Receiver {
                name: n.name.clone(),
                kind: n.kind,
                url,
                on: n.on.clone(),
            });
        }
        Ok(Notifiers {
            receivers,
            config: NotifyConfig::default(),
        })
    }

    pub fn with_config(mut self, config: NotifyConfig) -> Self {
        self.config = config;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Starts one sending task per receiver and observes `session`: from now on each
    /// folded batch's moments are queued. `session-start` is queued at once (the session's
    /// `SessionStarted` was folded when it opened).
    pub fn attach(self, session: &mut Session) -> anyhow::Result<NotifyHandle> {
        let client = reqwest::Client::builder()
            .timeout(self.config.timeout)
            .connect_timeout(crate::net::connect_timeout().min(self.config.timeout))
            // A redirect would send the notification where the plan did not say.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make the webhook client: {e}"))?;
        let tx = session.sender();
        let mut secrets: Vec<String> = session.secrets().to_vec();
        secrets.extend(self.receivers.iter().map(|r| r.url.clone()));
        let secrets = Arc::new(secrets);
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for r in self.receivers {
            let queue = Arc::new(Queue::new(self.config.queue));
            queues.push((r.on.clone(), r.name.clone(), Arc::clone(&queue)));
            let name = r.name.clone();
            let sending = deliver_loop(
                client.clone(),
                r,
                queue,
                tx.clone(),
                self.config.clone(),
                Arc::clone(&secrets),
            );
            tasks.push(tokio::spawn(async move {
                // The loop never returns; a panic in it stops this receiver only.
                if let Err(why) = crate::task::catch(sending).await {
                    tracing::error!(notify = %name, "the notifier stopped: {why}");
                }
            }));
        }
        let idle = queues.iter().map(|(_, _, q)| Arc::clone(q)).collect();
        let key = session.transcript_key().map(|k| k.to_string());
        let mut watcher = Watcher::new(&session.state, key);
        let plan_name = session.plan.name.clone();
        let fan_out = move |moments: Vec<Notification>| {
            for m in moments {
                for (on, name, q) in &queues {
                    if on.contains(&m.event)
                        && let Some(dropped) = q.push(m.clone())
                    {
                        // The queue was full: the oldest waiting notification gave way.
                        let _ = tx.send(Event::NotifyDelivered {
                            at: now_ms(),
                            notify: name.clone(),
                            on: dropped.event,
                            outcome: DeliveryOutcome::Dropped,
                            status: None,
                            attempts: 0,
                            error: None,
                        });
                    }
                }
            }
        };
        fan_out(watcher.started(&session.state, &plan_name));
        session.observe(Box::new(move |batch, state| {
            fan_out(watcher.changes(batch, state, &plan_name));
        }));
        Ok(NotifyHandle {
            queues: idle,
            tasks,
        })
    }
}

/// The running notifier. Dropping it stops the sending tasks.
pub struct NotifyHandle {
    queues: Vec<Arc<Queue>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl NotifyHandle {
    /// Waits at most `grace` for every queued notification to be delivered or given up
    /// (the end of a session: its `session-end` should still go out). True when all were.
    pub async fn flush(&self, grace: Duration) -> bool {
        let all_idle = async {
            for q in &self.queues {
                q.wait_idle().await;
            }
        };
        tokio::time::timeout(grace, all_idle).await.is_ok()
    }

    /// How many notifications are queued or being sent.
    pub fn pending(&self) -> usize {
        self.queues.iter().map(|q| q.pending()).sum()
    }
}

impl Drop for NotifyHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A receiver's bounded queue. `pending` counts the waiting ones and the one being sent.
struct Queue {
    items: Mutex<VecDeque<Notification>>,
    cap: usize,
    pending: AtomicUsize,
    wake: tokio::sync::Notify,
    idle: tokio::sync::Notify,
}

impl Queue {
    fn new(cap: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            pending: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            idle: tokio::sync::Notify::new(),
        }
    }

    /// Queues `n` without waiting; returns the oldest one if it had to make room.
    fn push(&self, n: Notification) -> Option<Notification> {
        let dropped = {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = (items.len() >= self.cap)
                .then(|| items.pop_front())
                .flatten();
            items.push_back(n);
            dropped
        };
        if dropped.is_none() {
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        self.wake.notify_one();
        dropped
    }

    async fn pop(&self) -> Notification {
        loop {
            let next = self
                .items
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            if let Some(n) = next {
                return n;
            }
            self.wake.notified().await;
        }
    }

    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.pending() == 0 {
                return;
            }
            idle.await;
        }
    }
}

async fn deliver_loop(
    client: reqwest::Client,
    r: Receiver,
    queue: Arc<Queue>,
    tx: mpsc::UnboundedSender<Event>,
    config: NotifyConfig,
    secrets: Arc<Vec<String>>,
) {
    loop {
        let n = queue.pop().await;
        let body = match r.kind {
            NotifyKind::Slack => serde_json::json!({ "text": n.text }),
            NotifyKind::Json => serde_json::to_value(&n).unwrap_or_default(),
        };
        let result = deliver(&client, &r.url, &body, &config).await;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        // The session may have ended; the outcome is then only lost with it.
        let _ = tx.send(Event::NotifyDelivered {
            at: now_ms(),
            notify: r.name.clone(),
            on: n.event,
            outcome: result.outcome,
            status: result.status,
            attempts: result.attempts,
            error: result
                .error
                .map(|e| cutover_core::redact::text(&e, &secrets)),
        });
        queue.done();
    }
}

struct Delivery {
    outcome: DeliveryOutcome,
    status: Option<u16>,
    attempts: u32,
    error: Option<String>,
}

/// Posts `body` until a 2xx, a refusal that retrying cannot change (a 4xx other than 408 and
/// 429), or the last attempt.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    config: &NotifyConfig,
) -> Delivery {
    let body = body.to_string();
    let mut status = None;
    let mut error = None;
    let attempts = config.attempts.max(1);
    let mut wait = config.backoff;
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        match client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                return Delivery {
                    outcome: DeliveryOutcome::Delivered,
                    status: Some(resp.status().as_u16()),
                    attempts: attempt,
                    error: None,
                };
            }
            Ok(resp) => {
                let code = resp.status();
                // The status says it all (the log shows "HTTP 503").
                status = Some(code.as_u16());
                error = None;
                let retryable = code.is_server_error()
                    || code == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || code == reqwest::StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Delivery {
                        outcome: DeliveryOutcome::Failed,
                        status,
                        attempts: attempt,
                        error,
                    };
                }
            }
            Err(e) => {
                status = None;
                error = Some(describe(e));
            }
        }
    }
    Delivery {
        outcome: DeliveryOutcome::Failed,
        status,
        attempts,
        error,
    }
}

/// A request error with its causes, without the URL reqwest would name.
fn describe(e: reqwest::Error) -> String {
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut text = if timed_out {
        "no answer within the request timeout".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the notifier has already told about, to find the new moments in each folded batch.
struct Watcher {
    confirmed: Vec<bool>,
    statuses: Vec<StepStatus>,
    rollback: Option<RollbackStatus>,
    guards: BTreeSet<String>,
    budget_warned: bool,
    ended: bool,
    /// The transcript's signing key, told at the start and the end.
    key: Option<String>,
}

impl Watcher {
    fn new(state: &State, key: Option<String>) -> Watcher {
        Watcher {
            confirmed: state
                .steps
                .iter()
                .map(|s| s.confirmed_at.is_some())
                .collect(),
            statuses: state.steps.iter().map(|s| s.status).collect(),
            rollback: state.rollback.as_ref().map(|r| r.status),
            guards: state.guard_holds.iter().map(|g| g.guard.clone()).collect(),
            budget_warned: state.downtime.warned_at.is_some(),
            ended: state.ended.is_some(),
            key,
        }
    }

    /// `m` with the signing key, and the key in its text for receivers that show only that.
    fn with_key(&self, mut m: Notification) -> Notification {
        if let Some(k) = &self.key {
            m.text.push_str(&format!(" (transcript signed by {k})"));
            m.key = Some(k.clone());
        }
        m
    }

    fn started(&self, state: &State, plan: &str) -> Vec<Notification> {
        let mode = state.mode.as_ref().map(|m| m.to_string());
        let text = format!(
            "cutover {plan}: {} session started by {}",
            mode.as_deref().unwrap_or("a"),
            state.operator.as_deref().unwrap_or("?")
        );
        vec![self.with_key(moment(
            state,
            plan,
            NotifyOn::SessionStart,
            None,
            state.operator.clone(),
            None,
            text,
        ))]
    }

    fn changes(&mut self, _batch: &[Event], state: &State, plan: &str) -> Vec<Notification> {
        let mut out = Vec::new();
        for (i, s) in state.steps.iter().enumerate() {
            let label = step_label(state, i);
            if s.confirmed_at.is_some() && !self.confirmed[i] {
                let by = s.confirmed_by.clone();
                let text = format!(
                    "cutover {plan}: step {label} confirmed by {}",
                    by.as_deref().unwrap_or("?")
                );
                out.push(moment(
                    state,
                    plan,
                    NotifyOn::StepConfirmed,
                    Some(i),
                    by,
                    None,
                    text,
                ));
            }
            self.confirmed[i] = s.confirmed_at.is_some();
            if s.status != self.statuses[i] {
                let kind = match s.status {
                    StepStatus::Done => Some(NotifyOn::StepDone),
                    StepStatus::Failed => Some(NotifyOn::StepFailed),
                    _ => None,
                };
                if let Some(kind) = kind {
                    let verb = if kind == NotifyOn::StepDone {
                        "done"
                    } else {
                        "FAILED"
                    };
                    let mut text = format!("cutover {plan}: step {label} {verb}");
                    if let (NotifyOn::StepFailed, Some(m)) = (kind, &s.message) {
                        text.push_str(&format!(": {m}"));
                    }
                    out.push(moment(
                        state,
                        plan,
                        kind,
                        Some(i),
                        None,
                        s.message.clone(),
                        text,
                    ));
                }
                self.statuses[i] = s.status;
            }
        }
        let guards: BTreeSet<String> = state.guard_holds.iter().map(|g| g.guard.clone()).collect();
        for g in state
            .guard_holds
            .iter()
            .filter(|g| !self.guards.contains(&g.guard))
        {
            let text = format!(
                "cutover {plan}: {} fired ({}): {}",
                g.guard,
                g.then.as_str(),
                g.reason
            );
            out.push(moment(
                state,
                plan,
                NotifyOn::AbortFired,
                None,
                Some(g.guard.clone()),
                Some(g.reason.clone()),
                text,
            ));
        }
        if let Some(r) = &state.rollback {
            if self.rollback.is_none() {
                // A guard's rollback whose hold the batch already lifted: it fired all the same.
                if (r.by.starts_with("abort ") || r.by.starts_with("timeout "))
                    && !self.guards.contains(&r.by)
                    && !guards.contains(&r.by)
                {
                    let text = format!("cutover {plan}: {} fired (rollback): {}", r.by, r.reason);
                    out.push(moment(
                        state,
                        plan,
                        NotifyOn::AbortFired,
                        None,
                        Some(r.by.clone()),
                        Some(r.reason.clone()),
                        text,
                    ));
                }
                let text = format!("cutover {plan}: ROLLBACK started by {}: {}", r.by, r.reason);
                out.push(moment(
                    state,
                    plan,
                    NotifyOn::RollbackStarted,
                    None,
                    Some(r.by.clone()),
                    Some(r.reason.clone()),
                    text,
                ));
            }
            let finished = matches!(r.status, RollbackStatus::Done | RollbackStatus::Failed);
            let was_finished = matches!(
                self.rollback,
                Some(RollbackStatus::Done | RollbackStatus::Failed)
            );
            if finished && !was_finished {
                let how = if r.status == RollbackStatus::Done {
                    "finished"
                } else {
                    "FAILED (an undo did not succeed)"
                };
                out.push(moment(
                    state,
                    plan,
                    NotifyOn::RollbackFinished,
                    None,
                    Some(r.by.clone()),
                    None,
                    format!("cutover {plan}: rollback {how}"),
                ));
            }
        }
        self.rollback = state.rollback.as_ref().map(|r| r.status);
        self.guards = guards;
        // The downtime budget's 80 % warning, once, when the fold records it.
        if let (Some(at), false) = (state.downtime.warned_at, self.budget_warned) {
            let used = state.downtime.used_ms(at).unwrap_or(0);
            let of = state.plan.budget.as_ref().map_or(0, |b| b.max_ms);
            out.push(moment(
                state,
                plan,
                NotifyOn::BudgetWarning,
                None,
                None,
                None,
                format!(
                    "cutover {plan}: downtime budget 80 % used ({}s of {}s; writes are still frozen)",
                    used / 1000,
                    of / 1000
                ),
            ));
        }
        self.budget_warned = state.downtime.warned_at.is_some();
        if let (Some((_, reason)), false) = (&state.ended, self.ended) {
            let end = moment(
                state,
                plan,
                NotifyOn::SessionEnd,
                None,
                None,
                Some(reason.clone()),
                format!(
                    "cutover {plan}: session ended ({reason}); {}",
                    outcome_line(state)
                ),
            );
            out.push(self.with_key(end));
        }
        self.ended = state.ended.is_some();
        out
    }
}

fn step_label(state: &State, i: usize) -> String {
    let step = &state.plan.steps[i];
    format!("{} {} ({})", i + 1, step.id, step.title)
}

fn outcome_line(state: &State) -> String {
    let done = state
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .count();
    let total = state.steps.len();
    if state.rolled_back() {
        "rolled back".to_string()
    } else if state.completed() {
        format!("all {total} steps done")
    } else {
        format!("{done} of {total} steps done")
    }
}

fn moment(
    state: &State,
    plan: &str,
    event: NotifyOn,
    step: Option<usize>,
    by: Option<String>,
    reason: Option<String>,
    text: String,
) -> Notification {
    Notification {
        event,
        at: state.now,
        plan: plan.to_string(),
        mode: state.mode.as_ref().map(|m| m.to_string()),
        step: step.map(|i| StepInfo {
            number: i + 1,
            id: state.plan.steps[i].id.clone(),
            title: state.plan.steps[i].title.clone(),
        }),
        by,
        reason,
        key: None,
        text,
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
