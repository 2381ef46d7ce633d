//! Crash-safe file writes that never follow a symlink.
//!
//! Every file is written to a temporary name in the same directory and renamed over the
//! target; directories below the caller-given base are opened with O_NOFOLLOW, and an
//! existing target that is a symlink is refused rather than replaced, so a planted link
//! in /run or /var cannot redirect a write.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bounded, non-blocking reads of whole files.
pub mod read;
use read::read_capped;
pub use read::{cap, not_found, open_file, read_bounded, read_text, Kind};

/// The end of a file, from [`SafeDir::tail`].
#[derive(Debug)]
pub struct Tail {
    pub bytes: Vec<u8>,
    /// The tail is the whole file.
    pub whole: bool,
    /// Newlines in the whole file.
    pub lines: usize,
}

#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn at_cwd() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid "fd" for *at() calls for the life of the process.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(nix::libc::AT_FDCWD) }
}

impl SafeDir {
    /// Open `base` (which the caller chose, so it may itself be reached through a link).
    pub fn open(base: &Path) -> Result<SafeDir> {
        let fd = openat(
            at_cwd(),
            base,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening directory {}", base.display()))?;
        Ok(SafeDir {
            fd,
            path: base.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open (and with `create`, make) a direct subdirectory, refusing a symlink.
    pub fn subdir(&self, name: &str, create: bool) -> Result<SafeDir> {
        let path = self.path.join(name);
        if create {
            match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating directory {}", path.display()))
                }
            }
        }
        self.refuse_symlink(name)?;
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening directory {}", path.display()))?;
        Ok(SafeDir { fd, path })
    }

    /// Open a nested path such as `var/lib/abguard` one component at a time.
    pub fn subpath(&self, rel: &str, create: bool) -> Result<SafeDir> {
        let mut dir = self.subdir(".", false)?;
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            dir = dir.subdir(part, create)?;
        }
        Ok(dir)
    }

    fn refuse_symlink(&self, name: &str) -> Result<bool> {
        match fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                bail!(
                    "{} is a symlink; refusing to write through it",
                    self.path.join(name).display()
                )
            }
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("checking {}", self.path.join(name).display()))
            }
        }
    }

    /// Write `bytes` to `name` atomically: temp file, fsync, rename, fsync the directory.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_atomic_mode(name, bytes, 0o644)
    }

    /// [`SafeDir::write_atomic`] with the file's mode, e.g. 0o600 for a file that holds
    /// check output.
    pub fn write_atomic_mode(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let target = self.path.join(name);
        self.refuse_symlink(name)?;
        let tmp = format!(".{name}.tmp{}", std::process::id());
        let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(
            self.fd.as_fd(),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .with_context(|| format!("creating {}", self.path.join(&tmp).display()))?;
        // the umask must not widen or narrow what the caller asked for
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .with_context(|| format!("setting the mode of {}", self.path.join(&tmp).display()))?;
        let mut f = File::from(fd);
        let written = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", target.display()));
        let renamed = written.and_then(|()| {
            renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name)
                .with_context(|| format!("renaming into {}", target.display()))
        });
        if renamed.is_err() {
            let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        renamed?;
        fsync(self.fd.as_fd()).with_context(|| format!("syncing {}", self.path.display()))?;
        Ok(())
    }

    /// Append `bytes` to `name` (created if missing) and fdatasync it. A file whose last
    /// byte is not a newline (an earlier append torn by a power cut) gets one first, so
    /// the torn fragment stays one unreadable line and the new one is whole.
    /// The file is kept at `mode` (an older, wider file is narrowed).
    pub fn append_line(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let target = self.path.join(name);
        self.refuse_symlink(name)?;
        let fd = self.open_regular(name, OFlag::O_RDWR | OFlag::O_APPEND, mode)?;
        // an older, wider file is narrowed (and the umask never widens a new one)
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .with_context(|| format!("setting the mode of {}", target.display()))?;
        let f = File::from(fd);
        let size = f
            .metadata()
            .with_context(|| format!("checking {}", target.display()))?
            .len();
        let mut last = [b'\n'];
        if size > 0 {
            f.read_exact_at(&mut last, size - 1)
                .with_context(|| format!("reading {}", target.display()))?;
        }
        let mut line = Vec::with_capacity(bytes.len() + 1);
        if last[0] != b'\n' {
            line.push(b'\n');
        }
        line.extend_from_slice(bytes);
        (&f).write_all(&line)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("appending to {}", target.display()))?;
        if size == 0 {
            // a new file: its directory entry must survive the power cut too
            fsync(self.fd.as_fd()).with_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(())
    }

    /// The last `max` bytes of `name`, and the number of newlines in all of it; `None`
    /// when it does not exist. Every byte is read once and only the tail is kept, so
    /// a caller that needs both (the history's newest line and its length) opens and
    /// reads the file once. A symlink is refused.
    pub fn tail(&self, name: &str, max: u64) -> Result<Option<Tail>> {
        let target = self.path.join(name);
        let Some(f) = self.open_read(name)? else {
            return Ok(None);
        };
        let reading = || format!("reading {}", target.display());
        let size = f.metadata().with_context(reading)?.len();
        if size > cap::HISTORY {
            bail!(
                "{} is larger than {} bytes: refused",
                target.display(),
                cap::HISTORY
            );
        }
        let start = size.saturating_sub(max);
        let mut bytes = vec![0; (size - start) as usize];
        f.read_exact_at(&mut bytes, start).with_context(reading)?;
        let mut lines = memchr::memchr_iter(b'\n', &bytes).count();
        let mut chunk = [0u8; 16 * 1024];
        let mut at = 0;
        while at < start {
            let n = chunk.len().min((start - at) as usize);
            f.read_exact_at(&mut chunk[..n], at).with_context(reading)?;
            lines += memchr::memchr_iter(b'\n', &chunk[..n]).count();
            at += n as u64;
        }
        Ok(Some(Tail {
            bytes,
            whole: start == 0,
            lines,
        }))
    }

    /// Rename `from` over `to` within this directory and make it durable. rename(2)
    /// moves or replaces a symlink itself, never what it points to.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)
            .with_context(|| format!("renaming {} to {to}", self.path.join(from).display()))?;
        fsync(self.fd.as_fd()).with_context(|| format!("syncing {}", self.path.display()))
    }

    /// Remove `name` if present (a symlink is removed, never followed).
    pub fn remove(&self, name: &str) -> Result<()> {
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("removing {}", self.path.join(name).display()))
            }
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }

    /// Read `name` (at most `cap` bytes, a bigger file is an error) without following
    /// a symlink; `None` when it does not exist.
    pub fn read(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some(f) = self.open_read(name)? else {
            return Ok(None);
        };
        read_capped(f, &self.path.join(name), cap).map(Some)
    }

    /// Open (creating at `mode`) `name` with `flags`, never through a symlink and never
    /// blocking; anything but a regular file is refused.
    fn open_regular(&self, name: &str, flags: OFlag, mode: u32) -> Result<OwnedFd> {
        let target = self.path.join(name);
        let fd = openat(
            self.fd.as_fd(),
            name,
            flags | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(mode),
        )
        .with_context(|| format!("opening {}", target.display()))?;
        regular(&fd, &target)?;
        Ok(fd)
    }

    /// Create `name` empty, exclusively: false when it exists already (a symlink too).
    pub fn create_new(&self, name: &str) -> Result<bool> {
        match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("creating {}", self.path.join(name).display()))
            }
        }
    }

    /// Create (or truncate) `name` for writing, refusing a symlink or anything but a
    /// regular file, at `mode`: for output that streams in (a check's log).
    pub fn create(&self, name: &str, mode: u32) -> Result<File> {
        let target = self.path.join(name);
        self.refuse_symlink(name)?;
        let fd = self.open_regular(name, OFlag::O_WRONLY, mode)?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .with_context(|| format!("setting the mode of {}", target.display()))?;
        nix::unistd::ftruncate(&fd, 0)
            .with_context(|| format!("truncating {}", target.display()))?;
        Ok(File::from(fd))
    }

    /// Open `name` for reading without following a symlink; `None` when it does not exist.
    fn open_read(&self, name: &str) -> Result<Option<File>> {
        let target = || self.path.join(name);
        match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => {
                regular(&fd, &target())?;
                Ok(Some(File::from(fd)))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP) => bail!("{} is a symlink; refusing to use it", target().display()),
            Err(e) => Err(e).with_context(|| format!("reading {}", target().display())),
        }
    }
}

/// Refuse an opened file that is not a regular one (a FIFO, device, socket, directory).
fn regular(fd: &OwnedFd, target: &Path) -> Result<()> {
    let st = nix::sys::stat::fstat(fd).with_context(|| format!("checking {}", target.display()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        bail!(
            "{} is not a regular file; refusing to use it",
            target.display()
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "safefs_tests.rs"]
mod tests;
