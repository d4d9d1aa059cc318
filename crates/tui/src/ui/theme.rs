//! Colour themes: semantic roles (good, bad, unknown, ...) mapped to terminal styles.
//!
//! Presets are plain TOML files in `themes/`, embedded in the binary; a user file only
//! overrides the compiled defaults (the `dark` preset), like gitui's and yazi's themes. Every
//! state the screen shows also carries a symbol, so `no_color()` loses nothing but colour.
//!
//! A style is written as words: optional modifiers (`bold`, `dim`, `italic`, `underlined`,
//! `reversed`), a foreground colour, and `on <colour>` for the background, e.g.
//! `"bold black on yellow"`. Colours are names (`red`, `lightblue`, `darkgray`, `reset`),
//! 256-colour indexes (`238`) or `#rrggbb`.

use std::fmt;

use ratatui::style::{Color, Modifier, Style};
use toml::de::{DeTable, DeValue};

macro_rules! roles {
    ($($field:ident: $doc:literal),* $(,)?) => {
        /// The styles of every semantic role on the screen.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Theme {
            /// The preset's name or the user file's path, for `--help` and errors.
            pub name: String,
            $(#[doc = $doc] pub $field: Style,)*
        }

        /// Every role a theme file may set, in file order.
        pub const ROLES: &[(&str, &str)] = &[$((stringify!($field), $doc)),*];

        impl Theme {
            fn role_mut(&mut self, key: &str) -> Option<&mut Style> {
                match key {
                    $(stringify!($field) => Some(&mut self.$field),)*
                    _ => None,
                }
            }

            /// A theme with every role unstyled.
            fn blank(name: &str) -> Theme {
                Theme { name: name.to_string(), $($field: Style::new(),)* }
            }
        }
    };
}

roles! {
    text: "Ordinary text.",
    dim: "Secondary text: labels, ages, hints.",
    title: "Pane titles.",
    border: "Pane borders.",
    focus: "Border and title of the focused pane.",
    selected: "The selected row.",
    good: "A check that holds, a step done (shown with ✔).",
    bad: "A check that fails, a mismatch, lost writes (shown with ✖).",
    warn: "Needs attention: failures, timeouts, faults (shown with !).",
    unknown: "No verdict: missing or stale readings (shown with ?).",
    running: "An action or compare under way (shown with ▶).",
    undone: "Undone by a rollback (shown with ↺).",
    stale: "A reading older than its freshness bound.",
    spark: "Sparklines.",
    key: "Key names in hints and help.",
    status: "The status bar.",
    mode_rehearsal: "The [REHEARSAL] mode label.",
    mode_drive: "The [DRIVE] mode label: real systems, real consequences.",
    mode_watch: "The [WATCH] mode label.",
    mode_replay: "The [REPLAY] mode label.",
    dialog: "Dialog and overlay bodies.",
    dialog_border: "Dialog and overlay borders.",
    input: "The phrase being typed.",
    notice: "The notice line (why a key did nothing).",
}

/// The presets, in the order `--help` lists them.
const PRESETS: &[(&str, &str)] = &[
    ("dark", include_str!("../../../../themes/dark.toml")),
    ("light", include_str!("../../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../../themes/high-contrast.toml"),
    ),
    (
        "colorblind",
        include_str!("../../../../themes/colorblind.toml"),
    ),
];
const PRESET_NAMES: &[&str] = &["dark", "light", "high-contrast", "colorblind"];

/// Why a theme could not be loaded: names the file (and line:col) or key, the reason and
/// the fix.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{path}: cannot read the theme file: {source}\n  hint: {hint}")]
    Read {
        path: String,
        source: std::io::Error,
        hint: String,
    },
    #[error("{file}:{line}:{col}: {message}\n  hint: {hint}")]
    Invalid {
        file: String,
        line: usize,
        col: usize,
        message: String,
        hint: String,
    },
}

