//! Helpers the native-engine tests share: running the built binary's `check --json`.

use std::path::Path;

/// `cutover check PLAN --json`: the exit code and the parsed report.
pub fn check_json(plan: &Path) -> (Option<i32>, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "--json"])
        .arg(plan)
        .output()
        .unwrap_or_else(|e| panic!("run cutover: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "check --json printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

/// The report's reading from `source` (e.g. "replication"), or its error.
pub fn reading<'a>(report: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    report["readings"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["source"] == source))
        .unwrap_or_else(|| panic!("no {source} reading in {report:#}"))
}
