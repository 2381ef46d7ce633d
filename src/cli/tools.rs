//! The options of the verbs that work offline on a slot, a device or a config:
//! `verify`, `read-usr`, `butane`. Their checks beyond clap's run in the verbs.

use super::paths::PathArgs;
use clap::Args;
use std::path::PathBuf;

/// dm-verity's (and Flatcar's) block size: `read-usr` sizes are multiples of it.
const BLOCK: usize = crate::probe::verity::BLOCK as usize;

/// Verify a USR slot's filesystem and dm-verity hash tree offline, block by block,
/// against the root hash in its kernel (needs the `cryptsetup` build). Exit 4: failed.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    /// USR partition to verify [default: the staged one: next to boot, tries left, not yet successful].
    #[arg(long, value_name = "N", conflicts_with = "staged")]
    pub partition: Option<u32>,
    /// Verify the staged slot; when nothing is staged, say so and exit 0.
    #[arg(long)]
    pub staged: bool,
    /// Root hash (hex) [default: 64 hex characters at byte 0x40 (arm64: 512) of the slot's kernel].
    #[arg(long, value_name = "HEX", conflicts_with = "kernel")]
    pub root_hash: Option<String>,
    /// Kernel image holding the root hash [default: SYSROOT/boot/flatcar/vmlinuz-a for USR-A, vmlinuz-b otherwise].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Byte offset of the verity superblock in the partition [default: found after the filesystem].
    #[arg(long, value_name = "BYTES")]
    pub hash_offset: Option<u64>,
    /// Partition device or partition image to read [default: the slot's partition on --disk;
    /// in an image file it is copied out first].
    #[arg(long, value_name = "PATH")]
    pub device: Option<PathBuf>,
    /// When the staged slot fails, un-stage it (tries=0, successful=0; the other slot keeps
    /// its priority and stays successful) and record why in the history.
    #[arg(long)]
    pub unstage_on_failure: bool,
    /// Print the verification report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}

/// Read all of /dev/mapper/usr through dm-verity; fail at the first unreadable block
/// (exit 4). VERIFY_USR=yes runs it before boot-complete.target on a first boot.
#[derive(Debug, Args, Clone)]
pub struct ReadUsrArgs {
    /// Device (or file) to read.
    #[arg(long, value_name = "PATH", default_value = "/dev/mapper/usr")]
    pub device: PathBuf,
    /// Bytes per read (K and M suffixes).
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub block_size: usize,
    /// Read with O_DIRECT (bypass the page cache) instead of buffered reads that drop
    /// what they read from the cache behind them.
    #[arg(long)]
    pub direct: bool,
    /// Record a failure in the history (abguard-read-usr.service does).
    #[arg(long)]
    pub record: bool,
    /// Print the report (size, bytes read, throughput, first bad block) as JSON.
    #[arg(long)]
    pub json: bool,
    /// With --record: mount point of the booted /usr, for its VERSION_ID [default: /usr].
    #[arg(long, value_name = "DIR")]
    pub usr: Option<PathBuf>,
    /// With --record: root of the booted system, whose history is written [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = match s.trim().to_ascii_lowercase() {
        t if t.ends_with('k') => (t[..t.len() - 1].to_string(), 1 << 10),
        t if t.ends_with('m') => (t[..t.len() - 1].to_string(), 1 << 20),
        t => (t, 1),
    };
    let n = num
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 4M, 512K, 65536)"))?;
    if n < BLOCK || n % BLOCK != 0 || n > 256 << 20 {
        return Err(format!("{s}: a multiple of 4K between 4K and 256M, please"));
    }
    Ok(n)
}

/// Print the Butane (or Ignition) config that writes health-gate settings to
/// /etc/abguard/abguard.conf.d/10-butane.conf at provisioning.
#[derive(Debug, Args, Clone)]
#[command(group = clap::ArgGroup::new("settings")
    .required(true)
    .multiple(true)
    .args(["critical_unit", "deadline", "stable_for", "check_timeout", "no_check_sysext",
           "mark_good", "on_failure", "verify_usr", "hang_budget", "panic", "rd_earlytimeout", "check"]))]
