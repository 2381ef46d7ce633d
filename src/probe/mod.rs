//! Turning the machine into plain facts: which disk, which slots, which slot booted
//! (from the command line and, independently, from sysfs), the dm-verity state and the
//! booted version. Failures become reasons, never panics: the decision decides.

/// The box a check runs in: its own cgroup, its output capped.
pub mod checkbox;
/// Health checks from checks.d, and the sysext images merged into /usr.
pub mod checks;
/// The kernel command line: `usr=`, `mount.usr=`, `verity.usrhash=`.
pub mod cmdline;
/// The libcryptsetup helper that opens a staged slot's verity device (optional feature).
#[cfg(feature = "cryptsetup")]
pub mod cryptsetup;
/// Device-mapper ioctls: the live table and status of the /usr verity device.
pub mod dm;
/// os-release files: the booted and the staged version.
pub mod osrelease;
/// pstore: the previous boot's kernel log, for a fallback's explanation.
pub mod pstore;
/// Where a slot's bytes are read whole: its partition node, or a copy out of an image.
pub mod source;
/// sysfs and mountinfo: which partition really backs /usr, through dm-verity.
pub mod sysfs;
/// Whether a check is root's own.
pub mod trust;
/// Unit states from systemd (`systemctl show`), for the health gate.
pub mod units;
/// The verity layout inside a slot: superblock, hash offset, root hash in the kernel.
pub mod verity;
/// The watchdog devices: what can be armed, and whether one reset the machine.
pub mod watchdog;

use crate::decide::assess::Facts;
use crate::decide::verity::{self as judge, Verity};
use crate::disk::gpt::Table;
use crate::types::{Backing, PathOverrides, Slot};
use anyhow::{anyhow, bail, Context, Result};
use cmdline::{Cmdline, UsrRef};
use std::path::{Path, PathBuf};
use sysfs::Sysfs;

/// The paths of the machine being judged: the overrides with the defaults for where we
/// run filled in (the initrd's /sysroot and /sysusr, or the booted system's).
pub struct MachinePaths {
    pub cmdline: PathBuf,
    pub sysfs: Sysfs,
    pub mountinfo: PathBuf,
    pub usr_candidates: Vec<PathBuf>,
    pub run_dir: PathBuf,
    pub sysroot: PathBuf,
    pub explicit: bool,
    /// The disk given (`--disk`), if any.
    pub disk: Option<PathBuf>,
    /// procfs: the records' uptime and boot ID.
    pub proc: PathBuf,
}

impl MachinePaths {
    pub fn new(p: &PathOverrides, initrd: bool) -> MachinePaths {
        let sysroot = p
            .sysroot
            .clone()
            .unwrap_or_else(|| PathBuf::from(if initrd { "/sysroot" } else { "/" }));
        let usr_candidates = match &p.usr {
            Some(u) => vec![u.clone()],
            None if initrd => vec![PathBuf::from("/sysusr/usr"), sysroot.join("usr")],
            None => vec![PathBuf::from("/usr")],
        };
        MachinePaths {
            cmdline: p.cmdline.clone().unwrap_or_else(|| "/proc/cmdline".into()),
            proc: p.proc.clone().unwrap_or_else(|| "/proc".into()),
            sysfs: Sysfs {
                root: p.sysfs.clone().unwrap_or_else(|| "/sys".into()),
                dev: p.dev.clone().unwrap_or_else(|| "/dev".into()),
            },
            mountinfo: p
                .mountinfo
                .clone()
                .unwrap_or_else(|| "/proc/self/mountinfo".into()),
            usr_candidates,
            run_dir: p.run_dir.clone().unwrap_or_else(|| "/run".into()),
            sysroot,
            explicit: p.explicit(),
            disk: p.disk.clone(),
        }
    }

    pub fn read_cmdline(&self) -> Result<Cmdline> {
        let b = crate::safefs::read_bounded(&self.cmdline, crate::safefs::cap::SMALL)
            .with_context(|| format!("reading {}", self.cmdline.display()))?
            .with_context(|| format!("reading {}: no such file", self.cmdline.display()))?;
        Ok(cmdline::parse(&String::from_utf8_lossy(&b)))
    }

    /// The mount point of /usr in use and its backing partition, as rootdev finds it.
    pub fn usr_backing(&self) -> Result<(PathBuf, String, Backing)> {
        let text = crate::safefs::read_text(&self.mountinfo, crate::safefs::cap::RECORD)
            .with_context(|| format!("reading {}", self.mountinfo.display()))?
            .with_context(|| format!("reading {}: no such file", self.mountinfo.display()))?;
        let mounts = sysfs::parse_mountinfo(&text);
        let (dir, m) = self
            .usr_candidates
            .iter()
            .find_map(|c| sysfs::usr_mount(&mounts, &c.to_string_lossy()).map(|m| (c.clone(), m)))
            .ok_or_else(|| {
                let tried: Vec<_> = self
                    .usr_candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect();
                anyhow!("no /usr mount at {}", tried.join(" or "))
            })?;
        // btrfs reports an anonymous device number; rootdev then stats the source instead
        let name = if m.major != 0 {
            self.sysfs.name_of(m.major, m.minor)
        } else {
            self.sysfs.name_of_path(Path::new(&m.source))
        }?;
        let b = self.sysfs.backing_partition(&name)?;
        Ok((dir, name, b))
    }
}

