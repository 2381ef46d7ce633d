//! The options of the slot verbs, the initrd, the gate, `config` and the generator.
//! Each verb's help text is its struct's doc comment.

use super::paths::PathArgs;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args, Clone)]
pub struct AssessArgs {
    /// Decide and write, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    /// Print the boot record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run although stdin is a terminal: this verb is run by systemd or the initrd and may
    /// reboot at once (not needed with --no-reboot).
    #[arg(long)]
    pub yes: bool,
    /// Test input: `dmsetup status usr` output instead of the DM ioctl.
    #[arg(long, hide = true, requires = "dm_table")]
    pub dm_status: Option<PathBuf>,
    /// Test input: `dmsetup table usr` output instead of the DM ioctl.
    #[arg(long, hide = true, requires = "dm_status")]
    pub dm_table: Option<PathBuf>,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// What runs, what the next reboot will do and why, and why the last first boot failed;
/// then the slots, the health gate, the held builds and the history. Exit 5: degraded.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// One line: what runs, what the next reboot does, and what needs a look (for motd
    /// and scripts).
    #[arg(long, conflicts_with_all = ["json", "prometheus"])]
    pub short: bool,
    /// History entries to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub history: usize,
    /// Print Prometheus text exposition format instead.
    #[arg(long, conflicts_with = "json")]
    pub prometheus: bool,
    /// With --prometheus: write atomically to this file (node_exporter's textfile collector).
    #[arg(long, value_name = "PATH", requires = "prometheus")]
    pub textfile: Option<PathBuf>,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Do what GRUB's gptprio.next does: pick the slot to boot and spend one of its tries.
#[derive(Debug, Args, Clone)]
pub struct NextArgs {
    /// Only print the choice; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the chosen slot and its tries before and after as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Stage a slot as flatcar-postinst does: successful=0, tries=1, highest priority.
#[derive(Debug, Args, Clone)]
pub struct StageArgs {
    /// Partition number of the slot to stage.
    #[arg(long, value_name = "N")]
    pub partition: u32,
    /// Print the slots before and after the change as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Mark a slot good as flatcar-setgoodroot does: successful=1, tries=0, highest priority.
#[derive(Debug, Args, Clone)]
pub struct MarkGoodArgs {
    /// Partition number [default: the booted slot].
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// Print the slots before and after the change as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Make the other slot boot next.
#[derive(Debug, Args, Clone)]
pub struct RollbackArgs {
    /// Slot to roll back to [default: the slot other than the booted one].
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// Roll back to a slot that never booted successfully (gives it one try).
    #[arg(long)]
    pub force: bool,
    /// Print the slots before and after the change as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Assess this boot from the initrd: write /run flags and the boot record; on a
/// first boot after an upgrade whose dm-verity check failed, spend the slot and reboot.
#[derive(Debug, Args, Clone)]
pub struct InitrdArgs {
    #[command(flatten)]
    pub opts: AssessArgs,
}

/// The same assessment as `initrd`, run by abguard-assess.service early in the
/// booted system, for stock images that cannot add the dracut module.
#[derive(Debug, Args, Clone)]
pub struct StockAssessArgs {
    #[command(flatten)]
    pub opts: AssessArgs,
}

/// The health gate (run by abguard-gate.service): on a first boot after an upgrade,
/// watch the critical units and run the checks until healthy (then write
/// /run/first-boot-healthy, record it, mark the slot good if configured) or failed
/// (then roll back at once, or record under ON_FAILURE=report).
#[derive(Debug, Args, Clone)]
pub struct GatePassArgs {
    /// Do not mark the slot good even if MARK_GOOD=yes.
    #[arg(long)]
    pub no_mark_good: bool,
    /// When the gate fails, roll back but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    /// Run although stdin is a terminal: this verb is run by systemd or the initrd and may
    /// reboot at once (not needed with --no-reboot).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Health gate failed (a critical unit failed, or the deadline passed): on a first
/// boot after an upgrade, record why, spend the slot and reboot so GRUB falls back.
#[derive(Debug, Args, Clone)]
pub struct GateFailArgs {
    /// The critical unit that failed; without it, the deadline passed.
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Spend the slot and record it, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    /// Run although stdin is a terminal: this verb is run by systemd or the initrd and may
    /// reboot at once (not needed with --no-reboot).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Initrd emergency hook: on a first boot after an upgrade, spend the slot and
/// reboot at once instead of waiting in the emergency shell.
#[derive(Debug, Args, Clone)]
pub struct EmergencyArgs {
    /// Spend the slot and record it, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    /// Run although stdin is a terminal: this verb is run by systemd or the initrd and may
    /// reboot at once (not needed with --no-reboot).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Show the effective health-gate configuration.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Root to read /etc/abguard and /usr/lib/abguard from.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the settings and the files they came from as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only validate (the given files, or the configuration under --root): each bad
    /// line on stderr as FILE:LINE: what; exit 1 when there is one. Writes nothing.
    #[arg(long)]
    pub check: bool,
    /// Files to read instead of the configuration under --root.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct GeneratorArgs {
    /// Root to read the configuration from.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// NORMAL_DIR [EARLY_DIR LATE_DIR] as systemd passes them.
    pub dirs: Vec<String>,
}

/// Pass the pending health gate by hand: recorded as manual; releases update-engine and
/// locksmithd exactly as a passing gate does (writes /run/first-boot-healthy).
#[derive(Debug, Args, Clone)]
pub struct PassGateArgs {
    /// Why, for the history (e.g. a ticket number).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Also mark the booted slot good now (as MARK_GOOD=yes would).
    #[arg(long)]
    pub mark_good: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Fail the pending health gate now, as a failed critical unit does: record why, spend
/// the booted slot and reboot into the other one.
#[derive(Debug, Args, Clone)]
pub struct FailGateArgs {
    /// Why, for the history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Spend the slot and record it, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Switch abguard's health gate off on this node (/etc/abguard/disabled): first boots
/// pass at once, as on stock Flatcar; recorded, and shown by status.
#[derive(Debug, Args, Clone)]
pub struct DisableArgs {
    /// Why, for the history and status.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Root of the system to change [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
}

/// Switch abguard's health gate back on (from the next first boot after an upgrade).
#[derive(Debug, Args, Clone)]
pub struct EnableArgs {
    /// Root of the system to change [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
}
