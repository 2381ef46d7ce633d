//! One file per verb (or family of verbs): probe, decide, act, and report.

/// `butane`: the Butane snippet that configures abguard on a node.
pub mod butane;
/// `config`: the effective settings, and `--check` of configuration files.
pub mod config;
/// `gate-pass` (the watcher), `gate-fail`, `emergency`: the booted system's health gate.
pub mod gate;
/// `generator`: the systemd generator that wires the gate from the config.
pub mod generator;
/// `initrd` and `assess`: the boot assessment.
pub mod initrd;
/// `read-usr`: verify a whole slot before trusting it.
pub mod read_usr;
/// `status`, `next`, `stage`, `mark-good`, `rollback`: the slot verbs.
pub mod slots;
/// `verify`: verify-before-trust of a staged slot with libcryptsetup.
pub mod verify;

use crate::decide::booted;
use crate::disk::gpt::Table;
use crate::probe::{self, Env};
use std::path::Path;

/// Which slot of `table` (read from `disk`) booted, by the same rules as the initrd's
/// assessment. An image file is no running system's disk: it has no booted slot unless
/// the probe options point at a system.
pub(crate) fn booted_slot(
    env: &Env,
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
