//! A namespace: a key/value keyspace and its expiring counts under `ns/<name>/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::counts::Counts;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;
use crate::header;
use crate::keyspace::Keyspace;
use crate::options::{Options, MAX_RETENTION_SECS, MIN_RETENTION_SECS};

const META: &str = "NAMESPACE";

/// The `NAMESPACE` file: a bare header whose one field is the counter retention.
struct NamespaceHeader {
    retention_secs: u32,
}

impl header::FileHeader for NamespaceHeader {
    const MAGIC: &'static [u8; 8] = b"DSTNS\0\0\0";
    const VERSION: u32 = 1;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.retention_secs as u64, 0, 0, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 1)?;
        let retention_secs = u32::try_from(f[0])
            .ok()
            .filter(|s| (MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(s))
            .ok_or_else(|| format!("counter retention {} s out of range", f[0]))?;
        Ok(Self { retention_secs })
    }
}

pub struct Namespace {
    pub name: String,
    dir: PathBuf,
    pub kv: Arc<Keyspace>,
    pub counters: Arc<Counts>,
    opts: Arc<Options>,
}

impl Namespace {
    /// Opens (creating if needed) the namespace in `dir`; recovery runs here.
    pub fn open(dir: &Path, name: &str, opts: Arc<Options>) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let meta = dir.join(META);
        let retention = match std::fs::read(&meta) {
            Ok(b) => header::decode::<NamespaceHeader>(&meta, &b)?.retention_secs,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_meta(&opts, dir, opts.retention_secs)?;
                opts.retention_secs
            }
            Err(e) => return Err(e).at(&meta),
        };
        let kv = Arc::new(Keyspace::open(&dir.join("kv"), name, opts.clone())?);
        drop_old_counters(dir, name);
        let counters = Arc::new(Counts::open(
            &dir.join("counts"),
            name,
            retention,
            opts.clone(),
        )?);
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            kv,
            counters,
            opts,
        })
    }

    /// Changes the counter retention; it is persisted before it takes effect.
    pub fn set_retention(&self, secs: u32) -> Result<()> {
        if secs == self.counters.retention() {
            return Ok(());
        }
        let persist = || write_meta(&self.opts, &self.dir, secs);
        self.counters.set_retention(secs, persist)
    }

    pub fn close(&self) -> Result<()> {
        self.counters.close()?;
        self.kv.close()
    }
}

fn write_meta(opts: &Options, dir: &Path, retention: u32) -> Result<()> {
    let b = header::encode(&NamespaceHeader {
        retention_secs: retention,
    });
    write_atomic(opts.io.as_ref(), &dir.join(META), &b)
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
