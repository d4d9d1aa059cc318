//! Plan parsing: the write-freeze actions, their validation and the legacy SQL spelling.

use super::*;

/// A one-step plan on `engine` endpoints whose step runs `action` and `undo`.
fn plan_with(engine: &str, action: &str, undo: &str) -> String {
    let url = match engine {
        "postgres" => "\nurl = \"postgres://cutover@db.internal:5432/shop\"",
        "mysql" => "\nurl = \"mysql://cutover@db.internal:3306/shop\"",
        _ => "",
    };
    format!(
        "name = \"p\"\n\
         [source]\nengine = \"{engine}\"{url}\n\
         [target]\nengine = \"{engine}\"{url}\n\
         [[step]]\nid = \"freeze\"\n\
         action = {action}\n\
         undo = {undo}\n\
         confirm = \"go\"\n"
    )
}

fn step_actions(text: &str) -> (Action, Option<Action>) {
    let plan = parse("p.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let step = plan.steps[0].clone();
    (step.action, step.undo)
}

fn errors(text: &str) -> Vec<PlanError> {
    match parse("p.toml", text) {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(e) => e.0,
    }
}

const FREEZE_SOURCE: Action = Action::Freeze {
    on: Side::Source,
    method: FreezeMethod::Sql,
};
const UNFREEZE_SOURCE: Action = Action::Unfreeze {
    on: Side::Source,
    method: FreezeMethod::Sql,
};

#[test]
fn freeze_and_unfreeze_parse_with_sql_as_the_default_method() {
    for engine in ["rehearsal", "mysql"] {
        let text = plan_with(
            engine,
            r#"{ kind = "freeze", on = "source" }"#,
            r#"{ kind = "unfreeze", on = "source", method = "sql" }"#,
        );
        assert_eq!(
            step_actions(&text),
            (FREEZE_SOURCE, Some(UNFREEZE_SOURCE)),
            "{engine}"
        );
    }
}

#[test]
fn freeze_actions_describe_what_they_do_plainly() {
    let plan = rehearsal_plan();
    assert_eq!(
        FREEZE_SOURCE.describe(&plan),
        "freeze writes on source (SET GLOBAL read_only = ON)"
    );
    let thaw = Action::Unfreeze {
        on: Side::Target,
        method: FreezeMethod::Sql,
    };
    assert_eq!(
        thaw.describe(&plan),
        "unfreeze writes on target (SET GLOBAL read_only = OFF)"
    );
    assert!(FREEZE_SOURCE.changes_state() && thaw.changes_state());
}

#[test]
fn the_shipped_rehearsal_plan_freezes_with_the_typed_actions() {
    let plan = rehearsal_plan();
    let step = |id: &str| &plan.steps[plan.step_index(id).expect("step")];
    assert_eq!(step("freeze").action, FREEZE_SOURCE);
    assert_eq!(step("freeze").undo, Some(UNFREEZE_SOURCE));
    assert_eq!(
        step("unfreeze").action,
        Action::Unfreeze {
            on: Side::Target,
            method: FreezeMethod::Sql
        }
    );
}

#[test]
fn legacy_read_only_sql_becomes_the_typed_action() {
    for (statement, frozen) in [
        ("SET GLOBAL read_only = ON", true),
        ("set global read_only=off", false),
        ("  SET   GLOBAL  READ_ONLY =  1 ", true),
        ("SET GLOBAL read_only = 0;", false),
        ("SET @@GLOBAL.read_only = TRUE", true),
    ] {
        let text = plan_with(
            "mysql",
            &format!(r#"{{ kind = "sql", on = "source", statement = "{statement}" }}"#),
            r#"{ kind = "none" }"#,
        );
        let want = if frozen {
            FREEZE_SOURCE
        } else {
            UNFREEZE_SOURCE
        };
        assert_eq!(step_actions(&text).0, want, "{statement}");
    }
}

#[test]
fn other_sql_stays_sql_even_when_it_mentions_read_only() {
    for statement in [
        "SET GLOBAL read_only = ON; SET GLOBAL super_read_only = ON",
        "SET GLOBAL super_read_only = ON",
        "UPDATE flags SET read_only = 1",
        "SET GLOBAL read_only = maybe",
        "SET SESSION read_only = ON",
    ] {
        assert_eq!(legacy_read_only(statement), None, "{statement}");
        let text = plan_with(
            "mysql",
            &format!(r#"{{ kind = "sql", on = "target", statement = "{statement}" }}"#),
            r#"{ kind = "none" }"#,
        );
        assert_eq!(
            step_actions(&text).0,
            Action::Sql {
                on: Side::Target,
                statement: statement.into()
            }
        );
    }
}

#[test]
fn legacy_read_only_sql_on_postgres_stays_sql_as_it_always_ran() {
    let text = plan_with(
        "postgres",
        r#"{ kind = "sql", on = "source", statement = "SET GLOBAL read_only = ON" }"#,
        r#"{ kind = "sql", on = "source", statement = "SET GLOBAL read_only = OFF" }"#,
    );
    assert!(matches!(step_actions(&text).0, Action::Sql { .. }));
}

#[test]
fn a_sql_freeze_on_postgres_is_refused_where_it_is_written() {
    let text = plan_with(
        "postgres",
        r#"{ kind = "freeze", on = "source" }"#,
        r#"{ kind = "unfreeze", on = "source" }"#,
    );
    let errs = errors(&text);
    let at: Vec<String> = errs
        .iter()
        .map(|e| format!("{}:{}", e.line, e.col))
        .collect();
    // The action is on line 10 and the undo on line 11, both at the opening brace.
    assert_eq!(at, ["10:10", "11:8"], "{errs:?}");
    let e = &errs[0];
    assert!(
        e.message.contains("kind = \"freeze\" on = \"source\"")
            && e.message.contains("method = \"sql\"")
            && e.message.contains("postgres"),
        "{}",
        e.message
    );
    let hint = e.hint.as_deref().expect("a hint");
    assert!(
        hint.contains("default_transaction_read_only")
            && hint.contains("\"default-read-only\" on postgres")
            && hint.contains("kind = \"shell\""),
        "{hint}"
    );
    assert!(
        e.to_string().starts_with("p.toml:10:10: kind = \"freeze\""),
        "{e}"
    );
}

#[test]
fn an_unknown_freeze_method_or_side_is_located() {
    let text = plan_with(
        "mysql",
        r#"{ kind = "freeze", on = "source", method = "parameter_group" }"#,
        r#"{ kind = "unfreeze", on = "source" }"#,
    );
    let errs = errors(&text);
    assert_eq!((errs[0].line, errs[0].col), (10, 10), "{errs:?}");
    assert!(
        errs[0]
            .message
            .contains("unknown variant `parameter_group`"),
        "{}",
        errs[0].message
    );
    let text = plan_with(
        "mysql",
        r#"{ kind = "freeze" }"#,
        r#"{ kind = "unfreeze", on = "source" }"#,
    );
    let errs = errors(&text);
    assert_eq!((errs[0].line, errs[0].col), (10, 10), "{errs:?}");
    assert!(errs[0].message.contains("missing field `on`"), "{errs:?}");
}

#[test]
fn a_freeze_without_an_undo_is_refused() {
    let text = plan_with(
        "rehearsal",
        r#"{ kind = "freeze", on = "source" }"#,
        r#"{ kind = "none" }"#,
    )
    .replace("undo = { kind = \"none\" }\n", "");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("changes state but has no undo") && e.line == 8),
        "{errs:?}"
    );
}

/// A one-step plan without [replication] or [[metrics]] whose step has `gate`.
fn gate_only(gate: &str) -> String {
    format!(
        "name = \"p\"\n[source]\nengine = \"rehearsal\"\n[target]\nengine = \"rehearsal\"\n\
         [[step]]\nid = \"s\"\ngates = [\"{gate}\"]\nconfirm = \"go\"\n"
    )
}

#[test]
fn replication_gates_need_a_replication_section_whatever_their_name() {
    for gate in [
        "replication.lag_s <= 0",
        "replication.status == running",
        "cdc.latency_target <= 0",
        "task.status == running",
        "validation.failed == 0",
    ] {
        let e = errors(&gate_only(gate));
        assert!(
            e.iter()
                .any(|e| e.message.contains("the plan has no [replication] section")),
            "{gate}: {e:?}"
        );
    }
}

#[test]
fn a_gate_on_a_dms_cdc_metric_points_at_the_replication_input() {
    let e = errors(&gate_only("metric.CDCLatencyTarget <= 0"));
    let e = e
        .iter()
        .find(|e| e.message.contains("does not poll"))
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        e.hint.as_deref(),
        Some("gate on replication.lag_s (or cdc.latency_target)")
    );
}

