//! One file per verb (or family of verbs): probe, decide, act, and report.

/// `allow`: release builds the loop guard holds.
pub mod allow;
/// `butane`: the Butane snippet that configures abguard on a node.
pub mod butane;
/// `gate-pass`, `gate-fail`, `emergency`: the booted system's health gate.
pub mod gate;
/// `generator`: the systemd generator that wires the gate from the config.
pub mod generator;
/// `initrd` and `assess`: the boot assessment.
pub mod initrd;
/// Fallback records and the loop guard (`guard-staged`, and `stage`'s check).
pub mod lifecycle;
/// `read-usr`: verify a whole slot before trusting it.
pub mod read_usr;
/// `status`, `next`, `stage`, `mark-good`, `rollback`: the slot verbs.
pub mod slots;
/// `verify`: verify-before-trust of a staged slot with libcryptsetup.
pub mod verify;
