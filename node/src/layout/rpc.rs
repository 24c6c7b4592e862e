//! The layout handlers: convert, check, delegate to the cell.

use dstash_cluster::{Layout, LayoutMember};
use dstash_proto::v1::{ChangeLayoutRequest, LayoutNode, LayoutState, SetLayoutRequest};
use tonic::Status;

use super::LayoutCell;

/// Copies of each key when a first layout names none.
const DEFAULT_REPLICAS: u8 = 2;

pub fn member_of(n: &LayoutNode) -> LayoutMember {
    LayoutMember {
        id: n.id.clone(),
        addr: n.address.clone(),
        weight: if n.weight == 0.0 { 1.0 } else { n.weight },
        zone: n.zone.clone(),
    }
}

fn invalid(e: dstash_cluster::LayoutError) -> Status {
    Status::invalid_argument(e.0)
}

pub async fn set(cell: &LayoutCell, me: &str, r: SetLayoutRequest) -> Result<LayoutState, Status> {
    let layout = Layout::decode(&r.layout).map_err(invalid)?;
    cell.install(layout, None).await?;
    Ok(cell.state(me))
}

/// A change is made by the driver of the layout it changes, against the epoch the
/// operator saw: so each epoch has exactly one successor.
pub async fn change(
    cell: &LayoutCell,
    me: &str,
    r: ChangeLayoutRequest,
) -> Result<LayoutState, Status> {
    let members: Vec<LayoutMember> = r.members.iter().map(member_of).collect();
    let current = cell.current();
    let based_on = current.as_ref().map_or(0, |l| l.epoch);
    let next = match current {
        None => {
            if r.initial.is_empty() {
                return Err(Status::failed_precondition(
                    "this node has no layout yet: name the members the cluster runs on now",
                ));
            }
            let replicas = match r.replicas {
                0 => DEFAULT_REPLICAS,
                n => u8::try_from(n).map_err(|_| {
                    Status::invalid_argument(format!("{n} copies of each key is too many"))
                })?,
            };
            let first = Layout::first(r.initial.iter().map(member_of).collect(), replicas)
                .map_err(invalid)?;
            check_driver(&first, &r.gone, me)?;
            first.replace(members, r.gone).map_err(invalid)?
        }
        Some(cur) => {
            check_driver(&cur, &r.gone, me)?;
            // A change refused on its own (a transition runs) says so, whatever epoch
            // it was computed against.
            let next = amend(&cur, r.abort, members, r.gone)
                .map_err(|e| Status::failed_precondition(e.0))?;
            if r.expect_epoch != cur.epoch {
                return Err(Status::failed_precondition(format!(
                    "the layout is at epoch {}, not {}: another change came first; show it and try again",
                    cur.epoch, r.expect_epoch
                )));
            }
            next
        }
    };
    // Installed only if the layout is still the one the change was made from.
    if !cell.install(next, Some(based_on)).await? {
        return Err(Status::failed_precondition(
            "another change came first; show the layout and try again",
        ));
    }
    Ok(cell.state(me))
}

/// The change a request asks of `cur`: an abort (leaving the joining members named
/// gone), members named gone in the running transition (no members given), or a new
/// member set.
fn amend(
    cur: &Layout,
    abort: bool,
    members: Vec<LayoutMember>,
    gone: Vec<String>,
) -> Result<Layout, dstash_cluster::LayoutError> {
    match (abort, members.is_empty() && !gone.is_empty()) {
        (true, _) if gone.is_empty() => cur.abort(),
        (true, _) => Ok(Layout {
            epoch: cur.epoch + 1,
            ..cur.abort()?.declare_gone(&gone)?
        }),
        (false, true) => cur.declare_gone(&gone),
        (false, false) => cur.replace(members, gone),
    }
}

