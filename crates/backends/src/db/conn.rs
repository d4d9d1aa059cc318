//! Connections to the plan's databases: a URL without secrets plus a password from an
//! environment variable, a file or the usual client config; read-only probe sessions; a
//! writer opened only when something must write; every error scrubbed of secrets and
//! naming the endpoint and the fix.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column, Connection, Row};

use super::DbError;
use cutover_core::event::Side;
use cutover_core::plan::{Endpoint, Engine, Plan};
use cutover_core::redact;

/// How long to wait for a connection before giving up on a poll.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Probe connections: chunk queries of both the drift compare and guardrails.
const PROBE_CONNECTIONS: u32 = 8;
/// The application name PostgreSQL shows for our sessions (and the guardrails exclude).
pub(crate) const APP_NAME: &str = "cutover";

/// A bind parameter. Key values travel as text and are cast back in the SQL.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bind {
    I64(i64),
    U64(u64),
    Text(String),
}

/// One result row, every cell as text (`None` is SQL NULL).
pub(crate) type TextRow = Vec<Option<String>>;

#[derive(Clone)]
pub(crate) enum Pool {
    Mysql(MySqlPool),
    Postgres(PgPool),
}

impl Pool {
    fn size(&self) -> u32 {
        match self {
            Pool::Mysql(p) => p.size(),
            Pool::Postgres(p) => p.size(),
        }
    }

