//! pogreb-bench's shape: keys of 16–64 bytes, values of 128–512 bytes, generated from
//! the key's number so nothing is held in memory and every value can be checked.

#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Key `i`: unique 16-hex-digit prefix, padded to 16–64 bytes.
pub fn key(i: u64, out: &mut Vec<u8>) {
    out.clear();
    let h = mix(i);
    let len = 16 + (h % 49) as usize;
    for shift in (0..16).rev() {
        out.push(HEX[((i >> (shift * 4)) & 15) as usize]);
    }
    let mut x = h;
    while out.len() < len {
        out.push(HEX[(x & 15) as usize]);
        x = x.rotate_right(4);
    }
}

/// Value `i`: 128–512 bytes starting with `i`, then a fill byte.
pub fn value(i: u64, out: &mut Vec<u8>) {
    out.clear();
    let len = 128 + (mix(i ^ 0xABCD) % 385) as usize;
    out.extend_from_slice(&i.to_le_bytes());
    out.resize(len, (i % 251) as u8);
}

/// A permutation of `0..n` for random-order reads: i -> (i * p + o) mod n with p coprime to n.
pub struct Shuffle {
    n: u64,
    p: u64,
    o: u64,
}

impl Shuffle {
    pub fn new(n: u64, seed: u64) -> Self {
        let mut p = (mix(seed) % n.max(2)) | 1;
        while gcd(p, n) != 1 {
            p += 2;
        }
        Self {
            n,
            p,
            o: mix(seed + 1) % n.max(1),
        }
    }

    /// `0..n` in ascending order.
    pub fn identity(n: u64) -> Self {
        Self { n, p: 1, o: 0 }
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn at(&self, i: u64) -> u64 {
        ((i as u128 * self.p as u128 + self.o as u128) % self.n as u128) as u64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Bytes on disk (allocated blocks) under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// RssAnon of this process, in bytes.
pub fn rss_anon() -> u64 {
    rss_anon_of("self")
}

/// Anonymous resident memory of process `pid` ("self" for this one), in bytes.
pub fn rss_anon_of(pid: &str) -> u64 {
    status_bytes(pid, &["RssAnon:"])[0]
}

/// The `kB` fields `names` (with their colon) of `/proc/<pid>/status`, in bytes; 0 for
/// one that is missing.
pub fn status_bytes<const N: usize>(pid: &str, names: &[&str; N]) -> [u64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    names.map(|name| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_in_shape() {
        let mut seen = std::collections::HashSet::new();
        let mut k = Vec::new();
        for i in 0..10_000 {
            key(i, &mut k);
            assert!((16..=64).contains(&k.len()));
            assert!(seen.insert(k.clone()));
        }
        let mut v = Vec::new();
        value(5, &mut v);
        assert!((128..=512).contains(&v.len()));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let s = Shuffle::new(1000, 7);
        let mut seen = vec![false; 1000];
        for i in 0..1000 {
            seen[s.at(i) as usize] = true;
        }
        assert!(seen.iter().all(|&b| b));
    }
}
