//! Restoring a checked backup: each namespace's settings on every node (its default
//! TTL last, so that restored keys keep their own expiry), then its keys at their
//! backed-up versions, in batches of [`CHUNK`] keys across records blocks with
//! [`IN_FLIGHT`] batches out, as `load` sends them.

use std::io::Read;
use std::time::Instant;

use dstash_proto::v1::NamespaceSettings;
use tokio::task::JoinSet;

use super::blocks::Blocks;
use super::format::{self, Record};
use super::{unix_ms, RestoreSummary};
use crate::batch::{LoadReport, PutItem};
use crate::client::Client;
use crate::error::{Error, NodeFailure, Result};

const CHUNK: usize = 50_000;
const IN_FLIGHT: usize = 2;

/// One namespace's keys on their way: those not sent yet, and the batches out.
struct Sending {
    ns: String,
    pending: Vec<Record>,
    out: JoinSet<Result<LoadReport>>,
}

impl Client {
    /// Restores a backup that [`super::verify`] passed.
    pub async fn restore(&self, src: impl Read) -> Result<RestoreSummary> {
        let started = Instant::now();
        let mut b = Blocks::open(src)?;
        let mut sum = RestoreSummary::default();
        let mut sending: Option<Sending> = None;
        let mut default_ttls = Vec::new();
        while let Some((at, kind, payload)) = b.next_block()? {
            let bad = |reason| Error::BadBackup { offset: at, reason };
            match kind {
                format::NAMESPACE => {
                    let ns = format::parse_namespace(&payload).map_err(bad)?;
                    if let Some(s) = sending.take() {
                        self.finish(s, &mut sum).await?;
                    }
                    let req = NamespaceSettings {
                        namespace: ns.name.clone(),
                        count_retention_seconds: ns.count_retention,
                        max_bytes: Some(ns.max_bytes),
                        ..Default::default()
                    };
                    self.settle_settings(req, &mut sum).await?;
                    default_ttls.push((ns.name.clone(), ns.default_ttl));
                    sum.namespaces += 1;
                    sending = Some(Sending {
                        ns: ns.name,
                        pending: Vec::new(),
                        out: JoinSet::new(),
                    });
                }
                format::RECORDS => {
                    let records = format::parse_records(&payload).map_err(bad)?;
                    let s = sending
                        .as_mut()
                        .ok_or_else(|| bad("keys before a namespace".into()))?;
                    self.add_records(s, records, &mut sum).await?;
                }
                _ => break,
            }
        }
        if let Some(s) = sending.take() {
            self.finish(s, &mut sum).await?;
        }
        for (ns, ttl) in default_ttls.into_iter().filter(|(_, t)| *t != 0) {
            let req = NamespaceSettings {
                namespace: ns,
                default_ttl_seconds: Some(ttl),
                ..Default::default()
            };
            self.settle_settings(req, &mut sum).await?;
        }
        sum.secs = started.elapsed().as_secs_f64();
        Ok(sum)
    }

    async fn settle_settings(
        &self,
        req: NamespaceSettings,
        sum: &mut RestoreSummary,
    ) -> Result<()> {
        for n in self.set_namespace(req).await {
            if let Err(s) = n.settings {
                let f = NodeFailure {
                    node: n.id,
                    code: s.code(),
                    message: s.message().to_string(),
                };
                if let Some(e) = crate::error::refused(&f) {
                    return Err(e);
                }
                sum.settings_failed.push(f);
            }
        }
        Ok(())
    }

    /// Queues a block's live keys and sends every full batch.
    async fn add_records(
        &self,
        s: &mut Sending,
        records: Vec<Record>,
        sum: &mut RestoreSummary,
    ) -> Result<()> {
        let now = unix_ms() / 1000;
        let (total, before) = (records.len(), s.pending.len());
        s.pending.extend(
            records
                .into_iter()
                .filter(|r| r.expires_at == 0 || r.expires_at > now),
        );
        sum.expired += (total - (s.pending.len() - before)) as u64;
        while s.pending.len() >= CHUNK {
            let batch: Vec<Record> = s.pending.drain(..CHUNK).collect();
            self.send(s, batch, now, sum).await?;
        }
        Ok(())
    }

    /// Sends `batch`, first waiting for the oldest batch out when [`IN_FLIGHT`] are.
    async fn send(
        &self,
        s: &mut Sending,
        batch: Vec<Record>,
        now: u64,
        sum: &mut RestoreSummary,
    ) -> Result<()> {
        while s.out.len() >= IN_FLIGHT {
            settle(s.out.join_next().await, sum)?;
        }
        let items: Vec<PutItem> = batch
            .iter()
            .map(|r| PutItem {
                key: r.key.clone(),
                value: r.value.clone(),
                ttl_seconds: match r.expires_at {
                    0 => 0,
                    at => u32::try_from(at.saturating_sub(now).max(1)).unwrap_or(u32::MAX),
                },
            })
            .collect();
        let versions: Vec<_> = batch.iter().map(|r| r.version).collect();
        let (c, ns) = (self.clone(), s.ns.clone());
        s.out
            .spawn(async move { c.put_many_at(&ns, &items, &versions).await });
        Ok(())
    }

    /// Sends what is queued and waits for every batch out.
    async fn finish(&self, mut s: Sending, sum: &mut RestoreSummary) -> Result<()> {
        let rest = std::mem::take(&mut s.pending);
        if !rest.is_empty() {
            self.send(&mut s, rest, unix_ms() / 1000, sum).await?;
        }
        while let Some(done) = s.out.join_next().await {
            settle(Some(done), sum)?;
        }
        Ok(())
    }
}

fn settle(
    joined: Option<std::result::Result<Result<LoadReport>, tokio::task::JoinError>>,
    sum: &mut RestoreSummary,
) -> Result<()> {
    let Some(joined) = joined else { return Ok(()) };
    let report = joined.map_err(|e| Error::Input(format!("a restore batch failed: {e}")))??;
    sum.written += report.written;
    sum.failed += report.failed.len() as u64;
    Ok(())
}
