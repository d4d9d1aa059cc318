//! Carries out plan actions on the rehearsal world, as the AWS and SQL actuators do on real
//! systems: write freezes (`read_only`) and SQL, task stop/start, DNS UPSERT with INSYNC wait, shell.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::world::{TaskStatus, World, lock};
use cutover_core::event::Side;
use cutover_core::plan::{Action, Plan};
use cutover_runtime::action::{ActionError, Actuator, Output};
use cutover_runtime::source::BoxFuture;

/// How often a DNS wait asks for the change status (GetChange).
const DNS_POLL: Duration = Duration::from_millis(200);

pub(crate) struct SimActuator {
    pub world: Arc<World>,
}

impl Actuator for SimActuator {
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async move {
            let world = &self.world;
            match action {
                Action::None | Action::Manual { .. } => {
                    Ok("nothing to do in the rehearsal world".into())
                }
                Action::Sql { on, statement } => {
                    let n = world.execute(*on, statement).await.map_err(|e| {
                        ActionError::new(format!("SQL on the {} database failed: {e}", on.as_str()))
                    })?;
                    out.line(format!("{}: {n} row(s) affected", on.as_str()));
                    Ok(format!("{n} row(s) affected on the {}", on.as_str()))
                }
                // The world models MySQL's `read_only` switch, which every method sets.
                Action::Freeze { on, method: _ } => set_read_only(world, *on, true, out).await,
                Action::Unfreeze { on, method: _ } => set_read_only(world, *on, false, out).await,
                Action::ReplicationStop => stop(world, out).await,
                Action::ReplicationStart => start(world, out).await,
                // Plan validation refuses it outside engine = "postgres".
                Action::SyncSequences { .. } => Err(ActionError::new(
                    "the rehearsal world has no sequences; kind = \"sync-sequences\" needs [replication] engine = \"postgres\"",
                )),
                Action::Dns { to, wait } => {
                    let value = plan.dns_value(to).ok_or_else(|| {
                        ActionError::new("the plan has no [dns] section to take the value from")
                    })?;
                    flip(world, &value, *wait, out).await
                }
                Action::DnsWeights { .. } => Err(ActionError::new(
                    "the rehearsal world's record is one plain record: weighted DNS stages are not simulated (yet); rehearse them against moto, or use a dns action with `to`",
                )),
                Action::Http(h) => cutover_runtime::action::http::run(h, out).await,
                Action::Shell { command } => {
                    cutover_runtime::action::shell::run(command, out).await
                }
            }
        })
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "ON" } else { "OFF" }
}

async fn set_read_only(
    world: &World,
    side: Side,
    value: bool,
    out: &Output,
) -> Result<String, ActionError> {
    let was = world.set_read_only(side, value).await;
    let msg = if was == value {
        format!("{} read_only already {}", side.as_str(), on_off(value))
    } else {
        format!(
            "{} read_only = {} (was {})",
            side.as_str(),
            on_off(value),
            on_off(was)
        )
    };
    out.line(msg.clone());
    Ok(msg)
}

/// Waits for the task to reach a status, or fails if it fails or the world shuts down.
async fn wait_status(world: &World, want: TaskStatus) -> Result<(), ActionError> {
    let mut rx = world.task.subscribe();
    let reached = tokio::select! {
        biased;
        _ = world.cancelled().cancelled() => return Err(ActionError::new("the rehearsal world shut down")),
        r = rx.wait_for(|s| *s == want || matches!(s, TaskStatus::Failed(_))) => r,
    };
    match reached.map(|s| s.clone()) {
        Ok(TaskStatus::Failed(why)) if !matches!(want, TaskStatus::Failed(_)) => {
            Err(ActionError::new(format!("the task failed: {why}")))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(ActionError::new("the rehearsal world shut down")),
    }
}

async fn stop(world: &World, out: &Output) -> Result<String, ActionError> {
    world.strike_late_drift().await;
    let task = &world.cfg.task;
    let before = world.task.borrow().clone();
    if before == TaskStatus::Stopped {
        out.line(format!("task {task} is already stopped"));
        return Ok(format!("task {task} already stopped"));
    }
    if before != TaskStatus::Stopping {
        world.task.send_replace(TaskStatus::Stopping);
        world.wake_replicator();
    }
    out.line(format!("task {task} is stopping"));
    wait_status(world, TaskStatus::Stopped).await?;
    let core = world.core.lock().await;
    let backlog = core
        .backlog
        .iter()
        .filter(|c| c.what.key().is_some())
        .count();
    let diverged = core.stop_diverged.unwrap_or(0);
    drop(core);
    out.line(format!(
        "task {task} is stopped; {backlog} data change(s) left unapplied, {diverged} row(s) differ"
    ));
    Ok(format!("task {task} stopped"))
}

async fn start(world: &World, out: &Output) -> Result<String, ActionError> {
    let task = &world.cfg.task;
    let before = world.task.borrow().clone();
    match before {
        TaskStatus::Running => {
            out.line(format!("task {task} is already running"));
            return Ok(format!("task {task} already running"));
        }
        TaskStatus::Stopping => {
            out.line(format!("task {task} is stopping; waiting before resuming"));
            wait_status(world, TaskStatus::Stopped).await?;
            world.task.send_replace(TaskStatus::Starting);
        }
        TaskStatus::Stopped | TaskStatus::Failed(_) => {
            world.task.send_replace(TaskStatus::Starting);
        }
        TaskStatus::Starting => {}
    }
    world.wake_replicator();
    out.line(format!(
        "task {task} is starting (resuming from where it stopped)"
    ));
    wait_status(world, TaskStatus::Running).await?;
    out.line(format!("task {task} is running"));
    Ok(format!("task {task} running"))
}

async fn flip(
    world: &Arc<World>,
    value: &str,
    wait: bool,
    out: &Output,
) -> Result<String, ActionError> {
    let change = world.upsert_dns(value);
    let name = world.cfg.dns.name.clone();
    out.line(format!(
        "UPSERT {name} {} {value} TTL {}: change {} PENDING",
        world.cfg.dns.record_type, world.cfg.dns.ttl, change.id
    ));
    if !wait {
        return Ok(format!(
            "{name} -> {value} (change {} submitted)",
            change.id
        ));
    }
    let mut said = Instant::now();
    loop {
        let status = lock(&world.zone).status(Instant::now());
        let elapsed = change.submitted.elapsed().as_secs_f64();
        // Another UPSERT may have superseded ours; then ours is moot and we report that.
        let ours =
            lock(&world.zone).change.as_ref().map(|c| c.id.clone()) == Some(change.id.clone());
        if !ours {
            return Err(ActionError::new(format!(
                "change {} was superseded by a later change",
                change.id
            )));
        }
        if status == Some("INSYNC") {
            out.line(format!("change {} INSYNC after {elapsed:.1}s", change.id));
            return Ok(format!("{name} -> {value} (change {} INSYNC)", change.id));
        }
        if said.elapsed() >= Duration::from_secs(1) {
            out.line(format!(
                "change {} still PENDING after {elapsed:.0}s",
                change.id
            ));
            said = Instant::now();
        }
        tokio::select! {
            biased;
            _ = world.cancelled().cancelled() => return Err(ActionError::new("the rehearsal world shut down")),
            _ = tokio::time::sleep(DNS_POLL) => {}
        }
    }
}
