//! The one way abguard changes a disk: read the GPT, change the USR attributes, write
//! both copies in GRUB's order under a whole-disk lock, with failpoints between steps.

/// Read → change → write under the lock: the path every writer takes.
pub mod change;
/// Failpoints and the power-cut test device.
pub mod failpoint;
/// GPT read and write: headers, entries, CRCs, the copy order.
pub mod gpt;
/// One GPT copy: header limits, entry array checks, CRC, the prefetched read.
pub mod layout;
/// The whole-disk lock every writer takes.
pub mod lock;

pub use change::{change_slots, read_table, spend_booted, unstage};
