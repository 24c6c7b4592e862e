//! Flat batch answers ([`FlatLookups`]): every key's answer as columns, values in one
//! buffer. The node builds them key by key; the client reads them back, each value a
//! slice of the received buffer (no copy).

use bytes::Bytes;

use crate::v1::FlatLookups;

const NOTHING: u8 = 0;
const VALUE: u8 = 1;
const TOMBSTONE: u8 = 2;
const DAMAGED: u8 = 3;

/// Builds a [`FlatLookups`] one key at a time, in key order.
#[derive(Default)]
pub struct FlatBuilder {
    states: Vec<u8>,
    lens: Vec<u32>,
    values: Vec<u8>,
    ttls: Vec<u32>,
    ts: Vec<u64>,
    writers: Vec<u64>,
}

impl FlatBuilder {
    pub fn with_capacity(keys: usize) -> Self {
        FlatBuilder {
            states: Vec::with_capacity(keys),
            lens: Vec::with_capacity(keys),
            values: Vec::new(),
            ttls: Vec::with_capacity(keys),
            ts: Vec::with_capacity(keys),
            writers: Vec::with_capacity(keys),
        }
    }

    fn push(&mut self, state: u8, value: &[u8], ttl: u32, ts: u64, writer: u64) {
        self.states.push(state);
        self.lens.push(value.len() as u32);
        self.values.extend_from_slice(value);
        self.ttls.push(ttl);
        self.ts.push(ts);
        self.writers.push(writer);
    }

    pub fn value(&mut self, value: &[u8], ttl: u32, ts: u64, writer: u64) {
        self.push(VALUE, value, ttl, ts, writer);
    }
    pub fn tombstone(&mut self, ts: u64, writer: u64) {
        self.push(TOMBSTONE, &[], 0, ts, writer);
    }
    pub fn nothing(&mut self) {
        self.push(NOTHING, &[], 0, 0, 0);
    }
    pub fn damaged(&mut self) {
        self.push(DAMAGED, &[], 0, 0, 0);
    }

    pub fn finish(self) -> FlatLookups {
        FlatLookups {
            states: Bytes::from(self.states),
            value_lens: self.lens,
            values: Bytes::from(self.values),
            ttl_seconds: self.ttls,
            version_ts: self.ts,
            version_writer: self.writers,
        }
    }
}

/// One key's answer, read from a [`FlatLookups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlatEntry {
    Nothing,
    Value {
        value: Bytes,
        ttl_seconds: u32,
        ts: u64,
        writer: u64,
    },
    Tombstone {
        ts: u64,
        writer: u64,
    },
    Damaged,
}

impl FlatLookups {
    /// Every key's answer, in key order; what is inconsistent when the columns disagree
    /// (a peer's bug or a damaged message), so that no value is misattributed.
    pub fn entries(&self) -> Result<Vec<FlatEntry>, String> {
        let n = self.states.len();
        let lens = [
            self.value_lens.len(),
            self.ttl_seconds.len(),
            self.version_ts.len(),
            self.version_writer.len(),
        ];
        if lens.iter().any(|l| *l != n) {
            return Err(format!(
                "flat answer columns of {lens:?} entries for {n} keys"
            ));
        }
        let total: u64 = self.value_lens.iter().map(|l| *l as u64).sum();
        if total != self.values.len() as u64 {
            let got = self.values.len();
            return Err(format!(
                "flat answer value lengths sum to {total}, values hold {got}"
            ));
        }
        let mut at = 0usize;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let len = self.value_lens[i] as usize;
            let (ts, writer) = (self.version_ts[i], self.version_writer[i]);
            out.push(match self.states[i] {
                NOTHING => FlatEntry::Nothing,
                VALUE => FlatEntry::Value {
                    value: self.values.slice(at..at + len),
                    ttl_seconds: self.ttl_seconds[i],
                    ts,
                    writer,
                },
                TOMBSTONE => FlatEntry::Tombstone { ts, writer },
                DAMAGED => FlatEntry::Damaged,
                s => return Err(format!("flat answer state {s} for key {i}")),
            });
            at += len;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_what_was_built_and_bad_columns_are_refused() {
        let mut b = FlatBuilder::with_capacity(4);
        b.value(b"one", 5, 10, 1);
        b.nothing();
        b.tombstone(11, 2);
        b.value(b"", 0, 12, 3);
        b.damaged();
        let f = b.finish();
        let e = f.entries().unwrap();
        assert_eq!(
            e,
            vec![
                FlatEntry::Value {
                    value: Bytes::from_static(b"one"),
                    ttl_seconds: 5,
                    ts: 10,
                    writer: 1
                },
                FlatEntry::Nothing,
                FlatEntry::Tombstone { ts: 11, writer: 2 },
                FlatEntry::Value {
                    value: Bytes::new(),
                    ttl_seconds: 0,
                    ts: 12,
                    writer: 3
                },
                FlatEntry::Damaged,
            ]
        );
        let mut short = f.clone();
        short.values = Bytes::from_static(b"on");
        assert!(short.entries().unwrap_err().contains("sum to 3"));
        let mut missing = f.clone();
        missing.version_ts.pop();
        assert!(missing.entries().unwrap_err().contains("for 5 keys"));
        let mut odd = f;
        odd.states = Bytes::from_static(&[1, 0, 2, 1, 9]);
        assert!(odd.entries().unwrap_err().contains("state 9"));
    }
}