// ---------------------------------------------------------------------------------------
// What validates, runs: every knob's range, names, phrases and URLs.

/// The shipped rehearsal plan with `from` replaced by `to` (once; `from` must be there).
fn rehearsal_with(from: &str, to: &str) -> String {
    assert!(REHEARSAL_PLAN.contains(from), "{from:?} is not in the plan");
    REHEARSAL_PLAN.replacen(from, to, 1)
}

/// Parses `text` and returns the one error at `line_of` (the first line containing it),
/// asserting it names file:line:col, says `fragment` and carries a hint.
fn refused_at(text: &str, line_of: &str, fragment: &str) -> PlanError {
    let errs = errors(text);
    let line = text
        .lines()
        .position(|l| l.contains(line_of))
        .unwrap_or_else(|| panic!("{line_of:?} not in the plan"))
        + 1;
    let e = errs
        .iter()
        .find(|e| e.line == line && e.message.contains(fragment))
        .unwrap_or_else(|| panic!("no error at line {line} saying {fragment:?}: {errs:#?}"))
        .clone();
    assert!(e.hint.is_some(), "no hint: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("p.toml:{}:{}: ", e.line, e.col)),
        "{e}"
    );
    e
}

#[test]
fn huge_rows_per_table_is_refused_not_allocated() {
    // 2^64 - 1 is no TOML integer: a located syntax error, not a capacity overflow.
    for (value, fragment) in [
        ("18446744073709551615", ""),
        (
            "9223372036854775807",
            "rows_per_table = 9223372036854775807 is out of range",
        ),
        ("100001", "out of range (0..=100000)"),
        ("-1", ""),
    ] {
        let text = rehearsal_with("rows_per_table = 400", &format!("rows_per_table = {value}"));
        refused_at(&text, "rows_per_table", fragment);
    }
    let ok = rehearsal_with("rows_per_table = 400", "rows_per_table = 100000");
    assert_eq!(
        parse("p.toml", &ok)
            .map(|p| p.rehearsal.rows_per_table)
            .ok(),
        Some(100_000)
    );
}

