//! The write freeze on managed databases (`method = "parameter-group"`): RDS and Aurora
//! refuse `SET GLOBAL read_only`, so the freeze sets `read_only = 1` in the instance's DB
//! parameter group (or the Aurora cluster's DB cluster parameter group) with
//! `ApplyMethod=immediate`, and waits until RDS reports the group in sync on every instance
//! concerned. The SQL actuator then proves it with `SELECT @@GLOBAL.read_only` (see
//! `backend.rs`). The unfreeze restores the value the freeze found (or `0` when the group
//! held the default, which on a writer means writable).
//!
//! A parameter group shared with instances (or clusters) other than the plan's would freeze
//! them too: refused unless `[rds] shared_parameter_group = true`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::types::{ApplyMethod, Parameter};

use super::Tuning;
use super::error::describe;
use cutover_core::event::Side;
use cutover_core::plan::{Plan, RdsResource};
use cutover_runtime::action::{ActionError, Output};

/// Pages of instances, clusters or parameters one call may read (100 a page).
const MAX_PAGES: usize = 50;

const READ_ONLY: &str = "read_only";

fn fail(msg: impl Into<String>) -> ActionError {
    ActionError::new(msg)
}

/// Where a resource's `read_only` lives and which instances apply it.
struct Group {
    name: String,
    cluster: bool,
}

/// Changes `read_only` in RDS parameter groups; remembers what it found, for the unfreeze.
#[derive(Clone, Debug)]
pub struct ParameterGroups {
    rds: aws_sdk_rds::Client,
    tuning: Tuning,
    /// Parameter group -> the `read_only` value before this process froze it (`None`: the
    /// engine default).
    before: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl ParameterGroups {
    pub fn new(rds: aws_sdk_rds::Client, tuning: Tuning) -> Self {
        ParameterGroups {
            rds,
            tuning,
            before: Arc::default(),
        }
    }

    /// Freezes (`frozen`) or restores `read_only` in the side's parameter group and waits
    /// until it is in sync. The proof on the connection is the caller's.
    pub async fn set_read_only(
        &self,
        plan: &Plan,
        side: Side,
        frozen: bool,
        out: &Output,
    ) -> Result<String, ActionError> {
        let resource = plan.rds.side(side).ok_or_else(|| {
            fail(format!(
                "the plan's [rds] section names no {} resource; the plan validation should have refused it",
                side.as_str()
            ))
        })?;
        let group = self.group_of(resource).await?;
        self.refuse_shared(plan, resource, &group).await?;
        let current = self.current_value(&group).await?;
        let value = if frozen {
            // A second freeze keeps the first one's "before", not its own 1.
            self.before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(group.name.clone())
                .or_insert(current.clone());
            "1".to_string()
        } else {
            let remembered = self
                .before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&group.name);
            match remembered {
                Some(Some(v)) if v != "1" => v,
                // The engine default ({TrueIfReplica} on RDS MySQL) is 0 on a writer.
                _ => "0".to_string(),
            }
        };
        let kind = if group.cluster {
            "DB cluster parameter group"
        } else {
            "DB parameter group"
        };
        out.line(format!(
            "{kind} {} of {}: read_only was {}; setting {value} (ApplyMethod=immediate)",
            group.name,
            resource.id(),
            current.as_deref().unwrap_or("the engine default")
        ));
        self.modify(&group, &value).await?;
        let waited = self.wait_in_sync(resource, &group, out).await?;
        Ok(format!(
            "read_only = {value} in {kind} {} (in sync after {})",
            group.name,
            humantime::format_duration(Duration::from_secs(waited.as_secs()))
        ))
    }

