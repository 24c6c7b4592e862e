//! The client commands: put, get, del, add, count, keys, load, lookup, status.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dstash_client::Bytes;
use dstash_client::{Client, PutItem};

use crate::conn_args::ConnArgs;
use crate::input::{self, Format};

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    value: String,
    /// Seconds to live [default: forever].
    #[arg(long)]
    ttl: Option<u32>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    /// Events to add.
    #[arg(short, default_value_t = 1)]
    n: u32,
}

#[derive(Debug, Args)]
pub struct CountArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    /// Count the last S seconds [default: the namespace's retention].
    #[arg(long, value_name = "S", default_value_t = 0)]
    window: u32,
    /// Ask every replica and print the highest count.
    #[arg(long)]
    max: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// Anchored glob: `*`, `?`, `\` escapes [default: every key].
    #[arg(default_value = "")]
    pattern: String,
    /// List expiring-count keys instead of stored keys.
    #[arg(long)]
    counters: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnError {
    /// Report the line and go on.
    Skip,
    /// Report the line and stop (what was sent before it stays written).
    Fail,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// The file, or - for stdin.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "tsv")]
    format: Format,
    /// What a malformed line does.
    #[arg(long, value_enum, default_value = "skip")]
    on_error: OnError,
    /// Seconds to live for lines that give none [default: forever].
    #[arg(long)]
    ttl: Option<u32>,
    /// Keys per client batch (each is split by node and streamed).
    #[arg(long, default_value_t = 50_000)]
    chunk: usize,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// One key per line; - for stdin.
    file: PathBuf,
    #[arg(long, default_value_t = 50_000)]
    chunk: usize,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
}

fn open(file: &PathBuf) -> Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), len))
}

pub async fn put(a: PutArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    c.put(
        &a.ns,
        a.key.as_bytes(),
        a.value.as_bytes(),
        a.ttl.unwrap_or(0),
    )
    .await?;
    Ok(())
}

/// Prints the value; a missing key is exit code 1 with a message on stderr.
pub async fn get(a: KeyArgs) -> Result<bool> {
    let c = a.conn.connect().await?;
    match c.get(&a.ns, a.key.as_bytes()).await? {
        Some(v) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&v)?;
            out.write_all(b"\n")?;
            Ok(true)
        }
        None => {
            eprintln!("dstash: {}/{}: not found", a.ns, a.key);
            Ok(false)
        }
    }
}

pub async fn del(a: KeyArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    if !c.delete(&a.ns, a.key.as_bytes()).await? {
        eprintln!("dstash: {}/{}: was not there", a.ns, a.key);
    }
    Ok(())
}

pub async fn add(a: AddArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    println!("{}", c.add(&a.ns, a.key.as_bytes(), a.n.max(1)).await?);
    Ok(())
}

pub async fn count(a: CountArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    println!(
        "{}",
        c.count(&a.ns, a.key.as_bytes(), a.window, a.max).await?
    );
    Ok(())
}

