//! Command-line definition. Every path the tool reads or writes can be redirected,
//! so tests run against disk images and fake trees instead of a live machine.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "abguard",
    version,
    about = "Health-gated A/B updates with automatic rollback for Flatcar Container Linux"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    // global options are built once, not once per verb: clap's command construction
    // was a third of an initrd run's instructions
    #[command(flatten)]
    pub disk: DiskArg,
    #[command(flatten)]
    pub probe: Probe,
    #[command(subcommand)]
    pub command: Command,
}

/// Where to find the running system; defaults are the live machine's.
#[derive(Debug, Args, Clone, Default)]
pub struct Probe {
    /// Kernel command line to read [default: /proc/cmdline].
    #[arg(long, global = true)]
    pub cmdline: Option<PathBuf>,
    /// sysfs root [default: /sys].
    #[arg(long, global = true)]
    pub sysfs: Option<PathBuf>,
    /// Device directory [default: /dev].
    #[arg(long, global = true)]
    pub dev: Option<PathBuf>,
    /// Mount table [default: /proc/self/mountinfo].
    #[arg(long, global = true)]
    pub mountinfo: Option<PathBuf>,
    /// Mount point of the booted /usr [default: /sysusr/usr or SYSROOT/usr in the initrd, /usr otherwise].
    #[arg(long, global = true)]
    pub usr: Option<PathBuf>,
    /// Runtime state directory [default: /run].
    #[arg(long, global = true)]
    pub run_dir: Option<PathBuf>,
    /// Root of the booted system, for os-release and the history [default: / ; /sysroot for initrd].
    #[arg(long, global = true)]
    pub sysroot: Option<PathBuf>,
}

impl Probe {
    /// True when the caller pointed at a system other than this one.
    pub fn explicit(&self) -> bool {
        self.cmdline.is_some()
            || self.sysfs.is_some()
            || self.mountinfo.is_some()
            || self.usr.is_some()
    }
}

#[derive(Debug, Args, Clone)]
pub struct DiskArg {
    /// Disk or image file holding the GPT [default: the disk of the booted /usr].
    #[arg(long, global = true)]
    pub disk: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct AssessArgs {
    /// Decide and write, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    /// Print the boot record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Test input: `dmsetup status usr` output instead of the DM ioctl.
    #[arg(long, hide = true, requires = "dm_table")]
    pub dm_status: Option<PathBuf>,
    /// Test input: `dmsetup table usr` output instead of the DM ioctl.
    #[arg(long, hide = true, requires = "dm_status")]
    pub dm_table: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
#[command(rename_all = "kebab-case")]
pub enum Command {
    /// Show the USR slots, the next boot, the booted slot, the last assessment and the history.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// History entries to show.
        #[arg(long, default_value_t = 10)]
        history: usize,
        /// Print Prometheus text exposition format instead.
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
        /// With --prometheus: write atomically to this file (node_exporter's textfile collector).
        #[arg(long, requires = "prometheus")]
        textfile: Option<PathBuf>,
    },
    /// Do what GRUB's gptprio.next does: pick the slot to boot and spend one of its tries.
    Next {
        /// Only print the choice; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stage a slot as flatcar-postinst does: successful=0, tries=1, highest priority.
    Stage {
        /// Partition number of the slot to stage.
        #[arg(long)]
        partition: u32,
        #[arg(long)]
        json: bool,
    },
    /// Mark a slot good as flatcar-setgoodroot does: successful=1, tries=0, highest priority.
    MarkGood {
        /// Partition number [default: the booted slot].
        #[arg(long)]
        partition: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Make the other slot boot next.
    Rollback {
        /// Slot to roll back to [default: the slot other than the booted one].
        #[arg(long)]
        partition: Option<u32>,
        /// Roll back to a slot that never booted successfully (gives it one try).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Assess this boot from the initrd: write /run flags and the boot record; on a
    /// first boot after an upgrade whose dm-verity check failed, spend the slot and reboot.
    Initrd(AssessArgs),
    /// The same assessment as `initrd`, run by abguard-assess.service early in the
    /// booted system, for stock images that cannot add the dracut module.
    Assess(AssessArgs),
    /// Health gate passed (run by abguard-gate.service after boot-complete.target):
    /// write /run/first-boot-healthy, record it, mark the slot good if configured.
    GatePass {
        /// Do not mark the slot good even if MARK_GOOD=yes.
        #[arg(long)]
        no_mark_good: bool,
        /// If dm-verity has seen corruption, roll back but do not reboot.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Health gate failed (a critical unit failed, or the deadline passed): on a first
    /// boot after an upgrade, record why, spend the slot and reboot so GRUB falls back.
    GateFail {
        /// The critical unit that failed; without it, the deadline passed.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        no_reboot: bool,
    },
    /// Initrd emergency hook: on a first boot after an upgrade, spend the slot and
    /// reboot at once instead of waiting in the emergency shell.
    Emergency {
        #[arg(long)]
        no_reboot: bool,
    },
    /// Show the effective health-gate configuration.
    Config {
        /// Root to read /etc/abguard and /usr/lib/abguard from.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the Butane (or Ignition) config that writes health-gate settings to
    /// /etc/abguard/abguard.conf.d/10-butane.conf at provisioning.
    Butane(crate::butane::ButaneArgs),
    /// Verify a USR slot's filesystem and dm-verity hash tree offline, block by block,
    /// against the root hash in its kernel (needs the `cryptsetup` build). Exit 4: failed.
    Verify(crate::verify::VerifyArgs),
    /// Read all of /dev/mapper/usr through dm-verity; fail at the first unreadable block
    /// (exit 4). VERIFY_USR=yes runs it before boot-complete.target on a first boot.
    ReadUsr(crate::readusr::ReadUsrArgs),
    /// systemd generator mode (also selected by running as abguard-generator).
    #[command(hide = true)]
    Generator {
        /// Root to read the configuration from.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// NORMAL_DIR [EARLY_DIR LATE_DIR] as systemd passes them.
        dirs: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_verbs() {
        let c = Cli::try_parse_from(["abguard", "next", "--disk", "d.img", "--dry-run", "--json"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Next {
                dry_run: true,
                json: true,
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["abguard", "stage", "--disk", "d"]).is_err(),
            "--partition is required"
        );
        let c = Cli::try_parse_from(["abguard", "mark-good", "--partition", "4"]).unwrap();
        assert!(matches!(
            c.command,
            Command::MarkGood {
                partition: Some(4),
                ..
            }
        ));
    }
}
