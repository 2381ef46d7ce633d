//! Where the machine is, as the command line overrode it: every path abguard reads or
//! writes, so tests and benchmarks point it at disk images and fake trees. `None` means
//! the live machine's default, filled in by [`crate::probe::MachinePaths`]; the command line sets
//! these, and nothing below it knows how.

use std::path::PathBuf;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathOverrides {
    /// Disk or image file holding the GPT [default: the disk of the booted /usr].
    pub disk: Option<PathBuf>,
    /// Kernel command line [default: /proc/cmdline].
    pub cmdline: Option<PathBuf>,
    /// sysfs root [default: /sys].
    pub sysfs: Option<PathBuf>,
    /// Device directory [default: /dev].
    pub dev: Option<PathBuf>,
    /// Mount table [default: /proc/self/mountinfo].
    pub mountinfo: Option<PathBuf>,
    /// Mount point of the booted /usr.
    pub usr: Option<PathBuf>,
    /// Runtime state directory [default: /run].
    pub run_dir: Option<PathBuf>,
    /// procfs, for the records' uptime and boot ID [default: /proc].
    pub proc: Option<PathBuf>,
    /// Root of the booted system, for os-release and the history.
    pub sysroot: Option<PathBuf>,
}

impl PathOverrides {
    /// True when the caller pointed at a system other than this one.
    pub fn explicit(&self) -> bool {
        self.cmdline.is_some()
            || self.sysfs.is_some()
            || self.mountinfo.is_some()
            || self.usr.is_some()
    }
}
