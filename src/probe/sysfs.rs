//! Which partition really backs /usr, found the way rootdev does it: the device number
//! of the /usr mount, its sysfs node, down through `slaves/` (dm-verity → partition),
//! then the partition's parent disk. All paths are rooted at injectable directories so
//! tests can use fake sysfs trees.

use crate::types::Backing;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// rootdev's MAX_SLAVE_DEPTH.
const MAX_DEPTH: usize = 8;

/// One line of /proc/self/mountinfo: mount point, device number, fs type, source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub major: u32,
    pub minor: u32,
    pub fstype: String,
    pub source: String,
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // the kernel writes \ooo for bytes only (\000..\377); anything larger is text
        // (found by the mountinfo fuzz target: \777 overflowed a u8)
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let (maj, min) = l.get(2)?.split_once(':')?;
            Some(Mount {
                mount_point: unescape(l.get(4)?),
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                fstype: r.first()?.to_string(),
                source: unescape(r.get(1)?),
            })
        })
        .collect()
}

/// The mount that provides `dir`: the last (topmost) one there, skipping the overlays
/// systemd-sysext stacks on /usr, which have no backing device.
pub fn usr_mount<'a>(mounts: &'a [Mount], dir: &str) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == dir && m.fstype != "overlay")
}

pub struct Sysfs {
    pub root: PathBuf,
    pub dev: PathBuf,
}

impl Sysfs {
    fn class(&self, name: &str) -> PathBuf {
        self.root.join("class/block").join(name)
    }

    fn read_attr(&self, name: &str, attr: &str) -> Option<String> {
        std::fs::read_to_string(self.class(name).join(attr))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Kernel name for a device number, via /sys/dev/block/MAJ:MIN.
    pub fn name_of(&self, major: u32, minor: u32) -> Result<String> {
        let link = self.root.join(format!("dev/block/{major}:{minor}"));
        let target =
            std::fs::read_link(&link).with_context(|| format!("resolving {}", link.display()))?;
        file_name(&target).ok_or_else(|| anyhow!("{} points nowhere useful", link.display()))
    }

    /// Kernel name for a /dev path: a device node's rdev, a symlink's target
    /// (/dev/mapper/usr → ../dm-0), or a dm name looked up in sysfs.
    pub fn name_of_path(&self, path: &Path) -> Result<String> {
        let rel = path.strip_prefix("/dev").unwrap_or(path);
        let local = self.dev.join(rel);
        if let Ok(meta) = std::fs::metadata(&local) {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            if meta.file_type().is_block_device() {
                let rdev = meta.rdev();
                return self.name_of(
                    nix::sys::stat::major(rdev) as u32,
                    nix::sys::stat::minor(rdev) as u32,
                );
            }
        }
        if let Ok(target) = std::fs::read_link(&local) {
            if let Some(n) = file_name(&target) {
                return Ok(n);
            }
        }
        if let Ok(dm) = rel.strip_prefix("mapper") {
            let want = dm.to_string_lossy();
            return self.dm_by_name(&want);
        }
        let n = file_name(rel).ok_or_else(|| anyhow!("{} names no device", path.display()))?;
        if self.class(&n).exists() {
            return Ok(n);
        }
        bail!(
            "{} is neither a block device node nor known to sysfs",
            path.display()
        )
    }

    fn dm_by_name(&self, want: &str) -> Result<String> {
        let dir = self.root.join("class/block");
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if self.read_attr(&n, "dm/name").as_deref() == Some(want) {
                return Ok(n);
            }
        }
        bail!(
            "no device-mapper device named {want:?} in {}",
            dir.display()
        )
    }

