//! The `layout` target: any bytes as a layout's durable form.

use dstash_cluster::{Layout, LayoutMember, Stage};

/// Decodes to an error, or to a valid layout that encodes and decodes back to itself.
pub fn layout(data: &[u8]) {
    let Ok(l) = Layout::decode(data) else {
        return;
    };
    assert!(
        !l.members.is_empty() && l.replicas > 0,
        "decoded an invalid layout"
    );
    assert_eq!(
        l.stage == Stage::Stable,
        l.previous.is_empty(),
        "a transition without a previous member set, or a stable layout with one"
    );
    assert_eq!(
        Layout::decode(&l.encode()).as_ref(),
        Ok(&l),
        "no round trip"
    );
}

fn member(id: &str, zone: &str) -> LayoutMember {
    LayoutMember {
        id: id.into(),
        addr: format!("{id}:5000"),
        weight: 1.0,
        zone: zone.into(),
    }
}

pub fn seeds() -> Vec<Vec<u8>> {
    let first = Layout::first(vec![member("a", "z1"), member("b", "z2")], 2).expect("valid");
    let moving = first
        .apply(vec![member("a", "z1"), member("c", "")])
        .expect("valid");
    vec![first.encode(), moving.encode(), moving.advance().encode()]
}
