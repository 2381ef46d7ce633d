//! abguard: health-gated A/B updates with automatic rollback for Flatcar Container Linux.
//!
//! Every verb runs the same way: [`cli`] parses the command line into the verb's own
//! clap struct; the verb turns its `PathArgs` into [`types::PathOverrides`] and then
//! [`probe::MachinePaths`];
//! [`probe`] turns the machine (GPT, sysfs, command line, dm-verity, os-release) into
//! plain facts; [`decide`] reaches a verdict with pure, table-tested functions; [`disk`]
//! writes the one GPT change and [`act`] the rest (flags, records, history, metrics,
//! reboot). [`verbs`] holds one file (or folder) per verb wiring these.
//!
//! The verb contract: each verb is a `pub fn(&ItsArgs) -> exit::VerbResult` in
//! `verbs/`, dispatched by one line in [`run`] through `verb`, which accepts no other
//! shape (the type system holds it). What one verb needs stays in its file; verbs/mod.rs
//! holds only what several verbs share.
//!
//! Imports only point down the list of stages below (tests/layers.rs checks it):
//! verbs → cli → exit → probe, act, config → disk → decide → types, safefs.

// Stage 1: the verbs.
/// One file per verb: probe, decide, act, report.
pub mod verbs;

// Stage 2: what verbs are called with, and (below it, so --help prints the table) the
// exit codes they end with.
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

/// The verb contract: a verb is a `fn(&ItsArgs) -> VerbResult`, its clap struct in (the
/// paths it works on inside, as `PathArgs`), an exit code or a typed failure out; the
/// dispatch below accepts nothing else.
fn verb<A>(f: fn(&A) -> VerbResult, a: &A) -> VerbResult {
    f(a)
}

/// Run the verb the command line names.
pub fn run(cli: Cli) -> VerbResult {
    use std::io::IsTerminal;
    if let Some(verb) = cli.command.needs_yes() {
        if std::io::stdin().is_terminal() {
            return Err(exit::Failure::Refused(anyhow::anyhow!(
                "`abguard {verb}` is run by systemd or the initrd and may reboot at once; \
                 from a terminal pass --no-reboot, or --yes to mean it"
            )));
        }
    }
    match &cli.command {
        Command::Status(a) => verb(verbs::status::run, a),
        Command::Next(a) => verb(verbs::slots::next, a),
        Command::Stage(a) => verb(verbs::slots::stage, a),
        Command::MarkGood(a) => verb(verbs::slots::mark_good, a),
        Command::Rollback(a) => verb(verbs::slots::rollback, a),
        Command::Initrd(a) => verb(verbs::initrd::initrd, a),
        Command::Assess(a) => verb(verbs::initrd::assess, a),
        Command::GatePass(a) => verb(verbs::gate::pass, a),
        Command::GateFail(a) => verb(verbs::gate::fail, a),
        Command::Emergency(a) => verb(verbs::gate::emergency, a),
        Command::PassGate(a) => verb(verbs::gate::steer::pass, a),
        Command::FailGate(a) => verb(verbs::gate::steer::fail, a),
        Command::Disable(a) => verb(verbs::disable::disable, a),
        Command::Enable(a) => verb(verbs::disable::enable, a),
        Command::Config(a) => verb(verbs::config::run, a),
        Command::Butane(a) => verb(verbs::butane::run, a),
        Command::Verify(a) => verb(verbs::verify::run, a),
        Command::ReadUsr(a) => verb(verbs::read_usr::run, a),
        Command::Generator(a) => verb(verbs::generator::run, a),
        Command::Allow(a) => verb(verbs::allow::run, a),
        Command::GuardStaged(a) => verb(verbs::guard_staged::run, a),
    }
}
