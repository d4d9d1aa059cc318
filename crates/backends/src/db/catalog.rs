//! Discovery from the catalog (information_schema on MySQL/MariaDB, pg_catalog on
//! PostgreSQL): base tables, their primary keys and column types.

use super::DbError;
use super::conn::{Bind, Db};

/// What kind of value a column holds, as far as comparing it is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeClass {
    /// Any integer; `bool_like` for MySQL `tinyint(1)`.
    Int {
        unsigned: bool,
        bool_like: bool,
    },
    Bool,
    Decimal,
    Float32,
    Float64,
    Date,
    Time,
    /// Date and time; `tz` when the engine stores an instant (MySQL TIMESTAMP, timestamptz).
    Timestamp {
        tz: bool,
    },
    Text,
    Binary,
    /// MySQL BIT(n).
    Bit,
    Json,
    Uuid,
    Other,
}

impl TypeClass {
    fn mysql(data_type: &str, column_type: &str) -> TypeClass {
        let unsigned = column_type.contains("unsigned");
        match data_type {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                TypeClass::Int {
                    unsigned,
                    bool_like: column_type.starts_with("tinyint(1)"),
                }
            }
            "decimal" | "numeric" => TypeClass::Decimal,
            "float" => TypeClass::Float32,
            "double" | "real" | "double precision" => TypeClass::Float64,
            "date" => TypeClass::Date,
            "time" => TypeClass::Time,
            "datetime" => TypeClass::Timestamp { tz: false },
            "timestamp" => TypeClass::Timestamp { tz: true },
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
            | "set" | "inet4" | "inet6" => TypeClass::Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" => TypeClass::Binary,
            "bit" => TypeClass::Bit,
            "json" => TypeClass::Json,
            "uuid" => TypeClass::Uuid,
            _ => TypeClass::Other,
        }
    }

    fn postgres(typname: &str) -> TypeClass {
        match typname {
            "int2" | "int4" | "int8" | "oid" => TypeClass::Int {
                unsigned: false,
                bool_like: false,
            },
            "bool" => TypeClass::Bool,
            "numeric" | "money" => TypeClass::Decimal,
            "float4" => TypeClass::Float32,
            "float8" => TypeClass::Float64,
            "date" => TypeClass::Date,
            "time" => TypeClass::Time,
            "timestamp" => TypeClass::Timestamp { tz: false },
            "timestamptz" => TypeClass::Timestamp { tz: true },
            "text" | "varchar" | "bpchar" | "name" | "citext" | "char" => TypeClass::Text,
            "bytea" => TypeClass::Binary,
            "json" | "jsonb" => TypeClass::Json,
            "uuid" => TypeClass::Uuid,
            _ => TypeClass::Other,
        }
    }

    pub(crate) fn is_int(self) -> bool {
        matches!(self, TypeClass::Int { .. })
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    /// The full type as the engine writes it (`bigint(20) unsigned`, `numeric(12,2)`):
    /// PostgreSQL casts bound key values to it.
    pub sql_type: String,
    pub nullable: bool,
    pub class: TypeClass,
}

/// One base table: its columns in order and the indexes of its primary key columns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Primary key columns, in key order (indexes into `columns`); empty: no primary key.
    pub pk: Vec<usize>,
    /// The catalog's row estimate (for progress only).
    pub est_rows: u64,
    /// The window's condition on this table (`--where`, `--since`), added to every
    /// statement's WHERE; `None`: every row.
    pub filter: Option<String>,
    /// The index the key comes from (`PRIMARY` on MySQL, or a unique index of NOT NULL
    /// columns when there is no primary key); chunk statements force it on MySQL.
    /// `None`: no index to force (no key, or this side's key is not the compare's).
    pub key_index: Option<String>,
}

impl Table {
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn key_columns(&self) -> Vec<&Column> {
        self.pk.iter().map(|&i| &self.columns[i]).collect()
    }
}

