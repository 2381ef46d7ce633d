//! Health checks: executables in /etc/abguard/checks.d/ and /usr/lib/abguard/checks.d/
//! (a name in /etc hides the same name in /usr/lib, as systemd's directories do), run
//! once the critical units are up, each in a box of its own ([`checkbox`]) that is
//! emptied when it exits and killed after CHECK_TIMEOUT. Only root's own checks run
//! ([`trust`]): any other is a failed required check with the reason. A required check
//! that fails is run again after [`RETRY_US`]; a check whose name ends in `.wanted`
//! runs once and is only recorded.
//! The built-in sysext check lives here too: [`sysext_missing`].

use super::checkbox::{self, Boxed};
use super::trust;
use crate::decide::gate::CheckTrack;
use crate::safefs::SafeDir;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// Pause between two runs of a failing required check.
pub const RETRY_US: u64 = 5_000_000;
/// The name of the built-in check in records and `status`.
pub const SYSEXT: &str = "builtin:sysext";
/// The directories searched, below the root, in order of precedence.
pub const DIRS: [&str; 2] = ["etc/abguard/checks.d", "usr/lib/abguard/checks.d"];

/// One check found: where, and why it may not run (not root's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
    pub refused: Option<String>,
}

/// The checks under `root`, by name. An entry counts when it is an executable file,
/// or a symlink (refused: see [`trust`]); dot files and other files are not checks.
pub fn discover(root: &Path) -> Vec<Found> {
    let mut found: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for dir in DIRS {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let candidate = std::fs::symlink_metadata(e.path()).is_ok_and(|m| {
                m.file_type().is_symlink() || (m.is_file() && m.permissions().mode() & 0o111 != 0)
            });
            if candidate && !name.starts_with('.') {
                found.entry(name).or_insert_with(|| e.path());
            }
        }
    }
    found
        .into_iter()
        .map(|(name, path)| Found {
            refused: trust::refusal(root, &path),
            name,
            path,
        })
        .collect()
}

/// The gate's track for a check; a refused one has failed already, and counts as
/// required whatever its name.
pub fn track(f: &Found) -> CheckTrack {
    let mut t = named(&f.name);
    if let Some(why) = &f.refused {
        t.required = true;
        t.passed = Some(false);
        t.what = why.clone();
        t.runs = 1;
    }
    t
}

/// The track of a check by name (the built-in one too).
pub fn named(name: &str) -> CheckTrack {
    CheckTrack {
        name: name.to_string(),
        required: !name.ends_with(".wanted"),
        runs: 0,
        passed: None,
        what: String::new(),
        output: String::new(),
    }
}

struct Running {
    boxed: Boxed,
    started: u64,
}

/// Runs the checks of `tracks` (same order as `found`) without blocking the gate.
pub struct Runner {
    found: Vec<Found>,
    /// Where each run's output goes: `run_dir` and below it `log_dir` (abguard/checks),
    /// made on first use one component at a time, never through a symlink.
    run_dir: PathBuf,
    log_dir: String,
    pub timeout_us: u64,
    /// Where the boxes go; `Err`: why there are none (process groups instead).
    home: Result<PathBuf, String>,
    running: Vec<Option<Running>>,
    next_try: Vec<u64>,
}

impl Runner {
    pub fn new(found: Vec<Found>, run_dir: PathBuf, log_dir: String, timeout_us: u64) -> Runner {
        let n = found.len();
        let home = checkbox::cgroup_home().map_err(|e| format!("{e:#}"));
        if let (Err(e), true) = (&home, found.iter().any(|f| f.refused.is_none())) {
            log::warn!("checks run without a cgroup of their own ({e}): a process a check puts outside its process group can outlive it");
        }
        Runner {
            found,
            run_dir,
            log_dir,
            timeout_us,
            home,
            running: (0..n).map(|_| None).collect(),
            next_try: vec![0; n],
        }
    }

