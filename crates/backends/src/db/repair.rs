//! Repair SQL for review (`cutover drift --repair-sql FILE`): the statements that would
//! make the target equal the source for the differing rows the compare named — REPLACE
//! (MySQL/MariaDB) or INSERT ... ON CONFLICT DO UPDATE (PostgreSQL) with the source's row,
//! DELETE for a row only on the target — quoted for the target's engine. The cockpit
//! never runs them: they are written to a file for a human to read and apply.

use super::canon;
use super::catalog::{Column, TypeClass};
use super::chunk::{Checker, Job, RowDiff};
use super::compare::compare_tables;
use super::sql::{Stmt, quote, table_ref};
use super::{Db, DbError, DbOptions};
use cutover_core::event::{DiffKind, TableDrift};

/// What `compare_with_repair` found: the readings, the repair script and how many rows it
/// repairs.
pub struct Repair {
    pub drifts: Vec<TableDrift>,
    pub sql: String,
    pub statements: usize,
}

/// The one-shot compare, then the repair script for what it found.
pub async fn compare_with_repair(
    source: &Db,
    target: &Db,
    opts: &DbOptions,
    progress: impl FnMut(&TableDrift) + Send,
) -> Result<Repair, DbError> {
    let checker = Checker::new(source.clone(), target.clone(), opts.clone());
    let tables = compare_tables(&checker, progress).await?;
    let tgt_mysql = target.is_mysql();
    let mut out = String::new();
    out.push_str(&format!(
        "-- cutover drift: repair SQL for the {} target, for review. Nothing here was run.\n",
        if tgt_mysql {
            "MySQL/MariaDB"
        } else {
            "PostgreSQL"
        }
    ));
    if tgt_mysql {
        // TIMESTAMP literals below are UTC, as the compare read them.
        out.push_str("SET time_zone = '+00:00';\n");
    }
    let mut statements = 0;
    let mut drifts = Vec::with_capacity(tables.len());
    for (drift, state) in tables {
        if let Some(st) = state {
            let (diffs, unexplained) = st.row_diffs();
            if !diffs.is_empty() || unexplained {
                out.push_str(&format!("\n-- table {}\n", drift.table));
            }
            if !st.job.has_key() && (unexplained || !diffs.is_empty()) {
                out.push_str("-- no primary key: rows cannot be named one by one; not repaired\n");
            } else {
                for d in &diffs {
                    if let Some(stmt) = statement(&checker, &st.job, d, tgt_mysql).await? {
                        out.push_str(&stmt);
                        out.push('\n');
                        statements += 1;
                    }
                }
                if unexplained {
                    out.push_str(
                        "-- more rows differ than were named (--max-keys): raise it and run again\n",
                    );
                }
            }
        } else if drift
            .differing_keys
            .iter()
            .any(|k| k.kind == DiffKind::MissingOnTarget)
        {
            out.push_str(&format!(
                "\n-- table {} is missing on the target: create and copy it first\n",
                drift.table
            ));
        }
        drifts.push(drift);
    }
    Ok(Repair {
        drifts,
        sql: out,
        statements,
    })
}

