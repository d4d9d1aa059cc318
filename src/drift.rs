//! `cutover drift`: the headless compare. Prints each table's counts, checksum verdict and
//! differing keys (or JSON), and exits 0 when nothing differs, 1 on drift, 2 on error.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::DriftArgs;
use crate::db::{DbError, DbOptions, connect_endpoint};
use crate::event::{ChecksumState, Side, TableDrift};
use crate::plan::{Endpoint, Engine};
use crate::redact;

fn engine_of(url: &str) -> Option<Engine> {
    let scheme = url.split_once("://")?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "mysql" | "mariadb" => Some(Engine::Mysql),
        "postgres" | "postgresql" => Some(Engine::Postgres),
        _ => None,
    }
}

fn endpoint(
    side: Side,
    url: &str,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Endpoint, DbError> {
    let Some(engine) = engine_of(url) else {
        return Err(DbError::Config {
            who: side.as_str().into(),
            reason: format!("unknown database in url {}", redact::url_hiding_user(url)),
            fix: "start the url with mysql://, mariadb:// or postgres://".into(),
        });
    };
    Ok(Endpoint {
        engine,
        label: side.as_str().into(),
        url: Some(url.to_string()),
        password_env: env.clone(),
        password_file: file.as_ref().map(|p| p.display().to_string()),
    })
}

/// Runs the compare; returns the process exit code (0 no drift, 1 drift, 2 error). Errors
/// are printed to stderr (scrubbed of secrets), never returned.
pub async fn drift_command(args: DriftArgs) -> anyhow::Result<i32> {
    // Every secret a URL carries (userinfo, query parameters, keyword pairs). Connection
    // errors hide the user name themselves (it may be a password typed in its place).
    let secrets: Vec<String> = [&args.source, &args.target]
        .iter()
        .flat_map(|u| redact::url_secret_values(u))
        .collect();
    match run(&args).await {
        Ok(drifts) => {
            let drift = drifts.iter().any(has_drift);
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&drifts)?)?;
            } else {
                write!(out, "{}", render(&drifts))?;
            }
            Ok(if drift { 1 } else { 0 })
        }
        Err(e) => {
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            eprintln!("cutover drift: {}", redact::text(&e.to_string(), &refs));
            Ok(2)
        }
    }
}

async fn run(args: &DriftArgs) -> Result<Vec<TableDrift>, DbError> {
    let src = endpoint(
        Side::Source,
        &args.source,
        &args.source_password_env,
        &args.source_password_file,
    )?;
    let tgt = endpoint(
        Side::Target,
        &args.target,
        &args.target_password_env,
        &args.target_password_file,
    )?;
    if let Some(w) = &args.where_sql
        && let Err((col, reason)) = crate::db::check_where(w)
    {
        return Err(DbError::Config {
            who: "--where".into(),
            reason: format!("at column {col}: {reason}"),
            fix: "give one SQL condition, e.g. --where \"region = 'eu'\"".into(),
        });
    }
    let (source, target) = futures::try_join!(
        connect_endpoint(&src, Side::Source),
        connect_endpoint(&tgt, Side::Target)
    )?;
    let opts = DbOptions {
        chunk_time: args.chunk_time,
        max_concurrent: args.max_concurrent.max(1),
        max_keys: args.max_keys.max(1),
        tables: args.tables.clone(),
        client_hash: args.client_hash,
        max_lag_s: args.max_lag,
        max_load: args.max_load,
        lag_query: args.lag_query.clone(),
        window: crate::db::Window {
            where_sql: args.where_sql.clone(),
            since: args.since.clone(),
        },
        ..DbOptions::default()
    };
    let (throttled, mut shown) = tokio::sync::watch::channel(None::<String>);
    // Throttling is said on stderr as it starts and ends (stdout stays the result's).
    let watcher = tokio::spawn(async move {
        while shown.changed().await.is_ok() {
            match shown.borrow_and_update().as_deref() {
                Some(why) => eprintln!("cutover drift: {why}"),
                None => eprintln!("cutover drift: resumed"),
            }
        }
    });
    let mut meter = Progress::new();
    let progress = |d: &TableDrift| meter.show(d);
    let result = match &args.repair_sql {
        None => crate::db::compare_observed(&source, &target, &opts, progress, throttled).await,
        Some(path) => match crate::db::compare_with_repair(&source, &target, &opts, progress).await
        {
            Ok(repair) => write_repair(path, &repair).map(|()| repair.drifts),
            Err(e) => Err(e),
        },
    };
    futures::join!(source.close(), target.close());
    watcher.abort();
    result
}

