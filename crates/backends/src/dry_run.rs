//! What each action will do, call by call, without doing it: the dry run `cutover plan show`
//! prints. It routes an action the way [`crate::backend::Backends::actuator`] (and the
//! rehearsal world's actuator) does and names, in order, the calls and statements the
//! backend makes, so a reviewer sees `StopReplicationTask arn:…` or
//! `ChangeResourceRecordSets … UPSERT` before the night, not in the transcript after it.
//!
//! Keep it beside the code it describes: a change to an actuator's calls changes this list.

use cutover_core::event::Side;
use cutover_core::plan::{
    Action, DnsRecord, DnsTo, DnsWeights, Engine, FreezeMethod, MysqlFlavor, Plan, RdsResource,
    ReplicationEngine,
};

/// The calls an action makes, in order; empty for a check or a manual step (which only
/// record the decision).
pub fn calls(plan: &Plan, action: &Action) -> Vec<String> {
    match action {
        Action::None | Action::Manual { .. } => Vec::new(),
        Action::Sql { on, statement } => sql(plan, *on, statement),
        Action::Freeze { on, method } => freeze(plan, *on, *method, true),
        Action::Unfreeze { on, method } => freeze(plan, *on, *method, false),
        Action::ReplicationStop => replication(plan, false),
        Action::ReplicationStart => replication(plan, true),
        Action::Dns { to, wait } => dns(plan, to, *wait),
        Action::DnsWeights { weights, wait } => dns_weights(plan, *weights, *wait),
        Action::Http(h) => http(h),
        Action::SyncSequences { margin } => sync_sequences(plan, *margin),
        Action::Shell { command } => vec![
            format!("sh -c {}", shell_quote(command)),
            "its output lines are recorded; a non-zero exit status fails the step".into(),
        ],
    }
}

fn endpoint(plan: &Plan, side: Side) -> &cutover_core::plan::Endpoint {
    match side {
        Side::Source => &plan.source,
        Side::Target => &plan.target,
    }
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Rehearsal => "the rehearsal world's SQLite",
        Engine::Mysql => "MySQL/MariaDB",
        Engine::Postgres => "PostgreSQL",
    }
}

fn sql(plan: &Plan, on: Side, statement: &str) -> Vec<String> {
    let e = endpoint(plan, on);
    vec![format!(
        "on {} ({} {}): {}",
        on.as_str(),
        engine_name(e.engine),
        e.label,
        statement.trim()
    )]
}

fn freeze(plan: &Plan, on: Side, method: FreezeMethod, frozen: bool) -> Vec<String> {
    let e = endpoint(plan, on);
    let side = on.as_str();
    let want = if frozen { "ON" } else { "OFF" };
    if e.engine == Engine::Rehearsal {
        return vec![format!(
            "the rehearsal world's {side} database {} application writes",
            if frozen { "refuses" } else { "accepts" }
        )];
    }
    match method {
        FreezeMethod::DefaultReadOnly => {
            let mut out = vec![format!(
                "on {side} ({}): BEGIN READ WRITE; ALTER DATABASE <current database> SET default_transaction_read_only = {}; COMMIT",
                e.label,
                if frozen { "on" } else { "off" }
            )];
            if frozen {
                out.push(format!(
                    "on {side}: pg_terminate_backend() of the database's other client sessions (they reconnect read-only; replication's walsender is left alone)"
                ));
            }
            out.push(format!(
                "on {side}: pg_db_role_setting read back — default_transaction_read_only must be {}, or the step fails",
                if frozen { "on" } else { "off" }
            ));
            out
        }
        FreezeMethod::Sql => vec![
            format!("on {side} ({}): SELECT @@GLOBAL.read_only", e.label),
            format!("on {side} ({}): {}", e.label, method.statement(frozen)),
            format!(
                "on {side}, from another session: SELECT @@GLOBAL.read_only — must read {want}, or the step fails"
            ),
        ],
        FreezeMethod::ParameterGroup => {
            let (describe, group, modify) = match plan.rds.side(on) {
                Some(RdsResource::Cluster(id)) => (
                    format!("rds:DescribeDBClusters --db-cluster-identifier {id}"),
                    "its DB cluster parameter group",
                    "rds:ModifyDBClusterParameterGroup",
                ),
                Some(RdsResource::Instance(id)) => (
                    format!("rds:DescribeDBInstances --db-instance-identifier {id}"),
                    "its DB parameter group",
                    "rds:ModifyDBParameterGroup",
                ),
                None => (
                    format!("(no [rds] {side} resource: the plan validation refuses this)"),
                    "the parameter group",
                    "rds:ModifyDBParameterGroup",
                ),
            };
            let value = if frozen {
                "read_only=1".to_string()
            } else {
                "read_only restored to the value the freeze found (0 when it was the default)"
                    .to_string()
            };
            let params = if matches!(plan.rds.side(on), Some(RdsResource::Cluster(_))) {
                "rds:DescribeDBClusterParameters"
            } else {
                "rds:DescribeDBParameters"
            };
            vec![
                format!("{describe} (find {group}; a default.* group is refused)"),
                format!(
                    "refuse if the group is shared with other instances or clusters{}",
                    if plan.rds.shared_parameter_group {
                        " — allowed here: [rds] shared_parameter_group = true"
                    } else {
                        ""
                    }
                ),
                format!("{params} (read_only as it is now)"),
                format!("{modify} {value} ApplyMethod=immediate"),
                "wait until RDS reports the group in-sync on every instance concerned".into(),
                format!(
                    "on {side} ({}): SELECT @@GLOBAL.read_only until it reads {want}",
                    e.label
                ),
            ]
        }
    }
}

