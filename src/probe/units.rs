//! Unit states from systemd: `systemctl show -p ActiveState,SubState,InvocationID,
//! NRestarts,Result UNIT…`, one block per unit in the order asked. The command is
//! injectable (`ABGUARD_SYSTEMCTL`, a path), so tests answer with a stand-in.

use crate::decide::gate::{Active, UnitState};
use anyhow::{bail, Context, Result};
use std::process::Command;

const PROPS: &str = "ActiveState,SubState,InvocationID,NRestarts,Result";

/// The systemctl to ask: `ABGUARD_SYSTEMCTL` or the one on PATH.
pub fn systemctl() -> Command {
    Command::new(std::env::var_os("ABGUARD_SYSTEMCTL").unwrap_or_else(|| "systemctl".into()))
}

/// The states of `units`, in their order.
pub fn states(units: &[String]) -> Result<Vec<UnitState>> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let o = systemctl()
        .args(["show", "-p", PROPS, "--"])
        .args(units)
        .output()
        .context("running systemctl show")?;
    if !o.status.success() {
        bail!(
            "systemctl show failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let out = parse(&String::from_utf8_lossy(&o.stdout));
    if out.len() != units.len() {
        bail!(
            "systemctl show gave {} blocks for {} units",
            out.len(),
            units.len()
        );
    }
    Ok(out)
}

/// One manager property, e.g. `UserspaceTimestampMonotonic` (µs as a number).
pub fn manager_u64(prop: &str) -> Option<u64> {
    let o = systemctl()
        .args(["show", "-p", prop, "--value"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// Blocks of KEY=VALUE lines separated by blank lines.
pub fn parse(text: &str) -> Vec<UnitState> {
    let mut out = Vec::new();
    let mut cur: Option<UnitState> = None;
    for line in text.lines().chain(std::iter::once("")) {
        let Some((k, v)) = line.split_once('=') else {
            out.extend(cur.take());
            continue;
        };
        let s = cur.get_or_insert_with(|| UnitState {
            active: Active::Other,
            sub: String::new(),
            invocation: String::new(),
            restarts: 0,
            result: String::new(),
        });
        match k {
            "ActiveState" => s.active = Active::parse(v),
            "SubState" => s.sub = v.into(),
            "InvocationID" => s.invocation = v.into(),
            // an unparsable counter is counted as a restart: never read as "none"
            "NRestarts" => s.restarts = v.parse().unwrap_or(1),
            "Result" => s.result = v.into(),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_in_order() {
        // systemd 252's output for two units, one never started
        let t = "ActiveState=active\nSubState=running\nInvocationID=4f1c\nNRestarts=0\nResult=success\n\n\
                 NRestarts=3\nResult=exit-code\nActiveState=activating\nSubState=auto-restart\nInvocationID=\n";
        let s = parse(t);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].active, s[0].sub.as_str(), s[0].invocation.as_str()),
            (Active::Active, "running", "4f1c")
        );
        assert_eq!(
            (s[1].active, s[1].restarts, s[1].sub.as_str()),
            (Active::Activating, 3, "auto-restart")
        );
        assert_eq!(parse("NRestarts=x\n")[0].restarts, 1);
        assert!(parse("").is_empty());
        assert_eq!(parse("ActiveState=maintenance\n")[0].active, Active::Other);
    }
}
