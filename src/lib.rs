//! abguard: health-gated A/B updates with automatic rollback for Flatcar Container Linux.
//!
//! Every verb runs the same way: [`cli`] turns the command line into plain options and
//! [`types::Roots`]; [`probe`] turns the machine (GPT, sysfs, command line, dm-verity,
//! os-release) into plain facts; [`decide`] reaches a verdict with pure, table-tested
//! functions; [`disk`] writes the one GPT change and [`act`] the rest (flags, records,
//! history, metrics, reboot). [`verbs`] holds one thin file per verb wiring these.
//!
//! Imports only point down this list (tests/layers.rs checks it): verbs → cli, exit →
//! probe, act, config → decide, disk → types, safefs.

// The stages, top to bottom.
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
/// Exit codes and the error a verb fails with.
pub mod exit;
/// Turning the machine into plain structs.
pub mod probe;
/// Crash-safe, no-follow file access under /run, /var and /etc.
pub mod safefs;
/// Shared types: slots, attributes, the booted slot, the paths to probe.
pub mod types;
/// One file per verb: probe, decide, act, report.
pub mod verbs;

use cli::{Cli, Command};
use exit::{ExitCode, VerbResult};

pub fn run(cli: Cli) -> VerbResult {
    match &cli.command {
        Command::Status(a) => {
            let out = match (a.prometheus, &a.textfile) {
                (false, _) => verbs::slots::Output::Text {
                    json: a.json,
                    history: a.history,
                },
                (true, f) => verbs::slots::Output::Prometheus(f.clone()),
            };
            verbs::slots::status(&a.target.roots(), out)
        }
        Command::Next(a) => verbs::slots::next(&a.target.roots(), a.dry_run, a.json),
        Command::Stage(a) => verbs::slots::stage(&a.target.roots(), a.partition, a.json),
        Command::MarkGood(a) => verbs::slots::mark_good(&a.target.roots(), a.partition, a.json),
        Command::Rollback(a) => {
            verbs::slots::rollback(&a.target.roots(), a.partition, a.force, a.json)
        }
        Command::Initrd(cli::args::InitrdArgs { opts: a })
        | Command::Assess(cli::args::StockAssessArgs { opts: a }) => {
            let dm_test = a.dm_status.as_deref().zip(a.dm_table.as_deref());
            let in_initrd = matches!(cli.command, Command::Initrd(_));
            let o = verbs::initrd::Options {
                no_reboot: a.no_reboot,
                json: a.json,
                dm_test,
                in_initrd,
            };
            Ok(verbs::initrd::run(&a.target.roots(), &o)?)
        }
        Command::GatePass(a) => Ok(verbs::gate::pass(
            &a.target.roots(),
            a.no_mark_good,
            a.no_reboot,
        )?),
        Command::GateFail(a) => Ok(verbs::gate::fail(
            &a.target.roots(),
            a.unit.as_deref(),
            a.no_reboot,
        )?),
        Command::Emergency(a) => Ok(verbs::gate::emergency(&a.target.roots(), a.no_reboot)?),
        Command::Config(a) => Ok(show_config(&a.root, a.json)?),
        Command::Butane(args) => verbs::butane::run(args),
        Command::Verify(args) => verbs::verify::run(&args.target.roots(), args),
        Command::ReadUsr(args) => Ok(verbs::read_usr::run(args)?),
        Command::Generator(a) => Ok(verbs::generator::run(&a.root, &a.dirs)),
        Command::Allow(a) => verbs::allow::run(a),
        Command::GuardStaged(a) => verbs::guard_staged::run(&a.target.roots(), a.json),
    }
}

fn show_config(root: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let c = config::Config::load(root)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(ExitCode::Ok);
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
    Ok(ExitCode::Ok)
}
