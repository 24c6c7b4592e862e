//! What node, client and engine must agree on, with no I/O of its own:
//!
//! - [`version`]: the order of writes to one key, from a hybrid logical clock and a
//!   writer id. The engine keeps the newest; replicas converge on it.
//! - [`partition`]: keys cut into fixed partitions and digest leaves, and the digest
//!   item of a (key, version) that anti-entropy compares.
//! - [`placement`]: which nodes hold a partition (weighted rendezvous hashing over node
//!   ids, spread over zones).
//! - [`layout`]: the member set an operator applied, the stages of a transition from the
//!   previous one, and its durable form.

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod layout;
pub mod partition;
pub mod placement;
pub mod version;

pub use layout::{Layout, LayoutError, LayoutMember, Stage};
pub use partition::{digest_item, partition_of, PARTITIONS};
pub use placement::{Member, Placement};
pub use version::{Hlc, Version};
