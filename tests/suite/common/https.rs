//! HTTPS clients for the tests of the TLS listener, each a real program: certificates made by
//! `openssl req`, requests by `curl` (HTTP/2 or HTTP/1.1; status, protocol, headers, body),
//! storms by `h2load` (its report parsed) and the certificate a handshake presents by
//! `openssl s_client`. Blocking programs run off the async threads (`spawn_blocking`), each
//! bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::{token, Edge};

/// Make a self-signed certificate for `cn` (EC P-256, valid 30 days, for localhost and
/// 127.0.0.1): `(dir/name.pem, dir/name.key)`.
pub fn make_cert(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) makes the test certificates");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The DER of the first certificate in PEM `text`.
pub fn first_der(text: &[u8]) -> Vec<u8> {
    CertificateDer::pem_slice_iter(text)
        .next()
        .expect("a certificate")
        .expect("valid PEM")
        .to_vec()
}

/// One answer as curl saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `%{http_version}`: "2" or "1.1".
    pub version: String,
    /// The response headers, lowercased names.
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn outcome(&self) -> String {
        serde_json::from_str::<Value>(&self.body).unwrap_or_default()["outcome"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Run curl with `args` (insecure: the test's certificate is self-signed), at most 10 s.
pub async fn curl(args: Vec<String>) -> Answer {
    tokio::task::spawn_blocking(move || {
        let headers = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", "-D"])
            .arg(headers.path())
            .args(["-w", "\n%{http_code} %{http_version}"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = stdout.rsplit_once('\n').expect("curl's -w line");
        let (status, version) = tail.split_once(' ').expect("status and version");
        Answer {
            status: status.parse().expect("a status"),
            version: version.to_string(),
            headers: std::fs::read_to_string(headers.path()).unwrap(),
            body: body.to_string(),
        }
    })
    .await
    .unwrap()
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// GET `url` over HTTP/2 (`--http2`: curl offers h2 by ALPN and falls back to HTTP/1.1).
pub async fn get_h2(url: &str, extra: &[&str]) -> Answer {
    let mut a = args(&["--http2"]);
    a.extend(args(extra));
    a.push(url.to_string());
    curl(a).await
}

/// POST a buy to `url` as `uid` with curl flag `http` (`--http2` or `--http1.1`).
pub async fn buy(http: &str, url: &str, uid: &str, extra: &[&str]) -> Answer {
    let mut a = args(&[
        http,
        "-X",
        "POST",
        "-H",
        &format!("authorization: Bearer {}", token(uid)),
    ]);
    a.extend(args(extra));
    a.push(url.to_string());
    curl(a).await
}

/// The buy path of `product` from its button script, fetched over HTTP/2.
pub async fn buy_url(edge: &Edge, product: u64) -> String {
    let script = get_h2(&format!("{}/sale/{product}/button.js", edge.base), &[]).await;
    assert_eq!((script.status, script.version.as_str()), (200, "2"));
    let state: Value =
        serde_json::from_str(flashgate::edge::button::state_of(&script.body).unwrap()).unwrap();
    format!("{}{}", edge.base, state["buy_path"].as_str().unwrap())
}

/// What one `h2load` run reported.
#[derive(Debug, Default, Clone, Copy)]
pub struct H2load {
    pub done: u64,
    pub errored: u64,
    pub timeout: u64,
    /// 2xx, 3xx, 4xx, 5xx.
    pub status: [u64; 4],
    pub h2: bool,
}

pub fn parse_h2load(out: &str) -> H2load {
    let mut found = H2load::default();
    let numbers = |line: &str| -> Vec<u64> {
        line.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("requests:") {
            // N total, N started, N done, N succeeded, N failed, N errored, N timeout
            let n = numbers(rest);
            assert_eq!(n.len(), 7, "{line}");
            (found.done, found.errored, found.timeout) = (n[2], n[5], n[6]);
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            // N 2xx, N 3xx, N 4xx, N 5xx
            let n: Vec<u64> = numbers(rest).into_iter().step_by(2).collect();
            assert_eq!(n.len(), 4, "{line}");
            found.status.copy_from_slice(&n);
        } else if line.trim() == "Application protocol: h2" {
            found.h2 = true;
        }
    }
    found
}

/// The certificate the listener on `port` presents to a new handshake (its DER), and the
/// protocol it chose by ALPN among h2 and http/1.1.
pub async fn served(port: u16) -> (Vec<u8>, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-servername", "localhost", "-alpn", "h2,http/1.1"])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let alpn = text
            .lines()
            .find_map(|l| l.strip_prefix("ALPN protocol: "))
            .unwrap_or("none")
            .to_string();
        (first_der(text.as_bytes()), alpn)
    })
    .await
    .unwrap()
}

pub fn der_of(cert: &Path) -> Vec<u8> {
    first_der(&std::fs::read(cert).unwrap())
}
