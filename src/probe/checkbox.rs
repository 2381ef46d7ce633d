//! The box a health check runs in: its own cgroup (v2) below abguard's, so the
//! timeout, and the check's own exit, end every process it started — `setsid`,
//! double-forked or not — with one write to `cgroup.kill`. Its output goes through a
//! pipe, and only the first [`LOG_KEEP`] bytes reach /run. Where no writable cgroup v2
//! exists, the check runs in its own process group instead and every result says so.

use crate::safefs::SafeDir;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Output kept in /run per run; the rest is counted and dropped.
pub const LOG_KEEP: usize = 64 * 1024;
/// Output kept in the record and gate.json, from its start.
pub const HEAD_KEEP: usize = 4096;
/// How long a killed box may take to empty before abguard stops waiting.
const DRAIN: Duration = Duration::from_secs(2);

/// Where checks' cgroups are made: abguard's own cgroup (v2), if it is writable.
pub fn cgroup_home() -> Result<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 hierarchy in /proc/self/cgroup")?;
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // fields: id parent dev root mountpoint options... - fstype source superopts
    let (root, point) = mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right.starts_with("cgroup2 ").then_some(())?;
            let f: Vec<&str> = left.split(' ').collect();
            Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
        })
        .context("no cgroup2 file system mounted")?;
    let rel = own.strip_prefix(root.as_str()).unwrap_or(own);
    let home = Path::new(&point).join(rel.trim_start_matches('/'));
    if nix::unistd::access(&home, nix::unistd::AccessFlags::W_OK).is_err() {
        bail!("{} is not writable", home.display());
    }
    Ok(home)
}

/// One check's cgroup.
pub struct Cgroup {
    dir: PathBuf,
    procs: File,
}

impl Cgroup {
    fn create(home: &Path, name: &str) -> Result<Cgroup> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = home.join(format!("abguard-check-{safe}-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            // a box left by a run that was itself killed: empty it and reuse it
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => kill_all(&dir),
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .with_context(|| format!("opening {}/cgroup.procs", dir.display()))?;
        Ok(Cgroup { dir, procs })
    }

    /// End every process in the box and remove it.
    fn end(&self) {
        kill_all(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// SIGKILL everything in the cgroup at `dir` and wait (bounded) until it is empty.
fn kill_all(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
        // kernels before 5.14: one process at a time, until none is left
        for _ in 0..100 {
            let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for p in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let end = Instant::now() + DRAIN;
    while Instant::now() < end {
        let ev = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if !ev.lines().any(|l| l == "populated 1") {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One running check.
pub struct Boxed {
    pub child: Child,
    cgroup: Option<Cgroup>,
    /// The read end of its stdout and stderr (non-blocking).
    pipe: File,
    log: File,
    shown: PathBuf,
    /// The first HEAD_KEEP bytes; `kept` in the log; `cut` dropped.
    head: Vec<u8>,
    kept: usize,
    cut: u64,
}

/// Start `path` in a box of its own (in `home`, or its own process group without one),
/// its output kept in `log` (a file of `logs`).
pub fn spawn(
    path: &Path,
    name: &str,
    home: Option<&Path>,
    logs: &SafeDir,
    log: &str,
) -> Result<Boxed> {
    // the mode of crate::act::flags::PRIVATE_MODE (probe cannot name act)
    let file = logs.create(log, 0o600)?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("making a pipe for the check's output")?;
    let cgroup = home.map(|h| Cgroup::create(h, name)).transpose()?;
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::null())
        .stdout(File::from(wr.try_clone()?))
        .stderr(File::from(wr))
        .process_group(0);
    if let Some(cg) = &cgroup {
        let fd = cg.procs.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: write(2) of a
        // constant to an fd opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(cg) = &cgroup {
                cg.end();
            }
            return Err(e).with_context(|| format!("starting {}", path.display()));
        }
    };
    // the parent's copies of the write end are gone with `cmd`: EOF comes when every
    // process of the check has closed it (or died)
    drop(cmd);
    // read between the gate's polls, never blocking it; a big pipe lets a chatty check
    // run on between two polls (its output past LOG_KEEP is dropped anyway)
    let pipe = File::from(rd);
    let _ = nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    let _ = nix::fcntl::fcntl(
        &pipe,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    Ok(Boxed {
        child,
        cgroup,
        pipe,
        log: file,
        shown: logs.path().join(log),
        head: Vec::new(),
        kept: 0,
        cut: 0,
    })
}

impl Boxed {
    /// Move what the check wrote so far into its log: up to LOG_KEEP bytes, the rest
    /// counted. Returns at once when the pipe is empty.
    pub fn pump(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match self.pipe.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let take = n.min(LOG_KEEP - self.kept.min(LOG_KEEP));
            if take > 0 && self.log.write_all(&buf[..take]).is_err() {
                log::warn!("{}: cannot write the check's output", self.shown.display());
            }
            let room = HEAD_KEEP.saturating_sub(self.head.len());
            self.head.extend_from_slice(&buf[..take.min(room)]);
            self.kept += take;
            self.cut = self.cut.saturating_add((n - take) as u64);
        }
    }

    /// Kill everything the check started (itself included) and take its output: the
    /// first HEAD_KEEP bytes, for the record.
    pub fn finish(mut self) -> String {
        match &self.cgroup {
            Some(cg) => cg.end(),
            None => {
                let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // every writer is dead (in a cgroup): this drains to the end
        self.pump();
        if self.cut > 0 {
            let _ = writeln!(
                self.log,
                "\n[abguard: {} more bytes cut; the first {LOG_KEEP} are kept]",
                self.cut
            );
        }
        let mut s = String::from_utf8_lossy(&self.head).trim_end().to_string();
        if self.kept > HEAD_KEEP || self.cut > 0 {
            s.push_str("\n[cut: the first 4096 bytes are kept here, the log has more]");
        }
        s
    }

    pub fn boxed(&self) -> bool {
        self.cgroup.is_some()
    }
}
