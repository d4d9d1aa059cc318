//! `cutover plan show PLAN [--json] [--check]`: the dry run of a whole plan (as Vitess
//! `SwitchTraffic --dry-run`). Every step in order with its gates and their freshness, what
//! its action will do in plain words and the exact calls or statements, its undo, phrase,
//! timeout and approvals; the abort conditions; the rollback order. With `--check` it also
//! polls the sources once (as `check`) and marks each gate as it would be now.
//!
//! Pure over the plan (and, with `--check`, one poll's events): nothing is changed.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, Ts};
use crate::plan::{Action, Endpoint, GuardAction, Input, Plan};
use crate::state::GateState;

/// The whole dry run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanShow {
    pub plan: String,
    pub plan_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: EndpointShow,
    pub target: EndpointShow,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationShow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsShow>,
    pub steps: Vec<StepShow>,
    pub aborts: Vec<AbortShow>,
    /// `max_downtime`: the budget from the freeze's start to the unfreeze, and what happens
    /// when it is spent (a warning comes at 80 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetShow>,
    /// `deadline` / `window`: no forward step starts after it (rollback always may).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineShow>,
    /// The undos a full rollback would run, newest first (a rollback undoes only the steps
    /// that ran).
    pub rollback_order: Vec<RollbackShow>,
    /// Steps a rollback cannot undo (`irreversible = true`).
    pub irreversible: Vec<String>,
    /// When the gates were evaluated (`--check`), ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Ts>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointShow {
    pub engine: String,
    pub label: String,
    /// The URL without any password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplicationShow {
    pub engine: String,
    pub task: String,
    /// The default freshness of the lag and gap inputs (`replication.lag_s`,
    /// `replication.behind_*`) with this engine, for gates that do not say `fresh`.
    pub lag_fresh_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsShow {
    pub name: String,
    pub record_type: String,
    pub ttl: u64,
    pub source: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepShow {
    /// 1-based, as the checklist numbers steps.
    pub number: usize,
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub gates: Vec<GateShow>,
    pub action: ActionShow,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<ActionShow>,
    pub irreversible: bool,
    pub confirm: String,
    pub timeout_ms: i64,
    pub approvals: u32,
    pub on_timeout: GuardAction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateShow {
    pub gate: String,
    pub input: String,
    pub fresh_ms: i64,
    /// The freshness bound is the input's default (the gate does not say `fresh`).
    pub fresh_default: bool,
    pub sustain_ms: i64,
    /// With `--check`: the gate's state on one poll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<GateNow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateNow {
    pub state: GateState,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionShow {
    /// The action's kind as the plan spells it.
    pub kind: &'static str,
    /// One line in plain words (what the checklist shows).
    pub summary: String,
    /// The exact calls and statements, in order.
    pub calls: Vec<String>,
    /// Whether running it twice does no harm (resume re-runs it without asking).
    pub idempotent: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AbortShow {
    pub id: String,
    pub when: String,
    pub fresh_ms: i64,
    pub fresh_default: bool,
    pub sustain_ms: i64,
    /// Armed from the start of this step; `None`: from the session's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Armed through the end of this step; `None`: until the session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    pub then: GuardAction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetShow {
    pub max_downtime_ms: i64,
    pub warn_after_ms: i64,
    pub on_budget: GuardAction,
    /// The steps whose window it counts: the freeze's start to the unfreeze's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_step: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineShow {
    /// An instant, ms since the epoch.
    At(Ts),
    /// This long after the session starts.
    WindowMs(i64),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RollbackShow {
    pub step: String,
    pub undo: String,
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::None => "none",
        Action::Manual { .. } => "manual",
        Action::Sql { .. } => "sql",
        Action::Freeze { .. } => "freeze",
        Action::Unfreeze { .. } => "unfreeze",
        Action::ReplicationStop => "replication stop",
        Action::ReplicationStart => "replication start",
        Action::Dns { .. } => "dns",
        Action::DnsWeights { .. } => "dns weights",
        Action::Shell { .. } => "shell",
        Action::Http(_) => "http",
        Action::SyncSequences { .. } => "sync-sequences",
    }
}

fn action_show(plan: &Plan, action: &Action) -> ActionShow {
    ActionShow {
        kind: kind(action),
        summary: action.describe(plan),
        calls: cutover_backends::dry_run::calls(plan, action),
        idempotent: action.is_idempotent(),
    }
}

fn endpoint_show(e: &Endpoint) -> EndpointShow {
    EndpointShow {
        engine: format!("{:?}", e.engine).to_ascii_lowercase(),
        label: e.label.clone(),
        url: e.url.as_deref().map(crate::redact::url),
    }
}

/// The dry run of `plan`. `events`: one poll of its sources (`--check`), folded to mark each
/// gate as it would be at `now`; `None`: no gate states.
pub fn show(plan: &Arc<Plan>, poll: Option<(&[Event], Ts, Ts)>) -> PlanShow {
    let state =
        poll.map(|(events, started, now)| crate::check::fold_poll(plan, started, events, now));
    let step_id = |i: usize| plan.steps.get(i).map(|s| s.id.clone());
    let steps = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let now = state.as_ref().map(|st| st.step_gates(i));
            StepShow {
                number: i + 1,
                id: s.id.clone(),
                title: s.title.clone(),
                description: s.description.clone(),
                gates: s
                    .gates
                    .iter()
                    .enumerate()
                    .map(|(g, def)| GateShow {
                        gate: def.text.clone(),
                        input: def.input.to_string(),
                        fresh_ms: def.fresh_ms(),
                        fresh_default: def.fresh_ms.is_none(),
                        sustain_ms: def.sustain_ms,
                        now: now.as_ref().and_then(|n| n.get(g)).map(|n| GateNow {
                            state: n.state,
                            reason: n.reason.clone(),
                        }),
                    })
                    .collect(),
                action: action_show(plan, &s.action),
                undo: s.undo.as_ref().map(|u| action_show(plan, u)),
                irreversible: s.irreversible,
                confirm: s.confirm.clone(),
                timeout_ms: s.timeout_ms,
                approvals: s.approvals,
                on_timeout: s.on_timeout,
            }
        })
        .collect();
    let aborts = plan
        .aborts
        .iter()
        .map(|a| AbortShow {
            id: a.id.clone(),
            when: a.when.text.clone(),
            fresh_ms: a.when.fresh_ms(),
            fresh_default: a.when.fresh_ms.is_none(),
            sustain_ms: a.when.sustain_ms,
            from: a.from.and_then(step_id),
            until: a.until.and_then(step_id),
            then: a.then,
        })
        .collect();
    let rollback_order = plan
        .steps
        .iter()
        .rev()
        .filter_map(|s| {
            s.undo.as_ref().map(|u| RollbackShow {
                step: s.id.clone(),
                undo: u.describe(plan),
            })
        })
        .collect();
    let (freeze, unfreeze) = plan.downtime_steps();
    PlanShow {
        budget: plan.budget.as_ref().map(|b| BudgetShow {
            max_downtime_ms: b.max_ms,
            warn_after_ms: b.warn_after_ms(),
            on_budget: b.on_budget,
            from_step: freeze.and_then(step_id),
            until_step: unfreeze.and_then(step_id),
        }),
        deadline: plan.deadline.as_ref().map(|d| match d {
            crate::plan::Deadline::At(at) => DeadlineShow::At(*at),
            crate::plan::Deadline::Window(ms) => DeadlineShow::WindowMs(*ms),
        }),
        plan: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        description: plan.description.clone(),
        source: endpoint_show(&plan.source),
        target: endpoint_show(&plan.target),
        replication: plan.replication.as_ref().map(|r| ReplicationShow {
            engine: r.engine.as_str().into(),
            task: r.task.clone(),
            lag_fresh_ms: Input::Replication(crate::plan::ReplicationInput::LagS)
                .default_fresh_ms_for(Some(r.engine)),
        }),
        dns: plan.dns.as_ref().map(|d| DnsShow {
            name: d.name.clone(),
            record_type: d.record_type.clone(),
            ttl: d.ttl,
            source: d.source.clone(),
            target: d.target.clone(),
            zone_id: d.zone_id.clone(),
            role_arn: d.role_arn.clone(),
        }),
        steps,
        aborts,
        rollback_order,
        irreversible: plan
            .steps
            .iter()
            .filter(|s| s.irreversible)
            .map(|s| s.id.clone())
            .collect(),
        checked_at: poll.map(|(_, _, now)| now),
    }
}

fn dur(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
    .to_string()
}

fn mark(state: GateState) -> &'static str {
    match state {
        GateState::Green => "green",
        GateState::Red => "RED",
        GateState::Unknown => "UNKNOWN",
    }
}

/// The dry run as pretty JSON, or as text for a terminal (and for review in a pull request).
pub fn render(show: &PlanShow, json: bool) -> String {
    if json {
        // Plain data; serialization cannot fail.
        return serde_json::to_string_pretty(show).unwrap_or_default() + "\n";
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Plan \"{}\"  sha256:{}",
        show.plan,
        short(&show.plan_hash)
    );
    if let Some(d) = &show.description {
        for line in d.lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    for (side, e) in [("source", &show.source), ("target", &show.target)] {
        let _ = writeln!(
            o,
            "{side:<12} {} \"{}\"{}",
            e.engine,
            e.label,
            e.url
                .as_deref()
                .map(|u| format!("  {u}"))
                .unwrap_or_default()
        );
    }
    if let Some(r) = &show.replication {
        let _ = writeln!(o, "{:<12} {} {}", "replication", r.engine, r.task);
        let _ = writeln!(
            o,
            "{:<12} lag and gap gates default to fresh {} ({})",
            "",
            dur(r.lag_fresh_ms),
            match r.engine.as_str() {
                "mysql" | "postgres" => "read directly from both servers every second",
                "dms" => "DMS's lag is CloudWatch's, published by the minute",
                _ => "the rehearsal models DMS's CloudWatch figures",
            }
        );
    }
    if let Some(d) = &show.dns {
        let _ = writeln!(
            o,
            "{:<12} {} {} ttl {}s: source {} → target {}{}{}",
            "dns",
            d.name,
            d.record_type,
            d.ttl,
            d.source,
            d.target,
            d.zone_id
                .as_deref()
                .map(|z| format!(", zone {z}"))
                .unwrap_or_default(),
            d.role_arn
                .as_deref()
                .map(|r| format!(", as {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(at) = show.checked_at {
        let _ = writeln!(o, "gates marked as one poll found them at {}", utc(at));
    }
    let total = show.steps.len();
    for s in &show.steps {
        let _ = writeln!(o, "\nStep {}/{total}  {} — {}", s.number, s.id, s.title);
        if let Some(d) = &s.description {
            for line in d.lines() {
                let _ = writeln!(o, "  {line}");
            }
        }
        if s.gates.is_empty() {
            let _ = writeln!(o, "  gates: none");
        } else {
            let _ = writeln!(
                o,
                "  gates (each green on a reading within its freshness, the input's default unless it says):"
            );
            for g in &s.gates {
                let now = g
                    .now
                    .as_ref()
                    .map(|n| {
                        if n.state == GateState::Green {
                            format!("  [{}]", mark(n.state))
                        } else {
                            format!("  [{}: {}]", mark(n.state), n.reason)
                        }
                    })
                    .unwrap_or_default();
                let fresh = if g.fresh_default {
                    format!("  (fresh {})", dur(g.fresh_ms))
                } else {
                    String::new()
                };
                let _ = writeln!(o, "    {}{fresh}{now}", g.gate);
            }
        }
        action_text(&mut o, "action", &s.action);
        match &s.undo {
            Some(u) => action_text(&mut o, "undo", u),
            None if s.irreversible => {
                let _ = writeln!(o, "  undo: none — irreversible (a rollback leaves it done)");
            }
            None => {
                let _ = writeln!(o, "  undo: nothing to undo");
            }
        }
        let _ = writeln!(
            o,
            "  confirm: type \"{}\" · timeout {} (then {}) · approvals {}",
            s.confirm,
            dur(s.timeout_ms),
            s.on_timeout.as_str(),
            s.approvals
        );
    }
    let _ = writeln!(o, "\nAbort conditions (watched between steps)");
    if show.aborts.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for a in &show.aborts {
        let _ = writeln!(
            o,
            "  {}: when {}{}, {} through {} → {}",
            a.id,
            a.when,
            if a.fresh_default {
                format!(" (fresh {})", dur(a.fresh_ms))
            } else {
                String::new()
            },
            a.from
                .as_deref()
                .map(|s| format!("from step \"{s}\""))
                .unwrap_or_else(|| "from the session's start".into()),
            a.until
                .as_deref()
                .map(|s| format!("step \"{s}\""))
                .unwrap_or_else(|| "the end".into()),
            a.then.as_str()
        );
    }
    let _ = writeln!(o, "\nDowntime budget and deadline");
    match &show.budget {
        Some(b) => {
            let _ = writeln!(
                o,
                "  max_downtime {} counted {} → {}: warned at {} (80 %), then {}",
                dur(b.max_downtime_ms),
                b.from_step
                    .as_deref()
                    .map(|s| format!("from the start of \"{s}\""))
                    .unwrap_or_else(|| "from the freeze".into()),
                b.until_step
                    .as_deref()
                    .map(|s| format!("the end of \"{s}\""))
                    .unwrap_or_else(|| "the unfreeze".into()),
                dur(b.warn_after_ms),
                b.on_budget.as_str()
            );
        }
        None => {
            let _ = writeln!(o, "  no max_downtime");
        }
    }
    match &show.deadline {
        Some(DeadlineShow::At(at)) => {
            let _ = writeln!(
                o,
                "  deadline {}: no forward step starts after it",
                utc(*at)
            );
        }
        Some(DeadlineShow::WindowMs(ms)) => {
            let _ = writeln!(
                o,
                "  window {} from the session's start: no forward step starts after it",
                dur(*ms)
            );
        }
        None => {
            let _ = writeln!(o, "  no deadline");
        }
    }
    let _ = writeln!(
        o,
        "\nRollback order (newest first; only the steps that ran are undone)"
    );
    if show.rollback_order.is_empty() {
        let _ = writeln!(o, "  nothing to undo");
    }
    for (i, r) in show.rollback_order.iter().enumerate() {
        let _ = writeln!(o, "  {}. {}: {}", i + 1, r.step, r.undo);
    }
    if !show.irreversible.is_empty() {
        let _ = writeln!(
            o,
            "  irreversible, left as they are: {}",
            show.irreversible.join(", ")
        );
    }
    o
}

fn action_text(o: &mut String, label: &str, a: &ActionShow) {
    let _ = writeln!(
        o,
        "  {label}: {}{}",
        a.summary,
        if a.idempotent || a.calls.is_empty() {
            ""
        } else {
            "  (not idempotent: resume asks before running it again)"
        }
    );
    for (i, c) in a.calls.iter().enumerate() {
        let _ = writeln!(o, "    {}. {c}", i + 1);
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn utc(ms: Ts) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}