/// Progress on stderr: rows done, rate and the table's ETA, at most once a second; on a
/// terminal one line rewritten in place, else plain lines.
struct Progress {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
    tty: bool,
    table: String,
    table_started: std::time::Instant,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress {
            started: now,
            last: None,
            tty: std::io::stderr().is_terminal(),
            table: String::new(),
            table_started: now,
        }
    }

    fn show(&mut self, d: &TableDrift) {
        let now = std::time::Instant::now();
        if d.table != self.table {
            self.table = d.table.clone();
            self.table_started = now;
        }
        if self
            .last
            .is_some_and(|l| now.duration_since(l).as_secs_f64() < 1.0)
        {
            return;
        }
        self.last = Some(now);
        let rows = d.source_rows.unwrap_or(0);
        let secs = now
            .duration_since(self.table_started)
            .as_secs_f64()
            .max(1e-3);
        let rate = rows as f64 / secs;
        let eta = match (d.chunks_done, d.chunks_total) {
            (Some(done), Some(total)) if done > 0 && total > done => {
                format!(", ETA {:.0} s", secs * (total - done) as f64 / done as f64)
            }
            _ => String::new(),
        };
        let line = format!(
            "{}: {} rows, {:.0} rows/s, chunks {}/{}{eta} ({:.0} s in all)",
            d.table,
            rows,
            rate,
            d.chunks_done.unwrap_or(0),
            d.chunks_total.unwrap_or(0),
            now.duration_since(self.started).as_secs_f64()
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Writes the repair script (mode 0600: it holds row data) and says where on stderr.
fn write_repair(path: &std::path::Path, repair: &crate::db::Repair) -> Result<(), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| DbError::Config {
        who: "--repair-sql".into(),
        reason: format!("cannot write {}: {e}", path.display()),
        fix: "name a file in a writable directory".into(),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(repair.sql.as_bytes()).map_err(fail)?;
    eprintln!(
        "cutover drift: {} repair statements written to {} (review them; cutover never runs them)",
        repair.statements,
        path.display()
    );
    Ok(())
}

/// Whether a table reading shows drift (counts differ or checksums mismatch).
pub fn has_drift(d: &TableDrift) -> bool {
    d.checksum == ChecksumState::Mismatch || d.row_diff().is_some_and(|n| n > 0)
}

/// The human-readable report.
pub fn render(drifts: &[TableDrift]) -> String {
    let width = drifts
        .iter()
        .map(|d| d.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = format!(
        "{:<width$}  {:>12}  {:>12}  {:<8}  {}\n",
        "table", "source rows", "target rows", "checksum", "chunks"
    );
    let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    for d in drifts {
        s.push_str(&format!(
            "{:<width$}  {:>12}  {:>12}  {:<8}  {}\n",
            d.table,
            n(d.source_rows),
            n(d.target_rows),
            d.checksum.as_str(),
            n(d.chunks_done)
        ));
        if let Some(note) = &d.note {
            s.push_str(&format!("  ({note})\n"));
        }
        for k in &d.differing_keys {
            s.push_str(&format!("  {}  {}\n", k.key, k.kind.as_str()));
        }
    }
    let drifting = drifts.iter().filter(|d| has_drift(d)).count();
    if drifting == 0 {
        s.push_str(&format!("no drift in {} tables\n", drifts.len()));
    } else {
        s.push_str(&format!("drift in {drifting} of {} tables\n", drifts.len()));
    }
    s
}
