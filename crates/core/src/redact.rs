//! Keeps secrets out of events, logs and errors: passwords in a URL's userinfo, secret query
//! parameters (`?password=`, `?sslpassword=`, `?token=` ...), ODBC/libpq keyword strings
//! (`host=db password=x`, `Uid=app;Pwd=x;`) and `password=` pairs in free text.
//!
//! One scanner ([`scan`]) decides what in a URL is a secret; plan validation refuses a URL in
//! which it finds one, and the masking here hides what it finds. So what validation lets
//! through and what printing hides cannot drift apart.

use std::ops::Range;

/// The mask written in place of a secret.
pub const MASK: &str = "***";

/// Where a secret sits in a URL or keyword string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// `scheme://user:secret@host`.
    UserinfoPassword,
    /// `?key=secret`: the (percent-decoded, lower-case) key.
    QueryParameter(String),
    /// `key=secret` in a keyword string (`host=db password=x`, `Pwd=x;`): the key.
    Keyword(String),
}

impl SecretKind {
    /// "a password in its userinfo", "the query parameter \"password\"", ...
    pub fn describe(&self) -> String {
        match self {
            SecretKind::UserinfoPassword => "a password in its userinfo (user:password@)".into(),
            SecretKind::QueryParameter(k) => format!("a secret in the query parameter \"{k}\""),
            SecretKind::Keyword(k) => format!("a secret in the keyword pair \"{k}=...\""),
        }
    }
}

/// One secret found in a URL: what it is and the byte range of its (raw) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub kind: SecretKind,
    pub range: Range<usize>,
}

/// What [`scan`] finds in a URL or keyword string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The user name in `scheme://user[:password]@host` (it may be a password typed in the
    /// wrong place, so errors hide it).
    pub user: Option<Range<usize>>,
    pub secrets: Vec<Secret>,
}

/// Whether a parameter or keyword of this name carries a secret. `key` is compared
/// percent-decoded, case-insensitively and without `-`/`_`, so `Pass%77ord`, `ssl_password`
/// and `X-Amz-Security-Token` all count.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = percent_decode(key)
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "credential",
        "signature",
        "apikey",
        "privatekey",
    ];
    const EXACT: &[&str] = &["pass", "pw", "sslpassphrase"];
    PARTS.iter().any(|p| k.contains(p)) || EXACT.contains(&k.as_str())
}

/// Finds every secret in `text`: a URL (`scheme://...`) or a keyword string.
pub fn scan(text: &str) -> Scan {
    match text.find("://") {
        Some(i) => scan_url(text, i + 3),
        None => Scan {
            user: None,
            secrets: scan_keywords(text, 0..text.len(), Keyword::Keyword),
        },
    }
}

#[derive(Clone, Copy)]
enum Keyword {
    Query,
    Keyword,
}

fn scan_url(text: &str, start: usize) -> Scan {
    let rest = &text[start..];
    // The userinfo ends at the last '@' of the authority. A password may hold an unencoded
    // '/', '?' or '=' (the driver then fails to parse it, and the error must not show it),
    // so also look before the first '=' (a query parameter's) and take the later '@'.
    let whatwg = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let before_eq = rest.find('=').unwrap_or(rest.len());
    let at = [&rest[..whatwg], &rest[..before_eq]]
        .iter()
        .filter_map(|s| s.rfind('@'))
        .max();
    let mut scan = Scan::default();
    let host_start = match at {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    scan.user = Some(start..start + colon);
                    scan.secrets.push(Secret {
                        kind: SecretKind::UserinfoPassword,
                        range: start + colon + 1..start + at,
                    });
                }
                None => scan.user = Some(start..start + at),
            }
            at + 1
        }
        None => 0,
    };
    // The query and the fragment (which no driver reads, but which the plan's text, and so
    // the transcript, would still carry).
    if let Some(q) = rest[host_start..].find(['?', '#']) {
        let q = start + host_start + q + 1;
        scan.secrets
            .extend(scan_keywords(text, q..text.len(), Keyword::Query));
    }
    scan
}

