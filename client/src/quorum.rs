//! Counting replica answers against a write quorum: the rule in one place, shared by
//! single writes and batches.

use crate::error::{Error, NodeFailure};

/// Answers for one key (or one batch) written to `replicas` nodes, `needed` of which
/// must acknowledge.
#[derive(Debug)]
pub struct Tally {
    pub replicas: Vec<String>,
    pub needed: usize,
    pub acks: usize,
    pub failures: Vec<NodeFailure>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    Waiting,
}

impl Tally {
    pub fn new(replicas: Vec<String>, needed: usize) -> Self {
        Self {
            replicas,
            needed,
            acks: 0,
            failures: Vec::new(),
        }
    }

    /// Where things stand: done once `needed` acked; failed as soon as too few replicas
    /// are left to get there (no need to wait for them).
    pub fn outcome(&self) -> Outcome {
        if self.acks >= self.needed {
            Outcome::Done
        } else if self.replicas.len() - self.failures.len() < self.needed {
            Outcome::Failed
        } else {
            Outcome::Waiting
        }
    }

    pub fn ack(&mut self) -> Outcome {
        self.acks += 1;
        self.outcome()
    }

    pub fn fail(&mut self, f: NodeFailure) -> Outcome {
        self.failures.push(f);
        self.outcome()
    }

    pub fn error(&self) -> Error {
        Error::Quorum {
            needed: self.needed,
            acks: self.acks,
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
        assert_eq!(t.ack(), Outcome::Waiting);
        assert_eq!(t.ack(), Outcome::Done);
    }

    #[test]
    fn failed_as_soon_as_w_is_out_of_reach() {
        let mut t = tally(3, 2);
        assert_eq!(t.fail(failure("n0")), Outcome::Waiting);
        assert_eq!(
            t.fail(failure("n1")),
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
        assert_eq!(t.ack(), Outcome::Failed);
        let e = t.error().to_string();
        assert!(e.contains("[n0]"), "{e}");
    }
}