#[test]
fn huge_or_zero_clients_are_refused() {
    for value in ["4294967295", "1001", "0"] {
        let text = rehearsal_with("clients = 6", &format!("clients = {value}"));
        let e = refused_at(
            &text,
            "clients =",
            &format!("clients = {value} is out of range"),
        );
        assert_eq!(e.hint.as_deref(), Some("use a value from 1 to 1000"));
    }
}

#[test]
fn write_rates_that_are_not_finite_positive_and_sane_are_refused() {
    for (value, why) in [
        ("inf", "is infinite"),
        ("-inf", "is infinite"),
        ("nan", "is not a number"),
        ("1e-300", "is out of range"),
        ("-5", "is out of range"),
        ("0", "is out of range"),
        ("1e9", "is out of range"),
    ] {
        let text = rehearsal_with("write_rate = 40", &format!("write_rate = {value}"));
        let e = refused_at(&text, "write_rate =", why);
        assert!(e.message.starts_with("write_rate = "), "{e}");
        assert!(
            e.hint.as_deref().is_some_and(|h| h.contains("finite")),
            "{e}"
        );
    }
}

#[test]
fn rehearsal_durations_have_ranges() {
    for (from, to, fragment) in [
        (
            "lag = \"300ms\"",
            "lag = \"0s\"",
            "lag 0ms must be longer than zero",
        ),
        (
            "lag = \"300ms\"",
            "lag = \"11m\"",
            "lag 11m is longer than 10m",
        ),
        (
            "dns_propagation = \"2s\"",
            "dns_propagation = \"100000000h\"",
            "is longer than 10m",
        ),
        (
            "poll = \"1s\"",
            "poll = \"1ms\"",
            "poll 1ms is shorter than 100ms",
        ),
        (
            "poll = \"1s\"",
            "poll = \"2m\"",
            "poll 2m is longer than 1m",
        ),
    ] {
        let text = rehearsal_with(from, to);
        refused_at(&text, to, fragment);
    }
}

#[test]
fn a_dns_ttl_beyond_2_31_is_refused() {
    for value in ["9223372036854775807", "2147483648"] {
        let text = rehearsal_with("ttl = 3", &format!("ttl = {value}"));
        refused_at(&text, "ttl =", "out of range (0..=2147483647)");
    }
    let max = rehearsal_with("ttl = 3", "ttl = 2147483647");
    assert!(parse("p.toml", &max).is_ok());
}

