//! Namespace settings through the store: checked, persisted by the namespace, in
//! force at once.

use super::Store;
use crate::error::{Error, Result};
use crate::ns_settings::{Settings, SettingsChange};
use crate::options::{MAX_RETENTION_SECS, MIN_RETENTION_SECS};

/// The least `max_bytes` bound: the active segment rolls at a quarter of it, and a
/// segment's file grows in 8 MiB steps.
pub const MIN_MAX_BYTES: u64 = 16 << 20;

impl Store {
    /// Changes the settings of `ns` (created if needed) and returns those in force.
    pub fn set_namespace(&self, ns: &str, change: SettingsChange) -> Result<Settings> {
        if let Some(secs) = change.retention_secs {
            check_retention(secs)?;
        }
        if let Some(bytes) = change.max_bytes.filter(|b| *b != 0 && *b < MIN_MAX_BYTES) {
            return Err(Error::InvalidMaxBytes {
                bytes,
                min: MIN_MAX_BYTES,
            });
        }
        // A change's own stamp may not be too far ahead, or it would outrank every later one.
        let given = change.at.map(|ts| dstash_cluster::Version::new(ts, 0));
        let at = self.stamp(given, self.hlc.wall_ms())?.ts;
        self.namespace(ns)?.change(change, at)
    }

    /// The settings of `ns`: its own, or a new namespace's defaults.
    pub fn namespace_settings(&self, ns: &str) -> Result<Settings> {
        Ok(match self.existing(ns)? {
            Some(n) => n.settings(),
            None => Settings {
                retention_secs: self.registry.opts.retention_secs,
                max_bytes: 0,
                default_ttl_secs: 0,
                changed_at: 0,
            },
        })
    }

    /// Sets the counter retention of `ns` (created if needed), keeping the settings'
    /// stamp: what a node receiving counts kept by another's schedule does, which must
    /// not outrank a newer `ns set` elsewhere. Windows may not exceed it.
    pub fn set_retention(&self, ns: &str, secs: u32) -> Result<()> {
        check_retention(secs)?;
        let change = SettingsChange {
            retention_secs: Some(secs),
            ..SettingsChange::default()
        };
        self.namespace(ns)?.change_keeping_stamp(change).map(drop)
    }

    /// The counter retention of `ns`: its own, or the default for a new namespace.
    pub fn count_retention(&self, ns: &str) -> Result<u32> {
        self.namespace_settings(ns).map(|s| s.retention_secs)
    }
}

fn check_retention(secs: u32) -> Result<()> {
    match (MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(&secs) {
        true => Ok(()),
        false => Err(Error::InvalidRetention {
            secs,
            min: MIN_RETENTION_SECS,
            max: MAX_RETENTION_SECS,
        }),
    }
}
