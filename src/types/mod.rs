//! Shared types every stage speaks: the USR slots and their attribute bits, what backs
//! /usr, the booted slot as recorded, and the paths to probe. Nothing here does I/O.

/// The breadcrumb of a first boot after an upgrade, for the next boot.
pub mod attempt;
/// The GPT attribute bits of a USR partition (priority, tries, successful).
pub mod attrs;
/// Event, verdict and action as types, written as docs/operator.md's strings.
pub mod event;
/// A history line read back, and the build a failure names.
pub mod history;
/// Every path the tool reads or writes, as plain data: `None` is the live default.
pub mod path_overrides;
/// A USR slot, the booted slot, the partition backing /usr.
pub mod slot;

pub use path_overrides::PathOverrides;
pub use slot::{Backing, Booted, Slot};