#[test]
fn table_names_must_be_identifiers_listed_once() {
    for (tables, fragment) in [
        (
            r#"["orders; DROP TABLE x"]"#,
            "is not a plain SQL identifier",
        ),
        (r#"["a;b"]"#, "is not a plain SQL identifier"),
        (r#"["1orders"]"#, "is not a plain SQL identifier"),
        (r#"["or ders"]"#, "is not a plain SQL identifier"),
        (r#"["orders", "Orders"]"#, "listed twice"),
        (r#"["cutover_heartbeat"]"#, "heartbeat table"),
        ("[]", "the number of tables = 0 is out of range"),
    ] {
        let text = rehearsal_with(
            r#"tables = ["customers", "orders", "payments"]"#,
            &format!("tables = {tables}"),
        );
        refused_at(&text, "tables =", fragment);
    }
    let long = format!("[\"{}\"]", "t".repeat(65));
    let text = rehearsal_with(
        r#"tables = ["customers", "orders", "payments"]"#,
        &format!("tables = {long}"),
    );
    refused_at(&text, "tables =", "more than 64");
}

#[test]
fn fresh_zero_and_windows_beyond_a_day_are_refused() {
    let e = errors(&gate_only("drift.rows == 0 fresh 0s"));
    assert!(
        e.iter()
            .any(|e| e.message == "`fresh` 0ms must be longer than zero"),
        "{e:?}"
    );
    // The error points at the duration: line 8, inside the string after "fresh ".
    assert!(e.iter().any(|e| (e.line, e.col) == (8, 33)), "{e:?}");
    let e = errors(&gate_only("drift.rows == 0 for 25h"));
    assert!(
        e.iter()
            .any(|e| e.message.contains("`for` 25h is longer than 24h")),
        "{e:?}"
    );
    // `for 0s` means at once and stays valid.
    assert!(parse("p.toml", &gate_only("drift.rows == 0 for 0s fresh 1s")).is_ok());
}

#[test]
fn a_window_as_long_as_the_timeout_is_refused() {
    let text = gate_only("drift.rows == 0 for 10m").replace("confirm", "timeout = \"5m\"\nconfirm");
    let e = refused_at(
        &text,
        "gates =",
        "must hold for 10m but the step times out after 5m",
    );
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("timeout")));
}

#[test]
fn step_timeouts_have_a_range() {
    for (t, fragment) in [
        ("0s", "must be longer than zero"),
        ("2d", "is longer than 24h"),
    ] {
        let text =
            gate_only("drift.rows == 0").replace("confirm", &format!("timeout = \"{t}\"\nconfirm"));
        refused_at(&text, "timeout =", fragment);
    }
}

#[test]
fn approvals_are_bounded() {
    for n in ["4294967295", "17"] {
        let text =
            gate_only("drift.rows == 0").replace("confirm", &format!("approvals = {n}\nconfirm"));
        let e = refused_at(&text, "approvals", "out of range (0..=16)");
        assert!(e.message.starts_with(&format!("approvals = {n}")), "{e}");
    }
    let ok = gate_only("drift.rows == 0").replace("confirm", "approvals = 16\nconfirm");
    assert_eq!(
        parse("p.toml", &ok).map(|p| p.steps[0].approvals).ok(),
        Some(16)
    );
}

#[test]
fn confirmation_phrases_must_be_printable_and_short() {
    for (phrase, fragment) in [
        (r"go\u001b[2J", "control character '\\u{1b}'"),
        (r"go\nnow", "control character '\\n'"),
        (r"go\u0007", "control character '\\u{7}'"),
    ] {
        let text = gate_only("drift.rows == 0").replace("\"go\"", &format!("\"{phrase}\""));
        refused_at(&text, "confirm", fragment);
    }
    let long = "x".repeat(101);
    let text = gate_only("drift.rows == 0").replace("\"go\"", &format!("\"{long}\""));
    refused_at(&text, "confirm", "101 characters long");
    // Unicode that prints is fine.
    let text = gate_only("drift.rows == 0").replace("\"go\"", "\"bascule ✓\"");
    assert!(parse("p.toml", &text).is_ok());
}

#[test]
fn titles_and_instructions_cannot_carry_terminal_escapes() {
    let text = gate_only("drift.rows == 0")
        .replace("confirm", "title = \"x\\u001b]0;pwned\\u0007\"\nconfirm");
    refused_at(&text, "title", "control character");
}

/// A plan whose [source] is `engine` with `url` (a TOML basic string's contents).
fn with_source_url(engine: &str, url: &str) -> String {
    format!(
        "name = \"p\"\n[source]\nengine = \"{engine}\"\nurl = \"{url}\"\n\
         [target]\nengine = \"rehearsal\"\n[[step]]\nid = \"s\"\nconfirm = \"go\"\n"
    )
}

const HUNTER: &str = "hunter2-S3cr3t";

#[test]
fn credentials_anywhere_in_a_url_are_refused_without_repeating_them() {
    for (engine, url, fragment) in [
        (
            "mysql",
            format!("mysql://app:{HUNTER}@db:3306/shop"),
            "a password in its userinfo",
        ),
        (
            "postgres",
            format!("postgres://app@db/shop?password={HUNTER}"),
            "query parameter \"password\"",
        ),
        (
            "postgres",
            format!("postgres://app@db/shop?sslmode=require&PASSWORD={HUNTER}"),
            "query parameter \"password\"",
        ),
        (
            "postgres",
            format!("postgres://app@db/shop?pass%77ord={HUNTER}"),
            "query parameter \"password\"",
        ),
        (
            "postgres",
            format!("postgres://app@db/shop?sslpassword={HUNTER}"),
            "query parameter \"sslpassword\"",
        ),
        (
            "mysql",
            format!("mysql://app@db/shop?pwd={HUNTER}"),
            "query parameter \"pwd\"",
        ),
        (
            "mysql",
            format!("mysql://app@db/shop?passwd={HUNTER}"),
            "query parameter \"passwd\"",
        ),
        (
            "mysql",
            format!("mysql://app@db/shop?pass={HUNTER}"),
            "query parameter \"pass\"",
        ),
        (
            "mysql",
            format!("mysql://app@db/shop?secret={HUNTER}"),
            "query parameter \"secret\"",
        ),
        (
            "mysql",
            format!("mysql://app@db/shop?token={HUNTER}"),
            "query parameter \"token\"",
        ),
        (
            "postgres",
            format!("postgres://app@db/shop?sslkey=-----BEGIN%20{HUNTER}"),
            "query parameter \"sslkey\"",
        ),
        (
            "postgres",
            format!("host=db user=app password={HUNTER} dbname=shop"),
            "keyword pair \"password=...\"",
        ),
        (
            "mysql",
            format!("Server=db;Uid=app;Pwd={HUNTER};Database=shop"),
            "keyword pair \"Pwd=...\"",
        ),
        (
            "mysql",
            format!("mysql://app:{HUNTER}/x@db/shop"),
            "a password in its userinfo",
        ),
    ] {
        let text = with_source_url(engine, &url);
        let e = refused_at(&text, "url =", fragment);
        assert_eq!((e.line, e.col), (4, 7), "{e}");
        let hint = e.hint.clone().unwrap_or_default();
        assert!(
            hint.contains("password_env")
                && hint.contains("password_file")
                && hint.contains("--source-password-file"),
            "{hint}"
        );
        let all = PlanErrors(errors(&text)).to_string();
        assert!(!all.contains(HUNTER), "an error repeats the secret: {all}");
        assert!(url_has_password(&url), "{url}");
    }
}

#[test]
fn the_plan_text_of_a_valid_plan_never_holds_a_url_secret() {
    // Defence in depth: the transcript header stores `source_text`, so whatever parses
    // must be free of every URL form that carries a secret.
    let forms = [
        format!("mysql://app:{HUNTER}@db:3306/shop"),
        format!("postgres://app@db/shop?password={HUNTER}"),
        format!("postgres://app@db/shop?Pass%77ord={HUNTER}"),
        format!("host=db password={HUNTER}"),
        format!("Server=db;Pwd={HUNTER};"),
        format!("postgres://app@db/shop?x=1;token={HUNTER}"),
    ];
    for url in &forms {
        for engine in ["mysql", "postgres", "rehearsal"] {
            if let Ok(plan) = parse("p.toml", &with_source_url(engine, url)) {
                assert!(!plan.source_text.contains(HUNTER), "{engine} {url} parsed");
            }
        }
    }
}

#[test]
fn urls_must_be_able_to_work() {
    for (engine, url, fragment) in [
        ("mysql", "mysql://app@db:0/shop", "port \"0\""),
        ("mysql", "mysql://app@db:65536/shop", "port \"65536\""),
        ("mysql", "mysql://app@db:abc/shop", "port \"abc\""),
        (
            "postgres",
            "mysql://app@db:3306/shop",
            "starts with mysql:// but [source] has engine = \"postgres\"",
        ),
        (
            "mysql",
            "postgres://app@db:5432/shop",
            "starts with postgres:// but [source] has engine = \"mysql\"",
        ),
        ("mysql", "http://db/shop", "starts with http://"),
        ("mysql", "not a url", "contains ' '"),
        ("mysql", "db.internal:3306/shop", "is not a URL"),
        ("postgres", "host=db user=app dbname=shop", "contains ' '"),
        ("mysql", "mysql://app@:3306/shop", "names no host"),
        ("mysql", "mysql://app@db:3306", "names no database"),
        ("mysql", "mysql://app@db;x/shop", "is not a host name"),
        ("rehearsal", "mysql://app@db:3306/shop", "takes no url"),
    ] {
        refused_at(&with_source_url(engine, url), "url =", fragment);
    }
    for (engine, url) in [
        ("mysql", "mysql://app@db.internal:3306/shop"),
        ("mysql", "mariadb://app@127.0.0.1/shop"),
        (
            "postgres",
            "postgres://app@[::1]:5432/shop?schema=s&sslmode=require",
        ),
        ("postgres", "postgresql://app@db/shop"),
        ("postgres", "postgres:///shop?host=/var/run/postgresql"),
    ] {
        if let Err(e) = parse("p.toml", &with_source_url(engine, url)) {
            panic!("{url}: {e}");
        }
    }
}

#[test]
fn endpoint_and_aws_settings_are_checked() {
    let base = with_source_url("mysql", "mysql://app@db:3306/shop");
    let text = base.replace("url =", "password_env = \"NOT A VAR\"\nurl =");
    refused_at(&text, "password_env", "not an environment variable's name");
    let text = format!("{base}[aws]\nendpoint_url = \"http://AKIA:{HUNTER}@localhost:5000\"\n");
    let e = refused_at(&text, "endpoint_url", "carries credentials");
    assert!(!e.to_string().contains(HUNTER));
    let text = format!("{base}[aws]\nendpoint_url = \"http://localhost:70000\"\n");
    refused_at(&text, "endpoint_url", "port \"70000\"");
    let text = format!("{base}[aws]\nendpoint_url = \"ftp://localhost\"\n");
    refused_at(&text, "endpoint_url", "not an http");
    let text = format!("{base}[aws]\nregion = \"EU West 1\"\n");
    refused_at(&text, "region", "not a region name");
    let text = format!("{base}[aws]\naccount = \"1234\"\n");
    refused_at(&text, "account", "not an AWS account id");
}

#[test]
fn aws_endpoints_are_per_service_and_exclusive_with_endpoint_url() {
    let base = with_source_url("mysql", "mysql://app@db:3306/shop");
    let text = format!(
        "{base}[aws]\naccount = \"111122223333\"\n[aws.endpoints]\ndms = \"https://vpce-1.dms.eu-west-1.vpce.amazonaws.com\"\nsts = \"http://127.0.0.1:5001\"\n"
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.aws.account.as_deref(), Some("111122223333"));
    assert_eq!(
        plan.aws.endpoints.dms.as_deref(),
        Some("https://vpce-1.dms.eu-west-1.vpce.amazonaws.com")
    );
    assert_eq!(
        plan.aws.endpoints.sts.as_deref(),
        Some("http://127.0.0.1:5001")
    );
    assert_eq!(plan.aws.endpoints.route53, None);
    let text = format!("{base}[aws]\n[aws.endpoints]\nroute53 = \"ftp://x\"\n");
    refused_at(&text, "route53 =", "[aws.endpoints] route53 is not an http");
    let text = format!("{base}[aws.endpoints]\nrds = \"http://x\"\nec2 = \"http://y\"\n");
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.message.contains("unknown field `ec2`")),
        "{:?}",
        errors(&text)
    );
    let text = format!(
        "{base}[aws]\nendpoint_url = \"http://127.0.0.1:5000\"\n[aws.endpoints]\ndms = \"http://127.0.0.1:5001\"\n"
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.message.contains("both set")
            && e.hint
                .as_deref()
                .is_some_and(|h| h.contains("remove endpoint_url"))),
        "{e:?}"
    );
}

