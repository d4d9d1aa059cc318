//! `[[notify]]`: webhooks told about the window's events. A webhook URL is a secret (anyone
//! holding it can post to the channel), so the plan only names where it is kept: an
//! environment variable (`url_env`) or a file (`url_file`). A literal `url` is refused, so the
//! plan text a transcript header carries never holds one.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Locator, limits};

/// `[[notify]]` entries in a plan.
pub const NOTIFIES: std::ops::RangeInclusive<usize> = 0..=16;

/// What a receiver is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A Slack-compatible incoming webhook: `{"text": "..."}` (Mattermost, Rocket.Chat and
    /// others accept it too).
    Slack,
    /// The notification as a JSON document.
    Json,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Slack => "slack",
            NotifyKind::Json => "json",
        }
    }
}

/// The moments a webhook can be told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyOn {
    SessionStart,
    SessionEnd,
    StepConfirmed,
    StepDone,
    StepFailed,
    AbortFired,
    RollbackStarted,
    RollbackFinished,
    /// The downtime budget reached its warning threshold.
    BudgetWarning,
}

impl NotifyOn {
    /// Every kind, in the order the README lists them.
    pub const ALL: [NotifyOn; 9] = [
        NotifyOn::SessionStart,
        NotifyOn::SessionEnd,
        NotifyOn::StepConfirmed,
        NotifyOn::StepDone,
        NotifyOn::StepFailed,
        NotifyOn::AbortFired,
        NotifyOn::RollbackStarted,
        NotifyOn::RollbackFinished,
        NotifyOn::BudgetWarning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::SessionStart => "session-start",
            NotifyOn::SessionEnd => "session-end",
            NotifyOn::StepConfirmed => "step-confirmed",
            NotifyOn::StepDone => "step-done",
            NotifyOn::StepFailed => "step-failed",
            NotifyOn::AbortFired => "abort-fired",
            NotifyOn::RollbackStarted => "rollback-started",
            NotifyOn::RollbackFinished => "rollback-finished",
            NotifyOn::BudgetWarning => "budget-warning",
        }
    }

    pub fn parse(name: &str) -> Option<NotifyOn> {
        NotifyOn::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Where a webhook's URL is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlSecret {
    /// The environment variable holding it.
    Env(String),
    /// The file holding it on its first line (`~/` expanded).
    File(String),
}

