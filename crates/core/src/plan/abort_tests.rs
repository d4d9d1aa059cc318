//! `[[abort]]` conditions and `on_timeout`: what parses, and where the errors point.

use super::*;

const BASE: &str = "name = \"p\"\n\
[source]\nengine = \"rehearsal\"\n\
[target]\nengine = \"rehearsal\"\n\
[replication]\nengine = \"rehearsal\"\ntask = \"t\"\n\
[[step]]\nid = \"freeze\"\nconfirm = \"go\"\non_timeout = \"rollback\"\n\
[[step]]\nid = \"switch\"\nconfirm = \"switch\"\n";

fn with(aborts: &str) -> String {
    format!("{BASE}{aborts}")
}

fn errors(text: &str) -> Vec<PlanError> {
    match parse("p.toml", text) {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(e) => e.0,
    }
}

/// The 1-based line of the first line containing `fragment`.
fn line_of(text: &str, fragment: &str) -> usize {
    text.lines()
        .position(|l| l.contains(fragment))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line with {fragment}"))
}

#[test]
fn abort_conditions_parse_with_their_window_freshness_and_arming() {
    let text = with(
        "[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30 for 10s fresh 20s\"\n\
         from = \"freeze\"\nuntil = \"switch\"\nthen = \"rollback\"\n\
         [[abort]]\nid = \"drift\"\nwhen = \"drift.rows > 0\"\nthen = \"hold\"\n",
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.aborts.len(), 2);
    let lag = &plan.aborts[0];
    assert_eq!(lag.id, "lag");
    assert_eq!(lag.when.text, "replication.lag_s > 30 for 10s fresh 20s");
    assert_eq!(lag.when.sustain_ms, 10_000);
    assert_eq!(lag.when.fresh_ms, Some(20_000));
    assert_eq!((lag.from, lag.until), (Some(0), Some(1)));
    assert_eq!(lag.then, GuardAction::Rollback);
    let drift = &plan.aborts[1];
    assert_eq!((drift.from, drift.until), (None, None));
    assert_eq!(drift.then, GuardAction::Hold);
    assert_eq!(plan.steps[0].on_timeout, GuardAction::Rollback);
    assert_eq!(plan.steps[1].on_timeout, GuardAction::Hold, "the default");
}

#[test]
fn a_bad_condition_is_located_inside_its_string() {
    let text = with("[[abort]]\nid = \"lag\"\nwhen = \"replication.lagg > 30\"\nthen = \"hold\"\n");
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "lagg"));
    assert_eq!(e.col, 9, "the input's first character: {e}");
    assert!(e.message.contains("replication.lagg"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("did you mean"),
        "{e}"
    );
}

#[test]
fn arming_steps_must_exist_and_come_in_order() {
    let text = with(
        "[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30\"\nfrom = \"frezee\"\nthen = \"hold\"\n",
    );
    let e = &errors(&text)[0];
    assert_eq!((e.line, e.col), (line_of(&text, "frezee"), 8));
    assert!(e.message.contains("`from` names no step \"frezee\""), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("freeze, switch"),
        "{e}"
    );

    let text = with(
        "[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30\"\n\
         from = \"switch\"\nuntil = \"freeze\"\nthen = \"hold\"\n",
    );
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "until"));
    assert!(e.message.contains("comes before its `from` step"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("swap"), "{e}");
}

#[test]
fn an_abort_needs_an_id_a_condition_and_a_decision() {
    let text = with("[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30\"\n");
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "id = \"lag\""));
    assert!(e.message.contains("does not say what to do"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("then = \"rollback\""),
        "{e}"
    );

    let text = with("[[abort]]\nid = \"lag\"\nthen = \"hold\"\n");
    assert!(errors(&text)[0].message.contains("has no condition"));

    let text = with(
        "[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30\"\nthen = \"hold\"\n\
         [[abort]]\nid = \"lag\"\nwhen = \"drift.rows > 0\"\nthen = \"hold\"\n",
    );
    let e = &errors(&text)[0];
    assert_eq!(
        e.line,
        text.lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| *l == "id = \"lag\"")
            .unwrap_or(0)
            + 1
    );
    assert!(e.message.contains("duplicate abort id \"lag\""), "{e}");

    let text =
        with("[[abort]]\nid = \"lag\"\nwhen = \"replication.lag_s > 30\"\nthen = \"pause\"\n");
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "pause"));
    assert!(e.message.contains("unknown variant"), "{e}");
}

#[test]
fn an_abort_on_a_section_the_plan_lacks_is_refused() {
    let text = with("[[abort]]\nid = \"dns\"\nwhen = \"dns.status != INSYNC\"\nthen = \"hold\"\n");
    let e = &errors(&text)[0];
    assert!(e.message.contains("no [dns] section"), "{e}");
}

#[test]
fn on_timeout_takes_only_hold_or_rollback() {
    let text = BASE.replace("on_timeout = \"rollback\"", "on_timeout = \"retry\"");
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "retry"));
    assert!(e.message.contains("unknown variant"), "{e}");
}
