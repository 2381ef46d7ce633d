//! `gate-pass`, run by abguard-gate.service on every boot. On an ordinary boot it only
//! remembers which sysext images are merged (for the next first boot's built-in check)
//! and reports configuration errors. On a first boot after an upgrade it watches the
//! critical units every [`POLL`] and runs the health checks until [`decide::gate`]
//! gives a verdict: pass (the healthy flag releases update-engine) or fail (roll back
//! at once, or record under ON_FAILURE=report). The deadline is abguard-deadline.timer's.

use super::{act_fail, act_pass, base_record, claim, config_errors, here, save, Here};
use crate::act::flags::{
    GATE_JSON, GATE_VERDICT, NEEDS_CHECK, READ_USR_UNIT, STATE_DIR, SYSEXTS_MERGED,
};
use crate::act::record::{rfc3339, Event, Verdict};
use crate::config::Config;
use crate::decide::gate::{self as decide_gate, CheckTrack, GateAction, GateFacts, UnitTrack};
use crate::exit::ExitCode;
use crate::probe::{checks, units, Env};
use crate::safefs::SafeDir;
use crate::types::Roots;
use anyhow::Result;
use std::time::Duration;

/// How often the units are asked: a crash is acted on within this plus the rollback.
pub const POLL: Duration = Duration::from_millis(500);

/// CLOCK_MONOTONIC in µs (systemd's monotonic timestamps use the same clock).
pub fn mono_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A monotonic instant as wall-clock seconds since the epoch.
fn wall(mono: u64, now_mono: u64) -> u64 {
    (unix_now() as i64 + (mono as i64 - now_mono as i64) / 1_000_000).max(0) as u64
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

pub fn run(p: &Roots, no_mark_good: bool, no_reboot: bool) -> Result<ExitCode> {
    let r = watch(p, no_mark_good, no_reboot);
    notify_ready();
    r
}

fn watch(p: &Roots, no_mark_good: bool, no_reboot: bool) -> Result<ExitCode> {
    let env = Env::new(p, false);
    let cfg = Config::load(&env.sysroot);
    let errors = config_errors(&env, &cfg);
    let usr = env.usr_candidates.first().cloned().unwrap_or_default();
    let merged = checks::sysexts(&usr);
    let state = SafeDir::open(&env.run_dir)?.subdir(STATE_DIR, true)?;
    if !state.exists(NEEDS_CHECK) {
        ordinary_boot(&env, &errors, &merged);
        return Ok(ExitCode::Ok);
    }
    let h = here(&env, true);
    let booted = h.as_ref().ok().map(|h| h.slots[h.booted].partuuid.clone());
    let mut trail = crate::act::attempt::Trail::start(&env.sysroot, &env.proc, booted.as_deref());
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
        first_boot: h.as_ref().map_or(true, |h| h.first),
        units: required.iter().map(|u| UnitTrack::new(u)).collect(),
        checks: found.iter().map(|(n, _)| checks::track(n)).collect(),
        config_errors: errors,
        ..GateFacts::default()
    };
    let before = read_before(&env);
    let sysext = cfg.check_sysext && !before.is_empty();
    if sysext {
        f.checks.push(checks::track(checks::SYSEXT));
    }
    let mut runner = checks::Runner::new(
        found.into_iter().map(|(_, p)| p).collect(),
        env.run_dir.join(STATE_DIR).join("checks"),
        cfg.check_timeout.0,
    );
    let mut last_said = String::new();
    let mut ready = false;
    loop {
        f.now = mono_us();
        if let Ok(states) = units::states(&required) {
            for (t, s) in f.units.iter_mut().zip(states) {
                decide_gate::observe(t, s, f.now);
            }
        }
        let mut action = decide_gate::gate(&f, &cfg.gate_policy());
        if !ready {
            // the first look is taken: the critical units may start now
            notify_ready();
            ready = true;
        }
        if let GateAction::Wait {
            run_checks: true, ..
        } = action
        {
            runner.tick(&mut f.checks, f.now);
            if sysext {
                sysext_check(&usr, &before, f.checks.last_mut());
            }
            action = decide_gate::gate(&f, &cfg.gate_policy());
        }
        if action == GateAction::Pass {
            // dm-verity checks lazily: a block read during the window may have failed
            f.verity_problem = here(&env, true).ok().and_then(|h| h.verity_problem);
            action = decide_gate::gate(&f, &cfg.gate_policy());
        }
        if let GateAction::Wait { waiting, .. } = &action {
            trail.observe(waiting);
        }
        let snap = snapshot(&f, &action, deadline_at);
        publish(&state, &snap, &mut last_said);
        if !matches!(action, GateAction::Wait { .. }) {
            runner.stop();
            let snap = serde_json::from_slice(snap.as_bytes()).ok();
            return decided(&env, &cfg, &h, &f, action, snap, (no_mark_good, no_reboot));
        }
        // someone else decided (a unit's OnFailure= hook, the deadline)
        if state.exists(GATE_VERDICT) || !state.exists(NEEDS_CHECK) {
            runner.stop();
            return Ok(ExitCode::Ok);
        }
        std::thread::sleep(POLL);
    }
}

/// Rewrite gate.json when what the gate waits for changes (the countdown aside).
fn publish(state: &SafeDir, snap: &str, last_said: &mut String) {
    let said = snap.split("\"window_ends\"").next().unwrap_or("");
    if said != last_said.as_str() {
        let _ = state.write_atomic(GATE_JSON, snap.as_bytes());
        *last_said = said.to_string();
    }
}

