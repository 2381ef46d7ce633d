//! Command-line definition. Every path the tool reads or writes can be redirected,
//! so tests run against disk images and fake trees instead of a live machine.

/// The options of the slot verbs, the initrd, the gate, `config` and the generator.
pub mod args;
/// The loop guard's verbs: `allow` and `guard-staged`.
pub mod lifecycle;
/// `--disk` and the running system's path options, turned into [`crate::types::PathOverrides`].
pub mod paths;
/// The options of `verify`, `read-usr` and `butane`.
pub mod tools;

use args::{
    ConfigArgs, DisableArgs, EmergencyArgs, EnableArgs, FailGateArgs, GateFailArgs, GatePassArgs,
    GeneratorArgs, InitrdArgs, MarkGoodArgs, NextArgs, PassGateArgs, RollbackArgs, StageArgs,
    StatusArgs, StockAssessArgs,
};
use clap::{Args, FromArgMatches, Parser, Subcommand};
use tools::{ButaneArgs, ReadUsrArgs, VerifyArgs};

/// The tool's one-line description, shared by the full and the single-verb definition.
pub const ABOUT: &str =
    "Health-gated A/B updates with automatic rollback for Flatcar Container Linux";

#[derive(Debug, Parser)]
#[command(name = "abguard", version, about = ABOUT, after_help = crate::exit::HELP)]
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

impl Cli {
    /// Parse the process's arguments (`argv[0]` first). Building clap's definition of every verb cost more
    /// than an initrd run's own work, so the verb named on the command line is built
    /// alone; anything that does not parse that way (help, typos, no verb) is parsed
    /// again against the full definition, so errors and help are clap's usual ones.
    pub fn parse_args(args: Vec<std::ffi::OsString>) -> Cli {
        if let Some(c) = Self::parse_one_verb(&args) {
            return c;
        }
        Cli::try_parse_from(&args).unwrap_or_else(|e| {
            let hint = misplaced_option(&e, &args);
            let _ = e.print();
            if let Some(h) = hint {
                eprintln!("{h}");
            }
            std::process::exit(e.exit_code())
        })
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
                .about(ABOUT)
                .after_help(crate::exit::HELP),
        )
        .subcommand_required(true)
        .subcommand(verb);
        let m = root.try_get_matches_from_mut(args).ok()?;
        Cli::from_arg_matches(&m).ok()
    }
}

impl Command {
    /// An internal verb that may reboot at once, without `--no-reboot` or `--yes`: what
    /// to say when it is typed at a terminal (systemd and the initrd run it otherwise).
    pub fn needs_yes(&self) -> Option<&'static str> {
        let (verb, no_reboot, yes) = match self {
            Command::Initrd(InitrdArgs { opts: a }) => ("initrd", a.no_reboot, a.yes),
            Command::Assess(StockAssessArgs { opts: a }) => ("assess", a.no_reboot, a.yes),
            Command::GatePass(a) => ("gate-pass", a.no_reboot, a.yes),
            Command::GateFail(a) => ("gate-fail", a.no_reboot, a.yes),
            Command::Emergency(a) => ("emergency", a.no_reboot, a.yes),
            _ => return None,
        };
        (!no_reboot && !yes).then_some(verb)
    }
}

/// `abguard --disk X status`: the verb's options go after it; say so, with the command
/// line reordered.
pub fn misplaced_option(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let at = words.iter().position(|w| verb_command(w).is_some())?;
    let verb = verb_command(words[at])?;
    let takes = |w: &str| {
        let long = w.strip_prefix("--")?.split('=').next()?;
        verb.get_arguments()
            .any(|a| a.get_long() == Some(long))
            .then_some(())
    };
    words[..at].iter().find(|w| takes(w).is_some())?;
    let mut fixed = vec![words[at]];
    fixed.extend(&words[..at]);
    fixed.extend(&words[at + 1..]);
    Some(format!(
        "hint: a verb's options go after it: abguard {}",
        fixed.join(" ")
    ))
}

