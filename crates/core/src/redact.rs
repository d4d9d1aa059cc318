//! Keeps secrets out of events, logs and errors: passwords in URLs, and `password=` pairs.

/// `scheme://user:secret@host/db` -> `scheme://user:***@host/db`. Text without a password
/// comes back unchanged.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Scrubs every URL password and `password=...` / `pwd=...` value in free text (error
/// messages from drivers and SDKs), and any of the given known secret values.
pub fn text(text: &str, secrets: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains("://") {
            let start = word.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
            let (lead, u) = word.split_at(start);
            out.push_str(lead);
            out.push_str(&url(u));
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let key_len = ["password=", "pwd=", "passwd=", "secret=", "token="]
            .iter()
            .find(|k| lower.starts_with(*k))
            .map(|k| k.len());
        match key_len {
            Some(n) => {
                out.push_str(&word[..n]);
                out.push_str("***");
            }
            None => out.push_str(word),
        }
    }
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            super::url("mysql://app:s3cret@db:3306/shop"),
            "mysql://app:***@db:3306/shop"
        );
        assert_eq!(
            super::url("mysql://app@db:3306/shop"),
            "mysql://app@db:3306/shop"
        );
        assert_eq!(
            super::url("postgres://u:p@h/d?sslmode=require"),
            "postgres://u:***@h/d?sslmode=require"
        );
        assert_eq!(super::url("not a url"), "not a url");
    }

    #[test]
    fn free_text_is_scrubbed() {
        let t = super::text(
            "connect to (mysql://root:hunter22@10.0.0.1/x) failed password=hunter22 token=abc",
            &["hunter22"],
        );
        assert!(!t.contains("hunter22"), "{t}");
        assert!(!t.contains("abc"), "{t}");
        assert!(t.contains("mysql://root:***@10.0.0.1/x)"), "{t}");
    }
}
