//! dstash's fuzz targets, one function each, shared by two harnesses:
//!
//! - `cargo fuzz run <target> --features libfuzzer` (`fuzz_targets/`, libFuzzer,
//!   coverage-guided, as long as you like);
//! - `cargo test -p dstash-fuzz`, which replays the committed corpus (`corpus/<target>/`)
//!   and proptest inputs through the same functions, in CI.
//!
//! Each target panics only when dstash does something wrong: a panic inside dstash, a
//! decoded record that does not re-encode to its bytes, a recovered store that lost or
//! changed data written before the damage, or a request answered with a status other
//! than the documented ones, a decoded layout that does not round-trip, or a Redis
//! command that does not parse back to itself.

pub mod layout;
pub mod resp;

pub use resp::resp;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use dstash_node::service::NodeService;
use dstash_proto::v1::*;
use dstash_proto::{Bytes, Dstash};
use dstash_storage::record::{self, Kind};
use dstash_storage::{ManualClock, Options, Store, SyncMode};
use prost::Message;
use tonic::{Code, Request};

/// One fuzz target: panics only when dstash misbehaves on `data`.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and `cargo fuzz` binary.
pub const TARGETS: [(&str, Target); 6] = [
    ("record", record),
    ("segment_recovery", segment_recovery),
    ("index_pages", index_pages),
    ("request", request),
    ("layout", layout::layout),
    ("resp", resp),
];

/// The one time every store here runs at.
const NOW: u64 = 1_800_000_000;
const NS: &str = "f";
const SEEDED: usize = 200;

fn seeded_key(i: usize) -> Vec<u8> {
    format!("seed-{i:04}").into_bytes()
}

fn seeded_value(i: usize) -> Vec<u8> {
    format!("value-{i:04}-{}", "v".repeat(i % 40)).into_bytes()
}

/// Small files (a copy per input stays cheap), no background thread, a fixed clock.
fn options() -> Options {
    Options {
        sync: SyncMode::Never,
        max_value_len: 64 << 10,
        segment_size: 1 << 20,
        background: false,
        clock: Arc::new(ManualClock::new(NOW)),
        ..Options::default()
    }
}

/// Record decoding: anything decodes to an error or to a record that re-encodes to
/// exactly the bytes it came from.
pub fn record(data: &[u8]) {
    let _ = record::peek_header(data);
    if let Ok((h, key, value)) = record::decode(data) {
        assert!(h.total_len() <= data.len());
        let mut again = Vec::new();
        record::encode(&mut again, h.kind, h.version, h.expires_at, key, value);
        assert_eq!(
            again,
            &data[..h.total_len()],
            "a decoded record re-encodes differently"
        );
        assert!(h.kind != Kind::Delete || value.is_empty());
    }
}