/// One `[[notify]]` receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Notify {
    /// `name`, or `notify-N` (1-based, in plan order): how events and the log name it.
    pub name: String,
    pub kind: NotifyKind,
    pub url: UrlSecret,
    /// What it is told about, in plan order, without repeats.
    pub on: Vec<NotifyOn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    url: Option<Spanned<toml::Value>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    on: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[notify]]` tables, validated.
pub(super) fn notifies(loc: &mut Locator<'_>, raw: &[Spanned<RawNotify>]) -> Vec<Notify> {
    if let Some(extra) = raw.get(*NOTIFIES.end()) {
        loc.at(
            extra,
            format!(
                "the plan has {} [[notify]] receivers, more than {}",
                raw.len(),
                NOTIFIES.end()
            ),
            Some("send to fewer webhooks (a chat channel can fan out further)"),
        );
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        if let Some(n) = notify(loc, i, n, &mut seen) {
            out.push(n);
        }
    }
    out
}

fn notify(
    loc: &mut Locator<'_>,
    i: usize,
    spanned: &Spanned<RawNotify>,
    seen: &mut Vec<(String, usize)>,
) -> Option<Notify> {
    let r = spanned.get_ref();
    let name = match &r.name {
        Some(n) => super::plain_id(loc, "notify", n, seen),
        None => format!("notify-{}", i + 1),
    };
    let mut ok = true;
    if let Some(url) = &r.url {
        // The value is never echoed: it is the secret.
        loc.at(
            url,
            format!("notify \"{name}\": a webhook URL does not belong in the plan (anyone who reads the plan or a transcript could post to the channel)"),
            Some("keep the URL in an environment variable and name it, url_env = \"CUTOVER_SLACK_WEBHOOK\", or in a file (mode 0600) named by url_file = \"~/.cutover/slack.url\""),
        );
        ok = false;
    }
    let kind = match &r.kind {
        Some(k) => match k.get_ref().as_str() {
            "slack" => Some(NotifyKind::Slack),
            "json" => Some(NotifyKind::Json),
            other => {
                loc.at(
                    k,
                    format!("notify \"{name}\": unknown kind \"{}\"", other.escape_debug()),
                    Some("use kind = \"slack\" (Slack-compatible incoming webhook, also Mattermost) or kind = \"json\" (the notification as JSON)"),
                );
                None
            }
        },
        None => {
            loc.at(
                spanned,
                format!("notify \"{name}\" has no kind"),
                Some("add kind = \"slack\" or kind = \"json\""),
            );
            None
        }
    };
    let url = url_secret(loc, &name, spanned, r);
    let on = events(loc, &name, spanned, r.on.as_ref());
    match (ok, kind, url, on) {
        (true, Some(kind), Some(url), Some(on)) => Some(Notify {
            name,
            kind,
            url,
            on,
        }),
        _ => None,
    }
}

fn url_secret(
    loc: &mut Locator<'_>,
    name: &str,
    spanned: &Spanned<RawNotify>,
    r: &RawNotify,
) -> Option<UrlSecret> {
    match (&r.url_env, &r.url_file) {
        (Some(_), Some(f)) => {
            loc.at(
                f,
                format!("notify \"{name}\" has both url_env and url_file"),
                Some("keep one of them: the URL comes from one place"),
            );
            None
        }
        (Some(v), None) => {
            let var = v.get_ref();
            let mut chars = var.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                loc.at(
                    v,
                    format!(
                        "notify \"{name}\": url_env = \"{}\" is not an environment variable's name",
                        var.escape_debug()
                    ),
                    Some("name the variable that holds the webhook URL, e.g. url_env = \"CUTOVER_SLACK_WEBHOOK\""),
                );
                return None;
            }
            Some(UrlSecret::Env(var.clone()))
        }
        (None, Some(f)) => {
            if f.get_ref().trim().is_empty() || limits::control_char(f.get_ref(), false).is_some() {
                loc.at(
                    f,
                    format!("notify \"{name}\": url_file is not a file name"),
                    Some("name the file that holds the webhook URL on its first line, e.g. url_file = \"~/.cutover/slack.url\""),
                );
                return None;
            }
            Some(UrlSecret::File(f.get_ref().clone()))
        }
        (None, None) => {
            if r.url.is_none() {
                loc.at(
                    spanned,
                    format!("notify \"{name}\" does not say where its webhook URL is"),
                    Some("add url_env = \"CUTOVER_SLACK_WEBHOOK\" (an environment variable) or url_file = \"~/.cutover/slack.url\""),
                );
            }
            None
        }
    }
}

fn events(
    loc: &mut Locator<'_>,
    name: &str,
    spanned: &Spanned<RawNotify>,
    on: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Option<Vec<NotifyOn>> {
    let known = || {
        NotifyOn::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(on) = on else {
        loc.at(
            spanned,
            format!("notify \"{name}\" does not say what to send"),
            Some(&format!(
                "add on = [\"step-done\", \"rollback-started\"], with any of: {}",
                known()
            )),
        );
        return None;
    };
    if on.get_ref().is_empty() {
        loc.at(
            on,
            format!("notify \"{name}\": `on` is empty, so nothing would be sent"),
            Some(&format!("list what to send, any of: {}", known())),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in on.get_ref() {
        match NotifyOn::parse(item.get_ref()) {
            Some(k) if !out.contains(&k) => out.push(k),
            Some(_) => {}
            None => {
                let guess = NotifyOn::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .min_by_key(|k| strsim::levenshtein(k, item.get_ref()))
                    .filter(|k| strsim::levenshtein(k, item.get_ref()) <= 3);
                let hint = match guess {
                    Some(g) => format!("did you mean \"{g}\"? (known: {})", known()),
                    None => format!("use any of: {}", known()),
                };
                loc.at(
                    item,
                    format!(
                        "notify \"{name}\": unknown event \"{}\"",
                        item.get_ref().escape_debug()
                    ),
                    Some(&hint),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
