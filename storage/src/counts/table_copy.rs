//! Whole-table copies: a table grown to twice the entries, and a table converted to
//! another retention's schedule. Each is written beside the original, synced and
//! renamed over it, so a crash leaves one or the other whole.

use std::path::Path;

use super::{Table, HEAP_END_AT, LIVE_AT};
use crate::error::{IoContext, Result};
use crate::index::probe::ProbeTable;
use crate::index::probe::Slot;

impl Table {
    /// A copy with twice the entries, written beside this file, synced and renamed over
    /// it. The heap is copied as it is, crcs included, so damage stays visible; entries
    /// are placed again from their hash bits, and dead ones dropped.
    pub fn grown(&self) -> Result<Table> {
        let tmp = self.path.with_extension("grow");
        let mut next = Table::create(
            &tmp,
            self.start,
            self.span,
            self.retention,
            self.bits + 1,
            self.seed,
            self.io.clone(),
        )?;
        let len = self.heap_end() - self.heap_at;
        next.reserve_heap(next.heap_at + len)?;
        let (from, to) = (self.heap_at as usize, next.heap_at as usize);
        next.map[to..to + len as usize].copy_from_slice(&self.map[from..from + len as usize]);
        next.set_u64(HEAP_END_AT, next.heap_at + len);
        let mut live = 0;
        for i in (0..=self.mask()).filter(|&i| self.record(i).is_some()) {
            let e = self.entry(i);
            let mut j = next.home(e >> 32 << 32);
            while next.entry(j) != 0 {
                j = (j + 1) & next.mask();
            }
            next.set_u64(Self::entry_at(j), e);
            live += 1;
        }
        next.set_u64(LIVE_AT, live);
        next.renamed_over_original(self)
    }

    /// A copy kept by `retention`'s schedule (see [`Schedule::convert`]), written beside
    /// this file, synced and renamed over it. A record whose crc fails goes over zeroed.
    pub fn converted(&self, retention: u32) -> Result<Table> {
        let tmp = self.path.with_extension("grow");
        let mut next = Table::create(
            &tmp,
            self.start,
            self.span,
            retention,
            self.bits,
            self.seed,
            self.io.clone(),
        )?;
        for i in 0..=self.mask() {
            if let Slot::Live(h) = self.slot(i) {
                let (c, ok) = self.read(i);
                let cells = match ok {
                    true => self.schedule.convert(&c.cells, c.last, &next.schedule),
                    false => vec![0; next.schedule.len()],
                };
                next.insert(h, self.key(i), c.last, &cells)?;
            }
        }
        next.renamed_over_original(self)
    }

    fn renamed_over_original(mut self, original: &Table) -> Result<Table> {
        self.sync()?;
        std::fs::rename(&self.path, &original.path).at(&original.path)?;
        crate::fsutil::sync_dir(original.path.parent().unwrap_or(Path::new(".")))?;
        self.path = original.path.clone();
        Ok(self)
    }
}
