//! The names under /run that the booted system's units key on, and the unit names one
//! verb's output refers to another by: defined once, for the initrd that writes them,
//! the gate and generator that read them, and the tests.

/// The flag (under /run) that releases update-engine and locksmithd: the name the
/// project's first shell prototype used, so units written for it keep working.
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
/// In [`STATE_DIR`]: the health gate's snapshot (what it waits for), for `status`.
pub const GATE_JSON: &str = "gate.json";
/// In [`STATE_DIR`]: the gate's verdict is taken (created exclusively, so the watcher,
/// a unit's OnFailure= hook and the deadline never act twice).
pub const GATE_VERDICT: &str = "gate-verdict";
/// On ROOT: the sysext images merged on the last ordinary boot, one a line.
pub const SYSEXTS_MERGED: &str = "var/lib/abguard/sysexts-merged";
/// In [`STATE_DIR`]: the record of an emergency rollback from the initrd.
pub const EMERGENCY_JSON: &str = "emergency.json";
/// In [`STATE_DIR`]: the health checks' output, one file a check.
pub const CHECKS_LOG_DIR: &str = "checks";
/// Everything abguard keeps in [`STATE_DIR`]: the only names under /run/abguard that
/// units, scripts and docs may spell (tests/units.rs checks systemd/ and dracut/).
pub const IN_STATE_DIR: [&str; 8] = [
    NEEDS_CHECK,
    INDETERMINATE,
    BOOT_JSON,
    CONFIG_ERROR,
    GATE_JSON,
    GATE_VERDICT,
    EMERGENCY_JSON,
    CHECKS_LOG_DIR,
];

/// The unit running `abguard read-usr --record` (VERIFY_USR=yes makes it critical).
pub const READ_USR_UNIT: &str = "abguard-read-usr.service";
/// abguard's state on ROOT: the history and the loop guard's held builds.
pub const ROOT_STATE_DIR: &str = "var/lib/abguard";
