//! abguard: health-gated A/B updates with automatic rollback for Flatcar Container Linux.
//!
//! Probe (gpt, sysfs, cmdline, dm, osrelease) → decide (ab, assess) → act (gpt writes,
//! safefs, record, reboot). The decision modules are pure and table-tested.

pub mod ab;
pub mod assess;
pub mod attrs;
pub mod butane;
pub mod cli;
pub mod cmdline;
pub mod commands;
pub mod config;
#[cfg(feature = "cryptsetup")]
pub mod cryptsetup;
pub mod dm;
pub mod fail;
pub mod gate;
pub mod generator;
pub mod gpt;
pub mod initrd;
pub mod kmsg;
pub mod metrics;
pub mod osrelease;
pub mod probe;
pub mod readusr;
pub mod reboot;
pub mod record;
pub mod safefs;
pub mod sysfs;
pub mod verify;
pub mod verity;

use cli::{Cli, Command};

/// Exit codes, documented in the README.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_REFUSED: i32 = 3;

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let (disk, probe) = (&cli.disk, &cli.probe);
    match &cli.command {
        Command::Status {
            json,
            history,
            prometheus,
            textfile,
        } => {
            let out = match (prometheus, textfile) {
                (false, _) => commands::Output::Text {
                    json: *json,
                    history: *history,
                },
                (true, f) => commands::Output::Prometheus(f.clone()),
            };
            commands::status(disk, probe, out)
        }
        Command::Next { dry_run, json } => commands::next(disk, probe, *dry_run, *json),
        Command::Stage { partition, json } => commands::stage(disk, probe, *partition, *json),
        Command::MarkGood { partition, json } => {
            commands::mark_good(disk, probe, *partition, *json)
        }
        Command::Rollback {
            partition,
            force,
            json,
        } => commands::rollback(disk, probe, *partition, *force, *json),
        Command::Initrd(a) | Command::Assess(a) => {
            let dm_test = a.dm_status.as_deref().zip(a.dm_table.as_deref());
            let in_initrd = matches!(cli.command, Command::Initrd(_));
            initrd::run(
                disk,
                probe,
                &initrd::Options {
                    no_reboot: a.no_reboot,
                    json: a.json,
                    dm_test,
                    in_initrd,
                },
            )
        }
        Command::GatePass {
            no_mark_good,
            no_reboot,
        } => gate::pass(disk, probe, *no_mark_good, *no_reboot),
        Command::GateFail { unit, no_reboot } => {
            gate::fail(disk, probe, unit.as_deref(), *no_reboot)
        }
        Command::Emergency { no_reboot } => gate::emergency(disk, probe, *no_reboot),
        Command::Config { root, json } => show_config(root, *json),
        Command::Butane(args) => butane::run(args),
        Command::Verify(args) => verify::run(disk, probe, args),
        Command::ReadUsr(args) => readusr::run(probe, args),
        Command::Generator { root, dirs } => Ok(generator::run(root, dirs)),
    }
}

fn show_config(root: &std::path::Path, json: bool) -> anyhow::Result<i32> {
    let c = config::Config::load(root)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(0);
    }
    println!("CRITICAL_UNITS={}", c.critical_units.join(" "));
    println!("DEADLINE={}", c.deadline);
    println!("MARK_GOOD={}", if c.mark_good { "yes" } else { "no" });
    let on_failure = serde_json::to_value(c.on_failure)?;
    println!("ON_FAILURE={}", on_failure.as_str().unwrap_or("?"));
    println!("VERIFY_USR={}", if c.verify_usr { "yes" } else { "no" });
    for s in &c.sources {
        println!("# from {}", s.display());
    }
    Ok(0)
}

/// Exit code for an error: refusals (nothing bootable, never-successful target) are 3.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<ab::Refusal>().is_some() {
        EXIT_REFUSED
    } else {
        EXIT_ERROR
    }
}
