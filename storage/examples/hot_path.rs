//! The put and get hot paths alone, for profilers: `cargo run -p dstash-storage
//! --release --example hot_path -- [puts|gets|deletes|batches|opens] N`.

use std::time::Instant;

use dstash_storage::{Options, Store, SyncMode};

fn main() {
    let mut args = std::env::args().skip(1);
    let phase = args.next().unwrap_or_else(|| "both".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(".").unwrap();
    if phase == "batches" {
        batches(dir.path(), n);
        return;
    }
    let store = Store::open(
        dir.path(),
        Options {
            sync: SyncMode::Never,
            ..Options::default()
        },
    )
    .unwrap();
    let value = vec![7u8; 300];
    let t = Instant::now();
    for i in 0..n {
        store
            .put("p", format!("key-{i:012}").as_bytes(), &value, 0)
            .unwrap();
    }
    eprintln!("puts: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
    if phase == "puts" {
        return;
    }
    if phase == "opens" {
        opens(store, dir.path());
        return;
    }
    if phase == "deletes" {
        let t = Instant::now();
        for i in 0..n / 10 {
            let k = format!("key-{:012}", (i * 7_919) % n);
            store.delete("p", k.as_bytes()).unwrap();
        }
        eprintln!(
            "deletes: {:.0}/s",
            (n / 10) as f64 / t.elapsed().as_secs_f64()
        );
        return;
    }
    let t = Instant::now();
    let mut found = 0;
    for i in 0..n {
        let k = format!("key-{:012}", (i * 7_919) % n);
        found += store.get("p", k.as_bytes()).unwrap().is_some() as u64;
    }
    assert_eq!(found, n);
    eprintln!("gets: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
}

/// A clean open after a close, then an open after a crash (no replay: checkpointed).
fn opens(store: Store, dir: &std::path::Path) {
    store.close().unwrap();
    let t = Instant::now();
    let store = Store::open(dir, Options::default()).unwrap();
    eprintln!("clean open: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    store.checkpoint().unwrap();
    store.crash();
    let t = Instant::now();
    let store = Store::open(dir, Options::default()).unwrap();
    eprintln!(
        "open after a crash: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    store.close().unwrap();
}

/// Durable batches of 1,000 new keys in random order.
fn batches(dir: &std::path::Path, n: u64) {
    let store = Store::open(dir, Options::default()).unwrap();
    let value = vec![7u8; 100];
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("key-{:012}", i.wrapping_mul(0x9E37_79B9) % (n * 16)).into_bytes())
        .collect();
    let t = Instant::now();
    for chunk in keys.chunks(1000) {
        let entries: Vec<dstash_storage::PutEntry> = chunk
            .iter()
            .map(|k| dstash_storage::PutEntry {
                key: k,
                value: &value,
                ttl_secs: 0,
                version: None,
            })
            .collect();
        store.put_many("p", &entries).unwrap();
    }
    eprintln!(
        "durable batched puts: {:.0}/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
}