/// The statement repairing one row, or `None` when the source no longer has it (it was
/// deleted since the compare read it: then nothing is written for it).
async fn statement(
    checker: &Checker,
    job: &Job,
    d: &RowDiff,
    tgt_mysql: bool,
) -> Result<Option<String>, DbError> {
    let table = table_ref(tgt_mysql, &job.tgt);
    if d.kind == DiffKind::ExtraOnTarget {
        let conds: Vec<String> = job
            .tgt_key
            .iter()
            .zip(&d.key_vals)
            .map(|(c, v)| match v {
                Some(v) => format!(
                    "{} = {}",
                    quote(tgt_mysql, &c.name),
                    literal(tgt_mysql, c, v, false)
                ),
                None => format!("{} IS NULL", quote(tgt_mysql, &c.name)),
            })
            .collect();
        return Ok(Some(format!(
            "DELETE FROM {table} WHERE {};",
            conds.join(" AND ")
        )));
    }
    let src_mysql = checker.src.is_mysql();
    let mut stmt = Stmt::new(src_mysql);
    let exprs: Vec<String> = job
        .src_cols
        .iter()
        .zip(&job.canon)
        .map(|(c, k)| canon::select_expr(src_mysql, c, *k))
        .collect();
    let key: Vec<&Column> = job.src_key.iter().collect();
    stmt.push("SELECT ").push(&exprs.join(", "));
    stmt.push(" FROM ").push(&table_ref(src_mysql, &job.src));
    stmt.where_key_eq(&key, &d.key_vals);
    let rows = checker
        .run(
            true,
            &format!("the source row {} of {}", d.key, job.name),
            &stmt,
        )
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let cols: Vec<String> = job
        .tgt_cols
        .iter()
        .map(|c| quote(tgt_mysql, &c.name))
        .collect();
    let vals: Vec<String> = job
        .tgt_cols
        .iter()
        .zip(&job.canon)
        .zip(&row)
        .map(|((c, k), v)| match v {
            None => "NULL".to_string(),
            Some(v) => literal(tgt_mysql, c, v, *k == canon::Canon::Binary),
        })
        .collect();
    if tgt_mysql {
        return Ok(Some(format!(
            "REPLACE INTO {table} ({}) VALUES ({});",
            cols.join(", "),
            vals.join(", ")
        )));
    }
    let keys: Vec<String> = job.tgt_key.iter().map(|c| quote(false, &c.name)).collect();
    let sets: Vec<String> = job
        .tgt_cols
        .iter()
        .filter(|c| !job.tgt_key.iter().any(|k| k.name == c.name))
        .map(|c| {
            let q = quote(false, &c.name);
            format!("{q} = EXCLUDED.{q}")
        })
        .collect();
    let action = if sets.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    Ok(Some(format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) {action};",
        cols.join(", "),
        vals.join(", "),
        keys.join(", ")
    )))
}

/// A value as a literal of the target's dialect. `hex`: the text is the value's bytes in
/// hex (how the compare prints bytes).
fn literal(mysql: bool, col: &Column, text: &str, hex: bool) -> String {
    let hex = hex || col.class == TypeClass::Binary;
    // PostgreSQL prints a bytea key as `\x...`; the compare prints bytes as bare hex.
    let h: String = text
        .trim_start_matches("\\x")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    match (mysql, hex, col.class) {
        (true, true, _) => format!("X'{h}'"),
        (false, true, TypeClass::Binary) => format!("'\\x{h}'::bytea"),
        (false, true, _) => format!("convert_from('\\x{h}'::bytea, 'UTF8')"),
        // Instants are printed in UTC; say so to PostgreSQL (MySQL's session is set to UTC
        // at the top of the file).
        (false, false, TypeClass::Timestamp { tz: true }) => format!("'{}+00'", esc(false, text)),
        _ => format!("'{}'", esc(mysql, text)),
    }
}

/// Escapes a string literal's body: quotes doubled; on MySQL also backslashes (which it
/// reads as escapes unless NO_BACKSLASH_ESCAPES is set).
fn esc(mysql: bool, text: &str) -> String {
    let t = text.replace('\'', "''");
    if mysql { t.replace('\\', "\\\\") } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(class: TypeClass) -> Column {
        Column {
            name: "c".into(),
            sql_type: "x".into(),
            nullable: true,
            class,
        }
    }

    #[test]
    fn literals_are_quoted_for_the_target() {
        assert_eq!(
            literal(true, &col(TypeClass::Text), "it's \\ x", false),
            "'it''s \\\\ x'"
        );
        assert_eq!(
            literal(false, &col(TypeClass::Text), "it's \\ x", false),
            "'it''s \\ x'"
        );
        assert_eq!(
            literal(true, &col(TypeClass::Binary), "00FF", true),
            "X'00FF'"
        );
        assert_eq!(
            literal(false, &col(TypeClass::Binary), "00FF", true),
            "'\\x00FF'::bytea"
        );
        assert_eq!(
            literal(
                false,
                &col(TypeClass::Timestamp { tz: true }),
                "2024-01-02 03:04:05",
                false
            ),
            "'2024-01-02 03:04:05+00'"
        );
    }
}
