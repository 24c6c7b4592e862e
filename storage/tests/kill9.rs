//! Real `kill -9`: a child process (this test binary, re-executed) writes batches and
//! prints each acknowledgement; the parent kills it at a random moment, reopens the
//! store, and checks that every acknowledged write and count is there, with no value
//! the child never wrote. Rounds: `DSTASH_KILL9_ROUNDS` (default 5).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

mod common;

use dstash_storage::{Options, Store};

const CHILD_DIR: &str = "DSTASH_KILL9_CHILD_DIR";
const CHILD_ROUND: &str = "DSTASH_KILL9_CHILD_ROUND";
const BATCH: u64 = 200;

fn opts() -> Options {
    Options {
        segment_size: 4 << 20,
        max_value_len: 64 << 10,
        checkpoint_bytes: 512 << 10,
        ..Options::default()
    }
}

fn key(round: u64, batch: u64, i: u64) -> Vec<u8> {
    format!("r{round}-b{batch}-{i}").into_bytes()
}

fn value(round: u64, batch: u64, i: u64) -> Vec<u8> {
    let mut v = format!("value-{round}-{batch}-{i}-").into_bytes();
    v.resize(64 + ((batch * 7 + i) % 300) as usize, b'#');
    v
}

#[test]
#[ignore = "the child half of acknowledged_writes_survive_kill_9; runs only when spawned by it"]
fn kill9_child() {
    let dir = std::env::var(CHILD_DIR).expect("spawned by the parent test");
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let store = Store::open(&dir, opts()).unwrap();
    for batch in 0.. {
        let keys: Vec<Vec<u8>> = (0..BATCH).map(|i| key(round, batch, i)).collect();
        let vals: Vec<Vec<u8>> = (0..BATCH).map(|i| value(round, batch, i)).collect();
        store
            .put_many("crash", &common::entries(&keys, &vals))
            .unwrap();
        store
            .add("crash", format!("adds-{round}").as_bytes(), 1)
            .unwrap();
        // Overwrite and delete earlier keys too, so replay has more than inserts to redo.
        if batch > 0 {
            store
                .put("crash", &key(round, batch - 1, 0), b"overwritten", 0)
                .unwrap();
            store.delete("crash", &key(round, batch - 1, 1)).unwrap();
        }
        println!("ACK {batch}");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let rounds = common::kill9_rounds();
    let dir = tempfile::tempdir().unwrap();
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let mut acked_per_round = Vec::new();
    let mut round_started = Vec::new();
    for round in 0..rounds {
        round_started.push(Instant::now());
        let envs = [
            (CHILD_DIR, dir.path().display().to_string()),
            (CHILD_ROUND, round.to_string()),
        ];
        let mut child = common::spawn_child("kill9_child", &envs);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").and_then(|n| n.parse::<u64>().ok()))
                .last()
        });
        std::thread::sleep(Duration::from_millis(
            150 + common::pseudo_random(seed + round) % 600,
        ));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last_acked = reader.join().unwrap();
        acked_per_round.push(last_acked);

        let started = Instant::now();
        let store = Store::open(dir.path(), opts()).unwrap();
        let reopen = started.elapsed();
        for (r, last) in acked_per_round.iter().enumerate() {
            let r = r as u64;
            let Some(last) = *last else { continue };
            for batch in 0..=last {
                for i in 0..BATCH {
                    let got = store.get("crash", &key(r, batch, i)).unwrap();
                    let original = Some(value(r, batch, i));
                    // Batch `last + 1` (never acknowledged) may have overwritten key 0 and
                    // deleted key 1 of batch `last` before the kill: either state is right.
                    let allowed: Vec<Option<Vec<u8>>> = match (i, batch < last) {
                        (0, true) => vec![Some(b"overwritten".to_vec())],
                        (1, true) => vec![None],
                        (0, false) => vec![original, Some(b"overwritten".to_vec())],
                        (1, false) => vec![original, None],
                        _ => vec![original],
                    };
                    assert!(
                        allowed.contains(&got),
                        "round {r} batch {batch} key {i}: {got:?}"
                    );
                }
            }
            // A batch past the last ack may or may not be there, but never with a wrong value.
            for i in 0..BATCH {
                if let Some(v) = store.get("crash", &key(r, last + 1, i)).unwrap() {
                    assert!(
                        v == value(r, last + 1, i) || v == b"overwritten",
                        "round {r}: a value never written"
                    );
                }
            }
            // Counts live for the 60 s retention on the real clock: check the rounds
            // that are still well inside it.
            if round_started[r as usize].elapsed() < Duration::from_secs(50) {
                let adds = store
                    .count("crash", format!("adds-{r}").as_bytes(), 0)
                    .unwrap();
                assert!(
                    adds > last && adds <= last + 2,
                    "round {r}: {adds} adds counted, {} acknowledged",
                    last + 1
                );
            }
        }
        let st = &store.stats()[0].kv;
        eprintln!(
            "round {round}: acked batches {:?}, reopened in {reopen:?}, replayed {} records, {} keys",
            last_acked.map(|l| l + 1),
            st.replayed_records,
            st.keys
        );
        assert_eq!(st.corrupt_records, 0);
        store.close().unwrap();
    }
    assert!(
        acked_per_round.iter().any(Option::is_some),
        "the child never acknowledged a write"
    );
}
