//! Counting replica answers against a write quorum: the rule in one place, shared by
//! single writes and batches. A write may need W in more than one set of replicas (the
//! old and the new owners during a layout transition): each replica counts in the sets
//! it belongs to, and the write is done only when every set has its acknowledgements.

use crate::error::{Error, NodeFailure};
use crate::view::WriteTargets;

/// Answers for one key (or one batch) written to `replicas`.
#[derive(Debug)]
pub struct Tally {
    pub replicas: Vec<String>,
    /// Per replica: the sets it counts in (bits).
    sets: Vec<u8>,
    /// Per set: acknowledgements needed.
    needs: Vec<usize>,
    acked: Vec<bool>,
    failed: Vec<bool>,
    pub failures: Vec<NodeFailure>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    Waiting,
}

impl Tally {
    /// One set: `needed` of `replicas`.
    pub fn new(replicas: Vec<String>, needed: usize) -> Self {
        let sets = vec![1; replicas.len()];
        Self::with_sets(replicas, sets, vec![needed])
    }

    /// `targets`' replicas, named by `names`.
    /// One tally per key of a batch, from each key's write targets in `view`.
    pub fn for_each(view: &crate::view::View, placed: &[WriteTargets]) -> Vec<Tally> {
        placed
            .iter()
            .map(|t| {
                let names = t.nodes.iter().map(|&n| view.nodes[n].id.clone()).collect();
                Tally::of(names, t)
            })
            .collect()
    }

    pub fn of(names: Vec<String>, targets: &WriteTargets) -> Self {
        Self::with_sets(names, targets.sets.clone(), targets.needs.clone())
    }

    fn with_sets(replicas: Vec<String>, sets: Vec<u8>, needs: Vec<usize>) -> Self {
        let n = replicas.len();
        Self {
            replicas,
            sets,
            needs,
            acked: vec![false; n],
            failed: vec![false; n],
            failures: Vec::new(),
        }
    }

    fn count(&self, set: usize, of: &[bool]) -> usize {
        (0..self.replicas.len())
            .filter(|&i| self.sets[i] & (1 << set) != 0 && of[i])
            .count()
    }

    fn members(&self, set: usize) -> usize {
        self.sets.iter().filter(|&&b| b & (1 << set) != 0).count()
    }

    /// Where things stand: done once every set has its acknowledgements; failed as soon
    /// as a set has too few replicas left to get there (no need to wait for them).
    pub fn outcome(&self) -> Outcome {
        let sets = 0..self.needs.len();
        if sets
            .clone()
            .all(|s| self.count(s, &self.acked) >= self.needs[s])
        {
            Outcome::Done
        } else if sets
            .clone()
            .any(|s| self.members(s) - self.count(s, &self.failed) < self.needs[s])
        {
            Outcome::Failed
        } else {
            Outcome::Waiting
        }
    }

    /// Replica `i` acknowledged.
    pub fn ack(&mut self, i: usize) -> Outcome {
        if let Some(a) = self.acked.get_mut(i) {
            *a = true;
        }
        self.outcome()
    }

    /// Replica `i` failed (once; later failures of it change nothing).
    pub fn fail(&mut self, i: usize, f: NodeFailure) -> Outcome {
        if let Some(x) = self.failed.get_mut(i).filter(|x| !**x) {
            *x = true;
            self.failures.push(f);
        }
        self.outcome()
    }

    pub fn acks(&self) -> usize {
        self.acked.iter().filter(|a| **a).count()
    }

    pub fn error(&self) -> Error {
        Error::Quorum {
            needed: self.needs.iter().copied().max().unwrap_or(0),
            sets: self.needs.len(),
            acks: self.acks(),
            replicas: self.replicas.clone(),
            failures: self.failures.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(node: &str) -> NodeFailure {
        NodeFailure {
            node: node.into(),
            code: tonic::Code::Unavailable,
            message: "connection refused".into(),
        }
    }

    fn tally(r: usize, w: usize) -> Tally {
        Tally::new((0..r).map(|i| format!("n{i}")).collect(), w)
    }

    #[test]
    fn done_at_w_acks_without_waiting_for_the_rest() {
        let mut t = tally(3, 2);
        assert_eq!(t.ack(0), Outcome::Waiting);
        assert_eq!(t.ack(0), Outcome::Waiting, "one replica counts once");
        assert_eq!(t.ack(2), Outcome::Done);
    }

    #[test]
    fn failed_as_soon_as_w_is_out_of_reach() {
        let mut t = tally(3, 2);
        assert_eq!(t.fail(0, failure("n0")), Outcome::Waiting);
        assert_eq!(
            t.fail(1, failure("n1")),
            Outcome::Failed,
            "one replica left, two needed"
        );
        let e = t.error().to_string();
        assert!(e.contains("needed 2") && e.contains("got 0"), "{e}");
        assert!(e.contains("n0: Unavailable") && e.contains("n1"), "{e}");
    }

    #[test]
    fn w_above_the_replicas_fails_naming_them() {
        let mut t = tally(1, 2);
        assert_eq!(t.outcome(), Outcome::Failed);
        assert_eq!(t.ack(0), Outcome::Failed);
        let e = t.error().to_string();
        assert!(e.contains("[n0]"), "{e}");
    }

    #[test]
    fn a_transition_needs_w_in_the_old_set_and_in_the_new() {
        // Old owners n0, n1; new owners n1, n2 (n1 in both): W = 2 in each.
        let targets = WriteTargets {
            nodes: vec![0, 1, 2],
            sets: vec![0b01, 0b11, 0b10],
            needs: vec![2, 2],
        };
        let names = vec!["n0".into(), "n1".into(), "n2".into()];
        let mut t = Tally::of(names, &targets);
        assert_eq!(t.ack(1), Outcome::Waiting);
        assert_eq!(t.ack(0), Outcome::Waiting, "the old set has W, the new not");
        assert_eq!(t.ack(2), Outcome::Done);
        let mut t = Tally::of(vec!["n0".into(), "n1".into(), "n2".into()], &targets);
        t.ack(0);
        t.ack(1);
        assert_eq!(
            t.fail(2, failure("n2")),
            Outcome::Failed,
            "the new set lost W"
        );
        assert!(
            t.error().to_string().contains("in each of 2"),
            "{}",
            t.error()
        );
    }
}