    /// Start, finish or kill runs at `now` (µs).
    pub fn tick(&mut self, tracks: &mut [CheckTrack], now: u64) {
        for (i, t) in tracks.iter_mut().enumerate().take(self.found.len()) {
            if self.found[i].refused.is_some() {
                continue;
            }
            if let Some(r) = &mut self.running[i] {
                r.boxed.pump();
                let done = match r.boxed.child.try_wait() {
                    Ok(Some(st)) => Some(describe(st)),
                    Ok(None) if now.saturating_sub(r.started) >= self.timeout_us => Some((
                        false,
                        format!(
                            "killed after {}s (CHECK_TIMEOUT)",
                            self.timeout_us / 1_000_000
                        ),
                    )),
                    Ok(None) => None,
                    Err(e) => Some((false, format!("cannot wait for it: {e}"))),
                };
                if let Some((passed, what)) = done {
                    let r = self.running[i].take().expect("running");
                    let boxed = r.boxed.boxed();
                    t.output = r.boxed.finish();
                    t.passed = Some(passed);
                    t.what = match (&self.home, boxed) {
                        (Err(why), _) => {
                            format!("{what} (no cgroup: {why}; only its process group was killed)")
                        }
                        _ => what,
                    };
                    t.runs = t.runs.saturating_add(1);
                    self.next_try[i] = now.saturating_add(RETRY_US);
                }
                continue;
            }
            let again = t.required && t.passed == Some(false) && now >= self.next_try[i];
            if t.runs == 0 || again {
                match self.spawn(i) {
                    Ok(boxed) => {
                        self.running[i] = Some(Running {
                            boxed,
                            started: now,
                        })
                    }
                    Err(e) => {
                        t.passed = Some(false);
                        t.what = format!("cannot run {}: {e:#}", self.found[i].path.display());
                        t.runs = t.runs.saturating_add(1);
                        self.next_try[i] = now.saturating_add(RETRY_US);
                    }
                }
            }
        }
    }

    fn spawn(&self, i: usize) -> anyhow::Result<Boxed> {
        let f = &self.found[i];
        let logs = SafeDir::open(&self.run_dir)?.subpath(&self.log_dir, true)?;
        let home = self.home.as_ref().ok().map(PathBuf::as_path);
        checkbox::spawn(&f.path, &f.name, home, &logs, &format!("{}.log", f.name))
    }

    /// Kill every run still going (the gate reached its verdict).
    pub fn stop(&mut self) {
        for r in self.running.iter_mut() {
            if let Some(r) = r.take() {
                r.boxed.finish();
            }
        }
    }
}

/// (passed, what happened).
fn describe(st: std::process::ExitStatus) -> (bool, String) {
    match (st.code(), st.signal()) {
        (Some(c), _) => (c == 0, format!("exit {c}")),
        (None, Some(s)) => (false, format!("killed by signal {s}")),
        _ => (false, "ended".into()),
    }
}

/// The systemd-sysext images merged into the /usr at `usr` now: the names of the
/// `lib/extension-release.d/extension-release.NAME` files the merge adds.
pub fn sysexts(usr: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(usr.join("lib/extension-release.d"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("extension-release.").map(String::from)
        })
        .collect();
    v.sort();
    v
}

/// Images merged on the last ordinary boot (`before`) that are not merged now.
pub fn sysext_missing(before: &[String], now: &[String]) -> Vec<String> {
    before
        .iter()
        .filter(|b| !now.contains(b))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_etc_hides_usr_and_wanted_is_optional() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str, mode: u32| {
            let f = t.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        w("etc/abguard/checks.d/port", 0o755);
        w("etc/abguard/checks.d/notes.txt", 0o644);
        w("usr/lib/abguard/checks.d/port", 0o755);
        w("usr/lib/abguard/checks.d/disk.wanted", 0o755);
        let d = discover(t.path());
        let names: Vec<&str> = d.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["disk.wanted", "port"]);
        assert!(d[1].path.starts_with(t.path().join("etc")));
        assert!(!named("disk.wanted").required && named("port").required);
    }

    #[test]
    fn sysext_comparison() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("lib/extension-release.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("extension-release.docker-flatcar"), "ID=flatcar\n").unwrap();
        let now = sysexts(t.path());
        assert_eq!(now, ["docker-flatcar"]);
        let before = vec![
            "containerd-flatcar".to_string(),
            "docker-flatcar".to_string(),
        ];
        assert_eq!(sysext_missing(&before, &now), ["containerd-flatcar"]);
        assert!(sysext_missing(&now, &before).is_empty());
    }
}
