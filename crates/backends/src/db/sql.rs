//! The SQL text of every probe, per engine: identifier quoting, key ranges, the per-row
//! hash and the per-chunk aggregate that run inside the servers.
//!
//! Nothing here runs a query; `chunk` and `compare` do. Values never enter SQL text:
//! identifiers come from the catalog and are quoted, values are bind parameters.

use super::catalog::{Column, Table, TypeClass};
use super::conn::Bind;

/// A key value: one text per primary key column, as the engine prints it.
pub(crate) type KeyVals = Vec<String>;

/// A lower bound (inclusive) of a key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// A single integer key column (walked by arithmetic, no boundary lookups).
    Int(i128),
    /// Any key: one text per key column.
    Vals(KeyVals),
}

/// The rows with `lo <= key < hi`; `None` is open. The first chunk of a table has no
/// lower bound and the last no upper bound, so rows beyond the source's ends are seen.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct KeyRange {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
}

impl KeyRange {
    pub(crate) fn all() -> KeyRange {
        KeyRange::default()
    }
}

/// Quotes an identifier: backticks on MySQL, double quotes on PostgreSQL.
pub(crate) fn quote(mysql: bool, ident: &str) -> String {
    if mysql {
        format!("`{}`", ident.replace('`', "``"))
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

pub(crate) fn table_ref(mysql: bool, t: &Table) -> String {
    format!("{}.{}", quote(mysql, &t.schema), quote(mysql, &t.name))
}

/// Builds one statement: SQL text plus its bind parameters in order.
pub(crate) struct Stmt {
    pub mysql: bool,
    /// The window's condition of the table in FROM, added by `where_range`.
    filter: Option<String>,
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Stmt {
    pub(crate) fn new(mysql: bool) -> Stmt {
        Stmt {
            mysql,
            filter: None,
            sql: String::with_capacity(256),
            binds: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Stmt {
        self.sql.push_str(s);
        self
    }

    /// A placeholder for a key value of `col`, cast so it compares as the column does.
    fn param(&mut self, col: &Column, text: &str) -> String {
        if self.mysql {
            let (placeholder, bind) = match col.class {
                TypeClass::Int {
                    unsigned: false, ..
                } => match text.parse::<i64>() {
                    Ok(v) => ("?", Bind::I64(v)),
                    Err(_) => ("CAST(? AS SIGNED)", Bind::Text(text.into())),
                },
                TypeClass::Int { unsigned: true, .. } => match text.parse::<u64>() {
                    Ok(v) => ("?", Bind::U64(v)),
                    Err(_) => ("CAST(? AS UNSIGNED)", Bind::Text(text.into())),
                },
                TypeClass::Bit => ("CAST(? AS UNSIGNED)", Bind::Text(text.into())),
                TypeClass::Decimal => ("CAST(? AS DECIMAL(65,30))", Bind::Text(text.into())),
                TypeClass::Float32 | TypeClass::Float64 => {
                    ("CAST(? AS DOUBLE)", Bind::Text(text.into()))
                }
                TypeClass::Date => ("CAST(? AS DATE)", Bind::Text(text.into())),
                TypeClass::Time => ("CAST(? AS TIME(6))", Bind::Text(text.into())),
                TypeClass::Timestamp { .. } => ("CAST(? AS DATETIME(6))", Bind::Text(text.into())),
                TypeClass::Binary => ("UNHEX(?)", Bind::Text(text.into())),
                _ => ("?", Bind::Text(text.into())),
            };
            self.binds.push(bind);
            placeholder.to_string()
        } else {
            // A bytea key printed by MySQL's HEX() lacks PostgreSQL's `\x` hex prefix.
            let text = if col.class == TypeClass::Binary && !text.starts_with("\\x") {
                format!("\\x{text}")
            } else {
                text.to_string()
            };
            self.binds.push(Bind::Text(text));
            format!("${}::{}", self.binds.len(), col.sql_type)
        }
    }

    fn param_int(&mut self, col: &Column, v: i128) -> String {
        let text = v.to_string();
        if !self.mysql && matches!(col.class, TypeClass::Int { .. }) {
            // Bound as a number: PostgreSQL then compares int8 with the column's type.
            if let Ok(v) = i64::try_from(v) {
                self.binds.push(Bind::I64(v));
                return format!("${}::{}", self.binds.len(), col.sql_type);
            }
        }
        self.param(col, &text)
    }

    /// ` WHERE ...` for `range` over the key `cols` (nothing when the range is whole).
    pub(crate) fn where_range(&mut self, cols: &[&Column], range: &KeyRange) -> &mut Stmt {
        let mut parts = Vec::new();
        if let Some(lo) = &range.lo {
            parts.push(self.compare(cols, lo, ">"));
        }
        if let Some(hi) = &range.hi {
            parts.push(self.compare(cols, hi, "<"));
        }
        if let Some(f) = &self.filter {
            parts.push(f.clone());
        }
        if !parts.is_empty() {
            self.sql.push_str(" WHERE ");
            self.sql.push_str(&parts.join(" AND "));
        }
        self
    }

    /// `key >= b` (dir ">") or `key < b` (dir "<").
    fn compare(&mut self, cols: &[&Column], b: &Bound, dir: &str) -> String {
        let last_op = if dir == ">" { ">=" } else { "<" };
        match b {
            Bound::Int(v) => {
                let p = self.param_int(cols[0], *v);
                format!("{} {last_op} {p}", quote(self.mysql, &cols[0].name))
            }
            Bound::Vals(vals) if cols.len() == 1 => {
                let p = self.param(cols[0], &vals[0]);
                format!("{} {last_op} {p}", quote(self.mysql, &cols[0].name))
            }
            Bound::Vals(vals) if !self.mysql => {
                // PostgreSQL compares rows lexicographically and uses the index for it.
                let names: Vec<String> = cols.iter().map(|c| quote(false, &c.name)).collect();
                let params: Vec<String> = cols
                    .iter()
                    .zip(vals)
                    .map(|(c, v)| self.param(c, v))
                    .collect();
                format!("({}) {last_op} ({})", names.join(", "), params.join(", "))
            }
            Bound::Vals(vals) => {
                // The expanded form pt-table-checksum uses, which MySQL's range optimizer
                // reads as a range on the primary key:
                // (a > ?) OR (a = ? AND b > ?) OR (a = ? AND b = ? AND c >= ?)
                let mut ors = Vec::new();
                for i in 0..cols.len() {
                    let mut ands = Vec::new();
                    for j in 0..i {
                        let p = self.param(cols[j], &vals[j]);
                        ands.push(format!("{} = {p}", quote(true, &cols[j].name)));
                    }
                    let op = if i + 1 == cols.len() { last_op } else { dir };
                    let p = self.param(cols[i], &vals[i]);
                    ands.push(format!("{} {op} {p}", quote(true, &cols[i].name)));
                    ors.push(format!("({})", ands.join(" AND ")));
                }
                format!("({})", ors.join(" OR "))
            }
        }
    }

    /// ` WHERE key = vals` (one row by its key, as the engine printed it).
    pub(crate) fn where_key_eq(&mut self, cols: &[&Column], vals: &[Option<String>]) -> &mut Stmt {
        let mut parts = Vec::new();
        for (c, v) in cols.iter().zip(vals) {
            let q = quote(self.mysql, &c.name);
            match v {
                Some(v) => {
                    let p = self.param(c, v);
                    parts.push(format!("{q} = {p}"));
                }
                None => parts.push(format!("{q} IS NULL")),
            }
        }
        self.sql.push_str(" WHERE ");
        self.sql.push_str(&parts.join(" AND "));
        self
    }

    pub(crate) fn order_by_key(&mut self, cols: &[&Column]) -> &mut Stmt {
        let names: Vec<String> = cols.iter().map(|c| quote(self.mysql, &c.name)).collect();
        self.sql.push_str(" ORDER BY ");
        self.sql.push_str(&names.join(", "));
        self
    }

    /// ` FROM table` and, on MySQL, the primary key forced (as pt-table-checksum does, so a
    /// bad plan never turns a chunk into a table scan).
    pub(crate) fn push_from(&mut self, t: &Table) -> &mut Stmt {
        self.sql.push_str(" FROM ");
        self.sql.push_str(&table_ref(self.mysql, t));
        self.filter = t.filter.clone();
        if self.mysql
            && !t.pk.is_empty()
            && let Some(ix) = &t.key_index
        {
            if ix == "PRIMARY" {
                self.sql.push_str(" FORCE INDEX (PRIMARY)");
            } else {
                self.sql
                    .push_str(&format!(" FORCE INDEX ({})", quote(true, ix)));
            }
        }
        self
    }
}

/// An expression giving a key column's value as text that [`Stmt`] can bind back.
pub(crate) fn key_text(mysql: bool, col: &Column) -> String {
    let q = quote(mysql, &col.name);
    if mysql {
        match col.class {
            TypeClass::Binary => format!("HEX({q})"),
            TypeClass::Bit => format!("CAST({q} + 0 AS CHAR)"),
            _ => format!("CAST({q} AS CHAR)"),
        }
    } else {
        format!("{q}::text")
    }
}

/// Knuth's multiplicative constant (odd, < 2^32): see [`row_hash`].
const MIX: u64 = 2_654_435_761;

/// The per-row hash of the compared columns, computed in the server.
///
/// MySQL/MariaDB: pt-table-checksum's `CRC32(CONCAT_WS('#', cols..., CONCAT(ISNULL(c)...)))`;
/// the ISNULL flags (only for nullable columns) tell NULL from '' since CONCAT_WS skips
/// NULLs. CRC32 is linear over GF(2), so under a plain BIT_XOR two rows changed the same
/// way (same bytes, same distance from the end) cancel out and the chunk compares equal;
/// multiplying by an odd 32-bit constant (exact in 64 bits, no overflow) breaks the
/// linearity at the cost of one multiplication per row.
///
/// PostgreSQL: `hashtextextended(ROW(cols...)::text, 0)`, a 64-bit (non-linear) hash of the
/// row's text form, in which NULL is an empty field and '' is `""`.
pub(crate) fn row_hash(mysql: bool, cols: &[&Column]) -> String {
    if mysql {
        let mut args: Vec<String> = cols.iter().map(|c| quote(true, &c.name)).collect();
        let flags: Vec<String> = cols
            .iter()
            .filter(|c| c.nullable)
            .map(|c| format!("ISNULL({})", quote(true, &c.name)))
            .collect();
        if !flags.is_empty() {
            args.push(format!("CONCAT({})", flags.join(", ")));
        }
        format!("(CRC32(CONCAT_WS('#', {})) * {MIX})", args.join(", "))
    } else {
        let args: Vec<String> = cols.iter().map(|c| quote(false, &c.name)).collect();
        format!("hashtextextended(ROW({})::text, 0)", args.join(", "))
    }
}

/// `SELECT COUNT(*), <xor of row hashes>` over a range: one chunk's checksum.
pub(crate) fn chunk_hash(
    t: &Table,
    h: &str,
    key: &[&Column],
    range: &KeyRange,
    mysql: bool,
) -> Stmt {
    let mut s = Stmt::new(mysql);
    if mysql {
        s.push(&format!("SELECT COUNT(*), COALESCE(BIT_XOR({h}), 0)"));
    } else {
        s.push(&format!("SELECT count(*), coalesce(bit_xor({h}), 0)"));
    }
    s.push_from(t).where_range(key, range);
    s
}

/// Count and a multiset hash (a sum, so duplicate rows do not cancel out) of a whole table
/// without a primary key.
pub(crate) fn table_hash(t: &Table, h: &str, mysql: bool) -> Stmt {
    let mut s = Stmt::new(mysql);
    if mysql {
        s.push(&format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM({h}), 0) AS CHAR)"
        ));
    } else {
        s.push(&format!(
            "SELECT count(*), coalesce(sum(({h})::numeric), 0)::text"
        ));
    }
    s.push_from(t).where_range(&[], &KeyRange::all());
    s
}

/// `SELECT 1 ... LIMIT 0` with the table's window: checks a `--where` on a server.
pub(crate) fn probe_filter(t: &Table, mysql: bool) -> Stmt {
    let mut s = Stmt::new(mysql);
    s.push("SELECT 1");
    s.push_from(t).where_range(&[], &KeyRange::all());
    s.push(" LIMIT 0");
    s
}

/// Hash buckets of a table without a key: the bucket of a row is its hash modulo `n`.
pub(crate) fn bucket_of(h: &str, n: u64, mysql: bool) -> String {
    if mysql {
        format!("(({h}) MOD {n})")
    } else {
        // PostgreSQL's same-engine hash is signed.
        format!("(((({h}) % {n}) + {n}) % {n})")
    }
}

/// `SELECT bucket, count, sum of hashes ... GROUP BY bucket`: one scan, every bucket.
pub(crate) fn bucket_sums(t: &Table, h: &str, n: u64, mysql: bool) -> Stmt {
    let mut s = Stmt::new(mysql);
    let b = bucket_of(h, n, mysql);
    if mysql {
        s.push(&format!(
            "SELECT CAST({b} AS CHAR), COUNT(*), CAST(COALESCE(SUM({h}), 0) AS CHAR)"
        ));
    } else {
        s.push(&format!(
            "SELECT {b}::text, count(*), coalesce(sum(({h})::numeric), 0)::text"
        ));
    }
    s.push_from(t).where_range(&[], &KeyRange::all());
    s.push(" GROUP BY 1");
    s
}

/// Every row of some buckets: its columns printed (`exprs`), its hash, its bucket.
pub(crate) fn bucket_rows(
    t: &Table,
    exprs: &[String],
    h: &str,
    n: u64,
    buckets: &[u64],
    mysql: bool,
) -> Stmt {
    let mut s = Stmt::new(mysql);
    let b = bucket_of(h, n, mysql);
    let list: Vec<String> = buckets.iter().map(u64::to_string).collect();
    s.push("SELECT ").push(&exprs.join(", "));
    s.push(&format!(", {h}, {b}"));
    s.push_from(t).where_range(&[], &KeyRange::all());
    let cond = format!("{b} IN ({})", list.join(", "));
    if s.sql.contains(" WHERE ") {
        s.push(&format!(" AND {cond}"));
    } else {
        s.push(&format!(" WHERE {cond}"));
    }
    s
}

/// Key texts and the row hash of every row in a range, in key order (at most `limit`).
pub(crate) fn leaf_rows(
    t: &Table,
    h: &str,
    key: &[&Column],
    range: &KeyRange,
    limit: u64,
    mysql: bool,
) -> Stmt {
    let mut s = Stmt::new(mysql);
    let mut exprs: Vec<String> = key.iter().map(|c| key_text(mysql, c)).collect();
    exprs.push(h.to_string());
    s.push("SELECT ").push(&exprs.join(", "));
    s.push_from(t).where_range(key, range).order_by_key(key);
    s.push(&format!(" LIMIT {limit}"));
    s
}

/// The key of the row `offset` rows into a range (a boundary lookup), in key order.
pub(crate) fn key_at(
    t: &Table,
    key: &[&Column],
    range: &KeyRange,
    offset: u64,
    mysql: bool,
) -> Stmt {
    let mut s = Stmt::new(mysql);
    let exprs: Vec<String> = key.iter().map(|c| key_text(mysql, c)).collect();
    s.push("SELECT ").push(&exprs.join(", "));
    s.push_from(t).where_range(key, range).order_by_key(key);
    if mysql {
        s.push(&format!(" LIMIT {offset}, 1"));
    } else {
        s.push(&format!(" LIMIT 1 OFFSET {offset}"));
    }
    s
}

/// `MIN(key), MAX(key)` of a single-column integer key over a range.
pub(crate) fn int_bounds(t: &Table, key: &Column, range: &KeyRange, mysql: bool) -> Stmt {
    let mut s = Stmt::new(mysql);
    let q = quote(mysql, &key.name);
    if mysql {
        s.push(&format!(
            "SELECT CAST(MIN({q}) AS CHAR), CAST(MAX({q}) AS CHAR)"
        ));
    } else {
        s.push(&format!("SELECT min({q})::text, max({q})::text"));
    }
    s.push_from(t).where_range(&[key], range);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, class: TypeClass, nullable: bool) -> Column {
        Column {
            name: name.into(),
            sql_type: "integer".into(),
            nullable,
            class,
        }
    }

    const INT: TypeClass = TypeClass::Int {
        unsigned: false,
        bool_like: false,
    };

    #[test]
    fn identifiers_are_quoted_per_engine() {
        assert_eq!(quote(true, "we`ird"), "`we``ird`");
        assert_eq!(quote(false, "we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn nulls_get_flags_only_for_nullable_columns() {
        let a = col("a", INT, false);
        let b = col("b", TypeClass::Text, true);
        assert_eq!(
            row_hash(true, &[&a, &b]),
            "(CRC32(CONCAT_WS('#', `a`, `b`, CONCAT(ISNULL(`b`)))) * 2654435761)"
        );
        assert_eq!(
            row_hash(false, &[&a, &b]),
            "hashtextextended(ROW(\"a\", \"b\")::text, 0)"
        );
    }

    #[test]
    fn composite_ranges_use_the_expanded_form_on_mysql_and_rows_on_postgres() {
        let a = col("a", INT, false);
        let b = col("b", TypeClass::Text, false);
        let range = KeyRange {
            lo: Some(Bound::Vals(vec!["1".into(), "x".into()])),
            hi: None,
        };
        let mut s = Stmt::new(true);
        s.where_range(&[&a, &b], &range);
        assert_eq!(s.sql, " WHERE ((`a` > ?) OR (`a` = ? AND `b` >= ?))");
        assert_eq!(s.binds.len(), 3);
        let mut s = Stmt::new(false);
        s.where_range(&[&a, &b], &range);
        assert_eq!(s.sql, " WHERE (\"a\", \"b\") >= ($1::integer, $2::integer)");
    }
}
