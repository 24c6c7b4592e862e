//! Opening a keyspace, as named steps: take the inventory of its files, open the
//! segments, load the checkpointed index (or start a full reindex), build the tables,
//! pick the active segment, replay the log after the checkpoint, and mark the open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{CheckpointState, Keyspace, KeyspaceMetrics, Tables, Writer};
use crate::checkpoint::{Checkpoint, SegmentStats};
use crate::commit::{GroupCommit, Turnstile};
use crate::error::{Error, IoContext, Result};
use crate::hash::random_seed;
use crate::index::{self, Index, Loc, MIN_BITS};
use crate::options::Options;
use crate::segment::{self, Segment, WritePath, DATA_START};

/// Keep appending to the last segment only while it has this much room.
const MIN_ACTIVE_ROOM: u64 = 1 << 20;

/// The files of a keyspace directory, by kind.
struct Inventory {
    segments: BTreeMap<u32, PathBuf>,
    index_gens: BTreeMap<u64, PathBuf>,
}

/// The index to start from and where replay begins.
struct Start {
    index: Index,
    position: Loc,
    ckpt: Checkpoint,
    /// No usable checkpoint: the index is new and replay reads the whole log.
    reindex: bool,
    next_gen: u64,
    /// The loaded index's slot counts, walked at open; zero for a new one.
    counts: Counts,
}

/// What the checks of the loaded index found, for the counts and the metrics.
#[derive(Default)]
struct Counts {
    live: u64,
    tombstones: u64,
    deleted: u64,
    resealed: u64,
    damaged: u64,
}

pub(super) fn open(dir: &Path, ns: &str, opts: Arc<Options>) -> Result<Keyspace> {
    std::fs::create_dir_all(dir).at(dir)?;
    let inv = inventory(dir)?;
    let last_id = inv.segments.keys().next_back().copied();
    let segments = open_segments(&inv, &opts)?;
    let start = load_index(dir, ns, &inv, &segments, &opts)?;
    let mut tables = build_tables(
        start.index,
        segments,
        &start.ckpt,
        start.position,
        start.next_gen,
    );
    let active = active_segment(dir, &mut tables, &opts)?;
    let ckpt = start.ckpt;
    let ks = Keyspace::assemble(dir, ns, opts, tables, active);
    ks.restore_counts(&start.counts);
    ks.max_ts.store(ckpt.max_ts, Ordering::Relaxed);
    ks.replay(start.position, last_id)?;
    let replayed = ks.metrics.replayed_records.load(Ordering::Relaxed);
    if ckpt.clean && !start.reindex && replayed == 0 {
        ks.restore_digest(start.position.0);
    }
    ks.mark_open(&ckpt, start.position, start.reindex)?;
    Ok(ks)
}

fn inventory(dir: &Path) -> Result<Inventory> {
    let mut inv = Inventory {
        segments: BTreeMap::new(),
        index_gens: BTreeMap::new(),
    };
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(id) = segment::parse_name(&name) {
            inv.segments.insert(id, path);
        } else if let Some(gen) = index::parse_name_pub(&name) {
            inv.index_gens.insert(gen, path);
        } else if name.ends_with(".tmp") {
            // A checkpoint that never finished.
            crate::fsutil::remove_file(&path)?;
        }
    }
    Ok(inv)
}