fn replication(plan: &Plan, start: bool) -> Vec<String> {
    let Some(r) = &plan.replication else {
        return vec!["(no [replication] section: the plan validation refuses this)".into()];
    };
    let task = &r.task;
    match r.engine {
        ReplicationEngine::Rehearsal => vec![if start {
            "the rehearsal replicator resumes from where it stopped; wait until running".into()
        } else {
            "the rehearsal replicator stops; wait until stopped".into()
        }],
        ReplicationEngine::Postgres => {
            let sub = r
                .logical
                .as_ref()
                .map_or(task.as_str(), |l| l.subscription.as_str());
            let verb = if start { "ENABLE" } else { "DISABLE" };
            vec![
                format!(
                    "on target ({}): BEGIN READ WRITE; ALTER SUBSCRIPTION {sub} {verb}; COMMIT",
                    plan.target.label
                ),
                format!(
                    "pg_stat_subscription until the apply worker has {} (at most 60s, or the step fails)",
                    if start { "started" } else { "stopped" }
                ),
            ]
        }
        ReplicationEngine::Mysql => {
            let verb = if start { "start" } else { "stop" };
            let upper = verb.to_ascii_uppercase();
            let label = &plan.target.label;
            let community = match r.channel.as_deref() {
                Some(c) => format!(
                    "{upper} REPLICA FOR CHANNEL '{c}' (MySQL 8.0.22+) / {upper} SLAVE FOR CHANNEL '{c}' (older MySQL) / {upper} SLAVE '{c}' (MariaDB)"
                ),
                None => format!(
                    "{upper} REPLICA (MySQL 8.0.22+) / {upper} SLAVE (MariaDB, older MySQL)"
                ),
            };
            let rds = match r.channel.as_deref() {
                Some(c) => format!("CALL mysql.rds_{verb}_replication_for_channel('{c}')"),
                None => format!("CALL mysql.rds_{verb}_replication"),
            };
            let statement = match r.flavor {
                MysqlFlavor::Rds => format!("on target ({label}): {rds}"),
                MysqlFlavor::Community => format!("on target ({label}): {community}"),
                MysqlFlavor::Auto => format!(
                    "on target ({label}): {rds} if the server has mysql.rds_stop_replication (RDS, Aurora), else {community}"
                ),
            };
            let want = if start { "Yes" } else { "No" };
            vec![
                statement,
                format!(
                    "SHOW REPLICA STATUS / SHOW SLAVE STATUS until the IO and SQL threads both report {want} (at most 60s, or the step fails)"
                ),
            ]
        }
        ReplicationEngine::Dms => {
            let describe = format!(
                "dms:DescribeReplicationTasks --filters replication-task-id={task} (status, ARN)"
            );
            if start {
                vec![
                    describe,
                    "if stopping: wait until stopped; if running: nothing to do".into(),
                    format!(
                        "dms:StartReplicationTask --replication-task-arn <ARN of {task}> --start-replication-task-type resume-processing (start-replication only for a task that never ran, and never during a rollback)"
                    ),
                    format!("dms:DescribeReplicationTasks until {task} is running"),
                ]
            } else {
                vec![
                    describe,
                    "if stopped or ready: nothing to do; if starting: wait until running first; if failed: the step fails".into(),
                    format!("dms:StopReplicationTask --replication-task-arn <ARN of {task}>"),
                    format!("dms:DescribeReplicationTasks until {task} is stopped"),
                ]
            }
        }
    }
}

fn sync_sequences(plan: &Plan, margin: i64) -> Vec<String> {
    let publication = plan
        .replication
        .as_ref()
        .and_then(|r| r.logical.as_ref())
        .map_or("?", |l| l.publication.as_str());
    vec![
        format!(
            "on source ({}): the last_value of every sequence owned by a column of a table in publication {publication} (pg_depend, pg_sequences)",
            plan.source.label
        ),
        format!(
            "on target ({}): for each one behind, BEGIN READ WRITE; SELECT setval('<schema>.<sequence>', <source value>{}, true); COMMIT — never lower than it is",
            plan.target.label,
            if margin > 0 {
                format!(" + {margin}")
            } else {
                String::new()
            }
        ),
    ]
}

