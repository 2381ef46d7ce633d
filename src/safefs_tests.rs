//! Unit tests of `safefs` (beside it, to keep that file short).

use super::*;
use std::io::Read;

#[test]
fn special_files_are_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let sock = t.path().join("sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for (p, kind, want) in [
        (&fifo, Kind::Regular, "is a FIFO"),
        (&fifo, Kind::RegularOrBlock, "is a FIFO"),
        (&t.path().to_path_buf(), Kind::Regular, "is a directory"),
        (
            &Path::new("/dev/null").to_path_buf(),
            Kind::RegularOrBlock,
            "is a character device",
        ),
    ] {
        let e = open_file(p, false, kind, OFlag::empty()).unwrap_err();
        assert!(format!("{e:#}").contains(want), "{}: {e:#}", p.display());
    }
    // a socket cannot be opened at all: still an error, never a hang
    assert!(open_file(&sock, false, Kind::Regular, OFlag::empty()).is_err());
    let mut f = open_file(&file, false, Kind::Regular, OFlag::empty()).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "x");
}

#[test]
fn atomic_write_and_replace() {
    let t = tempfile::tempdir().unwrap();
    let d = SafeDir::open(t.path()).unwrap();
    d.write_atomic("f", b"one").unwrap();
    d.write_atomic("f", b"two").unwrap();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"two");
    let leftovers: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

#[test]
fn symlinked_target_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, t.path().join("flag")).unwrap();
    let d = SafeDir::open(t.path()).unwrap();
    let err = d.write_atomic("flag", b"x").unwrap_err();
    assert!(format!("{err:#}").contains("symlink"), "{err:#}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn symlinked_subdir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), t.path().join("abguard")).unwrap();
    let d = SafeDir::open(t.path()).unwrap();
    assert!(d.subdir("abguard", true).is_err());
    assert!(d.subpath("abguard/x", true).is_err());
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn nested_create() {
    let t = tempfile::tempdir().unwrap();
    let d = SafeDir::open(t.path()).unwrap();
    let h = d.subpath("var/lib/abguard", true).unwrap();
    h.write_atomic("a.jsonl", b"{}\n").unwrap();
    assert!(t.path().join("var/lib/abguard/a.jsonl").is_file());
    assert_eq!(h.read("a.jsonl", 1 << 20).unwrap().unwrap(), b"{}\n");
    assert_eq!(h.read("missing", 1 << 20).unwrap(), None);
}

#[test]
fn tail_counts_every_line_keeps_only_the_end() {
    let t = tempfile::tempdir().unwrap();
    let d = SafeDir::open(t.path()).unwrap();
    assert!(d.tail("missing", 100).unwrap().is_none());
    // 3,000 lines of 13 bytes: the counting spans several 16 KiB chunks before the tail
    let text: String = (0..3000).map(|i| format!("line {i:07}\n")).collect();
    std::fs::write(t.path().join("f"), &text).unwrap();
    for max in [0, 1, 100, 16 * 1024, 20_000, 39_000, 1 << 20] {
        let tail = d.tail("f", max).unwrap().unwrap();
        assert_eq!(tail.lines, 3000, "max {max}");
        let keep = text.len().min(max as usize);
        assert_eq!(
            tail.bytes,
            text.as_bytes()[text.len() - keep..],
            "max {max}"
        );
        assert_eq!(tail.whole, keep == text.len(), "max {max}");
    }
}

#[test]
fn bounded_reads_name_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("c.conf");
    std::fs::write(&f, vec![b'x'; 100]).unwrap();
    assert_eq!(read_bounded(&f, 100).unwrap().unwrap().len(), 100);
    let e = read_bounded(&f, 99).unwrap_err().to_string();
    assert!(e.contains("larger than 99 bytes"), "{e}");
    assert_eq!(read_bounded(&t.path().join("none"), 9).unwrap(), None);
    std::fs::write(&f, b"\xff").unwrap();
    assert!(read_text(&f, 9)
        .unwrap_err()
        .to_string()
        .contains("not UTF-8"));
    let fifo = t.path().join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let e = read_bounded(&fifo, 9).unwrap_err().to_string();
    assert!(e.contains("is a FIFO"), "{e}");
    let d = SafeDir::open(t.path()).unwrap();
    assert!(format!("{:#}", d.read("fifo", 9).unwrap_err()).contains("not a regular file"));
    // a FIFO with no reader fails the non-blocking open itself (ENXIO): never a hang
    assert!(d.create("fifo", 0o600).is_err());
    assert!(!d.create_new("fifo").unwrap() && d.create_new("new").unwrap());
}
