//! Listing the keys with a live count: each generation newest first, a slice of the
//! hash space at a time. A key is reported from its newest copy only, so it appears
//! once without the lister remembering what it sent.

use std::sync::Arc;

use super::Counts;
use crate::error::Result;
use crate::glob::Glob;

const CHUNK_SLOTS: u64 = 4096;
const END: u128 = 1 << 64;

pub struct CounterLister {
    counts: Arc<Counts>,
    glob: Glob,
    /// The generation being walked; None before the first.
    gen: Option<u64>,
    next: u128,
}

impl Counts {
    pub fn lister(self: &Arc<Self>, glob: Glob) -> CounterLister {
        CounterLister {
            counts: self.clone(),
            glob,
            gen: None,
            next: 0,
        }
    }
}

impl CounterLister {
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        let now = self.counts.now();
        loop {
            let st = self.counts.state.read();
            let current = match self.gen {
                None => st.gens.keys().next_back().copied(),
                Some(g) if self.next >= END => st.gens.range(..g).next_back().map(|(&k, _)| k),
                Some(g) => Some(g),
            };
            let Some(g) = current else { return Ok(None) };
            if self.gen != Some(g) {
                (self.gen, self.next) = (Some(g), 0);
            }
            let Some(t) = st.gens.get(&g) else {
                // Expired meanwhile: on to older generations.
                self.next = END;
                continue;
            };
            let hi = (self.next + t.hash_span(CHUNK_SLOTS)).min(END);
            let mut keys = Vec::new();
            t.scan_range(self.next as u64, hi, |slot, hash, key| {
                let (c, ok) = t.read(slot);
                let live = ok && st.schedule.count(&c.cells, c.last, now, st.retention) > 0;
                let newer = || {
                    st.gens
                        .range(g + 1..)
                        .any(|(_, n)| n.find(hash, key).is_some())
                };
                if live && !key.is_empty() && self.glob.matches(key) && !newer() {
                    keys.push(key.to_vec());
                }
            });
            self.next = hi;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
    }
}
