//! One writer at a time on a disk: an exclusive BSD lock on the whole-disk device node
//! (or the image file), the convention of systemd.io/BLOCK_DEVICE_LOCKING. udev takes a
//! shared lock on the same node before it probes, so it never reads a half-written
//! table, and two abguard processes serialize their read-change-write.

use anyhow::{bail, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a writer waits for the lock: longer than any abguard write or udev probe
/// takes, short enough that a stuck holder becomes an error rather than a hung boot.
pub const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// Take `LOCK_EX` on `file`, polling `LOCK_NB` until `wait` has passed (a blocking
/// flock could wait forever). The lock is released when the returned value is dropped,
/// or when the process dies.
pub fn exclusive(file: File, path: &Path, wait: Duration) -> Result<Flock<File>> {
    let start = Instant::now();
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) if start.elapsed() < wait => {
                file = f;
                std::thread::sleep(POLL);
            }
            Err((_, Errno::EWOULDBLOCK)) => bail!(
                "{} is locked by another process (waited {} s for flock LOCK_EX): another abguard, \
                 or a tool writing its partition table, is still running; nothing was written",
                path.display(),
                wait.as_secs_f32()
            ),
            Err((_, e)) => bail!("locking {} (flock LOCK_EX): {e}", path.display()),
        }
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
