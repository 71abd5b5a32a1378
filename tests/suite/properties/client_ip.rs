//! The client address (`admission::client_ip::resolve`, which the proxy feeds the
//! `X-Forwarded-For` lines of each request): any header bytes are read without a panic; an
//! untrusted peer's `X-Forwarded-For` is never believed; behind trusted proxies the client is
//! the hop the nearest proxy appended, whatever the client wrote to the left of it; a hop with
//! a port (`1.2.3.4:5678`, `[2001:db8::1]:443`) is its address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flashgate::admission::client_ip::resolve;
use ipnet::IpNet;
use proptest::prelude::*;

fn proxies() -> Vec<IpNet> {
    ["10.0.0.0/8", "fd00::/8"]
        .iter()
        .map(|n| n.parse().expect("a network"))
        .collect()
}

fn trusted(ip: IpAddr) -> bool {
    proxies().iter().any(|n| n.contains(&ip.to_canonical()))
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        // IPv4-mapped IPv6, which must count as the IPv4 address.
        any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
    ]
}

fn proxy_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from((0xfd << 120) | (n >> 8)))),
    ]
}

fn client_ip() -> impl Strategy<Value = IpAddr> {
    any_ip().prop_filter("not a trusted proxy", |ip| !trusted(*ip))
}

/// How a proxy may write hop `ip`: bare, with a port, IPv6 in brackets, spaces around.
fn written(ip: IpAddr) -> impl Strategy<Value = String> {
    (any::<u16>(), 0u8..4, "[ \t]{0,2}", "[ \t]{0,2}").prop_map(move |(port, form, l, r)| {
        let text = match (ip, form) {
            (_, 0) => ip.to_string(),
            (IpAddr::V4(v4), _) => format!("{v4}:{port}"),
            (IpAddr::V6(v6), 1) => format!("[{v6}]"),
            (IpAddr::V6(v6), _) => format!("[{v6}]:{port}"),
        };
        format!("{l}{text}{r}")
    })
}

/// Whatever a client may put in its own `X-Forwarded-For`: any bytes, or plausible hops.
fn client_written() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any_ip().prop_flat_map(written), 0..4)
            .prop_map(|hops| hops.join(",").into_bytes()),
        "[0-9a-f:.\\[\\], ]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_header_bytes_resolve_without_a_panic(
        peer in prop_oneof![any_ip(), proxy_ip()],
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..4),
    ) {
        let ip = resolve(peer, lines.iter().map(Vec::as_slice), &proxies());
        if !trusted(peer) {
            prop_assert_eq!(ip, peer.to_canonical());
        }
    }

    #[test]
    fn an_untrusted_peers_header_is_never_believed(
        peer in client_ip(),
        lines in prop::collection::vec(client_written(), 0..4),
    ) {
        let ip = resolve(peer, lines.iter().map(Vec::as_slice), &proxies());
        prop_assert_eq!(ip, peer.to_canonical());
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_hop_they_appended(
        (client, hop) in client_ip().prop_flat_map(|ip| (Just(ip), written(ip))),
        chain in prop::collection::vec(proxy_ip().prop_flat_map(written), 0..3),
        said in client_written(),
        same_line in any::<bool>(),
        peer in proxy_ip(),
    ) {
        // The client wrote `said`; the first proxy appended the client's address as `hop`, on
        // the same line or a line of its own; each proxy after it appended the one before it.
        let mut appended = hop.into_bytes();
        for proxy in &chain {
            appended.push(b',');
            appended.extend_from_slice(proxy.as_bytes());
        }
        let lines = if same_line {
            let mut line = said;
            line.push(b',');
            line.extend_from_slice(&appended);
            vec![line]
        } else {
            vec![said, appended]
        };
        let ip = resolve(peer, lines.iter().map(Vec::as_slice), &proxies());
        prop_assert_eq!(ip, client.to_canonical(), "lines {:?}", lines);
    }

    #[test]
    fn a_hop_written_with_a_port_is_its_address(
        (client, hop) in client_ip().prop_flat_map(|ip| (Just(ip), written(ip))),
        peer in proxy_ip(),
    ) {
        let ip = resolve(peer, [hop.as_bytes()].into_iter(), &proxies());
        prop_assert_eq!(ip, client.to_canonical(), "{}", hop);
    }
}
