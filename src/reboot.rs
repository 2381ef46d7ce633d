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