    async fn close(&self) {
        match self {
            Pool::Mysql(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

#[derive(Clone)]
enum Options {
    Mysql(MySqlConnectOptions),
    Postgres(PgConnectOptions),
}

/// A connected database: one side of the migration. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    side: Side,
    engine: Engine,
    label: String,
    /// The URL with any password masked, for messages.
    url: String,
    /// The MySQL database or PostgreSQL schema whose tables are compared.
    schema: String,
    version: String,
    probe: Pool,
    options: Options,
    writer: tokio::sync::OnceCell<Pool>,
    /// Known secret values, scrubbed from every message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("side", &self.0.side)
            .field("label", &self.0.label)
            .field("url", &self.0.url)
            .field("schema", &self.0.schema)
            .finish_non_exhaustive()
    }
}

/// Connects to the plan's source or target database with a read-only probe session.
pub async fn connect(plan: &Plan, side: Side) -> Result<Db, DbError> {
    let endpoint = match side {
        Side::Source => &plan.source,
        Side::Target => &plan.target,
    };
    connect_endpoint(endpoint, side).await
}

/// Connects to one endpoint (the plan's, or one built from `cutover drift` arguments).
pub async fn connect_endpoint(endpoint: &Endpoint, side: Side) -> Result<Db, DbError> {
    let who = who(side, &endpoint.label);
    let Some(raw_url) = endpoint.url.as_deref() else {
        return Err(DbError::Config {
            who,
            reason: "no url".into(),
            fix: "add url = \"mysql://user@host:3306/db\" or \"postgres://user@host:5432/db\" to the endpoint".into(),
        });
    };
    // Until the server has accepted the login, the "user" may be a password typed in the
    // user position: errors before then show neither (`mysql://***@host/db`).
    let shown_url = redact::url_hiding_user(raw_url);
    let engine = match endpoint.engine {
        Engine::Rehearsal => {
            return Err(DbError::Config {
                who,
                reason: "the rehearsal engine has no real database".into(),
                fix: "set engine = \"mysql\" or \"postgres\" with a url, or run the rehearsal"
                    .into(),
            });
        }
        e => e,
    };
    let mut password = resolve_password(endpoint, &who)?;
    let url_secrets = redact::url_secret_values(raw_url);
    if password.is_none() && url_secrets.is_empty() && engine == Engine::Mysql {
        // PostgreSQL's driver reads PGPASSWORD and ~/.pgpass itself.
        password = mysql_client_password();
    }
    let mut secrets: Vec<String> = password.iter().cloned().collect::<Vec<_>>();
    secrets.extend(url_secrets);
    // Connection errors also hide the user name where the server's message quotes it
    // (`user 'x'@`, `role "x"`); elsewhere the same word may mean something else.
    let mut login_secrets = secrets.clone();
    if let Some(user) = redact::url_user(raw_url) {
        login_secrets.extend([format!("'{user}'"), format!("\"{user}\"")]);
    }
    let secrets_before_login = &login_secrets;
    let fail = |reason: String, fix: &str| DbError::Config {
        who: who.clone(),
        reason: redact::text(&reason, &refs(secrets_before_login)),
        fix: fix.into(),
    };

    let (probe, options, schema, version) = match engine {
        Engine::Mysql => {
            let url = normalize_mysql_scheme(raw_url);
            let mut opts = MySqlConnectOptions::from_str(&url).map_err(|e| {
                fail(
                    format!("bad url {shown_url}: {e}"),
                    "write it as mysql://user@host:3306/database",
                )
            })?;
            if let Some(p) = &password {
                opts = opts.password(p);
            }
            let Some(schema) = opts.get_database().map(str::to_string) else {
                return Err(fail(
                    format!("the url {shown_url} names no database"),
                    "add the database to the url: mysql://user@host:3306/database",
                ));
            };
            // sqlx turns on PIPES_AS_CONCAT by default; SQL actions must keep the server's
            // meaning of `||`.
            let opts = opts
                .timezone(Some("+00:00".to_string()))
                .pipes_as_concat(false);
            // One direct connection first: a pool retries failed logins until its timeout
            // and then reports only the timeout, not the server's reason.
            // Within the connect deadline: a port that accepts and never answers must not
            // hang the caller (sqlx has no connect timeout of its own).
            let mut first = within(
                &who,
                &shown_url,
                sqlx::mysql::MySqlConnection::connect_with(&opts),
            )
            .await?
            .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            within(&who, &shown_url, mysql_probe_session(&mut first))
                .await?
                .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            // Closing politely is a courtesy; the server drops the session either way.
            let _ = first.close().await;
            let pool = MySqlPoolOptions::new()
                .max_connections(PROBE_CONNECTIONS)
                .min_connections(0)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(|conn, _| Box::pin(mysql_probe_session(conn)))
                .connect_with(opts.clone())
                .await
                .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            let version: String = sqlx::query_scalar("SELECT VERSION()")
                .fetch_one(&pool)
                .await
                .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            (Pool::Mysql(pool), Options::Mysql(opts), schema, version)
        }
        _ => {
            let (url, schema_param) = split_schema_param(raw_url);
            let mut opts = PgConnectOptions::from_str(&url).map_err(|e| {
                fail(
                    format!("bad url {shown_url}: {e}"),
                    "write it as postgres://user@host:5432/database[?schema=name]",
                )
            })?;
            if let Some(p) = &password {
                opts = opts.password(p);
            }
            let opts = opts.application_name(APP_NAME).options([
                ("TimeZone", "UTC"),
                ("DateStyle", "ISO, YMD"),
                ("IntervalStyle", "postgres"),
                ("extra_float_digits", "1"),
                ("bytea_output", "hex"),
            ]);
            // Within the connect deadline: a port that accepts and never answers must not
            // hang the caller (sqlx has no connect timeout of its own).
            let mut first = within(
                &who,
                &shown_url,
                sqlx::postgres::PgConnection::connect_with(&opts),
            )
            .await?
            .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            within(&who, &shown_url, pg_probe_session(&mut first))
                .await?
                .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            let _ = first.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(PROBE_CONNECTIONS)
                .min_connections(0)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(|conn, _| Box::pin(pg_probe_session(conn)))
                .connect_with(opts.clone())
                .await
                .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            let row: (String, String) =
                sqlx::query_as("SELECT current_setting('server_version'), current_schema()::text")
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| connect_error(&who, &shown_url, secrets_before_login, &e))?;
            let schema = schema_param.unwrap_or(row.1);
            (
                Pool::Postgres(pool),
                Options::Postgres(opts),
                schema,
                format!("PostgreSQL {}", row.0),
            )
        }
    };
    Ok(Db(Arc::new(Inner {
        side,
        engine,
        label: endpoint.label.clone(),
        // The login worked, so the user is a user: messages from now on may name it.
        url: redact::url(raw_url),
        schema,
        version,
        probe,
        options,
        writer: tokio::sync::OnceCell::new(),
        secrets,
    })))
}

/// Probe sessions are read-only and in UTC, so TIMESTAMP columns print alike on both sides.
async fn mysql_probe_session(conn: &mut sqlx::mysql::MySqlConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET SESSION time_zone = '+00:00'")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Read-only; time zone and formats come with the startup options.
async fn pg_probe_session(conn: &mut sqlx::postgres::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `source "prod-mysql"`, or just `source` when the label is the side's name.
pub(crate) fn who(side: Side, label: &str) -> String {
    if label.is_empty() || label == side.as_str() {
        side.as_str().to_string()
    } else {
        format!("{} \"{label}\"", side.as_str())
    }
}

fn resolve_password(endpoint: &Endpoint, who: &str) -> Result<Option<String>, DbError> {
    if let Some(var) = &endpoint.password_env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(DbError::Config {
                who: who.to_string(),
                reason: format!("password_env names ${var}, which is not set"),
                fix: format!("export {var}=... before starting, or use password_file"),
            }),
        };
    }
    if let Some(file) = &endpoint.password_file {
        let path = cutover_runtime::secrets::expand_home(file);
        let fail = |reason: String| DbError::Config {
            who: who.to_string(),
            reason,
            fix: "write the password on the first line of a regular file (mode 0600)".into(),
        };
        return cutover_runtime::secrets::read_password_file(&path)
            .map(Some)
            .map_err(fail);
    }
    Ok(None)
}

fn normalize_mysql_scheme(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

/// Removes our own `schema=` query parameter (sqlx does not know it) and returns it.
fn split_schema_param(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(v) => {
                schema = Some(redact::percent_decode(v));
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_string(), schema)
    } else {
        (format!("{base}?{}", rest.join("&")), schema)
    }
}

/// `MYSQL_PWD`, then `password` in the `[client]` (or `[mysql]`) group of `~/.my.cnf`.
fn mysql_client_password() -> Option<String> {
    if let Ok(p) = std::env::var("MYSQL_PWD") {
        return Some(p);
    }
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(Path::new(&home).join(".my.cnf")).ok()?;
    my_cnf_password(&text)
}

pub(crate) fn my_cnf_password(text: &str) -> Option<String> {
    let mut group = String::new();
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = g.trim().to_ascii_lowercase();
            continue;
        }
        if group != "client" && group != "mysql" {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("password") {
            let v = value.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            // `[client]` wins over `[mysql]` only by order: the last one read applies,
            // as in the mysql client.
            found = Some(v.to_string());
        }
    }
    found
}

