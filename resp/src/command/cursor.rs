//! SCAN's cursor: where a paged listing goes on, as the unsigned 64-bit integer Redis
//! clients pass back. The top 8 bits name the node (the n-th in id order), the low 56
//! the node's listing position divided by 256. Rounding a position down may list a few
//! keys again, which SCAN allows; 0 starts a walk and ends one.

use dstash_client::ScanAt;

const NODE_SHIFT: u32 = 56;
const POSITION_SHIFT: u32 = 8;

/// The cursor for `at` (None: the walk is done, 0).
pub fn encode(at: Option<ScanAt>) -> u64 {
    match at {
        None => 0,
        Some(at) => {
            let node = (at.node as u64).min(255) << NODE_SHIFT;
            node | (at.from >> POSITION_SHIFT)
        }
    }
}

/// Where `cursor` says to go on; None when it is not an unsigned integer.
pub fn decode(cursor: &[u8]) -> Option<ScanAt> {
    let c: u64 = std::str::from_utf8(cursor).ok()?.parse().ok()?;
    Some(ScanAt {
        node: (c >> NODE_SHIFT) as usize,
        from: (c & ((1 << NODE_SHIFT) - 1)) << POSITION_SHIFT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_to_a_position_at_or_before_the_one_given() {
        let start = decode(b"0").unwrap();
        assert_eq!(start, ScanAt { node: 0, from: 0 });
        assert_eq!(encode(None), 0);
        for (node, from) in [(0, 1 << 40), (1, 0), (3, u64::MAX), (200, 12_345_678)] {
            let at = ScanAt { node, from };
            let back = decode(encode(Some(at)).to_string().as_bytes()).unwrap();
            assert_eq!(back.node, node);
            assert!(
                back.from <= from && from - back.from < 256,
                "{from} -> {}",
                back.from
            );
        }
        assert_eq!(decode(b"-1"), None);
        assert_eq!(decode(b"x"), None);
    }
}
