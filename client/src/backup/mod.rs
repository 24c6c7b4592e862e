//! Online backups of a whole serving cluster into one portable file, and restores of
//! one into a cluster of any shape. The file format is in [`format`].
//!
//! A backup lists every namespace any node holds, writes its settings, then dumps its
//! keys (each once, newest version across replicas, see `dump`) with their expiry and
//! version. Writes go on meanwhile: a key present when the backup started and not
//! changed since is in it; a key written or deleted after the start may or may not be.
//! A restore writes each key with its backed-up version, so a cluster holding a newer
//! version of a key keeps it; keys whose expiry passed are skipped.

mod blocks;
pub mod format;
mod restore;

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::Client;
use crate::error::{Error, NodeFailure, Result};
use blocks::Blocks;
use format::{EndBlock, NamespaceBlock, Record};

/// Payload bytes per records block: pages of large values are cut into several.
const BLOCK_BYTES: usize = 16 << 20;

/// What a backup wrote.
#[derive(Debug, Default)]
pub struct BackupSummary {
    pub started_ms: u64,
    pub finished_ms: u64,
    pub namespaces: u64,
    pub records: u64,
    pub bytes: u64,
    /// Nodes that did not answer the listing of namespaces or keys: what they hold
    /// was taken from other replicas.
    pub failed: Vec<NodeFailure>,
}

/// What a backup file holds, once every block checked out.
#[derive(Debug, Default)]
pub struct BackupInfo {
    pub started_ms: u64,
    pub finished_ms: u64,
    pub namespaces: Vec<NamespaceBlock>,
    pub records: u64,
    pub bytes: u64,
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreSummary {
    pub namespaces: u64,
    pub written: u64,
    /// Keys whose expiry passed since the backup: not written.
    pub expired: u64,
    /// Keys that missed their write quorum.
    pub failed: u64,
    /// Nodes that did not take a namespace's settings.
    pub settings_failed: Vec<NodeFailure>,
    pub secs: f64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn writing(e: std::io::Error) -> Error {
    Error::Input(format!("writing the backup: {e}"))
}

/// Checks every block of a backup without restoring anything: what it holds, or the
/// offset of the first damage (a cut, a flipped bit, a missing end block).
pub fn verify(src: impl Read) -> Result<BackupInfo> {
    let mut b = Blocks::open(src)?;
    let mut info = BackupInfo {
        started_ms: b.started_ms,
        ..Default::default()
    };
    let bad = |offset, reason: String| Error::BadBackup { offset, reason };
    while let Some((at, kind, payload)) = b.next_block()? {
        match kind {
            format::NAMESPACE => {
                let n = format::parse_namespace(&payload).map_err(|r| bad(at, r))?;
                info.namespaces.push(n);
            }
            format::RECORDS if !info.namespaces.is_empty() => {
                let r = format::parse_records(&payload).map_err(|r| bad(at, r))?;
                info.records += r.len() as u64;
            }
            format::END => {
                let e = format::parse_end(&payload).map_err(|r| bad(at, r))?;
                let counted = (info.namespaces.len() as u64, info.records);
                if (e.namespaces, e.records) != counted {
                    let why = format!(
                        "the end block counts {} namespaces and {} keys, the file holds {} and {}",
                        e.namespaces, e.records, counted.0, counted.1
                    );
                    return Err(bad(at, why));
                }
                if b.next_block()?.is_some() {
                    return Err(bad(b.offset, "data past the end block".into()));
                }
                info.finished_ms = e.finished_ms;
                info.bytes = b.offset;
                return Ok(info);
            }
            k => return Err(bad(at, format!("a block of kind {k} here"))),
        }
    }
    Err(bad(b.offset, "cut short: the end block is missing".into()))
}

impl Client {
    /// Writes every namespace of the cluster, settings and keys, to `out`.
    pub async fn backup(&self, out: &mut (dyn Write + Send), page: u32) -> Result<BackupSummary> {
        let mut sum = BackupSummary {
            started_ms: unix_ms(),
            ..Default::default()
        };
        out.write_all(&format::header(sum.started_ms))
            .map_err(writing)?;
        sum.bytes = format::HEADER_LEN as u64;
        for ns in self.namespaces_held(&mut sum.failed).await? {
            let block = format::block(format::NAMESPACE, &format::namespace_payload(&ns));
            out.write_all(&block).map_err(writing)?;
            sum.bytes += block.len() as u64;
            sum.namespaces += 1;
            let (mut records, mut bytes) = (0, 0);
            let dumped = self
                .dump(&ns.name, "*", page, |page| {
                    let now = unix_ms() / 1000;
                    let page: Vec<Record> = page
                        .into_iter()
                        .map(|d| Record {
                            expires_at: match d.ttl_seconds {
                                0 => 0,
                                ttl => now + ttl as u64,
                            },
                            key: d.key,
                            value: d.value,
                            version: d.version,
                        })
                        .collect();
                    records += page.len() as u64;
                    bytes += write_records(out, &page)?;
                    Ok(())
                })
                .await?;
            sum.failed.extend(dumped.failed);
            sum.records += records;
            sum.bytes += bytes;
        }
        sum.finished_ms = unix_ms();
        let end = EndBlock {
            namespaces: sum.namespaces,
            records: sum.records,
            finished_ms: sum.finished_ms,
        };
        let block = format::block(format::END, &format::end_payload(&end));
        out.write_all(&block).map_err(writing)?;
        sum.bytes += block.len() as u64;
        Ok(sum)
    }

    /// Every namespace some node holds, with the newest settings any node holds for it
    /// (a node that missed an `ns set` holds older ones).
    async fn namespaces_held(&self, failed: &mut Vec<NodeFailure>) -> Result<Vec<NamespaceBlock>> {
        let mut all: std::collections::BTreeMap<String, (u64, NamespaceBlock)> = Default::default();
        let mut down = Vec::new();
        for n in self.status().await {
            match n.status {
                Ok(s) => {
                    for x in s.namespaces {
                        let held = all.get(&x.name).map(|(at, _)| *at);
                        if held.is_some_and(|at| at >= x.settings_changed_at) {
                            continue;
                        }
                        let block = NamespaceBlock {
                            name: x.name.clone(),
                            count_retention: x.retention_seconds,
                            max_bytes: x.max_bytes,
                            default_ttl: x.default_ttl_seconds,
                        };
                        all.insert(x.name, (x.settings_changed_at, block));
                    }
                }
                Err(s) => down.push(NodeFailure {
                    node: n.id,
                    code: s.code(),
                    message: s.message().to_string(),
                }),
            }
        }
        if down.len() >= self.view().r {
            return Err(Error::Unavailable { failures: down });
        }
        failed.extend(down);
        Ok(all.into_values().map(|(_, b)| b).collect())
    }
}

/// Writes `page` as records blocks of at most about [`BLOCK_BYTES`]; the bytes written.
fn write_records(out: &mut (dyn Write + Send), page: &[Record]) -> Result<u64> {
    let mut written = 0;
    let mut start = 0;
    while start < page.len() {
        let mut end = start;
        let mut size = 0;
        while end < page.len() && (end == start || size < BLOCK_BYTES) {
            size += page[end].key.len() + page[end].value.len() + 32;
            end += 1;
        }
        let block = format::block(format::RECORDS, &format::records_payload(&page[start..end]));
        out.write_all(&block).map_err(writing)?;
        written += block.len() as u64;
        start = end;
    }
    Ok(written)
}
