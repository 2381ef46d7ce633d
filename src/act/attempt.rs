//! The attempt's breadcrumb on ROOT (`/var/lib/abguard/attempt.json`): one small file,
//! replaced atomically and fsync'd (SafeDir), written by the initrd when a first boot
//! starts and by the gate when what it sees changes. The next boot reads it to name the
//! stage a fallback died in ([`crate::decide::stage::classify`]).

use crate::act::flags::ROOT_STATE_DIR;
use crate::safefs::SafeDir;
use crate::types::attempt::Crumb;
use anyhow::Result;
use std::path::Path;

pub const ATTEMPT_JSON: &str = "attempt.json";

pub fn write(root: &Path, c: &Crumb) -> Result<()> {
    let dir = SafeDir::open(root)?.subpath(ROOT_STATE_DIR, true)?;
    // the gate's last observation can name check results: root's alone (docs/security.md)
    dir.write_atomic_mode(
        ATTEMPT_JSON,
        c.to_json().as_bytes(),
        crate::act::flags::PRIVATE_MODE,
    )
}

/// The breadcrumb, if there is a readable one.
pub fn read(root: &Path) -> Option<Crumb> {
    let dir = SafeDir::open(root)
        .ok()?
        .subpath(ROOT_STATE_DIR, false)
        .ok()?;
    let bytes = dir.read(ATTEMPT_JSON, crate::safefs::cap::RECORD).ok()??;
    Crumb::from_value(&serde_json::from_slice(&bytes).ok()?)
}

/// The loop guard saw `partuuid` staged: the next boot is its attempt.
pub fn staged(root: &Path, proc: &Path, partuuid: &str) {
    let boot_id = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let c = Crumb {
        reached: crate::types::attempt::Reached::Staged,
        partuuid: partuuid.to_string(),
        boot_id,
        boot_unix: clock(proc).1,
        watchdog: String::new(),
        gate_started_unix: None,
        last_seen_unix: None,
        waiting: Vec::new(),
    };
    if root.join("var").is_dir() {
        if let Err(e) = write(root, &c) {
            log::warn!("breadcrumb not written: {e:#}");
        }
    }
}

/// Once the attempt's end is recorded (a verdict, or the fallback on the next boot).
pub fn remove(root: &Path) {
    if let Ok(dir) = SafeDir::open(root).and_then(|d| d.subpath(ROOT_STATE_DIR, false)) {
        let _ = dir.remove(ATTEMPT_JSON);
    }
}

/// Wall-clock seconds now, and when this boot's kernel started (now − uptime).
pub fn clock(proc: &Path) -> (u64, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // whole seconds only: parsing a float costs the static binary ~40 KB
    let up = std::fs::read_to_string(proc.join("uptime"))
        .ok()
        .and_then(|s| s.split(['.', ' ']).next()?.parse::<u64>().ok())
        .unwrap_or(0);
    (now, now.saturating_sub(up))
}

/// The gate's side of the breadcrumb: its start, then its last observation, rewritten
/// when what it waits for changes and at least every [`Trail::EVERY`] seconds.
pub struct Trail {
    root: std::path::PathBuf,
    proc: std::path::PathBuf,
    crumb: Option<Crumb>,
    written: u64,
}

impl Trail {
    pub const EVERY: u64 = 15;

    /// Continue the initrd's breadcrumb of this boot, or start one (no initrd module).
    pub fn start(root: &Path, proc: &Path, partuuid: Option<&str>) -> Trail {
        let boot_id = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let (now, boot_unix) = clock(proc);
        let crumb = match read(root) {
            Some(c) if c.boot_id == boot_id => Some(c),
            _ => partuuid.map(|p| Crumb {
                reached: crate::types::attempt::Reached::Initrd,
                partuuid: p.to_string(),
                boot_id,
                boot_unix,
                watchdog: "not armed: the initrd module did not run".into(),
                gate_started_unix: None,
                last_seen_unix: None,
                waiting: Vec::new(),
            }),
        };
        let mut t = Trail {
            root: root.to_path_buf(),
            proc: proc.to_path_buf(),
            crumb,
            written: 0,
        };
        if let Some(c) = t.crumb.as_mut() {
            c.reached = crate::types::attempt::Reached::Gate;
            c.gate_started_unix = Some(now);
        }
        t.observe(&[]);
        t
    }

    /// One observation of the gate: what it still waits for.
    pub fn observe(&mut self, waiting: &[String]) {
        let Some(c) = self.crumb.as_mut() else { return };
        let (now, _) = clock(&self.proc);
        if c.waiting == waiting && now < self.written + Self::EVERY {
            return;
        }
        c.waiting = waiting.to_vec();
        c.last_seen_unix = Some(now);
        self.written = now;
        if let Err(e) = write(&self.root, c) {
            log::warn!("breadcrumb not written: {e:#}");
            self.crumb = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::attempt::Reached;

    #[test]
    fn round_trip_and_remove() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read(t.path()), None);
        let c = Crumb {
            reached: Reached::Gate,
            partuuid: "p".into(),
            boot_id: "b".into(),
            boot_unix: 7,
            watchdog: "armed".into(),
            gate_started_unix: Some(9),
            last_seen_unix: Some(12),
            waiting: vec!["web.service".into()],
        };
        write(t.path(), &c).unwrap();
        assert_eq!(read(t.path()), Some(c));
        remove(t.path());
        assert_eq!(read(t.path()), None);
    }
}
