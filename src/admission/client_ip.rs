//! Who the client is, by IP. The TCP peer is the client unless the peer is a trusted proxy; then
//! `X-Forwarded-For` is read from the right, skipping trusted hops, and the first untrusted hop
//! is the client. Hops to the left of it were written by the client and are never believed. A
//! hop may carry a port, as some proxies write it (`1.2.3.4:5678`, `[2001:db8::1]:443`).
//!
//! What per-address checks count is the client's [`subject`]: its IPv4 address, or the /64 its
//! IPv6 address lies in — one host or household holds a whole /64, and rotating addresses
//! inside it must not escape a per-IP limit or an `ip:` blocklist entry.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Bits of an IPv6 address that name its subject (the rest names a device in one network).
pub const IPV6_SUBJECT_BITS: u32 = 64;

/// The address per-address checks count: an IPv4 address itself, an IPv6 address's /64.
pub fn subject(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << (128 - IPV6_SUBJECT_BITS));
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: an address, with or without a port (`[…]` around IPv6).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(with_port) = hop.parse::<SocketAddr>() {
        return Some(with_port.ip());
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client address of a request from `peer` carrying the `X-Forwarded-For` header lines
/// `xff` (in the order they arrived).
pub fn resolve<'a, I>(peer: IpAddr, xff: I, proxies: &[IpNet]) -> IpAddr
where
    I: DoubleEndedIterator<Item = &'a [u8]>,
{
    let peer = peer.to_canonical();
    if !trusted(peer, proxies) {
        return peer;
    }
    let mut nearest = peer;
    for line in xff.rev() {
        // Split the bytes, not the text: a proxy appends its hop to the line the client
        // started, and what the client wrote there (bytes that are not UTF-8 included) must
        // not hide the hops written after it.
        for hop in line.rsplit(|b| *b == b',') {
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
                // Unparseable: whatever stands left of it is the client's word. The nearest
                // hop a trusted proxy vouched for is the best we know.
                return nearest;
            };
            let ip = ip.to_canonical();
            if !trusted(ip, proxies) {
                return ip;
            }
            nearest = ip;
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(peer: &str, lines: &[&str]) -> IpAddr {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        resolve(ip(peer), lines.iter().map(|l| l.as_bytes()), &proxies)
    }

    #[test]
    fn untrusted_peer_is_never_overridden() {
        assert_eq!(run("203.0.113.9", &["1.2.3.4"]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        assert_eq!(
            run("10.0.0.1", &["6.6.6.6, 1.2.3.4, 10.0.0.7"]),
            ip("1.2.3.4")
        );
        assert_eq!(run("10.0.0.1", &["6.6.6.6", "1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(run("10.0.0.1", &[]), ip("10.0.0.1"));
        assert_eq!(run("10.0.0.1", &["10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(run("10.0.0.1", &["nonsense, 10.0.0.9"]), ip("10.0.0.9"));
    }

    #[test]
    fn what_the_client_wrote_never_hides_the_hops_after_it() {
        // Found by the property tests (tests/properties): a line that was not UTF-8 as a whole
        // was skipped, so a client that sent `X-Forwarded-For: \xff` through a proxy that
        // appends to the line was taken for the proxy itself (its own address unseen by the
        // blocklist and the per-IP limit).
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        for line in [
            &b"\xff, 1.2.3.4"[..],
            b"\x80,1.2.3.4",
            b"6.6.6.\xff,1.2.3.4,10.0.0.2",
        ] {
            assert_eq!(
                resolve(ip("10.0.0.1"), [line].into_iter(), &proxies),
                ip("1.2.3.4"),
                "{line:?}"
            );
        }
        // A hop that is not UTF-8 is unreadable like any other: the nearest vouched-for hop.
        let line = &b"1.2.3.4, \xff, 10.0.0.2"[..];
        assert_eq!(
            resolve(ip("10.0.0.1"), [line].into_iter(), &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn hops_written_with_a_port_are_addresses() {
        assert_eq!(run("10.0.0.1", &["1.2.3.4:5678"]), ip("1.2.3.4"));
        assert_eq!(run("10.0.0.1", &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(run("10.0.0.1", &["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(
            run("10.0.0.1", &["6.6.6.6, 1.2.3.4:80, 10.0.0.7:3128"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            run("10.0.0.1", &["1.2.3.4:http"]),
            ip("10.0.0.1"),
            "no guess"
        );
    }

    #[test]
    fn an_ipv6_subject_is_its_64() {
        assert_eq!(
            subject(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            subject(ip("2001:db8:1:2::1")),
            subject(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            subject(ip("2001:db8:1:2::1")),
            subject(ip("2001:db8:1:3::1"))
        );
        assert_eq!(subject(ip("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(subject(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn mapped_ipv6_peer_is_canonical() {
        assert_eq!(run("::ffff:10.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"));
    }
}
