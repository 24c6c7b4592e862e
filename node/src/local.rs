//! Reads of this node's own store for a front end in the same process (the Redis front
//! end): what a peer's `Lookup` here would answer, without the network. Like a
//! request, it is answered only for a caller routing by the layout epoch this node
//! holds (the fence), and only once the store is open.

use std::sync::Arc;

use dstash_storage::Lookup;

use crate::layout::LayoutCell;
use crate::slot::StoreSlot;

#[derive(Clone)]
pub struct LocalReads {
    slot: StoreSlot,
    layout: Arc<LayoutCell>,
}

impl LocalReads {
    pub(crate) fn new(slot: StoreSlot, layout: Arc<LayoutCell>) -> Self {
        Self { slot, layout }
    }

    /// Per key, what this node holds; None when `epoch` is not the node's layout
    /// epoch, the store is not open, or the keys are refused (the caller then asks the
    /// cluster, and gets the error from there). Blocking: call it off the async
    /// threads.
    pub fn lookup(&self, epoch: u64, ns: &str, keys: &[&[u8]]) -> Option<Vec<Lookup>> {
        if self.layout.epoch() != epoch {
            return None;
        }
        let store = self.slot.get().ok()?;
        store.lookup_each(ns, keys).ok()
    }
}