/// Act on the gate's verdict: pass (mark good, release update-engine) or fail.
fn decided(
    env: &Env,
    cfg: &Config,
    h: &Result<Here>,
    f: &GateFacts,
    action: GateAction,
    snap: Option<serde_json::Value>,
    (no_mark_good, no_reboot): (bool, bool),
) -> Result<ExitCode> {
    match action {
        GateAction::Fail { failure, rollback } => {
            let Ok(h) = h else {
                log::error!(
                    "gate failed ({}) but the booted slot is unknown: not rolled back",
                    failure.reason()
                );
                return Ok(ExitCode::Ok);
            };
            act_fail(env, cfg, h, f, &failure, rollback, snap, no_reboot)
        }
        _ => passed(env, cfg, h, f, snap, no_mark_good),
    }
}

fn passed(
    env: &Env,
    cfg: &Config,
    h: &Result<Here>,
    f: &GateFacts,
    snap: Option<serde_json::Value>,
    no_mark_good: bool,
) -> Result<ExitCode> {
    if !claim(env) {
        return Ok(ExitCode::Ok);
    }
    let mut r = base_record(Event::GatePassed, Verdict::Healthy, h.as_ref().ok(), env);
    let up: Vec<&str> = f.units.iter().map(|t| t.unit.as_str()).collect();
    r.reasons.push(match (f.first_boot, up.is_empty()) {
        (false, _) => "not the first boot after an upgrade on the disk".into(),
        (true, true) => format!("no critical units; stable for {}", cfg.stable_for),
        (true, false) => format!("{} active and stable for {}", up.join(", "), cfg.stable_for),
    });
    let checked: Vec<String> = f
        .checks
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.name,
                if c.passed == Some(true) {
                    "passed"
                } else {
                    &c.what
                }
            )
        })
        .collect();
    if !checked.is_empty() {
        r.reasons.push(format!("checks: {}", checked.join(", ")));
    }
    r.config_errors = f.config_errors.clone();
    r.gate = snap;
    act_pass(env, cfg, h, r, no_mark_good)
}

/// An ordinary boot: remember the merged sysexts, report configuration errors.
fn ordinary_boot(env: &Env, errors: &[String], merged: &[String]) {
    let (dir, name) = SYSEXTS_MERGED
        .rsplit_once('/')
        .unwrap_or(("", SYSEXTS_MERGED));
    let dir = SafeDir::open(&env.sysroot).and_then(|r| r.subpath(dir, true));
    if let Ok(dir) = dir {
        let text: String = merged.iter().map(|m| format!("{m}\n")).collect();
        if let Err(e) = dir.write_atomic(name, text.as_bytes()) {
            log::warn!("{SYSEXTS_MERGED}: {e:#}");
        }
    }
    if !errors.is_empty() {
        // not a first boot: the error is reported, protection of the next one stays on
        log::error!(
            "configuration errors (lines skipped): {}",
            errors.join("; ")
        );
        let mut r = base_record(Event::ConfigError, Verdict::Healthy, None, env);
        r.reasons
            .push("configuration lines skipped on an ordinary boot".into());
        r.config_errors = errors.to_vec();
        save(env, &r);
    }
}

fn read_before(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.sysroot.join(SYSEXTS_MERGED))
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn sysext_check(usr: &std::path::Path, before: &[String], t: Option<&mut CheckTrack>) {
    let Some(t) = t else { return };
    if t.passed == Some(true) {
        return;
    }
    let missing = checks::sysext_missing(before, &checks::sysexts(usr));
    t.runs += 1;
    t.passed = Some(missing.is_empty());
    t.what = match missing.is_empty() {
        true => "exit 0".into(),
        false => format!("not merged since the update: {}", missing.join(", ")),
    };
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// What `abguard status` shows of a pending gate (run/abguard/gate.json), and the
/// record's `gate` field. Written by hand: a derived serializer or `json!` costs the
/// static binary kilobytes.
fn snapshot(f: &GateFacts, a: &GateAction, deadline_at: u64) -> String {
    let (state, waiting, window) = match a {
        GateAction::Wait {
            waiting,
            window_ends,
            ..
        } => ("pending", waiting.clone(), *window_ends),
        GateAction::Fail { failure, .. } => ("failed", vec![failure.reason()], None),
        _ => ("passed", Vec::new(), None),
    };
    let at = |m: u64| wall(m, f.now);
    let time = |m: u64| q(&rfc3339(at(m)));
    let units = list(f.units.iter().map(|t| {
        let st = t.now.as_ref();
        format!(
            "{{\"unit\":{},\"state\":{},\"restarts\":{},\"invocation\":{},\"up_since\":{},\"failure\":{}}}",
            q(&t.unit),
            opt(st.map(|s| q(&format!("{}/{}", s.active.as_str(), s.sub)))),
            opt(st.map(|s| s.restarts)),
            opt(st.map(|s| q(&s.invocation))),
            opt(t.up_since.map(time)),
            opt(t.broke.as_deref().map(q)),
        )
    }));
    let checks = list(f.checks.iter().map(|c| {
        format!(
            "{{\"name\":{},\"required\":{},\"runs\":{},\"passed\":{},\"result\":{},\"output\":{}}}",
            q(&c.name),
            c.required,
            c.runs,
            opt(c.passed),
            q(&c.what),
            q(&c.output)
        )
    }));
    format!(
        "{{\"state\":\"{state}\",\"since\":{},\"waiting\":{},\"window_ends\":{},\"deadline\":{},\
         \"deadline_unix\":{},\"units\":{units},\"checks\":{checks},\"config_errors\":{},\"updated\":{}}}",
        time(f.started),
        list(waiting.iter().map(|w| q(w))),
        opt(window.map(time)),
        time(deadline_at),
        at(deadline_at),
        list(f.config_errors.iter().map(|e| q(e))),
        q(&rfc3339(unix_now())),
    )
}
