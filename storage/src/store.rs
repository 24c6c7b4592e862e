//! The store: a data directory of namespaces, the limits every call is checked
//! against, and the background thread that checkpoints, syncs, compacts and expires.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::counters::{CounterLister, CounterStats};
use crate::error::{Error, IoContext, Result};
use crate::glob::Glob;
use crate::keyspace::{KeyLister, KeyspaceStats, Write};
use crate::name::validate_namespace;
use crate::namespace::Namespace;
use crate::options::{Options, SyncMode, MAX_KEY_LEN, MAX_RETENTION_SECS, MIN_RETENTION_SECS};

/// One entry of a batch put.
#[derive(Debug, Clone, Copy)]
pub struct PutEntry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Seconds to live; 0 = no TTL.
    pub ttl_secs: u32,
}

/// Figures for one namespace.
/// A value found by [`Store::lookup_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: Vec<u8>,
    /// Seconds left to live; 0 when the key never expires.
    pub ttl_secs: u32,
}

#[derive(Debug, Clone)]
pub struct NamespaceStats {
    pub name: String,
    pub kv: KeyspaceStats,
    pub counters: CounterStats,
    pub retention_secs: u32,
}

/// A listing of keys, a chunk at a time.
pub enum KeyStream {
    Empty,
    Kv(KeyLister),
    Counters(CounterLister),
}

impl KeyStream {
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        match self {
            KeyStream::Empty => Ok(None),
            KeyStream::Kv(l) => l.next_chunk(),
            KeyStream::Counters(l) => l.next_chunk(),
        }
    }
}

struct Inner {
    dir: PathBuf,
    opts: Arc<Options>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Serialises namespace creation.
    create: Mutex<()>,
    stop: Mutex<bool>,
    wake: Condvar,
}

pub struct Store {
    inner: Arc<Inner>,
    background: Option<JoinHandle<()>>,
    _lock: File,
    closed: AtomicBool,
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path)?;
    // SAFETY: plain syscall on an owned descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::Locked {
            path: dir.to_path_buf(),
        });
    }
    Ok(f)
}

impl Store {
    /// Opens the store in `dir`, recovering every namespace in it.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        // The largest record must fit an empty segment, after its header.
        let largest_record = crate::record::RECORD_HEADER_LEN + MAX_KEY_LEN + opts.max_value_len;
        if opts.segment_size > u32::MAX as u64
            || largest_record as u64 + crate::segment::DATA_START > opts.segment_size
        {
            return Err(Error::InvalidOptions(format!(
                "segment size {} must be at most 4 GiB and hold the largest record (max value {} bytes)",
                opts.segment_size, opts.max_value_len
            )));
        }
        let ns_dir = dir.join("ns");
        std::fs::create_dir_all(&ns_dir).at(&ns_dir)?;
        let lock = lock_dir(&dir)?;
        let opts = Arc::new(opts);
        let mut namespaces = HashMap::new();
        for e in std::fs::read_dir(&ns_dir).at(&ns_dir)? {
            let e = e.at(&ns_dir)?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_namespace(&name).is_err() {
                tracing::warn!(path = %e.path().display(), "ignoring a directory that is not a namespace");
                continue;
            }
            let ns = Namespace::open(&e.path(), &name, opts.clone())?;
            namespaces.insert(name, Arc::new(ns));
        }
        let inner = Arc::new(Inner {
            dir,
            opts: opts.clone(),
            namespaces: RwLock::new(namespaces),
            create: Mutex::new(()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let background = if opts.background {
            let bg = inner.clone();
            let handle = std::thread::Builder::new()
                .name("dstash-storage".into())
                .spawn(move || bg.run_background())
                .at(&inner.dir)?;
            Some(handle)
        } else {
            None
        };
        Ok(Self {
            inner,
            background,
            _lock: lock,
            closed: AtomicBool::new(false),
        })
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::EmptyKey { max: MAX_KEY_LEN });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(())
    }

    fn check_batch(&self, len: usize) -> Result<()> {
        let max = self.inner.opts.max_batch_len;
        if len > max {
            return Err(Error::BatchTooLarge { len, max });
        }
        Ok(())
    }

    fn check_put(&self, e: &PutEntry<'_>) -> Result<()> {
        self.check_key(e.key)?;
        let max = self.inner.opts.max_value_len;
        if e.value.len() > max {
            return Err(Error::ValueTooLarge {
                len: e.value.len(),
                max,
            });
        }
        Ok(())
    }

    /// The namespace if it exists; reads never create one.
    fn existing(&self, ns: &str) -> Result<Option<Arc<Namespace>>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        validate_namespace(ns)?;
        Ok(self.inner.namespaces.read().get(ns).cloned())
    }