/// A change that declares members gone goes to the driver without them (the usual
/// driver may be the dead node).
fn check_driver(l: &Layout, gone: &[String], me: &str) -> Result<(), Status> {
    let driver = l.driver_without(gone);
    if driver != me {
        let at = l.member(driver).map_or("", |m| m.addr.as_str());
        return Err(Status::failed_precondition(format!(
            "layout changes go to the layout's driver, node {driver} ({at}), not {me}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<LayoutNode> {
        ids.iter()
            .map(|id| LayoutNode {
                id: id.to_string(),
                address: format!("{id}:1"),
                weight: 0.0,
                zone: String::new(),
            })
            .collect()
    }

    fn apply(expect: u64, to: &[&str]) -> ChangeLayoutRequest {
        ChangeLayoutRequest {
            expect_epoch: expect,
            members: nodes(to),
            abort: false,
            initial: Vec::new(),
            replicas: 0,
            gone: Vec::new(),
        }
    }

    #[tokio::test]
    async fn only_the_driver_changes_a_layout_and_only_from_the_epoch_seen() {
        let cell = LayoutCell::in_memory();
        let e = change(&cell, "a", apply(0, &["a", "b", "c"]))
            .await
            .unwrap_err();
        assert!(e.message().contains("no layout yet"), "{}", e.message());
        let mut first = apply(0, &["a", "b", "c"]);
        first.initial = nodes(&["b", "a"]);
        let e = change(&cell, "b", first.clone()).await.unwrap_err();
        assert!(e.message().contains("driver, node a"), "{}", e.message());
        let s = change(&cell, "a", first).await.unwrap();
        let l = Layout::decode(&s.layout).unwrap();
        assert_eq!(
            (l.epoch, l.stage, l.replicas),
            (2, dstash_cluster::Stage::WriteBoth, 2)
        );
        assert_eq!(l.previous.len(), 2);
        assert_eq!(l.members[0].weight, 1.0, "weight 0 on the wire is 1");
        let mut stale = apply(1, &[]);
        stale.abort = true;
        let e = change(&cell, "a", stale).await.unwrap_err();
        assert!(e.message().contains("at epoch 2, not 1"), "{}", e.message());
        // A second apply is refused as such, whatever epoch it was made against.
        for expect in [1, 2] {
            let e = change(&cell, "a", apply(expect, &["a"])).await.unwrap_err();
            assert!(e.message().contains("in progress"), "{}", e.message());
        }
        let mut abort = apply(2, &[]);
        abort.abort = true;
        let s = change(&cell, "a", abort).await.unwrap();
        let l = Layout::decode(&s.layout).unwrap();
        assert_eq!((l.epoch, l.members.len()), (3, 2), "back to a and b");
    }

    #[tokio::test]
    async fn members_that_died_are_declared_gone_by_the_driver_without_them() {
        let cell = LayoutCell::in_memory();
        let mut first = apply(0, &["b", "c", "d"]);
        first.initial = nodes(&["a", "b", "c"]);
        change(&cell, "a", first).await.unwrap();
        // a (leaving, the driver) died: b takes the declaration.
        let mut gone = apply(2, &[]);
        gone.gone = vec!["a".into()];
        let e = change(&cell, "a", gone.clone()).await.unwrap_err();
        assert!(e.message().contains("driver, node b"), "{}", e.message());
        let l = Layout::decode(&change(&cell, "b", gone).await.unwrap().layout).unwrap();
        assert_eq!((l.epoch, l.gone.clone()), (3, vec!["a".to_string()]));
        // d is joining: only an abort leaves it.
        let mut d = apply(3, &[]);
        d.gone = vec!["d".into()];
        let e = change(&cell, "b", d.clone()).await.unwrap_err();
        assert!(e.message().contains("by an abort"), "{}", e.message());
        d.abort = true;
        let l = Layout::decode(&change(&cell, "b", d).await.unwrap().layout).unwrap();
        assert_eq!(l.epoch, 4, "one epoch for the abort and its gone");
        assert!(l.is_gone("a") && l.is_gone("d"));
        assert_eq!(l.members.len(), 3, "back to a, b, c");
    }
}
