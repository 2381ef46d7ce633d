//! abguard: health-gated A/B updates with automatic rollback for Flatcar Container Linux.
//!
//! Probe (gpt, sysfs, cmdline, dm, osrelease) → decide (ab, assess) → act (gpt writes,
//! safefs, record, reboot). The decision modules are pure and table-tested.

// The stages in the order a boot runs through them.
/// Effects: flags, records, history, metrics, reboot.
pub mod act;
/// Command-line definition: the only module that knows clap.
pub mod cli;
/// Configuration of the health gate: each key defined once.
pub mod config;
/// Pure decisions over those structs.
pub mod decide;
/// The one GPT read → change → write path.
pub mod disk;
/// Turning the machine into plain structs.
pub mod probe;
/// One file per verb: probe, decide, act.
pub mod verbs;

// Flat names kept while the callers move to the staged paths.
pub use act::{kmsg, metrics, reboot, record, safefs};
pub use config::timespan;
pub use decide::{ab, assess, attrs};
pub use disk::{fail, gpt, lock as disklock};
#[cfg(feature = "cryptsetup")]
pub use probe::cryptsetup;
pub use probe::{cmdline, dm, osrelease, sysfs, verity};
pub use verbs::{butane, gate, generator, initrd, read_usr as readusr, slots as commands, verify};

use cli::{Cli, Command};

/// Exit codes, documented in the README.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_REFUSED: i32 = 3;

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Status(a) => {
            let out = match (a.prometheus, &a.textfile) {
                (false, _) => commands::Output::Text {
                    json: a.json,
                    history: a.history,
                },
                (true, f) => commands::Output::Prometheus(f.clone()),
            };
            commands::status(&a.target.disk, &a.target.probe, out)
        }
        Command::Next(a) => commands::next(&a.target.disk, &a.target.probe, a.dry_run, a.json),
        Command::Stage(a) => commands::stage(&a.target.disk, &a.target.probe, a.partition, a.json),
        Command::MarkGood(a) => {
            commands::mark_good(&a.target.disk, &a.target.probe, a.partition, a.json)
        }
        Command::Rollback(a) => commands::rollback(
            &a.target.disk,
            &a.target.probe,
            a.partition,
            a.force,
            a.json,
        ),
        Command::Initrd(cli::InitrdArgs { opts: a })
        | Command::Assess(cli::StockAssessArgs { opts: a }) => {
            let dm_test = a.dm_status.as_deref().zip(a.dm_table.as_deref());
            let in_initrd = matches!(cli.command, Command::Initrd(_));
            initrd::run(
                &a.target.disk,
                &a.target.probe,
                &initrd::Options {
                    no_reboot: a.no_reboot,
                    json: a.json,
                    dm_test,
                    in_initrd,
                },
            )
        }
        Command::GatePass(a) => {
            gate::pass(&a.target.disk, &a.target.probe, a.no_mark_good, a.no_reboot)
        }
        Command::GateFail(a) => gate::fail(
            &a.target.disk,
            &a.target.probe,
            a.unit.as_deref(),
            a.no_reboot,
        ),
        Command::Emergency(a) => gate::emergency(&a.target.disk, &a.target.probe, a.no_reboot),
        Command::Config(a) => show_config(&a.root, a.json),
        Command::Butane(args) => butane::run(args),
        Command::Verify(args) => verify::run(&args.target.disk, &args.target.probe, args),
        Command::ReadUsr(args) => readusr::run(args),
        Command::Generator(a) => Ok(generator::run(&a.root, &a.dirs)),
        Command::Allow(a) => verbs::allow::run(a),
        Command::GuardStaged(a) => {
            verbs::lifecycle::guard_staged(&a.target.disk, &a.target.probe, a.json)
        }
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