    /// DescribeDBInstances: one instance, or a page of all of them.
    async fn instances(
        &self,
        id: Option<&str>,
        marker: Option<String>,
    ) -> Result<DescribeDbInstancesOutput, String> {
        self.rds
            .describe_db_instances()
            .set_db_instance_identifier(id.map(String::from))
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| describe("RDS DescribeDBInstances", "rds:DescribeDBInstances", &e).message)
    }

    /// DescribeDBClusters: one cluster, or a page of all of them.
    async fn clusters(
        &self,
        id: Option<&str>,
        marker: Option<String>,
    ) -> Result<DescribeDbClustersOutput, String> {
        self.rds
            .describe_db_clusters()
            .set_db_cluster_identifier(id.map(String::from))
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| describe("RDS DescribeDBClusters", "rds:DescribeDBClusters", &e).message)
    }

    async fn group_of(&self, resource: &RdsResource) -> Result<Group, ActionError> {
        match resource {
            RdsResource::Instance(id) => {
                let out = self.instances(Some(id), None).await.map_err(fail)?;
                let instance = out.db_instances().first().ok_or_else(|| {
                    fail(format!(
                        "RDS: no DB instance \"{id}\" in this account and region"
                    ))
                })?;
                if let Some(cluster) = instance.db_cluster_identifier() {
                    return Err(fail(format!(
                        "RDS: {id} is a member of Aurora cluster {cluster}; its read_only is the cluster's: write [rds] {{ cluster = \"{cluster}\" }}"
                    )));
                }
                let name = instance
                    .db_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_name())
                    .ok_or_else(|| fail(format!("RDS: {id} reports no DB parameter group")))?;
                refuse_default(name)?;
                Ok(Group {
                    name: name.to_string(),
                    cluster: false,
                })
            }
            RdsResource::Cluster(id) => {
                let out = self.clusters(Some(id), None).await.map_err(fail)?;
                let cluster = out.db_clusters().first().ok_or_else(|| {
                    fail(format!(
                        "RDS: no DB cluster \"{id}\" in this account and region"
                    ))
                })?;
                let name = cluster.db_cluster_parameter_group().ok_or_else(|| {
                    fail(format!("RDS: {id} reports no DB cluster parameter group"))
                })?;
                refuse_default(name)?;
                Ok(Group {
                    name: name.to_string(),
                    cluster: true,
                })
            }
        }
    }

    /// Other instances (or clusters) on the same group, unless the plan allows it.
    async fn refuse_shared(
        &self,
        plan: &Plan,
        resource: &RdsResource,
        group: &Group,
    ) -> Result<(), ActionError> {
        if plan.rds.shared_parameter_group {
            return Ok(());
        }
        let mut others = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if group.cluster {
                let out = self.clusters(None, marker.take()).await.map_err(fail)?;
                others.extend(
                    out.db_clusters()
                        .iter()
                        .filter(|c| c.db_cluster_parameter_group() == Some(group.name.as_str()))
                        .filter_map(|c| c.db_cluster_identifier())
                        .filter(|id| *id != resource.id())
                        .map(String::from),
                );
                marker = out.marker().map(String::from);
            } else {
                let out = self.instances(None, marker.take()).await.map_err(fail)?;
                others.extend(
                    out.db_instances()
                        .iter()
                        .filter(|i| {
                            i.db_parameter_groups()
                                .iter()
                                .any(|g| g.db_parameter_group_name() == Some(group.name.as_str()))
                        })
                        .filter_map(|i| i.db_instance_identifier())
                        .filter(|id| *id != resource.id())
                        .map(String::from),
                );
                marker = out.marker().map(String::from);
            }
            if marker.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        if others.is_empty() {
            return Ok(());
        }
        others.sort();
        Err(fail(format!(
            "parameter group {} is shared with {} ({}): setting read_only there would freeze them too; give {} a parameter group of its own, or set [rds] shared_parameter_group = true if freezing them all is intended",
            group.name,
            if group.cluster {
                "other clusters"
            } else {
                "other instances"
            },
            others.join(", "),
            resource.id()
        )))
    }

    /// `read_only` as the group holds it (`None`: the engine default).
    async fn current_value(&self, group: &Group) -> Result<Option<String>, ActionError> {
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let (params, next) = if group.cluster {
                let out = self
                    .rds
                    .describe_db_cluster_parameters()
                    .db_cluster_parameter_group_name(&group.name)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        fail(
                            describe(
                                "RDS DescribeDBClusterParameters",
                                "rds:DescribeDBClusterParameters",
                                &e,
                            )
                            .message,
                        )
                    })?;
                (out.parameters().to_vec(), out.marker().map(String::from))
            } else {
                let out = self
                    .rds
                    .describe_db_parameters()
                    .db_parameter_group_name(&group.name)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        fail(
                            describe("RDS DescribeDBParameters", "rds:DescribeDBParameters", &e)
                                .message,
                        )
                    })?;
                (out.parameters().to_vec(), out.marker().map(String::from))
            };
            if let Some(p) = params
                .iter()
                .find(|p| p.parameter_name() == Some(READ_ONLY))
            {
                return Ok(p.parameter_value().map(String::from));
            }
            match next {
                Some(m) if !m.is_empty() => marker = Some(m),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn modify(&self, group: &Group, value: &str) -> Result<(), ActionError> {
        let parameter = Parameter::builder()
            .parameter_name(READ_ONLY)
            .parameter_value(value)
            .apply_method(ApplyMethod::Immediate)
            .build();
        let result = if group.cluster {
            self.rds
                .modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&group.name)
                .parameters(parameter)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    describe(
                        "RDS ModifyDBClusterParameterGroup",
                        "rds:ModifyDBClusterParameterGroup",
                        &e,
                    )
                    .message
                })
        } else {
            self.rds
                .modify_db_parameter_group()
                .db_parameter_group_name(&group.name)
                .parameters(parameter)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    describe(
                        "RDS ModifyDBParameterGroup",
                        "rds:ModifyDBParameterGroup",
                        &e,
                    )
                    .message
                })
        };
        result.map_err(fail)
    }

    /// Until every instance concerned reports the group `in-sync`, bounded by `task_wait`.
    async fn wait_in_sync(
        &self,
        resource: &RdsResource,
        group: &Group,
        out: &Output,
    ) -> Result<Duration, ActionError> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let statuses = self.apply_statuses(resource, group).await;
            match &statuses {
                Ok(s) if !s.is_empty() && s.iter().all(|(_, st)| st == "in-sync") => {
                    out.line(format!("{} is in sync on {}", group.name, names(s)));
                    return Ok(started.elapsed());
                }
                Ok(s) => {
                    let now = s
                        .iter()
                        .map(|(i, st)| format!("{i} {st}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if now != last {
                        out.line(format!("{}: {now}", group.name));
                        last = now;
                    }
                }
                Err(e) => out.line(format!("{e}; retrying")),
            }
            if started.elapsed() >= self.tuning.task_wait {
                return Err(fail(format!(
                    "{} is not in sync after {} ({last}); check the instances in the RDS console",
                    group.name,
                    humantime::format_duration(self.tuning.task_wait)
                )));
            }
            tokio::time::sleep(self.tuning.action_poll).await;
        }
    }

    /// (instance, apply status) for each instance that applies the group.
    async fn apply_statuses(
        &self,
        resource: &RdsResource,
        group: &Group,
    ) -> Result<Vec<(String, String)>, String> {
        match resource {
            RdsResource::Instance(id) => {
                let out = self.instances(Some(id), None).await?;
                Ok(out
                    .db_instances()
                    .iter()
                    .flat_map(|i| {
                        i.db_parameter_groups()
                            .iter()
                            .filter(|g| g.db_parameter_group_name() == Some(group.name.as_str()))
                            .map(|g| {
                                (
                                    i.db_instance_identifier().unwrap_or(id).to_string(),
                                    g.parameter_apply_status().unwrap_or("unknown").to_string(),
                                )
                            })
                    })
                    .collect())
            }
            RdsResource::Cluster(id) => {
                let out = self.clusters(Some(id), None).await?;
                Ok(out
                    .db_clusters()
                    .iter()
                    .flat_map(|c| c.db_cluster_members())
                    .map(|m| {
                        (
                            m.db_instance_identifier().unwrap_or("?").to_string(),
                            m.db_cluster_parameter_group_status()
                                .unwrap_or("unknown")
                                .to_string(),
                        )
                    })
                    .collect())
            }
        }
    }
}

fn names(statuses: &[(String, String)]) -> String {
    statuses
        .iter()
        .map(|(i, _)| i.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// RDS refuses to modify a `default.*` group, and it is shared by definition.
fn refuse_default(name: &str) -> Result<(), ActionError> {
    if name.starts_with("default.") {
        return Err(fail(format!(
            "parameter group {name} is an RDS default group: it cannot be modified and every instance without its own group uses it; create a parameter group for this instance (copy of {name}) and attach it before the window"
        )));
    }
    Ok(())
}
