//! The SQL actuator: runs a plan's `kind = "sql"` actions on the source or the target
//! (e.g. a feature-flag update) and its write freezes (`kind = "freeze"`/`"unfreeze"`), and
//! records what each statement returned as output lines.

use super::conn::Db;
use cutover_core::event::Side;
use cutover_core::plan::{Action, FreezeMethod, Plan};
use cutover_runtime::action::{ActionError, Actuator, Output};
use cutover_runtime::source::BoxFuture;

/// Rows of a statement's result shown as output lines (the rest are counted).
const SHOWN_ROWS: usize = 20;

/// Runs SQL actions on the pair of databases. Statements run on a writer session (not the
/// read-only probe sessions), one action at a time per side. Idempotence is the
/// statement's: a freeze twice is fine, an `INSERT` twice is not.
#[derive(Clone, Debug)]
pub struct SqlActuator {
    source: Db,
    target: Db,
}

impl SqlActuator {
    pub fn new(source: Db, target: Db) -> SqlActuator {
        SqlActuator { source, target }
    }

    fn db(&self, side: Side) -> &Db {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }

    /// Stops or starts the target's binlog replication (`engine = "mysql"`) and waits
    /// until its threads say so.
    pub async fn replica_control(
        &self,
        plan: &Plan,
        action: &Action,
        out: &Output,
    ) -> Result<String, ActionError> {
        super::binlog::control(&self.target, plan, action, out).await
    }

    /// The proof of a freeze made elsewhere (an RDS parameter group): reads
    /// `@@GLOBAL.read_only` on `side` until it is `frozen`, every `every`, for at most
    /// `within`. A parameter group in sync is RDS's word; the server's answer is the proof.
    pub async fn await_read_only(
        &self,
        side: Side,
        frozen: bool,
        within: std::time::Duration,
        every: std::time::Duration,
        out: &Output,
    ) -> Result<String, ActionError> {
        let db = self.db(side);
        let started = std::time::Instant::now();
        loop {
            let now = read_only(db).await?;
            if now == frozen {
                out.line(format!(
                    "@@GLOBAL.read_only = {} on {}",
                    on_off(now),
                    db.who()
                ));
                return Ok(format!(
                    "{} read_only = {} (SELECT @@GLOBAL.read_only)",
                    side.as_str(),
                    on_off(now)
                ));
            }
            if started.elapsed() >= within {
                return Err(ActionError::new(format!(
                    "the parameter group is in sync but the {} database still reports @@GLOBAL.read_only = {} after {}s; check that the instance uses that parameter group and that nothing resets read_only",
                    side.as_str(),
                    on_off(now),
                    within.as_secs()
                )));
            }
            tokio::time::sleep(every).await;
        }
    }
}

impl Actuator for SqlActuator {
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        action: &'a Action,
        out: &'a Output,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        Box::pin(async move {
            match action {
                Action::Sql { on, statement } => script(self.db(*on), statement, out).await,
                Action::Freeze { on, method } => {
                    set_read_only(self.db(*on), *method, true, out).await
                }
                Action::Unfreeze { on, method } => {
                    set_read_only(self.db(*on), *method, false, out).await
                }
                other => Err(ActionError::new(format!(
                    "not a SQL action: {} (the SQL actuator runs only kind = \"sql\", \"freeze\" and \"unfreeze\")",
                    other.describe(plan)
                ))),
            }
        })
    }
}

async fn script(db: &Db, statement: &str, out: &Output) -> Result<String, ActionError> {
    out.line(format!("on {} ({}):", db.who(), db.version()));
    let summary = db
        .execute_script(statement, SHOWN_ROWS, |line| out.line(line))
        .await
        .map_err(|e| ActionError::new(e.to_string()))?;
    let rows = if summary.rows_returned > 0 {
        format!(", {} rows returned", summary.rows_returned)
    } else {
        String::new()
    };
    Ok(format!(
        "{} statement(s) on {}: {} rows affected{rows}",
        summary.statements,
        db.who(),
        summary.rows_affected
    ))
}

fn on_off(v: bool) -> &'static str {
    if v { "ON" } else { "OFF" }
}

/// Freezes (`frozen`) or unfreezes writes, then reads `@@GLOBAL.read_only` back on a probe
/// session: a statement that returned OK is not proof (a proxy may swallow it, a replica
/// may be reconfigured by its orchestrator), and the drain must not start on a guess.
async fn set_read_only(
    db: &Db,
    method: FreezeMethod,
    frozen: bool,
    out: &Output,
) -> Result<String, ActionError> {
    let side = db.side().as_str();
    if method == FreezeMethod::ParameterGroup {
        return Err(ActionError::new(
            "a parameter-group freeze changes the RDS parameter group: it needs the AWS backend (the plan's [aws] and [rds] sections)",
        ));
    }
    if !method.supports(db.engine()) {
        return Err(ActionError::new(format!(
            "the {side} database ({}) cannot be frozen with method = \"{}\"; the plan validation should have refused it",
            db.who(),
            method.as_str()
        )));
    }
    if method == FreezeMethod::DefaultReadOnly {
        return pg_default_read_only(db, frozen, out).await;
    }
    let was = read_only(db).await?;
    let statement = method.statement(frozen);
    out.line(format!("on {} ({}): {statement}", db.who(), db.version()));
    db.execute_script(statement, SHOWN_ROWS, |line| out.line(line))
        .await
        .map_err(|e| ActionError::new(e.to_string()))?;
    let now = read_only(db).await?;
    out.line(format!("@@GLOBAL.read_only = {}", on_off(now)));
    if now != frozen {
        return Err(ActionError::new(format!(
            "{statement} returned OK but the {side} database still reports @@GLOBAL.read_only = {}; check for a proxy or an orchestrator resetting it",
            on_off(now)
        )));
    }
    Ok(if was == frozen {
        format!("{side} read_only already {}", on_off(now))
    } else {
        format!("{side} read_only = {} (was {})", on_off(now), on_off(was))
    })
}