/// A usage error a verb's own checks found after parsing, shown as clap shows its own
/// (the message, the verb's usage, the pointer to `--help`) and with clap's exit status 2.
pub fn usage_error(verb: &str, message: &str) -> clap::Error {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    match cmd.find_subcommand_mut(verb) {
        Some(sub) => sub.error(clap::error::ErrorKind::ValueValidation, message),
        None => cmd.error(clap::error::ErrorKind::ValueValidation, message),
    }
}

/// The verbs typed by hand now and then, for which a full parse is fast enough: no fast
/// path (each one would cost the static binary its definition twice).
pub const NO_FAST_PATH: &[&str] = &["pass-gate", "fail-gate", "disable", "enable"];

/// One verb's definition, exactly as the derived `Command` builds it.
pub fn verb_command(name: &str) -> Option<clap::Command> {
    use clap::Command as C;
    Some(match name {
        "status" => StatusArgs::augment_args(C::new("status")),
        "next" => NextArgs::augment_args(C::new("next")),
        "stage" => StageArgs::augment_args(C::new("stage")),
        "mark-good" => MarkGoodArgs::augment_args(C::new("mark-good")),
        "rollback" => RollbackArgs::augment_args(C::new("rollback")),
        "initrd" => InitrdArgs::augment_args(C::new("initrd")).hide(true),
        "assess" => StockAssessArgs::augment_args(C::new("assess")).hide(true),
        "gate-pass" => GatePassArgs::augment_args(C::new("gate-pass")).hide(true),
        "gate-fail" => GateFailArgs::augment_args(C::new("gate-fail")).hide(true),
        "emergency" => EmergencyArgs::augment_args(C::new("emergency")).hide(true),
        "config" => ConfigArgs::augment_args(C::new("config")),
        "butane" => ButaneArgs::augment_args(C::new("butane")),
        "verify" => VerifyArgs::augment_args(C::new("verify")),
        "read-usr" => ReadUsrArgs::augment_args(C::new("read-usr")),
        "allow" => lifecycle::AllowArgs::augment_args(C::new("allow")),
        "guard-staged" => {
            lifecycle::GuardStagedArgs::augment_args(C::new("guard-staged")).hide(true)
        }
        _ => return None,
    })
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
    PassGate(PassGateArgs),
    FailGate(FailGateArgs),
    Disable(DisableArgs),
    Enable(EnableArgs),
    Config(ConfigArgs),
    Butane(ButaneArgs),
    Verify(VerifyArgs),
    ReadUsr(ReadUsrArgs),
    Allow(lifecycle::AllowArgs),
    // Internal: run by systemd units and the initrd, not by hand (hidden from --help;
    // their man pages stay; the ones that may reboot refuse a terminal without --yes).
    #[command(hide = true)]
    Initrd(InitrdArgs),
    #[command(hide = true)]
    Assess(StockAssessArgs),
    #[command(hide = true)]
    GatePass(GatePassArgs),
    #[command(hide = true)]
    GateFail(GateFailArgs),
    #[command(hide = true)]
    Emergency(EmergencyArgs),
    #[command(hide = true)]
    GuardStaged(lifecycle::GuardStagedArgs),
    /// systemd generator mode (also selected by running as abguard-generator).
    #[command(hide = true)]
    Generator(GeneratorArgs),
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

    /// Every verb (the internal ones too), built alone, renders the same help as in the
    /// full tree: same description, options, defaults and order.
    #[test]
    fn single_verb_definitions_match_the_full_tree() {
        let mut full = Cli::command();
        full.build();
        let mut seen = 0;
        for sub in full.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            if name == "generator" || name == "help" || NO_FAST_PATH.contains(&name.as_str()) {
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

    #[test]
    fn a_verbs_option_before_it_gets_a_hint() {
        let args = os(&["abguard", "--disk", "d.img", "status", "--json"]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(
            misplaced_option(&e, &args).as_deref(),
            Some("hint: a verb's options go after it: abguard status --disk d.img --json")
        );
        let args = os(&["abguard", "--bogus", "status"]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(misplaced_option(&e, &args), None, "not an option of status");
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
