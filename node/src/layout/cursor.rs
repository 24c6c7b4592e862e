//! Which partitions a node has sent in a transition's streaming stage, kept in
//! `<data>/handoff` so that a restart resumes instead of starting over:
//!
//! ```text
//! magic "DSHO" | format u16 | epoch u64 | bitmap of PARTITIONS bits | xxh3-64 of the rest
//! ```
//!
//! A file for another epoch, or one that does not check, counts as nothing sent:
//! sending again costs a digest comparison per partition, not the data.

use std::path::PathBuf;

use dstash_cluster::PARTITIONS;
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 4] = b"DSHO";
const FORMAT: u16 = 1;
const BITMAP: usize = PARTITIONS as usize / 8;
const LEN: usize = 4 + 2 + 8 + BITMAP + 8;

pub struct Cursor {
    path: Option<PathBuf>,
    epoch: u64,
    sent: Vec<u8>,
}

impl Cursor {
    /// The cursor of the streaming stage at `epoch`, as far as `path` recorded it.
    pub fn load(path: Option<PathBuf>, epoch: u64) -> Cursor {
        let sent = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| decode(&b, epoch))
            .unwrap_or_else(|| vec![0; BITMAP]);
        Cursor { path, epoch, sent }
    }

    pub fn is_sent(&self, partition: u32) -> bool {
        let p = partition as usize;
        self.sent
            .get(p / 8)
            .is_some_and(|b| b & (1 << (p % 8)) != 0)
    }

    /// Marks `partitions` sent and stores the cursor.
    pub fn mark(&mut self, partitions: &[u32]) -> dstash_storage::Result<()> {
        for &p in partitions {
            if let Some(b) = self.sent.get_mut(p as usize / 8) {
                *b |= 1 << (p % 8);
            }
        }
        match &self.path {
            Some(path) => dstash_storage::write_file_atomic(path, &self.encode()),
            None => Ok(()),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.sent);
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }
}

fn decode(b: &[u8], epoch: u64) -> Option<Vec<u8>> {
    if b.len() != LEN || &b[..4] != MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(LEN - 8);
    if xxh3_64(body).to_le_bytes() != sum
        || u16::from_le_bytes([b[4], b[5]]) != FORMAT
        || u64::from_le_bytes(b[6..14].try_into().ok()?) != epoch
    {
        return None;
    }
    Some(body[14..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_resumes_only_its_own_epoch_and_never_trusts_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff");
        let mut c = Cursor::load(Some(path.clone()), 5);
        assert!(!c.is_sent(3));
        c.mark(&[3, 1023]).unwrap();
        let again = Cursor::load(Some(path.clone()), 5);
        assert!(again.is_sent(3) && again.is_sent(1023) && !again.is_sent(4));
        assert!(
            !Cursor::load(Some(path.clone()), 6).is_sent(3),
            "another epoch"
        );
        let mut b = std::fs::read(&path).unwrap();
        b[20] ^= 0x10;
        std::fs::write(&path, &b).unwrap();
        assert!(!Cursor::load(Some(path.clone()), 5).is_sent(3), "damaged");
        std::fs::write(&path, &b[..10]).unwrap();
        assert!(!Cursor::load(Some(path), 5).is_sent(3), "torn");
    }
}
