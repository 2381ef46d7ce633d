//! Effects, small and separate: /run flags and records, the history, metrics, reboot.

/// The names under /run (flags, records) and the unit names verbs share.
pub mod flags;
/// What the health gate left under /run for status and metrics.
pub mod gate_state;
/// One line per event to /dev/kmsg in the initrd, stderr elsewhere.
pub mod kmsg;
/// The Prometheus textfile.
pub mod metrics;
/// Asking systemd (or the kernel) to reboot.
pub mod reboot;
/// The JSON boot record and the history.
pub mod record;
