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

/// `BASE` with top-level window keys before its first table.
fn with_keys(keys: &str) -> String {
    BASE.replacen("name = \"p\"\n", &format!("name = \"p\"\n{keys}\n"), 1)
}

#[test]
fn the_downtime_budget_and_the_deadline_parse() {
    let plan = parse(
        "p.toml",
        &with_keys("max_downtime = \"5m\"\non_budget = \"rollback\"\nwindow = \"45m\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.budget,
        Some(DowntimeBudget {
            max_ms: 300_000,
            on_budget: GuardAction::Rollback
        })
    );
    assert_eq!(plan.budget.map(|b| b.warn_after_ms()), Some(240_000));
    assert_eq!(plan.deadline, Some(Deadline::Window(2_700_000)));
    let plan = parse("p.toml", &with_keys("deadline = \"2026-12-01T22:00:00Z\""))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.deadline, Some(Deadline::At(1_796_162_400_000)));
    assert_eq!(plan.budget, None);
}

#[test]
fn bad_budget_and_deadline_keys_point_at_the_value_with_a_fix() {
    let cases = [
        (
            "on_budget = \"hold\"",
            "on_budget",
            "without `max_downtime`",
        ),
        ("max_downtime = \"0s\"", "max_downtime", "max_downtime 0ms"),
        (
            "max_downtime = \"2d\"",
            "max_downtime",
            "is longer than 24h",
        ),
        ("window = \"10s\"", "window", "is shorter than 1m"),
        (
            "deadline = \"tonight at eleven\"",
            "deadline",
            "bad deadline \"tonight at eleven\"",
        ),
        (
            "deadline = \"2026-12-01T22:00:00\"",
            "deadline",
            "bad deadline",
        ),
        (
            "deadline = \"2026-12-01T22:00:00Z\"\nwindow = \"45m\"",
            "window",
            "both `deadline` and `window`",
        ),
        ("on_budget = \"panic\"", "on_budget", "unknown variant"),
    ];
    for (keys, key, want) in cases {
        let text = with_keys(keys);
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{keys}: {errs:?}");
        let e = &errs[0];
        assert!(e.message.contains(want), "{keys}: {}", e.message);
        assert_eq!(e.line, line_of(&text, &format!("{key} =")), "{keys}: {e:?}");
        assert!(
            e.hint.is_some() || want == "unknown variant",
            "{keys}: a hint says the fix"
        );
    }
}
