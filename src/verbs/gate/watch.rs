//! `gate-pass`, run by abguard-gate.service on every boot. On an ordinary boot it only
//! does [`super::ordinary::boot`]. On a first boot after an upgrade it watches the
//! critical units every [`POLL`] and runs the health checks until
//! [`crate::decide::gate`] gives a verdict, then ends in an [`Outcome`]: pass (the
//! healthy flag releases update-engine) or fail (roll back at once, or record under
//! ON_FAILURE=report). The deadline is abguard-deadline.timer's.

use super::ordinary;
use super::outcome::Outcome;
use super::this_boot::{self, ThisBoot, UsrVerity};
use crate::act::flags::{
    CHECKS_LOG_DIR, GATE_JSON, GATE_VERDICT, NEEDS_CHECK, PRIVATE_MODE, READ_USR_UNIT, STATE_DIR,
};
use crate::act::gate_state::{Clock, GateState};
use crate::cli::args::GatePassArgs;
use crate::config::Config;
use crate::decide::gate::{self as decide_gate, GateAction, GateFacts, GatePolicy, UnitTrack};
use crate::exit::ExitCode;
use crate::probe::{checks, units, MachinePaths};
use crate::safefs::SafeDir;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// How often the units are asked: a crash is acted on within this plus the rollback.
pub const POLL: Duration = Duration::from_millis(500);

/// CLOCK_MONOTONIC in µs (systemd's monotonic timestamps use the same clock).
fn mono_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

fn clock(mono_us: u64) -> Clock {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Clock { mono_us, unix }
}

/// Tell systemd (Type=notify) that the gate is watching: the critical units are ordered
/// after abguard-gate.service, so none starts before the first look at it.
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    if let (Ok(sock), Ok(addr)) = (UnixDatagram::unbound(), addr) {
        let _ = sock.send_to_addr(b"READY=1", &addr);
    }
}

pub(super) fn run(env: &MachinePaths, a: &GatePassArgs) -> Result<ExitCode> {
    let r = watch(env, a);
    notify_ready();
    r
}

fn watch(env: &MachinePaths, a: &GatePassArgs) -> Result<ExitCode> {
    let cfg = Config::load(&env.sysroot);
    let errors = this_boot::config_errors(env, &cfg);
    let usr = env.usr_candidates.first().cloned().unwrap_or_default();
    let state = SafeDir::open(&env.run_dir)?.subdir(STATE_DIR, true)?;
    if !state.exists(NEEDS_CHECK) {
        ordinary::boot(env, &errors, &checks::sysexts(&usr));
        return Ok(ExitCode::Ok);
    }
    let boot = this_boot::probe(env);
    let o = Outcome {
        env,
        cfg: &cfg,
        boot: &boot,
        no_mark_good: a.no_mark_good,
        no_reboot: a.no_reboot,
    };
    // switched off on this node (`abguard disable`): passed at once, as stock Flatcar
    if let Some(d) = crate::act::steer::disabled(&env.sysroot) {
        let why = format!(
            "abguard is disabled on this node (since {}: {}): passed without watching",
            d.since, d.reason
        );
        o.pass_disabled(why)?;
        return Ok(ExitCode::Ok);
    }
    let booted = boot.as_ref().ok().map(|b| b.slot().partuuid.clone());
    let mut trail = crate::act::attempt::Trail::start(&env.sysroot, &env.proc, booted.as_deref());
    let mut w = Watch::new(env, &cfg, &boot, errors, usr);
    let mut published: Option<GateState> = None;
    let mut ready = false;
    loop {
        let action = w.look(env);
        if !ready {
            // the first look is taken: the critical units may start now
            notify_ready();
            ready = true;
        }
        let now = GateState::of(&w.f, &action, w.deadline_at, clock(w.f.now));
        // rewritten when what the gate waits for changes, not for the countdown
        let changed = !published
            .as_ref()
            .is_some_and(|p| now.same_but_for_the_countdown(p));
        if changed {
            // check output is in it: root's alone (docs/security.md)
            let _ = state.write_atomic_mode(GATE_JSON, now.to_json().as_bytes(), PRIVATE_MODE);
        }
        match action {
            GateAction::Wait { ref waiting, .. } => trail.observe(waiting),
            GateAction::Fail { failure, rollback } => {
                w.runner.stop();
                return o.fail(&w.f, &failure, rollback, Some(&now));
            }
            GateAction::Pass | GateAction::NotFirstBoot => {
                w.runner.stop();
                return o.pass(&w.f, &now);
            }
        }
        if changed {
            published = Some(now);
        }
        // someone else decided (a unit's OnFailure= hook, the deadline)
        if state.exists(GATE_VERDICT) || !state.exists(NEEDS_CHECK) {
            w.runner.stop();
            return Ok(ExitCode::Ok);
        }
        std::thread::sleep(POLL);
    }
}

