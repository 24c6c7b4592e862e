//! One connection's state, and what every connection shares.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dstash_client::Client;

use crate::batcher::{Batcher, Local};

/// What every connection of a listener shares.
pub struct Shared {
    /// Routes each key to its owners: placement, R and W, failover, layouts.
    pub client: Client,
    /// Every connection's GETs and plain SETs, gathered into batches.
    pub batcher: Batcher,
    /// The token `AUTH` must present; None: no authentication.
    pub token: Option<String>,
    /// The namespace a connection starts in.
    pub namespace: String,
    /// The longest argument a command may carry (the node's value limit and a margin).
    pub max_bulk: usize,
    /// The node's value limit.
    pub max_value: usize,
    next_id: AtomicU64,
    connections: AtomicI64,
    /// True once the server stops: connections close after answering what they read.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// `max_value` is the node's value limit; arguments may be 64 KiB longer. With
    /// `local`, keys this node is the first replica of are read from its own store.
    pub fn new(
        client: Client,
        token: Option<String>,
        namespace: String,
        max_value: usize,
        local: Option<Local>,
    ) -> Self {
        Self {
            batcher: Batcher::start(client.clone(), local),
            client,
            token,
            namespace,
            max_bulk: max_value + 64 * 1024,
            max_value,
            next_id: AtomicU64::new(1),
            connections: AtomicI64::new(0),
            stop: tokio::sync::watch::channel(false).0,
        }
    }

    /// Tells every connection to close once it has answered what it read.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub fn connected(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// One connection.
pub struct Session {
    pub id: u64,
    pub ns: String,
    /// 2 or 3, from `HELLO`.
    pub proto: u8,
    pub authed: bool,
    pub name: Option<bytes::Bytes>,
}

impl Session {
    pub fn new(shared: &Shared) -> Self {
        Self {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            ns: shared.namespace.clone(),
            proto: 2,
            authed: shared.token.is_none(),
            name: None,
        }
    }
}
