//! A namespace's settings on disk: two checksummed copies, `NAMESPACE` and
//! `NAMESPACE-B`, each a bare header (as LMDB keeps two meta pages).
//!
//! Fields: counter retention, max bytes, default TTL, a sequence number, and when the
//! settings were last changed (a version timestamp: the newest change wins when nodes
//! compare settings). A change
//! writes copy A, then copy B, each atomically, with the next sequence number; open
//! takes the sound copy with the highest number. So a crash or damage leaves at
//! least one copy to read, and a damaged copy is rewritten from the other. With both
//! copies damaged the namespace starts from the defaults, logged and counted: its
//! keys and counts are untouched, only its settings must be set again.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::header::{self, FileHeader, FIELDS};
use crate::io::Io;
use crate::options::{MAX_RETENTION_SECS, MIN_RETENTION_SECS};

const COPIES: [&str; 2] = ["NAMESPACE", "NAMESPACE-B"];

/// What a namespace is set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long expiring counts are kept, in seconds.
    pub retention_secs: u32,
    /// 0: no bound. Otherwise the namespace is a cache: past this many bytes of data
    /// files its oldest segment is dropped whole.
    pub max_bytes: u64,
    /// Seconds to live for puts that give none; 0: none.
    pub default_ttl_secs: u32,
    /// The version timestamp of the last change; 0: never changed (the defaults).
    pub changed_at: u64,
}

/// A change to some settings; None leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub retention_secs: Option<u32>,
    pub max_bytes: Option<u64>,
    pub default_ttl_secs: Option<u32>,
    /// The change's version timestamp: one no newer than the settings' `changed_at`
    /// changes nothing. None: the store stamps it.
    pub at: Option<u64>,
}

impl Settings {
    /// The settings after `c`, stamped `at`.
    pub fn with(self, c: SettingsChange, at: u64) -> Settings {
        Settings {
            retention_secs: c.retention_secs.unwrap_or(self.retention_secs),
            max_bytes: c.max_bytes.unwrap_or(self.max_bytes),
            default_ttl_secs: c.default_ttl_secs.unwrap_or(self.default_ttl_secs),
            changed_at: at,
        }
    }

    /// The same settings, whenever each was set.
    pub fn same_as(&self, o: &Settings) -> bool {
        (self.retention_secs, self.max_bytes, self.default_ttl_secs)
            == (o.retention_secs, o.max_bytes, o.default_ttl_secs)
    }
}

/// One copy's header: the settings and the copy's sequence number.
struct Copy {
    settings: Settings,
    seq: u64,
}

impl FileHeader for Copy {
    const MAGIC: &'static [u8; 8] = b"DSTNS\0\0\0";
    const VERSION: u32 = 2;
    fn to_fields(&self) -> [u64; FIELDS] {
        let s = &self.settings;
        let ttl = s.default_ttl_secs as u64;
        [
            s.retention_secs as u64,
            s.max_bytes,
            ttl,
            self.seq,
            s.changed_at,
            0,
        ]
    }
    fn from_fields(f: [u64; FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 5)?;
        let default_ttl_secs =
            u32::try_from(f[2]).map_err(|_| format!("default TTL {} s out of range", f[2]))?;
        Ok(Copy {
            settings: Settings {
                retention_secs: retention(f[0])?,
                max_bytes: f[1],
                default_ttl_secs,
                changed_at: f[4],
            },
            seq: f[3],
        })
    }
}

fn retention(f: u64) -> std::result::Result<u32, String> {
    u32::try_from(f)
        .ok()
        .filter(|s| (MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(s))
        .ok_or_else(|| format!("counter retention {f} s out of range"))
}

/// A copy's bytes as this build or the one before wrote them (version 1: only the
/// retention, no second copy).
fn decode(bytes: &[u8]) -> std::result::Result<Copy, String> {
    match header::sanity_check(bytes, Copy::MAGIC, Copy::VERSION) {
        Ok(f) => Copy::from_fields(f),
        Err(e2) => match header::sanity_check(bytes, Copy::MAGIC, 1) {
            Ok(f) => {
                header::check_unused(&f, 1)?;
                Ok(Copy {
                    settings: Settings {
                        retention_secs: retention(f[0])?,
                        max_bytes: 0,
                        default_ttl_secs: 0,
                        changed_at: 0,
                    },
                    seq: 0,
                })
            }
            Err(_) => Err(e2),
        },
    }
}

/// How the settings were found at open; as a number, how many copies were damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No copy damaged (a missing one, as after an upgrade, is written).
    Sound = 0,
    /// One copy was damaged and was rewritten from the other.
    Repaired = 1,
    /// No copy was sound: the defaults are in force.
    Lost = 2,
}

/// The settings file pair of one namespace directory.
pub struct SettingsFile {
    dir: PathBuf,
    seq: u64,
}

impl SettingsFile {
    /// Reads the settings in `dir`, writing `defaults` for a new namespace, repairing
    /// a damaged copy, and setting both aside (`.damaged`) when neither is sound.
    pub fn open(io: &dyn Io, dir: &Path, defaults: Settings) -> Result<(Self, Settings, Found)> {
        let mut copies = Vec::new();
        let mut bad = Vec::new();
        for name in COPIES {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(b) => match decode(&b) {
                    Ok(c) => copies.push(c),
                    Err(why) => bad.push((path, why)),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => bad.push((path, e.to_string())),
            }
        }
        let best = copies.iter().max_by_key(|c| c.seq);
        let (settings, seq) = best.map_or((defaults, 0), |c| (c.settings, c.seq));
        let found = match (bad.is_empty(), best.is_some()) {
            (true, _) => Found::Sound,
            (false, true) => Found::Repaired,
            (false, false) => Found::Lost,
        };
        for (path, why) in &bad {
            tracing::error!(path = %path.display(), "namespace settings copy damaged: {why}");
            if found == Found::Lost {
                let aside = path.with_extension("damaged");
                if let Err(e) = std::fs::rename(path, &aside) {
                    tracing::error!(path = %path.display(), "setting it aside: {e}");
                }
            }
        }
        let mut file = SettingsFile {
            dir: dir.to_path_buf(),
            seq,
        };
        let settled = copies.len() == 2 && copies[0].seq == copies[1].seq;
        if !settled {
            file.write(io, settings)?;
        }
        Ok((file, settings, found))
    }

    /// Writes both copies, A then B, with the next sequence number.
    pub fn write(&mut self, io: &dyn Io, settings: Settings) -> Result<()> {
        let copy = Copy {
            settings,
            seq: self.seq + 1,
        };
        let bytes = header::encode(&copy);
        for name in COPIES {
            write_atomic(io, &self.dir.join(name), &bytes)?;
        }
        self.seq = copy.seq;
        Ok(())
    }
}

#[cfg(test)]
#[path = "ns_settings_tests.rs"]
mod tests;
