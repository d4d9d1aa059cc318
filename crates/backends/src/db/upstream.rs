//! Does the replica replicate from the plan's source? A binlog replica's `Master_Host` /
//! `Source_Host` and port (`SHOW SLAVE/REPLICA STATUS`), a subscription's host, port and
//! dbname (`pg_subscription.subconninfo`), compared with the plan's `[source]` URL. A plan
//! whose source is another server than the one the replica follows would prove "caught up"
//! against the wrong server: that is a failed reading naming both, so every gate on
//! replication stays unknown.
//!
//! Names against addresses (`localhost` vs `127.0.0.1`, an RDS endpoint vs its address):
//! both sides are resolved on this host and the same server is one whose address sets meet.
//! When either side cannot be resolved here (a name only the replica's network knows) the
//! check cannot tell: that is a warning in the engine's facts and the log, not a failure,
//! because refusing would block every plan run from outside the replica's network. Only the
//! host, port and database name are ever read out of a conninfo; its password never is.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// How long resolving one name may take; the answer is kept while the replica's view stays.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a server is, as one side names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// The host names or addresses (a PostgreSQL conninfo may list several).
    pub hosts: Vec<String>,
    pub port: u16,
    /// PostgreSQL only: the database; `None` when the conninfo does not say.
    pub dbname: Option<String>,
}

impl Address {
    pub fn show(&self) -> String {
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                if h.contains(':') {
                    format!("[{h}]:{}", self.port)
                } else {
                    format!("{h}:{}", self.port)
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        match &self.dbname {
            Some(db) => format!("{hosts}/{db}"),
            None => hosts,
        }
    }
}

/// The host, port and database of a `scheme://user@host:port/db?...` URL (the plan's,
/// already redacted); `None` when it names no host (a Unix socket).
pub(crate) fn from_url(url: &str, default_port: u16) -> Option<Address> {
    let rest = url.split_once("://")?.1;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default_port,
    };
    let dbname = path
        .strip_prefix('/')
        .map(|p| p.split('?').next().unwrap_or_default())
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    Some(Address {
        hosts: vec![host],
        port,
        dbname,
    })
}

/// The host(s), port and dbname of a libpq conninfo (`key=value ...` with single-quoted
/// values, or a `postgres://` URI). Nothing else is kept.
pub(crate) fn from_conninfo(conninfo: &str) -> Option<Address> {
    let trimmed = conninfo.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return from_url(trimmed, 5432);
    }
    let (mut host, mut hostaddr, mut port, mut dbname) = (None, None, None, None);
    let mut chars = trimmed.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "host" => host = Some(value),
            "hostaddr" => hostaddr = Some(value),
            "port" => port = Some(value),
            "dbname" => dbname = Some(value),
            // Every other key (the password among them) is dropped unread.
            _ => {}
        }
    }
    let hosts: Vec<String> = hostaddr
        .or(host)
        .unwrap_or_else(|| "localhost".into())
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    // A host starting with '/' is a Unix socket directory: there is nothing to compare.
    if hosts.is_empty() || hosts.iter().any(|h| h.starts_with('/')) {
        return None;
    }
    let port = match port.as_deref().map(|p| p.split(',').next().unwrap_or(p)) {
        Some(p) => p.trim().parse().ok()?,
        None => 5432,
    };
    Some(Address {
        hosts,
        port,
        dbname,
    })
}

/// What the comparison found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The same server: `note` says how it was told when the spellings differ.
    Same { note: Option<String> },
    /// Cannot be told from here (a name does not resolve on this host).
    Unsure(String),
    /// Another server (port, database, or disjoint addresses).
    Different,
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

