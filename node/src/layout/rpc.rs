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

pub fn node_of(m: &LayoutMember) -> LayoutNode {
    LayoutNode {
        id: m.id.clone(),
        address: m.addr.clone(),
        weight: m.weight,
        zone: m.zone.clone(),
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
    let next = match cell.current() {
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
            check_driver(&first, me)?;
            first.apply(members).map_err(invalid)?
        }
        Some(cur) => {
            check_driver(&cur, me)?;
            if r.expect_epoch != cur.epoch {
                return Err(Status::failed_precondition(format!(
                    "the layout is at epoch {}, not {}: another change came first; show it and try again",
                    cur.epoch, r.expect_epoch
                )));
            }
            match r.abort {
                true => cur.abort(),
                false => cur.apply(members),
            }
            .map_err(|e| Status::failed_precondition(e.0))?
        }
    };
    let expect = cell.epoch();
    cell.install(next, Some(expect)).await?;
    Ok(cell.state(me))
}

fn check_driver(l: &Layout, me: &str) -> Result<(), Status> {
    let driver = l.driver();
    if driver != me {
        let at = l.member(driver).map_or("", |m| m.addr.as_str());
        return Err(Status::failed_precondition(format!(
            "layout changes go to the layout's driver, node {driver} ({at}), not {me}"
        )));
    }
    Ok(())
}
