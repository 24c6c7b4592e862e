use super::*;
use crate::io::RealIo;

const DEFAULTS: Settings = Settings {
    retention_secs: 60,
    max_bytes: 0,
    default_ttl_secs: 0,
    changed_at: 0,
};

fn set(dir: &Path) -> Settings {
    let (mut f, s, found) = SettingsFile::open(&RealIo, dir, DEFAULTS).unwrap();
    assert_eq!((s, found), (DEFAULTS, Found::Sound));
    let s = Settings {
        retention_secs: 120,
        max_bytes: 1 << 30,
        default_ttl_secs: 3600,
        changed_at: 77,
    };
    f.write(&RealIo, s).unwrap();
    s
}

fn damage(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

#[test]
fn either_damaged_copy_is_rewritten_from_the_other() {
    for (name, at) in [("NAMESPACE", 20), ("NAMESPACE-B", 3), ("NAMESPACE", 67)] {
        let dir = tempfile::tempdir().unwrap();
        let s = set(dir.path());
        damage(&dir.path().join(name), at);
        let (_, got, found) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
        assert_eq!((got, found), (s, Found::Repaired), "{name} byte {at}");
        let (_, got, found) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
        assert_eq!((got, found), (s, Found::Sound), "{name}: rewritten");
    }
}

#[test]
fn the_newer_copy_wins_after_a_crash_between_the_two_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = set(dir.path());
    let older = std::fs::read(dir.path().join("NAMESPACE-B")).unwrap();
    let (mut f, _, _) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
    let newer = Settings { max_bytes: 5, ..s };
    f.write(&RealIo, newer).unwrap();
    // Copy B as it was before the write: the crash came between A and B.
    std::fs::write(dir.path().join("NAMESPACE-B"), older).unwrap();
    let (_, got, _) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
    assert_eq!(got, newer);
}

#[test]
fn with_both_copies_damaged_the_defaults_serve_and_the_copies_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    set(dir.path());
    damage(&dir.path().join("NAMESPACE"), 30);
    std::fs::write(dir.path().join("NAMESPACE-B"), b"short").unwrap();
    let (_, got, found) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
    assert_eq!((got, found), (DEFAULTS, Found::Lost));
    assert!(dir.path().join("NAMESPACE.damaged").exists());
    assert!(dir.path().join("NAMESPACE-B.damaged").exists());
    let (_, _, found) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
    assert_eq!(found, Found::Sound);
}

#[test]
fn a_version_1_file_is_read_and_upgraded() {
    struct V1(u32);
    impl FileHeader for V1 {
        const MAGIC: &'static [u8; 8] = b"DSTNS\0\0\0";
        const VERSION: u32 = 1;
        fn to_fields(&self) -> [u64; FIELDS] {
            [self.0 as u64, 0, 0, 0, 0, 0]
        }
        fn from_fields(_: [u64; FIELDS]) -> std::result::Result<Self, String> {
            unreachable!()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("NAMESPACE"), header::encode(&V1(300))).unwrap();
    let (_, got, found) = SettingsFile::open(&RealIo, dir.path(), DEFAULTS).unwrap();
    assert_eq!(found, Found::Sound);
    assert_eq!(got.retention_secs, 300);
    let b = std::fs::read(dir.path().join("NAMESPACE-B")).unwrap();
    assert_eq!(decode(&b).unwrap().settings, got);
}
