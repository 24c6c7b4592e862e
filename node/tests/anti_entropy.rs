//! Anti-entropy between two in-process nodes over loopback gRPC: `Repair` makes them
//! agree, the digests say so, the token reaches peers, and bad requests are refused.

mod common;

use common::*;
use dstash_node::{Node, NodeOptions, SyncOptions, TokenAuth};
use dstash_proto::v1::*;
use dstash_proto::DstashClient;
use futures_util::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

struct Running {
    client: DstashClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
    node: Node,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(r)
    }
}

/// A node that accepts `token` (if any) and presents `peer_token` to its peers.
async fn start(id: &str, token: Option<&str>, peer_token: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions::insecure(dir.path(), "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = id.into();
    if let Some(t) = token {
        opts.auth = TokenAuth::new(t).unwrap();
    }
    opts.sync = SyncOptions {
        token: peer_token.map(str::to_string),
        interval: std::time::Duration::ZERO,
        ..SyncOptions::default()
    };
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", node.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = DstashClient::with_interceptor(channel, Bearer(token.map(str::to_string)));
    Running {
        client,
        node,
        _dir: dir,
    }
}

fn members(nodes: &[(&str, &Running)]) -> Vec<Member> {
    nodes
        .iter()
        .map(|(id, r)| Member {
            id: id.to_string(),
            address: r.node.local_addr().to_string(),
        })
        .collect()
}

async fn repair(r: &mut Running, req: RepairRequest) -> RepairProgress {
    let mut s = r.client.repair(req).await.unwrap().into_inner();
    let mut last = None;
    while let Some(p) = s.next().await {
        last = Some(p.unwrap());
    }
    let last = last.unwrap();
    assert!(last.done);
    last
}

async fn all_digests(r: &mut Running) -> Vec<u64> {
    let d = r
        .client
        .digest(DigestRequest {
            namespace: "kv".into(),
            partitions: (0..1024).collect(),
            leaves: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.ready);
    d.digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_makes_two_nodes_agree_and_moves_only_differences() {
    let mut a = start("a", None, None).await;
    let mut b = start("b", None, None).await;
    for i in 0..300u32 {
        let k = format!("k{i}");
        let target = if i % 3 == 0 { &mut a } else { &mut b };
        target
            .client
            .put(put("kv", k.as_bytes(), b"v"))
            .await
            .unwrap();
        if i % 3 == 1 {
            a.client.put(put("kv", k.as_bytes(), b"v")).await.unwrap();
        }
    }
    // 100 keys only on a, 100 on both (different versions), 100 only on b.
    assert_ne!(all_digests(&mut a).await, all_digests(&mut b).await);
    let m = members(&[("a", &a), ("b", &b)]);
    let req = RepairRequest {
        members: m.clone(),
        replicas: 2,
        higher_peers_only: false,
    };
    let p = repair(&mut a, req.clone()).await;
    assert_eq!((p.failed, p.error.as_str()), (0, ""));
    assert_eq!(p.partitions_total, 1024);
    assert_eq!(p.pushed + p.pulled, 300, "{p:?}");
    assert_eq!(all_digests(&mut a).await, all_digests(&mut b).await);
    let again = repair(&mut b, req).await;
    assert_eq!(
        (again.partitions_differing, again.pushed + again.pulled),
        (0, 0)
    );
    for i in [0u32, 1, 2, 299] {
        let got = b
            .client
            .lookup(lookup("kv", format!("k{i}").as_bytes()))
            .await;
        assert!(got.unwrap().into_inner().found, "k{i} on b");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_called_with_the_cluster_token() {
    let mut a = start("a", Some("s3cret"), Some("s3cret")).await;
    let b = start("b", Some("s3cret"), Some("s3cret")).await;
    let mut wrong = start("w", Some("s3cret"), Some("nope")).await;
    a.client.put(put("kv", b"k", b"v")).await.unwrap();
    let req = |nodes: &[(&str, &Running)]| RepairRequest {
        members: members(nodes),
        replicas: 2,
        higher_peers_only: false,
    };
    let both = req(&[("a", &a), ("b", &b)]);
    let ok = repair(&mut a, both).await;
    assert_eq!((ok.failed, ok.pushed), (0, 1), "{ok:?}");
    let to_b = req(&[("w", &wrong), ("b", &b)]);
    let refused = repair(&mut wrong, to_b).await;
    assert!(refused.failed > 0, "{refused:?}");
    assert!(refused.error.contains("token"), "{}", refused.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_anti_entropy_requests_are_refused_with_a_reason() {
    let mut a = start("a", None, None).await;
    let e = a
        .client
        .digest(DigestRequest {
            namespace: "kv".into(),
            partitions: vec![1024],
            leaves: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("partition 1024"), "{}", e.message());
    let e = a
        .client
        .digest(DigestRequest {
            namespace: "../etc".into(),
            partitions: vec![0],
            leaves: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = a.client.repair(RepairRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let other = RepairRequest {
        members: vec![Member {
            id: "x".into(),
            address: "127.0.0.1:1".into(),
        }],
        ..Default::default()
    };
    let p = repair(&mut a, other).await;
    assert!(p.error.contains("not among the members"), "{}", p.error);
}
