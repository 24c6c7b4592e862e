//! The key space cut into fixed partitions, and each partition into digest leaves.
//!
//! A key's *point* is a fixed, unseeded 64-bit hash: the same in every process. Its top
//! [`PARTITION_BITS`] bits name the partition (the unit placement assigns to nodes and
//! that anti-entropy compares), its top [`LEAF_BITS`] bits the digest leaf, so the leaves
//! of one partition are a contiguous run. Both are part of the on-disk and wire contract.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::Version;

pub const PARTITION_BITS: u32 = 10;
pub const PARTITIONS: u32 = 1 << PARTITION_BITS;
pub const LEAF_BITS: u32 = 16;
pub const LEAVES: u32 = 1 << LEAF_BITS;
/// Digest leaves in one partition.
pub const LEAVES_PER_PARTITION: u32 = 1 << (LEAF_BITS - PARTITION_BITS);

const POINT_SEED: u64 = 0x6473_7461_7368_2d70; // "dstash-p"

/// The key's fixed position on the hash ring.
#[inline]
pub fn point(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, POINT_SEED)
}

#[inline]
pub fn partition_of(key: &[u8]) -> u32 {
    (point(key) >> (64 - PARTITION_BITS)) as u32
}

#[inline]
pub fn leaf_of_point(point: u64) -> u32 {
    (point >> (64 - LEAF_BITS)) as u32
}

/// The first leaf of `partition`; its leaves are `first..first + LEAVES_PER_PARTITION`.
#[inline]
pub fn first_leaf(partition: u32) -> u32 {
    partition << (LEAF_BITS - PARTITION_BITS)
}

/// The partition a leaf belongs to.
#[inline]
pub fn partition_of_leaf(leaf: u32) -> u32 {
    leaf >> (LEAF_BITS - PARTITION_BITS)
}

/// A record's digest item: its leaf and a 64-bit hash of (key, version). A leaf's digest
/// is the XOR of its items, so a write updates it from the old and new version alone,
/// and two replicas' leaves are equal when they hold the same versions of the same keys.
#[inline]
pub fn digest_item(key: &[u8], version: Version) -> (u32, u64) {
    let p = point(key);
    let mut x = p ^ version.ts.rotate_left(17) ^ version.writer.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: nearby versions give unrelated items.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (leaf_of_point(p), x ^ (x >> 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_of_a_partition_are_its_own() {
        for k in 0..2000u32 {
            let key = k.to_le_bytes();
            let (leaf, _) = digest_item(&key, Version { ts: 1, writer: 2 });
            let p = partition_of(&key);
            assert_eq!(partition_of_leaf(leaf), p);
            assert!((first_leaf(p)..first_leaf(p) + LEAVES_PER_PARTITION).contains(&leaf));
        }
    }

    #[test]
    fn the_item_depends_on_the_version() {
        let a = digest_item(b"k", Version { ts: 1, writer: 1 });
        let b = digest_item(b"k", Version { ts: 2, writer: 1 });
        let c = digest_item(b"k", Version { ts: 1, writer: 2 });
        assert_eq!(a.0, b.0);
        assert!(a.1 != b.1 && a.1 != c.1 && b.1 != c.1);
    }
}