/// Runs a connect step within the process's connect deadline
/// ([`cutover_runtime::net::connect_timeout`]).
async fn within<T>(
    who: &str,
    shown_url: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, DbError> {
    cutover_runtime::net::within(&host_port(shown_url), fut)
        .await
        .map_err(|reason| DbError::Connect {
            who: who.to_string(),
            url: shown_url.to_string(),
            reason,
            fix: "check the host and port in the url (and that it is this engine's port), and that the server is up and reachable from here".to_string(),
        })
}

/// `host:port` of a URL (its authority without userinfo), for "no answer from ...".
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

fn connect_error(who: &str, url: &str, secrets: &[String], e: &sqlx::Error) -> DbError {
    let reason = redact::text(&e.to_string(), &refs(secrets));
    DbError::Connect {
        who: who.to_string(),
        url: url.to_string(),
        fix: fix_for(e).to_string(),
        reason,
    }
}

/// What to do about a driver error, by its SQLSTATE / MySQL code and kind.
pub(crate) fn fix_for(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = d.message().to_ascii_lowercase();
            match code.as_str() {
                "28000" | "28P01" => {
                    "check the user, and the password in password_env / password_file / ~/.my.cnf / ~/.pgpass"
                }
                "3D000" | "42000"
                    if msg.contains("unknown database") || msg.contains("does not exist") =>
                {
                    "create the database, or fix its name in the url"
                }
                "42501" => {
                    "grant the user the privilege the message names (SELECT, PROCESS, REPLICATION CLIENT)"
                }
                "42S02" | "42P01" => {
                    "create the table, or fix the name (see `cutover heartbeat-setup` for the heartbeat table)"
                }
                "25006" | "HY000" if msg.contains("read only") || msg.contains("read-only") => {
                    "the session or server is read-only; run writes on the other side or clear read_only first"
                }
                _ => "check the statement and the user's privileges",
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            "check the host and port in the url, and that the server is running and reachable"
        }
        sqlx::Error::PoolTimedOut => {
            "the server did not accept a connection in time; check that it is reachable and not at max_connections"
        }
        sqlx::Error::Configuration(_) => "fix the url",
        _ => "check the url, the network and the server log",
    }
}

