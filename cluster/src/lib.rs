//! What node, client and engine must agree on, with no I/O of its own:
//!
//! - [`version`]: the order of writes to one key, from a hybrid logical clock and a
//!   writer id. The engine keeps the newest; replicas converge on it.
//! - [`placement`]: which nodes hold a key (weighted rendezvous hashing over node ids).

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod placement;
pub mod version;

pub use placement::{Member, Placement};
pub use version::{Hlc, Version};
