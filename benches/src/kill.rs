//! Load a store in a child, `kill -9` it, and reopen the store in a fresh child: what a
//! crash costs at a given key count.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use dstash_storage::{Store, SyncMode};

use crate::engines::{dstash_opts, gets, puts};
use crate::workload::Shuffle;

/// What one key count costs: a load in batches of 1,000, then `kill -9`, then a reopen.
pub struct ScalePoint {
    /// Puts/s of the load.
    pub puts: f64,
    /// RssAnon of the loader once loaded, in bytes.
    pub rss_loaded: f64,
    pub open_ms: f64,
    /// RssAnon right after the reopen, in bytes.
    pub rss_open: f64,
    /// Random gets/s right after the reopen.
    pub gets: f64,
}

/// Loads `n` keys in a child under `sync`, kills it, and reopens the store in another.
pub fn load_kill_reopen(n: u64, sync: SyncMode) -> ScalePoint {
    let exe = std::env::current_exe().expect("exe");
    let tmp = tempfile::tempdir_in(".").expect("tempdir");
    let dir = tmp.path().join("kill");
    let mode = if matches!(sync, SyncMode::Always) {
        "always"
    } else {
        "never"
    };
    let mut child = Command::new(&exe)
        .args(["kill-load", dir.to_str().unwrap(), &n.to_string(), mode])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loader");
    let out = child.stdout.take().unwrap();
    let loaded = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("LOADED"))
        .expect("loader failed");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let out = Command::new(&exe)
        .args(["reopen", dir.to_str().unwrap(), &n.to_string()])
        .output()
        .expect("spawn reopen");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + " " + &loaded;
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("reopen printed no {name}: {text}"))
    };
    ScalePoint {
        puts: field("puts_per_s="),
        rss_loaded: field("loaded_rss_anon="),
        open_ms: field("open_ms="),
        rss_open: field("rss_anon="),
        gets: field("gets_per_s="),
    }
}

/// A child's arguments: the data directory and the key count.
fn dir_and_count(args: &mut impl Iterator<Item = String>) -> Result<(String, u64), String> {
    let dir = args.next().ok_or("missing data directory")?;
    let n = args.next().ok_or("missing key count")?;
    Ok((dir, n.parse().map_err(|e| format!("key count {n:?}: {e}"))?))
}

/// Child: `kill-load DIR N [always|never]` loads N keys in batches of 1,000, prints
/// `LOADED puts_per_s=.. loaded_rss_anon=..`, and waits to be killed.
pub fn child_load(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (dir, n) = dir_and_count(&mut args)?;
    let sync = match args.next().as_deref() {
        Some("always") => SyncMode::Always,
        None | Some("never") => SyncMode::Never,
        Some(other) => return Err(format!("kill-load: sync {other:?}")),
    };
    let s = Store::open(&dir, dstash_opts(sync)).map_err(|e| e.to_string())?;
    let rate = puts(&s, 0, &Shuffle::identity(n), 1000, true);
    println!(
        "LOADED puts_per_s={rate:.0} loaded_rss_anon={}",
        crate::workload::rss_anon()
    );
    // Wait to be killed: nothing is closed cleanly.
    loop {
        std::thread::park();
    }
}

pub fn child_reopen(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (dir, n) = dir_and_count(&mut args)?;
    let t = Instant::now();
    let s =
        Store::open(Path::new(&dir), dstash_opts(SyncMode::Never)).map_err(|e| e.to_string())?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss = crate::workload::rss_anon();
    let keys = s.stats().iter().map(|n| n.kv.keys).sum::<u64>();
    if keys != n {
        return Err(format!("reopened with {keys} keys, loaded {n}"));
    }
    let gets = gets(&s, n, n.min(200_000));
    println!("open_ms={open_ms:.1} rss_anon={rss} gets_per_s={gets:.0}");
    Ok(())
}
