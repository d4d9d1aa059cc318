//! The SQL actuator: runs a plan's `kind = "sql"` actions on the source or the target
//! (e.g. `SET GLOBAL read_only = ON`, a feature-flag update) and records what each
//! statement returned as output lines.

use super::conn::Db;
use cutover_core::event::Side;
use cutover_core::plan::{Action, Plan};
use cutover_runtime::action::{ActionError, Actuator, Output};
use cutover_runtime::source::BoxFuture;

/// Rows of a statement's result shown as output lines (the rest are counted).
const SHOWN_ROWS: usize = 20;

/// Runs SQL actions on the pair of databases. Statements run on a writer session (not the
/// read-only probe sessions), one action at a time per side. Idempotence is the
/// statement's: `SET GLOBAL read_only = ON` twice is fine, an `INSERT` twice is not.
#[derive(Clone, Debug)]
pub struct SqlActuator {
    source: Db,
    target: Db,
}

impl SqlActuator {
    pub fn new(source: Db, target: Db) -> SqlActuator {
        SqlActuator { source, target }
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
            let Action::Sql { on, statement } = action else {
                return Err(ActionError::new(format!(
                    "not a SQL action: {} (the SQL actuator runs only kind = \"sql\")",
                    action.describe(plan)
                )));
            };
            let db = match on {
                Side::Source => &self.source,
                Side::Target => &self.target,
            };
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
        })
    }
}
