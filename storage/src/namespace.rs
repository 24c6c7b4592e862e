//! A namespace: a key/value keyspace and its expiring counts under `ns/<name>/`.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::counts::Counts;
use crate::error::{IoContext, Result};
use crate::keyspace::Keyspace;
use crate::ns_settings::{Found, Settings, SettingsChange, SettingsFile};
use crate::options::Options;

pub struct Namespace {
    pub name: String,
    pub kv: Arc<Keyspace>,
    pub counters: Arc<Counts>,
    /// The settings file and what it holds; changes are persisted before they apply.
    settings: Mutex<(SettingsFile, Settings)>,
    /// How the settings were found at open.
    pub settings_found: Found,
    /// The settings' default TTL, read by every write without a lock.
    default_ttl: AtomicU32,
    opts: Arc<Options>,
}

impl Namespace {
    /// Opens (creating if needed) the namespace in `dir`; recovery runs here.
    pub fn open(dir: &Path, name: &str, opts: Arc<Options>) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let defaults = Settings {
            retention_secs: opts.retention_secs,
            max_bytes: 0,
            default_ttl_secs: 0,
            changed_at: 0,
        };
        let (file, settings, found) = SettingsFile::open(opts.io.as_ref(), dir, defaults)?;
        if found == Found::Lost {
            tracing::error!(ns = name, "both copies of the namespace's settings are damaged: the defaults are in force until `dstash ns set` sets them again");
        }
        let retention = settings.retention_secs;
        let kv = Arc::new(Keyspace::open(&dir.join("kv"), name, opts.clone())?);
        kv.set_max_bytes(settings.max_bytes);
        drop_old_counters(dir, name);
        let counters = Arc::new(Counts::open(
            &dir.join("counts"),
            name,
            retention,
            opts.clone(),
        )?);
        Ok(Self {
            name: name.to_string(),
            kv,
            counters,
            settings: Mutex::new((file, settings)),
            default_ttl: AtomicU32::new(settings.default_ttl_secs),
            settings_found: found,
            opts,
        })
    }

    pub fn settings(&self) -> Settings {
        self.settings.lock().1
    }

    /// Seconds to live of puts that give none (0: none).
    pub fn default_ttl(&self) -> u32 {
        self.default_ttl.load(Ordering::Relaxed)
    }

    /// Applies `change` stamped `at` unless the settings were changed at `at` or
    /// later, persisted first; a new counter retention rewrites the count tables before
    /// it is recorded.
    pub fn change(&self, change: SettingsChange, at: u64) -> Result<Settings> {
        let mut guard = self.settings.lock();
        if at <= guard.1.changed_at {
            return Ok(guard.1);
        }
        let next = guard.1.with(change, at);
        self.apply(&mut guard, next)
    }

    /// Applies `change` whatever the stamps, keeping the settings' own.
    pub fn change_keeping_stamp(&self, change: SettingsChange) -> Result<Settings> {
        let mut guard = self.settings.lock();
        let next = guard.1.with(change, guard.1.changed_at);
        if next == guard.1 {
            return Ok(next);
        }
        self.apply(&mut guard, next)
    }

    fn apply(&self, guard: &mut (SettingsFile, Settings), next: Settings) -> Result<Settings> {
        let (file, now) = guard;
        let io = self.opts.io.as_ref();
        if next.retention_secs != self.counters.retention() {
            let persist = || file.write(io, next);
            self.counters.set_retention(next.retention_secs, persist)?;
        } else {
            file.write(io, next)?;
        }
        self.kv.set_max_bytes(next.max_bytes);
        self.default_ttl
            .store(next.default_ttl_secs, Ordering::Relaxed);
        *now = next;
        Ok(next)
    }

    pub fn close(&self) -> Result<()> {
        self.counters.close()?;
        self.kv.close()
    }
}

/// Removes the per-second buckets an earlier format kept in `counters/`: their counts
/// are not carried over (they live at most the retention).
fn drop_old_counters(dir: &Path, ns: &str) {
    let old = dir.join("counters");
    if old.is_dir() {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => tracing::warn!(ns, "counts in the old bucket format were dropped"),
            Err(e) => tracing::error!(ns, "removing {}: {e}", old.display()),
        }
    }
}