#[test]
fn a_dns_role_arn_must_be_an_iam_role() {
    let ok = rehearsal_with(
        "ttl = 3\n",
        "ttl = 3\nrole_arn = \"arn:aws:iam::111122223333:role/cutover-dns\"\n",
    );
    let plan = parse("p.toml", &ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.dns.and_then(|d| d.role_arn).as_deref(),
        Some("arn:aws:iam::111122223333:role/cutover-dns")
    );
    let bad = rehearsal_with(
        "ttl = 3\n",
        "ttl = 3\nrole_arn = \"arn:aws:iam::1111:user/me\"\n",
    );
    refused_at(&bad, "role_arn", "is not an IAM role ARN");
}

#[test]
fn dns_names_and_values_are_checked() {
    for (from, to, fragment) in [
        (
            "name = \"db.shop.internal.\"",
            "name = \"db shop\"",
            "is not a DNS name",
        ),
        (
            "source = \"shop-mysql.source.internal.\"",
            "source = \"a..b\"",
            "is not a DNS name",
        ),
    ] {
        refused_at(&rehearsal_with(from, to), to, fragment);
    }
    let a = rehearsal_with("type = \"CNAME\"", "type = \"A\"");
    refused_at(&a, "source = ", "is not an IPv4 address");
    let a = a
        .replace("\"shop-mysql.source.internal.\"", "\"10.0.0.1\"")
        .replace("\"shop-aurora.target.internal.\"", "\"10.0.0.2\"");
    assert!(parse("p.toml", &a).is_ok());
}

