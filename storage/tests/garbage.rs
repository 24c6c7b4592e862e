//! Arbitrary damage to any store file (random bytes at a random place, or a cut) never
//! panics or crashes the process: the store opens or refuses with an error, and reads
//! answer or fail with an error.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use dstash_storage::{ManualClock, Store};
use proptest::prelude::*;

/// A crash image with key/value data (some after the checkpoint) and counters.
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let s = open(dir.path(), &clock);
        for i in 0..300 {
            s.put("g", &key(i), &value(i, 0), if i % 5 == 0 { 100 } else { 0 })
                .unwrap();
            s.add("g", &key(i % 20), 1).unwrap();
            if i == 150 {
                s.checkpoint().unwrap();
            }
        }
        s.delete("g", &key(3)).unwrap();
        s.crash();
        dir
    })
    .path()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "LOCK" {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Damage {
    Overwrite { at: u64, bytes: Vec<u8> },
    Cut { at: u64 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => (any::<u64>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        1 => any::<u64>().prop_map(|at| Damage::Cut { at }),
    ]
}

fn apply(path: &Path, d: &Damage) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len().max(1);
    match d {
        // Aim at the first 64 KiB most of the time: headers and early records live there.
        Damage::Overwrite { at, bytes } => {
            let at = if at % 4 == 0 {
                at % len
            } else {
                at % len.min(65536)
            };
            f.write_all_at(bytes, at).unwrap();
        }
        Damage::Cut { at } => f.set_len(at % len).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn damaged_files_never_panic(which in any::<usize>(), dmg in damage()) {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base(), img.path());
        let all = files(img.path());
        let victim = &all[which % all.len()];
        apply(victim, &dmg);
        let clock = ManualClock::new(T0 + 10);
        let Ok(s) = Store::open(img.path(), opts(&clock)) else { return Ok(()) };
        for i in 0..300 {
            let _ = s.get("g", &key(i));
            let _ = s.count("g", &key(i % 20), 0);
        }
        if let Ok(mut keys) = s.keys("g", "key-*") {
            while let Ok(Some(_)) = keys.next_chunk() {}
        }
        if let Ok(mut keys) = s.counter_keys("g", "") {
            while let Ok(Some(_)) = keys.next_chunk() {}
        }
        let _ = s.put("g", b"after", b"damage", 0);
        let _ = s.add("g", b"after", 1);
    }
}
