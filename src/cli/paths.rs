//! The options saying where the GPT and the running system are, and their conversion
//! into the plain [`crate::types::PathOverrides`] the stages below take.

use crate::types::PathOverrides;
use clap::Args;
use std::path::PathBuf;

// Where the GPT and the running system are: flattened into the verbs that read them
// (not `config`, `butane`, `read-usr`), after the verb, so each page lists what its verb
// uses.
#[derive(Debug, Args, Clone)]
pub struct PathArgs {
    #[command(flatten)]
    pub disk: DiskArg,
    #[command(flatten)]
    pub system: SystemPathArgs,
}

impl PathArgs {
    /// The paths as plain data, for the stages below the command line.
    pub fn overrides(&self) -> PathOverrides {
        let p = &self.system;
        PathOverrides {
            disk: self.disk.disk.clone(),
            cmdline: p.cmdline.clone(),
            sysfs: p.sysfs.clone(),
            dev: p.dev.clone(),
            mountinfo: p.mountinfo.clone(),
            usr: p.usr.clone(),
            run_dir: p.run_dir.clone(),
            sysroot: p.sysroot.clone(),
            proc: p.proc.clone(),
        }
    }
}

// Where the running system's files are (command line, sysfs, /dev, mounts, /usr, /run,
// sysroot, procfs); defaults are the live machine's.
#[derive(Debug, Args, Clone, Default)]
pub struct SystemPathArgs {
    /// Kernel command line to read [default: /proc/cmdline].
    #[arg(long, value_name = "PATH")]
    pub cmdline: Option<PathBuf>,
    /// sysfs root [default: /sys].
    #[arg(long, value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
    /// Device directory [default: /dev].
    #[arg(long, value_name = "DIR")]
    pub dev: Option<PathBuf>,
    /// Mount table [default: /proc/self/mountinfo].
    #[arg(long, value_name = "PATH")]
    pub mountinfo: Option<PathBuf>,
    /// Mount point of the booted /usr [default: /sysusr/usr or SYSROOT/usr in the initrd, /usr otherwise].
    #[arg(long, value_name = "DIR")]
    pub usr: Option<PathBuf>,
    /// Runtime state directory [default: /run].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Root of the booted system, for os-release and the history [default: / ; /sysroot for initrd].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
    /// procfs, for the uptime and boot ID a record carries [default: /proc].
    #[arg(long, value_name = "DIR")]
    pub proc: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct DiskArg {
    /// Disk or image file holding the GPT [default: the disk of the booted /usr].
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,
}
