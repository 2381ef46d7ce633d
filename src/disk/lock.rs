//! One writer at a time on a disk: an exclusive BSD lock on the whole-disk device node
//! (or the image file), the convention of systemd.io/BLOCK_DEVICE_LOCKING. udev takes a
//! shared lock on the same node before it probes, so it never reads a half-written
//! table, and two abguard processes serialize their read-change-write.

use anyhow::{bail, Result};
use nix::libc;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a writer waits for the lock: longer than any abguard write or udev probe
/// takes, short enough that a stuck holder becomes an error rather than a hung boot.
pub const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// A file holding `LOCK_EX`. Closing it (drop, or the process dying) releases the lock,
/// so there is no unlock step that could fail. (nix's `Flock` would do the same but
/// formats its errors with nix's errno text table, 8 KB in the static binary.)
#[derive(Debug)]
pub struct Locked(File);

impl std::ops::Deref for Locked {
    type Target = File;
    fn deref(&self) -> &File {
        &self.0
    }
}

impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut File {
        &mut self.0
    }
}

/// Take `LOCK_EX` on `file`, polling `LOCK_NB` until `wait` has passed (a blocking
/// flock could wait forever).
pub fn exclusive(file: File, path: &Path, wait: Duration) -> Result<Locked> {
    let start = Instant::now();
    loop {
        // SAFETY: flock on a descriptor `file` owns for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Locked(file));
        }
        let e = io::Error::last_os_error();
        let busy = matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR));
        if !busy {
            bail!("locking {} (flock LOCK_EX): {e}", path.display());
        }
        if start.elapsed() >= wait {
            bail!(
                "{} is locked by another process (waited {} s for flock LOCK_EX): another abguard, \
                 or a tool writing its partition table, is still running; nothing was written",
                path.display(),
                wait.as_secs_f32()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_times_out_naming_the_disk_and_a_free_one_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::write(&path, b"x").unwrap();
        let held = exclusive(File::open(&path).unwrap(), &path, WAIT).unwrap();
        let t = Instant::now();
        let err = exclusive(File::open(&path).unwrap(), &path, Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(
            err.contains("disk.img is locked by another process"),
            "{err}"
        );
        drop(held);
        exclusive(File::open(&path).unwrap(), &path, Duration::ZERO).unwrap();
    }
}
