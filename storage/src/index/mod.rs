//! The on-disk hash index: an mmap'd open-addressing table from a key's 64-bit hash
//! to the location of its newest record.
//!
//! One file per generation, `index-<gen>.idx`: a 4 KiB header page, then `1 << bits`
//! slots of 16 bytes, then one checksum word per 256 slots (`seal`). A slot is `[hash u64 LE][loc u64 LE]`; loc 0 is empty,
//! `u64::MAX` a freed slot, and bit 63 of any other loc marks a delete record. A key's home slot is the top `bits` bits of its hash and
//! collisions probe linearly, so the table is ordered by hash up to probe runs; listing
//! walks it by hash range, which stays correct across a resize.
//!
//! Crash invariant: every change writes one slot, and never turns a used slot empty,
//! so any mix of old and new slots still lets every probe run reach its keys. Replaying
//! the log from the checkpoint then repairs every slot the crash could have left stale.

pub(crate) mod probe;
mod seal;
mod table;

pub use seal::SLOTS_PER_PAGE;
pub use table::file_name;
pub use table::parse_name as parse_name_pub;
pub use table::{Entry, Index, Loc, PageCheck, MIN_BITS, PAGE};
