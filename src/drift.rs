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
    let (source, target) = futures::try_join!(
        connect_endpoint(&src, Side::Source),
        connect_endpoint(&tgt, Side::Target)
    )?;
    let opts = DbOptions {
        chunk_time: args.chunk_time,
        max_concurrent: args.max_concurrent.max(1),
        max_keys: args.max_keys.max(1),
        tables: args.tables.clone(),
        ..DbOptions::default()
    };
    let result = crate::db::compare(&source, &target, &opts, |_| {}).await;
    futures::join!(source.close(), target.close());
    result
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
