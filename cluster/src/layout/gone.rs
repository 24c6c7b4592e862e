//! Members a transition leaves that are down for good: a dead node replaced by a new
//! one, or removed, in one transition. The operator declares them; nothing infers it,
//! since a node that is only cut off may still hold writes no other node has.
//!
//! A gone member keeps its place in placement (the old owners stay what they were),
//! but the transition neither waits for it (it sends nothing and cleans nothing) nor
//! writes to it: a write needs W, or as many as there are, of the owners in each set
//! that are not gone. Every partition it owned is still sent by its other old owners,
//! so with R >= 2 and one member gone, every write acknowledged by W >= 2 arrives.
//!
//! A member may be declared gone at the change that leaves it, or later while the
//! transition runs (it died in the middle). A joining node that died is left by an
//! abort, and may be declared gone then.

use super::{Layout, LayoutError, LayoutMember};

/// Checks that each of `gone` is a member of `from` left out of `to`, named once.
pub(super) fn check_leaving(
    from: &[LayoutMember],
    to: &[LayoutMember],
    gone: &[String],
) -> Result<(), LayoutError> {
    for (i, g) in gone.iter().enumerate() {
        if !from.iter().any(|m| &m.id == g) {
            return Err(LayoutError(format!(
                "{g} is declared gone but is not one of the members this change leaves (a joining member is left by an abort)"
            )));
        }
        if to.iter().any(|m| &m.id == g) {
            return Err(LayoutError(format!(
                "{g} is declared gone but stays a member"
            )));
        }
        if gone[..i].contains(g) {
            return Err(LayoutError(format!("{g} is declared gone twice")));
        }
    }
    Ok(())
}

impl Layout {
    /// The running transition, with the members `gone` (leaving ones) declared gone too,
    /// at the next epoch: for a node that died in the middle of it.
    pub fn declare_gone(&self, gone: &[String]) -> Result<Layout, LayoutError> {
        if self.stage == super::Stage::Stable {
            return Err(LayoutError(
                "no transition is running: name gone members with the change that leaves them"
                    .into(),
            ));
        }
        let new: Vec<String> = gone.iter().filter(|g| !self.is_gone(g)).cloned().collect();
        check_leaving(&self.previous, &self.members, &new)?;
        let mut all = self.gone.clone();
        all.extend(new);
        Ok(Layout {
            epoch: self.epoch + 1,
            gone: all,
            ..self.clone()
        })
    }

    /// True when the transition declared member `id` gone.
    pub fn is_gone(&self, id: &str) -> bool {
        self.gone.iter().any(|g| g == id)
    }

    /// The nodes a transition must reach and wait for: [`Layout::union`] but the gone.
    pub fn awaited(&self) -> Vec<&LayoutMember> {
        let mut all = self.union();
        all.retain(|m| !self.is_gone(&m.id));
        all
    }
}
