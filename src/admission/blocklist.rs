//! The blocklist: users and addresses that may not buy. One entry a line — `uid:123`,
//! `ip:203.0.113.7`, `cidr:198.51.100.0/24` — with blank lines and `#` comments allowed. A bad
//! line is a config error naming the blocklist file, its line and column. An `ip:` entry
//! blocks the address's subject (`client_ip::subject`): an IPv6 address blocks its /64, so a
//! client rotating addresses inside it stays blocked; `cidr:` entries are taken as written.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::client_ip::subject;
use crate::config::{ConfigError, Position};

/// The parsed blocklist.
#[derive(Debug, Default)]
pub struct Blocklist {
    uids: HashSet<Box<str>>,
    ips: HashSet<IpAddr>,
    nets: Vec<IpNet>,
}

impl Blocklist {
    /// Read and parse a blocklist file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse blocklist text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut list = Blocklist::default();
        for (n, raw) in text.lines().enumerate() {
            let body = raw.split('#').next().unwrap_or("");
            let entry = body.trim();
            if entry.is_empty() {
                continue;
            }
            let at = Position::first_non_blank(n + 1, body);
            let bad = |msg: String| ConfigError::at(path, at, msg);
            let (kind, value) = entry.split_once(':').ok_or_else(|| {
                bad(format!(
                    "expected uid:ID, ip:ADDRESS or cidr:NETWORK, found {entry:?}"
                ))
            })?;
            let value = value.trim();
            match kind.trim() {
                "uid" if !value.is_empty() => {
                    list.uids.insert(value.into());
                }
                "ip" => {
                    let ip: IpAddr = value
                        .parse()
                        .map_err(|_| bad(format!("expected an IP address, found {value:?}")))?;
                    list.ips.insert(subject(ip));
                }
                "cidr" => {
                    let net: IpNet = value.parse().map_err(|_| {
                        bad(format!(
                            "expected a network such as 198.51.100.0/24, found {value:?}"
                        ))
                    })?;
                    list.nets.push(net.trunc());
                }
                other => {
                    return Err(bad(format!(
                        "unknown entry kind {other:?}: expected uid, ip or cidr"
                    )))
                }
            }
        }
        Ok(list)
    }

    /// Whether this user may not buy.
    pub fn blocks_uid(&self, uid: &str) -> bool {
        self.uids.contains(uid)
    }

    /// Whether this address may not buy.
    pub fn blocks_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ips.contains(&subject(ip)) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Entries by kind: (uids, ips, networks).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.uids.len(), self.ips.len(), self.nets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_kinds_and_matches() {
        let text = "# bad actors\nuid:13\nip:203.0.113.7\n\ncidr:198.51.100.0/24  # a farm\n";
        let b = Blocklist::parse(Path::new("b.txt"), text).unwrap();
        assert!(b.blocks_uid("13"));
        assert!(!b.blocks_uid("14"));
        assert!(b.blocks_ip("203.0.113.7".parse().unwrap()));
        assert!(b.blocks_ip("198.51.100.200".parse().unwrap()));
        assert!(!b.blocks_ip("198.51.101.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv6_entry_blocks_its_64_and_a_cidr_only_itself() {
        let text = "ip:2001:db8:9:9::1\ncidr:2001:db8:7::5/128\n";
        let b = Blocklist::parse(Path::new("b.txt"), text).unwrap();
        assert!(b.blocks_ip("2001:db8:9:9::1".parse().unwrap()));
        assert!(b.blocks_ip("2001:db8:9:9:ffff::77".parse().unwrap()));
        assert!(!b.blocks_ip("2001:db8:9:a::1".parse().unwrap()));
        assert!(b.blocks_ip("2001:db8:7::5".parse().unwrap()));
        assert!(!b.blocks_ip("2001:db8:7::6".parse().unwrap()));
    }

    #[test]
    fn bad_line_names_file_line_and_column() {
        let err = Blocklist::parse(Path::new("b.txt"), "uid:1\n  ip:999.1.1.1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.txt:2:3: expected an IP address, found \"999.1.1.1\""
        );
        // Found by the property tests (tests/properties): the column counted bytes, so a line
        // starting with an ideographic space pointed past its end.
        let err = Blocklist::parse(Path::new("b.txt"), "\u{3000}0").unwrap_err();
        assert_eq!(err.position(), Some(Position { line: 1, column: 2 }));
    }
}
