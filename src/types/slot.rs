//! A USR slot as the GPT holds it, the booted one as recorded, and what backs /usr.

use crate::types::attrs::UsrAttrs;
use serde::Serialize;

/// One partition with Flatcar's USR type GUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub label: String,
    /// 1-based partition number, as in /dev/vda3 and `cgpt -i`.
    pub partition: u32,
    /// Lower-case, as GRUB passes it on the command line.
    pub partuuid: String,
    #[serde(flatten)]
    pub attrs: UsrAttrs,
}

/// Which partition really backs /usr, as sysfs says (see [`crate::probe::sysfs`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backing {
    /// Device names from the /usr device down to the partition, e.g. ["dm-0", "vda3"].
    pub chain: Vec<String>,
    /// Partition number (the `partition` attribute).
    pub partition: u32,
    /// Kernel name of the whole disk, e.g. "vda", "nvme0n1", "loop0".
    pub disk: String,
}

/// The booted slot as records carry it.
#[derive(Clone, Debug, Serialize)]
pub struct Booted {
    pub partition: u32,
    pub label: String,
    pub partuuid: String,
    /// "cmdline+sysfs" when both agreed, else the one source that was available.
    pub source: String,
}

impl Booted {
    /// The record of `slot` having booted, told by `source`.
    pub fn of(slot: &Slot, source: &str) -> Booted {
        Booted {
            partition: slot.partition,
            label: slot.label.clone(),
            partuuid: slot.partuuid.clone(),
            source: source.to_string(),
        }
    }
}
