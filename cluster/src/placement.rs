//! Where a key lives: weighted rendezvous hashing of partitions over node ids.
//!
//! A key belongs to a fixed partition ([`crate::partition`]); each node scores each
//! partition and the partition's replicas are the R highest scores. Every key of a
//! partition therefore has the same replicas, which is what lets anti-entropy compare a
//! partition's digest between them and lets a layout change move whole partitions. The
//! score is `weight / -ln(u)` with `u` a 53-bit uniform from xxh3-64 of the partition
//! seeded by the node id, so a node's share follows its weight, and adding or removing
//! a node moves only the partitions it gains or loses. Identity is the node id, never
//! the address, so a node that moves keeps its data. Members may carry a zone: a
//! partition's ranking then alternates zones, so its replicas span as many zones as
//! there are, up to R. The result depends only on ids, weights, zones and the key: the
//! same in every process and version (`tests/placement.rs` pins it).

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::partition::{partition_of, PARTITIONS};

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub weight: f64,
    /// The failure domain (an availability zone, a rack); empty: none given.
    pub zone: String,
}

impl Member {
    /// A member of weight 1 in no zone.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            weight: 1.0,
            zone: String::new(),
        }
    }
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
    spread(scored.into_iter().map(|(_, i)| i).collect(), members)
}

/// `order` reordered so that zones alternate: round by round, each zone's best member
/// not yet placed, in rank order. The first R members then span min(R, zones) zones. A
/// member without a zone is a zone of its own, so with no zones at all the order is
/// unchanged.
fn spread(order: Vec<u16>, members: &[Member]) -> Vec<u16> {
    if members.iter().all(|m| m.zone.is_empty()) {
        return order;
    }
    let mut out = Vec::with_capacity(order.len());
    let mut left = order;
    while !left.is_empty() {
        let mut this_round: Vec<&str> = Vec::new();
        let mut later = Vec::new();
        for i in left {
            let zone = members[i as usize].zone.as_str();
            if zone.is_empty() || !this_round.contains(&zone) {
                this_round.push(zone);
                out.push(i);
            } else {
                later.push(i);
            }
        }
        left = later;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Placement {
        Placement::new(ids.iter().map(|id| Member::new(*id)).collect())
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

    fn zoned(spec: &[(&str, &str)]) -> Placement {
        Placement::new(
            spec.iter()
                .map(|(id, zone)| Member {
                    zone: zone.to_string(),
                    ..Member::new(*id)
                })
                .collect(),
        )
    }

    #[test]
    fn replicas_span_distinct_zones_when_there_are_enough() {
        let p = zoned(&[
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
        ]);
        let zone = |i: usize| p.members()[i].zone.clone();
        let mut first_in_c = 0;
        for part in 0..crate::PARTITIONS {
            let reps = p.partition_replicas(part, 3);
            let mut zones: Vec<String> = reps.iter().map(|&i| zone(i)).collect();
            zones.sort();
            assert_eq!(zones, ["a", "b", "c"], "partition {part}");
            // Two zones among R=2, and every member ranked once.
            let two = p.partition_replicas(part, 2);
            assert_ne!(zone(two[0]), zone(two[1]));
            let mut all = p.partition_replicas(part, 6);
            all.sort();
            assert_eq!(all, [0, 1, 2, 3, 4, 5]);
            first_in_c += usize::from(zone(reps[0]) == "c");
        }
        // c's one node is in every partition's replicas, but leads only its rendezvous
        // share (a sixth): zones change who follows the leader, not who leads.
        let share = first_in_c as f64 / crate::PARTITIONS as f64;
        assert!((0.12..0.22).contains(&share), "{share}");
    }

    #[test]
    fn with_fewer_zones_than_replicas_every_zone_is_used() {
        let p = zoned(&[("a1", "a"), ("a2", "a"), ("b1", "b"), ("x", "")]);
        for part in 0..crate::PARTITIONS {
            let reps = p.partition_replicas(part, 3);
            let zones: Vec<&str> = reps.iter().map(|&i| p.members()[i].zone.as_str()).collect();
            assert!(zones.contains(&"a") && zones.contains(&"b"), "{zones:?}");
            assert!(
                zones.contains(&""),
                "a member without a zone is a zone of its own"
            );
        }
    }

    #[test]
    fn weight_sets_the_share() {
        let p = Placement::new(vec![
            Member::new("small"),
            Member {
                weight: 3.0,
                ..Member::new("big")
            },
        ]);
        let big = (0..20_000)
            .filter(|i| p.replica_ids(format!("k{i}").as_bytes(), 1)[0] == "big")
            .count();
        let share = big as f64 / 20_000.0;
        assert!((0.72..0.78).contains(&share), "big node's share {share}");
    }
}
