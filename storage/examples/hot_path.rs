//! The put and get hot paths alone, for profilers: `cargo run -p dstash-storage
//! --release --example hot_path -- [puts|gets] N`.

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
    let t = Instant::now();
    let mut found = 0;
    for i in 0..n {
        let k = format!("key-{:012}", (i * 7_919) % n);
        found += store.get("p", k.as_bytes()).unwrap().is_some() as u64;
    }
    assert_eq!(found, n);
    eprintln!("gets: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
}
