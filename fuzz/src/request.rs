//! The `request` target: the first byte picks a request type, the rest is decoded as
//! that message and sent through the node's handler for it.

use std::cell::RefCell;
use std::sync::Arc;

use dstash_node::service::NodeService;
use dstash_proto::v1::*;
use dstash_proto::{Bytes, Dstash};
use dstash_storage::Store;
use prost::Message;
use tonic::{Code, Request};

use super::options;

/// The fuzzed node's id (the service's default).
const NODE_ID: &str = "dstash";

/// A node service over a fresh store (and hint store), replaced every so often so that fuzzed
/// namespaces do not pile up.
struct Served {
    rt: tokio::runtime::Runtime,
    service: NodeService,
    store: Arc<Store>,
    uses: u32,
    _dir: tempfile::TempDir,
}

fn served() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path(), options()).expect("open"));
    let slot = dstash_node::slot::StoreSlot::open(store.clone());
    let metrics = Arc::new(dstash_node::metrics::Metrics::new(slot.clone()));
    let hints = Arc::new(dstash_node::hints::Hints::new(metrics.hints.clone()));
    let hint_store = Store::open(dir.path().join("hints"), options()).expect("open hints");
    hints.slot.fill(Arc::new(hint_store));
    let service =
        dstash_node::service::NodeService::new(slot, metrics, Default::default()).with_hints(hints);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    Served {
        rt,
        service,
        store,
        uses: 0,
        _dir: dir,
    }
}

/// Bad input is refused with INVALID_ARGUMENT; nothing else may go wrong.
fn refused(what: &str, code: Code, message: &str) {
    assert_eq!(
        code,
        Code::InvalidArgument,
        "{what} answered {code:?}: {message}"
    );
}

fn checked<T>(what: &str, r: Result<T, tonic::Status>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(s) => {
            refused(what, s.code(), s.message());
            None
        }
    }
}

fn batch<T>(what: &str, r: dstash_storage::Result<T>) -> Option<T> {
    checked(what, r.map_err(dstash_node::status::status))
}

/// Request conversion: the first byte picks a request type, the rest is decoded as
/// that protobuf message and sent through the node's handler for it (unary calls) or
/// its per-batch conversion (stream messages).
pub fn request(data: &[u8]) {
    thread_local! {
        static SERVED: RefCell<Option<Served>> = const { RefCell::new(None) };
    }
    let Some((&kind, msg)) = data.split_first() else {
        return;
    };
    SERVED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|s| s.uses >= 256) {
            *cell = Some(served());
        }
        let served = cell.as_mut().expect("served");
        served.uses += 1;
        let (svc, store) = (&served.service, &served.store);
        served.rt.block_on(one_request(svc, store, kind % 10, msg));
    });
}

async fn one_request(svc: &NodeService, store: &Store, kind: u8, msg: &[u8]) {
    match kind {
        0 => {
            let Ok(r) = PutRequest::decode(msg) else {
                return;
            };
            // A stale put (an older version than the one held) changes nothing; a put
            // held as a hint for another node is not served here.
            let hinted = !r.hint_for.is_empty() && r.hint_for != NODE_ID;
            let put = checked("Put", svc.put(Request::new(r.clone())).await);
            if put.is_some_and(|p| !p.into_inner().stale) && !hinted {
                let l = svc
                    .lookup(Request::new(LookupRequest {
                        namespace: r.namespace,
                        key: r.key,
                    }))
                    .await
                    .expect("a lookup of a key just written")
                    .into_inner();
                assert!(l.found && l.value == r.value, "Put then Lookup differ");
            }
        }
        1 => {
            let Ok(r) = LookupRequest::decode(msg) else {
                return;
            };
            checked("Lookup", svc.lookup(Request::new(r)).await);
        }
        2 => {
            let Ok(r) = DeleteRequest::decode(msg) else {
                return;
            };
            let (ns, key) = (r.namespace.clone(), r.key.clone());
            if checked("Delete", svc.delete(Request::new(r)).await).is_some() {
                let l = svc
                    .lookup(Request::new(LookupRequest { namespace: ns, key }))
                    .await
                    .expect("a lookup of a key just deleted")
                    .into_inner();
                assert!(!l.found, "a deleted key is still found");
            }
        }
        3 => {
            let Ok(r) = AddRequest::decode(msg) else {
                return;
            };
            let n = r.n;
            if let Some(c) = checked("Add", svc.add(Request::new(r)).await) {
                assert!(
                    c.into_inner().count >= u64::from(n),
                    "Add counted less than n"
                );
            }
        }
        4 => {
            let Ok(r) = CountRequest::decode(msg) else {
                return;
            };
            checked("Count", svc.count(Request::new(r)).await);
        }
        5 => {
            let Ok(r) = KeysRequest::decode(msg) else {
                return;
            };
            if let Some(stream) = checked("Keys", svc.keys(Request::new(r)).await) {
                use tokio_stream::StreamExt;
                let mut stream = stream.into_inner();
                while let Some(chunk) = stream.next().await {
                    if checked("Keys chunk", chunk).is_none() {
                        break;
                    }
                }
            }
        }
        6 => put_batch(store, msg),
        7 => {
            let Ok(b) = LookupBatch::decode(msg) else {
                return;
            };
            let n = b.keys.len();
            if let Some(r) = batch("LookupBatch", dstash_node::batch::lookup(store, b)) {
                assert_eq!(r.results.len(), n, "one answer per key");
            }
        }
        8 => {
            let Ok(b) = AddBatch::decode(msg) else { return };
            let n = b.keys.len();
            if let Some(r) = batch("AddBatch", dstash_node::batch::add(store, b)) {
                assert_eq!(r.counts.len(), n, "one count per key");
                assert!(r.counts.iter().all(|&c| c >= 1), "an added key counts 0");
            }
        }
        _ => {
            let Ok(b) = CountBatch::decode(msg) else {
                return;
            };
            let n = b.keys.len();
            if let Some(r) = batch("CountBatch", dstash_node::batch::count(store, b)) {
                assert_eq!(r.counts.len(), n, "one count per key");
            }
        }
    }
}