/// What the watcher keeps between looks.
struct Watch {
    f: GateFacts,
    policy: GatePolicy,
    /// The critical units, and abguard-read-usr.service under VERIFY_USR=yes.
    required: Vec<String>,
    runner: checks::Runner,
    /// The built-in sysext check: the booted /usr and what the last ordinary boot merged.
    sysext: Option<(PathBuf, Vec<String>)>,
    /// When abguard-deadline.timer fires (CLOCK_MONOTONIC µs), for the snapshot.
    deadline_at: u64,
    verity: UsrVerity,
}

impl Watch {
    fn new(
        env: &MachinePaths,
        cfg: &Config,
        boot: &Result<ThisBoot>,
        errors: Vec<String>,
        usr: PathBuf,
    ) -> Watch {
        let start = mono_us();
        let deadline_at = units::manager_u64("UserspaceTimestampMonotonic")
            .filter(|t| *t > 0)
            .unwrap_or(start)
            + cfg.deadline.0;
        let mut required = cfg.critical_units.clone();
        if cfg.verify_usr {
            required.push(READ_USR_UNIT.to_string());
        }
        let found = checks::discover(&env.sysroot);
        let mut f = GateFacts {
            started: start,
            first_boot: boot.as_ref().map_or(true, |b| b.first),
            units: required.iter().map(|u| UnitTrack::new(u)).collect(),
            checks: found.iter().map(checks::track).collect(),
            config_errors: errors,
            ..GateFacts::default()
        };
        let before = ordinary::merged_before(env);
        let sysext = (cfg.check_sysext && !before.is_empty()).then_some((usr, before));
        if sysext.is_some() {
            f.checks.push(checks::named(checks::SYSEXT));
        }
        let runner = checks::Runner::new(
            found,
            env.run_dir.clone(),
            format!("{STATE_DIR}/{CHECKS_LOG_DIR}"),
            cfg.check_timeout.0,
        );
        Watch {
            f,
            policy: cfg.gate_policy(),
            required,
            runner,
            sysext,
            deadline_at,
            verity: UsrVerity::of(env),
        }
    }

    /// One look: the units' states, the checks once every unit is up, and before a pass
    /// dm-verity's verdict on what the boot has read (it checks lazily, so a block read
    /// during the window may have failed). Only what can change is asked again.
    fn look(&mut self, env: &MachinePaths) -> GateAction {
        let f = &mut self.f;
        f.now = mono_us();
        if let Ok(states) = units::states(&self.required) {
            for (t, s) in f.units.iter_mut().zip(states) {
                decide_gate::observe(t, s, f.now);
            }
        }
        let mut action = decide_gate::gate(f, &self.policy);
        if let GateAction::Wait {
            run_checks: true, ..
        } = action
        {
            self.runner.tick(&mut f.checks, f.now);
            if let Some((usr, before)) = &self.sysext {
                ordinary::sysext_check(usr, before, f.checks.last_mut());
            }
            action = decide_gate::gate(f, &self.policy);
        }
        if action == GateAction::Pass {
            f.verity_problem = self.verity.problem(env);
            action = decide_gate::gate(f, &self.policy);
        }
        action
    }
}
