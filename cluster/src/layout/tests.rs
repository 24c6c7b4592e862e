use super::*;

fn members(ids: &[&str]) -> Vec<LayoutMember> {
    ids.iter()
        .map(|id| LayoutMember {
            id: id.to_string(),
            addr: format!("{id}.dstash:5000"),
            weight: 1.0,
            zone: String::new(),
        })
        .collect()
}

#[test]
fn a_transition_walks_its_stages_and_ends_stable_at_the_new_set() {
    let l = Layout::first(members(&["a", "b", "c"]), 2).unwrap();
    assert_eq!((l.epoch, l.stage), (1, Stage::Stable));
    let mut t = l.apply(members(&["a", "b", "c", "d", "e"])).unwrap();
    let mut seen = vec![t.stage];
    while t.stage != Stage::Stable {
        let next = t.advance();
        assert_eq!(next.epoch, t.epoch + 1, "every step raises the epoch");
        t = next;
        seen.push(t.stage);
    }
    use Stage::*;
    assert_eq!(seen, [WriteBoth, Streaming, ReadNew, Cleanup, Stable]);
    assert_eq!(t.members.len(), 5);
    assert!(t.previous.is_empty());
}

#[test]
fn reads_stay_on_the_old_owners_until_streaming_is_done() {
    let l = Layout::first(members(&["a", "b"]), 2).unwrap();
    let t = l.apply(members(&["c", "d"])).unwrap();
    let ids = |m: &[LayoutMember]| m.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(t.read_members()), ["a", "b"]);
    assert_eq!(t.write_members().len(), 2);
    let streaming = t.advance();
    assert_eq!(ids(streaming.read_members()), ["a", "b"]);
    let read_new = streaming.advance();
    assert_eq!(ids(read_new.read_members()), ["c", "d"]);
    assert_eq!(
        read_new.write_members().len(),
        2,
        "old readers still see writes"
    );
    let cleanup = read_new.advance();
    assert_eq!(cleanup.write_members().len(), 1);
}

#[test]
fn a_second_apply_is_refused_and_an_abort_goes_back() {
    let l = Layout::first(members(&["a", "b"]), 2).unwrap();
    let t = l.apply(members(&["a", "b", "c"])).unwrap();
    let e = t.apply(members(&["a"])).unwrap_err().to_string();
    assert!(e.contains("in progress") && e.contains("epoch 2"), "{e}");
    // Before reads switched: the old set reads on; the new owners are cleaned up.
    let back = t.advance().abort().unwrap();
    assert_eq!((back.stage, back.members.len()), (Stage::Cleanup, 2));
    assert_eq!(back.advance().stage, Stage::Stable);
    // After: reads switch back at once, both sets still written.
    let back = t.advance().advance().abort().unwrap();
    assert_eq!((back.stage, back.read_members().len()), (Stage::ReadNew, 2));
    assert!(t.advance().advance().advance().abort().is_err());
    assert!(l.abort().is_err());
}

#[test]
fn bad_member_sets_are_refused_with_a_reason() {
    let mut twice = members(&["a", "a"]);
    assert!(Layout::first(twice.clone(), 1)
        .unwrap_err()
        .0
        .contains("twice"));
    twice[1].id = "b".into();
    twice[1].weight = 0.0;
    assert!(Layout::first(twice, 1).unwrap_err().0.contains("weight"));
    assert!(Layout::first(vec![], 1).is_err());
    assert!(Layout::first(members(&["a"]), 0).is_err());
}

