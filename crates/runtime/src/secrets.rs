//! The plan's secrets as the program reads them: one reader for a password file, shared by
//! the database connections and the session's scrubber, so the text scrubbed from
//! transcripts is exactly the password that was used.

use std::path::{Path, PathBuf};

/// The longest password file read (a password is a line, not a disk).
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// The first line of a password file. Refuses what is not a regular file (`/dev/null`, a
/// FIFO, a directory), a huge file, and an empty first line: an empty password is never
/// what a password file meant, and using one silently fails later as a login error.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    read_secret_file(path, "password_file")
}

/// The first line of a file holding a secret (a password, a webhook URL), with the same
/// refusals; `field` is the plan field that named it, for the error.
pub fn read_secret_file(path: &Path, field: &str) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {field} {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{field} {shown} is not a regular file"));
    }
    if meta.len() > MAX_PASSWORD_FILE {
        return Err(format!(
            "{field} {shown} is {} bytes; a secret file holds one line",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {field} {shown}: {e}"))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(format!(
            "{field} {shown} is empty (its first line holds nothing)"
        ));
    }
    Ok(first.to_string())
}

pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}
