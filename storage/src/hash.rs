//! The 64-bit key hash. Seeded per keyspace so crafted keys cannot pile into one probe run.

/// Hash of `key` under `seed`. Never 0: 0 marks an empty counter slot.
#[inline]
pub fn key_hash(seed: u64, key: &[u8]) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(key, seed);
    if h == 0 {
        1
    } else {
        h
    }
}

/// A fresh random seed for a new keyspace, without pulling in an RNG crate.
pub fn random_seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
