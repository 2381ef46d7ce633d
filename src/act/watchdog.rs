//! Arming the hang budget's watchdog in the initrd and returning it to the node's own
//! setting at the gate's verdict.
//!
//! The initrd opens the device, sets the budget, pings once and closes it without the
//! magic 'V': the watchdog core leaves it running, so a hang from here to switch-root
//! resets the machine. The drop-in under /run/systemd/system.conf.d makes the booted
//! system's PID 1 open the same device and ping it (RuntimeWatchdogSec=): a frozen PID 1
//! or a hung kernel stops the pings. /run is carried across switch-root and gone on
//! the next boot, so an ordinary boot never sees it.

use anyhow::{bail, Context, Result};
use std::os::raw::c_int;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The drop-in's directory under /run and its name.
pub const DROPIN_DIR: &str = "systemd/system.conf.d";
pub const DROPIN: &str = "50-abguard-hang-budget.conf";

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, c_int);
nix::ioctl_read!(wdioc_keepalive, b'W', 5, c_int);

/// Arm `dev_dir/device` for `timeout_s` and leave it running; write the drop-in that
/// hands it to the booted system's manager. The device's answer is the timeout set.
pub fn arm(dev_dir: &Path, run_dir: &Path, device: &str, timeout_s: u64) -> Result<u64> {
    let path = dev_dir.join(device);
    let meta = std::fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
    if !meta.file_type().is_char_device() {
        bail!("{} is not a character device", path.display());
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut t: c_int = timeout_s.min(c_int::MAX as u64) as c_int;
    // SAFETY: the fd is open for the call; the argument is a valid c_int
    unsafe { wdioc_settimeout(f.as_raw_fd(), &mut t) }
        .with_context(|| format!("setting the timeout of {}", path.display()))?;
    let mut dummy: c_int = 0;
    // SAFETY: as above
    unsafe { wdioc_keepalive(f.as_raw_fd(), &mut dummy) }
        .with_context(|| format!("pinging {}", path.display()))?;
    let set = t.max(1) as u64;
    let text = crate::decide::watchdog::dropin(device, set);
    crate::safefs::SafeDir::open(run_dir)?
        .subpath(DROPIN_DIR, true)?
        .write_atomic(DROPIN, text.as_bytes())?;
    // closed without the magic 'V': it keeps running until PID 1 takes it over
    drop(f);
    Ok(set)
}

/// Load softdog when no driver gave a device (the reported last resort).
pub fn load_softdog() -> bool {
    std::process::Command::new("modprobe")
        .args(["-q", "softdog"])
        .status()
        .is_ok_and(|s| s.success())
}

/// At the verdict: remove the drop-in; with `reexec`, have PID 1 re-read its
/// configuration so the watchdog returns to the node's own setting (disarmed unless
/// the node sets RuntimeWatchdogSec itself). Without it (a rollback is rebooting) the
/// watchdog stays armed through the shutdown. None when nothing was armed.
pub fn release(run_dir: &Path, reexec: bool) -> Result<Option<String>> {
    let Ok(dir) = crate::safefs::SafeDir::open(run_dir).and_then(|d| d.subpath(DROPIN_DIR, false))
    else {
        return Ok(None);
    };
    if !dir.exists(DROPIN) {
        return Ok(None);
    }
    dir.remove(DROPIN)?;
    let path = dir.path().join(DROPIN);
    if !reexec {
        return Ok(Some(format!(
            "removed {} (armed until the reboot)",
            path.display()
        )));
    }
    let systemctl = std::env::var_os("ABGUARD_SYSTEMCTL").unwrap_or_else(|| "systemctl".into());
    let ok = std::process::Command::new(systemctl)
        .arg("daemon-reexec")
        .status()
        .context("running systemctl daemon-reexec")?;
    if !ok.success() {
        bail!(
            "systemctl daemon-reexec failed ({ok}) after removing {}",
            path.display()
        );
    }
    Ok(Some(format!(
        "removed {} and re-executed PID 1: the watchdog is back to the node's own setting",
        path.display()
    )))
}
