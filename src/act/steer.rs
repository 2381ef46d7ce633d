//! The effects an operator's hand on the health gate shares with the gate itself:
//! taking the gate's verdict, the flags a pass writes (which release update-engine and
//! locksmithd), and the file that switches abguard off on a node.

use crate::act::flags::{DISABLED_FILE, GATE_VERDICT, HEALTHY_FLAG, NEEDS_CHECK, STATE_DIR};
use crate::safefs::SafeDir;
use anyhow::{Context, Result};
use std::path::Path;

/// A gate waits on this boot: a first boot after an upgrade, no verdict taken, not yet
/// proven healthy. gate.json alone does not say so: the watcher may rewrite it once
/// more after someone else took the verdict.
pub fn gate_pending(run_dir: &Path) -> bool {
    let state = run_dir.join(STATE_DIR);
    state.join(NEEDS_CHECK).exists()
        && !state.join(GATE_VERDICT).exists()
        && !run_dir.join(HEALTHY_FLAG).exists()
}

/// Take the gate's verdict; false when someone else already did. Created exclusively,
/// so the watcher, a unit's OnFailure= hook, the deadline and an operator never act
/// twice.
pub fn claim(run_dir: &Path) -> bool {
    // through SafeDir: a symlinked /run/abguard is refused, never followed
    let made = SafeDir::open(run_dir)
        .and_then(|run| run.subdir(STATE_DIR, true))
        .and_then(|state| state.create_new(GATE_VERDICT));
    match made {
        Ok(first) => first,
        // an unwritable /run must not stop a rollback
        Err(e) => {
            log::warn!("{e:#}");
            true
        }
    }
}

/// What a pass writes: the healthy flag (abguard-healthy.path and abguard-locksmithd.path
/// start update-engine and locksmithd on it) and the end of needs-health-check. Returns
/// the flag's path.
pub fn release(run_dir: &Path) -> Result<String> {
    let run = SafeDir::open(run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    run.write_atomic(HEALTHY_FLAG, b"")?;
    state.remove(NEEDS_CHECK)?;
    Ok(run.path().join(HEALTHY_FLAG).display().to_string())
}

/// abguard is switched off on the node under `root`: since when and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Disabled {
    pub since: String,
    pub reason: String,
}

/// The node's switch, when it is off. A file that does not parse still switches it off
/// (its presence is the operator's word), with what is known.
pub fn disabled(root: &Path) -> Option<Disabled> {
    let p = root.join(DISABLED_FILE);
    let b = match crate::safefs::read_bounded(&p, crate::safefs::cap::SMALL) {
        Ok(None) => return None,
        Ok(Some(b)) => b,
        // present but not a small regular file (a FIFO, a directory): still the
        // operator's word, and never a hang
        Err(e) => {
            return Some(Disabled {
                since: "?".into(),
                reason: format!("{e:#}"),
            })
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    Some(Disabled {
        since: text("since"),
        reason: text("reason"),
    })
}

/// Switch off (`Some`) or on (`None`); false when nothing changed.
pub fn set_disabled(root: &Path, d: Option<&Disabled>) -> Result<bool> {
    let (dir, name) = DISABLED_FILE
        .rsplit_once('/')
        .unwrap_or(("", DISABLED_FILE));
    let dir = SafeDir::open(root)?
        .subpath(dir, true)
        .with_context(|| format!("opening {}", root.join(dir).display()))?;
    match d {
        Some(d) => {
            let was = dir.exists(name);
            dir.write_atomic(name, &serde_json::to_vec_pretty(d)?)?;
            Ok(!was)
        }
        None if dir.exists(name) => {
            dir.remove(name)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_claimed_or_released() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path();
        assert!(!gate_pending(run));
        std::fs::create_dir_all(run.join(STATE_DIR)).unwrap();
        std::fs::write(run.join(STATE_DIR).join(NEEDS_CHECK), "").unwrap();
        assert!(gate_pending(run));
        assert!(claim(run));
        assert!(!claim(run), "the verdict is taken once");
        assert!(!gate_pending(run));
        release(run).unwrap();
        assert!(run.join(HEALTHY_FLAG).exists());
        assert!(!run.join(STATE_DIR).join(NEEDS_CHECK).exists());
    }

    #[test]
    fn the_switch_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(disabled(d.path()), None);
        let off = Disabled {
            since: "T".into(),
            reason: "ticket 7".into(),
        };
        assert!(set_disabled(d.path(), Some(&off)).unwrap());
        assert_eq!(disabled(d.path()), Some(off));
        assert!(set_disabled(d.path(), None).unwrap());
        assert!(!set_disabled(d.path(), None).unwrap());
        assert_eq!(disabled(d.path()), None);
    }
}
