//! Request ids for adds: a node that has applied an id answers a resend of it without
//! counting again, so adds can be retried like puts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use dstash_proto::Bytes;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A new id, unique to this process and call: 128 random bits and a counter.
pub(crate) fn new() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{a:016x}{:016x}-{}",
        h.finish(),
        NEXT.load(Ordering::Relaxed)
    )
}

/// The id of message `index` of a batch call `base` sends a node: the same while the
/// message's keys are the same, so sending it again after a lost answer, or in a retry
/// of the whole call that splits the keys the same way, counts once.
pub(crate) fn for_message(base: &str, index: usize, keys: &[Bytes]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for k in keys {
        h.update(&(k.len() as u32).to_le_bytes());
        h.update(k);
    }
    format!("{base}/{index}/{:016x}", h.digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_per_call_and_follow_a_message_s_keys() {
        assert_ne!(new(), new());
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        let m = for_message("x", 0, &[a.clone(), b.clone()]);
        assert_eq!(m, for_message("x", 0, &[a.clone(), b.clone()]));
        assert_ne!(m, for_message("x", 0, &[b.clone(), a.clone()]));
        assert_ne!(m, for_message("x", 1, &[a.clone(), b.clone()]));
        assert!(m.len() <= 255);
    }
}