pub async fn keys(a: KeysArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    let keys = c.keys(&a.ns, &a.pattern, a.counters).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for k in keys {
        out.write_all(&k)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

pub async fn status(a: StatusArgs) -> Result<bool> {
    let c = a.conn.connect().await?;
    let mut all_up = true;
    for n in c.status().await {
        match n.status {
            Ok(s) => println!(
                "{}\t{}\tserving\tkeys={}\tdisk={}",
                n.id, n.addr, s.keys, s.disk_bytes
            ),
            Err(e) => {
                all_up = false;
                println!(
                    "{}\t{}\tdown ({:?}: {})",
                    n.id,
                    n.addr,
                    e.code(),
                    e.message()
                );
            }
        }
    }
    Ok(all_up)
}

/// What a load did.
pub struct Loaded {
    pub written: u64,
    pub failed: u64,
    pub malformed: u64,
    pub secs: f64,
}

/// Where a load reads from, and how.
pub struct Source {
    pub lines: Box<dyn BufRead + Send>,
    /// Bytes, when known: the progress bar's total.
    pub size: Option<u64>,
    pub format: Format,
    pub on_error: OnError,
    /// For lines that give none; 0 is forever.
    pub ttl: u32,
    /// Keys per client batch.
    pub chunk: usize,
}

/// Streams the source to the cluster, `chunk` keys per client batch with two batches in
/// flight, so the file is never held in memory.
pub async fn load_from(c: &Client, ns: &str, src: Source) -> Result<Loaded> {
    let Source {
        lines: source,
        size,
        format,
        on_error,
        ttl,
        chunk,
    } = src;
    let started = Instant::now();
    let bar = progress(size);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<PutItem>>>(2);
    let reader_bar = bar.clone();
    let reader = tokio::task::spawn_blocking(move || -> u64 {
        let mut malformed = 0;
        let mut items = Vec::with_capacity(chunk);
        let mut source = source;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            match source.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => reader_bar.inc(n as u64),
                Err(e) => {
                    let _ =
                        tx.blocking_send(Err(anyhow::anyhow!("reading line {}: {e}", number + 1)));
                    return malformed;
                }
            }
            number += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            match input::parse(format, text) {
                Ok(Some(r)) => items.push(PutItem {
                    key: Bytes::from(r.key),
                    value: Bytes::from(r.value),
                    ttl_seconds: r.ttl.unwrap_or(ttl),
                }),
                Ok(None) => {}
                Err(why) => {
                    malformed += 1;
                    reader_bar.suspend(|| eprintln!("dstash: line {number}: {why}"));
                    if let OnError::Fail = on_error {
                        let _ = tx.blocking_send(Err(anyhow::anyhow!(
                            "line {number} is malformed (--on-error fail); lines before it were sent"
                        )));
                        return malformed;
                    }
                }
            }
            if items.len() >= chunk {
                if tx.blocking_send(Ok(std::mem::take(&mut items))).is_err() {
                    return malformed;
                }
                items.reserve(chunk);
            }
        }
        if !items.is_empty() {
            let _ = tx.blocking_send(Ok(items));
        }
        malformed
    });

    let mut written = 0u64;
    let mut failed = 0u64;
    let mut shown = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut fatal = None;
    while let Some(next) = rx.recv().await {
        let items = match next {
            Ok(items) => items,
            Err(e) => {
                fatal = Some(e);
                break;
            }
        };
        let (c, ns) = (c.clone(), ns.to_string());
        in_flight.spawn(async move {
            let r = c.put_many(&ns, &items).await;
            (items, r)
        });
        // Two client batches in flight: one streaming while the next is read.
        while in_flight.len() >= 2 {
            let (items, r) = in_flight
                .join_next()
                .await
                .expect("a task")
                .expect("no panic");
            tally(&items, r?, &mut written, &mut failed, &mut shown, &bar);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        let (items, r) = done.expect("no panic");
        tally(&items, r?, &mut written, &mut failed, &mut shown, &bar);
    }
    let malformed = reader.await.unwrap_or(0);
    bar.finish_and_clear();
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(Loaded {
        written,
        failed,
        malformed,
        secs: started.elapsed().as_secs_f64(),
    })
}

fn tally(
    items: &[PutItem],
    report: dstash_client::LoadReport,
    written: &mut u64,
    failed: &mut u64,
    shown: &mut usize,
    bar: &indicatif::ProgressBar,
) {
    *written += report.written;
    *failed += report.failed.len() as u64;
    for (p, e) in report.failed.iter().take(10usize.saturating_sub(*shown)) {
        bar.suspend(|| {
            eprintln!(
                "dstash: key {:?} not written: {e}",
                String::from_utf8_lossy(&items[*p].key)
            )
        });
        *shown += 1;
    }
}

fn progress(size: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match size {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub async fn load(a: LoadArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    let (lines, size) = open(&a.file)?;
    let src = Source {
        lines,
        size,
        format: a.format,
        on_error: a.on_error,
        ttl: a.ttl.unwrap_or(0),
        chunk: a.chunk.max(1),
    };
    let l = load_from(&c, &a.ns, src).await?;
    println!(
        "loaded {} keys in {:.2} s ({:.0} keys/s); {} failed; {} malformed lines skipped",
        l.written,
        l.secs,
        l.written as f64 / l.secs.max(1e-9),
        l.failed,
        l.malformed
    );
    if l.failed > 0 {
        bail!("{} keys missed their write quorum", l.failed);
    }
    Ok(())
}

/// Prints `key<TAB>value` for every key found, in input order; counts the missing.
pub async fn lookup(a: LookupArgs) -> Result<()> {
    let c = a.conn.connect().await?;
    let (mut source, _) = open(&a.file)?;
    let (mut total, mut missing) = (0u64, 0u64);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let mut keys = Vec::with_capacity(a.chunk.max(1));
        let mut line = Vec::new();
        while keys.len() < a.chunk.max(1) {
            line.clear();
            if source.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let k = line.strip_suffix(b"\n").unwrap_or(&line);
            let k = k.strip_suffix(b"\r").unwrap_or(k);
            if !k.is_empty() {
                keys.push(Bytes::copy_from_slice(k));
            }
        }
        if keys.is_empty() {
            break;
        }
        let values = c.get_many(&a.ns, &keys).await?;
        for (k, v) in keys.iter().zip(values) {
            total += 1;
            match v {
                Some(v) => {
                    out.write_all(k)?;
                    out.write_all(b"\t")?;
                    out.write_all(&v)?;
                    out.write_all(b"\n")?;
                }
                None => missing += 1,
            }
        }
    }
    out.flush()?;
    if missing > 0 {
        eprintln!("dstash: {missing} of {total} keys not found");
    }
    Ok(())
}
