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
    // dm-N and zramN are whole devices: a number there is no partition's
    if stem == "dm-" || stem.starts_with("zram") || stem.starts_with("ram") {
        return None;
    }
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
#[path = "sysfs_tests.rs"]
mod tests;
