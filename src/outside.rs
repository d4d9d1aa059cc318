//! What a session tells the world outside the cockpit: `[[notify]]` webhooks and the
//! `--status-addr` endpoint, started together for run, watch, rehearse and resume and
//! finished together when the session ends.

use std::time::Duration;

use crate::event::AwsIdentity;
use crate::plan::Plan;
use crate::session::{Inbox, Session};
use crate::status::{StatusHandle, StatusListener};
use cutover_runtime::notify::{Notifiers, NotifyConfig, NotifyHandle};

/// How long the end of a session waits for its last notifications (`session-end`).
const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// Prepared before the session opens: the webhook URLs read, the status port bound, so a
/// missing secret or a taken port stops the command before anything is recorded.
#[derive(Default)]
pub struct Outside {
    notifiers: Option<Notifiers>,
    status: Option<StatusListener>,
}

impl Outside {
    /// `notify`: whether this kind of session sends the plan's notifications (a read-only
    /// `watch` does not: the driver's session tells the channel).
    pub fn prepare(
        plan: &Plan,
        notify: bool,
        status: Option<StatusListener>,
    ) -> anyhow::Result<Outside> {
        let notifiers = if notify && !plan.notify.is_empty() {
            Some(Notifiers::resolve(plan).map_err(|e| anyhow::anyhow!("{e}"))?)
        } else {
            None
        };
        Ok(Outside { notifiers, status })
    }

    /// Whether nothing is sent or served: the only outside a simulated-time run may have
    /// (webhooks and a status endpoint live on the wall clock).
    pub fn is_empty(&self) -> bool {
        self.notifiers.is_none() && self.status.is_none()
    }

    /// Sends with `config` instead of the defaults (tests: short timeouts).
    pub fn with_notify_config(mut self, config: NotifyConfig) -> Self {
        self.notifiers = self.notifiers.map(|n| n.with_config(config));
        self
    }

    /// Starts both on the open session.
    pub fn attach(
        self,
        session: &mut Session,
        aws: Option<AwsIdentity>,
    ) -> anyhow::Result<Attached> {
        let notify = self.notifiers.map(|n| n.attach(session)).transpose()?;
        let status = self
            .status
            .map(|l| crate::status::start(session, l, aws))
            .transpose()?;
        Ok(Attached { notify, status })
    }
}

/// The running notifier and endpoint of a session.
#[derive(Default)]
pub struct Attached {
    notify: Option<NotifyHandle>,
    status: Option<StatusHandle>,
}

impl Attached {
    /// Where `/status` is served, if it is.
    pub fn status_addr(&self) -> Option<std::net::SocketAddr> {
        self.status.as_ref().map(StatusHandle::addr)
    }

    /// After the session's end is recorded: lets the last notifications go out (bounded by
    /// a grace period) and records their outcomes, then stops the endpoint.
    pub async fn finish(self, session: &mut Session, inbox: &mut Inbox) -> anyhow::Result<()> {
        if let Some(n) = &self.notify {
            if n.pending() > 0 {
                eprintln!(
                    "cutover: sending the last {} notification(s) (at most {}s)",
                    n.pending(),
                    FLUSH_GRACE.as_secs()
                );
            }
            if !n.flush(FLUSH_GRACE).await {
                tracing::warn!(
                    pending = n.pending(),
                    "notifications still unsent when the session ended"
                );
            }
            let outcomes: Vec<_> = inbox
                .pending()
                .into_iter()
                .filter(|e| matches!(e, crate::event::Event::NotifyDelivered { .. }))
                .collect();
            session.ingest(outcomes)?;
        }
        if let Some(s) = self.status {
            s.shutdown().await;
        }
        Ok(())
    }
}
