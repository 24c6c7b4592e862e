//! Placement is part of the on-disk contract: a key must map to the same nodes in every
//! process and every version, or data written by one client is not found by another.

use dstash_cluster::{Member, Placement};

fn cluster(ids: &[&str]) -> Placement {
    Placement::new(ids.iter().map(|id| Member::new(*id)).collect())
}

#[test]
fn placement_is_pinned_by_test_vectors() {
    let p = cluster(&["node-0", "node-1", "node-2", "node-3", "node-4"]);
    let got: Vec<String> = ["", "a", "user:42", "key-000000000007", "\u{1F600}"]
        .iter()
        .map(|k| p.replica_ids(k.as_bytes(), 3).join(","))
        .collect();
    // If this changes, existing clusters would look for keys in the wrong places.
    assert_eq!(got, VECTORS, "placement changed");
}

const VECTORS: [&str; 5] = [
    "node-1,node-4,node-3",
    "node-2,node-3,node-4",
    "node-2,node-4,node-3",
    "node-1,node-2,node-4",
    "node-0,node-2,node-3",
];

#[test]
fn zoned_placement_is_pinned_by_test_vectors() {
    let zones = ["a", "a", "b", "b", "c"];
    let p = Placement::new(
        (0..5)
            .map(|i| Member {
                zone: zones[i].to_string(),
                ..Member::new(format!("node-{i}"))
            })
            .collect(),
    );
    let got: Vec<String> = ["", "a", "user:42", "key-000000000007", "\u{1F600}"]
        .iter()
        .map(|k| p.replica_ids(k.as_bytes(), 3).join(","))
        .collect();
    assert_eq!(got, ZONED_VECTORS, "zoned placement changed");
}

// Zones a: node-0, node-1; b: node-2, node-3; c: node-4. The unzoned vectors' second
// key ("node-2,node-3,node-4", two in b) becomes b, c, a.
const ZONED_VECTORS: [&str; 5] = [
    "node-1,node-4,node-3",
    "node-2,node-4,node-0",
    "node-2,node-4,node-0",
    "node-1,node-2,node-4",
    "node-0,node-2,node-4",
];

#[test]
fn partitions_and_digest_items_are_pinned() {
    use dstash_cluster::{digest_item, partition_of, Version};
    let got: Vec<(u32, u32, u64)> = ["", "a", "user:42"]
        .iter()
        .map(|k| {
            let (leaf, item) = digest_item(
                k.as_bytes(),
                Version {
                    ts: 7 << 16,
                    writer: 3,
                },
            );
            (partition_of(k.as_bytes()), leaf, item)
        })
        .collect();
    // If this changes, replicas of different versions see every leaf as different.
    assert_eq!(got, ITEMS, "partitioning or digest items changed");
}

const ITEMS: [(u32, u32, u64); 3] = [
    (506, 32441, 12648980247111252506),
    (233, 14947, 15978479872939761153),
    (216, 13853, 13007773805226519545),
];

#[test]
fn three_nodes_share_100k_keys_within_ten_percent() {
    let p = cluster(&["node-0", "node-1", "node-2"]);
    let mut first = [0usize; 3];
    let mut held = [0usize; 3];
    for i in 0..100_000 {
        let k = format!("key-{i:012}");
        let r = p.replicas(k.as_bytes(), 2);
        first[r[0]] += 1;
        for n in r {
            held[n] += 1;
        }
    }
    for (n, &c) in first.iter().enumerate() {
        let share = c as f64 / 100_000.0;
        assert!(
            (share - 1.0 / 3.0).abs() < 0.1 / 3.0,
            "node {n} owns {share}"
        );
    }
    for (n, &c) in held.iter().enumerate() {
        let share = c as f64 / 200_000.0;
        assert!(
            (share - 1.0 / 3.0).abs() < 0.1 / 3.0,
            "node {n} holds {share} of the copies"
        );
    }
}
