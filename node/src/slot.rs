//! The store as the service sees it: absent while recovery runs, present while serving,
//! and taken back at shutdown so that it can be closed cleanly.

use std::sync::{Arc, RwLock};

use dstash_storage::Store;
use tonic::Status;

enum State {
    Recovering,
    Open(Arc<Store>),
    Closed,
}

/// Shared by every handler. Requests arriving while there is no store get `UNAVAILABLE`,
/// which clients treat as "try another replica".
#[derive(Clone)]
pub struct StoreSlot(Arc<RwLock<State>>);

impl std::fmt::Debug for StoreSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSlot")
    }
}

impl Default for StoreSlot {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(State::Recovering)))
    }
}

impl StoreSlot {
    pub fn open(store: Arc<Store>) -> Self {
        let slot = Self::default();
        slot.fill(store);
        slot
    }

    /// Recovery is done: start serving from `store`.
    pub fn fill(&self, store: Arc<Store>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = State::Open(store);
    }

    pub fn get(&self) -> Result<Arc<Store>, Status> {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            State::Open(s) => Ok(s.clone()),
            State::Recovering => Err(Status::unavailable(
                "the node is recovering its store; retry shortly or ask another replica",
            )),
            State::Closed => Err(Status::unavailable("the node is shutting down")),
        }
    }

    /// Stops handing out the store and returns it; requests from now on get `UNAVAILABLE`.
    pub fn take(&self) -> Option<Arc<Store>> {
        let mut state = self.0.write().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, State::Closed) {
            State::Open(s) => Some(s),
            _ => None,
        }
    }
}
