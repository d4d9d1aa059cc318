//! `[[notify]]`: what parses, and where the errors point (never at the URL's text).

use super::*;

const BASE: &str = "name = \"p\"\n\
[source]\nengine = \"rehearsal\"\n\
[target]\nengine = \"rehearsal\"\n\
[[step]]\nid = \"freeze\"\nconfirm = \"go\"\n";

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn errors(text: &str) -> Vec<PlanError> {
    match parse("p.toml", text) {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(e) => e.0,
    }
}

fn line_of(text: &str, fragment: &str) -> usize {
    text.lines()
        .position(|l| l.contains(fragment))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line with {fragment}"))
}

#[test]
fn receivers_parse_with_their_kind_secret_and_events() {
    let text = with(
        "[[notify]]\nname = \"ops\"\nkind = \"slack\"\nurl_env = \"OPS_HOOK\"\n\
         on = [\"step-done\", \"rollback-started\", \"step-done\"]\n\
         [[notify]]\nkind = \"json\"\nurl_file = \"~/.cutover/hook.url\"\non = [\"budget-warning\"]\n",
    );
    let plan = parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.notify.len(), 2);
    let ops = &plan.notify[0];
    assert_eq!(ops.name, "ops");
    assert_eq!(ops.kind, NotifyKind::Slack);
    assert_eq!(ops.url, UrlSecret::Env("OPS_HOOK".into()));
    assert_eq!(
        ops.on,
        [NotifyOn::StepDone, NotifyOn::RollbackStarted],
        "repeats dropped"
    );
    let second = &plan.notify[1];
    assert_eq!(second.name, "notify-2", "unnamed: by position");
    assert_eq!(second.url, UrlSecret::File("~/.cutover/hook.url".into()));
    assert_eq!(second.on, [NotifyOn::BudgetWarning]);
}

#[test]
fn every_event_name_parses_and_prints_back() {
    for k in NotifyOn::ALL {
        assert_eq!(NotifyOn::parse(k.as_str()), Some(k));
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::Value::String(k.as_str().into())
        );
    }
}

#[test]
fn a_literal_url_is_refused_without_echoing_it() {
    let text = with(
        "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.example/T000/B000/XXXXsecret\"\non = [\"step-done\"]\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.line, line_of(&text, "url ="));
    assert!(e.message.contains("does not belong in the plan"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("url_env"), "{e}");
    assert!(!e.to_string().contains("XXXXsecret"), "{e}");
}

#[test]
fn an_unknown_event_names_the_closest_and_its_position() {
    let text = with(
        "[[notify]]\nkind = \"json\"\nurl_env = \"HOOK\"\non = [\"step-done\", \"step-fialed\"]\n",
    );
    let e = &errors(&text)[0];
    assert_eq!(e.line, line_of(&text, "step-fialed"));
    assert_eq!(e.col, 20, "the second item: {e}");
    assert!(e.message.contains("step-fialed"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("did you mean \"step-failed\""),
        "{e}"
    );
}

#[test]
fn kind_secret_and_events_are_each_required() {
    let text = with("[[notify]]\nname = \"x\"\n");
    let errs = errors(&text);
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("has no kind")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("where its webhook URL is")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("what to send")),
        "{messages:?}"
    );

    let both = with(
        "[[notify]]\nkind = \"slack\"\nurl_env = \"A\"\nurl_file = \"f\"\non = [\"step-done\"]\n",
    );
    assert!(
        errors(&both)[0]
            .message
            .contains("both url_env and url_file")
    );
    let bad_env =
        with("[[notify]]\nkind = \"slack\"\nurl_env = \"MY-HOOK\"\non = [\"step-done\"]\n");
    assert!(
        errors(&bad_env)[0]
            .message
            .contains("url_env = \"MY-HOOK\"")
    );
    let bad_kind = with("[[notify]]\nkind = \"teams\"\nurl_env = \"A\"\non = [\"step-done\"]\n");
    let e = &errors(&bad_kind)[0];
    assert!(e.message.contains("unknown kind \"teams\""), "{e}");
    let empty = with("[[notify]]\nkind = \"json\"\nurl_env = \"A\"\non = []\n");
    assert!(errors(&empty)[0].message.contains("`on` is empty"));
    let dup = with(
        "[[notify]]\nname = \"a\"\nkind = \"json\"\nurl_env = \"A\"\non = [\"step-done\"]\n\
         [[notify]]\nname = \"a\"\nkind = \"json\"\nurl_env = \"B\"\non = [\"step-done\"]\n",
    );
    assert!(
        errors(&dup)[0]
            .message
            .contains("duplicate notify id \"a\"")
    );
}

#[test]
fn a_delivery_record_reads_without_its_optional_fields_and_folds_into_the_log() {
    use crate::event::{DeliveryOutcome, Event};
    let ev: Event = serde_json::from_str(
        r#"{"type":"notify_delivered","at":5,"notify":"ops","on":"step-failed","outcome":"dropped"}"#,
    )
    .unwrap();
    let Event::NotifyDelivered {
        on,
        outcome,
        status,
        attempts,
        error,
        ..
    } = &ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (*on, *outcome, *status, *attempts, error.as_deref()),
        (
            NotifyOn::StepFailed,
            DeliveryOutcome::Dropped,
            None,
            0,
            None
        )
    );
    let plan = std::sync::Arc::new(parse("p.toml", BASE).unwrap());
    let mut state = crate::state::State::new(plan);
    state.apply(&ev);
    state.apply(&Event::NotifyDelivered {
        at: 6,
        notify: "ops".into(),
        on: NotifyOn::StepDone,
        outcome: DeliveryOutcome::Failed,
        status: Some(503),
        attempts: 3,
        error: Some("the receiver answered 503 Service Unavailable".into()),
    });
    let lines: Vec<&str> = state.log.iter().map(|l| l.text.as_str()).collect();
    assert!(
        lines.contains(&"notify ops: step-failed dropped (queue full)"),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"notify ops: step-done not delivered after 3 attempts, HTTP 503: the receiver answered 503 Service Unavailable"
        ),
        "{lines:?}"
    );
}