impl Theme {
    /// The preset names (`--theme` accepts these or a path).
    pub fn names() -> &'static [&'static str] {
        PRESET_NAMES
    }

    /// `None`: the default (dark); a preset name; otherwise the path of a TOML file whose
    /// styles override the defaults.
    pub fn load(name_or_path: Option<&str>) -> Result<Theme, ThemeError> {
        let Some(arg) = name_or_path else {
            return Ok(Theme::dark());
        };
        if let Some((name, text)) = PRESETS.iter().find(|(n, _)| *n == arg) {
            let file = format!("themes/{name}.toml");
            let mut theme = Theme::dark();
            theme.apply_toml(&file, text)?;
            theme.name = (*name).to_string();
            return Ok(theme);
        }
        let text = std::fs::read_to_string(arg).map_err(|source| {
            let looks_like_name = !arg.contains(['/', '\\', '.']);
            let hint = match (looks_like_name, did_you_mean(arg, PRESET_NAMES)) {
                (true, Some(near)) => format!("did you mean the preset \"{near}\"?"),
                _ => format!(
                    "pass a preset ({}) or the path of a TOML theme file",
                    PRESET_NAMES.join(", ")
                ),
            };
            ThemeError::Read {
                path: arg.to_string(),
                source,
                hint,
            }
        })?;
        let mut theme = Theme::dark();
        theme.apply_toml(arg, &text)?;
        theme.name = arg.to_string();
        Ok(theme)
    }

    /// `NO_COLOR` (set and non-empty, see no-color.org) wins; otherwise [`Theme::load`].
    pub fn resolve(arg: Option<&str>) -> Result<Theme, ThemeError> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Ok(Theme::no_color());
        }
        Theme::load(arg)
    }

    /// No colour at all: state is carried by symbols, emphasis by bold and reverse video.
    pub fn no_color() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let rev = Style::new().add_modifier(Modifier::REVERSED);
        let mut t = Theme::blank("no-color");
        t.title = bold;
        t.focus = bold;
        t.selected = rev;
        t.bad = bold;
        t.warn = bold;
        t.stale = Style::new().add_modifier(Modifier::DIM);
        t.key = bold;
        t.mode_rehearsal = rev.add_modifier(Modifier::BOLD);
        t.mode_drive = rev.add_modifier(Modifier::BOLD);
        t.mode_watch = rev.add_modifier(Modifier::BOLD);
        t.mode_replay = rev.add_modifier(Modifier::BOLD);
        t.dialog_border = bold;
        t.input = bold;
        t.notice = bold;
        t
    }

    /// The compiled defaults. `themes/dark.toml` states the same values (a test checks it).
    fn dark() -> Theme {
        let c = |fg: Color| Style::new().fg(fg);
        let bold = |fg: Color| Style::new().fg(fg).add_modifier(Modifier::BOLD);
        Theme {
            name: "dark".into(),
            text: Style::new().fg(Color::Reset),
            dim: c(Color::DarkGray),
            title: bold(Color::Cyan),
            border: c(Color::DarkGray),
            focus: bold(Color::LightCyan),
            selected: Style::new()
                .bg(Color::Indexed(238))
                .add_modifier(Modifier::BOLD),
            good: c(Color::Green),
            bad: bold(Color::LightRed),
            warn: c(Color::Yellow),
            unknown: c(Color::Gray),
            running: c(Color::LightBlue),
            undone: c(Color::Magenta),
            stale: c(Color::DarkGray).add_modifier(Modifier::ITALIC),
            spark: c(Color::Cyan),
            key: bold(Color::Yellow),
            status: Style::new().fg(Color::Reset).bg(Color::Indexed(236)),
            mode_rehearsal: bold(Color::Black).bg(Color::Yellow),
            mode_drive: bold(Color::White).bg(Color::Red),
            mode_watch: bold(Color::Black).bg(Color::Cyan),
            mode_replay: bold(Color::Black).bg(Color::Magenta),
            dialog: Style::new().fg(Color::Reset).bg(Color::Indexed(235)),
            dialog_border: bold(Color::Yellow).bg(Color::Indexed(235)),
            input: bold(Color::White),
            notice: bold(Color::Yellow),
        }
    }

    /// Overrides the roles a TOML file sets. Unknown keys are errors (a typo would
    /// otherwise silently keep the default).
    fn apply_toml(&mut self, file: &str, text: &str) -> Result<(), ThemeError> {
        let invalid = |offset: usize, message: String, hint: String| {
            let (line, col) = line_col(text, offset);
            ThemeError::Invalid {
                file: file.to_string(),
                line,
                col,
                message,
                hint,
            }
        };
        let doc = DeTable::parse(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(
                offset,
                e.message().trim().to_string(),
                "fix the TOML syntax at this position".into(),
            )
        })?;
        for (key, value) in doc.get_ref() {
            match key.get_ref().as_ref() {
                "description" => {}
                "styles" => {
                    let DeValue::Table(styles) = value.get_ref() else {
                        return Err(invalid(
                            value.span().start,
                            "`styles` must be a table".into(),
                            "write [styles] followed by lines such as good = \"green\"".into(),
                        ));
                    };
                    for (role, style) in styles {
                        let name = role.get_ref().as_ref();
                        let Some(slot) = self.role_mut(name) else {
                            let roles: Vec<&str> = ROLES.iter().map(|(r, _)| *r).collect();
                            let hint = match did_you_mean(name, &roles) {
                                Some(near) => format!("did you mean \"{near}\"?"),
                                None => format!("known roles: {}", roles.join(", ")),
                            };
                            return Err(invalid(
                                role.span().start,
                                format!("unknown style role \"{name}\""),
                                hint,
                            ));
                        };
                        let DeValue::String(s) = style.get_ref() else {
                            return Err(invalid(
                                style.span().start,
                                format!("the style of \"{name}\" must be a string"),
                                "quote it, e.g. good = \"bold green\"".into(),
                            ));
                        };
                        // Point into the string, past the opening quote.
                        let at = style.span().start + 1;
                        *slot = parse_style(s).map_err(|(word, why)| {
                            let off = s.find(word.as_str()).unwrap_or(0);
                            invalid(
                                at + off,
                                format!("{why} \"{word}\" in the style of \"{name}\""),
                                STYLE_HINT.into(),
                            )
                        })?;
                    }
                }
                other => {
                    let hint = match did_you_mean(other, &["styles", "description"]) {
                        Some(near) => format!("did you mean \"{near}\"?"),
                        None => "a theme file has `description` and a [styles] table".into(),
                    };
                    return Err(invalid(
                        key.span().start,
                        format!("unknown key \"{other}\""),
                        hint,
                    ));
                }
            }
        }
        Ok(())
    }
}

