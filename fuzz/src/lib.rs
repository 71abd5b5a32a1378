//! The fuzzed parsers, one entry point: the first byte of an input picks the parser, the rest
//! is its input. A panic is a finding; answers are not checked here (the property tests in
//! `tests/suite/properties/` check them). `parsers` runs it under AFL++, `replay` over files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use flashgate::admission::{client_ip, login};
use flashgate::config::{Config, Environment};
use flashgate::edge::routes::classify;

/// No variable is set: `${VAR}` in a fuzzed file resolves to nothing.
struct NoEnv;

impl Environment for NoEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Feed `data` to the parser its first byte picks.
pub fn run(data: &[u8]) {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            // The login token, from an Authorization header and Cookie headers.
            let mut parts = input.splitn(3, |&b| b == b'\n');
            let authorization = parts.next();
            let cookies: Vec<&[u8]> = parts.collect();
            let _ = login::token_from(authorization, cookies);
        }
        1 => {
            // Routing of any method and path.
            let (method, path) = input.split_at(input.len().min(1));
            let method = match method.first().map(|b| b % 4) {
                Some(0) => http::Method::GET,
                Some(1) => http::Method::POST,
                Some(2) => http::Method::HEAD,
                _ => http::Method::PUT,
            };
            if let Ok(path) = std::str::from_utf8(path) {
                let _ = classify(&method, path);
            }
        }
        2 => {
            // X-Forwarded-For lines from a trusted peer.
            let proxies: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().expect("a network")];
            let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            let _ =
                client_ip::resolve(IpAddr::V4(Ipv4Addr::LOCALHOST), lines.into_iter(), &proxies);
        }
        3 => {
            // A UID in its header form.
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = flashgate::ground::uid::from_header(text);
            }
        }
        _ => {
            // A configuration file.
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = Config::parse(Path::new("fuzz.yaml"), text, &NoEnv);
            }
        }
    }
}
