//! Layouts on a node: the member set placement uses, as an operator last applied it,
//! and the transitions between two (`docs/layout.md`).
//!
//! - [`cell`]: the layout held and stored in `<data>/layout`, and the fence that
//!   refuses requests routed by an older epoch.
//! - [`rpc`]: `GetLayout`, `SetLayout` and `ChangeLayout`.
//! - [`driver`]: moves a transition from stage to stage once every node did its part.
//! - [`handoff`]: the streaming stage: what this node sends to new owners.
//! - [`cursor`]: how far that got, so a restart resumes.
//! - [`counters`]: the expiring counts the streaming stage sends after the records.
//! - [`cleanup`]: the cleanup stage: what this node forgets once it no longer owns it.
//! - [`metrics`]: the epoch and stage held, and the handoff's progress.

pub mod cell;
pub mod cleanup;
pub mod counters;
pub mod cursor;
pub mod driver;
pub mod handoff;
pub mod metrics;
pub mod rpc;

pub use cell::{routed_epoch, LayoutCell, CURRENT_EPOCH_HEADER, EPOCH_HEADER, PEER, PEER_EPOCH};

/// The layout's file under the data directory.
pub const LAYOUT_FILE: &str = "layout";
/// The handoff cursor's file under the data directory.
pub const CURSOR_FILE: &str = "handoff";
