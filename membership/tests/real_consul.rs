//! The same calls against a real Consul agent, when there is one: the address in
//! `DSTASH_TEST_CONSUL_ADDR`, or a `consul` on PATH (started here as `consul agent -dev`
//! on loopback). Otherwise the test says why it skipped and passes.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dstash_membership::{Consul, Registration};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn consul_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("consul").is_file()))
}

#[tokio::test]
async fn against_a_real_consul_agent() {
    let (url, _agent) = match std::env::var("DSTASH_TEST_CONSUL_ADDR") {
        Ok(addr) => (addr, None),
        Err(_) if consul_on_path() => {
            let (http, dns, serf_lan, serf_wan, server) = (
                free_port(),
                free_port(),
                free_port(),
                free_port(),
                free_port(),
            );
            let ports = format!(
                r#"{{"ports":{{"http":{http},"dns":{dns},"serf_lan":{serf_lan},"serf_wan":{serf_wan},"server":{server},"grpc":-1,"grpc_tls":-1}}}}"#
            );
            let child = Command::new("consul")
                .args([
                    "agent",
                    "-dev",
                    "-bind",
                    "127.0.0.1",
                    "-client",
                    "127.0.0.1",
                    "-hcl",
                ])
                .arg(ports)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting consul agent -dev");
            (format!("http://127.0.0.1:{http}"), Some(Agent(child)))
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: no Consul agent (set DSTASH_TEST_CONSUL_ADDR=http://HOST:PORT, or put `consul` on PATH)"
            );
            return;
        }
    };
    let c = Consul::new(&url).unwrap();
    let r = Registration {
        id: format!("dstash-test-{}", std::process::id()),
        name: "dstash-test".into(),
        address: "127.0.0.1".into(),
        port: 5999,
        meta: BTreeMap::from([("version".into(), "test".into())]),
        ttl: Duration::from_secs(10),
        deregister_after: Duration::from_secs(60),
    };
    // A fresh dev agent needs a moment to elect itself leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.register(&r).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for consul: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (before, index) = c
        .healthy("dstash-test", 0, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(before.iter().all(|i| i.id != r.id), "critical until passed");
    c.update_check(&r.check_id(), true, "test").await.unwrap();
    let (after, _) = c
        .healthy("dstash-test", index, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        after.iter().any(|i| i.id == r.id && i.port == 5999),
        "{after:?}"
    );
    c.deregister(&r.id).await.unwrap();
    assert!(
        c.update_check(&r.check_id(), true, "").await.is_err(),
        "the check went with it"
    );
}
