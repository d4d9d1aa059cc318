//! Windowed reconciliation (the dual-write playbook: compare the recent past by counts and
//! checksums): `--where "<SQL>"` and `--since COLUMN=DURATION` restrict every statement of
//! the compare, on both sides, to the same rows.
//!
//! The window's start is fixed once, when the compare starts, and written into both
//! sides' SQL as the same UTC literal, so the two servers' clocks never widen or narrow it.

use std::time::Duration;

use super::DbError;
use super::catalog::{Column, Table, TypeClass};
use super::sql::quote;

/// `--since COLUMN=DURATION`: rows whose `column` is at most `ago` old.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Since {
    pub column: String,
    pub ago: Duration,
}

impl Since {
    /// Parses `updated_at=1h`; the error says what is wrong and the form expected.
    pub fn parse(text: &str) -> Result<Since, String> {
        let Some((column, ago)) = text.split_once('=') else {
            return Err(format!(
                "\"{text}\" is not COLUMN=DURATION (for example updated_at=1h)"
            ));
        };
        let column = column.trim();
        if column.is_empty()
            || !column
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            return Err(format!(
                "\"{column}\" is not a column name (letters, digits and _ only; for example updated_at=1h)"
            ));
        }
        let ago = humantime::parse_duration(ago.trim()).map_err(|e| {
            format!(
                "\"{}\" is not a duration: {e} (for example 1h, 30m, 2d)",
                ago.trim()
            )
        })?;
        if ago.is_zero() {
            return Err("the duration must be more than 0 (for example 1h)".into());
        }
        Ok(Since {
            column: column.to_string(),
            ago,
        })
    }
}

/// Which rows the compare looks at; the default is every row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// A condition in SQL, applied as given to both sides (the two dialects' common part).
    pub where_sql: Option<String>,
    pub since: Option<Since>,
}

impl Window {
    pub fn is_whole(&self) -> bool {
        self.where_sql.is_none() && self.since.is_none()
    }
}

/// Checks a `--where` condition's shape before it reaches a server: one expression, no
/// statement separator or comment, quotes and parentheses balanced. Returns the reason and
/// the 1-based column of the fault.
pub fn check_where(text: &str) -> Result<(), (usize, String)> {
    if text.trim().is_empty() {
        return Err((1, "the condition is empty".into()));
    }
    let mut depth: i32 = 0;
    let mut quote_ch: Option<(char, usize)> = None;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if let Some((q, _)) = quote_ch {
            if c == q {
                if chars.get(i + 1) == Some(&q) {
                    i += 1;
                } else {
                    quote_ch = None;
                }
            }
        } else {
            match c {
                '\'' | '"' | '`' => quote_ch = Some((c, col)),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err((col, "a ')' closes nothing".into()));
                    }
                }
                ';' => {
                    return Err((col, "';' ends a statement; give one condition".into()));
                }
                '-' if chars.get(i + 1) == Some(&'-') => {
                    return Err((
                        col,
                        "a comment ('--') would hide the rest of the query".into(),
                    ));
                }
                '/' if chars.get(i + 1) == Some(&'*') => {
                    return Err((
                        col,
                        "a comment ('/*') would hide the rest of the query".into(),
                    ));
                }
                '#' => {
                    return Err((col, "'#' starts a comment on MySQL".into()));
                }
                _ => {}
            }
        }
        i += 1;
    }
    if let Some((q, col)) = quote_ch {
        return Err((col, format!("the quote {q} opened here is never closed")));
    }
    if depth > 0 {
        return Err((text.len(), format!("{depth} '(' not closed")));
    }
    Ok(())
}

/// The SQL condition a window puts on one side's `table` (`None`: every row).
/// `cutoff` is the window's start in UTC (`YYYY-MM-DD HH:MM:SS.ffffff`).
pub(crate) fn filter(
    window: &Window,
    cutoff: Option<&str>,
    table: &Table,
    mysql: bool,
    who: &str,
) -> Result<Option<String>, DbError> {
    let mut parts = Vec::new();
    if let Some(w) = &window.where_sql {
        parts.push(format!("({w})"));
    }
    if let (Some(since), Some(cutoff)) = (&window.since, cutoff) {
        let Some(col) = table.column(&since.column) else {
            return Err(DbError::Schema {
                who: who.into(),
                reason: format!(
                    "--since: table \"{}\" has no column \"{}\"",
                    table.name, since.column
                ),
                fix: "name a column every compared table has, or limit the tables with --tables"
                    .into(),
            });
        };
        parts.push(
            since_condition(col, cutoff, mysql).map_err(|reason| DbError::Schema {
                who: who.into(),
                reason: format!("--since: {}.{}: {reason}", table.name, col.name),
                fix: "name a date or timestamp column".into(),
            })?,
        );
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

fn since_condition(col: &Column, cutoff: &str, mysql: bool) -> Result<String, String> {
    let q = quote(mysql, &col.name);
    // The cutoff is made here from the clock, never from input: a literal is safe.
    match (mysql, col.class) {
        (true, TypeClass::Timestamp { .. } | TypeClass::Date) => Ok(format!("{q} >= '{cutoff}'")),
        (false, TypeClass::Timestamp { tz: true }) => {
            Ok(format!("{q} >= '{cutoff}+00'::timestamptz"))
        }
        (false, TypeClass::Timestamp { tz: false } | TypeClass::Date) => {
            Ok(format!("{q} >= '{cutoff}'::timestamp"))
        }
        _ => Err(format!(
            "a {} column cannot bound a time window",
            col.sql_type
        )),
    }
}

/// The window's start, `ago` before now, as a UTC literal both engines read.
pub(crate) fn cutoff(window: &Window) -> Option<String> {
    let since = window.since.as_ref()?;
    let start = std::time::SystemTime::now().checked_sub(since.ago)?;
    let text = humantime::format_rfc3339_micros(start).to_string();
    // 2024-01-02T03:04:05.123456Z -> 2024-01-02 03:04:05.123456
    Some(text.trim_end_matches('Z').replacen('T', " ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_column_and_duration() {
        assert_eq!(
            Since::parse("updated_at=1h"),
            Ok(Since {
                column: "updated_at".into(),
                ago: Duration::from_secs(3600)
            })
        );
        assert!(
            Since::parse("updated_at")
                .unwrap_err()
                .contains("COLUMN=DURATION")
        );
        assert!(
            Since::parse("updated_at=soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            Since::parse("a b=1h")
                .unwrap_err()
                .contains("not a column name")
        );
        assert!(Since::parse("x=0s").unwrap_err().contains("more than 0"));
    }

    #[test]
    fn where_faults_are_located() {
        assert_eq!(check_where("a = 1 AND (b = 'x;y')"), Ok(()));
        assert_eq!(check_where("a = 1; DROP TABLE t").unwrap_err().0, 6);
        assert_eq!(check_where("a = 'it''s").unwrap_err().0, 5);
        assert_eq!(check_where("a = 1 -- b").unwrap_err().0, 7);
        assert_eq!(check_where("(a = 1").unwrap_err().1, "1 '(' not closed");
        assert_eq!(check_where("a = 1)").unwrap_err().0, 6);
        assert_eq!(check_where("  ").unwrap_err().0, 1);
    }

    #[test]
    fn the_cutoff_is_a_plain_utc_literal() {
        let w = Window {
            where_sql: None,
            since: Some(Since {
                column: "t".into(),
                ago: Duration::from_secs(60),
            }),
        };
        let c = cutoff(&w).unwrap_or_default();
        assert_eq!(c.len(), 26, "{c}");
        assert_eq!(&c[10..11], " ");
    }
}
