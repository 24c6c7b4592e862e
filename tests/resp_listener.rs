//! The Redis listener: on a TLS node it serves TLS with the node's certificate (a
//! client that trusts its CA talks to it, a plaintext one gets nothing); off loopback
//! a node refuses to serve it without TLS and a token; on SIGTERM it answers what it
//! read, closes its connections and the node exits cleanly.

mod support;

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::{spawn_loopback, spawn_node, start_node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, RootCertStore};

struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("node.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("node.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("token"), "s3cret").unwrap();
        Certs { dir }
    }

    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).to_str().unwrap().to_string()
    }
}

async fn over_tls(port: u16, ca: &str, send: &[u8]) -> String {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    s.write_all(send).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn resp_port(line: &str) -> u16 {
    line.split("redis protocol on ")
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no redis address in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_port_of_a_tls_node_speaks_tls_with_its_certificate() {
    let certs = Certs::new();
    let data = certs.path("data");
    let node = spawn_node(&[
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--replicas",
        "1",
        "--tls-cert",
        &certs.path("node.pem"),
        "--tls-key",
        &certs.path("node.key"),
        "--peer-ca",
        &certs.path("ca.pem"),
        "--auth-token-file",
        &certs.path("token"),
        "--resp-listen",
        "127.0.0.1:0",
    ]);
    let port = resp_port(&node.line);
    let ca = certs.path("ca.pem");
    let got = over_tls(
        port,
        &ca,
        b"GET k\r\nAUTH s3cret\r\nSET k v\r\nGET k\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        got, "-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n$1\r\nv\r\n+OK\r\n",
        "the value went through the node's TLS gRPC port and back"
    );
    // A plaintext client gets no Redis answer from the TLS port.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    plain.write_all(b"PING\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut out),
    )
    .await;
    assert!(!String::from_utf8_lossy(&out).contains("PONG"), "{out:?}");
}

#[test]
fn off_loopback_the_redis_port_needs_tls_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let err = dir.path().join("err");
    let r = start_node(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--replicas",
            "1",
            "--resp-listen",
            "0.0.0.0:0",
        ],
        std::fs::File::create(&err).unwrap(),
    );
    assert!(
        r.is_err(),
        "served the Redis port off loopback in plaintext"
    );
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(
        text.contains("without TLS") && text.contains("--insecure"),
        "{text}"
    );
}

#[test]
fn sigterm_answers_what_was_read_then_closes_the_connections() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(
        dir.path(),
        &[
            "--resp-listen",
            "127.0.0.1:0",
            "--replicas",
            "1",
            "--drain-timeout",
            "120",
        ],
    );
    let port = resp_port(&node.line);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"SET k v\r\n").unwrap();
    let mut ok = [0u8; 5];
    c.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    // The connection stays open and idle; SIGTERM closes it and the node exits 0,
    // without waiting out the 120 s drain for a client that sends nothing more.
    let asked = std::time::Instant::now();
    let status = node.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "waited {:?} for the idle client",
        asked.elapsed()
    );
    let mut rest = Vec::new();
    assert_eq!(
        c.read_to_end(&mut rest).unwrap(),
        0,
        "closed, nothing more sent"
    );
}
