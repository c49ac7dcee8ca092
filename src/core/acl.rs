//! Who may connect to a listener (ncat's `--allow`/`--deny`,
//! `--allowfile`/`--denyfile`): addresses, CIDR ranges (`10.0.0.0/8`,
//! `fd00::/8`) and host names (resolved when the listener opens). With
//! an allow list only its clients get in; a deny list keeps its clients
//! out (and wins). A refused client is closed at once and reported with
//! its address (`ACCESS_DENIED`), as one past `--max-connections` is.

use std::net::IpAddr;
use std::path::Path;

use super::error::{CoreError, CoreResult, ErrorCode};

/// An address or a range of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// `ADDR`, `ADDR/PREFIX`; None when it is not an address (a host name).
    fn parse(text: &str) -> Option<Result<Net, String>> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.map(str::parse::<u8>) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => return Some(Err(format!("{text:?}: the prefix is not 0-{max}"))),
        };
        Some(Ok(Net { addr, prefix }))
    }
}

/// A listener's access list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    allow: Option<Vec<Net>>,
    deny: Vec<Net>,
}

/// The words of `--allow`/`--deny` (comma-separated, repeatable) and the
/// files of `--allowfile`/`--denyfile` (one per line, `#` comments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclSpec {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_files: Vec<std::path::PathBuf>,
    pub deny_files: Vec<std::path::PathBuf>,
}

impl AclSpec {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.allow_files.is_empty()
            && self.deny_files.is_empty()
    }

    /// The list, host names resolved (now, once) and files read; an error
    /// names the bad entry (and the file and line).
    pub async fn resolve(&self) -> CoreResult<Acl> {
        let mut allow_words = words(&self.allow);
        let mut deny_words = words(&self.deny);
        for (files, into) in [
            (&self.allow_files, &mut allow_words),
            (&self.deny_files, &mut deny_words),
        ] {
            for file in files {
                into.extend(read_file(file)?);
            }
        }
        let allow = if allow_words.is_empty() {
            None
        } else {
            Some(nets(&allow_words).await?)
        };
        Ok(Acl {
            allow,
            deny: nets(&deny_words).await?,
        })
    }
}

/// Comma-separated words, each with where it came from.
fn words(list: &[String]) -> Vec<(String, String)> {
    list.iter()
        .flat_map(|w| w.split(','))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| (w.to_string(), format!("{w:?}")))
        .collect()
}

fn read_file(path: &Path) -> CoreResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CoreError::new(
            ErrorCode::CommandInvalid,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let word = line.split('#').next().unwrap_or_default().trim();
            (!word.is_empty()).then(|| (word.to_string(), format!("{}:{}", path.display(), i + 1)))
        })
        .collect())
}

async fn nets(words: &[(String, String)]) -> CoreResult<Vec<Net>> {
    let mut out = Vec::new();
    for (word, place) in words {
        match Net::parse(word) {
            Some(Ok(net)) => out.push(net),
            Some(Err(e)) => return Err(CoreError::new(ErrorCode::AddressInvalid, format!("{place}: {e}"))),
            None => {
                // A host name: every address it has now.
                let found = tokio::net::lookup_host((word.as_str(), 0)).await.map_err(|e| {
                    CoreError::new(
                        ErrorCode::ResolveFailed,
                        format!("{place}: cannot resolve {word}: {e}"),
                    )
                })?;
                out.extend(found.map(|a| Net {
                    addr: a.ip(),
                    prefix: if a.is_ipv4() { 32 } else { 128 },
                }));
            }
        }
    }
    Ok(out)
}

impl Acl {
    /// Whether a client from `ip` may connect.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|n| n.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allow: &[&str], deny: &[&str]) -> AclSpec {
        AclSpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..AclSpec::default()
        }
    }

    #[tokio::test]
    async fn ranges_names_and_files() {
        let acl = spec(&["127.0.0.0/8,::1", "localhost"], &["127.0.0.9"])
            .resolve()
            .await
            .unwrap();
        assert!(acl.permits("127.0.0.1".parse().unwrap()));
        assert!(acl.permits("127.1.2.3".parse().unwrap()));
        assert!(
            acl.permits("::ffff:127.0.0.1".parse().unwrap()),
            "a v4 client of a dual-stack socket"
        );
        assert!(!acl.permits("127.0.0.9".parse().unwrap()), "deny wins");
        assert!(!acl.permits("10.0.0.1".parse().unwrap()));
        let open = spec(&[], &["10.0.0.0/8"]).resolve().await.unwrap();
        assert!(open.permits("192.168.1.1".parse().unwrap()) && !open.permits("10.9.9.9".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("allow.txt");
        std::fs::write(&file, "# lab\n127.0.0.2  # the board\n\n192.168.0.0/33\n").unwrap();
        let bad = AclSpec {
            allow_files: vec![file.clone()],
            ..AclSpec::default()
        }
        .resolve()
        .await
        .unwrap_err();
        assert!(
            bad.text.contains("allow.txt:4") && bad.text.contains("0-32"),
            "{}",
            bad.text
        );
        std::fs::write(&file, "# lab\n127.0.0.2  # the board\n").unwrap();
        let from_file = AclSpec {
            allow_files: vec![file],
            ..AclSpec::default()
        }
        .resolve()
        .await
        .unwrap();
        assert!(
            from_file.permits("127.0.0.2".parse().unwrap())
                && !from_file.permits("127.0.0.1".parse().unwrap())
        );
    }
}
