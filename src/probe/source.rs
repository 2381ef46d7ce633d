//! Where a slot's bytes can be read whole: its partition's node on a block device, or
//! an unnamed copy out of a disk image (libcryptsetup reads whole devices only).

use crate::disk::gpt::Table;
use crate::probe::MachinePaths;
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Fill `buf` from `at` with `read` (a pread) as many times as it takes; short only at
/// the end. An error after a short read is the error at the first unreadable byte.
pub fn read_full_at<R>(read: &R, buf: &mut [u8], at: u64) -> std::io::Result<usize>
where
    R: Fn(&mut [u8], u64) -> std::io::Result<usize>,
{
    let mut done = 0;
    while done < buf.len() {
        match read(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // a short read up to a bad block, then the error at the block itself
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What was read: the device path handed to libcryptsetup, and a temporary copy that
/// must stay open as long as that path is used.
pub struct Source {
    pub path: PathBuf,
    pub shown: String,
    _copy: Option<File>,
}

/// The kernel's node for partition `n` of a block device, through sysfs.
pub fn partition_node(env: &MachinePaths, disk: &Path, n: u32) -> Result<PathBuf> {
    let name = env.sysfs.name_of_path(disk)?;
    let dir = env.sysfs.root.join("class/block").join(&name);
    let rd = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    for e in rd.flatten() {
        let p = std::fs::read_to_string(e.path().join("partition")).unwrap_or_default();
        if p.trim().parse::<u32>().ok() == Some(n) {
            return Ok(env.sysfs.dev.join(e.file_name()));
        }
    }
    bail!(
        "{} has no partition {n} in {}",
        disk.display(),
        dir.display()
    )
}

/// libcryptsetup reads whole devices (no data offset for VERITY), so a slot inside an
/// image file is copied into an unnamed temporary file (beside the image when possible)
/// and read through /proc/self/fd.
pub fn copy_out(image: &Path, table: &Table, n: u32) -> Result<Source> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let (first, last) = table
        .extent(n)
        .ok_or_else(|| anyhow!("partition {n} is not in the table"))?;
    let ss = table.sector_size;
    let (start, len) = (first * ss, (last + 1 - first) * ss);
    let mut src = crate::safefs::open_file(
        image,
        false,
        crate::safefs::Kind::RegularOrBlock,
        nix::fcntl::OFlag::empty(),
    )?;
    let dirs = [
        image
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        std::env::temp_dir(),
    ];
    let mut last_err = None;
    for d in &dirs {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_TMPFILE)
            .mode(0o600)
            .open(d)
        {
            Ok(mut tmp) => {
                src.seek(SeekFrom::Start(start))?;
                // File → File: std copies in the kernel (copy_file_range)
                let copied = std::io::copy(&mut (&mut src).take(len), &mut tmp)
                    .with_context(|| format!("copying partition {n} out of {}", image.display()))?;
                if copied != len {
                    bail!(
                        "{} ends inside partition {n} ({copied} of {len} bytes)",
                        image.display()
                    );
                }
                return Ok(Source {
                    path: PathBuf::from(format!("/proc/self/fd/{}", tmp.as_raw_fd())),
                    shown: format!("{} partition {n} (copied out)", image.display()),
                    _copy: Some(tmp),
                });
            }
            Err(e) => last_err = Some(anyhow!("{}: {e}", d.display())),
        }
    }
    Err(last_err
        .unwrap_or_else(|| anyhow!("no directory"))
        .context("creating a temporary copy of the slot"))
}

impl Source {
    /// A device or image file read as it is.
    pub fn direct(path: &Path) -> Source {
        Source {
            path: path.to_path_buf(),
            shown: path.display().to_string(),
            _copy: None,
        }
    }
}
