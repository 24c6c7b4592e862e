//! What a transition moves: per partition, the new owners that were not old owners;
//! and what a node keeps once it is over.

use super::{Layout, Stage};
use crate::partition::PARTITIONS;

/// A partition some new owners must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub partition: u32,
    /// Ids of the new owners that were not old owners.
    pub to: Vec<String>,
    /// The sender's place among the partition's old owners (0: the best placed).
    pub rank: usize,
}

impl Layout {
    /// The partitions node `id` must send during this transition: those it owned in
    /// the previous set whose new owners include nodes that did not. Every old owner
    /// sends each moving partition, so a write acknowledged by any W of them reaches
    /// the new owners whatever R and W are. Empty when stable or `id` owned nothing.
    ///
    /// The partitions a node leads come first: old owners then mostly send different
    /// partitions at once, and one that reaches a partition another has sent finds its
    /// digest equal and sends nothing.
    pub fn moves_from(&self, id: &str) -> Vec<Move> {
        let Some(old) = self.previous_placement() else {
            return Vec::new();
        };
        if self.stage == Stage::Stable {
            return Vec::new();
        }
        let new = self.placement();
        let r = self.replicas as usize;
        let Some(me) = old.position(id) else {
            return Vec::new();
        };
        let mut moves = (0..PARTITIONS)
            .filter_map(|p| {
                let owners = old.partition_replicas(p, r);
                let rank = owners.iter().position(|&i| i == me)?;
                let owner_ids: Vec<&str> = owners
                    .iter()
                    .map(|&i| old.members()[i].id.as_str())
                    .collect();
                let to: Vec<String> = new
                    .partition_replicas(p, r)
                    .into_iter()
                    .map(|i| new.members()[i].id.clone())
                    .filter(|n| !owner_ids.contains(&n.as_str()))
                    .collect();
                (!to.is_empty()).then_some(Move {
                    partition: p,
                    to,
                    rank,
                })
            })
            .collect::<Vec<_>>();
        moves.sort_by_key(|m| m.rank); // stable: by partition within a rank
        moves
    }

    /// Per partition, whether node `id` is one of its owners in the member set
    /// (during a transition, the set being moved to). All false for a non-member.
    pub fn owned_by(&self, id: &str) -> Vec<bool> {
        let placement = self.placement();
        let Some(me) = placement.position(id) else {
            return vec![false; PARTITIONS as usize];
        };
        let r = self.replicas as usize;
        (0..PARTITIONS)
            .map(|p| placement.partition_replicas(p, r).contains(&me))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::{Layout, LayoutMember};
    use crate::partition::PARTITIONS;

    fn set(ids: &[&str]) -> Vec<LayoutMember> {
        ids.iter()
            .map(|id| LayoutMember {
                id: id.to_string(),
                addr: format!("{id}:1"),
                weight: 1.0,
                zone: String::new(),
            })
            .collect()
    }

    #[test]
    fn each_gained_copy_is_sent_by_every_old_owner() {
        let l = Layout::first(set(&["a", "b", "c"]), 2).unwrap();
        assert!(l.moves_from("a").is_empty(), "stable: nothing moves");
        let t = l.apply(set(&["a", "b", "c", "d", "e"])).unwrap();
        let (old, new) = (t.previous_placement().unwrap(), t.placement());
        let mut sent = vec![Vec::<String>::new(); PARTITIONS as usize];
        for id in ["a", "b", "c"] {
            for m in t.moves_from(id) {
                assert!(m.to.iter().all(|n| n == "d" || n == "e"), "{m:?}");
                sent[m.partition as usize].push(id.to_string());
            }
        }
        assert!(t.moves_from("d").is_empty(), "a new node owned nothing");
        let a = t.moves_from("a");
        assert!(
            a.windows(2).all(|w| w[0].rank <= w[1].rank),
            "led partitions first"
        );
        assert!(a.iter().any(|m| m.rank == 0) && a.iter().any(|m| m.rank == 1));
        for p in 0..PARTITIONS {
            let owners: Vec<String> = old
                .partition_replicas(p, 2)
                .into_iter()
                .map(|i| old.members()[i].id.clone())
                .collect();
            let gains = new
                .partition_replicas(p, 2)
                .into_iter()
                .any(|i| !owners.contains(&new.members()[i].id));
            let mut senders = sent[p as usize].clone();
            senders.sort();
            let mut want = if gains { owners } else { Vec::new() };
            want.sort();
            assert_eq!(senders, want, "partition {p}");
        }
    }

    #[test]
    fn each_partition_is_owned_by_r_members_and_by_no_one_who_left() {
        let l = Layout::first(set(&["a", "b", "c"]), 2).unwrap();
        let t = l.apply(set(&["b", "c", "d"])).unwrap();
        let owned: Vec<Vec<bool>> = ["b", "c", "d"].iter().map(|id| t.owned_by(id)).collect();
        for p in 0..PARTITIONS as usize {
            assert_eq!(owned.iter().filter(|o| o[p]).count(), 2, "partition {p}");
        }
        assert!(t.owned_by("a").iter().all(|o| !o), "a is leaving");
        assert!(owned
            .iter()
            .all(|o| o.iter().any(|x| *x) && o.iter().any(|x| !*x)));
    }
}