impl Db {
    pub fn side(&self) -> Side {
        self.0.side
    }

    pub fn engine(&self) -> Engine {
        self.0.engine
    }

    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// The database (MySQL) or schema (PostgreSQL) whose tables are compared.
    pub fn schema(&self) -> &str {
        &self.0.schema
    }

    /// Server product and version, e.g. `10.11.19-MariaDB` or `PostgreSQL 15.2`.
    pub fn version(&self) -> &str {
        &self.0.version
    }

    /// The URL with the password masked.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// `source "label"`, for messages.
    pub fn who(&self) -> String {
        who(self.0.side, &self.0.label)
    }

    pub(crate) fn is_mysql(&self) -> bool {
        self.0.engine == Engine::Mysql
    }

    /// Scrubs known secrets and URL passwords from a message.
    pub fn redact(&self, text: &str) -> String {
        redact::text(text, &refs(&self.0.secrets))
    }

    pub(crate) fn query_error(&self, what: &str, e: &sqlx::Error) -> DbError {
        DbError::Query {
            who: self.who(),
            what: what.to_string(),
            reason: self.redact(&e.to_string()),
            fix: fix_for(e).to_string(),
        }
    }

    /// Open probe and writer connections, so the guardrails can leave them out.
    pub(crate) fn own_connections(&self) -> u64 {
        let w = self.0.writer.get().map(Pool::size).unwrap_or(0);
        u64::from(self.0.probe.size() + w)
    }

