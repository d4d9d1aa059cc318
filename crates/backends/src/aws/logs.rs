//! The DMS task's log tail: its CloudWatch Logs stream, read with FilterLogEvents from the
//! session's start, every line once. DMS writes a task's log to the group
//! `dms-tasks-<replication instance identifier>`, stream `dms-task-<task resource id>` (the
//! last part of the task's ARN), when the task's settings enable logging. The lines become a
//! `Reading::TaskLog`; the fold puts them in the log, errors and warnings marked as such.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::{Mutex, OnceCell};

use super::error::describe;
use super::read::{DmsRead, LogsRead};
use cutover_core::event::{Reading, SourceKind, TaskLogLine, TaskLogReading, Ts, now_ms};
use cutover_runtime::source::{BoxFuture, Source, SourceError};

/// Pages one poll may read (1000 events a page): a burst beyond it is read by the next polls.
const MAX_PAGES: usize = 10;

/// Where the task's log lives.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stream {
    group: String,
    stream: String,
}

/// Where the next poll starts: the newest timestamp read, and the ids of the events at that
/// timestamp already read (FilterLogEvents' start is inclusive).
#[derive(Debug, Default)]
struct Cursor {
    from_ms: Ts,
    seen_at_from: HashSet<String>,
}

/// Polls the task's log stream.
pub struct TaskLogSource {
    logs: LogsRead,
    dms: DmsRead,
    task: String,
    every: Duration,
    stream: OnceCell<Stream>,
    cursor: Mutex<Cursor>,
}

impl TaskLogSource {
    /// Reads the lines the task writes from `since` (ms since the epoch) on.
    pub fn new(logs: LogsRead, dms: DmsRead, task: String, since: Ts, every: Duration) -> Self {
        TaskLogSource {
            logs,
            dms,
            task,
            every,
            stream: OnceCell::new(),
            cursor: Mutex::new(Cursor {
                from_ms: since,
                seen_at_from: HashSet::new(),
            }),
        }
    }

    /// The group and stream, looked up once (a failure is retried on the next poll).
    async fn stream(&self) -> Result<&Stream, SourceError> {
        self.stream
            .get_or_try_init(|| async {
                let ids = super::dms::task_ids(&self.dms, &self.task).await?;
                Ok(Stream {
                    group: format!("dms-tasks-{}", ids.instance_id),
                    stream: format!("dms-task-{}", ids.resource_id),
                })
            })
            .await
    }

    async fn read(&self) -> Result<Vec<Reading>, SourceError> {
        let stream = self.stream().await?;
        let mut cursor = self.cursor.lock().await;
        let mut lines = Vec::new();
        let mut next: Option<String> = None;
        let mut newest = cursor.from_ms;
        let mut seen_at_newest = cursor.seen_at_from.clone();
        for _ in 0..MAX_PAGES {
            let out = self
                .logs
                .filter_log_events(&stream.group, &stream.stream, cursor.from_ms, next.take())
                .await
                .map_err(|e| {
                    let f = describe("CloudWatch Logs FilterLogEvents", "logs:FilterLogEvents", &e);
                    SourceError::new(if f.kind == super::FailureKind::NotFound {
                        format!(
                            "{}; is logging on in the task's settings (Logging.EnableLogging)? DMS writes to {} / {}",
                            f.message, stream.group, stream.stream
                        )
                    } else {
                        f.message
                    })
                })?;
            for e in out.events() {
                let (Some(at), Some(text)) = (e.timestamp(), e.message()) else {
                    continue;
                };
                let id = e.event_id().unwrap_or_default().to_string();
                if at == cursor.from_ms && cursor.seen_at_from.contains(&id) {
                    continue;
                }
                if at > newest {
                    newest = at;
                    seen_at_newest.clear();
                }
                if at == newest {
                    seen_at_newest.insert(id);
                }
                lines.push(TaskLogLine {
                    at,
                    text: cutover_core::redact::text(text.trim_end(), &[]),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        cursor.from_ms = newest;
        cursor.seen_at_from = seen_at_newest;
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        lines.sort_by_key(|l| l.at);
        Ok(vec![Reading::TaskLog(TaskLogReading {
            observed_at: now_ms(),
            stream: format!("{} / {}", stream.group, stream.stream),
            lines,
        })])
    }
}

impl Source for TaskLogSource {
    fn kind(&self) -> SourceKind {
        SourceKind::TaskLog
    }

    fn name(&self) -> String {
        format!("dms-log:{}", self.task)
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn poll(&self) -> BoxFuture<'_, Result<Vec<Reading>, SourceError>> {
        Box::pin(self.read())
    }
}
