//! Builds the real backends a plan names: AWS (DMS, CloudWatch, Route 53) and databases
//! (MySQL/MariaDB, PostgreSQL). Sources are read-only; the actuator exists only for `run`.
//! `watch` and `check` call `sources` and never `actuator`, so they cannot act: read-only
//! by construction.

use std::sync::Arc;

use crate::action::{ActionError, Actuator, Output, shell};
use crate::aws::{AwsActuator, AwsArgs, AwsReader};
use crate::db::{self, DbOptions, SqlActuator};
use crate::event::Side;
use crate::plan::{Action, Engine, Plan, ReplicationEngine};
use crate::source::{BoxFuture, Source};

fn uses_aws(plan: &Plan) -> bool {
    plan.replication
        .as_ref()
        .is_some_and(|r| r.engine == ReplicationEngine::Dms)
        || plan.dns.is_some()
}

fn uses_databases(plan: &Plan) -> bool {
    plan.source.engine != Engine::Rehearsal && plan.target.engine != Engine::Rehearsal
}

/// Refuses rehearsal plans: they need the embedded world, which `cutover rehearse` runs.
pub fn require_real(plan: &Plan) -> anyhow::Result<()> {
    if plan.is_rehearsal()
        || plan.source.engine == Engine::Rehearsal
        || plan.target.engine == Engine::Rehearsal
        || plan
            .replication
            .as_ref()
            .is_some_and(|r| r.engine == ReplicationEngine::Rehearsal)
    {
        anyhow::bail!(
            "plan \"{}\" uses the embedded rehearsal world; run it with `cutover rehearse --plan FILE`",
            plan.name
        );
    }
    Ok(())
}

/// Every read-only source the plan needs.
pub async fn sources(
    plan: &Plan,
    aws: &AwsArgs,
    db_opts: DbOptions,
) -> anyhow::Result<Vec<Arc<dyn Source>>> {
    let mut out: Vec<Arc<dyn Source>> = Vec::new();
    if uses_aws(plan) {
        let cfg = crate::aws::load_config(plan, aws).await?;
        out.extend(AwsReader::new(&cfg, plan).sources());
    }
    if uses_databases(plan) {
        let (source, target) = tokio::try_join!(
            db::connect(plan, Side::Source),
            db::connect(plan, Side::Target)
        )?;
        out.extend(db::sources(source, target, db_opts));
    }
    Ok(out)
}

/// The actuator for `run`: AWS for replication and DNS, SQL on the databases, shell.
pub async fn actuator(plan: &Plan, aws: &AwsArgs) -> anyhow::Result<Arc<dyn Actuator>> {
    let aws = if uses_aws(plan) {
        let cfg = crate::aws::load_config(plan, aws).await?;
        Some(AwsActuator::new(&cfg))
    } else {
        None
    };
    let sql = if uses_databases(plan) {
        let (source, target) = tokio::try_join!(
            db::connect(plan, Side::Source),
            db::connect(plan, Side::Target)
        )?;
        Some(SqlActuator::new(source, target))
    } else {
        None
    };
    Ok(Arc::new(Composite { aws, sql }))
}

/// Routes each action to the backend that carries it out.
struct Composite {
    aws: Option<AwsActuator>,
    sql: Option<SqlActuator>,
}

impl Actuator for Composite {
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async move {
            match action {
                Action::Shell { command } => shell::run(command, out).await,
                Action::Sql { .. } => match &self.sql {
                    Some(sql) => sql.run(plan, action, out).await,
                    None => Err(ActionError::new(
                        "no database connection for a SQL action: give [source] and [target] a mysql or postgres url",
                    )),
                },
                Action::ReplicationStop | Action::ReplicationStart | Action::Dns { .. } => {
                    match &self.aws {
                        Some(aws) => aws.run(plan, action, out).await,
                        None => Err(ActionError::new(
                            "no AWS backend for this action: add [replication] engine = \"dms\" or a [dns] section",
                        )),
                    }
                }
                Action::None => Ok("checked".into()),
                Action::Manual { .. } => Ok("confirmed done by the operator".into()),
            }
        })
    }
}
