//! PostgreSQL logical replication (`[replication] engine = "postgres"`) against the two
//! private clusters `tests/support/private_postgres.sh` starts: the publisher on
//! 127.0.0.1:5433 (wal_level = logical), the subscriber on 127.0.0.1:5434. Each test makes
//! its own database, table, publication and subscription, so they run in parallel.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SOURCE_PORT: u16 = 5433;
pub const TARGET_PORT: u16 = 5434;

/// Runs SQL through psql as postgres on `port`/`db`; panics with psql's answer on failure.
fn psql(port: u16, db: &str, sql: &str) -> String {
    try_psql(port, db, sql).unwrap_or_else(|e| panic!("psql on {port}/{db}: {sql}: {e}"))
}

fn try_psql(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Fails (never skips) when the private clusters are not up.
fn require_clusters() {
    for port in [SOURCE_PORT, TARGET_PORT] {
        if let Err(e) = try_psql(port, "postgres", "SELECT 1") {
            panic!(
                "the private PostgreSQL cluster on 127.0.0.1:{port} is not up ({e}); start both with `bash tests/support/private_postgres.sh` (.ci/run does)"
            );
        }
    }
}

/// One test's world: a database on both clusters with a table `items` (serial key), a
/// publication on the source and a subscription on the target, caught up.
pub struct Pair {
    pub db: String,
    dir: tempfile::TempDir,
}

impl Pair {
    pub fn new(tag: &str) -> Pair {
        require_clusters();
        let db = format!("native_{tag}");
        drop_pair(&db);
        for port in [SOURCE_PORT, TARGET_PORT] {
            psql(port, "postgres", &format!("CREATE DATABASE {db}"));
            psql(
                port,
                &db,
                "CREATE TABLE items (id serial PRIMARY KEY, v text NOT NULL)",
            );
        }
        psql(
            SOURCE_PORT,
            &db,
            &format!(
                "INSERT INTO items (v) SELECT 'row ' || g FROM generate_series(1, 20) g; \
                 CREATE PUBLICATION {db}_pub FOR TABLE items"
            ),
        );
        psql(
            TARGET_PORT,
            &db,
            &format!(
                "CREATE SUBSCRIPTION {db}_sub CONNECTION 'host=127.0.0.1 port={SOURCE_PORT} user=postgres dbname={db}' PUBLICATION {db}_pub"
            ),
        );
        let pair = Pair {
            db,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pair.wait_target_rows(20);
        pair
    }

    pub fn source(&self, sql: &str) -> String {
        psql(SOURCE_PORT, &self.db, sql)
    }

    pub fn target(&self, sql: &str) -> String {
        psql(TARGET_PORT, &self.db, sql)
    }

    fn wait_target_rows(&self, n: u64) {
        wait_for(&format!("{n} rows on the target"), || {
            self.target("SELECT count(*) FROM items") == n.to_string()
        });
    }

    /// A plan over this pair; `replication` replaces the [replication] body and `steps` is
    /// appended.
    fn plan(&self, replication: &str, steps: &str) -> String {
        let db = &self.db;
        let text = format!(
            "name = \"{db}\"\n\
             [source]\nengine = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{SOURCE_PORT}/{db}\"\n\
             [target]\nengine = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{TARGET_PORT}/{db}\"\n\
             [replication]\n{replication}\n{steps}"
        );
        static PLANS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PLANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("plan-{n}.toml"));
        std::fs::write(&path, text).expect("write plan");
        path.display().to_string()
    }

    fn default_replication(&self) -> String {
        format!(
            "engine = \"postgres\"\npublication = \"{0}_pub\"\nsubscription = \"{0}_sub\"",
            self.db
        )
    }

    fn check_plan(&self, gates: &[&str]) -> String {
        let gates: Vec<String> = gates.iter().map(|g| format!("\"{g}\"")).collect();
        self.plan(
            &self.default_replication(),
            &format!(
                "[[step]]\nid = \"drain\"\ntitle = \"caught up\"\ngates = [{}]\nconfirm = \"go\"\n",
                gates.join(", ")
            ),
        )
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        drop_pair(&self.db);
    }
}

/// Removes a test's databases, subscription and slot, whatever state a failed run left.
fn drop_pair(db: &str) {
    let exists = |port| {
        try_psql(
            port,
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"),
        )
        .is_ok_and(|o| o == "1")
    };
    if exists(TARGET_PORT) {
        // A drive leaves the target unfrozen, a failed one may not: ALTER SUBSCRIPTION
        // refuses a read-only transaction.
        psql(
            TARGET_PORT,
            "postgres",
            &format!("ALTER DATABASE {db} RESET default_transaction_read_only"),
        );
        let sub = format!("{db}_sub");
        if try_psql(
            TARGET_PORT,
            db,
            &format!("SELECT 1 FROM pg_subscription WHERE subname = '{sub}'"),
        )
        .is_ok_and(|o| o == "1")
        {
            psql(
                TARGET_PORT,
                db,
                &format!("ALTER SUBSCRIPTION {sub} DISABLE"),
            );
            psql(
                TARGET_PORT,
                db,
                &format!("ALTER SUBSCRIPTION {sub} SET (slot_name = NONE)"),
            );
            psql(TARGET_PORT, db, &format!("DROP SUBSCRIPTION {sub}"));
        }
        psql(
            TARGET_PORT,
            "postgres",
            &format!("DROP DATABASE {db} WITH (FORCE)"),
        );
    }
    // The slot outlives a subscription dropped with slot_name = NONE.
    wait_for(&format!("the slot {db}_sub to be released"), || {
        try_psql(
            SOURCE_PORT,
            "postgres",
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = '{db}_sub' AND NOT active; \
                 SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{db}_sub'"
            ),
        )
        .is_ok_and(|o| o.ends_with('0'))
    });
    if exists(SOURCE_PORT) {
        psql(
            SOURCE_PORT,
            "postgres",
            &format!("DROP DATABASE {db} WITH (FORCE)"),
        );
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out after 60s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cutover check PLAN --json`: (exit code, the report).
fn check(plan: &str) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", plan, "--json"])
        .output()
        .expect("runs cutover");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "check --json printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// The replication reading (or the replication source's error) of a check report.
fn replication(report: &Value) -> &Value {
    report["readings"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["source"] == "replication"))
        .unwrap_or_else(|| panic!("no replication reading in {report:#}"))
}

fn reading(report: &Value) -> &Value {
    let r = replication(report);
    let v = &r["value"];
    assert_eq!(
        v["kind"], "replication",
        "the replication source answered {r:#}"
    );
    v
}

/// Runs `cutover check` until `ok` holds on its report (the subscriber applies in the
/// background), returning the last report.
fn check_until(plan: &str, what: &str, ok: impl Fn(i32, &Value) -> bool) -> (i32, Value) {
    let started = Instant::now();
    loop {
        let (code, report) = check(plan);
        if ok(code, &report) {
            return (code, report);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out after 60s waiting for {what}; last report: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the first step's action of a plan over `pair` (whose steps are `steps`) through
/// the real backends `cutover run` uses: (ok, the output lines and the result or error).
fn run_action(steps: &str, pair: &Pair) -> (bool, String) {
    run_action_on(&pair.plan(&pair.default_replication(), steps))
}

fn run_action_on(plan_path: &str) -> (bool, String) {
    use cutover::action::Output;
    let plan = cutover::plan::load(std::path::Path::new(plan_path))
        .unwrap_or_else(|e| panic!("plan: {e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let backends = cutover::backend::Backends::connect(&plan, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("connect: {e:#}"));
        let actuator = backends.actuator();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out = Output::new(plan.steps[0].id.clone(), cutover::event::Direction::Do, tx);
        let result = actuator.run(&plan, &plan.steps[0].action, &out).await;
        let mut text = String::new();
        while let Ok(e) = rx.try_recv() {
            if let cutover::event::Event::ActionOutput { line, .. } = e {
                text.push_str(&line);
                text.push('\n');
            }
        }
        match result {
            Ok(msg) => (true, format!("{text}{msg}")),
            Err(e) => (false, format!("{text}{e}")),
        }
    })
}

#[test]
fn check_reports_running_and_caught_up_by_lsn_then_the_gap_while_disabled() {
    let pair = Pair::new("lsn");
    let plan = pair.check_plan(&[
        "replication.status == running",
        "replication.behind_bytes == 0",
    ]);
    let (code, report) = check_until(&plan, "running, 0 bytes behind, table ready", |code, r| {
        code == 0
            && r["gates"][1]["state"] == "green"
            && reading(r)["tables"][0]["table_state"] == "ready"
    });
    assert_eq!(code, 0, "{report:#}");
    let r = reading(&report);
    assert_eq!(r["engine"], "postgres");
    assert_eq!(r["status"], "running");
    assert_eq!(r["behind_bytes"], 0);
    assert_eq!(r["logical"]["enabled"], true);
    assert!(r["logical"]["worker_pid"].is_number(), "{r:#}");
    assert_eq!(r["logical"]["slot_active"], true);
    assert_eq!(
        r["logical"]["apply_errors"], 0,
        "PostgreSQL 15 counts apply errors"
    );
    // Named as the drift compare names it, so the drift gates see one table, not two.
    assert_eq!(r["tables"][0]["table"], "items");
    assert_eq!(r["tables"][0]["table_state"], "ready");
    assert!(
        r["source_position"]
            .as_str()
            .is_some_and(|p| p.contains('/'))
    );

    // Disabled: the subscriber stops confirming, so the gap grows with every write.
    pair.target(&format!("ALTER SUBSCRIPTION {}_sub DISABLE", pair.db));
    let (_, report) = check_until(&plan, "stopped", |_, r| reading(r)["status"] == "stopped");
    let first = reading(&report)["behind_bytes"].as_u64().unwrap_or(0);
    pair.source("INSERT INTO items (v) SELECT repeat('x', 200) FROM generate_series(1, 500)");
    let (code, report) = check(&plan);
    assert_eq!(code, 1, "{report:#}");
    let r = reading(&report);
    let behind = r["behind_bytes"].as_u64().expect("bytes behind");
    assert!(
        behind > first && behind > 100_000,
        "{behind} after {first}: {r:#}"
    );
    let gate = &report["gates"][1];
    assert_eq!(gate["state"], "red", "{gate:#}");
    let reason = gate["reason"].as_str().unwrap_or_default();
    let (target, source) = (
        r["target_position"].as_str().unwrap_or_default(),
        r["source_position"].as_str().unwrap_or_default(),
    );
    assert!(
        reason.contains("subscriber is ")
            && reason.contains(&format!("behind (LSN {target} of {source})")),
        "{reason}"
    );
    assert_eq!(report["gates"][0]["state"], "red");

    // Enabled again: it catches up to 0.
    pair.target(&format!("ALTER SUBSCRIPTION {}_sub ENABLE", pair.db));
    check_until(&plan, "caught up again", |code, r| {
        code == 0 && reading(r)["behind_bytes"] == 0
    });
    pair.wait_target_rows(520);

    // The human form names the engine's own facts, not DMS's.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", &plan])
        .output()
        .expect("runs cutover");
    let text = String::from_utf8_lossy(&out.stdout);
    let slot = format!("slot {}_sub active", pair.db);
    for want in [
        "postgres ",
        "(LSN ",
        &slot,
        "1 of 1 tables ready",
        "1 sequences behind",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(!text.contains("validation"), "{text}");
}

#[test]
fn a_sequence_advanced_on_the_source_is_behind_until_sync_sequences() {
    let pair = Pair::new("seq");
    // The rows came through replication, the sequence did not: the target's is unset.
    let plan = pair.check_plan(&["sequences.behind == 0"]);
    let (code, report) = check(&plan);
    assert_eq!(code, 1, "{report:#}");
    let r = reading(&report);
    assert_eq!(r["sequences"][0]["name"], "public.items_id_seq");
    assert_eq!(r["sequences"][0]["source"], 20);
    assert_eq!(report["gates"][0]["value"], 1.0);
    let reason = report["gates"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("public.items_id_seq target unset < source 20"),
        "{reason}"
    );

    let steps = "[[step]]\nid = \"sync\"\ntitle = \"sync\"\n\
                 action = { kind = \"sync-sequences\", margin = 100 }\nirreversible = true\nconfirm = \"sync\"\n";
    let (ok, out) = run_action(steps, &pair);
    assert!(ok, "{out}");
    assert_eq!(pair.target("SELECT last_value FROM items_id_seq"), "120");
    let (code, report) = check(&plan);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(reading(&report)["sequences"][0]["target"], 120);

    // Advanced on the source past the target: behind again, then synced again.
    pair.source("SELECT setval('items_id_seq', 500)");
    let (code, report) = check(&plan);
    assert_eq!(code, 1, "{report:#}");
    let (ok, out) = run_action(steps, &pair);
    assert!(ok, "{out}");
    assert_eq!(pair.target("SELECT last_value FROM items_id_seq"), "600");
}

#[test]
fn replication_stop_and_start_disable_and_enable_the_subscription_and_wait_for_the_worker() {
    let pair = Pair::new("act");
    let steps = "[[step]]\nid = \"stop\"\ntitle = \"stop\"\n\
                 action = { kind = \"replication\", op = \"stop\" }\n\
                 undo = { kind = \"replication\", op = \"start\" }\nconfirm = \"stop\"\n";
    let (ok, out) = run_action(steps, &pair);
    assert!(ok, "{out}");
    let sub = format!("{}_sub", pair.db);
    assert_eq!(
        pair.target(&format!(
            "SELECT subenabled::text || ',' || (SELECT count(pid) FROM pg_stat_subscription st WHERE st.subid = s.oid) \
             FROM pg_subscription s WHERE subname = '{sub}'"
        )),
        "false,0",
        "the action returned only once the worker had stopped"
    );
    let steps = "[[step]]\nid = \"start\"\ntitle = \"start\"\n\
                 action = { kind = \"replication\", op = \"start\" }\n\
                 undo = { kind = \"replication\", op = \"stop\" }\nconfirm = \"start\"\n";
    let (ok, out) = run_action(steps, &pair);
    assert!(ok, "{out}");
    assert_eq!(
        pair.target(&format!(
            "SELECT count(pid) FROM pg_stat_subscription st JOIN pg_subscription s ON s.oid = st.subid WHERE s.subname = '{sub}'"
        )),
        "1",
        "the action returned only once the worker ran"
    );
}

/// The replication source's error in a report, with every gate on it unknown.
fn unknown_with_error(report: &Value) -> String {
    let r = replication(report);
    assert!(r["value"].is_null(), "{r:#}");
    for g in report["gates"].as_array().expect("gates") {
        assert_eq!(g["state"], "unknown", "{g:#}");
    }
    assert_eq!(report["exit_code"], 1);
    r["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn missing_subscription_or_publication_or_wal_level_leave_gates_unknown_with_the_fix() {
    let pair = Pair::new("bad");
    let gates = "[[step]]\nid = \"drain\"\ntitle = \"t\"\ngates = [\"replication.behind_bytes == 0\", \"replication.status == running\"]\nconfirm = \"go\"\n";
    let plan = pair.plan(
        &format!(
            "engine = \"postgres\"\npublication = \"{0}_pub\"\nsubscription = \"nosuch_sub\"",
            pair.db
        ),
        gates,
    );
    let (_, report) = check(&plan);
    let err = unknown_with_error(&report);
    assert!(
        err.contains(&format!(
            "no subscription \"nosuch_sub\" in this database (it has: {}_sub)",
            pair.db
        )) && err.contains("CREATE SUBSCRIPTION"),
        "{err}"
    );
    // A target database with no subscription at all: the wrong database, most likely.
    let empty = format!("{}_nosub", pair.db);
    psql(
        TARGET_PORT,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {empty}"),
    );
    psql(TARGET_PORT, "postgres", &format!("CREATE DATABASE {empty}"));
    let plan_text = std::fs::read_to_string(pair.check_plan(&["replication.status == running"]))
        .expect("plan")
        .replacen(
            &format!("127.0.0.1:{TARGET_PORT}/{}\"", pair.db),
            &format!("127.0.0.1:{TARGET_PORT}/{empty}\""),
            1,
        );
    let nosub = pair.dir.path().join("nosub.toml");
    std::fs::write(&nosub, plan_text).expect("plan");
    let (_, report) = check(nosub.to_str().unwrap_or_default());
    let err = unknown_with_error(&report);
    assert!(
        err.contains(&format!(
            "no subscription \"{}_sub\" in this database (it has no subscription at all)",
            pair.db
        )) && err.contains("point [target] at the subscriber's database"),
        "{err}"
    );
    psql(
        TARGET_PORT,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {empty} WITH (FORCE)"),
    );

    let plan = pair.plan(
        &format!(
            "engine = \"postgres\"\npublication = \"nosuch_pub\"\nsubscription = \"{0}_sub\"",
            pair.db
        ),
        gates,
    );
    let (_, report) = check(&plan);
    let err = unknown_with_error(&report);
    assert!(
        err.contains("no publication \"nosuch_pub\"") && err.contains("CREATE PUBLICATION"),
        "{err}"
    );

    // The machine's own cluster runs wal_level = replica: as a publisher it cannot work.
    let level = psql(5432, "postgres", "SHOW wal_level");
    assert_ne!(
        level, "logical",
        "the machine's cluster was expected without logical WAL"
    );
    let text = std::fs::read_to_string(&plan).expect("plan");
    let text = text.replacen(
        &format!("127.0.0.1:{SOURCE_PORT}/{}", pair.db),
        "127.0.0.1:5432/postgres",
        1,
    );
    std::fs::write(&plan, text).expect("plan");
    let (_, report) = check(&plan);
    let err = unknown_with_error(&report);
    assert!(
        err.contains(&format!("wal_level is \"{level}\""))
            && err.contains("wal_level = logical")
            && err.contains("rds.logical_replication"),
        "{err}"
    );
}

#[test]
fn a_user_without_privileges_gets_the_grant_to_make_and_the_action_fails_naming_the_owner() {
    let pair = Pair::new("priv");
    let user = format!("{}_nobody", pair.db);
    for port in [SOURCE_PORT, TARGET_PORT] {
        psql(
            port,
            "postgres",
            &format!("DROP ROLE IF EXISTS {user}; CREATE ROLE {user} LOGIN"),
        );
    }
    let db = &pair.db;
    let plan = pair.check_plan(&["sequences.behind == 0", "replication.status == running"]);
    let text = std::fs::read_to_string(&plan)
        .expect("plan")
        .replace("postgres://postgres@", &format!("postgres://{user}@"));
    std::fs::write(&plan, &text).expect("plan");
    let (code, report) = check(&plan);
    assert_eq!(code, 1, "{report:#}");
    let gate = &report["gates"][0];
    assert_eq!(gate["state"], "unknown", "{gate:#}");
    let reason = gate["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot read sequence public.items_id_seq")
            && reason.contains("GRANT SELECT ON SEQUENCE public.items_id_seq"),
        "{reason}"
    );
    // Stopping the subscription needs its owner.
    let steps = "[[step]]\nid = \"stop\"\ntitle = \"stop\"\n\
                 action = { kind = \"replication\", op = \"stop\" }\n\
                 undo = { kind = \"replication\", op = \"start\" }\nconfirm = \"stop\"\n";
    let plan = pair.plan(&pair.default_replication(), steps);
    let text = std::fs::read_to_string(&plan)
        .expect("plan")
        .replace("postgres://postgres@", &format!("postgres://{user}@"));
    std::fs::write(&plan, &text).expect("plan");
    let (ok, all) = run_action_on(&plan);
    assert!(!ok, "{all}");
    assert!(
        all.contains("must be owner of subscription") && all.contains("subscription's owner"),
        "{all}"
    );
    assert_eq!(
        pair.target(&format!(
            "SELECT subenabled FROM pg_subscription WHERE subname = '{db}_sub'"
        )),
        "t"
    );
    drop(pair);
    for port in [SOURCE_PORT, TARGET_PORT] {
        psql(port, "postgres", &format!("DROP ROLE IF EXISTS {user}"));
    }
}

#[test]
fn a_default_read_only_freeze_refuses_new_writes_ends_old_sessions_and_the_guardrail_sees_it() {
    let pair = Pair::new("frz");
    // A session open before the freeze: psql waiting on its stdin.
    let mut open = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &SOURCE_PORT.to_string(),
        ])
        .args(["-U", "postgres", "-d", &pair.db])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    wait_for("the open session", || {
        pair.source(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'psql' AND pid <> pg_backend_pid()",
            pair.db
        )) == "1"
    });
    let freeze = "[[step]]\nid = \"freeze\"\ntitle = \"freeze\"\n\
                  action = { kind = \"freeze\", on = \"source\", method = \"default-read-only\" }\n\
                  undo = { kind = \"unfreeze\", on = \"source\", method = \"default-read-only\" }\nconfirm = \"freeze\"\n";
    let (ok, out) = run_action(freeze, &pair);
    assert!(ok, "{out}");
    assert!(out.contains("ended 1 other session(s)"), "{out}");
    assert!(
        out.contains("source default_transaction_read_only = ON (was OFF)"),
        "{out}"
    );
    let _ = open.wait();
    let refused = try_psql(
        SOURCE_PORT,
        &pair.db,
        "INSERT INTO items (v) VALUES ('late')",
    )
    .expect_err("a new session is read-only");
    assert!(refused.contains("read-only transaction"), "{refused}");
    let plan = pair.check_plan(&["source.read_only == true"]);
    let (code, report) = check(&plan);
    assert_eq!(code, 0, "{report:#}");
    // The walsender was not ended: the drain's proof still comes.
    let drain = pair.check_plan(&[
        "source.read_only == true",
        "replication.status == running",
        "replication.behind_bytes == 0",
    ]);
    check_until(&drain, "caught up while frozen", |code, _| code == 0);

    let thaw = freeze
        .replace("kind = \\\"freeze\\\"", "kind = \\\"x\\\"")
        .replace(
            "action = { kind = \"freeze\"",
            "action = { kind = \"unfreeze\"",
        )
        .replace("undo = { kind = \"unfreeze\"", "undo = { kind = \"freeze\"");
    let (ok, out) = run_action(&thaw, &pair);
    assert!(ok, "{out}");
    pair.source("INSERT INTO items (v) VALUES ('after')");
    let (code, report) = check(&plan);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["gates"][0]["value"], false);
}

#[test]
fn a_plan_whose_source_is_not_the_subscriptions_publisher_is_refused_naming_both() {
    let pair = Pair::new("up");
    let db = pair.db.clone();
    // Another database on the same publisher, with a publication of the same name: only
    // the subscription's conninfo tells the plan's source is not the one it follows.
    let other = format!("{db}_other");
    psql(
        SOURCE_PORT,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {other} WITH (FORCE)"),
    );
    psql(SOURCE_PORT, "postgres", &format!("CREATE DATABASE {other}"));
    psql(
        SOURCE_PORT,
        &other,
        &format!(
            "CREATE TABLE items (id serial PRIMARY KEY, v text); CREATE PUBLICATION {db}_pub FOR TABLE items"
        ),
    );
    let plan = pair.check_plan(&[
        "replication.status == running",
        "replication.behind_bytes == 0",
    ]);
    let text = std::fs::read_to_string(&plan).expect("plan");
    let wrong = text.replacen(
        &format!("127.0.0.1:{SOURCE_PORT}/{db}\""),
        &format!("127.0.0.1:{SOURCE_PORT}/{other}\""),
        1,
    );
    assert_ne!(wrong, text);
    std::fs::write(&plan, &wrong).expect("plan");
    let (_, report) = check(&plan);
    let err = unknown_with_error(&report);
    assert!(
        err.contains(&format!(
            "subscription \"{db}_sub\" on 127.0.0.1:{TARGET_PORT}/{db} subscribes to 127.0.0.1:{SOURCE_PORT}/{db}, the plan's source is 127.0.0.1:{SOURCE_PORT}/{other}"
        )) && err.contains("point [source] at the publisher"),
        "{err}"
    );
    // The conninfo's other keys (user, and a password if it had one) are never shown.
    assert!(!err.contains("user=") && !err.contains("password"), "{err}");
    for g in report["gates"].as_array().expect("gates") {
        assert!(
            g["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("subscribes to"),
            "{g:#}"
        );
    }

    // localhost is 127.0.0.1: resolved on this host, the same publisher.
    let by_name = text.replacen(
        &format!("127.0.0.1:{SOURCE_PORT}/{db}\""),
        &format!("localhost:{SOURCE_PORT}/{db}\""),
        1,
    );
    std::fs::write(&plan, &by_name).expect("plan");
    let (code, report) = check_until(&plan, "caught up", |code, _| code == 0);
    assert_eq!(code, 0, "{report:#}");
    let facts = reading(&report)["facts"].to_string();
    assert!(
        facts.contains(&format!("127.0.0.1:{SOURCE_PORT}/{db} (the plan's source: 127.0.0.1 and localhost resolve to the same address on this host)")),
        "{facts}"
    );
    psql(
        SOURCE_PORT,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {other} WITH (FORCE)"),
    );
}
