//! Expiring counts, one record per key (issue #17, being built; `counters/` serves
//! counts until this replaces it).
//!
//! - [`schedule`]: the tiers of cells one key keeps, and what a count over a window
//!   returns.

pub mod schedule;
