use super::*;
use crate::io::RealIo;

fn table(dir: &Path) -> Table {
    Table::create(
        &dir.join(file_name(0)),
        0,
        60,
        60,
        MIN_BITS,
        7,
        Arc::new(RealIo),
    )
    .unwrap()
}

#[test]
fn slots_round_trip_across_reopen_and_growth() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path());
    let n = 64;
    let mut c = Cells {
        last: 5,
        cells: vec![0; t.schedule.len()],
    };
    for i in 0..300u64 {
        if t.is_full() {
            t = t.grown().unwrap();
        }
        c.cells[(i % n) as usize] = i as u32;
        t.insert(i + 1, format!("k{i}").as_bytes(), c.last, &c.cells)
            .unwrap();
    }
    drop(t);
    let t = Table::open(&dir.path().join(file_name(0)), Arc::new(RealIo)).unwrap();
    assert_eq!(t.live(), 300);
    for i in 0..300u64 {
        let slot = t.find(i + 1, format!("k{i}").as_bytes()).unwrap();
        let (got, ok) = t.read(slot);
        assert!(ok, "crc of key {i}");
        assert_eq!(got.cells[(i % n) as usize], i as u32);
    }
    assert!(t.find(999, b"nope").is_none());
}

#[test]
fn a_flipped_byte_fails_the_crc_and_quarantine_zeroes_the_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path());
    let mut c = Cells {
        last: 9,
        cells: vec![0; t.schedule.len()],
    };
    c.cells[3] = 41;
    let slot = t.insert(77, b"key", c.last, &c.cells).unwrap();
    assert_eq!(t.read(slot), (c.clone(), true));
    let at = t.record(slot).unwrap() + CELLS_AT + 12;
    t.map[at] ^= 0x10;
    let (damaged, ok) = t.read(slot);
    assert!(!ok);
    assert_eq!(damaged.cells[3], 41 ^ 0x10);
    t.zero(slot);
    let (q, ok) = t.read(slot);
    assert!(ok);
    assert!(q.cells.iter().all(|&v| v == 0));
    assert_eq!(t.find(77, b"key"), Some(slot), "the key stays");
}

#[test]
fn an_entry_past_the_heap_end_is_passed_by_probes_and_taken_by_an_insert() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path());
    let cells = vec![1; t.schedule.len()];
    // Two keys with one home: the second sits past the first.
    let (h1, h2) = (5u64 << 56 | 1, 5u64 << 56 | 2);
    let s1 = t.insert(h1, b"one", 3, &cells).unwrap();
    let s2 = t.insert(h2, b"two", 3, &cells).unwrap();
    assert_eq!(s2, s1 + 1);
    // A crash wrote back the first entry's page but not the heap end that covers it.
    let end = t.heap_end();
    t.set_u64(HEAP_END_AT, t.record(s1).unwrap() as u64);
    assert_eq!(t.find(h1, b"one"), None, "the record is past the heap end");
    assert!(matches!(t.slot(s1), Slot::Dead));
    t.set_u64(HEAP_END_AT, end);
    let orphan = (tag(h1) << 32) | ((end - t.heap_at) / 8 + 1);
    t.set_u64(Table::entry_at(s1), orphan);
    assert_eq!(t.find(h2, b"two"), Some(s2), "probes go past a dead entry");
    let live = t.live();
    let again = t.insert(h1, b"one", 4, &cells).unwrap();
    assert_eq!(again, s1, "an insert takes the dead entry's place");
    assert_eq!(t.live(), live, "a reused entry is not counted twice");
    assert_eq!(t.read(again).0.last, 4);
    assert_eq!(t.find(h2, b"two"), Some(s2));
}

#[test]
fn growing_copies_records_whole_and_a_key_costs_its_record_plus_sparse_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Table::create(
        &dir.path().join(file_name(0)),
        0,
        86_400,
        86_400,
        MIN_BITS,
        7,
        Arc::new(RealIo),
    )
    .unwrap();
    let n = 20_000u64;
    for i in 0..n {
        if t.is_full() {
            t = t.grown().unwrap();
        }
        let key = format!("10.0.{}.{}", i / 256, i % 256);
        let mut cells = vec![0; t.schedule.len()];
        cells[(i % 151) as usize] = i as u32 + 1;
        t.insert(
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            key.as_bytes(),
            i,
            &cells,
        )
        .unwrap();
    }
    assert_eq!(t.live(), n);
    for i in (0..n).step_by(97) {
        let key = format!("10.0.{}.{}", i / 256, i % 256);
        let slot = t.find(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, key.as_bytes());
        let (c, ok) = t.read(slot.unwrap());
        assert!(ok);
        assert_eq!((c.last, c.cells[(i % 151) as usize]), (i, i as u32 + 1));
    }
    // 151 cells (604 B), 24 B of header and the key in a record; 8 B per entry.
    let record = t.record_len(12) as f64;
    let per_key = (t.heap_end() - t.heap_at) as f64 / n as f64;
    assert!(per_key <= record + 8.0, "{per_key} B of heap per key");
    let entries = (8u64 << t.bits) as f64 / n as f64;
    assert!(entries <= 32.0, "{entries} B of entries per key");
}
