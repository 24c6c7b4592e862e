//! Where a key lives: weighted rendezvous hashing of partitions over node ids.
//!
//! A key belongs to a fixed partition ([`crate::partition`]); each node scores each
//! partition and the partition's replicas are the R highest scores. Every key of a
//! partition therefore has the same replicas, which is what lets anti-entropy compare a
//! partition's digest between them and lets a layout change move whole partitions. The
//! score is `weight / -ln(u)` with `u` a 53-bit uniform from xxh3-64 of the partition
//! seeded by the node id, so a node's share follows its weight, and adding or removing
//! a node moves only the partitions it gains or loses. Identity is the node id, never
//! the address, so a node that moves keeps its data. The result depends only on ids,
//! weights and the key: the same in every process and version (`tests/placement.rs`
//! pins it).

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::partition::{partition_of, PARTITIONS};

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Placement {
    members: Vec<Member>,
    /// For each partition, every member index, best first.
    order: Vec<Vec<u16>>,
}

impl Placement {
    /// Members are sorted by id, so the order they were given in does not matter.
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        members.truncate(u16::MAX as usize);
        let seeds: Vec<u64> = members.iter().map(|m| xxh3_64(m.id.as_bytes())).collect();
        let order = (0..PARTITIONS).map(|p| rank(&members, &seeds, p)).collect();
        Self { members, order }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Indexes into [`Placement::members`] of the `r` best nodes for `partition`.
    pub fn partition_replicas(&self, partition: u32, r: usize) -> Vec<usize> {
        self.order
            .get(partition as usize)
            .map(|o| o.iter().take(r).map(|&i| i as usize).collect())
            .unwrap_or_default()
    }

    /// Indexes into [`Placement::members`] of the `r` best nodes for `key`, best first.
    pub fn replicas(&self, key: &[u8], r: usize) -> Vec<usize> {
        self.partition_replicas(partition_of(key), r)
    }

    /// The ids of the `r` best nodes for `key`, best first.
    pub fn replica_ids(&self, key: &[u8], r: usize) -> Vec<&str> {
        self.replicas(key, r)
            .into_iter()
            .map(|i| self.members[i].id.as_str())
            .collect()
    }

    /// The partitions whose `r` replicas include both members `a` and `b`.
    pub fn shared_partitions(&self, a: usize, b: usize, r: usize) -> Vec<u32> {
        (0..PARTITIONS)
            .filter(|&p| {
                let reps = self.partition_replicas(p, r);
                reps.contains(&a) && reps.contains(&b)
            })
            .collect()
    }

    /// The index of the member with `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }
}

/// Every member ranked for `partition`, highest score first; equal scores (vanishingly
/// rare) by id order.
fn rank(members: &[Member], seeds: &[u64], partition: u32) -> Vec<u16> {
    let key = partition.to_le_bytes();
    let mut scored: Vec<(f64, u16)> = members
        .iter()
        .zip(seeds)
        .enumerate()
        .map(|(i, (m, &seed))| {
            let h = xxh3_64_with_seed(&key, seed);
            // (0, 1): never 0 (ln undefined) and never 1 (score infinite).
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (m.weight / -u.ln(), i as u16)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Placement {
        Placement::new(
            ids.iter()
                .map(|id| Member {
                    id: id.to_string(),
                    weight: 1.0,
                })
                .collect(),
        )
    }

    #[test]
    fn order_of_members_does_not_matter() {
        let a = nodes(&["a", "b", "c"]);
        let b = nodes(&["c", "a", "b"]);
        for i in 0..1000 {
            let k = format!("k{i}");
            assert_eq!(
                a.replica_ids(k.as_bytes(), 2),
                b.replica_ids(k.as_bytes(), 2)
            );
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_keys() {
        let all = nodes(&["a", "b", "c", "d"]);
        let less = nodes(&["a", "b", "c"]);
        for i in 0..5000 {
            let k = format!("k{i}");
            let before = all.replica_ids(k.as_bytes(), 1)[0];
            if before != "d" {
                assert_eq!(less.replica_ids(k.as_bytes(), 1)[0], before);
            }
        }
    }

    #[test]
    fn weight_sets_the_share() {
        let p = Placement::new(vec![
            Member {
                id: "small".into(),
                weight: 1.0,
            },
            Member {
                id: "big".into(),
                weight: 3.0,
            },
        ]);
        let big = (0..20_000)
            .filter(|i| p.replica_ids(format!("k{i}").as_bytes(), 1)[0] == "big")
            .count();
        let share = big as f64 / 20_000.0;
        assert!((0.72..0.78).contains(&share), "big node's share {share}");
    }
}
