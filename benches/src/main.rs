//! dstash side by side with what users would pick instead, each printed as a Markdown
//! table with ratios; `all` runs every one and writes `benches/REPORT.md` ([`all`]):
//!
//! - `engine`: the storage engine against heed (LMDB) and candystore, pogreb-bench's shape;
//! - `node`: one node over loopback against Redis MSET/MGET and a store-less tonic echo
//!   server ([`loopback`]);
//! - `cluster`: the client's replicated bulk load and batch lookup over local nodes
//!   ([`cluster`]);
//! - `soak`: many concurrent streams of every kind against one node, checked answer by
//!   answer, with memory over time and latency quantiles ([`soak`]);
//! - `larger-than-ram`: one node in a memory cgroup far smaller than its data, loaded
//!   and read at random ([`bigger`]);
//! - `bulk`: `dstash load` from a file into real nodes against `redis-cli --pipe`
//!   ([`bulk`]);
//! - `scaling`: the engine's puts, gets, memory and open time as keys grow, with plots
//!   ([`scaling`]);
//! - `counts`: expiring counts against Redis's ZSET sliding window ([`counts`]);
//! - `latency`: unary Put and Lookup against redis-benchmark ([`latency`]).
//!
//! ```text
//! cargo run -p dstash-benches --release -- all [--runs R] [--quick]
//! cargo run -p dstash-benches --release -- engine [--keys A,B] [--runs R]
//! cargo run -p dstash-benches --release -- node [--keys N] [--runs R] [--batch B]
//! cargo run -p dstash-benches --release -- cluster [--keys N] [--lookups N] [--runs R]
//! cargo run -p dstash-benches --release -- soak [--streams N] [--seconds S]
//! cargo run -p dstash-benches --release -- larger-than-ram [--data-mib M] [--limit-mib M]
//! ```

mod all;
mod bigger;
mod bulk;
mod cluster;
mod counts;
mod echo;
mod engine;
mod engines;
mod hist;
mod kill;
mod latency;
mod loopback;
mod redis_side;
mod scaling;
mod soak;
mod svg;
mod table;
mod workload;

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let result = match cmd.as_str() {
        "all" => all::parse(args).and_then(all::run),
        "engine" => engine::parse(args).and_then(engine::run),
        "node" => loopback::parse(args).and_then(loopback::run),
        "cluster" => cluster::parse(args).and_then(cluster::run),
        "soak" => soak::parse(args).and_then(soak::run),
        "larger-than-ram" => bigger::parse(args).and_then(bigger::run),
        "counts" => counts::parse(args).and_then(counts::run),
        "bulk" => bulk::parse(args).and_then(bulk::run),
        "scaling" => scaling::parse(args).and_then(scaling::run),
        "latency" => latency::parse(args).and_then(latency::run),
        "serve-node" => loopback::child_serve_node(args),
        "serve-echo" => loopback::child_serve_echo(),
        "kill-load" => kill::child_load(args),
        "reopen" => kill::child_reopen(args),
        _ => Err(
            "usage: dstash-benches all [--runs R] [--quick] [--out FILE]\n       dstash-benches engine [--keys A,B] [--runs R] [--plots DIR] [--candy-max N] [--only-dstash]\n       dstash-benches node [--keys N] [--runs R] [--batch B] [--no-redis] [--node ADDR]\n       dstash-benches cluster [--keys N] [--lookups N] [--runs R]\n       dstash-benches soak [--streams N] [--seconds S] [--batch B] [--keys N] [--connections C]\n       dstash-benches larger-than-ram [--data-mib M] [--limit-mib M] [--lookups N] [--parallel P]\n       dstash-benches bulk [--keys N] [--runs R] [--no-redis]\n       dstash-benches scaling [--keys A,B,C] [--runs R] [--plots DIR]\n       dstash-benches counts [--events N] [--keys K1,K2] [--runs R] [--no-redis]\n       dstash-benches latency [--requests N] [--clients C1,C2] [--runs R] [--no-redis]"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