    /// Runs a read-only probe query and returns every row as text.
    pub(crate) async fn rows(
        &self,
        what: &str,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Vec<TextRow>, DbError> {
        self.rows_on(&self.0.probe, what, sql, binds).await
    }

    /// Like [`Db::rows`] on the writer session (not read-only).
    pub(crate) async fn writer_rows(
        &self,
        what: &str,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Vec<TextRow>, DbError> {
        let pool = self.writer().await?;
        self.rows_on(&pool, what, sql, binds).await
    }

    async fn rows_on(
        &self,
        pool: &Pool,
        what: &str,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Vec<TextRow>, DbError> {
        let result = match pool {
            Pool::Mysql(p) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
                for b in binds {
                    q = match b {
                        Bind::I64(v) => q.bind(*v),
                        Bind::U64(v) => q.bind(*v),
                        Bind::Text(v) => q.bind(v.clone()),
                    };
                }
                q.fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(mysql_text_row).collect())
            }
            Pool::Postgres(p) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
                for b in binds {
                    q = match b {
                        Bind::I64(v) => q.bind(*v),
                        Bind::U64(v) => q.bind(i64::try_from(*v).unwrap_or(i64::MAX)),
                        Bind::Text(v) => q.bind(v.clone()),
                    };
                }
                q.fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(pg_text_row).collect())
            }
        };
        result.map_err(|e| self.query_error(what, &e))
    }

    /// Runs a statement that cannot be prepared (`SHOW ...`) on a probe session; each row
    /// comes back as (column name, text) pairs.
    pub(crate) async fn show(
        &self,
        what: &str,
        sql: &str,
    ) -> Result<Vec<Vec<(String, Option<String>)>>, DbError> {
        // Each row's cells by column name; the same for both drivers but their row types.
        macro_rules! named {
            ($pool:expr, $cell:path) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .fetch_all($pool)
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|r| {
                                r.columns()
                                    .iter()
                                    .enumerate()
                                    .map(|(i, c)| (c.name().to_string(), $cell(r, i)))
                                    .collect()
                            })
                            .collect()
                    })
            };
        }
        let result = match &self.0.probe {
            Pool::Mysql(p) => named!(p, mysql_cell),
            Pool::Postgres(p) => named!(p, pg_cell),
        };
        result.map_err(|e| self.query_error(what, &e))
    }

    /// Streams a probe query's rows as text to `each`, without holding them all.
    pub(crate) async fn for_each_row(
        &self,
        what: &str,
        sql: &str,
        binds: &[Bind],
        mut each: impl FnMut(TextRow) + Send,
    ) -> Result<(), DbError> {
        let result: Result<(), sqlx::Error> = match &self.0.probe {
            Pool::Mysql(p) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
                for b in binds {
                    q = match b {
                        Bind::I64(v) => q.bind(*v),
                        Bind::U64(v) => q.bind(*v),
                        Bind::Text(v) => q.bind(v.clone()),
                    };
                }
                let mut s = q.fetch(p);
                loop {
                    match s.try_next().await {
                        Ok(Some(row)) => each(mysql_text_row(&row)),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
            }
            Pool::Postgres(p) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
                for b in binds {
                    q = match b {
                        Bind::I64(v) => q.bind(*v),
                        Bind::U64(v) => q.bind(i64::try_from(*v).unwrap_or(i64::MAX)),
                        Bind::Text(v) => q.bind(v.clone()),
                    };
                }
                let mut s = q.fetch(p);
                loop {
                    match s.try_next().await {
                        Ok(Some(row)) => each(pg_text_row(&row)),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
            }
        };
        result.map_err(|e| self.query_error(what, &e))
    }

    /// The writer session, opened on first use: heartbeat writes and SQL actions.
    async fn writer(&self) -> Result<Pool, DbError> {
        let pool = self
            .0
            .writer
            .get_or_try_init(|| async {
                match &self.0.options {
                    Options::Mysql(o) => MySqlPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_with(o.clone())
                        .await
                        .map(Pool::Mysql),
                    Options::Postgres(o) => PgPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_with(o.clone())
                        .await
                        .map(Pool::Postgres),
                }
                .map_err(|e| connect_error(&self.who(), &self.0.url, &self.0.secrets, &e))
            })
            .await?;
        Ok(pool.clone())
    }

    /// Runs one or more statements on the writer session (simple protocol) and reports each
    /// result as lines: rows (at most `max_rows` of them) or the number of rows affected.
    pub(crate) async fn execute_script(
        &self,
        script: &str,
        max_rows: usize,
        mut line: impl FnMut(String) + Send,
    ) -> Result<ScriptSummary, DbError> {
        let pool = self.writer().await?;
        let what = "the SQL action";
        let mut summary = ScriptSummary::default();
        // Rows of the statement being read; reset when its result summary arrives.
        let mut rows = 0usize;
        macro_rules! drive {
            ($pool:expr, $text:path) => {{
                let mut s = sqlx::raw_sql(AssertSqlSafe(script.to_string())).fetch_many($pool);
                while let Some(item) = s.next().await {
                    match item.map_err(|e| self.query_error(what, &e))? {
                        sqlx::Either::Left(done) => {
                            summary.statements += 1;
                            summary.rows_affected += done.rows_affected();
                            if rows > 0 {
                                line(format!("({rows} rows)"));
                            } else {
                                line(format!("{} rows affected", done.rows_affected()));
                            }
                            rows = 0;
                        }
                        sqlx::Either::Right(row) => {
                            summary.rows_returned += 1;
                            rows += 1;
                            if rows <= max_rows {
                                let cells: Vec<String> = $text(&row)
                                    .into_iter()
                                    .map(|c| c.unwrap_or_else(|| "NULL".into()))
                                    .collect();
                                line(self.redact(&cells.join("\t")));
                            } else if rows == max_rows + 1 {
                                line(format!("(more rows; the first {max_rows} are shown)"));
                            }
                        }
                    }
                }
            }};
        }
        match &pool {
            Pool::Mysql(p) => drive!(p, mysql_text_row),
            Pool::Postgres(p) => drive!(p, pg_text_row),
        }
        Ok(summary)
    }

    /// Closes every connection (probe and writer).
    pub async fn close(&self) {
        self.0.probe.close().await;
        if let Some(w) = self.0.writer.get() {
            w.close().await;
        }
    }
}

/// What a script did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScriptSummary {
    pub statements: u64,
    pub rows_affected: u64,
    pub rows_returned: u64,
}