async fn addresses(host: &str, port: u16) -> Result<BTreeSet<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(BTreeSet::from([ip]));
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
        Ok(Err(e)) => Err(format!("{host} does not resolve here: {e}")),
        Err(_) => Err(format!(
            "{host} did not resolve within {}s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

/// Whether `replica_view` (where the replica says it replicates from) is `plan` (the plan's
/// source).
pub(crate) async fn compare(replica_view: &Address, plan: &Address) -> Verdict {
    if replica_view.port != plan.port {
        return Verdict::Different;
    }
    if let (Some(a), Some(b)) = (&replica_view.dbname, &plan.dbname)
        && a != b
    {
        return Verdict::Different;
    }
    let spelled_alike = replica_view
        .hosts
        .iter()
        .any(|r| plan.hosts.iter().any(|p| same_name(r, p)));
    if spelled_alike {
        return Verdict::Same { note: None };
    }
    let mut theirs = BTreeSet::new();
    let mut unsure = Vec::new();
    for h in &replica_view.hosts {
        match addresses(h, replica_view.port).await {
            Ok(a) => theirs.extend(a),
            Err(e) => unsure.push(e),
        }
    }
    let mut ours = BTreeSet::new();
    for h in &plan.hosts {
        match addresses(h, plan.port).await {
            Ok(a) => ours.extend(a),
            Err(e) => unsure.push(e),
        }
    }
    if theirs.intersection(&ours).next().is_some() {
        return Verdict::Same {
            note: Some(format!(
                "{} and {} resolve to the same address on this host",
                replica_view.hosts.join(","),
                plan.hosts.join(",")
            )),
        };
    }
    if unsure.is_empty() {
        Verdict::Different
    } else {
        Verdict::Unsure(unsure.join("; "))
    }
}

/// The answer kept for one replica view, so a name is resolved once, not every poll.
#[derive(Default)]
pub(crate) struct Cache(std::sync::Mutex<Option<(Address, Verdict)>>);

impl Cache {
    pub async fn compare(&self, replica_view: &Address, plan: &Address) -> Verdict {
        if let Ok(held) = self.0.lock()
            && let Some((seen, verdict)) = held.as_ref()
            && seen == replica_view
        {
            return verdict.clone();
        }
        let verdict = compare(replica_view, plan).await;
        if let Verdict::Unsure(why) = &verdict {
            tracing::warn!(
                replicates_from = replica_view.show(),
                source = plan.show(),
                why,
                "cannot tell whether the replica replicates from the plan's source"
            );
        }
        if let Ok(mut held) = self.0.lock() {
            *held = Some((replica_view.clone(), verdict.clone()));
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16, db: Option<&str>) -> Address {
        Address {
            hosts: vec![host.into()],
            port,
            dbname: db.map(str::to_string),
        }
    }

    #[test]
    fn urls_give_host_port_and_database() {
        assert_eq!(
            from_url("mysql://root@127.0.0.1:3307/shop", 3306),
            Some(addr("127.0.0.1", 3307, Some("shop")))
        );
        assert_eq!(
            from_url("postgres://u:***@db.example.com/shop?sslmode=require", 5432),
            Some(addr("db.example.com", 5432, Some("shop")))
        );
        assert_eq!(
            from_url("postgres://u@[::1]:5433/x", 5432),
            Some(addr("::1", 5433, Some("x")))
        );
        assert_eq!(from_url("postgres:///x", 5432), None);
    }

    #[test]
    fn a_conninfo_gives_host_port_and_dbname_and_drops_the_password() {
        let a = from_conninfo(
            "host=127.0.0.1 port=5433 user=postgres password='s3 cr\\'et' dbname=native_x",
        )
        .unwrap_or_else(|| panic!("parsed"));
        assert_eq!(a, addr("127.0.0.1", 5433, Some("native_x")));
        assert!(!format!("{a:?}").contains("s3"));
        assert_eq!(
            from_conninfo("hostaddr=10.0.0.5 host=db dbname = shop"),
            Some(addr("10.0.0.5", 5432, Some("shop")))
        );
        assert_eq!(
            from_conninfo("postgresql://rep@src.internal:6432/shop"),
            Some(addr("src.internal", 6432, Some("shop")))
        );
        assert_eq!(from_conninfo("host=/var/run/postgresql dbname=x"), None);
    }

    #[tokio::test]
    async fn names_and_addresses_are_resolved_before_they_are_called_different() {
        let plan = addr("127.0.0.1", 3307, None);
        assert_eq!(
            compare(&addr("127.0.0.1", 3307, None), &plan).await,
            Verdict::Same { note: None }
        );
        assert_eq!(
            compare(&addr("127.0.0.1", 3306, None), &plan).await,
            Verdict::Different
        );
        assert_eq!(
            compare(&addr("10.0.0.5", 3307, None), &plan).await,
            Verdict::Different
        );
        // localhost is in /etc/hosts: no query leaves the machine.
        assert!(matches!(
            compare(&addr("localhost", 3307, None), &plan).await,
            Verdict::Same { note: Some(_) }
        ));
        assert_eq!(
            compare(
                &addr("127.0.0.1", 5433, Some("a")),
                &addr("127.0.0.1", 5433, Some("b"))
            )
            .await,
            Verdict::Different
        );
    }
}