#[test]
fn metrics_are_bounded() {
    let base = gate_only("drift.rows == 0");
    let dims: String = (0..31).map(|i| format!("d{i} = \"v\", ")).collect();
    let text = format!("{base}[[metrics]]\nname = \"CPU\"\ndimensions = {{ {dims} }}\n");
    refused_at(&text, "dimensions", "out of range (0..=30)");
    let text = format!("{base}[[metrics]]\nname = \"CPU\"\nstat = \"\"\n");
    refused_at(&text, "stat", "a metric's stat is empty");
}

#[test]
fn every_default_is_within_its_own_range() {
    let d = RehearsalSettings::default();
    assert!(limits::ROWS_PER_TABLE.contains(&d.rows_per_table));
    assert!(limits::WRITE_RATE.contains(&d.write_rate));
    assert!(limits::CLIENTS.contains(&d.clients));
    assert!(limits::LAG_MS.contains(&d.lag_ms));
    assert!(limits::DNS_PROPAGATION_MS.contains(&d.dns_propagation_ms));
    assert!(limits::POLL_MS.contains(&d.poll_ms));
    assert!(limits::TABLES.contains(&d.tables.len()));
    assert!(limits::TIMEOUT_MS.contains(&DEFAULT_TIMEOUT_MS));
}

#[test]
fn a_parameter_group_freeze_needs_the_side_s_rds_resource() {
    let text = plan_with(
        "mysql",
        r#"{ kind = "freeze", on = "source", method = "parameter-group" }"#,
        r#"{ kind = "unfreeze", on = "source", method = "parameter-group" }"#,
    );
    let e = refused_at(&text, "action =", "needs the source's RDS resource");
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("[rds] source = { instance")),
        "{e}"
    );
    let with_rds = format!(
        "{text}[rds]\nsource = {{ instance = \"shop-mysql\" }}\nshared_parameter_group = true\n"
    );
    let plan = parse("p.toml", &with_rds).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.rds.source,
        Some(RdsResource::Instance("shop-mysql".into()))
    );
    assert!(plan.rds.shared_parameter_group);
    assert_eq!(
        plan.steps[0].action,
        Action::Freeze {
            on: Side::Source,
            method: FreezeMethod::ParameterGroup
        }
    );
    let both = format!("{text}[rds]\nsource = {{ instance = \"a\", cluster = \"b\" }}\n");
    refused_at(
        &both,
        "source = {",
        "neither exactly one instance nor one cluster",
    );
    let bad = format!("{text}[rds]\nsource = {{ cluster = \"shop_aurora\" }}\n");
    refused_at(&bad, "source = {", "is not an RDS identifier");
    // Not on the rehearsal world: it has no parameter group.
    let rehearsal = plan_with(
        "rehearsal",
        r#"{ kind = "freeze", on = "source", method = "parameter-group" }"#,
        r#"{ kind = "unfreeze", on = "source" }"#,
    );
    let rehearsal = format!("{rehearsal}[rds]\nsource = {{ instance = \"x\" }}\n");
    refused_at(&rehearsal, "action =", "does not have");
}

fn logical_plan(replication: &str, action: &str) -> String {
    format!(
        "name = \"p\"\n\
         [source]\nengine = \"postgres\"\nurl = \"postgres://cutover@a.internal:5432/shop\"\n\
         [target]\nengine = \"postgres\"\nurl = \"postgres://cutover@b.internal:5432/shop\"\n\
         [replication]\n{replication}\n\
         [[step]]\nid = \"s\"\naction = {action}\nirreversible = true\nconfirm = \"go\"\n"
    )
}