/// Decodes any cell to text, whatever its wire type (text protocol or binary).
fn mysql_text_row(row: &MySqlRow) -> TextRow {
    (0..row.len()).map(|i| mysql_cell(row, i)).collect()
}

fn mysql_cell(row: &MySqlRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<rust_decimal::Decimal>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<chrono::NaiveDateTime>, _>(i) {
        return v.map(|v| v.format("%Y-%m-%d %H:%M:%S%.f").to_string());
    }
    if let Ok(v) = row.try_get::<Option<chrono::NaiveDate>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<chrono::NaiveTime>, _>(i) {
        return v.map(|v| v.to_string());
    }
    match row.try_get_unchecked::<Option<Vec<u8>>, _>(i) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(_) => None,
    }
}

fn pg_text_row(row: &PgRow) -> TextRow {
    (0..row.len()).map(|i| pg_cell(row, i)).collect()
}

fn pg_cell(row: &PgRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i16>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<rust_decimal::Decimal>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<chrono::NaiveDateTime>, _>(i) {
        return v.map(|v| v.format("%Y-%m-%d %H:%M:%S%.f").to_string());
    }
    if let Ok(v) = row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i) {
        return v.map(|v| v.format("%Y-%m-%d %H:%M:%S%.f+00").to_string());
    }
    // Text-format values (simple protocol) and anything else: the raw bytes.
    row.try_get_unchecked::<Option<String>, _>(i)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_cnf_password_is_read_from_the_client_group() {
        let text = "[mysqld]\npassword=server\n[client]\nuser = app\npassword = \"s3 cret\"\n";
        assert_eq!(my_cnf_password(text).as_deref(), Some("s3 cret"));
        assert_eq!(my_cnf_password("[mysqld]\npassword=x\n"), None);
    }

    #[test]
    fn schema_param_is_ours() {
        assert_eq!(
            split_schema_param("postgres://u@h/d?schema=shop&sslmode=disable"),
            (
                "postgres://u@h/d?sslmode=disable".to_string(),
                Some("shop".to_string())
            )
        );
        assert_eq!(
            split_schema_param("postgres://u@h/d?schema=shop"),
            ("postgres://u@h/d".to_string(), Some("shop".to_string()))
        );
        assert_eq!(
            split_schema_param("postgres://u@h/d"),
            ("postgres://u@h/d".to_string(), None)
        );
    }

    #[test]
    fn url_passwords_are_found_and_decoded() {
        assert_eq!(redact::url_secret_values("mysql://a:p%40ss@h/d")[0], "p@ss");
        assert!(redact::url_secret_values("mysql://a@h/d").is_empty());
    }
}