/// Partition number the command line names, mapped through the slots (PARTUUID,
/// PARTLABEL) or sysfs (a /dev path).
pub fn cmdline_partition(
    c: &Result<Cmdline>,
    slots: &[Slot],
    sys: &Sysfs,
) -> Option<Result<u32, String>> {
    let c = match c {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("{e:#}"))),
    };
    let (key, r) = match c.usr.as_ref()? {
        Ok(kr) => kr,
        Err(e) => return Some(Err(e.clone())),
    };
    Some(match r {
        UsrRef::PartUuid(u) => slots
            .iter()
            .find(|s| &s.partuuid == u)
            .map(|s| s.partition)
            .ok_or_else(|| format!("{key}=PARTUUID={u} matches no USR partition on the disk")),
        UsrRef::PartLabel(l) => {
            let hits: Vec<_> = slots.iter().filter(|s| &s.label == l).collect();
            match hits.as_slice() {
                [one] => Ok(one.partition),
                [] => Err(format!(
                    "{key}=PARTLABEL={l} matches no USR partition on the disk"
                )),
                _ => Err(format!(
                    "{key}=PARTLABEL={l} matches {} USR partitions",
                    hits.len()
                )),
            }
        }
        UsrRef::Device(p) => sys
            .name_of_path(p)
            .ok()
            .and_then(|n| sys.backing_partition(&n).ok().map(|b| b.partition))
            .or_else(|| {
                p.file_name()
                    .and_then(|n| sysfs::partition_number_from_name(&n.to_string_lossy()))
            })
            .ok_or_else(|| format!("{key}={} names no partition", p.display())),
    })
}

/// dm-verity state of the device backing /usr. Test inputs replace the ioctl.
pub fn verity(
    env: &MachinePaths,
    usr_dev: Option<&str>,
    expected: Option<String>,
    test_files: Option<(&Path, &Path)>,
) -> Verity {
    let unavailable = |why: String| Verity {
        expected_hash: expected.clone(),
        unavailable: Some(why),
        ..Verity::default()
    };
    let lines = |p: &Path| -> Result<Vec<judge::Target>> {
        let t = crate::safefs::read_text(p, crate::safefs::cap::RECORD)?
            .with_context(|| format!("{} does not exist", p.display()))?;
        Ok(t.lines().filter_map(judge::parse_line).collect())
    };
    let (status, table) = if let Some((s, t)) = test_files {
        match (lines(s), lines(t)) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => return unavailable(format!("{e:#}")),
        }
    } else {
        let Some(dev) = usr_dev else {
            return unavailable("the /usr device is unknown".into());
        };
        if !dev.starts_with("dm-") {
            return unavailable(format!("/usr is on {dev}, not on a device-mapper device"));
        }
        let name = match std::fs::read_to_string(
            env.sysfs.root.join("class/block").join(dev).join("dm/name"),
        ) {
            Ok(n) => n.trim().to_string(),
            Err(e) => return unavailable(format!("reading the dm name of {dev}: {e}")),
        };
        let control = env.sysfs.dev.join("mapper/control");
        match (
            dm::query(&control, &name, false),
            dm::query(&control, &name, true),
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => return unavailable(format!("{e:#}")),
        }
    };
    Verity::from_targets(&status, &table, expected)
}

/// VERSION_ID of the booted /usr.
pub fn version_id(usr_dirs: &[PathBuf]) -> Option<String> {
    usr_dirs
        .iter()
        .find_map(|d| {
            crate::safefs::read_text(&d.join("lib/os-release"), crate::safefs::cap::SMALL)
                .ok()
                .flatten()
        })
        .and_then(|t| osrelease::get(&t, "VERSION_ID"))
}

impl MachinePaths {
    /// The disk to work on: the one given, else the disk under the booted /usr.
    pub fn disk_path(&self) -> Result<PathBuf> {
        if let Some(d) = &self.disk {
            return Ok(d.clone());
        }
        match self.usr_backing() {
            Ok((_, _, b)) => Ok(self.sysfs.dev.join(&b.disk)),
            Err(e) => bail!("cannot find the disk of the booted /usr ({e:#}); pass --disk"),
        }
    }
}

/// Everything `assess` needs about the disk at `disk` (`None`: it could not be found).
/// `dm_test` replaces the DM ioctl with dmsetup-style files.
pub fn facts(
    env: &MachinePaths,
    disk: Option<&Path>,
    table: &Result<Table, String>,
    dm_test: Option<(&Path, &Path)>,
    with_verity: bool,
) -> Facts {
    let cmd = env.read_cmdline();
    let backing = env.usr_backing();
    let slots = table.as_ref().map(Table::slots).map_err(Clone::clone);
    let from_cmdline = cmdline_partition(&cmd, slots.as_deref().unwrap_or(&[]), &env.sysfs);
    let expected = cmd
        .as_ref()
        .ok()
        .and_then(|c| c.usrhash.clone())
        .and_then(Result::ok);
    let usr_dev = backing.as_ref().ok().map(|(_, name, _)| name.as_str());
    let verity = if with_verity {
        verity(env, usr_dev, expected, dm_test)
    } else {
        Verity::default()
    };
    let same_disk = match (disk, &backing) {
        (Some(disk), Ok((_, _, b))) => env.sysfs.is_disk(disk, &b.disk),
        _ => None,
    };
    Facts {
        slots,
        from_cmdline,
        from_sysfs: backing.map(|(_, _, b)| b).map_err(|e| format!("{e:#}")),
        same_disk,
        verity,
    }
}