pub struct ButaneArgs {
    /// A unit that must be active before an upgrade counts as healthy (repeatable).
    #[arg(long, value_name = "UNIT")]
    pub critical_unit: Vec<String>,
    /// Roll an unproven upgrade back this long after boot (systemd time span, e.g. 10min).
    #[arg(long, value_name = "SPAN")]
    pub deadline: Option<String>,
    /// How long the critical units must stay up after the last came up (STABLE_FOR).
    #[arg(long, value_name = "SPAN")]
    pub stable_for: Option<String>,
    /// How long one health-check run may take (CHECK_TIMEOUT).
    #[arg(long, value_name = "SPAN")]
    pub check_timeout: Option<String>,
    /// Switch the built-in sysext check off (CHECK_SYSEXT=no).
    #[arg(long)]
    pub no_check_sysext: bool,
    /// Mark the slot good when the gate passes (MARK_GOOD=yes).
    #[arg(long)]
    pub mark_good: bool,
    /// What a failed gate does: rollback (spend the slot and reboot) or report (only
    /// record it).
    #[arg(long, value_name = "ACTION")]
    pub on_failure: Option<String>,
    /// Read all of /usr through dm-verity on the first boot after an upgrade (VERIFY_USR=yes).
    #[arg(long)]
    pub verify_usr: bool,
    /// How long a hung kernel or PID 1 may go unnoticed on a first boot after an upgrade
    /// before the watchdog resets the machine (HANG_BUDGET, e.g. 2min).
    #[arg(long, value_name = "SPAN")]
    pub hang_budget: Option<String>,
    /// Kernel argument panic=SECONDS (Flatcar's kernel: 60): how long a panicked kernel
    /// waits before it resets, so GRUB falls back sooner; costs the time to read the panic
    /// on a console. Written to the OEM grub.cfg's linux_append by Ignition (off by default).
    #[arg(long, value_name = "SECONDS")]
    pub panic: Option<String>,
    /// Kernel argument rd.earlytimeout=SECONDS (stage 0's wait for USR, Flatcar: 300):
    /// a disk that appears later than this (SAN, slow USB) fails the boot. Off by default.
    #[arg(long, value_name = "SECONDS")]
    pub rd_earlytimeout: Option<String>,
    /// Install a health check from a local file as /etc/abguard/checks.d/NAME, NAME=PATH
    /// (repeatable; a NAME ending in .wanted is only recorded when it fails).
    #[arg(long, value_name = "NAME=PATH")]
    pub check: Vec<String>,
    /// Also install one of your own units from a local file, NAME=PATH (repeatable);
    /// it is enabled when it has an [Install] section.
    #[arg(long, value_name = "NAME=PATH")]
    pub unit_file: Vec<String>,
    /// Output format: butane (YAML, variant flatcar 1.0.0) or ignition (3.3.0 JSON).
    #[arg(long, value_name = "FORMAT", default_value = "butane")]
    pub format: String,
}

impl ButaneArgs {
    /// The kernel arguments asked for (`--panic` 1-600, `--rd-earlytimeout` 10-3600
    /// seconds), in that order: panic=0 would wait for ever, a USR wait under 10 s fails
    /// slow disks.
    pub fn kernel_arguments(&self) -> Result<Vec<String>, String> {
        let mut v = Vec::new();
        for (opt, arg, given, lo, hi) in [
            ("panic", "panic", &self.panic, 1, 600),
            (
                "rd-earlytimeout",
                "rd.earlytimeout",
                &self.rd_earlytimeout,
                10,
                3600,
            ),
        ] {
            let Some(s) = given else { continue };
            match s.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => v.push(format!("{arg}={n}")),
                _ => {
                    return Err(format!(
                        "invalid --{opt} {s:?}: whole seconds from {lo} to {hi}"
                    ))
                }
            }
        }
        Ok(v)
    }

    /// The value given for the key whose option is `flag` (config::keys::Key::butane).
    pub fn value(&self, flag: &str) -> Option<String> {
        let on = |b: bool, v: &str| b.then(|| v.to_string());
        match flag {
            "critical-unit" if !self.critical_unit.is_empty() => Some(self.critical_unit.join(" ")),
            "deadline" => self.deadline.clone(),
            "stable-for" => self.stable_for.clone(),
            "check-timeout" => self.check_timeout.clone(),
            "no-check-sysext" => on(self.no_check_sysext, "no"),
            "mark-good" => on(self.mark_good, "yes"),
            "on-failure" => self.on_failure.clone(),
            "verify-usr" => on(self.verify_usr, "yes"),
            "hang-budget" => self.hang_budget.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        for bad in ["0", "1000", "4G", "x", "1M1", "512M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
