//! The names under /run that the booted system's units key on, and the unit names one
//! verb's output refers to another by: defined once, for the initrd that writes them,
//! the gate and generator that read them, and the tests.

/// The seed's flag name (under /run), so units written for it keep working.
pub const HEALTHY_FLAG: &str = "first-boot-healthy";
/// abguard's directory under /run.
pub const STATE_DIR: &str = "abguard";
/// In [`STATE_DIR`]: this boot is a first boot after an upgrade and must prove itself.
pub const NEEDS_CHECK: &str = "needs-health-check";
/// In [`STATE_DIR`]: the initrd could not decide; the reasons, one a line.
pub const INDETERMINATE: &str = "indeterminate";
/// In [`STATE_DIR`]: the initrd's boot record.
pub const BOOT_JSON: &str = "boot.json";
/// In [`STATE_DIR`]: the generator could not apply the configuration; why.
pub const CONFIG_ERROR: &str = "config-error";
/// In [`STATE_DIR`]: the record of an emergency rollback from the initrd.
pub const EMERGENCY_JSON: &str = "emergency.json";

/// The unit running `abguard read-usr --record` (VERIFY_USR=yes makes it critical).
pub const READ_USR_UNIT: &str = "abguard-read-usr.service";
/// abguard's state on ROOT: the history and the loop guard's held builds.
pub const ROOT_STATE_DIR: &str = "var/lib/abguard";
