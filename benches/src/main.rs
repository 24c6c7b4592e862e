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
//! - `latency`: unary Put and Lookup against redis-benchmark ([`latency`]);
//! - `ops`: space over time under overwrites, bulk deletes, backup and restore
//!   ([`ops`]).
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
mod flags;
mod handoff;
mod hist;
mod kill;
mod latency;
mod loopback;
mod ops;
mod redis_side;
mod repair;
mod resp;
mod scaling;
mod slow;
mod soak;
mod svg;
mod table;
mod workload;

#[derive(Debug, clap::Parser)]
#[command(
    name = "dstash-benches",
    about = "dstash side by side with what users would pick instead"
)]
struct Cli {
    #[command(subcommand)]
    command: Section,
}

#[derive(Debug, clap::Subcommand)]
enum Section {
    /// Every section, written to benches/REPORT.md.
    All(all::Args),
    /// The storage engine against heed (LMDB) and candystore.
    Engine(engine::Args),
    /// One node over loopback against Redis MSET/MGET and a store-less echo server.
    Node(loopback::Args),
    /// The client's replicated bulk load and batch lookup over local nodes.
    Cluster(cluster::Args),
    /// `dstash repair` over 3 nodes with a few keys differing, against a full copy.
    Repair(repair::Args),
    /// Read latency with one of 3 nodes healthy, slow or frozen.
    SlowNode(slow::Args),
    /// A layout change under load: handoff speed, and latency against steady.
    Handoff(handoff::Args),
    /// Many concurrent streams against one node, checked answer by answer.
    Soak(soak::Args),
    /// One node in a memory cgroup far smaller than its data.
    LargerThanRam(bigger::Args),
    /// Expiring counts against Redis's ZSET sliding window.
    Counts(counts::Args),
    /// `dstash load` from a file against `redis-cli --pipe`.
    Bulk(bulk::Args),
    /// Durable puts, memory and open time as keys grow.
    Scaling(scaling::Args),
    /// Unary Put and Lookup against redis-benchmark.
    Latency(latency::Args),
    /// The Redis front end against Redis, both driven by redis-benchmark.
    Resp(resp::Args),
    /// Space over time under overwrites, bulk deletes, backup and restore.
    Ops(ops::Args),
    #[command(hide = true)]
    ServeNode(Child),
    #[command(hide = true)]
    ServeEcho,
    #[command(hide = true)]
    KillLoad(Child),
    #[command(hide = true)]
    Reopen(Child),
}

/// A child process's positional arguments, as its parent passes them.
#[derive(Debug, clap::Args)]
struct Child {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() {
    let cli = <Cli as clap::Parser>::parse();
    let result = match cli.command {
        Section::All(a) => all::run(a),
        Section::Engine(a) => engine::run(a),
        Section::Node(a) => loopback::run(a),
        Section::Cluster(a) => cluster::run(a),
        Section::Repair(a) => repair::run(a),
        Section::SlowNode(a) => slow::run(a),
        Section::Handoff(a) => handoff::run(a),
        Section::Soak(a) => soak::run(a),
        Section::LargerThanRam(a) => bigger::run(a),
        Section::Counts(a) => counts::run(a),
        Section::Bulk(a) => bulk::run(a),
        Section::Scaling(a) => scaling::run(a),
        Section::Latency(a) => latency::run(a),
        Section::Resp(a) => resp::run(a),
        Section::Ops(a) => ops::run(a),
        Section::ServeNode(c) => loopback::child_serve_node(c.args.into_iter()),
        Section::ServeEcho => loopback::child_serve_echo(),
        Section::KillLoad(c) => kill::child_load(c.args.into_iter()),
        Section::Reopen(c) => kill::child_reopen(c.args.into_iter()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
