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
        hint.contains("default_transaction_read_only") && hint.contains("kind = \"shell\""),
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
