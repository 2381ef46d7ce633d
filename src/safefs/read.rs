//! Reading files abguard did not necessarily write: opened without blocking, type-checked
//! on the open descriptor, read with a size cap per kind. The one reader for them all.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Which kinds of file an [`open_file`] caller can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    RegularOrBlock,
}

/// Open `path` without blocking on a FIFO, then refuse anything but the kinds asked
/// for, checked with fstat on the opened file (no race with a rename). A FIFO, socket
/// or character device would otherwise hang a reader or feed it endless bytes.
/// `flags` are added to O_RDONLY/O_RDWR (e.g. O_DIRECT).
pub fn open_file(path: &Path, writable: bool, kind: Kind, flags: OFlag) -> Result<File> {
    let access = if writable {
        OFlag::O_RDWR
    } else {
        OFlag::O_RDONLY
    };
    let fd = match nix::fcntl::open(
        path,
        access | flags | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // a socket cannot be opened at all: say what it is
        Err(Errno::ENXIO)
            if nix::sys::stat::stat(path).is_ok_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK
            }) =>
        {
            bail!("{} is a socket, not a regular file", path.display())
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("opening {}", path.display()))
        }
    };
    let mode = SFlag::from_bits_truncate(
        nix::sys::stat::fstat(&fd)
            .with_context(|| format!("reading the file type of {}", path.display()))?
            .st_mode,
    ) & SFlag::S_IFMT;
    let ok = mode == SFlag::S_IFREG || (kind == Kind::RegularOrBlock && mode == SFlag::S_IFBLK);
    if !ok {
        let what = match mode {
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFIFO => "a FIFO",
            SFlag::S_IFSOCK => "a socket",
            SFlag::S_IFCHR => "a character device",
            _ => "not a regular file",
        };
        let want = match kind {
            Kind::Regular => "a regular file",
            Kind::RegularOrBlock => "a block device or an image file",
        };
        bail!("{} is {what}, not {want}", path.display());
    }
    // O_NONBLOCK only guarded the open: reads of a file or disk never block anyway
    let fl = OFlag::from_bits_truncate(
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .with_context(|| format!("reading the flags of {}", path.display()))?,
    );
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK))
        .with_context(|| format!("setting the flags of {}", path.display()))?;
    Ok(File::from(fd))
}

/// Size caps per kind of file abguard reads: a bigger one is an error naming it, so no
/// planted file can exhaust memory (a config of 300 MiB, a unit file of /dev/zero).
pub mod cap {
    /// One configuration file, a unit file or check script given to `butane` (room for
    /// 200,000 critical units).
    pub const CONFIG: u64 = 8 << 20;
    /// A JSON record abguard wrote (boot.json, gate.json, held.json, config-error).
    pub const RECORD: u64 = 4 << 20;
    /// One history file (attempts.jsonl and its rotated copy).
    pub const HISTORY: u64 = 64 << 20;
    /// Small kernel and /proc files (cmdline, os-release, sysfs attributes).
    pub const SMALL: u64 = 64 << 10;
}

/// The whole of the regular file `path`, at most `cap` bytes (a bigger file is an
/// error, not a truncated read); `None` when it does not exist. Opened with O_NONBLOCK
/// and type-checked by [`open_file`], so a FIFO, socket, device or directory is a clear
/// error at once, never a hang. The one reader for every file abguard reads whole.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Option<Vec<u8>>> {
    let f = match open_file(path, false, Kind::Regular, OFlag::empty()) {
        Ok(f) => f,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    read_capped(f, path, cap).map(Some)
}

/// [`read_bounded`] as text: invalid UTF-8 is an error naming the file.
pub fn read_text(path: &Path, cap: u64) -> Result<Option<String>> {
    read_bounded(path, cap)?
        .map(|b| {
            String::from_utf8(b).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text (byte {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })
        })
        .transpose()
}

pub(super) fn read_capped(f: File, path: &Path, cap: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    if buf.len() as u64 > cap {
        bail!("{} is larger than {cap} bytes: refused", path.display());
    }
    Ok(buf)
}

/// The error is a missing file (ENOENT), anywhere in its chain.
pub fn not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || c.downcast_ref::<Errno>() == Some(&Errno::ENOENT)
    })
}
