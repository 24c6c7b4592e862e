//! A hint's key in the hint store: `owner length (1 byte) | owner id | version ts
//! (8 bytes BE) | version writer (8 bytes BE) | key`. The version is part of the key, so
//! every hinted write is a record of its own and no later write can replace one that
//! is still being handed over; the replica keeps the newest of them by version.
//!
//! A hint's value is one kind byte (put or delete) and, for a put, the value; the
//! record keeps the write's TTL, so a hint expires with the value it carries.

use dstash_storage::Version;

pub const PUT: u8 = 0;
pub const DELETE: u8 = 1;

/// The longest owner id a hint can name.
pub const MAX_OWNER_LEN: usize = u8::MAX as usize;

/// A hint key, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintKey<'a> {
    pub owner: &'a str,
    pub version: Version,
    pub key: &'a [u8],
}

impl<'a> HintKey<'a> {
    /// The encoded key; None when the owner id is empty or longer than
    /// [`MAX_OWNER_LEN`].
    pub fn encode(&self) -> Option<Vec<u8>> {
        let owner = self.owner.as_bytes();
        if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
            return None;
        }
        let mut k = Vec::with_capacity(1 + owner.len() + 16 + self.key.len());
        k.push(owner.len() as u8);
        k.extend_from_slice(owner);
        k.extend_from_slice(&self.version.ts.to_be_bytes());
        k.extend_from_slice(&self.version.writer.to_be_bytes());
        k.extend_from_slice(self.key);
        Some(k)
    }

    /// None for bytes that are not a hint key (the hint is then dropped, not sent).
    pub fn decode(b: &'a [u8]) -> Option<Self> {
        let (&n, rest) = b.split_first()?;
        let n = n as usize;
        if n == 0 || rest.len() < n + 16 {
            return None;
        }
        let owner = std::str::from_utf8(&rest[..n]).ok()?;
        let be = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&rest[at..at + 8]);
            u64::from_be_bytes(w)
        };
        Some(HintKey {
            owner,
            version: Version::new(be(n), be(n + 8)),
            key: &rest[n + 16..],
        })
    }
}

/// The version a delivered hint is deleted at: the next one after its own, so the
/// tombstone supersedes it (equal versions do not). Nothing else is ever written
/// under the hint's key, whose version is part of it.
pub fn after(v: Version) -> Version {
    match v.writer.checked_add(1) {
        Some(w) => Version::new(v.ts, w),
        None => Version::new(v.ts.saturating_add(1), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_keys_round_trip_and_bad_bytes_are_refused() {
        let h = HintKey {
            owner: "n2",
            version: Version::new(7 << 16, 99),
            key: b"user:1",
        };
        let b = h.encode().unwrap();
        assert_eq!(HintKey::decode(&b), Some(h.clone()));
        for bad in [&b[..0], &b[..1], &b[..3 + 15], &[0u8, 1, 2][..]] {
            assert_eq!(HintKey::decode(bad), None, "{bad:?}");
        }
        let long = "x".repeat(MAX_OWNER_LEN + 1);
        assert_eq!(
            HintKey {
                owner: &long,
                ..h.clone()
            }
            .encode(),
            None
        );
        assert_eq!(HintKey { owner: "", ..h }.encode(), None);
    }

    #[test]
    fn the_delete_version_comes_right_after_the_hint() {
        let v = Version::new(5, 9);
        assert!(after(v) > v);
        assert_eq!(after(v), Version::new(5, 10));
        let top = Version::new(5, u64::MAX);
        assert!(after(top) > top);
    }
}
