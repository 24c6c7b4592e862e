//! The layout: which nodes own the data, as an operator last set it. It is separate
//! from liveness: a node that is down stays in the layout (reads and writes fail over
//! around it), and only an applied layout moves data.
//!
//! A layout has an epoch, the replication factor, its members (id, address, weight,
//! zone) and the stage of a transition from the previous member set, if one runs. The
//! stages and what holds in each are ScyllaDB's tablet stages, simplified:
//!
//! - `Stable`: one member set; reads and writes use it.
//! - `WriteBoth`: writes go to the old and the new owners, acknowledged only with W in
//!   each set; reads use the old owners, which hold everything acknowledged so far.
//! - `Streaming`: as `WriteBoth`, while old owners stream to new owners what they gain.
//!   Once it ends, every new owner holds every write acknowledged before it began, and
//!   every later one through the double writes.
//! - `ReadNew`: reads switch to the new owners; writes still go to both sets, so a
//!   reader that has not switched yet still sees every write.
//! - `Cleanup`: writes and reads use the new owners only; old owners drop what they no
//!   longer own (only if unchanged since it was streamed); then the layout is `Stable`
//!   at the new set.
//!
//! [`Layout::read_members`] and [`Layout::write_members`] state these rules in code.
//!
//! A transition may also name members it leaves as **gone**: down for good, so it
//! neither waits for them nor writes to them ([`gone`]).
//!
//! [`codec`] is its durable form.

pub mod codec;
mod gone;
mod moves;

pub use moves::Move;

use crate::placement::{Member, Placement};

/// A node of the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutMember {
    pub id: String,
    /// HOST:PORT where the node serves.
    pub addr: String,
    pub weight: f64,
    /// The failure domain; empty: none.
    pub zone: String,
}

