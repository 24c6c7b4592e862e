//! The layout's durable form, the same on disk and on the wire:
//!
//! ```text
//! magic "DSLY" | format version u16 | epoch u64 | replicas u8 | stage u8
//! | members | previous | [gone] | xxh3-64 of everything before it (u64)
//! members: count u16, then per member: id, addr, zone (each u16 length + UTF-8),
//!          weight (f64 bits as u64)
//! gone:    format 2 only: count u16, then ids (u16 length + UTF-8)
//! ```
//!
//! A layout with no gone members is written as format 1, so a node of the build
//! before format 2 reads every layout that declares none.
//!
//! All integers little-endian. Decoding checks the magic, the version and the
//! checksum before it reads a field, and every length against what is left, so any
//! bytes decode to a layout or an error, never a panic.

use xxhash_rust::xxh3::xxh3_64;

use super::{check_members, Layout, LayoutError, LayoutMember, Stage};

const MAGIC: &[u8; 4] = b"DSLY";
/// The formats this build reads; it writes the oldest that holds the layout.
const FORMAT_V1: u16 = 1;
const FORMAT_GONE: u16 = 2;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_members(out: &mut Vec<u8>, members: &[LayoutMember]) {
    let n = members.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    for m in &members[..n] {
        put_str(out, &m.id);
        put_str(out, &m.addr);
        put_str(out, &m.zone);
        out.extend_from_slice(&m.weight.to_bits().to_le_bytes());
    }
}

impl Layout {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 64 * (self.members.len() + self.previous.len()));
        out.extend_from_slice(MAGIC);
        let format = match self.gone.is_empty() {
            true => FORMAT_V1,
            false => FORMAT_GONE,
        };
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.push(self.replicas);
        out.push(self.stage.code());
        put_members(&mut out, &self.members);
        put_members(&mut out, &self.previous);
        if format == FORMAT_GONE {
            let n = self.gone.len().min(u16::MAX as usize);
            out.extend_from_slice(&(n as u16).to_le_bytes());
            for g in &self.gone[..n] {
                put_str(&mut out, g);
            }
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Layout, LayoutError> {
        let bad = |m: &str| LayoutError(format!("layout: {m}"));
        if b.len() < MAGIC.len() + 2 + 8 || &b[..4] != MAGIC {
            return Err(bad("not a layout (bad magic)"));
        }
        let format = u16::from_le_bytes([b[4], b[5]]);
        if format != FORMAT_V1 && format != FORMAT_GONE {
            return Err(bad(&format!(
                "format version {format} is not supported (this build reads {FORMAT_V1} and {FORMAT_GONE})"
            )));
        }
        let (body, sum) = b.split_at(b.len() - 8);
        let mut want = [0u8; 8];
        want.copy_from_slice(sum);
        if xxh3_64(body) != u64::from_le_bytes(want) {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader(&body[6..]);
        let epoch = r.u64().ok_or_else(|| bad("truncated"))?;
        let replicas = r.u8().ok_or_else(|| bad("truncated"))?;
        let stage = match r.u8().ok_or_else(|| bad("truncated"))? {
            0 => Stage::Stable,
            1 => Stage::WriteBoth,
            2 => Stage::Streaming,
            3 => Stage::ReadNew,
            4 => Stage::Cleanup,
            s => return Err(bad(&format!("unknown stage {s}"))),
        };
        let members = r.members().ok_or_else(|| bad("truncated members"))?;
        let previous = r
            .members()
            .ok_or_else(|| bad("truncated previous members"))?;
        let gone = match format {
            FORMAT_GONE => r.ids().ok_or_else(|| bad("truncated gone members"))?,
            _ => Vec::new(),
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        check_members(&members, replicas)?;
        match stage {
            Stage::Stable if !previous.is_empty() => {
                return Err(bad("a stable layout with a previous member set"))
            }
            Stage::Stable => {}
            _ => check_members(&previous, replicas)?,
        }
        let named = |g: &String| members.iter().chain(&previous).any(|m| &m.id == g);
        if (stage == Stage::Stable && !gone.is_empty()) || !gone.iter().all(named) {
            return Err(bad("gone members that the layout does not name"));
        }
        Ok(Layout {
            epoch,
            replicas,
            members,
            previous,
            stage,
            gone,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(w))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn ids(&mut self) -> Option<Vec<String>> {
        let n = self.u16()? as usize;
        // Each id takes at least 2 bytes: a count beyond that is damage.
        if n > self.0.len() / 2 {
            return None;
        }
        (0..n).map(|_| self.str()).collect()
    }

    fn members(&mut self) -> Option<Vec<LayoutMember>> {
        let n = self.u16()? as usize;
        // Each member takes at least 14 bytes: a count beyond that is damage.
        if n > self.0.len() / 14 {
            return None;
        }
        (0..n)
            .map(|_| {
                Some(LayoutMember {
                    id: self.str()?,
                    addr: self.str()?,
                    zone: self.str()?,
                    weight: f64::from_bits(self.u64()?),
                })
            })
            .collect()
    }
}
