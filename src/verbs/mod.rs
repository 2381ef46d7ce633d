//! One file per verb (or family of verbs): probe, decide, act, and report.

/// `allow`: release builds the loop guard holds.
pub mod allow;
/// `butane`: the Butane snippet that configures abguard on a node.
pub mod butane;
/// `config`: the effective settings, and `--check` of configuration files.
pub mod config;
/// `disable`, `enable`: the node's off switch for the health gate.
pub mod disable;
/// `gate-pass` (the watcher), `gate-fail`, `emergency`, and an operator's `pass-gate`,
/// `fail-gate`: the booted system's health gate.
pub mod gate;
/// `generator`: the systemd generator that wires the gate from the config.
pub mod generator;
/// `guard-staged`: the loop guard un-stages a build that failed its first boot.
pub mod guard_staged;
/// `initrd` and `assess`: the boot assessment.
pub mod initrd;
/// `read-usr`: verify a whole slot before trusting it.
pub mod read_usr;
/// `next`, `stage`, `mark-good`, `rollback`: the verbs that change the slots.
pub mod slots;
/// `status`: the slots, the booted one, the last assessment and the history.
pub mod status;
/// `verify`: verify-before-trust of a staged slot with libcryptsetup.
pub mod verify;

use crate::act::{flags, record};
use crate::decide::booted;
use crate::disk::gpt::Table;
use crate::probe::{self, MachinePaths};
use crate::types::PathOverrides;
use std::path::Path;

/// Which slot of `table` (read from `disk`) booted, by the same rules as the initrd's
/// assessment. An image file is no running system's disk: it has no booted slot unless
/// the probe options point at a system.
pub(crate) fn booted_slot(
    env: &MachinePaths,
    disk: &Path,
    table: &Table,
) -> Result<booted::Identified, Vec<String>> {
    if !is_block(disk) && !env.explicit {
        return Err(vec!["the disk is an image file: no booted slot".into()]);
    }
    let f = probe::facts(env, Some(disk), &Ok(table.clone()), None, false);
    booted::identify(&table.slots(), f.evidence()).map_err(|u| u.reasons())
}

pub(crate) fn is_block(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Where the host's state about this disk is: for a block device, the running system's
/// (or what the probe options point at); for an image file only what `--run-dir` and
/// `--sysroot` name, so an image never shows this machine's boot record or history.
pub(crate) struct HostState {
    pub boot_json: Option<std::path::PathBuf>,
    pub history: Option<std::path::PathBuf>,
    pub proc: std::path::PathBuf,
}

impl HostState {
    pub fn of(env: &MachinePaths, p: &PathOverrides, disk: &Path) -> HostState {
        let host = is_block(disk) || env.explicit;
        HostState {
            boot_json: (host || p.run_dir.is_some())
                .then(|| env.run_dir.join(flags::STATE_DIR).join(flags::BOOT_JSON)),
            history: (host || p.sysroot.is_some()).then(|| env.sysroot.clone()),
            proc: env.proc.clone(),
        }
    }

    /// This boot's record (boot.json), through the history's typed reader.
    pub fn last_assessment(&self) -> Option<record::Entry> {
        let p = self.boot_json.as_ref()?;
        let b = crate::safefs::read_bounded(p, crate::safefs::cap::RECORD)
            .map_err(|e| log::warn!("{e:#}"))
            .ok()??;
        serde_json::from_slice(&b)
            .ok()
            .map(record::Entry::from_value)
    }

    pub fn held(&self) -> Vec<crate::decide::loopguard::Held> {
        let Some(root) = &self.history else {
            return Vec::new();
        };
        crate::act::held::read(root).unwrap_or_else(|e| {
            log::warn!("{e:#}");
            Vec::new()
        })
    }

    /// Who assessed this boot: the initrd module, or late the booted system.
    pub fn source(&self, last: Option<&record::Entry>) -> Option<crate::act::metrics::Source> {
        use crate::act::metrics::Source;
        match last?.event {
            record::Event::Initrd => Some(Source::Initrd),
            record::Event::Assess => Some(Source::Late),
            _ => None,
        }
    }

    /// /run, when this disk is the running system's (or --run-dir names one).
    pub fn run_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.boot_json.as_ref()?.parent()?.parent()?.to_path_buf())
    }

    /// A flag or file under /run (`flags::STATE_DIR/...` or the healthy flag), when
    /// /run is known.
    pub fn run_has(&self, rel: &str) -> bool {
        let Some(run) = self.boot_json.as_ref().and_then(|b| b.parent()?.parent()) else {
            return false;
        };
        run.join(rel).exists()
    }

    pub fn history(&self) -> Vec<record::Entry> {
        self.history
            .as_deref()
            .map(crate::act::history::read_history)
            .unwrap_or_default()
    }
}

/// The staged slot's build identity: the root hash in its kernel, as GRUB will read it.
pub(crate) fn staged_hash(sysroot: &Path, s: &crate::types::Slot) -> anyhow::Result<String> {
    probe::verity::kernel_root_hash(&probe::verity::kernel_for(sysroot, &s.partuuid))
}
