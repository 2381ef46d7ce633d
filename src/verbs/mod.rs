//! One file per verb (or family of verbs): probe, decide, act, and report.

/// `allow`: release builds the loop guard holds.
pub mod allow;
/// `butane`: the Butane snippet that configures abguard on a node.
pub mod butane;
/// `config`: the effective settings, and `--check` of configuration files.
pub mod config;
/// `gate-pass` (the watcher), `gate-fail`, `emergency`: the booted system's health gate.
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
use crate::probe::{self, Env};
use crate::types::Roots;
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
    pub fn of(env: &Env, p: &Roots, disk: &Path) -> HostState {
        let host = is_block(disk) || env.explicit;
        HostState {
            boot_json: (host || p.run_dir.is_some())
                .then(|| env.run_dir.join(flags::STATE_DIR).join(flags::BOOT_JSON)),
            history: (host || p.sysroot.is_some()).then(|| env.sysroot.clone()),
            proc: env.proc.clone(),
        }
    }

    pub fn last_assessment(&self) -> Option<serde_json::Value> {
        let b = std::fs::read(self.boot_json.as_ref()?).ok()?;
        serde_json::from_slice(&b).ok()
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
    pub fn source(&self, last: Option<&serde_json::Value>) -> Option<crate::act::metrics::Source> {
        use crate::act::metrics::Source;
        match record::Event::parse(last?["event"].as_str()?) {
            record::Event::Initrd => Some(Source::Initrd),
            record::Event::Assess => Some(Source::Late),
            _ => None,
        }
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

/// The loop guard's check for `abguard stage` on a system whose history is `root`:
/// refuse to stage a held build (nothing written). A slot whose kernel cannot be read
/// is not known to be held.
pub(crate) fn check_stage(
    root: &Path,
    slot: &crate::types::Slot,
) -> Result<(), crate::exit::Failure> {
    let held = crate::act::held::read(root)?;
    if held.is_empty() {
        return Ok(());
    }
    match staged_hash(root, slot) {
        Ok(hash) => match crate::decide::loopguard::holding(&held, &hash) {
            Some(h) => Err(crate::decide::ab::Refusal::Held(crate::act::held::describe(h)).into()),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// From the assessment, before its own history line: when GRUB fell back from a slot
/// whose first boot reached no verdict, record one `fallback` event (once per attempt)
/// and return the line this boot's record adds about it.
pub(crate) fn record_fallback(env: &Env, now: &crate::act::record::Record) -> Vec<String> {
    use crate::act::{fallback, history};
    use crate::decide::fallback::{detect, pstore_message, Finding};
    let Some(booted) = (now.booted.as_ref())
        .and_then(|b| now.slots.iter().position(|s| s.partition == b.partition))
    else {
        return Vec::new();
    };
    // the history is read (and parsed whole) only when a slot above the booted one was
    // spent without success: on every other boot there is no fallback to find
    if crate::decide::fallback::abandoned(&now.slots, booted).is_none() {
        return Vec::new();
    }
    let history = history::read_history(&env.sysroot);
    let (slot, attempt) = match detect(&now.slots, booted, &history) {
        Finding::Fallback { slot, attempt } => (&now.slots[slot], attempt),
        Finding::Unknown { slot } => {
            let label = &now.slots[slot].label;
            log::info!("{label} is spent above the booted slot since before the history");
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let kernel = staged_hash(&env.sysroot, slot);
    // EFI-SYSTEM is mounted only in the booted system: in the initrd the kernel is unseen
    let kernel_present = (env.sysroot.join("boot/flatcar").is_dir()
        || env.sysroot.join("boot/coreos").is_dir())
    .then_some(kernel.is_ok());
    let said = pstore_message(&probe::pstore::read(&env.sysfs.root));
    let crumb = crate::act::attempt::read(&env.sysroot);
    let why = crate::decide::stage::classify(&crate::decide::stage::Clues {
        partuuid: &slot.partuuid,
        attempt,
        crumb: crumb.as_ref(),
        kernel_said: said.as_deref(),
        watchdog_reset: crate::decide::watchdog::reset_by_watchdog(&probe::watchdog::devices(
            &env.sysfs.root,
        )),
        kernel_present,
        now_boot_unix: Some(crate::act::attempt::clock(&env.proc).1),
    });
    let r = fallback::record(now, slot, attempt, kernel.ok(), said, &why);
    let line = fallback::summary(&r);
    log::error!("{line}");
    match history::log_event(&env.sysroot, &r) {
        Ok(()) => {
            crate::act::attempt::remove(&env.sysroot);
            vec![line]
        }
        Err(e) => vec![format!("{line} (not recorded: {e:#})")],
    }
}