/// A batch that writes reads back as written: the last value given for each key.
fn put_batch(store: &Store, msg: &[u8]) {
    let Ok(b) = PutBatch::decode(msg) else { return };
    let (ns, entries) = (b.namespace.clone(), b.entries.clone());
    let Some(ack) = batch("PutBatch", dstash_node::batch::put(store, b)) else {
        return;
    };
    assert_eq!(ack.written as usize, entries.len());
    let mut last: std::collections::HashMap<&Bytes, &Bytes> = Default::default();
    for e in &entries {
        last.insert(&e.key, &e.value);
    }
    for (k, v) in last {
        let got = store.get(&ns, k).expect("a lookup of a key just written");
        assert_eq!(got.as_deref(), Some(&v[..]), "PutBatch then lookup differ");
    }
}

/// One valid message of every request type.
pub fn seeds() -> Vec<Vec<u8>> {
    let msg = |kind: u8, m: &dyn Fn(&mut Vec<u8>)| {
        let mut b = vec![kind];
        m(&mut b);
        b
    };
    let key = Bytes::from_static(b"key");
    vec![
        msg(0, &|b| {
            PutRequest {
                namespace: "n".into(),
                key: key.clone(),
                value: Bytes::from_static(b"value"),
                ttl_seconds: 5,
                version: Some(dstash_proto::v1::Version {
                    ts: 1 << 40,
                    writer: 3,
                }),
                hint_for: String::new(),
            }
            .encode(b)
            .unwrap()
        }),
        msg(2, &|b| {
            DeleteRequest {
                namespace: "n".into(),
                key: key.clone(),
                version: None,
                hint_for: "other".into(),
            }
            .encode(b)
            .unwrap()
        }),
        msg(3, &|b| {
            AddRequest {
                namespace: "n".into(),
                key: key.clone(),
                n: 2,
                at_seconds: 0,
                request_id: "seed-1".into(),
            }
            .encode(b)
            .unwrap()
        }),
        msg(4, &|b| {
            CountRequest {
                namespace: "n".into(),
                key: key.clone(),
                window_seconds: 30,
            }
            .encode(b)
            .unwrap()
        }),
        msg(5, &|b| {
            KeysRequest {
                namespace: "n".into(),
                pattern: "k*".into(),
                limit: 10,
                counters: false,
            }
            .encode(b)
            .unwrap()
        }),
        msg(6, &|b| {
            PutBatch {
                namespace: "n".into(),
                entries: vec![
                    Entry {
                        key: key.clone(),
                        value: Bytes::from_static(b"a"),
                        ttl_seconds: 0,
                        ..Default::default()
                    },
                    Entry {
                        key: key.clone(),
                        value: Bytes::from_static(b"b"),
                        ttl_seconds: 0,
                        ..Default::default()
                    },
                ],
                batch_id: 1,
            }
            .encode(b)
            .unwrap()
        }),
        msg(7, &|b| {
            LookupBatch {
                namespace: "n".into(),
                keys: vec![key.clone(), Bytes::new()],
                batch_id: 2,
                flat: false,
            }
            .encode(b)
            .unwrap()
        }),
        msg(8, &|b| {
            AddBatch {
                namespace: "n".into(),
                keys: vec![key.clone(), key.clone()],
                batch_id: 3,
                // Far from any clock: refused, naming the limit.
                at_seconds: 1,
                request_id: String::new(),
            }
            .encode(b)
            .unwrap()
        }),
        msg(9, &|b| {
            CountBatch {
                namespace: "../etc".into(),
                keys: vec![key.clone()],
                window_seconds: 0,
                batch_id: 4,
            }
            .encode(b)
            .unwrap()
        }),
    ]
}
