//! "Which slot is this boot": the one probe `gate-pass`, `gate-fail` and `emergency`
//! all take before touching anything, by the initrd's own rules, from the disk.

use crate::decide::assess;
use crate::disk::read_table;
use crate::probe::{self, MachinePaths};
use crate::types::Slot;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// What the disk says about this boot, for the gate's decisions.
#[derive(Clone, Debug)]
pub(crate) struct ThisBoot {
    pub(crate) disk: PathBuf,
    pub(crate) slots: Vec<Slot>,
    /// Index into `slots`.
    pub(crate) booted: usize,
    /// How the booted slot was found (the command line, sysfs, both).
    pub(crate) source: &'static str,
    /// This is the first boot after an upgrade.
    pub(crate) first: bool,
}

impl ThisBoot {
    /// The booted slot.
    pub(crate) fn slot(&self) -> &Slot {
        &self.slots[self.booted]
    }
}

/// Find the disk (the one given, the one under /usr, or when /usr never got mounted the
/// one holding the partition the command line names), read its GPT and tell which slot
/// booted and whether this is its first boot after an upgrade.
pub(crate) fn probe(env: &MachinePaths) -> Result<ThisBoot> {
    let disk = match env.disk_path() {
        Ok(p) => p,
        Err(e) => find_disk_by_cmdline(env).with_context(|| format!("{e:#}"))?,
    };
    let (_, table) = read_table(&disk)?;
    let facts = probe::facts(env, Some(&disk), &Ok(table.clone()), None, false);
    let a = assess::assess(&facts);
    let Some(booted) = a.booted else {
        bail!("cannot tell which slot booted: {}", a.reasons.join("; "));
    };
    Ok(ThisBoot {
        disk,
        slots: table.slots(),
        booted,
        source: a.booted_source.unwrap_or("?"),
        first: a.first_boot_after_upgrade == Some(true),
    })
}

/// When /usr never got mounted (the case the emergency hook exists for), find the disk
/// whose GPT holds the partition the command line names.
fn find_disk_by_cmdline(env: &MachinePaths) -> Result<PathBuf> {
    let c = env.read_cmdline()?;
    let Some(Ok((_, probe::cmdline::UsrRef::PartUuid(uuid)))) = c.usr else {
        bail!("the command line names no /usr PARTUUID to search the disks for");
    };
    let dir = env.sysfs.root.join("class/block");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !dir.join(n).join("partition").exists()
                && !n.starts_with("dm-")
                && !n.starts_with("ram")
        })
        .collect();
    names.sort();
    for n in names {
        let dev = env.sysfs.dev.join(&n);
        if let Ok((_, t)) = read_table(&dev) {
            if t.slots().iter().any(|s| s.partuuid == uuid) {
                return Ok(dev);
            }
        }
    }
    bail!("no disk holds a USR partition with PARTUUID {uuid}")
}

/// Where /usr's dm-verity state is asked: the device under /usr and the root hash GRUB
/// passed. Both are fixed for the boot; only the kernel's verdict on the blocks read so
/// far changes, so the watcher looks these up once and asks [`UsrVerity::problem`]
/// again before it passes.
pub(crate) struct UsrVerity {
    dev: Option<String>,
    expected: Option<String>,
}

impl UsrVerity {
    pub(crate) fn of(env: &MachinePaths) -> UsrVerity {
        UsrVerity {
            dev: env.usr_backing().ok().map(|(_, name, _)| name),
            expected: env.read_cmdline().ok().and_then(|c| c.usrhash?.ok()),
        }
    }

    /// What dm-verity says about /usr now, after the boot has read much of it.
    pub(crate) fn problem(&self, env: &MachinePaths) -> Option<String> {
        probe::verity(env, self.dev.as_deref(), self.expected.clone(), None).problem()
    }
}

/// The configuration errors of this boot: the gate's own reading and the generator's
/// (`config-error` under /run/abguard, one a line).
pub(crate) fn config_errors(env: &MachinePaths, cfg: &crate::config::Config) -> Vec<String> {
    use crate::act::flags::{CONFIG_ERROR, STATE_DIR};
    let mut v: Vec<String> = cfg.errors.iter().map(ToString::to_string).collect();
    let marker = env.run_dir.join(STATE_DIR).join(CONFIG_ERROR);
    if let Ok(Some(t)) = crate::safefs::read_text(&marker, crate::safefs::cap::RECORD) {
        for l in t.lines().filter(|l| !l.trim().is_empty()) {
            if !v.iter().any(|e| e == l) {
                v.push(l.to_string());
            }
        }
    }
    v
}
