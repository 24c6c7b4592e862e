//! Opening a keyspace: inventory its files, load the checkpointed index, replay only
//! the log written after the checkpoint, and cut a torn tail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{CheckpointState, Keyspace, KeyspaceMetrics, Pending, Tables, Writer};
use crate::checkpoint::{Checkpoint, SegmentStats};
use crate::commit::{GroupCommit, Turnstile};
use crate::error::{IoContext, Result};
use crate::hash::{key_hash, random_seed};
use crate::index::{self, Index, Loc, MIN_BITS};
use crate::options::Options;
use crate::record::{self, DecodeError, Kind};
use crate::segment::{self, Segment, WritePath, DATA_START};

/// Replay applies index changes in chunks of this many records, so a full reindex of a
/// large segment does not hold all of them in memory.
const REPLAY_CHUNK: usize = 1 << 16;

/// Keep appending to the last segment only while it has this much room.
const MIN_ACTIVE_ROOM: u64 = 1 << 20;

struct Inventory {
    segments: BTreeMap<u32, PathBuf>,
    index_gens: BTreeMap<u64, PathBuf>,
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

pub(super) fn open(dir: &Path, ns: &str, opts: Arc<Options>) -> Result<Keyspace> {
    std::fs::create_dir_all(dir).at(dir)?;
    let inv = inventory(dir)?;
    let io = opts.io.clone();

    let mut segments = BTreeMap::new();
    let last_id = inv.segments.keys().next_back().copied();
    for (&id, path) in &inv.segments {
        match Segment::open(
            path,
            opts.segment_size,
            io.clone(),
            WritePath::for_sync(opts.sync),
        ) {
            Ok(s) if s.id == id => {
                segments.insert(id, Arc::new(s));
            }
            Ok(s) => {
                return Err(crate::error::Error::BadFile {
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

    let ckpt = match Checkpoint::read(dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(ns, "{e}; rebuilding the index from the log");
            None
        }
    };
    let next_gen = inv.index_gens.keys().next_back().map_or(1, |g| g + 1);
    let loaded = ckpt.as_ref().and_then(|c| {
        let path = inv.index_gens.get(&c.index_gen)?;
        Index::open(path, io.clone())
            .inspect_err(|e| tracing::error!(ns, "{e}; rebuilding the index from the log"))
            .ok()
    });
    let first = segments.keys().next().copied().unwrap_or(1);
    let (index, start, ckpt, reindex) = match (loaded, ckpt) {
        (Some(ix), Some(c)) => (ix, Loc(c.position), c, false),
        (_, c) => {
            if !segments.is_empty() {
                tracing::warn!(
                    ns,
                    segments = segments.len(),
                    "no usable checkpoint: full reindex"
                );
            }
            let bits = c.as_ref().map_or(MIN_BITS, |c| bits_for(c.live));
            let ix = Index::create(dir, next_gen, bits, random_seed(), io.clone())?;
            (ix, Loc::new(first, DATA_START), Checkpoint::default(), true)
        }
    };
    let gen = index.gen;
    for (g, path) in &inv.index_gens {
        if *g != gen {
            crate::fsutil::remove_file(path)?;
        }
    }

    let mut stats: BTreeMap<u32, SegmentStats> = segments
        .keys()
        .map(|&id| (id, SegmentStats::default()))
        .collect();
    for (id, s) in &ckpt.segments {
        if let Some(slot) = stats.get_mut(id) {
            *slot = *s;
        }
    }
    let mut tables = Tables {
        index: Arc::new(index),
        segments,
        stats,
        applied_end: start.0,
        next_index_gen: next_gen.max(gen + 1),
    };

    let active = match tables.segments.values().next_back() {
        Some(s) if s.remaining() >= MIN_ACTIVE_ROOM => s.clone(),
        last => {
            let id = last.map_or(1, |s| s.id + 1);
            let s = Arc::new(Segment::create(
                dir,
                id,
                opts.segment_size,
                io.clone(),
                WritePath::for_sync(opts.sync),
            )?);
            tables.segments.insert(id, s.clone());
            tables.stats.insert(id, SegmentStats::default());
            s
        }
    };
    let ks = Keyspace {
        ns: ns.to_string(),
        seed: tables.index.seed,
        dir: dir.to_path_buf(),
        opts,
        tables: RwLock::new(tables),
        writer: Mutex::new(Writer {
            active,
            next_seq: ckpt.next_seq.max(1),
            next_ticket: 1,
            buf: Vec::with_capacity(1 << 16),
            poisoned: None,
        }),
        group: GroupCommit::default(),
        turnstile: Turnstile::new(1),
        ckpt: Mutex::new(CheckpointState::default()),
        in_flight: Default::default(),
        metrics: KeyspaceMetrics::default(),
    };
    {
        let t = ks.tables.read();
        if ckpt.clean {
            t.index.set_counts(ckpt.live, ckpt.tombstones);
        } else {
            // Slots a crash wrote after the checkpoint make its counts stale; from the
            // real slots, replay's own accounting keeps them exact.
            t.index.recount();
        }
    }
    let max_seq = ks.replay(start, last_id)?;
    {
        let mut w = ks.writer.lock();
        w.next_seq = w.next_seq.max(max_seq + 1);
    }
    if reindex {
        // The new index generation must be named by a checkpoint before anything else.
        ks.checkpoint(false)?;
        return Ok(ks);
    }
    if ckpt.clean {
        // From here on a crash must recount: clear the flag before the first write.
        Checkpoint {
            clean: false,
            ..ckpt.clone()
        }
        .write(io.as_ref(), dir)?;
    }
    // The checkpoint on disk stays valid: replay is idempotent, so the next crash may
    // replay the same records again. Open does not wait for a full index flush; if
    // anything was replayed, the background thread checkpoints at its next tick, so a
    // crash loop replays each record a bounded number of times instead of the whole
    // log since the last checkpoint at every start.
    let replayed = ks.metrics.replayed_records.load(Ordering::Relaxed) > 0;
    {
        let mut ck = ks.ckpt.lock();
        ck.segment = start.segment();
        ck.at_secs = if replayed { 0 } else { ks.now() };
    }
    if replayed {
        ks.metrics
            .bytes_since_checkpoint
            .store(1, Ordering::Relaxed);
    }
    Ok(ks)
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
    /// Applies and clears a chunk of replayed changes that ends at `end`.
    fn replay_chunk(&self, t: &mut Tables, batch: &mut Vec<Pending>, end: Loc) -> Result<u64> {
        self.grow(t, batch.len() as u64)?;
        self.apply(t, batch, end.0, true);
        let n = batch.len() as u64;
        batch.clear();
        Ok(n)
    }

    /// Re-applies every record from `start` to the end of the log, cutting a torn tail.
    /// Returns the largest sequence number seen.
    fn replay(&self, start: Loc, last: Option<u32>) -> Result<u64> {
        let mut t = self.tables.write();
        let segs: Vec<Arc<Segment>> = t
            .segments
            .range(start.segment()..)
            .map(|(_, s)| s.clone())
            .collect();
        let mut max_seq = 0;
        let mut replayed = 0u64;
        for seg in segs {
            let mut off = if seg.id == start.segment() {
                start.offset().max(DATA_START)
            } else {
                DATA_START
            };
            let mut batch = Vec::new();
            loop {
                let rest = seg.tail(off);
                if rest.is_empty() {
                    break;
                }
                match record::decode(rest) {
                    Ok((h, key, _)) => {
                        let loc = Loc::new(seg.id, off);
                        let hash = key_hash(self.seed, key);
                        let len = h.total_len() as u32;
                        batch.push(match h.kind {
                            Kind::Put => Pending::Put {
                                hash,
                                loc,
                                len,
                                expires_at: h.expires_at,
                            },
                            Kind::Delete => Pending::Delete { hash, loc, len },
                        });
                        max_seq = max_seq.max(h.seq);
                        off += len as u64;
                        if batch.len() >= REPLAY_CHUNK {
                            replayed +=
                                self.replay_chunk(&mut t, &mut batch, Loc::new(seg.id, off))?;
                        }
                    }
                    Err(_) if rest.iter().all(|&b| b == 0) => {
                        // Preallocated space past the last record: the clean end.
                        seg.truncate(off)?;
                        break;
                    }
                    Err(e) => {
                        if let Some(skip) = resync(rest) {
                            // Damage in the middle of the log, not a torn tail: valid
                            // records follow, so step over the bad bytes and keep them.
                            self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(path = %seg.path().display(), offset = off, skipped = skip,
                                "{}: damaged bytes skipped", e.describe());
                            off += skip as u64;
                            continue;
                        }
                        if Some(seg.id) == last {
                            if e != DecodeError::Truncated && !torn_write(rest) {
                                self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::warn!(path = %seg.path().display(), offset = off, "{}: cutting the log's torn tail", e.describe());
                            seg.truncate(off)?;
                        } else {
                            self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(path = %seg.path().display(), offset = off,
                                "{}: the rest of this sealed segment is unreadable and was skipped", e.describe());
                        }
                        break;
                    }
                }
            }
            replayed += self.replay_chunk(&mut t, &mut batch, Loc::new(seg.id, off))?;
        }
        self.metrics
            .replayed_records
            .fetch_add(replayed, Ordering::Relaxed);
        if replayed > 0 {
            tracing::info!(ns = %self.ns, records = replayed, "replayed the log after the checkpoint");
        }
        Ok(max_seq)
    }
}

/// True when `rest` holds the start of one record and nothing but zeros after some
/// point inside it: a write cut short by a crash into preallocated space. Only the last
/// record's own bytes are nonzero, so nothing was damaged; it was never finished.
fn torn_write(rest: &[u8]) -> bool {
    let claimed = record::peek_header(rest)
        .map(|h| h.total_len())
        .unwrap_or(record::RECORD_HEADER_LEN);
    rest.iter()
        .rposition(|&b| b != 0)
        .is_none_or(|last| last < claimed)
}

/// The distance to the next offset in `rest` (after the first byte) where a whole,
/// checksummed record starts; None when nothing valid follows (a torn tail).
fn resync(rest: &[u8]) -> Option<usize> {
    (1..rest.len())
        .find(|&i| record::peek_header(&rest[i..]).is_ok() && record::decode(&rest[i..]).is_ok())
}