    fn namespace(&self, ns: &str) -> Result<Arc<Namespace>> {
        if let Some(n) = self.existing(ns)? {
            return Ok(n);
        }
        let _g = self.inner.create.lock();
        if let Some(n) = self.inner.namespaces.read().get(ns) {
            return Ok(n.clone());
        }
        let parent = self.inner.dir.join("ns");
        let n = Arc::new(Namespace::open(
            &parent.join(ns),
            ns,
            self.inner.opts.clone(),
        )?);
        crate::fsutil::sync_dir(&parent)?;
        self.inner
            .namespaces
            .write()
            .insert(ns.to_string(), n.clone());
        Ok(n)
    }

    fn expires_at(&self, ttl_secs: u32) -> u64 {
        if ttl_secs == 0 {
            0
        } else {
            self.inner.opts.clock.now_secs() + ttl_secs as u64
        }
    }

    pub fn put(&self, ns: &str, key: &[u8], value: &[u8], ttl_secs: u32) -> Result<()> {
        self.put_many(
            ns,
            &[PutEntry {
                key,
                value,
                ttl_secs,
            }],
        )
    }

    /// Writes every entry, or none if any breaks a limit. One fsync under `Always`.
    pub fn put_many(&self, ns: &str, entries: &[PutEntry<'_>]) -> Result<()> {
        self.check_batch(entries.len())?;
        entries.iter().try_for_each(|e| self.check_put(e))?;
        let n = self.namespace(ns)?;
        let writes: Vec<Write<'_>> = entries
            .iter()
            .map(|e| Write::Put {
                key: e.key,
                value: e.value,
                expires_at: self.expires_at(e.ttl_secs),
            })
            .collect();
        n.kv.write(&writes).map(|_| ())
    }

    pub fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
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
    pub fn lookup_many(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<Option<Found>>> {
        self.check_batch(keys.len())?;
        keys.iter().try_for_each(|k| self.check_key(k))?;
        let Some(n) = self.existing(ns)? else {
            return Ok(vec![None; keys.len()]);
        };
        let now = self.inner.opts.clock.now_secs();
        Ok(n.kv
            .get_many(keys)?
            .into_iter()
            .map(|f| {
                f.map(|(value, expires_at)| Found {
                    value,
                    // An unexpired key has at least a second left.
                    ttl_secs: if expires_at == 0 {
                        0
                    } else {
                        expires_at.saturating_sub(now).clamp(1, u32::MAX as u64) as u32
                    },
                })
            })
            .collect())
    }

    /// Deletes the key; true when a live value was there.
    pub fn delete(&self, ns: &str, key: &[u8]) -> Result<bool> {
        Ok(self.delete_many(ns, &[key])?[0])
    }

    pub fn delete_many(&self, ns: &str, keys: &[&[u8]]) -> Result<Vec<bool>> {
        self.check_batch(keys.len())?;
        keys.iter().try_for_each(|k| self.check_key(k))?;
        let Some(n) = self.existing(ns)? else {
            return Ok(vec![false; keys.len()]);
        };
        let writes: Vec<Write<'_>> = keys.iter().map(|&key| Write::Delete { key }).collect();
        n.kv.write(&writes)
    }

    /// Records `n` entries (0 counts as 1) for `key` now; returns the count over the retention.
    pub fn add(&self, ns: &str, key: &[u8], n: u32) -> Result<u64> {
        Ok(self.add_many(ns, &[(key, n)])?[0])
    }

    pub fn add_many(&self, ns: &str, items: &[(&[u8], u32)]) -> Result<Vec<u64>> {
        self.check_batch(items.len())?;
        items.iter().try_for_each(|(k, _)| self.check_key(k))?;
        self.namespace(ns)?.counters.add_many(items)
    }

    /// Entries added for `key` in the last `window_secs` seconds; 0 means the full retention.
    pub fn count(&self, ns: &str, key: &[u8], window_secs: u32) -> Result<u64> {
        Ok(self.count_many(ns, &[key], window_secs)?[0])
    }

    pub fn count_many(&self, ns: &str, keys: &[&[u8]], window_secs: u32) -> Result<Vec<u64>> {
        self.check_batch(keys.len())?;
        keys.iter().try_for_each(|k| self.check_key(k))?;
        match self.existing(ns)? {
            Some(n) => keys
                .iter()
                .map(|k| n.counters.count(k, window_secs))
                .collect(),
            None => {
                let retention = self.inner.opts.retention_secs;
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

    /// Lists the counter keys with a live count above 0.
    pub fn counter_keys(&self, ns: &str, pattern: &str) -> Result<KeyStream> {
        let glob = Glob::new(pattern)?;
        Ok(match self.existing(ns)? {
            Some(n) => KeyStream::Counters(n.counters.lister(glob)),
            None => KeyStream::Empty,
        })
    }

    /// Sets the counter retention of `ns` (created if needed); windows may not exceed it.
    pub fn set_retention(&self, ns: &str, secs: u32) -> Result<()> {
        if !(MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(&secs) {
            return Err(Error::InvalidRetention {
                secs,
                min: MIN_RETENTION_SECS,
                max: MAX_RETENTION_SECS,
            });
        }
        self.namespace(ns)?.set_retention(secs)
    }

    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.namespaces.read().keys().cloned().collect();
        v.sort();
        v
    }

    pub fn stats(&self) -> Vec<NamespaceStats> {
        let mut v: Vec<NamespaceStats> = self
            .inner
            .namespaces
            .read()
            .values()
            .map(|n| NamespaceStats {
                name: n.name.clone(),
                kv: n.kv.stats(),
                counters: n.counters.stats(),
                retention_secs: n.counters.retention(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checkpoints every namespace now.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner
            .all()
            .iter()
            .try_for_each(|n| n.kv.checkpoint(false))
    }

    /// Compacts, in every namespace, the segment most worth it; returns how many were compacted.
    pub fn compact_now(&self) -> Result<usize> {
        let mut done = 0;
        for n in self.inner.all() {
            if let Some(id) = n.kv.compaction_candidate() {
                done += n.kv.compact(id, &mut |_| true)?.finished as usize;
            }
        }
        Ok(done)
    }

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

    /// Drops expired counter buckets now.
    pub fn expire_counters(&self) -> Result<usize> {
        self.inner.all().iter().map(|n| n.counters.expire()).sum()
    }

    /// Stops background work and checkpoints every namespace clean: nothing to replay on open.
    pub fn close(mut self) -> Result<()> {
        self.shutdown(true)
    }

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
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.background.take() {
            let _ = h.join();
        }
        if clean {
            self.inner.all().iter().try_for_each(|n| n.close())?;
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

impl Inner {
    fn all(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.read().values().cloned().collect()
    }

    fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Checkpoints, interval syncs, counter expiry and paced compaction, until stopped.
    fn run_background(&self) {
        let tick = Duration::from_millis(100);
        let mut last_sync = Instant::now();
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.wake.wait_for(&mut stop, tick);
                if *stop {
                    return;
                }
            }
            let sync_due = match self.opts.sync {
                SyncMode::Interval(d) => last_sync.elapsed() >= d,
                _ => false,
            };
            if sync_due {
                last_sync = Instant::now();
            }
            for n in self.all() {
                let name = &n.name;
                if sync_due {
                    if let Err(e) = n.kv.sync().and_then(|()| n.counters.sync()) {
                        tracing::error!(ns = %name, "interval sync failed: {e}");
                    }
                }
                if n.kv.checkpoint_due() {
                    if let Err(e) = n.kv.checkpoint(false) {
                        tracing::error!(ns = %name, "checkpoint failed: {e}");
                    }
                }
                if let Err(e) = n.counters.expire() {
                    tracing::error!(ns = %name, "counter expiry failed: {e}");
                }
                if let Some(id) = n.kv.compaction_candidate() {
                    let started = Instant::now();
                    let rate = self.opts.compaction_bytes_per_sec.max(1) as f64;
                    let mut pace = |done: u64| {
                        let due = Duration::from_secs_f64(done as f64 / rate);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            let mut stop = self.stop.lock();
                            self.wake.wait_for(&mut stop, wait);
                        }
                        !self.stopping()
                    };
                    if let Err(e) = n.kv.compact(id, &mut pace) {
                        tracing::error!(ns = %name, segment = id, "compaction failed: {e}");
                    }
                }
            }
        }
    }
}
