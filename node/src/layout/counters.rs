//! The streaming stage's expiring counts: after its key/value partitions, an old owner
//! sends each gaining node the live counter cells of the partitions it gains, a slice
//! of the hash space at a time, in bounded messages. The receiver merges by maximum
//! (`MergeCounters`), so sending again after a restart, or from every old owner,
//! counts nothing twice; hence no cursor.

use std::collections::BTreeMap;
use std::sync::Arc;

use dstash_cluster::layout::Move;
use dstash_cluster::partition::PARTITIONS;
use dstash_proto::v1::{CounterCells as WireCells, MergeCountersRequest};
use dstash_proto::Bytes;
use dstash_storage::{CellImage, CounterCells, Store};
use tonic::Status;

use crate::status::status;
use crate::sync::dial::Remote;

/// Slices of the hash space read at a time: bounds what one read holds in memory.
const SLICES: u64 = 64;
/// Cells per message, at most (a key with more goes alone).
const CELLS_PER_MESSAGE: usize = 64 * 1024;
/// Keys per message, at most: well under the node's batch limit.
const KEYS_PER_MESSAGE: usize = 1000;

/// Per gaining node, the partitions of `moves` it gains.
pub fn gains(moves: &[Move]) -> BTreeMap<String, Vec<bool>> {
    let mut by_node: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for m in moves {
        for id in &m.to {
            by_node
                .entry(id.clone())
                .or_insert_with(|| vec![false; PARTITIONS as usize])[m.partition as usize] = true;
        }
    }
    by_node
}

/// Sends `ns`'s live counts of the partitions `gained` marks to `remote`; returns the
/// keys sent.
pub async fn send(
    store: &Arc<Store>,
    remote: &mut Remote,
    ns: &str,
    gained: &Arc<Vec<bool>>,
) -> Result<u64, Status> {
    let mut sent = 0;
    let (s, n) = (store.clone(), ns.to_string());
    let retention = tokio::task::spawn_blocking(move || s.count_retention(&n))
        .await
        .map_err(|e| Status::internal(format!("counter read failed: {e}")))?
        .map_err(status)?;
    let step = u64::MAX / SLICES + 1;
    for i in 0..SLICES {
        let (lo, hi) = (i * step, ((i + 1) as u128 * step as u128).min(1 << 64));
        let (s, g, n) = (store.clone(), gained.clone(), ns.to_string());
        let cells =
            tokio::task::spawn_blocking(move || s.counter_cells(&n, &|p| g[p as usize], lo, hi))
                .await
                .map_err(|e| Status::internal(format!("counter read failed: {e}")))?
                .map_err(status)?;
        for batch in messages(&cells) {
            sent += batch.len() as u64;
            let req = MergeCountersRequest {
                namespace: ns.to_string(),
                keys: batch.iter().map(wire).collect(),
                count_retention_seconds: retention,
            };
            remote.merge_counters(req).await?;
        }
    }
    Ok(sent)
}

/// `cells` cut into runs of at most [`KEYS_PER_MESSAGE`] keys and
/// [`CELLS_PER_MESSAGE`] cells.
fn messages(cells: &[CounterCells]) -> Vec<&[CounterCells]> {
    let mut out = Vec::new();
    let (mut start, mut n) = (0, 0);
    for (i, c) in cells.iter().enumerate() {
        let full = i - start == KEYS_PER_MESSAGE || n + c.cells.len() > CELLS_PER_MESSAGE;
        if i > start && full {
            out.push(&cells[start..i]);
            (start, n) = (i, 0);
        }
        n += c.cells.len();
    }
    if start < cells.len() {
        out.push(&cells[start..]);
    }
    out
}

/// A key's cells as the wire carries them: each cell's first second, count and
/// resolution.
pub fn wire(c: &CounterCells) -> WireCells {
    WireCells {
        key: Bytes::copy_from_slice(&c.key),
        seconds: c.cells.iter().map(|im| im.period * im.res as u64).collect(),
        counts: c.cells.iter().map(|im| im.value).collect(),
        resolutions: c.cells.iter().map(|im| im.res).collect(),
    }
}

/// The wire's cells as the store merges them; lists of unequal lengths, or a zero
/// resolution, are refused.
pub fn from_wire(c: WireCells) -> Result<CounterCells, Status> {
    let (n, r) = (c.seconds.len(), c.resolutions.len());
    if c.counts.len() != n || (r != 0 && r != n) {
        return Err(Status::invalid_argument(format!(
            "counter cells: {n} seconds, {} counts, {r} resolutions",
            c.counts.len()
        )));
    }
    let res = |i: usize| c.resolutions.get(i).copied().unwrap_or(1);
    if (0..r).any(|i| res(i) == 0) {
        return Err(Status::invalid_argument(
            "counter cells: a resolution of 0 s",
        ));
    }
    let cells = (0..n)
        .map(|i| CellImage {
            res: res(i),
            period: c.seconds[i] / res(i) as u64,
            value: c.counts[i],
        })
        .collect();
    Ok(CounterCells {
        key: c.key.to_vec(),
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_under_the_cell_limit_and_keep_every_key() {
        let cell = CellImage {
            res: 1,
            period: 1,
            value: 1,
        };
        let key = |n: usize| CounterCells {
            key: vec![1],
            cells: vec![cell; n],
        };
        let cells: Vec<_> = [10, CELLS_PER_MESSAGE - 20, 10, CELLS_PER_MESSAGE + 3, 1]
            .into_iter()
            .map(key)
            .collect();
        let m = messages(&cells);
        assert_eq!(m.iter().map(|b| b.len()).sum::<usize>(), cells.len());
        let lens: Vec<usize> = m.iter().map(|b| b.len()).collect();
        assert_eq!(lens, [3, 1, 1], "the oversized key goes alone");
        for b in &m {
            let n: usize = b.iter().map(|c| c.cells.len()).sum();
            assert!(n <= CELLS_PER_MESSAGE || b.len() == 1);
        }
        assert!(messages(&[]).is_empty());
        let many: Vec<_> = (0..2500).map(|_| key(1)).collect();
        let lens: Vec<usize> = messages(&many).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [1000, 1000, 500]);
    }
}
