//! Who the client is, by IP. The TCP peer is the client unless the peer is a trusted proxy; then
//! `X-Forwarded-For` is read from the right, skipping trusted hops, and the first untrusted hop
//! is the client. Hops to the left of it were written by the client and are never believed.

use std::net::IpAddr;

use ipnet::IpNet;

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
        let Ok(line) = std::str::from_utf8(line) else {
            return nearest;
        };
        for hop in line.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
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
    fn mapped_ipv6_peer_is_canonical() {
        assert_eq!(run("::ffff:10.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"));
    }
}