#[test]
fn postgres_replication_names_publication_subscription_and_the_slot_defaults() {
    let text = logical_plan(
        "engine = \"postgres\"\npublication = \"shop_pub\"\nsubscription = \"shop_sub\"",
        "{ kind = \"sync-sequences\" }",
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let r = plan.replication.as_ref().expect("replication");
    assert_eq!(r.task, "shop_sub");
    assert_eq!(
        r.logical,
        Some(LogicalNames {
            publication: "shop_pub".into(),
            subscription: "shop_sub".into(),
            slot: "shop_sub".into(),
        })
    );
    assert_eq!(plan.steps[0].action, Action::SyncSequences { margin: 0 });
    assert_eq!(
        Action::ReplicationStop.describe(&plan),
        "ALTER SUBSCRIPTION shop_sub DISABLE"
    );
    let text = logical_plan(
        "engine = \"postgres\"\npublication = \"p\"\nsubscription = \"s\"\nslot = \"other_slot\"",
        "{ kind = \"sync-sequences\", margin = 1000 }",
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let names = plan.replication.and_then(|r| r.logical).expect("names");
    assert_eq!(names.slot, "other_slot");
    assert_eq!(plan.steps[0].action, Action::SyncSequences { margin: 1000 });
}

#[test]
fn postgres_replication_mistakes_are_located_with_the_fix() {
    let cases = [
        (
            "engine = \"postgres\"\npublication = \"p\"\nsubscription = \"s\"\ntask = \"t\"",
            "{ kind = \"none\" }",
            "streams through a subscription, not a task",
        ),
        (
            "engine = \"postgres\"\npublication = \"p\"\nsubscription = \"bad-name\"",
            "{ kind = \"none\" }",
            "the subscription name \"bad-name\" is not a plain PostgreSQL identifier",
        ),
        (
            "engine = \"dms\"\ntask = \"t\"\npublication = \"p\"",
            "{ kind = \"none\" }",
            "`publication` belongs to engine = \"postgres\", not \"dms\"",
        ),
        (
            "engine = \"dms\"",
            "{ kind = \"none\" }",
            "[replication] engine = \"dms\" needs a task",
        ),
        (
            "engine = \"postgres\"\npublication = \"p\"\nsubscription = \"s\"",
            "{ kind = \"sync-sequences\", margin = -1 }",
            "margin = -1 is outside 0..=",
        ),
    ];
    for (replication, action, want) in cases {
        let errs = errors(&logical_plan(replication, action));
        assert!(
            errs.iter()
                .any(|e| e.to_string().contains(want) && e.to_string().contains("p.toml:")),
            "{want}: {errs:?}"
        );
    }
}

/// `plan_with` plus a `[dns]` section (set identifiers given when `sets`).
fn dns_plan_with(action: &str, undo: &str, sets: bool) -> String {
    let ids = if sets {
        "source_set = \"blue\"\ntarget_set = \"green\"\n"
    } else {
        ""
    };
    plan_with("rehearsal", action, undo).replace(
        "[[step]]",
        &format!(
            "[dns]\nname = \"db.example.com\"\nsource = \"a.example.com\"\ntarget = \"b.example.com\"\n{ids}[[step]]"
        ),
    )
}

#[test]
fn a_weighted_stage_parses_with_the_plans_set_identifiers_and_a_previous_undo() {
    let text = dns_plan_with(
        r#"{ kind = "dns", weights = { source = 95, target = 5 } }"#,
        r#"{ kind = "dns", weights = "previous" }"#,
        true,
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let dns = plan.dns.clone().expect("dns");
    assert_eq!(
        (dns.source_set.as_str(), dns.target_set.as_str()),
        ("blue", "green")
    );
    assert_eq!(
        plan.steps[0].action,
        Action::DnsWeights {
            weights: DnsWeights::Set(Weights {
                source: 95,
                target: 5
            }),
            wait: true
        }
    );
    assert_eq!(
        plan.steps[0].undo,
        Some(Action::DnsWeights {
            weights: DnsWeights::Previous,
            wait: true
        })
    );
    assert!(plan.steps[0].action.is_idempotent());
    assert_eq!(
        plan.steps[0].action.describe(&plan),
        "weight db.example.com: source 95, target 5 (5 % to the target), wait for INSYNC"
    );
    let plain = dns_plan_with(
        r#"{ kind = "dns", weights = { source = 0, target = 100 } }"#,
        r#"{ kind = "dns", weights = { source = 100, target = 0 } }"#,
        false,
    );
    let dns = parse("p.toml", &plain).expect("parses").dns.expect("dns");
    assert_eq!(
        (dns.source_set.as_str(), dns.target_set.as_str()),
        ("source", "target")
    );
}

#[test]
fn bad_weights_are_located_with_the_reason_and_the_fix() {
    for (action, undo, says) in [
        (
            r#"{ kind = "dns", weights = { source = 300, target = 5 } }"#,
            r#"{ kind = "dns", weights = "previous" }"#,
            "weights.source = 300 is out of range",
        ),
        (
            r#"{ kind = "dns", weights = { source = 0, target = 0 } }"#,
            r#"{ kind = "dns", weights = "previous" }"#,
            "are both 0",
        ),
        (
            r#"{ kind = "dns", to = "target", weights = { source = 5, target = 95 } }"#,
            r#"{ kind = "dns", to = "source" }"#,
            "both `to` and `weights`",
        ),
        (
            r#"{ kind = "dns" }"#,
            r#"{ kind = "dns", to = "source" }"#,
            "neither `to` nor `weights`",
        ),
        (
            r#"{ kind = "dns", weights = "previous" }"#,
            r#"{ kind = "dns", to = "source" }"#,
            "is for an undo",
        ),
        (
            r#"{ kind = "dns", to = "target" }"#,
            r#"{ kind = "dns", weights = "previous" }"#,
            "this step's action is not one",
        ),
        (
            r#"{ kind = "dns", weights = "half" }"#,
            r#"{ kind = "dns", to = "source" }"#,
            "is not a weighting",
        ),
    ] {
        let errs = errors(&dns_plan_with(action, undo, false));
        let e = errs
            .iter()
            .find(|e| e.message.contains(says))
            .unwrap_or_else(|| panic!("{says}: {errs:?}"));
        // Where the action (line 12) or the undo (line 13) is written.
        assert!(
            [(12, 10), (13, 8)].contains(&(e.line, e.col)) && e.hint.is_some(),
            "{e:?}"
        );
    }
    let text = dns_plan_with(
        r#"{ kind = "dns", weights = { source = 95, target = 5 } }"#,
        r#"{ kind = "dns", weights = "previous" }"#,
        true,
    )
    .replace("source_set = \"blue\"", "source_set = \"\"");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("[dns] source_set \"\" is not a Route 53 set identifier")
            && (e.line, e.col) == (10, 14)),
        "{errs:?}"
    );
}

#[test]
fn the_weights_before_line_round_trips() {
    let w = Weights {
        source: 95,
        target: 5,
    };
    assert_eq!(Weights::parse_before_line(&w.before_line()), Some(w));
    assert_eq!(
        Weights::parse_before_line("weights before the change: source x"),
        None
    );
    assert_eq!(
        Weights::parse_before_line("change /change/C1 is INSYNC"),
        None
    );
}

#[test]
fn an_http_action_parses_with_secret_headers_kept_out_of_the_plan() {
    let text = plan_with(
        "rehearsal",
        r#"{ kind = "http", method = "put", url = "https://flags.internal:8443/api/flags/write_enabled", headers = { "X-Request-Source" = "cutover" }, headers_env = { Authorization = "FLAGS_TOKEN" }, headers_file = { "X-Api-Key" = "~/.flags/key" }, json = { enabled = false, tenants = ["a", "b"] }, expect = [200, 204], timeout = "5s" }"#,
        r#"{ kind = "http", method = "PUT", url = "https://flags.internal:8443/api/flags/write_enabled", json = { enabled = true }, idempotent = true }"#,
    );
    let (action, undo) = step_actions(&text);
    let Action::Http(h) = action else {
        panic!("{action:?}")
    };
    assert_eq!(h.method, "PUT");
    assert_eq!(
        h.headers,
        [
            (
                "X-Request-Source".to_string(),
                http::HeaderValue::Literal("cutover".into())
            ),
            (
                "Authorization".to_string(),
                http::HeaderValue::Env("FLAGS_TOKEN".into())
            ),
            (
                "X-Api-Key".to_string(),
                http::HeaderValue::File("~/.flags/key".into())
            ),
        ]
    );
    assert_eq!(
        h.json,
        Some(serde_json::json!({"enabled": false, "tenants": ["a", "b"]}))
    );
    assert_eq!((h.expect.clone(), h.timeout_ms), (vec![200, 204], 5_000));
    assert!(h.accepts(204) && !h.accepts(201));
    assert!(
        !Action::Http(h.clone()).is_idempotent(),
        "not unless declared"
    );
    let Some(Action::Http(u)) = undo else {
        panic!("undo")
    };
    assert!(u.accepts(201) && !u.accepts(302), "any 2xx by default");
    assert!(Action::Http(u).is_idempotent(), "declared");
}

#[test]
fn bad_http_actions_are_located_with_the_reason_and_the_fix() {
    let undo = r#"{ kind = "http", method = "POST", url = "http://flags.internal/undo" }"#;
    for (action, says) in [
        (
            r#"{ kind = "http", method = "FETCH", url = "http://flags.internal/x" }"#,
            "method \"FETCH\" is not one it sends",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "flags.internal/x" }"#,
            "is not an http:// or https:// URL",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal:99999/x" }"#,
            "port",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "https://ops:hunter22@flags.internal/x" }"#,
            "carries a credential",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", expect = [200, 999] }"#,
            "expect lists 999, which is not an HTTP status",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", expect = [] }"#,
            "expect is empty",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", headers = { Authorization = "Bearer abc" } }"#,
            "header \"Authorization\" is a credential written in the plan",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", timeout = "1h" }"#,
            "timeout 1h is longer than",
        ),
        (
            r#"{ kind = "http", method = "GET", url = "http://flags.internal/x", json = { a = 1 } }"#,
            "json body with GET",
        ),
        (
            r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", headers_env = { "X-Token" = "not a name" } }"#,
            "not a name",
        ),
    ] {
        let errs = errors(&plan_with("rehearsal", action, undo));
        let e = errs
            .iter()
            .find(|e| e.message.contains(says))
            .unwrap_or_else(|| panic!("{says}: {errs:?}"));
        assert_eq!((e.line, e.col), (8, 10), "{e:?}");
        assert!(e.hint.is_some(), "{e:?}");
        assert!(!e.to_string().contains("hunter22"), "{e}");
    }
    let errs = errors(&plan_with(
        "rehearsal",
        r#"{ kind = "http", method = "PUT", url = "http://flags.internal/x", body = "x" }"#,
        undo,
    ));
    assert!(errs[0].message.contains("unknown field `body`"), "{errs:?}");
}
