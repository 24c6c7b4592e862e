//! The namespaces of a data directory: found at open, created on first write, and the
//! directory lock that keeps a second process out.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::name::validate_namespace;
use crate::namespace::Namespace;
use crate::options::Options;

pub(super) struct Registry {
    dir: PathBuf,
    pub(super) opts: Arc<Options>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Serialises namespace creation.
    create: Mutex<()>,
}

impl Registry {
    /// Opens (recovers) every namespace under `dir/ns`.
    pub(super) fn open(dir: PathBuf, opts: Arc<Options>) -> Result<Self> {
        let ns_dir = dir.join("ns");
        std::fs::create_dir_all(&ns_dir).at(&ns_dir)?;
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
        Ok(Self {
            dir,
            opts,
            namespaces: RwLock::new(namespaces),
            create: Mutex::new(()),
        })
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespace if it exists (the name already validated).
    pub(super) fn get(&self, ns: &str) -> Option<Arc<Namespace>> {
        self.namespaces.read().get(ns).cloned()
    }

    /// The namespace, created (and its directory entry made durable) if it is new.
    pub(super) fn get_or_create(&self, ns: &str) -> Result<Arc<Namespace>> {
        if let Some(n) = self.get(ns) {
            return Ok(n);
        }
        let _g = self.create.lock();
        if let Some(n) = self.get(ns) {
            return Ok(n);
        }
        let parent = self.dir.join("ns");
        let n = Arc::new(Namespace::open(&parent.join(ns), ns, self.opts.clone())?);
        crate::fsutil::sync_dir(&parent)?;
        self.namespaces.write().insert(ns.to_string(), n.clone());
        Ok(n)
    }

    pub(super) fn all(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.read().values().cloned().collect()
    }

    pub(super) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.namespaces.read().keys().cloned().collect();
        v.sort();
        v
    }
}

pub(super) fn lock_dir(dir: &Path) -> Result<File> {
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