#[test]
fn the_durable_form_round_trips_and_refuses_any_damage() {
    let mut zoned = members(&["a", "b", "c"]);
    zoned[0].zone = "eu-1a".into();
    zoned[1].weight = 2.5;
    let l = Layout::first(zoned, 3)
        .unwrap()
        .apply(members(&["a", "b", "c", "d"]))
        .unwrap()
        .advance();
    let b = l.encode();
    assert_eq!(
        u16::from_le_bytes([b[4], b[5]]),
        1,
        "no gone members: format 1"
    );
    refuses_any_damage(&l, &b);
    let replacing = Layout::first(members(&["a", "b", "c"]), 2)
        .unwrap()
        .replace(members(&["a", "b", "d"]), vec!["c".into()])
        .unwrap();
    let r = replacing.encode();
    assert_eq!(
        u16::from_le_bytes([r[4], r[5]]),
        2,
        "gone members: format 2"
    );
    refuses_any_damage(&replacing, &r);
    let mut future = b.clone();
    future[4] = 9;
    let e = Layout::decode(&future).unwrap_err().0;
    assert!(e.contains("format version 9"), "{e}");
}

fn refuses_any_damage(l: &Layout, b: &[u8]) {
    assert_eq!(&Layout::decode(b).unwrap(), l);
    for i in 0..b.len() {
        for bit in [0x01, 0x80] {
            let mut d = b.to_vec();
            d[i] ^= bit;
            assert!(Layout::decode(&d).is_err(), "flip at byte {i} accepted");
        }
    }
    for n in 0..b.len() {
        assert!(
            Layout::decode(&b[..n]).is_err(),
            "truncated to {n} accepted"
        );
    }
}

#[test]
fn a_gone_member_is_neither_driver_nor_awaited_and_is_forgotten_when_stable() {
    let l = Layout::first(members(&["a", "b", "c"]), 2).unwrap();
    let gone = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (to, g, why) in [
        (&["a", "b", "d"][..], &["e"][..], "not one of the members"),
        (&["a", "b", "d"], &["b"], "stays a member"),
        (&["a", "d"], &["c", "c"], "twice"),
    ] {
        let e = l.replace(members(to), gone(g)).unwrap_err().0;
        assert!(e.contains(why), "{e}");
    }
    // a, the stable driver, is dead; b takes the change and drives it.
    assert_eq!(l.driver_without(&gone(&["a"])), "b");
    let t = l.replace(members(&["b", "c", "d"]), gone(&["a"])).unwrap();
    assert_eq!(t.driver(), "b");
    let ids = |v: Vec<&LayoutMember>| v.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(t.awaited()), ["b", "c", "d"]);
    assert_eq!(ids(t.union()), ["b", "c", "d", "a"], "a keeps its place");
    assert!(t.is_gone("a") && !t.is_gone("b"));
    let back = t.advance().abort().unwrap();
    assert!(back.is_gone("a"), "an abort still does not wait for it");
    // d joined, died; the abort leaves it, so it may be declared gone.
    assert!(
        t.advance().declare_gone(&gone(&["d"])).is_err(),
        "d is joining"
    );
    let back = back.declare_gone(&gone(&["d"])).unwrap();
    assert_eq!((back.gone.len(), back.stage), (2, Stage::Cleanup));
    assert!(
        l.declare_gone(&gone(&["a"])).is_err(),
        "stable: nothing to amend"
    );
    let mut s = t;
    while s.stage != Stage::Stable {
        s = s.advance();
    }
    assert!(s.gone.is_empty());
}

#[test]
fn one_driver_per_epoch_and_the_union_names_everyone() {
    let l = Layout::first(members(&["b", "c", "d"]), 2).unwrap();
    assert_eq!(l.driver(), "b");
    let t = l.apply(members(&["a", "c"])).unwrap();
    // The driver comes from the set the transition leaves, which holds every layout.
    assert_eq!(t.driver(), "b");
    let ids: Vec<&str> = t.union().iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["a", "c", "b", "d"]);
    assert!(t.member("d").is_some() && t.member("e").is_none());
    let mut s = t.clone();
    while s.stage != Stage::Stable {
        s = s.advance();
    }
    assert_eq!(s.driver(), "a");
    assert_eq!(s.union().len(), 2);
}
