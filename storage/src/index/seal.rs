//! Page checksums of the index.
//!
//! Each 4 KiB page of slots (256 slots, 512 words) has one 64-bit checksum in the
//! file's tail: the XOR over its words of `item(position, word)`, where `item` is a
//! bijection of the word for each position and maps 0 to 0. A freshly zeroed table
//! therefore checks, a word write updates its page's checksum from the old and new
//! word alone, and any change to one word (or to the checksum) makes the page fail.
//!
//! A checksum and its page are written by separate stores, so a crash can leave them
//! apart: open decides what a failing page means (see `keyspace::index_check`).

/// Slots per checksummed page.
pub const SLOTS_PER_PAGE: usize = 256;

#[inline]
fn fmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[inline]
fn salt(pos: usize) -> u64 {
    (pos as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A word's share of its page checksum; `pos` is the word's number in the table.
#[inline]
pub fn item(pos: usize, word: u64) -> u64 {
    if word == 0 {
        return 0;
    }
    let s = salt(pos);
    fmix(word ^ s) ^ fmix(s)
}

/// What changing the word at `pos` from `old` to `new` does to its page checksum.
#[inline]
pub fn delta(pos: usize, old: u64, new: u64) -> u64 {
    let s = salt(pos);
    fmix(old ^ s) ^ fmix(new ^ s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_moves_a_checksum_from_old_word_to_new() {
        for (pos, old, new) in [(0, 0, 5), (7, 5, 0), (511, 1 << 63, 3), (3, 9, 9)] {
            assert_eq!(item(pos, old) ^ delta(pos, old, new), item(pos, new));
        }
    }

    #[test]
    fn every_single_bit_flip_changes_an_item() {
        for pos in [0usize, 1, 255, 4096] {
            for word in [0u64, 1, 0xdead_beef, u64::MAX] {
                for bit in 0..64 {
                    assert_ne!(item(pos, word), item(pos, word ^ (1 << bit)));
                }
            }
        }
    }
}
