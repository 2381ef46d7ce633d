//! Command-line definition. Every path the tool reads or writes can be redirected,
//! so tests run against disk images and fake trees instead of a live machine.

use clap::{Args, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// The loop guard's verbs.
pub mod lifecycle;

/// The tool's one-line description, shared by the full and the single-verb definition.
pub const ABOUT: &str =
    "Health-gated A/B updates with automatic rollback for Flatcar Container Linux";

#[derive(Debug, Parser)]
#[command(name = "abguard", version, about = ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

// The one option every verb takes, accepted before or after the verb. (Plain comments:
// a flattened struct's doc comment would become the command's description.)
#[derive(Debug, Args, Clone)]
pub struct Globals {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

// Where the GPT and the running system are: flattened into the verbs that read them
// (not `config`, `butane`, `read-usr`), after the verb, so each page lists what its verb
// uses.
#[derive(Debug, Args, Clone)]
pub struct Target {
    #[command(flatten)]
    pub disk: DiskArg,
    #[command(flatten)]
    pub probe: Probe,
}

impl Cli {
    /// Parse the process's arguments (argv[0] first). Building clap's definition of every verb cost more
    /// than an initrd run's own work, so the verb named on the command line is built
    /// alone; anything that does not parse that way (help, typos, no verb) is parsed
    /// again against the full definition, so errors and help are clap's usual ones.
    pub fn parse_args(args: Vec<std::ffi::OsString>) -> Cli {
        Self::parse_one_verb(&args).unwrap_or_else(|| Cli::parse_from(args))
    }

    /// The fast path: `None` when it cannot decide alone.
    pub fn parse_one_verb(args: &[std::ffi::OsString]) -> Option<Cli> {
        // The first argument spelling a verb: if it was really an option's value, the
        // subcommand clap finds is not in this tree and the parse fails over.
        let verb = args
            .iter()
            .skip(1)
            .find_map(|a| a.to_str().and_then(verb_command))?;
        let mut root = Globals::augment_args(
            clap::Command::new("abguard")
                .version(env!("CARGO_PKG_VERSION"))
                .about(ABOUT),
        )
        .subcommand_required(true)
        .subcommand(verb);
        let m = root.try_get_matches_from_mut(args).ok()?;
        Cli::from_arg_matches(&m).ok()
    }
}

/// One verb's definition, exactly as the derived `Command` builds it.
pub fn verb_command(name: &str) -> Option<clap::Command> {
    use clap::Command as C;
    Some(match name {
        "status" => StatusArgs::augment_args(C::new("status")),
        "next" => NextArgs::augment_args(C::new("next")),
        "stage" => StageArgs::augment_args(C::new("stage")),
        "mark-good" => MarkGoodArgs::augment_args(C::new("mark-good")),
        "rollback" => RollbackArgs::augment_args(C::new("rollback")),
        "initrd" => InitrdArgs::augment_args(C::new("initrd")),
        "assess" => StockAssessArgs::augment_args(C::new("assess")),
        "gate-pass" => GatePassArgs::augment_args(C::new("gate-pass")),
        "gate-fail" => GateFailArgs::augment_args(C::new("gate-fail")),
        "emergency" => EmergencyArgs::augment_args(C::new("emergency")),
        "config" => ConfigArgs::augment_args(C::new("config")),
        "butane" => crate::butane::ButaneArgs::augment_args(C::new("butane")),
        "verify" => crate::verify::VerifyArgs::augment_args(C::new("verify")),
        "read-usr" => crate::readusr::ReadUsrArgs::augment_args(C::new("read-usr")),
        "allow" => lifecycle::AllowArgs::augment_args(C::new("allow")),
        "guard-staged" => lifecycle::GuardStagedArgs::augment_args(C::new("guard-staged")),
        _ => return None,
    })
}

// Where to find the running system; defaults are the live machine's.
#[derive(Debug, Args, Clone, Default)]
pub struct Probe {
    /// Kernel command line to read [default: /proc/cmdline].
    #[arg(long, value_name = "PATH")]
    pub cmdline: Option<PathBuf>,
    /// sysfs root [default: /sys].
    #[arg(long, value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
    /// Device directory [default: /dev].
    #[arg(long, value_name = "DIR")]
    pub dev: Option<PathBuf>,
    /// Mount table [default: /proc/self/mountinfo].
    #[arg(long, value_name = "PATH")]
    pub mountinfo: Option<PathBuf>,
    /// Mount point of the booted /usr [default: /sysusr/usr or SYSROOT/usr in the initrd, /usr otherwise].
    #[arg(long, value_name = "DIR")]
    pub usr: Option<PathBuf>,
    /// Runtime state directory [default: /run].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Root of the booted system, for os-release and the history [default: / ; /sysroot for initrd].
    #[arg(long, value_name = "DIR")]
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
    #[arg(long, value_name = "PATH")]
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
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
#[command(rename_all = "kebab-case")]
pub enum Command {
    // Each verb's help text is its Args struct's doc comment, so that `verb_command`
    // builds the same definition as this enum.
    Status(StatusArgs),
    Next(NextArgs),
    Stage(StageArgs),
    MarkGood(MarkGoodArgs),
    Rollback(RollbackArgs),
    Initrd(InitrdArgs),
    Assess(StockAssessArgs),
    GatePass(GatePassArgs),
    GateFail(GateFailArgs),
    Emergency(EmergencyArgs),
    Config(ConfigArgs),
    Butane(crate::butane::ButaneArgs),
    Verify(crate::verify::VerifyArgs),
    ReadUsr(crate::readusr::ReadUsrArgs),
    Allow(lifecycle::AllowArgs),
    GuardStaged(lifecycle::GuardStagedArgs),
    /// systemd generator mode (also selected by running as abguard-generator).
    #[command(hide = true)]
    Generator(GeneratorArgs),
}

/// Show the USR slots, the next boot, the booted slot, the last assessment and the history.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
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
    pub target: Target,
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
    pub target: Target,
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
    pub target: Target,
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
    pub target: Target,
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
    pub target: Target,
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

/// Health gate passed (run by abguard-gate.service after boot-complete.target):
/// write /run/first-boot-healthy, record it, mark the slot good if configured.
#[derive(Debug, Args, Clone)]
pub struct GatePassArgs {
    /// Do not mark the slot good even if MARK_GOOD=yes.
    #[arg(long)]
    pub no_mark_good: bool,
    /// If dm-verity has seen corruption, roll back but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    #[command(flatten)]
    pub target: Target,
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
    #[command(flatten)]
    pub target: Target,
}

/// Initrd emergency hook: on a first boot after an upgrade, spend the slot and
/// reboot at once instead of waiting in the emergency shell.
#[derive(Debug, Args, Clone)]
pub struct EmergencyArgs {
    /// Spend the slot and record it, but do not reboot.
    #[arg(long)]
    pub no_reboot: bool,
    #[command(flatten)]
    pub target: Target,
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
}

#[derive(Debug, Args, Clone)]
pub struct GeneratorArgs {
    /// Root to read the configuration from.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// NORMAL_DIR [EARLY_DIR LATE_DIR] as systemd passes them.
    pub dirs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::ffi::OsString;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

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
            Command::Next(NextArgs {
                dry_run: true,
                json: true,
                ..
            })
        ));
        assert!(
            Cli::try_parse_from(["abguard", "stage", "--disk", "d"]).is_err(),
            "--partition is required"
        );
        let c = Cli::try_parse_from(["abguard", "mark-good", "--partition", "4"]).unwrap();
        assert!(matches!(
            c.command,
            Command::MarkGood(MarkGoodArgs {
                partition: Some(4),
                ..
            })
        ));
    }

    /// Every visible verb, built alone, renders the same help as in the full tree: same
    /// description, options, defaults and order.
    #[test]
    fn single_verb_definitions_match_the_full_tree() {
        let mut full = Cli::command();
        full.build();
        let mut seen = 0;
        for sub in full.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            if sub.is_hide_set() || name == "help" {
                assert!(verb_command(&name).is_none(), "{name} has a fast path");
                continue;
            }
            let mut alone = Globals::augment_args(clap::Command::new("abguard").about(ABOUT))
                .subcommand_required(true)
                .subcommand(verb_command(&name).unwrap_or_else(|| panic!("{name}: no fast path")));
            alone.build();
            let alone = alone.find_subcommand_mut(&name).unwrap();
            assert_eq!(
                alone.render_long_help().to_string(),
                sub.render_long_help().to_string(),
                "{name}"
            );
            seen += 1;
        }
        assert_eq!(seen, 16);
    }

    /// The fast path either agrees with the full parse or steps aside.
    #[test]
    fn single_verb_parse_agrees_or_defers() {
        let cases: &[&[&str]] = &[
            &["abguard", "next", "--disk", "d.img", "--dry-run", "--json"],
            &[
                "abguard",
                "-vv",
                "status",
                "--disk",
                "d.img",
                "--history",
                "3",
                "-v",
            ],
            &[
                "abguard",
                "initrd",
                "--no-reboot",
                "--sysroot",
                "/s",
                "--dm-status",
                "a",
                "--dm-table",
                "b",
            ],
            &["abguard", "rollback", "--force"],
            &["abguard", "status", "--disk", "status"],
            &["abguard", "gate-fail", "--unit", "next"],
            &[
                "abguard",
                "butane",
                "--critical-unit",
                "a.service",
                "--format",
                "ignition",
            ],
        ];
        for args in cases {
            let fast = Cli::parse_one_verb(&os(args)).unwrap_or_else(|| panic!("{args:?}"));
            let full = Cli::try_parse_from(*args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{args:?}");
        }
        // help, a typo, a missing verb, bad input: the fast path declines and the full
        // parse decides
        let deferred: &[&[&str]] = &[
            &["abguard", "--disk", "d.img", "status"],
            &["abguard", "status", "--help"],
            &["abguard", "help", "status"],
            &["abguard", "statu"],
            &["abguard", "--disk", "x"],
            &["abguard", "stage"],
            &["abguard", "--version"],
            &["abguard", "generator", "/tmp/a"],
        ];
        for args in deferred {
            assert!(Cli::parse_one_verb(&os(args)).is_none(), "{args:?}");
        }
    }

    /// The probe options belong to the verbs that read a disk or the running system:
    /// after the verb only, and not on `config`, `butane` or `read-usr`.
    #[test]
    fn probe_options_only_after_the_verbs_that_use_them() {
        let c = Cli::try_parse_from(["abguard", "status", "--disk", "next"]).unwrap();
        assert!(matches!(c.command, Command::Status(_)));
        for args in [
            &["abguard", "--disk", "d.img", "status"][..],
            &["abguard", "config", "--sysfs", "/s"],
            &["abguard", "butane", "--disk", "d.img"],
            &["abguard", "read-usr", "--cmdline", "c"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
    }
}