/// A store image: `SEEDED` keys written, then a checkpoint, then `finish` (a crash or a
/// clean close).
fn image(finish: fn(Store)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(dir.path(), options()).expect("open");
    for i in 0..SEEDED {
        s.put(NS, &seeded_key(i), &seeded_value(i), 0).expect("put");
    }
    s.add(NS, b"counted", 3).expect("add");
    s.checkpoint().expect("checkpoint");
    finish(s);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

fn kv_file(dir: &Path, prefix: &str) -> PathBuf {
    let kv = dir.join("ns").join(NS).join("kv");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&kv)
        .expect("kv dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    names.sort();
    names.pop().expect("a file of that kind")
}

/// Where the log's valid records end in a segment file.
fn log_end(seg: &[u8]) -> usize {
    let mut at = dstash_storage::segment::DATA_START as usize;
    while let Ok((h, _, _)) = record::decode(&seg[at.min(seg.len())..]) {
        at += h.total_len();
    }
    at
}

/// Opens a damaged copy and checks what must hold whatever the damage: no panic, and
/// if it opens, no seeded key reads a value it was never given, the seeded keys that
/// `intact` names read their values, and the store takes a write and reads it back.
/// Keys for which `touched` holds are not checked: the damage itself may hold a valid
/// record that rewrites or deletes them.
fn open_damaged(dir: &Path, intact: impl Fn(usize) -> bool, touched: impl Fn(usize) -> bool) {
    let Ok(s) = Store::open(dir, options()) else {
        return; // Refused with a typed error: allowed.
    };
    let keys: Vec<Vec<u8>> = (0..SEEDED).map(seeded_key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    // A record whose checksum fails is refused key by key.
    for (i, k) in refs.iter().enumerate() {
        if touched(i) {
            continue;
        }
        match s.get(NS, k) {
            Ok(Some(v)) => assert_eq!(v, seeded_value(i), "key {i} reads a wrong value"),
            Ok(None) => assert!(!intact(i), "key {i} was lost"),
            Err(_) => assert!(!intact(i), "key {i} is unreadable"),
        }
    }
    if let Ok(mut listing) = s.keys(NS, "*") {
        while let Ok(Some(_chunk)) = listing.next_chunk() {}
    }
    let _ = s.count(NS, b"counted", 0);
    if s.put(NS, b"after", b"damage", 0).is_ok() {
        assert_eq!(
            s.get(NS, b"after").ok().flatten().as_deref(),
            Some(&b"damage"[..])
        );
    }
    s.crash();
}

/// Segment recovery: arbitrary bytes where the log's next records would be, after a
/// crash. Recovery must keep every record before them.
pub fn segment_recovery(data: &[u8]) {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let base = BASE.get_or_init(|| image(Store::crash));
    let work = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), work.path());
    let seg = kv_file(work.path(), "seg-");
    let mut bytes = std::fs::read(&seg).expect("read segment");
    let end = log_end(&bytes);
    if bytes.len() < end + data.len() {
        bytes.resize(end + data.len(), 0);
    }
    bytes[end..end + data.len()].copy_from_slice(data);
    std::fs::write(&seg, &bytes).expect("write segment");
    let keys: Vec<Vec<u8>> = (0..SEEDED).map(seeded_key).collect();
    let names = |i: usize| data.windows(keys[i].len()).any(|w| w == keys[i]);
    open_damaged(work.path(), |_| true, names);
}

/// Index pages: arbitrary bytes over the slots (or, when the first byte is odd, over the
/// header page) of a cleanly closed store's index. A changed slot fails its page's
/// checksum and a changed header its crc, so open rebuilds the index from the log and
/// no key may be lost.
pub fn index_pages(data: &[u8]) {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let base = BASE.get_or_init(|| image(|s| s.close().expect("close")));
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), work.path());
    let idx = kv_file(work.path(), "index-");
    let mut bytes = std::fs::read(&idx).expect("read index");
    let at = if mode & 1 == 1 {
        usize::from(mode >> 1) * 8 % 128
    } else {
        dstash_storage::index::PAGE as usize + usize::from(mode >> 1) * 16
    };
    let n = rest.len().min(bytes.len().saturating_sub(at));
    bytes[at..at + n].copy_from_slice(&rest[..n]);
    std::fs::write(&idx, &bytes).expect("write index");
    open_damaged(work.path(), |_| true, |_| false);
}

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

/// Inputs that reach past each target's first checks: valid records, a valid tail of
/// records, index bytes, and one valid message of every request type. The committed
/// corpus starts from these.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let rec = |kind, ts: u64, key: &[u8], value: &[u8]| {
        let mut b = Vec::new();
        record::encode(
            &mut b,
            kind,
            dstash_storage::Version::new(ts, 1),
            0,
            key,
            value,
        );
        b
    };
    match target {
        "record" => vec![
            rec(Kind::Put, 1, b"k", b"v"),
            rec(Kind::Delete, 2, b"key", b""),
            rec(Kind::Put, 3, &[0xff; 300], &[7; 1000]),
        ],
        "segment_recovery" => {
            let mut tail = rec(Kind::Put, 1_000, b"new", b"value");
            tail.extend(rec(Kind::Delete, 1_001, &seeded_key(3), b""));
            let mut torn = tail.clone();
            torn.extend(&rec(Kind::Put, 1_002, b"torn", b"tail")[..20]);
            vec![tail, torn, vec![0; 64]]
        }
        "index_pages" => vec![vec![0, 0xff, 0xff], vec![1; 40], vec![2; 64]],
        "layout" => layout::seeds(),
        "resp" => resp::seeds(),
        "request" => {
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
        _ => Vec::new(),
    }
}