/// `statement` in a transaction that may write whatever the session's default: a
/// PostgreSQL session opened while its database is frozen starts read-only.
pub(crate) fn read_write(statement: &str) -> String {
    format!("BEGIN READ WRITE; {statement}; COMMIT")
}

/// The database-level `default_transaction_read_only` (`ALTER DATABASE .. SET`), from the
/// catalog: a pooled session keeps the value it started with, the catalog says what every
/// new session gets. Empty when the database sets none. The guardrail reads it too.
pub(crate) const PG_DATABASE_READ_ONLY: &str = "SELECT split_part(s, '=', 2) \
     FROM pg_db_role_setting r, unnest(r.setconfig) s \
     WHERE r.setrole = 0 \
       AND r.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
       AND s LIKE 'default_transaction_read_only=%' LIMIT 1";

async fn pg_database_read_only(db: &Db) -> Result<bool, ActionError> {
    let rows = db
        .rows(
            "reading the database's default_transaction_read_only",
            PG_DATABASE_READ_ONLY,
            &[],
        )
        .await
        .map_err(|e| ActionError::new(e.to_string()))?;
    let value = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .unwrap_or_default();
    Ok(matches!(value.as_str(), "on" | "true" | "yes" | "1"))
}

/// PostgreSQL's freeze: the database's default for new transactions, then the other client
/// sessions ended (their applications reconnect read-only), proven from the catalog.
async fn pg_default_read_only(db: &Db, frozen: bool, out: &Output) -> Result<String, ActionError> {
    let side = db.side().as_str();
    let fail = |e: super::DbError| ActionError::new(e.to_string());
    let was = pg_database_read_only(db).await?;
    let name = db
        .rows(
            "naming the database",
            "SELECT quote_ident(current_database())",
            &[],
        )
        .await
        .map_err(fail)?
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .unwrap_or_default();
    let statement = format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = {}",
        if frozen { "on" } else { "off" }
    );
    out.line(format!("on {} ({}): {statement}", db.who(), db.version()));
    // READ WRITE: a session opened while frozen starts read-only itself.
    db.execute_script(&read_write(&statement), SHOWN_ROWS, |line| out.line(line))
        .await
        .map_err(|e| {
            ActionError::new(format!(
                "{e}; ALTER DATABASE needs the database's owner (RDS/Aurora: the master user)"
            ))
        })?;
    if frozen {
        let ended = db
            .writer_rows(
                "ending the other sessions",
                &format!(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::text \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                       AND backend_type = 'client backend' AND application_name <> '{}'",
                    super::conn::APP_NAME
                ),
                &[],
            )
            .await
            .map_err(|e| {
                ActionError::new(format!(
                    "{e}; ending other sessions needs pg_signal_backend (GRANT pg_signal_backend TO the plan's user)"
                ))
            })?
            .first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .unwrap_or_default();
        out.line(format!(
            "ended {ended} other session(s) of the database: they reconnect read-only"
        ));
    }
    let now = pg_database_read_only(db).await?;
    out.line(format!(
        "default_transaction_read_only = {} for new sessions (pg_db_role_setting)",
        if now { "on" } else { "off" }
    ));
    if now != frozen {
        return Err(ActionError::new(format!(
            "{statement} returned OK but pg_db_role_setting still says default_transaction_read_only = {} on the {side} database",
            if now { "on" } else { "off" }
        )));
    }
    let word = |v: bool| if v { "ON" } else { "OFF" };
    Ok(if was == frozen {
        format!("{side} default_transaction_read_only already {}", word(now))
    } else {
        format!(
            "{side} default_transaction_read_only = {} (was {})",
            word(now),
            word(was)
        )
    })
}

/// `@@GLOBAL.read_only`, read on a probe session (a different session than the writer's,
/// so a session-scoped setting could not pass for the global one).
async fn read_only(db: &Db) -> Result<bool, ActionError> {
    let rows = db
        .rows(
            "reading @@GLOBAL.read_only",
            "SELECT @@GLOBAL.read_only",
            &[],
        )
        .await
        .map_err(|e| ActionError::new(e.to_string()))?;
    let cell = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .unwrap_or_default();
    match cell.trim().to_ascii_uppercase().as_str() {
        "1" | "ON" => Ok(true),
        "0" | "OFF" => Ok(false),
        other => Err(ActionError::new(format!(
            "the {} database answered @@GLOBAL.read_only = \"{other}\", neither 0 nor 1",
            db.side().as_str()
        ))),
    }
}
