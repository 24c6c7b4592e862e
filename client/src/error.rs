//! What a client call can fail with.

use std::fmt;

/// One node's failure, kept so that a missed quorum can say what happened where.
#[derive(Debug, Clone)]
pub struct NodeFailure {
    pub node: String,
    pub code: tonic::Code,
    pub message: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}: {}", self.node, self.code, self.message)
    }
}

fn list(failures: &[NodeFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "write quorum not reached: needed {needed} acks{} from replicas [{}], got {acks}{}",
        if *.sets > 1 { format!(" in each of {} replica sets (a layout transition runs)", .sets) } else { String::new() },
        .replicas.join(", "),
        if .failures.is_empty() { String::new() } else { format!(" ({})", list(.failures)) }
    )]
    Quorum {
        needed: usize,
        /// Sets of replicas that each needed `needed` (2 during a layout transition).
        sets: usize,
        acks: usize,
        replicas: Vec<String>,
        failures: Vec<NodeFailure>,
    },
    /// Every replica that could answer a read failed.
    #[error("no replica answered ({})", list(.failures))]
    Unavailable { failures: Vec<NodeFailure> },
    /// The node rejected the request itself (bad input): retrying elsewhere cannot help.
    #[error("{0}")]
    Rejected(NodeFailure),
    /// The request was routed by a layout older than a node's; the call refreshes its
    /// layout and retries, so callers see this only when that kept happening.
    #[error("{0} (the layout kept changing while the call was retried)")]
    StaleLayout(NodeFailure),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// A load's input could not be read, or a malformed line stopped it.
    #[error("{0}")]
    Input(String),
    /// A backup file is damaged or cut short: nothing of it was restored.
    #[error("the backup is damaged at byte offset {offset}: {reason}")]
    BadBackup { offset: u64, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The call's error when a node refused the request itself: bad input or auth
/// (`Rejected`: no replica would take it), or routing by an old layout
/// (`StaleLayout`: the caller refreshes its layout and retries).
pub fn refused(f: &NodeFailure) -> Option<Error> {
    if f.code == tonic::Code::Aborted {
        return Some(Error::StaleLayout(f.clone()));
    }
    is_rejection(f.code).then(|| Error::Rejected(f.clone()))
}

/// Codes that mean "this request is wrong", the same on every replica.
pub fn is_rejection(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument | Unauthenticated | PermissionDenied | OutOfRange | FailedPrecondition
    )
}
