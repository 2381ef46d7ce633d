//! Effects, small and separate: /run flags and records, the history, metrics, reboot.

/// Event, verdict and action as types, written as the README's strings.
pub mod event;
/// The loop guard's held builds on ROOT.
pub mod held;
/// The bounded history and the totals it carries.
pub mod history;
/// One line per event to /dev/kmsg in the initrd, stderr elsewhere.
pub mod kmsg;
/// The Prometheus textfile.
pub mod metrics;
/// Asking systemd (or the kernel) to reboot.
pub mod reboot;
/// The JSON boot record and the history.
pub mod record;
/// Crash-safe, no-follow writes under /run and /var.
pub mod safefs;
