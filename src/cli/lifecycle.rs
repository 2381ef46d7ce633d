//! The loop guard's verbs: `allow` and `guard-staged`.

use super::paths::PathArgs;
use clap::{ArgGroup, Args};
use std::path::PathBuf;

/// Release builds the loop guard holds (builds that failed their first boot), so they
/// may be staged again.
#[derive(Debug, Args, Clone)]
#[command(group(ArgGroup::new("which").required(true).args(["version", "root_hash", "all"])))]
pub struct AllowArgs {
    /// Release the held builds with this VERSION_ID.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Release the held build with this dm-verity root hash.
    #[arg(long, value_name = "HEX")]
    pub root_hash: Option<String>,
    /// Release every held build.
    #[arg(long)]
    pub all: bool,
    /// Print what was released and what stays held as JSON.
    #[arg(long)]
    pub json: bool,
    /// Root of the system whose held builds to change [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
}

/// Un-stage the staged slot when it holds a build that failed its first boot before
/// (run by abguard-guard-staged.service when /run/reboot-required appears).
#[derive(Debug, Args, Clone)]
pub struct GuardStagedArgs {
    /// Print the record of what was done as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}
