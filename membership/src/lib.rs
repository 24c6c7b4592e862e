//! dstash's membership through Consul.
//!
//! - [`consul`]: a thin typed client of the agent's HTTP API (register, deregister,
//!   check pass/fail, blocking health queries).
//! - [`registration`]: the node keeps itself registered with a TTL check it passes
//!   only while serving.
//! - [`watch`]: clients follow the passing set with blocking queries, damped.
//! - `double` (feature `test-util`): an in-process Consul double that follows the
//!   documented API, for tests.

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod consul;
#[cfg(feature = "test-util")]
pub mod double;
pub mod registration;
pub mod watch;

pub use consul::{Consul, Error, Instance, Registration};
#[cfg(feature = "test-util")]
pub use double::ConsulDouble;
pub use registration::keep_registered;
pub use watch::{spawn as watch, WatchOptions};
