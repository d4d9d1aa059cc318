//! Builds the real backends a plan names: AWS (DMS, CloudWatch, Route 53) and databases
//! (MySQL/MariaDB, PostgreSQL). Sources are read-only; the actuator exists only for `run`.
//! `watch` and `check` call `Backends::sources` and never `Backends::actuator`, so they
//! cannot act: read-only by construction.

use std::sync::Arc;

use crate::aws::{AwsActuator, AwsOverrides, AwsReader, AwsSession};
use crate::db::{self, DbOptions, LogicalActuator, LogicalSource, SqlActuator};
use cutover_core::event::{AwsIdentity, Side};
use cutover_core::plan::{Action, Engine, FreezeMethod, Plan, ReplicationEngine};
use cutover_runtime::action::{ActionError, Actuator, Output, shell};
use cutover_runtime::source::{BoxFuture, Source};

fn uses_aws(plan: &Plan) -> bool {
    plan.replication
        .as_ref()
        .is_some_and(|r| r.engine == ReplicationEngine::Dms)
        || plan.dns.is_some()
        || plan.rds.source.is_some()
        || plan.rds.target.is_some()
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

/// The connections a real plan needs, made once: the AWS configuration (credentials
/// checked) and both databases. Sources and, for `run`, the actuator are built from them.
pub struct Backends {
    aws: Option<AwsSession>,
    dbs: Option<(db::Db, db::Db)>,
}

impl Backends {
    /// Loads the AWS configuration and connects to both databases, as the plan needs.
    pub async fn connect(plan: &Plan, aws: &AwsOverrides) -> anyhow::Result<Backends> {
        let aws = if uses_aws(plan) {
            Some(crate::aws::load_config(plan, aws).await?)
        } else {
            None
        };
        let dbs = if uses_databases(plan) {
            Some(tokio::try_join!(
                db::connect(plan, Side::Source),
                db::connect(plan, Side::Target)
            )?)
        } else {
            None
        };
        Ok(Backends { aws, dbs })
    }

    /// Who the AWS calls are made as (`sts:GetCallerIdentity` at connect), when the plan
    /// uses AWS.
    pub fn aws_identity(&self) -> Option<&AwsIdentity> {
        self.aws.as_ref().map(|a| &a.identity)
    }

    /// What the operator should hear before the window (credentials expiring inside it).
    pub fn warnings(&self) -> Vec<String> {
        self.aws
            .as_ref()
            .map(|a| a.warnings.clone())
            .unwrap_or_default()
    }

    /// Makes `dns.status` follow the last Route 53 change recorded in `events` (a transcript
    /// of this plan): resume, and check and watch started after a driver's flip.
    pub fn follow_dns_change(&self, plan: &Plan, events: &[cutover_core::event::Event]) {
        if let Some(id) = crate::aws::route53::last_change_id(events) {
            self.follow_dns_change_id(plan, &id);
        }
    }

    /// Makes `dns.status` follow this Route 53 change.
    pub fn follow_dns_change_id(&self, plan: &Plan, id: &str) {
        if let (Some(_), Some(record)) = (&self.aws, &plan.dns) {
            crate::aws::ChangeTracker::for_record(&record.name).record(id);
        }
    }

    /// Every read-only source the plan needs.
    pub fn sources(&self, plan: &Plan, db_opts: DbOptions) -> Vec<Arc<dyn Source>> {
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        if let Some(aws) = &self.aws {
            out.extend(AwsReader::with_tuning(&aws.sdk, plan, aws.tuning.clone()).sources());
        }
        if let Some((source, target)) = &self.dbs {
            if let Some(r) = plan
                .replication
                .as_ref()
                .filter(|r| r.engine == ReplicationEngine::Mysql)
            {
                out.push(Arc::new(db::BinlogSource::new(
                    source.clone(),
                    target.clone(),
                    r,
                )));
            }
            out.extend(db::sources(source.clone(), target.clone(), db_opts));
            if let Some(names) = plan.replication.as_ref().and_then(|r| r.logical.clone()) {
                out.push(Arc::new(LogicalSource::new(
                    source.clone(),
                    target.clone(),
                    names,
                )));
            }
        }
        out.extend(cutover_runtime::source::probe::sources(&plan.probes));
        out
    }

    /// The actuator for `run`: AWS for DMS and DNS, SQL, write freezes and the native
    /// replica's stop/start on the databases, shell.
    /// `watch` and `check` never call it.
    pub fn actuator(&self) -> Arc<dyn Actuator> {
        Arc::new(Composite {
            aws: self
                .aws
                .as_ref()
                .map(|a| AwsActuator::with_tuning(&a.sdk, a.tuning.clone())),
            sql: self
                .dbs
                .as_ref()
                .map(|(source, target)| SqlActuator::new(source.clone(), target.clone())),
            logical: self
                .dbs
                .as_ref()
                .map(|(source, target)| LogicalActuator::new(source.clone(), target.clone())),
        })
    }
}

/// Routes each action to the backend that carries it out.
struct Composite {
    aws: Option<AwsActuator>,
    sql: Option<SqlActuator>,
    logical: Option<LogicalActuator>,
}

impl Composite {
    /// PostgreSQL logical replication: the subscription and the sequences, on the target.
    async fn logical(
        &self,
        plan: &Plan,
        action: &Action,
        out: &Output,
    ) -> Result<String, ActionError> {
        let names = plan.replication.as_ref().and_then(|r| r.logical.as_ref());
        let (Some(actuator), Some(names)) = (&self.logical, names) else {
            return Err(ActionError::new(
                "this action needs [replication] engine = \"postgres\" with publication and subscription, and postgres urls for [source] and [target]",
            ));
        };
        match action {
            Action::ReplicationStop => actuator.set_enabled(names, false, out).await,
            Action::ReplicationStart => actuator.set_enabled(names, true, out).await,
            Action::SyncSequences { margin } => actuator.sync_sequences(names, *margin, out).await,
            other => Err(ActionError::new(format!(
                "not a postgres replication action: {}",
                other.describe(plan)
            ))),
        }
    }
}

impl Composite {
    /// DMS tasks and Route 53 records: the AWS actuator.
    async fn route53_or_dms(
        &self,
        plan: &Plan,
        action: &Action,
        out: &Output,
    ) -> Result<String, ActionError> {
        match &self.aws {
            Some(aws) => aws.run(plan, action, out).await,
            None => Err(ActionError::new(
                "no AWS backend for this action: add [replication] engine = \"dms\" or a [dns] section",
            )),
        }
    }
}

impl Composite {
    /// The `parameter-group` freeze: the parameter group through RDS, then the proof on the
    /// database's own connection.
    async fn parameter_group(
        &self,
        plan: &Plan,
        on: Side,
        frozen: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let (Some(aws), Some(sql)) = (&self.aws, &self.sql) else {
            return Err(ActionError::new(
                "a parameter-group freeze needs AWS ([aws], [rds]) and the database connection ([source]/[target] url)",
            ));
        };
        let group = aws.parameter_group_read_only(plan, on, frozen, out).await?;
        let proof = sql
            .await_read_only(on, frozen, aws.read_only_wait(), aws.action_poll(), out)
            .await?;
        Ok(format!("{group}; {proof}"))
    }
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
                Action::Http(h) => cutover_runtime::action::http::run(h, out).await,
                Action::Freeze {
                    on,
                    method: FreezeMethod::ParameterGroup,
                } => self.parameter_group(plan, *on, true, out).await,
                Action::Unfreeze {
                    on,
                    method: FreezeMethod::ParameterGroup,
                } => self.parameter_group(plan, *on, false, out).await,
                Action::Sql { .. } | Action::Freeze { .. } | Action::Unfreeze { .. } => {
                    match &self.sql {
                        Some(sql) => sql.run(plan, action, out).await,
                        None => Err(ActionError::new(
                            "no database connection for a SQL or freeze action: give [source] and [target] a mysql or postgres url",
                        )),
                    }
                }
                // Replication actions go to the plan's engine; each engine is one arm.
                Action::ReplicationStop | Action::ReplicationStart => {
                    match plan.replication.as_ref().map(|r| r.engine) {
                        Some(ReplicationEngine::Dms) => {
                            self.route53_or_dms(plan, action, out).await
                        }
                        Some(ReplicationEngine::Mysql) => match &self.sql {
                            Some(sql) => sql.replica_control(plan, action, out).await,
                            None => Err(ActionError::new(
                                "engine = \"mysql\" needs both databases: give [source] and [target] a mysql url",
                            )),
                        },
                        Some(ReplicationEngine::Postgres) => self.logical(plan, action, out).await,
                        Some(ReplicationEngine::Rehearsal) => Err(ActionError::new(
                            "the rehearsal replicator runs only inside `cutover rehearse`; give [replication] a real engine (dms, mysql) for `cutover run`",
                        )),
                        None => Err(ActionError::new(
                            "a replication action needs a [replication] section naming the engine",
                        )),
                    }
                }
                Action::SyncSequences { .. } => self.logical(plan, action, out).await,
                Action::Dns { .. } | Action::DnsWeights { .. } => {
                    self.route53_or_dms(plan, action, out).await
                }
                Action::None => Ok("checked".into()),
                Action::Manual { .. } => Ok("confirmed done by the operator".into()),
            }
        })
    }
}