/// `key=value` pairs in `text[range]`: separated by `&`/`;` in a query, by whitespace or
/// `;` in a keyword string (values may be quoted with '', "" or {}).
fn scan_keywords(text: &str, range: Range<usize>, style: Keyword) -> Vec<Secret> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = range.start;
    let is_sep = |b: u8| match style {
        Keyword::Query => matches!(b, b'&' | b';' | b'#' | b'?'),
        Keyword::Keyword => b == b';' || b.is_ascii_whitespace(),
    };
    while i < range.end {
        // The key runs to '=' or a separator.
        let key_start = i;
        while i < range.end && bytes[i] != b'=' && !is_sep(bytes[i]) {
            i += 1;
        }
        let key_end = i;
        // Keyword strings allow spaces before '=': `password = x`.
        if matches!(style, Keyword::Keyword) {
            while i < range.end && bytes[i] == b' ' {
                i += 1;
            }
        }
        if i >= range.end || bytes[i] != b'=' || key_end == key_start {
            i = key_end + 1;
            continue;
        }
        let key = text[key_start..key_end].trim();
        i += 1;
        // Keyword strings allow spaces around '=': `password = x`.
        if matches!(style, Keyword::Keyword) {
            while i < range.end && bytes[i] == b' ' {
                i += 1;
            }
        }
        let value_start = i;
        let close = match (style, bytes.get(i)) {
            (Keyword::Keyword, Some(b'\'')) => Some(b'\''),
            (Keyword::Keyword, Some(b'"')) => Some(b'"'),
            (Keyword::Keyword, Some(b'{')) => Some(b'}'),
            _ => None,
        };
        match close {
            Some(c) => {
                i += 1;
                while i < range.end && bytes[i] != c {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(range.end);
            }
            None => {
                while i < range.end && !is_sep(bytes[i]) {
                    i += 1;
                }
            }
        }
        let value = &text[value_start..i.min(range.end)];
        let key_name: String = percent_decode(key).to_ascii_lowercase();
        let inline_key = key_name.replace(['-', '_'], "").contains("sslkey")
            && percent_decode(value).contains("BEGIN");
        // A value already masked (by the URL pass of `text`) stays as it is.
        if (is_secret_key(key) || inline_key) && !value.is_empty() && !value.starts_with(MASK) {
            let kind = match style {
                Keyword::Query => SecretKind::QueryParameter(key_name),
                Keyword::Keyword => SecretKind::Keyword(key.to_string()),
            };
            out.push(Secret {
                kind,
                range: value_start..i.min(range.end),
            });
        }
    }
    out
}

