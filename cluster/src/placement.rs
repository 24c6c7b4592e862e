//! Where a key lives: weighted rendezvous hashing over node ids.
//!
//! Each node scores each key; the key's replicas are the R highest scores. The score is
//! `weight / -ln(u)` with `u` a 53-bit uniform from xxh3-64 of the key seeded by the
//! node id, so scores are 64-bit-fine (no ties to speak of, unlike dstash's ~4,000
//! distinct values), a node's share follows its weight, and adding or removing a node
//! moves only the keys it gains or loses. Identity is the node id, never the address,
//! so a node that moves keeps its keys. The result depends only on ids, weights and the
//! key: the same in every process and version (`tests/placement.rs` pins it).

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Placement {
    members: Vec<Member>,
    seeds: Vec<u64>,
}

impl Placement {
    /// Members are sorted by id, so the order they were given in does not matter.
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let seeds = members.iter().map(|m| xxh3_64(m.id.as_bytes())).collect();
        Self { members, seeds }
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

    fn score(&self, i: usize, key: &[u8]) -> f64 {
        let h = xxh3_64_with_seed(key, self.seeds[i]);
        // (0, 1): never 0 (ln undefined) and never 1 (score infinite).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        self.members[i].weight / -u.ln()
    }

    /// Indexes into [`Placement::members`] of the `r` best nodes for `key`, best first.
    pub fn replicas(&self, key: &[u8], r: usize) -> Vec<usize> {
        let mut scored: Vec<(f64, usize)> = (0..self.members.len())
            .map(|i| (self.score(i, key), i))
            .collect();
        // Highest score first; equal scores (vanishingly rare) by id order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(r);
        scored.into_iter().map(|(_, i)| i).collect()
    }

    /// The ids of the `r` best nodes for `key`, best first.
    pub fn replica_ids(&self, key: &[u8], r: usize) -> Vec<&str> {
        self.replicas(key, r)
            .into_iter()
            .map(|i| self.members[i].id.as_str())
            .collect()
    }
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
