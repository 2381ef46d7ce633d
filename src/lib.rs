//! abguard: health-gated A/B updates with automatic rollback for Flatcar Container Linux.
//!
//! Every verb runs the same way: [`cli`] turns the command line into plain options and
//! [`types::Roots`]; [`probe`] turns the machine (GPT, sysfs, command line, dm-verity,
//! os-release) into plain facts; [`decide`] reaches a verdict with pure, table-tested
//! functions; [`disk`] writes the one GPT change and [`act`] the rest (flags, records,
//! history, metrics, reboot). [`verbs`] holds one thin file per verb wiring these.
//!
//! Imports only point down the list of stages below (tests/layers.rs checks it):
//! verbs → cli, exit → probe, act, config → disk → decide → types, safefs.

// Stage 1: the verbs.
/// One file per verb: probe, decide, act, report.
pub mod verbs;

// Stage 2: what verbs are called with and end with.
/// Command-line definition: the only module that knows clap.
pub mod cli;
/// Exit codes and the error a verb fails with.
pub mod exit;

// Stage 3: reading the machine, acting on it, the configuration.
/// Effects: flags, records, history, metrics, reboot.
pub mod act;
/// Configuration of the health gate: each key defined once.
pub mod config;
/// Turning the machine into plain structs.
pub mod probe;

// Stage 4: the disk.
/// The one GPT read → change → write path.
pub mod disk;

// Stage 5: the decisions.
/// Pure decisions over those structs.
pub mod decide;

// Stage 6: shared by all.
/// Crash-safe, no-follow file access under /run, /var and /etc.
pub mod safefs;
/// Shared types: slots, attributes, the booted slot, the paths to probe.
pub mod types;

use cli::{Cli, Command};
use exit::VerbResult;

pub fn run(cli: Cli) -> VerbResult {
    match &cli.command {
        Command::Status(a) => verbs::status::run(a),
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
        Command::GatePass(a) => verbs::gate::pass(a),
        Command::GateFail(a) => verbs::gate::fail(a),
        Command::Emergency(a) => verbs::gate::emergency(a),
        Command::Config(a) => Ok(verbs::config::run(&a.root, a.json, a.check, &a.files)?),
        Command::Butane(args) => verbs::butane::run(args),
        Command::Verify(args) => verbs::verify::run(&args.target.roots(), args),
        Command::ReadUsr(args) => Ok(verbs::read_usr::run(args)?),
        Command::Generator(a) => Ok(verbs::generator::run(&a.root, &a.dirs)),
        Command::Allow(a) => verbs::allow::run(a),
        Command::GuardStaged(a) => verbs::guard_staged::run(&a.target.roots(), a.json),
    }
}
