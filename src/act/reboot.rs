//! Asking for a reboot: through systemd when it runs (a clean shutdown that unmounts
//! /sysroot), else directly after a sync.

use anyhow::{Context, Result};

pub fn reboot() -> Result<()> {
    let via_systemd = std::process::Command::new("systemctl")
        .args(["--no-block", "reboot"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if via_systemd {
        return Ok(());
    }
    nix::unistd::sync();
    nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).context("reboot(2)")?;
    Ok(())
}

/// For the initrd's emergency path, where the normal shutdown transaction may be what
/// failed: skip stopping services, but still sync and unmount.
pub fn reboot_now() -> Result<()> {
    nix::unistd::sync();
    let forced = std::process::Command::new("systemctl")
        .args(["reboot", "--force"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if forced {
        // Hold the emergency hook here while systemd reboots, so the shell (or Flatcar's
        // 300 s timeout) after us never starts; if the reboot stalls, force it.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
    nix::unistd::sync();
    nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).context("reboot(2)")?;
    Ok(())
}