/// The secret values in a URL or keyword string, percent-decoded as the driver sees them:
/// what to scrub from a driver's messages.
pub fn url_secret_values(url: &str) -> Vec<String> {
    scan(url)
        .secrets
        .iter()
        .flat_map(|s| {
            let raw = &url[s.range.clone()];
            let raw = raw
                .trim_matches(|c| matches!(c, '\'' | '"' | '{' | '}'))
                .to_string();
            [percent_decode(&raw), raw]
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// The user name in `scheme://user@host`, percent-decoded, if any.
pub fn url_user(url: &str) -> Option<String> {
    scan(url)
        .user
        .map(|r| percent_decode(&url[r]))
        .filter(|u| !u.is_empty())
}

fn mask(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.start < at {
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str(MASK);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `scheme://user:secret@host/db?password=x` -> `scheme://user:***@host/db?password=***`;
/// keyword strings lose their secret values (`host=db password=***`). Text without a secret
/// comes back unchanged.
pub fn url(url: &str) -> String {
    let found = scan(url);
    mask(url, found.secrets.into_iter().map(|s| s.range).collect())
}

/// Like [`url`], and the user name is masked too (`mysql://***@host/db`): for errors about a
/// URL that has not been shown to work, whose "user" may be a password typed in the user
/// position.
pub fn url_hiding_user(url: &str) -> String {
    let found = scan(url);
    let mut ranges: Vec<Range<usize>> = found.secrets.into_iter().map(|s| s.range).collect();
    ranges.extend(found.user.filter(|r| !r.is_empty()));
    mask(url, ranges)
}

/// Scrubs every URL secret and `password=...` / `pwd=...` value in free text (error
/// messages from drivers and SDKs, action output), and any of the given known secret values.
pub fn text(text: &str, secrets: &[&str]) -> String {
    let mut words = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            words.push(' ');
        }
        if word.contains("://") {
            let start = word.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
            let (lead, u) = word.split_at(start);
            // Punctuation after the URL is the sentence's (`... to mysql://h/d: error`).
            let end = u.trim_end_matches([':', ',', ')', ']', '\'', '"']).len();
            let (u, trail) = u.split_at(end);
            words.push_str(lead);
            words.push_str(&url(u));
            words.push_str(trail);
            continue;
        }
        words.push_str(word);
    }
    // What is left is read as a keyword string: `password=x`, `Pwd=x;`, `token = x`.
    let pairs = scan_keywords(&words, 0..words.len(), Keyword::Keyword);
    let mut out = mask(&words, pairs.into_iter().map(|s| s.range).collect());
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, MASK);
    }
    out
}

/// `%41` -> `A`; invalid escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            url("mysql://app:s3cret@db:3306/shop"),
            "mysql://app:***@db:3306/shop"
        );
        assert_eq!(url("mysql://app@db:3306/shop"), "mysql://app@db:3306/shop");
        assert_eq!(
            url("postgres://u:p@h/d?sslmode=require"),
            "postgres://u:***@h/d?sslmode=require"
        );
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn secret_query_parameters_are_masked_whatever_their_spelling() {
        for (given, shown) in [
            (
                "postgres://app@db/shop?password=hunter22",
                "postgres://app@db/shop?password=***",
            ),
            (
                "postgres://app@db/shop?sslmode=require&PassWord=hunter22&x=1",
                "postgres://app@db/shop?sslmode=require&PassWord=***&x=1",
            ),
            (
                "mysql://app@db/shop?pass%77ord=hunter22",
                "mysql://app@db/shop?pass%77ord=***",
            ),
            (
                "mysql://db/s?pwd=hunter22#frag",
                "mysql://db/s?pwd=***#frag",
            ),
            (
                "mysql://db/s#password=hunter22",
                "mysql://db/s#password=***",
            ),
            (
                "mysql://db/s?a=1#x&token=hunter22",
                "mysql://db/s?a=1#x&token=***",
            ),
            (
                "mysql://db/s?sslpassword=hunter22",
                "mysql://db/s?sslpassword=***",
            ),
            (
                "mysql://db/s?passwd=a;token=b",
                "mysql://db/s?passwd=***;token=***",
            ),
            ("mysql://db/s?pass=hunter22", "mysql://db/s?pass=***"),
            ("mysql://db/s?secret=hunter22", "mysql://db/s?secret=***"),
            (
                "postgres://db/s?sslkey=-----BEGIN%20KEY",
                "postgres://db/s?sslkey=***",
            ),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
        // Parameters that carry no secret stay.
        assert_eq!(
            url("postgres://db/s?sslmode=verify-full&schema=shop&passfile=/p"),
            "postgres://db/s?sslmode=verify-full&schema=shop&passfile=/p"
        );
    }

    #[test]
    fn keyword_strings_lose_their_secret_values() {
        assert_eq!(
            url("host=db user=app password=hunter22 dbname=shop"),
            "host=db user=app password=*** dbname=shop"
        );
        assert_eq!(
            url("Server=db;Uid=app;Pwd={hun ter;22};Database=shop"),
            "Server=db;Uid=app;Pwd=***;Database=shop"
        );
        assert_eq!(
            url("host=db password = 'hun ter22'"),
            "host=db password = ***"
        );
    }

    #[test]
    fn a_password_with_unencoded_delimiters_is_still_found() {
        for u in [
            "mysql://app:hun/ter22@db/shop",
            "mysql://app:hun?ter22@db/shop?sslmode=x",
            "mysql://app:hun=ter22@db/shop",
        ] {
            let shown = url(u);
            assert!(!shown.contains("ter22"), "{u} -> {shown}");
            assert!(shown.starts_with("mysql://app:***@db/shop"), "{shown}");
        }
    }

    #[test]
    fn errors_can_hide_the_user_position_too() {
        assert_eq!(
            url_hiding_user("mysql://S3cr3t@host/db"),
            "mysql://***@host/db"
        );
        assert_eq!(
            url_hiding_user("mysql://app:pw@host/db?token=x"),
            "mysql://***:***@host/db?token=***"
        );
        assert_eq!(url_hiding_user("mysql://host/db"), "mysql://host/db");
        assert_eq!(
            url_user("mysql://S3cr%33t@host/db").as_deref(),
            Some("S3cr3t")
        );
    }

    #[test]
    fn secret_values_are_decoded_for_scrubbing() {
        assert_eq!(
            url_secret_values("postgres://a:p%40ss@db/s?password=hunter%2022"),
            ["p@ss", "p%40ss", "hunter 22", "hunter%2022"]
        );
    }

    #[test]
    fn free_text_is_scrubbed() {
        let t = text(
            "connect to (mysql://root:hunter22@10.0.0.1/x) failed password=hunter22 token=abc Pwd=zz;",
            &["hunter22"],
        );
        assert!(!t.contains("hunter22"), "{t}");
        assert!(!t.contains("abc"), "{t}");
        assert!(!t.contains("zz"), "{t}");
        assert!(t.contains("mysql://root:***@10.0.0.1/x)"), "{t}");
        assert!(t.contains("password=***"), "{t}");
        let t = text(
            "cannot connect to postgres://h/d?password=hunter22: refused",
            &[],
        );
        assert_eq!(t, "cannot connect to postgres://h/d?password=***: refused");
    }
}
