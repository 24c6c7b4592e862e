//! Counts moving between replicas: a handoff reads the live cells of the partitions a
//! node gains from an old owner and merges them on the new owner. Merging raises each
//! cell to at least the value sent, never adds: the same cells merged twice, or from
//! two old owners that both counted an event, count it once. A count after a merge is
//! at least what either side held, and never more than was added.
//!
//! Forgetting zeroes the cells of keys in partitions a node no longer owns, then
//! checkpoints, so no replay brings them back.

use std::sync::Arc;

use dstash_cluster::partition::partition_of;

use super::schedule::CellImage;
use super::state::Batch;
use super::Counts;
use crate::error::Result;
use crate::hash::key_hash;

/// One key's live cells, each named by its resolution and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCells {
    pub key: Vec<u8>,
    pub cells: Vec<CellImage>,
}

impl Counts {
    /// The live cells (nonzero, within the retention) of every key whose hash is in
    /// `[lo, hi)` and whose partition `pick` is true for, from each key's newest copy.
    /// The hash is the same in every generation, so hash ranges cut keys into chunks.
    pub fn cells(&self, pick: &dyn Fn(u32) -> bool, lo: u64, hi: u128) -> Vec<CounterCells> {
        let now = self.now();
        let st = self.state.read();
        let oldest = (now + 1).saturating_sub(st.retention as u64);
        let mut out = Vec::new();
        for (&g, t) in st.gens.iter().rev() {
            t.scan_range(lo, hi, |slot, hash, key| {
                if key.is_empty() || !pick(partition_of(key)) {
                    return;
                }
                if st
                    .gens
                    .range(g + 1..)
                    .any(|(_, n)| n.find(hash, key).is_some())
                {
                    return;
                }
                let (c, ok) = t.read(slot);
                let cells: Vec<CellImage> = match ok {
                    true => st.schedule.images(&c.cells, c.last),
                    false => Vec::new(),
                }
                .into_iter()
                .filter(|im| live(im, oldest, now))
                .collect();
                if !cells.is_empty() {
                    out.push(CounterCells {
                        key: key.to_vec(),
                        cells,
                    });
                }
            });
        }
        out
    }

    /// Raises each key's cells to at least the values given. Cells outside the
    /// retention, ahead of the clock, or of a resolution this namespace does not keep
    /// are skipped. Durable under `Always` before it returns; returns the cells merged.
    pub fn merge(&self, items: &[CounterCells]) -> Result<u64> {
        let now = self.now();
        let mut merged = 0;
        let ticket = {
            let mut st = self.state.write();
            st.usable(&self.ns)?;
            let oldest = (now + 1).saturating_sub(st.retention as u64);
            let mut batch = Batch::new();
            for item in items {
                let hash = key_hash(self.seed, &item.key);
                merged += batch.update(&mut st, hash, &item.key, |s, ks, images| {
                    let cells = item.cells.iter().filter(|im| live(im, oldest, now));
                    cells
                        .filter(|&&im| s.raise(&mut ks.cells, &mut ks.last, im, images))
                        .count() as u64
                });
            }
            batch.commit(&mut st)?
        };
        self.durable(ticket)?;
        Ok(merged)
    }

    /// Zeroes the cells of every key in a partition `drop` is true for, then
    /// checkpoints; returns how many slots were zeroed.
    pub fn forget(self: &Arc<Self>, drop: &dyn Fn(u32) -> bool) -> Result<u64> {
        let mut zeroed = 0;
        {
            let mut st = self.state.write();
            st.usable(&self.ns)?;
            for t in st.gens.values_mut() {
                let mut slots = Vec::new();
                t.scan_range(0, 1 << 64, |slot, _, key| {
                    if !key.is_empty() && drop(partition_of(key)) {
                        slots.push(slot);
                    }
                });
                for slot in slots {
                    let (c, _) = t.read(slot);
                    if c.cells.iter().any(|&v| v > 0) {
                        t.zero(slot);
                        zeroed += 1;
                    }
                }
            }
        }
        self.checkpoint()?;
        Ok(zeroed)
    }
}

/// A cell holding some second within `[oldest, now]`.
fn live(im: &CellImage, oldest: u64, now: u64) -> bool {
    let start = im.period.saturating_mul(im.res as u64);
    let end = start.saturating_add(im.res as u64);
    end > oldest && start <= now && im.value > 0
}