const STYLE_HINT: &str = "write modifiers (bold, dim, italic, underlined, reversed), a colour \
     (a name such as lightred, an index 0-255 or #rrggbb) and optionally `on <colour>`";

/// Parses `"bold black on yellow"`. Errors return the offending word and why.
fn parse_style(s: &str) -> Result<Style, (String, &'static str)> {
    let mut style = Style::new();
    let mut words = s.split_whitespace();
    let mut fg_set = false;
    while let Some(w) = words.next() {
        let lower = w.to_ascii_lowercase();
        let modifier = match lower.as_str() {
            "bold" => Some(Modifier::BOLD),
            "dim" => Some(Modifier::DIM),
            "italic" => Some(Modifier::ITALIC),
            "underline" | "underlined" => Some(Modifier::UNDERLINED),
            "reverse" | "reversed" => Some(Modifier::REVERSED),
            "crossed" | "crossed-out" => Some(Modifier::CROSSED_OUT),
            _ => None,
        };
        if let Some(m) = modifier {
            style = style.add_modifier(m);
        } else if lower == "on" {
            let Some(bg) = words.next() else {
                return Err((w.to_string(), "missing background colour after"));
            };
            style = style.bg(parse_color(bg).ok_or((bg.to_string(), "unknown colour"))?);
        } else if !fg_set {
            style = style.fg(parse_color(w).ok_or((w.to_string(), "unknown colour"))?);
            fg_set = true;
        } else {
            return Err((w.to_string(), "a second foreground colour"));
        }
    }
    Ok(style)
}

fn parse_color(s: &str) -> Option<Color> {
    match s.to_ascii_lowercase().as_str() {
        "default" | "none" => Some(Color::Reset),
        _ => s.parse::<Color>().ok(),
    }
}

fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (*c, strsim::jaro_winkler(word, c)))
        .filter(|(_, score)| *score > 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[start..].chars().count() + 1)
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads_and_sets_every_role() {
        for name in Theme::names() {
            let theme = Theme::load(Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(theme.name, *name);
            let text = PRESETS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .unwrap();
            for (role, _) in ROLES {
                assert!(
                    text.lines()
                        .any(|l| l.trim_start().starts_with(&format!("{role} ="))),
                    "{name} does not set {role}"
                );
            }
        }
    }

    #[test]
    fn dark_preset_matches_the_compiled_defaults() {
        assert_eq!(Theme::load(Some("dark")).unwrap(), Theme::dark());
        assert_eq!(Theme::load(None).unwrap(), Theme::dark());
    }

    #[test]
    fn colorblind_preset_never_uses_red_or_green() {
        let t = Theme::load(Some("colorblind")).unwrap();
        for s in [t.good, t.bad, t.warn, t.unknown, t.running] {
            for c in [s.fg, s.bg].into_iter().flatten() {
                assert!(
                    !matches!(
                        c,
                        Color::Red | Color::Green | Color::LightRed | Color::LightGreen
                    ),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn a_user_file_overrides_one_colour_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, "[styles]\ngood = \"bold #00ff00 on 17\"\n").unwrap();
        let t = Theme::load(Some(path.to_str().unwrap())).unwrap();
        assert_eq!(
            t.good,
            Style::new()
                .fg(Color::Rgb(0, 255, 0))
                .bg(Color::Indexed(17))
                .add_modifier(Modifier::BOLD)
        );
        let dark = Theme::dark();
        assert_eq!(t.bad, dark.bad);
        assert_eq!(t.text, dark.text);
    }

    #[test]
    fn a_bad_user_file_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        let p = path.to_str().unwrap();

        std::fs::write(&path, "[styles]\ngood = \"green\"\nbad = \"bold purpel\"\n").unwrap();
        let e = Theme::load(Some(p)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{p}:3:13: unknown colour \"purpel\"")),
            "{e}"
        );

        std::fs::write(&path, "[styles]\ngod = \"green\"\n").unwrap();
        let e = Theme::load(Some(p)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{p}:2:1: unknown style role \"god\"")),
            "{e}"
        );
        assert!(e.contains("did you mean \"good\"?"), "{e}");

        std::fs::write(&path, "[styles]\ngood = \"green\n").unwrap();
        let e = Theme::load(Some(p)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{p}:2:")), "{e}");

        let e = Theme::load(Some("drak")).unwrap_err().to_string();
        assert!(e.contains("did you mean the preset \"dark\"?"), "{e}");
    }

    #[test]
    fn no_color_uses_no_colour() {
        let t = Theme::no_color();
        for (role, _) in ROLES {
            let mut t = t.clone();
            let s = *t.role_mut(role).unwrap();
            assert!(s.fg.is_none() && s.bg.is_none(), "{role}");
        }
    }
}