/// Where a transition stands; see the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Stable,
    WriteBoth,
    Streaming,
    ReadNew,
    Cleanup,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Stable => "stable",
            Stage::WriteBoth => "write-both",
            Stage::Streaming => "streaming",
            Stage::ReadNew => "read-new",
            Stage::Cleanup => "cleanup",
        }
    }

    /// The stage's number in the durable form and in metrics: 0 stable to 4 cleanup.
    pub fn code(self) -> u8 {
        match self {
            Stage::Stable => 0,
            Stage::WriteBoth => 1,
            Stage::Streaming => 2,
            Stage::ReadNew => 3,
            Stage::Cleanup => 4,
        }
    }

    /// The stage after this one; `Stable` after `Cleanup`.
    fn next(self) -> Stage {
        match self {
            Stage::Stable | Stage::Cleanup => Stage::Stable,
            Stage::WriteBoth => Stage::Streaming,
            Stage::Streaming => Stage::ReadNew,
            Stage::ReadNew => Stage::Cleanup,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Raised by every applied layout and by every stage step.
    pub epoch: u64,
    /// Copies of each key.
    pub replicas: u8,
    pub members: Vec<LayoutMember>,
    /// During a transition: the member set it moves from. Empty when `Stable`.
    pub previous: Vec<LayoutMember>,
    pub stage: Stage,
    /// During a transition: ids of the members it leaves that are down for good. Empty
    /// when `Stable`.
    pub gone: Vec<String>,
}

/// Why a layout, or a change to one, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

/// Longest node id a layout accepts (as `dstash node --node-id`).
pub const MAX_ID_LEN: usize = 128;
/// Longest address or zone a layout accepts.
pub const MAX_FIELD_LEN: usize = 255;

fn check_members(members: &[LayoutMember], replicas: u8) -> Result<(), LayoutError> {
    let bad = |m: String| Err(LayoutError(m));
    if members.is_empty() {
        return bad("a layout needs at least one member".into());
    }
    if replicas == 0 {
        return bad("the replication factor must be at least 1".into());
    }
    for (i, m) in members.iter().enumerate() {
        if m.id.is_empty() || m.id.len() > MAX_ID_LEN {
            return bad(format!(
                "member id {:?} must be 1 to {MAX_ID_LEN} bytes",
                m.id
            ));
        }
        if !(m.weight.is_finite() && m.weight > 0.0) {
            return bad(format!(
                "member {}: weight {} must be above 0",
                m.id, m.weight
            ));
        }
        if m.addr.len() > MAX_FIELD_LEN || m.zone.len() > MAX_FIELD_LEN {
            return bad(format!(
                "member {}: address and zone must be at most {MAX_FIELD_LEN} bytes",
                m.id
            ));
        }
        if !m.addr.contains(':') {
            return bad(format!(
                "member {}: address {:?} is not HOST:PORT",
                m.id, m.addr
            ));
        }
        if members[..i].iter().any(|o| o.id == m.id) {
            return bad(format!("member {} is named twice", m.id));
        }
    }
    Ok(())
}

fn placement_of(members: &[LayoutMember]) -> Placement {
    Placement::new(
        members
            .iter()
            .map(|m| Member {
                id: m.id.clone(),
                weight: m.weight,
                zone: m.zone.clone(),
            })
            .collect(),
    )
}

impl Layout {
    /// The first layout: `members`, stable, at epoch 1.
    pub fn first(members: Vec<LayoutMember>, replicas: u8) -> Result<Layout, LayoutError> {
        check_members(&members, replicas)?;
        Ok(Layout {
            epoch: 1,
            replicas,
            members,
            previous: Vec::new(),
            stage: Stage::Stable,
            gone: Vec::new(),
        })
    }

    /// Placement over the current members.
    pub fn placement(&self) -> Placement {
        placement_of(&self.members)
    }

    /// Placement over the members a transition moves from; None when stable.
    pub fn previous_placement(&self) -> Option<Placement> {
        (self.stage != Stage::Stable).then(|| placement_of(&self.previous))
    }

    /// Placement over `members` (from [`Layout::read_members`] or
    /// [`Layout::write_members`]).
    pub fn placement_over(members: &[LayoutMember]) -> Placement {
        placement_of(members)
    }

    /// Starts a transition to `members`: refused while another runs.
    pub fn apply(&self, members: Vec<LayoutMember>) -> Result<Layout, LayoutError> {
        self.replace(members, Vec::new())
    }

    /// Starts a transition to `members` in which the leaving members `gone` are down
    /// for good (see [`gone`]): refused while another runs.
    pub fn replace(
        &self,
        members: Vec<LayoutMember>,
        gone: Vec<String>,
    ) -> Result<Layout, LayoutError> {
        if self.stage != Stage::Stable {
            return Err(LayoutError(format!(
                "a transition is in progress (epoch {}, stage {}): wait for it or abort it",
                self.epoch,
                self.stage.as_str()
            )));
        }
        check_members(&members, self.replicas)?;
        gone::check_leaving(&self.members, &members, &gone)?;
        Ok(Layout {
            epoch: self.epoch + 1,
            replicas: self.replicas,
            members,
            previous: self.members.clone(),
            stage: Stage::WriteBoth,
            gone,
        })
    }

    /// The next stage of the running transition, at the next epoch; stable stays.
    pub fn advance(&self) -> Layout {
        if self.stage == Stage::Stable {
            return self.clone();
        }
        let stage = self.stage.next();
        Layout {
            epoch: self.epoch + 1,
            previous: match stage {
                Stage::Stable => Vec::new(),
                _ => self.previous.clone(),
            },
            gone: match stage {
                Stage::Stable => Vec::new(),
                _ => self.gone.clone(),
            },
            stage,
            ..self.clone()
        }
    }

    /// Returns to the member set the transition started from, by the same stages:
    /// before reads switched (`WriteBoth`, `Streaming`), the old owners still hold
    /// everything, so the new owners' partial copies only need cleaning up; after
    /// (`ReadNew`), both sets hold everything and reads switch back at once. Refused in
    /// `Cleanup`: old owners may have dropped data.
    pub fn abort(&self) -> Result<Layout, LayoutError> {
        let stage = match self.stage {
            Stage::Stable => return Err(LayoutError("no transition to abort".into())),
            Stage::Cleanup => {
                return Err(LayoutError(
                    "the transition is cleaning up old owners; it can no longer be aborted".into(),
                ))
            }
            Stage::WriteBoth | Stage::Streaming => Stage::Cleanup,
            Stage::ReadNew => Stage::ReadNew,
        };
        Ok(Layout {
            epoch: self.epoch + 1,
            replicas: self.replicas,
            members: self.previous.clone(),
            previous: self.members.clone(),
            stage,
            gone: self.gone.clone(),
        })
    }

    /// Every node the layout names, members first, then the previous members that are
    /// not members any more: the nodes a transition must reach.
    pub fn union(&self) -> Vec<&LayoutMember> {
        let mut all: Vec<&LayoutMember> = self.members.iter().collect();
        for p in &self.previous {
            if !all.iter().any(|m| m.id == p.id) {
                all.push(p);
            }
        }
        all
    }

    /// The node that takes this layout to its next one: during a transition the
    /// lowest id of the set it moves from that is not gone (it holds every layout of
    /// the transition), else the lowest member id. Each epoch has one driver, so each
    /// next epoch is made in one place.
    pub fn driver(&self) -> &str {
        self.driver_without(&[])
    }

    /// [`Layout::driver`] were the members `gone` gone too: who makes a change that
    /// declares them so.
    pub fn driver_without(&self, gone: &[String]) -> &str {
        let from = match self.stage {
            Stage::Stable => &self.members,
            _ => &self.previous,
        };
        from.iter()
            .map(|m| m.id.as_str())
            .filter(|id| !self.is_gone(id) && !gone.iter().any(|g| g == id))
            .min()
            .unwrap_or("")
    }

    /// The member named `id` in this layout or the previous one.
    pub fn member(&self, id: &str) -> Option<&LayoutMember> {
        self.union().into_iter().find(|m| m.id == id)
    }

    /// Whose copies reads use: the old owners until streaming is done, then the new.
    pub fn read_members(&self) -> &[LayoutMember] {
        match self.stage {
            Stage::WriteBoth | Stage::Streaming => &self.previous,
            Stage::Stable | Stage::ReadNew | Stage::Cleanup => &self.members,
        }
    }

    /// The member sets a write must reach W in: both while either set may serve reads.
    pub fn write_members(&self) -> Vec<&[LayoutMember]> {
        match self.stage {
            Stage::WriteBoth | Stage::Streaming | Stage::ReadNew => {
                vec![&self.previous, &self.members]
            }
            Stage::Stable | Stage::Cleanup => vec![&self.members],
        }
    }
}

#[cfg(test)]
mod tests;
