//! The store: a data directory of namespaces and the API every front end calls.
//! The namespaces live in [`registry`], the limits in [`limits`], the background
//! thread in [`background`].

mod background;
mod digests;
mod entry;
mod limits;
mod registry;
mod settings;
mod visit;

pub use entry::{Change, DeleteEntry, Found, KeyStream, Lookup, NamespaceStats, PutEntry};
pub use settings::MIN_MAX_BYTES;
pub use visit::Seen;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use background::Background;
use limits::{check_batch, check_key, check_keys, check_put};
use registry::{lock_dir, Registry};

use crate::error::{Error, IoContext, Result};
use crate::glob::Glob;
use dstash_cluster::{Hlc, Version};

use crate::keyspace::{Applied, KeyLister, Write};
use crate::name::validate_namespace;
use crate::namespace::Namespace;
use crate::options::Options;

/// Chunks one [`Store::keys_page`] examines at most: a page of a sparse match costs a
/// bounded walk, and may come back short or empty.
pub const PAGE_CHUNKS: usize = 64;

pub struct Store {
    registry: Arc<Registry>,
    /// Stamps writes that carry no version, and is moved past every version seen.
    hlc: Hlc,
    background: Option<Background>,
    _lock: File,
    closed: AtomicBool,
}

impl Store {
    /// Opens the store in `dir`, recovering every namespace in it.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        limits::check_options(&opts)?;
        std::fs::create_dir_all(&dir).at(&dir)?;
        let lock = lock_dir(&dir)?;
        let background = opts.background;
        let clock = opts.clock.clone();
        let hlc = Hlc::with_source(opts.writer_id, Box::new(move || clock.now_millis()));
        let registry = Arc::new(Registry::open(dir, Arc::new(opts))?);
        for n in registry.all() {
            hlc.observe(Version::new(n.kv.max_version_ts(), 0));
        }
        let background = if background {
            Some(Background::start(registry.clone())?)
        } else {
            None
        };
        Ok(Self {
            registry,
            hlc,
            background,
            _lock: lock,
            closed: AtomicBool::new(false),
        })
    }

    pub fn options(&self) -> &Options {
        &self.registry.opts
    }

    /// The namespace if it exists; reads never create one.
    fn existing(&self, ns: &str) -> Result<Option<Arc<Namespace>>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        validate_namespace(ns)?;
        Ok(self.registry.get(ns))
    }

    fn namespace(&self, ns: &str) -> Result<Arc<Namespace>> {
        match self.existing(ns)? {
            Some(n) => Ok(n),
            None => self.registry.get_or_create(ns),
        }
    }

    fn expires_at(&self, ttl_secs: u32) -> u64 {
        if ttl_secs == 0 {
            0
        } else {
            self.registry.opts.clock.now_secs() + ttl_secs as u64
        }
    }

    /// The version a write takes: its own, if not too far ahead of this store's clock
    /// (the clock then moves past it), or a new one from the clock.
    fn stamp(&self, version: Option<Version>, wall_ms: u64) -> Result<Version> {
        let Some(v) = version else {
            return Ok(self.hlc.now_at(wall_ms));
        };
        let max_ms = self.registry.opts.max_clock_skew_ms;
        let ahead_ms = self.hlc.ahead_ms_at(v, wall_ms);
        if ahead_ms > max_ms {
            return Err(Error::VersionAhead { ahead_ms, max_ms });
        }
        self.hlc.observe(v);
        Ok(v)
    }

    /// A new version from this store's clock.
    pub fn next_version(&self) -> Version {
        self.hlc.now()
    }

    pub fn put(&self, ns: &str, key: &[u8], value: &[u8], ttl_secs: u32) -> Result<()> {
        self.put_many(
            ns,
            &[PutEntry {
                key,
                value,
                ttl_secs,
                version: None,
            }],
        )
        .map(drop)
    }

    /// Writes every entry, or none if any breaks a limit. One fsync under `Always`. An
    /// entry no newer than the key's stored version is [`Applied::Stale`] and changes
    /// nothing.
    pub fn put_many(&self, ns: &str, entries: &[PutEntry<'_>]) -> Result<Vec<Applied>> {
        let changes: Vec<Change<'_>> = entries.iter().map(|e| Change::Put(*e)).collect();
        self.write_each(ns, &changes)
    }

    /// Applies puts and deletes together, or none if any breaks a limit or carries a
    /// version too far ahead: one fsync under `Always`. Per change, what it did. A put
    /// with no TTL takes the namespace's default TTL, if it has one.
    pub fn write_each(&self, ns: &str, changes: &[Change<'_>]) -> Result<Vec<Applied>> {
        let opts = &self.registry.opts;
        check_batch(opts, changes.len())?;
        // A namespace is created only by a write that passes every check.
        let existing = self.existing(ns)?;
        let default_ttl = existing.as_ref().map_or(0, |n| n.default_ttl());
        let mut writes = Vec::with_capacity(changes.len());
        let wall_ms = self.hlc.wall_ms();
        for c in changes {
            writes.push(match *c {
                Change::Put(e) => {
                    check_put(opts, &e)?;
                    Write::Put {
                        key: e.key,
                        value: e.value,
                        expires_at: self.expires_at(match e.ttl_secs {
                            0 => default_ttl,
                            ttl => ttl,
                        }),
                        version: self.stamp(e.version, wall_ms)?,
                    }
                }
                Change::Delete(e) => {
                    check_key(e.key)?;
                    Write::Delete {
                        key: e.key,
                        version: self.stamp(e.version, wall_ms)?,
                    }
                }
            });
        }
        match existing {
            Some(n) => n.kv.write(&writes),
            None => self.namespace(ns)?.kv.write(&writes),
        }
    }

    pub fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self.existing(ns)? {
            Some(n) => n.kv.get(key),
            None => Ok(None),
        }
    }

    /// Looks up every key; results are in key order.
    pub fn get_many(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self
            .lookup_many(ns, keys)?
            .into_iter()
            .map(|f| f.map(|f| f.value))
            .collect())
    }

    /// Looks up every key, with the time each has left to live; results are in key order.
    /// A damaged record fails the whole call (see [`lookup_each`](Self::lookup_each)).
    pub fn lookup_many(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<Option<Found>>> {
        self.lookup_each(ns, keys)?
            .into_iter()
            .map(|l| match l {
                Lookup::Found(f) => Ok(Some(f)),
                Lookup::Deleted(_) | Lookup::Missing => Ok(None),
                Lookup::Damaged(e) => Err(e),
            })
            .collect()
    }

    /// Looks up every key, answering each on its own: a damaged record is
    /// [`Lookup::Damaged`] for its key alone. Limits and a closed store still fail the
    /// whole call.
    pub fn lookup_each(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<Lookup>> {
        let mut out = Vec::with_capacity(keys.len());
        self.lookup_visit(ns, keys, |_, seen| out.push(seen.into_lookup()))?;
        Ok(out)
    }

    /// Deletes the key; true when a live value was there.
    pub fn delete(&self, ns: &str, key: &[u8]) -> Result<bool> {
        Ok(self.delete_many(ns, &[key])?[0])
    }

    /// Deletes every key with a version from this store's clock; per key, true when a
    /// live value was there.
    pub fn delete_many(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<bool>> {
        let entries: Vec<DeleteEntry<'_>> = keys
            .iter()
            .map(|&key| DeleteEntry { key, version: None })
            .collect();
        Ok(self
            .delete_each(ns, &entries)?
            .into_iter()
            .map(|a| a == Applied::Written { existed: true })
            .collect())
    }

    /// Writes a tombstone for every key, present or not, so that an older write that
    /// arrives later (a lagging replica, a repair) is refused. A delete no newer than
    /// the key's stored version is [`Applied::Stale`].
    pub fn delete_each(&self, ns: &str, entries: &[DeleteEntry<'_>]) -> Result<Vec<Applied>> {
        let changes: Vec<Change<'_>> = entries.iter().map(|e| Change::Delete(*e)).collect();
        self.write_each(ns, &changes)
    }

    /// Records `n` entries (0 counts as 1) for `key` now; returns the count over the retention.
    pub fn add(&self, ns: &str, key: &[u8], n: u32) -> Result<u64> {
        Ok(self.add_many(ns, &[(key, n)])?[0])
    }

    pub fn add_many(&self, ns: &str, items: &[(&[u8], u32)]) -> Result<Vec<u64>> {
        self.add_many_at(ns, items, None)
    }

    /// [`add_many`](Self::add_many) of events that happened at Unix second `at` (None:
    /// now), as the caller saw it, so that every replica counts them in one second; at
    /// most `counts::MAX_EVENT_SKEW` seconds from this node's clock.
    pub fn add_many_at(
        &self,
        ns: &str,
        items: &[(&[u8], u32)],
        at: Option<u64>,
    ) -> Result<Vec<u64>> {
        self.add_once(ns, items, at, None)
    }

    /// [`add_many_at`](Self::add_many_at) under a request id: a batch sent again with
    /// the same id within the dedup horizon (the retention, at most
    /// [`counts::MAX_HORIZON`](crate::counts::MAX_HORIZON) seconds) counts nothing
    /// and answers the counts now; the same id with other events is refused.
    pub fn add_once(
        &self,
        ns: &str,
        items: &[(&[u8], u32)],
        at: Option<u64>,
        request_id: Option<&str>,
    ) -> Result<Vec<u64>> {
        check_keys(&self.registry.opts, items.iter().map(|(k, _)| *k))?;
        self.namespace(ns)?.counters.add_many(items, at, request_id)
    }

    /// Entries added for `key` in the last `window_secs` seconds; 0 means the full retention.
    pub fn count(&self, ns: &str, key: &[u8], window_secs: u32) -> Result<u64> {
        Ok(self.count_many(ns, &[key], window_secs)?[0])
    }

    pub fn count_many(&self, ns: &str, keys: &[&[u8]], window_secs: u32) -> Result<Vec<u64>> {
        check_keys(&self.registry.opts, keys.iter().copied())?;
        match self.existing(ns)? {
            Some(n) => keys
                .iter()
                .map(|k| n.counters.count(k, window_secs))
                .collect(),
            None => {
                let retention = self.registry.opts.retention_secs;
                if window_secs > retention {
                    return Err(Error::WindowTooLarge {
                        window: window_secs,
                        retention,
                    });
                }
                Ok(vec![0; keys.len()])
            }
        }
    }

    /// Lists the live keys matching an anchored glob (`""` = all), a chunk at a time.
    pub fn keys(&self, ns: &str, pattern: &str) -> Result<KeyStream> {
        let glob = Glob::new(pattern)?;
        Ok(match self.existing(ns)? {
            Some(n) => KeyStream::Kv(KeyLister::new(n.kv.clone(), glob)),
            None => KeyStream::Empty,
        })
    }

    /// One page of a listing that resumes by position: the live keys matching `pattern`
    /// from hash position `from` on, at least `want` of them unless the listing ends or
    /// [`PAGE_CHUNKS`] chunks were examined first, and where the next page starts (None:
    /// the listing is done). Every key present for the whole walk is in some page;
    /// positions stay valid as the index grows.
    pub fn keys_page(
        &self,
        ns: &str,
        pattern: &str,
        from: u64,
        want: usize,
    ) -> Result<(Vec<Vec<u8>>, Option<u64>)> {
        let glob = Glob::new(pattern)?;
        let Some(n) = self.existing(ns)? else {
            return Ok((Vec::new(), None));
        };
        let slots = (want as u64).max(16);
        let mut lister = KeyLister::new(n.kv.clone(), glob).resume(from, slots);
        let mut keys = Vec::new();
        for _ in 0..PAGE_CHUNKS {
            match lister.step()? {
                Some(more) => keys.extend(more),
                None => break,
            }
            if keys.len() >= want {
                break;
            }
        }
        Ok((keys, lister.position()))
    }

    /// Lists the counter keys with a live count above 0.
    pub fn counter_keys(&self, ns: &str, pattern: &str) -> Result<KeyStream> {
        let glob = Glob::new(pattern)?;
        Ok(match self.existing(ns)? {
            Some(n) => KeyStream::Counters(n.counters.lister(glob)),
            None => KeyStream::Empty,
        })
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.registry.names()
    }

    pub fn stats(&self) -> Vec<NamespaceStats> {
        let mut v: Vec<NamespaceStats> = self
            .registry
            .all()
            .iter()
            .map(|n| NamespaceStats {
                name: n.name.clone(),
                kv: n.kv.stats(),
                counters: n.counters.stats(),
                retention_secs: n.counters.retention(),
                settings: n.settings(),
                settings_found: n.settings_found,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checkpoints every namespace now.
    pub fn checkpoint(&self) -> Result<()> {
        self.registry.all().iter().try_for_each(|n| {
            n.kv.checkpoint(false)
                .and_then(|()| n.counters.checkpoint())
        })
    }

    /// Seals wasteful active segments early, then compacts, in every namespace, the
    /// segment most worth it; returns how many were compacted.
    pub fn compact_now(&self) -> Result<usize> {
        let mut done = 0;
        for n in self.registry.all() {
            while let Some(id) = n.kv.eviction_candidate(n.settings().max_bytes)? {
                if !n.kv.evict(id, &mut |_| true)?.finished {
                    break;
                }
                done += 1;
            }
            n.kv.roll_if_wasteful()?;
            if let Some(id) = n.kv.compaction_candidate() {
                done += n.kv.compact(id, &mut |_| true)?.finished as usize;
            }
        }
        Ok(done)
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Test hook: runs `steps` steps of compaction on `ns`'s best candidate and stops,
    /// as a crash in the middle of compaction would. False when there is no candidate.
    #[doc(hidden)]
    pub fn compact_partially_for_test(&self, ns: &str, steps: usize) -> bool {
        let Ok(Some(n)) = self.existing(ns) else {
            return false;
        };
        let Some(id) = n.kv.compaction_candidate() else {
            return false;
        };
        n.kv.compact_steps(id, steps, &mut |_| true).is_ok()
    }

    /// Drops expired count generations now.
    pub fn expire_counters(&self) -> Result<usize> {
        self.registry
            .all()
            .iter()
            .map(|n| n.counters.expire())
            .sum()
    }

    /// Stops background work and checkpoints every namespace clean: nothing to replay on open.
    pub fn close(mut self) -> Result<()> {
        self.shutdown(true)
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Test hook: stop as a `kill -9` would, leaving files as they are (no final sync or
    /// clean checkpoint). The page cache keeps what was written, as it does for a killed process.
    #[doc(hidden)]
    pub fn crash(mut self) {
        let _ = self.shutdown(false);
    }

    fn shutdown(&mut self, clean: bool) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(mut b) = self.background.take() {
            b.stop();
        }
        if clean {
            self.registry.all().iter().try_for_each(|n| n.close())?;
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(true) {
            tracing::error!("closing the store: {e}");
        }
    }
}
