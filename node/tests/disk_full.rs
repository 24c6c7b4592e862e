//! A full disk, injected through the storage I/O seam under a live node: writes fail with
//! RESOURCE_EXHAUSTED, reads go on, and once space returns writes resume with nothing
//! corrupted.

mod common;

use std::sync::Arc;

use common::*;
use dstash_node::{Node, NodeOptions};
use dstash_proto::DstashClient;
use dstash_storage::io::{Fault, FaultyIo};
use dstash_storage::{Options, Store};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let mut opts = NodeOptions::insecure(dir.path(), "127.0.0.1:0".parse().unwrap());
    // Small segments, so that space is reserved often.
    opts.store.segment_size = 1 << 20;
    opts.store.max_value_len = 64 << 10;
    opts.store.io = io.clone();
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let mut c = DstashClient::connect(format!("http://{}", node.local_addr()))
        .await
        .unwrap();
    let value = vec![7u8; 32 << 10];
    for i in 0..10 {
        c.put(put("f", format!("before-{i}").as_bytes(), &value))
            .await
            .unwrap();
    }

    io.arm(Fault::AllocateEnospc, 0);
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = c
            .put(put("f", format!("during-{i}").as_bytes(), &value))
            .await
        {
            refused = Some((i, e));
            break;
        }
    }
    let (failed_at, e) = refused.expect("the disk filled up");
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("No space left"), "{}", e.message());
    // Reads go on.
    for i in 0..10 {
        let r = c
            .lookup(lookup("f", format!("before-{i}").as_bytes()))
            .await
            .unwrap()
            .into_inner();
        assert!(r.found && r.value[..] == value[..]);
    }
    // Still full: still refused, and nothing half-written.
    let again = c.put(put("f", b"still-full", &value)).await.unwrap_err();
    assert_eq!(again.code(), Code::ResourceExhausted);

    io.disarm();
    c.put(put("f", b"after", &value)).await.unwrap();
    node.shutdown().await.unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    let stats = &store.stats()[0].kv;
    assert_eq!(stats.corrupt_records, 0);
    assert_eq!(
        store
            .get("f", format!("during-{failed_at}").as_bytes())
            .unwrap(),
        None
    );
    assert_eq!(store.get("f", b"still-full").unwrap(), None);
    assert_eq!(
        store.get("f", b"after").unwrap().as_deref(),
        Some(&value[..])
    );
    for i in 0..failed_at {
        assert!(store
            .get("f", format!("during-{i}").as_bytes())
            .unwrap()
            .is_some());
    }
}
