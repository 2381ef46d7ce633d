//! The ChromeOS/Flatcar USR attribute bits inside a GPT entry's 64-bit attribute field.
//!
//! Bits 48–51 priority, 52–55 tries left, 56 successful (cgptlib_internal.h and GRUB's
//! gpt_partition.h agree). Every other bit belongs to someone else and is carried through
//! untouched: `encode` only ever replaces these nine bits.

use serde::Serialize;

const PRIORITY_SHIFT: u32 = 48;
const TRIES_SHIFT: u32 = 52;
const SUCCESSFUL_SHIFT: u32 = 56;
const NIBBLE: u64 = 0xf;

/// Largest value either 4-bit field can hold.
pub const MAX_FIELD: u8 = 15;

/// The three USR fields of one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct UsrAttrs {
    pub priority: u8,
    pub tries: u8,
    pub successful: bool,
}

impl UsrAttrs {
    pub const fn new(priority: u8, tries: u8, successful: bool) -> Self {
        Self {
            priority,
            tries,
            successful,
        }
    }

    pub fn decode(bits: u64) -> Self {
        Self {
            priority: ((bits >> PRIORITY_SHIFT) & NIBBLE) as u8,
            tries: ((bits >> TRIES_SHIFT) & NIBBLE) as u8,
            successful: (bits >> SUCCESSFUL_SHIFT) & 1 == 1,
        }
    }

    /// Replace the USR bits of `old` with `self`, keeping all other bits.
    /// Fields wider than four bits are clamped, as cgpt refuses values above 15.
    pub fn encode(self, old: u64) -> u64 {
        let mask = (NIBBLE << PRIORITY_SHIFT) | (NIBBLE << TRIES_SHIFT) | (1 << SUCCESSFUL_SHIFT);
        let p = u64::from(self.priority.min(MAX_FIELD)) << PRIORITY_SHIFT;
        let t = u64::from(self.tries.min(MAX_FIELD)) << TRIES_SHIFT;
        let s = u64::from(self.successful) << SUCCESSFUL_SHIFT;
        (old & !mask) | p | t | s
    }

    /// GRUB's gptprio condition for a partition to be considered at all.
    pub fn bootable(self) -> bool {
        self.priority > 0 && (self.tries > 0 || self.successful)
    }

    /// The value `cgpt show -i N -A` prints: bits 48–63 as hex.
    pub fn cgpt_a(bits: u64) -> u16 {
        (bits >> 48) as u16
    }
}

impl std::fmt::Display for UsrAttrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "priority={} tries={} successful={}",
            self.priority,
            self.tries,
            u8::from(self.successful)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        // (raw attribute field, expected), values as cgpt -A prints them for bits 48..63
        let cases: &[(u64, UsrAttrs)] = &[
            (0, UsrAttrs::new(0, 0, false)),
            (0x0012 << 48, UsrAttrs::new(2, 1, false)),
            (0x0101 << 48, UsrAttrs::new(1, 0, true)),
            (0x01ff << 48, UsrAttrs::new(15, 15, true)),
            // bits above 56 (read-only, no-auto) and legacy-bootable do not leak in
            ((0x9e00 << 48) | 0b100, UsrAttrs::new(0, 0, false)),
            (u64::MAX, UsrAttrs::new(15, 15, true)),
        ];
        for &(raw, want) in cases {
            assert_eq!(UsrAttrs::decode(raw), want, "raw {raw:#x}");
        }
    }

    #[test]
    fn encode_keeps_foreign_bits() {
        let foreign = (1u64 << 63) | (1 << 60) | (1 << 57) | (1 << 2) | (1 << 0) | (0xabc << 20);
        for p in 0..=15 {
            for t in 0..=15 {
                for s in [false, true] {
                    let a = UsrAttrs::new(p, t, s);
                    let raw = a.encode(foreign | (0x1ff << 48));
                    assert_eq!(UsrAttrs::decode(raw), a);
                    assert_eq!(raw & !(0x1ff << 48), foreign);
                }
            }
        }
    }

    #[test]
    fn encode_clamps() {
        assert_eq!(
            UsrAttrs::decode(UsrAttrs::new(200, 16, true).encode(0)),
            UsrAttrs::new(15, 15, true)
        );
    }

    #[test]
    fn bootable_matches_gptprio() {
        assert!(!UsrAttrs::new(0, 1, true).bootable());
        assert!(!UsrAttrs::new(3, 0, false).bootable());
        assert!(UsrAttrs::new(1, 0, true).bootable());
        assert!(UsrAttrs::new(1, 1, false).bootable());
    }
}
