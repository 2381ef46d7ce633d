//! Pure decisions over probed facts, tested from tables: no I/O below this line.

/// GRUB's gptprio rules on the USR slots (pick, spend a try, prioritize), as in its C.
pub mod ab;
/// The initrd's verdict on one boot: first boot after an upgrade, verity, booted slot.
pub mod assess;
/// Which slot booted: the command line and sysfs, cross-checked (used by every verb).
pub mod booted;
/// Whether GRUB fell back on its own from a first boot that reached no verdict.
pub mod fallback;
/// The health gate's verdict over observed unit states and check results.
pub mod gate;
/// The loop guard: which failed builds are held, and which a staged build matches.
pub mod loopguard;
/// What status answers first: each slot's state word and what the next reboot does.
pub mod outlook;
/// The stage a fallback's attempt reached and why it ended.
pub mod stage;
/// The dm-verity status and table lines, and whether they condemn the booted /usr.
pub mod verity;
/// The hang budget: which watchdog is armed on a first boot, and who reset the machine.
pub mod watchdog;