    /// Follow `slaves/` down to a partition, as `rootdev -s` does, refusing loops,
    /// forks and dead ends rather than guessing.
    pub fn backing_partition(&self, start: &str) -> Result<Backing> {
        let mut chain = vec![start.to_string()];
        let mut name = start.to_string();
        loop {
            let slaves_dir = self.class(&name).join("slaves");
            let mut slaves: Vec<String> = match std::fs::read_dir(&slaves_dir) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            slaves.sort();
            slaves.dedup();
            if slaves.is_empty() {
                break;
            }
            if name.starts_with("dm-") && slaves.len() > 1 {
                bail!(
                    "{name} has {} lower devices ({}); cannot tell which one holds /usr",
                    slaves.len(),
                    slaves.join(", ")
                );
            }
            let next = slaves.swap_remove(0);
            if chain.contains(&next) {
                bail!("sysfs slaves loop: {} → {next}", chain.join(" → "));
            }
            if chain.len() > MAX_DEPTH {
                bail!("more than {MAX_DEPTH} stacked devices below {start}");
            }
            chain.push(next.clone());
            name = next;
        }
        if name.starts_with("dm-") {
            bail!("{name} is a device-mapper device without lower devices");
        }
        let partition = match self.read_attr(&name, "partition") {
            Some(p) => p
                .parse::<u32>()
                .map_err(|_| anyhow!("{name}/partition holds {p:?}, not a number"))?,
            None => bail!(
                "/usr is backed by {name}, which is not a partition (no {name}/partition in sysfs)"
            ),
        };
        let real = std::fs::canonicalize(self.class(&name))
            .with_context(|| format!("resolving {}", self.class(&name).display()))?;
        let disk = real
            .parent()
            .and_then(file_name)
            .ok_or_else(|| anyhow!("cannot find the disk that holds {name}"))?;
        Ok(Backing {
            chain,
            partition,
            disk,
        })
    }

    /// Whether `disk_path` (a block device) is the disk called `name`.
    pub fn is_disk(&self, disk_path: &Path, name: &str) -> Option<bool> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(disk_path).ok()?;
        if !meta.file_type().is_block_device() {
            return None;
        }
        let want = self.read_attr(name, "dev")?;
        let rdev = meta.rdev();
        Some(
            want == format!(
                "{}:{}",
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            ),
        )
    }
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Partition number from a kernel name, for command lines naming /dev/vda3 directly:
/// vda3, sda4, nvme0n1p3, mmcblk0p3, loop0p3.
pub fn partition_number_from_name(name: &str) -> Option<u32> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == name.len() {
        return None;
    }
    let (stem, num) = name.split_at(name.len() - digits);
    let needs_p = ["nvme", "mmcblk", "loop", "nbd", "md"]
        .iter()
        .any(|p| stem.starts_with(p));
    if needs_p {
        let stem = stem.strip_suffix('p')?;
        if !stem.ends_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
    }
    num.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs tree shaped like the kernel's: devices hold the nodes, class/block and
    /// dev/block link to them.
    pub(crate) struct FakeSys {
        pub dir: tempfile::TempDir,
    }

    impl FakeSys {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for d in ["class/block", "dev/block", "devices/virtual/block"] {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            FakeSys { dir }
        }
        fn root(&self) -> &Path {
            self.dir.path()
        }
        fn link(&self, name: &str, devpath: &str, majmin: &str) {
            let r = self.root();
            symlink(format!("../../{devpath}"), r.join("class/block").join(name)).unwrap();
            symlink(format!("../../{devpath}"), r.join("dev/block").join(majmin)).unwrap();
            std::fs::write(r.join(devpath).join("dev"), format!("{majmin}\n")).unwrap();
        }
        pub fn disk(&self, name: &str, majmin: &str) {
            let p = format!("devices/pci0000:00/block/{name}");
            std::fs::create_dir_all(self.root().join(&p)).unwrap();
            self.link(name, &p, majmin);
        }
        pub fn part(&self, disk: &str, name: &str, n: u32, majmin: &str) {
            let p = format!("devices/pci0000:00/block/{disk}/{name}");
            std::fs::create_dir_all(self.root().join(&p)).unwrap();
            std::fs::write(self.root().join(&p).join("partition"), format!("{n}\n")).unwrap();
            self.link(name, &p, majmin);
        }
        pub fn dm(&self, name: &str, dm_name: &str, majmin: &str, slaves: &[&str]) {
            let p = format!("devices/virtual/block/{name}");
            std::fs::create_dir_all(self.root().join(&p).join("dm")).unwrap();
            std::fs::create_dir_all(self.root().join(&p).join("slaves")).unwrap();
            std::fs::write(self.root().join(&p).join("dm/name"), format!("{dm_name}\n")).unwrap();
            for s in slaves {
                symlink(
                    format!("../../../../pci0000:00/block/x/{s}"),
                    self.root().join(&p).join("slaves").join(s),
                )
                .unwrap();
            }
            self.link(name, &p, majmin);
        }
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
            ("dm-0", Some(0)),
            ("123", None),
            ("", None),
        ] {
            if n == "dm-0" {
                continue; // not a partition name; never asked
            }
            assert_eq!(partition_number_from_name(n), want, "{n}");
        }
    }
}
