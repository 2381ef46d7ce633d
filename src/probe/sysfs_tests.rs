//! Unit tests of `sysfs` (beside it, to keep that file short).

use super::*;

#[path = "../../tests/common/fake_sysfs.rs"]
mod fake_sysfs;
pub(crate) use fake_sysfs::FakeSys;

impl FakeSys {
    pub fn sysfs(&self) -> Sysfs {
        Sysfs {
            root: self.root().to_path_buf(),
            dev: self.root().join("no-dev"),
        }
    }
}

#[test]
fn verity_on_virtio() {
    let f = FakeSys::new();
    f.disk("vda", "254:0");
    f.part("vda", "vda3", 3, "254:3");
    f.part("vda", "vda4", 4, "254:4");
    f.dm("dm-0", "usr", "253:0", &["vda4"]);
    let s = f.sysfs();
    assert_eq!(s.name_of(253, 0).unwrap(), "dm-0");
    assert_eq!(
        s.name_of_path(Path::new("/dev/mapper/usr")).unwrap(),
        "dm-0"
    );
    let b = s.backing_partition("dm-0").unwrap();
    assert_eq!(
        b,
        Backing {
            chain: vec!["dm-0".into(), "vda4".into()],
            partition: 4,
            disk: "vda".into()
        }
    );
}

#[test]
fn plain_partitions_of_every_naming() {
    for (disk, part, n) in [
        ("sda", "sda4", 4),
        ("nvme0n1", "nvme0n1p3", 3),
        ("mmcblk0", "mmcblk0p3", 3),
        ("loop0", "loop0p3", 3),
    ] {
        let f = FakeSys::new();
        f.disk(disk, "8:0");
        f.part(disk, part, n, "8:9");
        let b = f.sysfs().backing_partition(part).unwrap();
        assert_eq!((b.partition, b.disk.as_str()), (n, disk));
        assert_eq!(partition_number_from_name(part), Some(n));
    }
}

#[test]
fn broken_trees_are_errors() {
    // dm without slaves
    let f = FakeSys::new();
    f.dm("dm-0", "usr", "253:0", &[]);
    assert!(f
        .sysfs()
        .backing_partition("dm-0")
        .unwrap_err()
        .to_string()
        .contains("without lower devices"));
    // loop through slaves
    let f = FakeSys::new();
    f.dm("dm-0", "usr", "253:0", &["dm-1"]);
    f.dm("dm-1", "x", "253:1", &["dm-0"]);
    assert!(f
        .sysfs()
        .backing_partition("dm-0")
        .unwrap_err()
        .to_string()
        .contains("loop"));
    // missing partition file
    let f = FakeSys::new();
    f.disk("vda", "254:0");
    f.dm("dm-0", "usr", "253:0", &["vda"]);
    assert!(f
        .sysfs()
        .backing_partition("dm-0")
        .unwrap_err()
        .to_string()
        .contains("not a partition"));
    // two lower devices
    let f = FakeSys::new();
    f.disk("vda", "254:0");
    f.part("vda", "vda3", 3, "254:3");
    f.part("vda", "vda4", 4, "254:4");
    f.dm("dm-0", "usr", "253:0", &["vda3", "vda4"]);
    assert!(f.sysfs().backing_partition("dm-0").is_err());
    // unknown names
    assert!(f.sysfs().name_of(1, 2).is_err());
    assert!(f
        .sysfs()
        .name_of_path(Path::new("/dev/mapper/nothing"))
        .is_err());
}

#[test]
fn mountinfo() {
    let text = "\
29 1 254:9 / / rw,relatime shared:1 - ext4 /dev/vda9 rw
30 29 253:0 / /usr ro,relatime shared:2 - btrfs /dev/mapper/usr ro
31 29 0:40 / /usr ro shared:3 - overlay sysext ro,lowerdir=/run/extensions
32 29 253:0 / /mnt/with\\040space ro - ext4 /dev/mapper/usr ro
garbage line
";
    let m = parse_mountinfo(text);
    assert_eq!(m.len(), 4);
    let u = usr_mount(&m, "/usr").unwrap();
    assert_eq!(
        (u.major, u.minor, u.source.as_str()),
        (253, 0, "/dev/mapper/usr")
    );
    assert!(usr_mount(&m, "/mnt/with space").is_some());
    assert!(usr_mount(&m, "/sysusr/usr").is_none());
}

#[test]
fn names() {
    for (n, want) in [
        ("vda3", Some(3)),
        ("sda12", Some(12)),
        ("nvme0n1p3", Some(3)),
        ("nvme0n1", None),
        ("mmcblk0", None),
        ("loop0p3", Some(3)),
        ("loop0", None),
        // a device-mapper node is not a partition, whatever its number
        ("dm-0", None),
        ("md127", None),
        ("123", None),
        ("", None),
    ] {
        assert_eq!(partition_number_from_name(n), want, "{n}");
    }
}

/// /usr as Flatcar's two-stage initrd leaves it for stage 2: minimal-init (no udev) opened
/// dm-verity, so /dev/mapper/usr is a plain node, not udev's link to ../dm-0; /usr is btrfs,
/// whose mountinfo line carries an anonymous device number (0:N), and it is mounted at
/// /sysusr/usr, with /sysroot/usr systemd's bind mount of it. The initrd's probe must still
/// find USR-B (vda4) under dm-0.
#[test]
fn stage0_btrfs_sysusr() {
    let f = FakeSys::new();
    f.disk("vda", "254:0");
    f.part("vda", "vda3", 3, "254:3");
    f.part("vda", "vda4", 4, "254:4");
    f.dm("dm-0", "usr", "253:0", &["vda4"]);
    let dir = tempfile::tempdir().unwrap();
    let mi = dir.path().join("mountinfo");
    std::fs::write(
        &mi,
        "\
1 0 0:2 / / rw - overlay overlay rw,lowerdir=/underlay,upperdir=/work/realinit
30 1 0:41 / /sysusr/usr ro,relatime - btrfs /dev/mapper/usr ro,rescue=nologreplay
31 1 254:9 / /sysroot rw,relatime - ext4 /dev/vda9 rw
32 31 0:41 / /sysroot/usr ro,relatime - btrfs /dev/mapper/usr ro,rescue=nologreplay
",
    )
    .unwrap();
    // a plain file stands in for the node (a block node needs mknod); no link to follow
    std::fs::create_dir_all(dir.path().join("dev/mapper")).unwrap();
    std::fs::write(dir.path().join("dev/mapper/usr"), "").unwrap();
    let overrides = crate::types::path_overrides::PathOverrides {
        sysfs: Some(f.root().to_path_buf()),
        dev: Some(dir.path().join("dev")),
        mountinfo: Some(mi),
        sysroot: Some(dir.path().join("sysroot")),
        ..Default::default()
    };
    let machine = crate::probe::MachinePaths::new(&overrides, true);
    let (at, name, b) = machine.usr_backing().unwrap();
    assert_eq!(at, Path::new("/sysusr/usr"));
    assert_eq!(name, "dm-0");
    assert_eq!(b.partition, 4);
}