/// Opens every segment; a last segment whose creation a crash cut short is removed.
fn open_segments(inv: &Inventory, opts: &Options) -> Result<BTreeMap<u32, Arc<Segment>>> {
    let mut segments = BTreeMap::new();
    let last_id = inv.segments.keys().next_back().copied();
    for (&id, path) in &inv.segments {
        let write = WritePath::for_sync(opts.sync);
        match Segment::open(path, opts.segment_size, opts.io.clone(), write) {
            Ok(s) if s.id == id => {
                segments.insert(id, Arc::new(s));
            }
            Ok(s) => {
                return Err(Error::BadFile {
                    path: path.clone(),
                    reason: format!("header names segment {}, file name says {id}", s.id),
                })
            }
            // A segment whose creation a crash cut short holds nothing yet.
            Err(e)
                if Some(id) == last_id && std::fs::metadata(path).at(path)?.len() < DATA_START =>
            {
                tracing::warn!(path = %path.display(), "removing a segment whose creation was cut short: {e}");
                crate::fsutil::remove_file(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(segments)
}

/// The index the checkpoint names, or a new one for a full reindex when either is
/// missing or damaged. Index generations other than the one chosen are removed.
fn load_index(
    dir: &Path,
    ns: &str,
    inv: &Inventory,
    segments: &BTreeMap<u32, Arc<Segment>>,
    opts: &Options,
) -> Result<Start> {
    let ckpt = Checkpoint::read(dir).unwrap_or_else(|e| {
        tracing::error!(ns, "{e}; rebuilding the index from the log");
        None
    });
    let next_gen = inv.index_gens.keys().next_back().map_or(1, |g| g + 1);
    let mut counts = Counts::default();
    let loaded = ckpt.as_ref().and_then(|c| {
        let path = inv.index_gens.get(&c.index_gen)?;
        let index = Index::open(path, opts.io.clone())
            .inspect_err(|e| tracing::error!(ns, "{e}; rebuilding the index from the log"))
            .ok()?;
        checked(ns, index, c, segments, &mut counts)
    });
    let start = match (loaded, ckpt) {
        (Some(index), Some(c)) => Start {
            index,
            position: Loc(c.position),
            ckpt: c,
            reindex: false,
            next_gen,
            counts,
        },
        (_, c) => {
            if !segments.is_empty() {
                tracing::warn!(
                    ns,
                    segments = segments.len(),
                    "no usable checkpoint: full reindex"
                );
            }
            let bits = c.as_ref().map_or(MIN_BITS, |c| bits_for(c.live));
            let first = segments.keys().next().copied().unwrap_or(1);
            Start {
                index: Index::create(dir, next_gen, bits, random_seed(), opts.io.clone())?,
                position: Loc::new(first, DATA_START),
                ckpt: Checkpoint::default(),
                reindex: true,
                next_gen,
                counts: Counts {
                    damaged: counts.damaged,
                    ..Counts::default()
                },
            }
        }
    };
    for (g, path) in &inv.index_gens {
        if *g != start.index.gen {
            crate::fsutil::remove_file(path)?;
        }
    }
    Ok(start)
}

/// The index if its page checksums hold (or a crash explains them), with its counts.
fn checked(
    ns: &str,
    index: Index,
    ckpt: &Checkpoint,
    segments: &BTreeMap<u32, Arc<Segment>>,
    counts: &mut Counts,
) -> Option<Index> {
    match super::index_check::check(&index, ckpt, segments) {
        super::index_check::Verdict::Sound {
            live,
            tombstones,
            deleted,
            resealed,
        } => {
            if resealed > 0 {
                tracing::warn!(
                    ns,
                    pages = resealed,
                    "index pages a crash left unsealed: every slot checked out, resealed"
                );
            }
            *counts = Counts {
                live,
                tombstones,
                deleted,
                resealed,
                damaged: 0,
            };
            Some(index)
        }
        super::index_check::Verdict::Damaged { pages } => {
            tracing::error!(ns, path = %index.path().display(), ?pages, "index pages fail their checksum; rebuilding the index from the log");
            counts.damaged = pages.len() as u64;
            None
        }
    }
}

/// The tables as the checkpoint left them; segments it does not know start with no
/// garbage counted.
fn build_tables(
    index: Index,
    segments: BTreeMap<u32, Arc<Segment>>,
    ckpt: &Checkpoint,
    start: Loc,
    next_gen: u64,
) -> Tables {
    let mut stats: BTreeMap<u32, SegmentStats> = segments
        .keys()
        .map(|&id| (id, SegmentStats::default()))
        .collect();
    for (id, s) in &ckpt.segments {
        if let Some(slot) = stats.get_mut(id) {
            *slot = *s;
        }
    }
    let gen = index.gen;
    Tables {
        index: Arc::new(index),
        segments,
        stats,
        applied_end: start.0,
        next_index_gen: next_gen.max(gen + 1),
        digest: super::digest::Digest::rebuilding(),
    }
}

/// The last segment while it has room, else a new one after it.
fn active_segment(dir: &Path, tables: &mut Tables, opts: &Options) -> Result<Arc<Segment>> {
    if let Some(s) = tables.segments.values().next_back() {
        if s.remaining() >= MIN_ACTIVE_ROOM {
            return Ok(s.clone());
        }
    }
    let id = tables.segments.keys().next_back().map_or(1, |id| id + 1);
    let write = WritePath::for_sync(opts.sync);
    let s = Arc::new(Segment::create(
        dir,
        id,
        opts.segment_size,
        opts.io.clone(),
        write,
    )?);
    tables.segments.insert(id, s.clone());
    tables.stats.insert(id, SegmentStats::default());
    Ok(s)
}

/// Slot bits for about `live` keys at half load.
fn bits_for(live: u64) -> u32 {
    let mut bits = MIN_BITS;
    while (1u64 << bits) < live.saturating_mul(2) {
        bits += 1;
    }
    bits
}

impl Keyspace {
    fn assemble(
        dir: &Path,
        ns: &str,
        opts: Arc<Options>,
        tables: Tables,
        active: Arc<Segment>,
    ) -> Keyspace {
        Keyspace {
            ns: ns.to_string(),
            seed: tables.index.seed,
            dir: dir.to_path_buf(),
            opts,
            tables: RwLock::new(tables),
            writer: Mutex::new(Writer {
                active,
                next_ticket: 1,
                buf: Vec::with_capacity(1 << 16),
                poisoned: None,
            }),
            group: GroupCommit::default(),
            turnstile: Turnstile::new(1),
            ckpt: Mutex::new(CheckpointState::default()),
            replay_unsaved: AtomicBool::new(false),
            in_flight: Default::default(),
            roll_at: Default::default(),
            max_ts: Default::default(),
            metrics: KeyspaceMetrics::default(),
        }
    }

    /// The index's slot counts as open walked them (the checkpoint's may be stale
    /// after a crash); replay's own accounting keeps them exact from there.
    fn restore_counts(&self, c: &Counts) {
        self.tables
            .read()
            .index
            .set_counts(c.live, c.tombstones, c.deleted);
        let m = &self.metrics;
        m.index_pages_resealed.store(c.resealed, Ordering::Relaxed);
        m.index_pages_damaged.store(c.damaged, Ordering::Relaxed);
    }

    /// Records on disk and in memory that the keyspace is open.
    fn mark_open(&self, ckpt: &Checkpoint, start: Loc, reindex: bool) -> Result<()> {
        if reindex {
            // The new index generation must be named by a checkpoint before anything else.
            return self.checkpoint(false);
        }
        if ckpt.clean {
            // From here on a crash must recount: clear the flag before the first write.
            Checkpoint {
                clean: false,
                ..ckpt.clone()
            }
            .write(self.opts.io.as_ref(), &self.dir)?;
        }
        // The checkpoint on disk stays valid: replay is idempotent, so the next crash may
        // replay the same records again. Open does not wait for a full index flush; if
        // anything was replayed, the background thread checkpoints at its next tick, so a
        // crash loop replays each record a bounded number of times instead of the whole
        // log since the last checkpoint at every start.
        let replayed = self.metrics.replayed_records.load(Ordering::Relaxed) > 0;
        let mut ck = self.ckpt.lock();
        ck.segment = start.segment();
        ck.at_secs = self.now();
        self.replay_unsaved.store(replayed, Ordering::Relaxed);
        Ok(())
    }
}
