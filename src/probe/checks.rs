//! Health checks: executables in /etc/abguard/checks.d/ and /usr/lib/abguard/checks.d/
//! (a name in /etc hides the same name in /usr/lib, as systemd's directories do), run
//! once the critical units are up, each killed (its whole process group) after
//! CHECK_TIMEOUT. A required check that fails is run again after [`RETRY_US`]; a check
//! whose name ends in `.wanted` runs once and is only recorded.
//! The built-in sysext check lives here too: [`sysext_missing`].

use crate::decide::gate::CheckTrack;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Pause between two runs of a failing required check.
pub const RETRY_US: u64 = 5_000_000;
/// Output kept per run, from its start.
const KEEP: u64 = 4096;
/// The name of the built-in check in records and `status`.
pub const SYSEXT: &str = "builtin:sysext";

/// The check executables under `root`, by name.
pub fn discover(root: &Path) -> Vec<(String, PathBuf)> {
    let mut names: Vec<String> = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["etc/abguard/checks.d", "usr/lib/abguard/checks.d"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let exec = std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if exec && !name.starts_with('.') && !names.contains(&name) {
                names.push(name);
                paths.push(e.path());
            }
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted
        .into_iter()
        .filter_map(|n| {
            let i = names.iter().position(|x| *x == n)?;
            Some((n, paths[i].clone()))
        })
        .collect()
}

pub fn track(name: &str) -> CheckTrack {
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
    child: Child,
    started: u64,
    log: PathBuf,
}

/// Runs the checks of `tracks` (same order as `paths`) without blocking the gate.
pub struct Runner {
    pub paths: Vec<PathBuf>,
    /// Where each run's output goes (/run/abguard/checks).
    pub log_dir: PathBuf,
    pub timeout_us: u64,
    running: Vec<Option<Running>>,
    next_try: Vec<u64>,
}

impl Runner {
    pub fn new(paths: Vec<PathBuf>, log_dir: PathBuf, timeout_us: u64) -> Runner {
        let n = paths.len();
        Runner {
            paths,
            log_dir,
            timeout_us,
            running: (0..n).map(|_| None).collect(),
            next_try: vec![0; n],
        }
    }

    /// Start, finish or kill runs at `now` (µs).
    pub fn tick(&mut self, tracks: &mut [CheckTrack], now: u64) {
        for (i, t) in tracks.iter_mut().enumerate().take(self.paths.len()) {
            if let Some(r) = &mut self.running[i] {
                let done = match r.child.try_wait() {
                    Ok(Some(st)) => Some(describe(st)),
                    Ok(None) if now.saturating_sub(r.started) >= self.timeout_us => {
                        kill_group(&mut r.child);
                        Some(format!(
                            "killed after {}s (CHECK_TIMEOUT)",
                            self.timeout_us / 1_000_000
                        ))
                    }
                    Ok(None) => None,
                    Err(e) => Some(format!("cannot wait for it: {e}")),
                };
                if let Some(what) = done {
                    t.passed = Some(what == "exit 0");
                    t.what = what;
                    t.output = read_head(&r.log);
                    t.runs += 1;
                    self.next_try[i] = now + RETRY_US;
                    self.running[i] = None;
                }
                continue;
            }
            let again = t.required && t.passed == Some(false) && now >= self.next_try[i];
            if t.runs == 0 || again {
                match self.spawn(i) {
                    Ok(child) => {
                        self.running[i] = Some(Running {
                            child,
                            started: now,
                            log: self.log(i),
                        })
                    }
                    Err(e) => {
                        t.passed = Some(false);
                        t.what = format!("cannot run {}: {e}", self.paths[i].display());
                        t.runs += 1;
                        self.next_try[i] = now + RETRY_US;
                    }
                }
            }
        }
    }

    fn log(&self, i: usize) -> PathBuf {
        let name = self.paths[i].file_name().unwrap_or_default();
        self.log_dir.join(format!("{}.log", name.to_string_lossy()))
    }

    fn spawn(&self, i: usize) -> std::io::Result<Child> {
        std::fs::create_dir_all(&self.log_dir)?;
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc_o_nofollow())
            .open(self.log(i))?;
        let err = out.try_clone()?;
        Command::new(&self.paths[i])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // its own process group, so a timeout kills what it started too
            .process_group(0)
            .spawn()
    }

    /// Kill every run still going (the gate reached its verdict).
    pub fn stop(&mut self) {
        for r in self.running.iter_mut().flatten() {
            kill_group(&mut r.child);
        }
    }
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

fn kill_group(c: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = c.kill();
    let _ = c.wait();
}

fn describe(st: std::process::ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    }
}

fn read_head(p: &Path) -> String {
    let mut b = Vec::new();
    if let Ok(f) = File::open(p) {
        let _ = f.take(KEEP).read_to_end(&mut b);
    }
    String::from_utf8_lossy(&b).trim_end().to_string()
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
        let names: Vec<&str> = d.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["disk.wanted", "port"]);
        assert!(d[1].1.starts_with(t.path().join("etc")));
        assert!(!track("disk.wanted").required && track("port").required);
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
