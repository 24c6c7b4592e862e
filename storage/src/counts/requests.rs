//! The request ids a namespace's counts have applied, so that a batch resent with the
//! same id (a retry after a lost answer) is answered without counting again. An id is
//! kept for the dedup horizon: the retention, at most [`MAX_HORIZON`] seconds. Ids live
//! in the count log and are copied into each new log file, so they outlive checkpoints.

use std::collections::{HashMap, VecDeque};

/// Longest a request id is remembered, in seconds: a retry comes within the client's
/// deadline, far sooner; a day's worth of ids at thousands of batches a second would
/// not fit in memory.
pub const MAX_HORIZON: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// A hash of the batch: the same id with other contents is refused.
    pub fingerprint: u64,
    /// The batch's second.
    pub at: u64,
    /// The group-commit ticket that makes it durable (0: already durable).
    pub ticket: u64,
}

#[derive(Debug, Default)]
pub(super) struct Requests {
    map: HashMap<String, Seen>,
    /// Ids in the order they came, to expire the oldest first.
    order: VecDeque<(u64, String)>,
}

impl Requests {
    pub fn get(&self, id: &str) -> Option<Seen> {
        self.map.get(id).copied()
    }

    pub fn insert(&mut self, id: &str, seen: Seen) {
        if self.map.insert(id.to_string(), seen).is_none() {
            self.order.push_back((seen.at, id.to_string()));
        }
    }

    /// Forgets the ids of batches before second `oldest`.
    pub fn expire(&mut self, oldest: u64) {
        while let Some((at, _)) = self.order.front() {
            if *at >= oldest {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.map.remove(&id);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Seen)> + '_ {
        self.map.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// How long ids are kept for a retention.
pub fn horizon(retention: u32) -> u64 {
    (retention as u64).min(MAX_HORIZON)
}

/// The fingerprint of a batch of adds.
pub fn fingerprint(items: &[(&[u8], u32)], at: u64) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&at.to_le_bytes());
    for (key, n) in items {
        h.update(&(key.len() as u32).to_le_bytes());
        h.update(key);
        h.update(&n.to_le_bytes());
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_expire_oldest_first_and_fingerprints_tell_batches_apart() {
        let mut r = Requests::default();
        let seen = |at| Seen {
            fingerprint: 1,
            at,
            ticket: 0,
        };
        r.insert("a", seen(10));
        r.insert("b", seen(20));
        r.expire(15);
        assert_eq!(r.get("a"), None);
        assert_eq!(r.get("b"), Some(seen(20)));
        let one: &[(&[u8], u32)] = &[(b"k", 1)];
        let two: &[(&[u8], u32)] = &[(b"k", 2)];
        assert_ne!(fingerprint(one, 5), fingerprint(two, 5));
        assert_ne!(fingerprint(one, 5), fingerprint(one, 6));
        assert_eq!(fingerprint(one, 5), fingerprint(one, 5));
    }
}
