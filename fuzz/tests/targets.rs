//! The fuzz targets without libFuzzer, for CI: every committed corpus input and every
//! seed, then proptest inputs, random and mutated from the seeds.
//! `DSTASH_FUZZ_CASES` sets the proptest cases per target (CI's default: 200).

use std::path::Path;

use dstash_fuzz::{seeds, TARGETS};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("DSTASH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn the_committed_corpus_and_the_seeds_pass_every_target() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "corpus/{name} is empty");
        for input in inputs.iter().chain(&seeds(name)) {
            target(input);
        }
        eprintln!("{name}: {} corpus inputs and the seeds", inputs.len());
    }
}

/// Writes the seeds into the corpus, for a new target: a tool, not a check
/// (`cargo test -p dstash-fuzz -- --ignored write_seeds`).
#[test]
#[ignore = "writes corpus files; run by hand for a new target"]
fn write_seeds() {
    for (name, _) in TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}

/// A seed of `target` with bytes overwritten, cut or extended.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(i, writes, cut, extra)| {
            let mut s = seeds[i].clone();
            for (at, b) in writes {
                if !s.is_empty() {
                    let at = at.index(s.len());
                    s[at] = b;
                }
            }
            if let Some(c) = cut {
                s.truncate(c.index(s.len() + 1));
            }
            s.extend(extra);
            s
        })
}

fn any_input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), mutated(target)]
}

macro_rules! fuzz_form {
    ($test:ident, $target:ident) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
            #[test]
            fn $test(input in any_input(stringify!($target))) {
                dstash_fuzz::$target(&input);
            }
        }
    };
}

fuzz_form!(record_decoding, record);
fuzz_form!(segment_recovery, segment_recovery);
fuzz_form!(index_pages, index_pages);
fuzz_form!(request_conversion, request);
fuzz_form!(resp_parsing, resp);
