//! Effects, small and separate: /run flags and records, the history, metrics, reboot.

/// The attempt's breadcrumb on ROOT, for the next boot's explanation.
pub mod attempt;
/// The `fallback` record: GRUB fell back with no verdict reached.
pub mod fallback;
/// The names under /run (flags, records) and the unit names verbs share.
pub mod flags;
/// gate.json, the health gate's snapshot (one typed owner), and the generator's config errors.
pub mod gate_state;
/// The loop guard's held builds on ROOT.
pub mod held;
/// The bounded history and the totals it carries.
pub mod history;
/// Journal entries with a MESSAGE_ID, explained by systemd/abguard.catalog.
pub mod journal;
/// One line per event to /dev/kmsg in the initrd, stderr elsewhere.
pub mod kmsg;
/// The Prometheus textfile.
pub mod metrics;
/// Asking systemd (or the kernel) to reboot.
pub mod reboot;
/// The JSON boot record and the history.
pub mod record;
/// An operator's hand on the gate: the verdict, the release, the node's off switch.
pub mod steer;
/// The hang budget's watchdog: armed in the initrd, returned at the verdict.
pub mod watchdog;