fn dns(plan: &Plan, to: &DnsTo, wait: bool) -> Vec<String> {
    let Some(d) = &plan.dns else {
        return vec!["(no [dns] section: the plan validation refuses this)".into()];
    };
    let value = plan.dns_value(to).unwrap_or_else(|| "?".into());
    route53_change(
        plan,
        d,
        format!(
            "the rehearsal zone: UPSERT {} {} {} → {value}",
            d.name, d.record_type, d.ttl
        ),
        "the sets as they are now",
        format!(
            "DELETE the sets as read + CREATE {} {} {} → {value} (a compare-and-swap: refused if someone changed the record in between; weighted sets move the weight to the set with this value; failover sets are refused)",
            d.name, d.record_type, d.ttl
        ),
        wait,
    )
}

fn dns_weights(plan: &Plan, weights: DnsWeights, wait: bool) -> Vec<String> {
    let Some(d) = &plan.dns else {
        return vec!["(no [dns] section: the plan validation refuses this)".into()];
    };
    let what = match weights {
        DnsWeights::Set(w) => format!(
            "set {} → {} weight {}, set {} → {} weight {}",
            d.source_set, d.source, w.source, d.target_set, d.target, w.target
        ),
        DnsWeights::Previous => format!(
            "sets {} → {} and {} → {} with the weights the step's action read before its change (recorded in the transcript; nothing is sent if it never read them)",
            d.source_set, d.source, d.target_set, d.target
        ),
    };
    route53_change(
        plan,
        d,
        format!(
            "the rehearsal zone: weigh {} {} {}: {what}",
            d.name, d.record_type, d.ttl
        ),
        "the sets as they are now; their weights are recorded before any change, for the undo",
        format!(
            "DELETE the sets as read + CREATE {} {} TTL {} weighted {what} (a compare-and-swap: refused if someone changed the record in between; not sent if the weights already are these; failover, alias and sets the plan does not name are refused)",
            d.name, d.record_type, d.ttl
        ),
        wait,
    )
}

/// The calls of one Route 53 compare-and-swap change (or, in a rehearsal, the world's one
/// line): the role, the zone, the read (`read` says what it is for), the batch (`change`),
/// and the wait when the step waits.
fn route53_change(
    plan: &Plan,
    d: &DnsRecord,
    rehearsal: String,
    read: &str,
    change: String,
    wait: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if plan.is_rehearsal() {
        out.push(rehearsal);
    } else {
        if let Some(role) = &d.role_arn {
            out.push(format!(
                "sts:AssumeRole {role} (the Route 53 calls are made as this role)"
            ));
        }
        out.push(match &d.zone_id {
            Some(z) => format!("hosted zone {z} (from the plan)"),
            None => format!(
                "route53:ListHostedZonesByName for {} and each parent domain (find the zone)",
                d.name
            ),
        });
        out.push(format!(
            "route53:ListResourceRecordSets {} {} ({read})",
            d.name, d.record_type
        ));
        out.push(format!(
            "route53:ChangeResourceRecordSets, one batch: {change}"
        ));
    }
    if wait {
        out.push(if plan.is_rehearsal() {
            "wait until the change is INSYNC".into()
        } else {
            "route53:GetChange until INSYNC".into()
        });
    }
    out
}

fn http(h: &cutover_core::plan::http::HttpAction) -> Vec<String> {
    use cutover_core::plan::http::HeaderValue;
    let mut out = vec![format!(
        "HTTP {} {} (no redirects followed, timeout {}, not retried)",
        h.method,
        h.url,
        cutover_core::plan::limits::show_ms(h.timeout_ms)
    )];
    for (name, value) in &h.headers {
        out.push(match value {
            HeaderValue::Literal(v) => format!("header {name}: {v}"),
            HeaderValue::Env(var) => {
                format!("header {name}: (the value of ${var}, read when sent)")
            }
            HeaderValue::File(f) => {
                format!("header {name}: (the first line of {f}, read when sent)")
            }
        });
    }
    if let Some(body) = &h.json {
        out.push(format!("Content-Type: application/json, body {body}"));
    }
    out.push(format!(
        "succeeds on {}; the status and the first {} characters of the body (redacted) are recorded",
        h.expected(),
        cutover_runtime::action::http::EXCERPT_CHARS
    ));
    out
}

/// `command` as one single-quoted shell word.
fn shell_quote(command: &str) -> String {
    format!("'{}'", command.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_of_the_shipped_aws_plan_names_its_calls() {
        let text = include_str!("../../../plans/aws-dms-route53.toml");
        let plan = cutover_core::plan::parse("aws-dms-route53.toml", text).expect("plan parses");
        for step in &plan.steps {
            let calls = calls(&plan, &step.action);
            assert_eq!(
                calls.is_empty(),
                !step.action.changes_state(),
                "step {}: {calls:?}",
                step.id
            );
        }
        let stop = plan
            .steps
            .iter()
            .find(|s| s.action == Action::ReplicationStop)
            .expect("a stop step");
        let text = calls(&plan, &stop.action).join("\n");
        assert!(text.contains("dms:StopReplicationTask"), "{text}");
        assert!(
            text.contains(&plan.replication.as_ref().unwrap().task),
            "{text}"
        );
    }

    #[test]
    fn a_shell_command_is_quoted_as_one_word() {
        assert_eq!(shell_quote("echo 'hi' there"), r"'echo '\''hi'\'' there'");
    }
}