/// Every base table of the database's schema (or only `only`, matched without case).
pub(crate) async fn discover(db: &Db, only: &[String]) -> Result<Vec<Table>, DbError> {
    let schema = db.schema().to_string();
    let (columns_sql, keys_sql) = if db.is_mysql() {
        (
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, LOWER(c.DATA_TYPE), LOWER(c.COLUMN_TYPE), \
             c.IS_NULLABLE, CAST(COALESCE(t.TABLE_ROWS, 0) AS CHAR) \
             FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
               ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' \
             ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
            // The primary key, else unique indexes (a table without a primary key is
            // chunked by the first unique index whose columns are all NOT NULL).
            "SELECT TABLE_NAME, COLUMN_NAME, INDEX_NAME, NULLABLE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 0 \
             ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        )
    } else {
        (
            "SELECT c.relname::text, a.attname::text, \
               (CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END)::text, \
               format_type(a.atttypid, a.atttypmod), \
               CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END, \
               GREATEST(c.reltuples, 0)::bigint::text \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
             ORDER BY c.relname, a.attnum",
            "SELECT c.relname::text, a.attname::text, ic.relname::text, \
               CASE WHEN a.attnotnull THEN '' ELSE 'YES' END \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE (i.indisprimary OR i.indisunique) AND i.indpred IS NULL \
               AND i.indexprs IS NULL AND n.nspname = $1 \
             ORDER BY c.relname, i.indisprimary DESC, ic.relname, k.ord",
        )
    };
    let binds = [Bind::Text(schema.clone())];
    let (col_rows, key_rows) = futures::try_join!(
        db.rows("reading the column catalog", columns_sql, &binds),
        db.rows("reading the primary keys", keys_sql, &binds),
    )?;

    let mut tables: Vec<Table> = Vec::new();
    for row in col_rows {
        let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (table, name, data_type, sql_type) = (cell(0), cell(1), cell(2), cell(3));
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&table)) {
            continue;
        }
        let class = if db.is_mysql() {
            TypeClass::mysql(&data_type, &sql_type)
        } else {
            TypeClass::postgres(&data_type)
        };
        let column = Column {
            name,
            sql_type,
            nullable: cell(4) == "YES",
            class,
        };
        match tables.last_mut() {
            Some(t) if t.name == table => t.columns.push(column),
            _ => tables.push(Table {
                schema: schema.clone(),
                name: table,
                columns: vec![column],
                pk: Vec::new(),
                est_rows: cell(5).parse().unwrap_or(0),
                filter: None,
                key_index: None,
            }),
        }
    }
    // Per table, the first index (primary first) with no nullable column is the key.
    let mut groups: Vec<(String, String, Vec<String>, bool)> = Vec::new();
    for row in key_rows {
        let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (table, column, index, nullable) = (cell(0), cell(1), cell(2), cell(3) == "YES");
        match groups.last_mut() {
            Some((t, ix, cols, any_null)) if *t == table && *ix == index => {
                cols.push(column);
                *any_null |= nullable;
            }
            _ => groups.push((table, index, vec![column], nullable)),
        }
    }
    for (table, index, cols, any_null) in groups {
        let Some(t) = tables.iter_mut().find(|t| t.name == table) else {
            continue;
        };
        if any_null || !t.pk.is_empty() {
            continue;
        }
        let idx: Option<Vec<usize>> = cols
            .iter()
            .map(|c| t.columns.iter().position(|col| col.name == *c))
            .collect();
        if let Some(idx) = idx {
            t.pk = idx;
            t.key_index = Some(index);
        }
    }
    for o in only {
        if !tables.iter().any(|t| t.name.eq_ignore_ascii_case(o)) {
            return Err(DbError::Schema {
                who: db.who(),
                reason: format!("table \"{o}\" not found in {}", db.schema()),
                fix: "check the name in --tables / the plan, or the database in the url".into(),
            });
        }
    }
    Ok(tables)
}
