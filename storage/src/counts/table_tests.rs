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
    let at = t.slot_at(slot) + CELLS_AT + 12;
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
