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
pub mod request;
pub mod resp;

pub use request::request;
pub use resp::resp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use dstash_storage::record::{self, Kind};
use dstash_storage::{ManualClock, Options, Store, SyncMode};

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
pub(crate) fn options() -> Options {
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
        "request" => request::seeds(),
        _ => Vec::new(),
    }
}
