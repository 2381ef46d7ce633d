//! The one path every GPT change takes: open writable, lock the whole disk, re-read,
//! change the slots, write in GRUB's order ([`crate::disk::gpt::Table::write`]). Verbs, the gate and the
//! initrd all come through here.

use crate::decide::ab;
use crate::disk::gpt::{Disk, Table};
use crate::disk::lock;
use crate::types::event::Action;
use crate::types::Slot;
use anyhow::{anyhow, Context, Result};
use std::path::Path;

/// Lock the disk, re-read the table through the writable handle, apply `change` to the
/// slots and write the result; nothing is written when `change` refuses, or when it
/// changes nothing and the table needs no repair. `change`'s error type is the
/// caller's, so a typed refusal reaches it intact.
pub fn change_slots<E, F>(path: &Path, change: F) -> Result<(Vec<Slot>, Vec<Slot>), E>
where
    E: From<anyhow::Error>,
    F: FnOnce(&mut Vec<Slot>) -> Result<(), E>,
{
    // the read happens under the lock, so no other writer's change is lost between it
    // and the write
    let disk = Disk::open(path, true)?;
    let ss = disk.sector_size;
    let mut file = lock::exclusive(disk.file, path, lock::WAIT)?;
    let mut table = Table::read(&mut *file, ss)
        .with_context(|| format!("reading the GPT of {}", path.display()))?;
    let before = table.slots();
    let mut after = before.clone();
    change(&mut after)?;
    if after != before || table.needs_repair() {
        for p in &table.problems {
            log::warn!("{}: repairing: {p}", path.display());
        }
        table.set_slots(&after);
        table
            .write(&mut *file)
            .with_context(|| format!("writing the GPT of {}", path.display()))?;
    }
    Ok((before, after))
}

/// Give up on the booted slot (tries=0, successful=0) so GRUB falls back: re-read
/// through a writable handle, refuse if the table changed since `probed` was read or if
/// nothing else would stay bootable, then write. The one path every rollback takes.
pub fn spend_booted(path: &Path, probed: &[Slot], booted: usize) -> Result<Action> {
    let (_, slots) = change_slots(path, |slots: &mut Vec<Slot>| -> Result<()> {
        if slots != probed {
            return Err(anyhow!("the partition table changed since it was read"));
        }
        ab::spend_slot(slots, booted)?;
        Ok(())
    })?;
    let s = &slots[booted];
    Ok(Action::Spent {
        label: s.label.clone(),
        partition: s.partition,
    })
}

/// Read the GPT of `path`, read-only: every write goes through [`change_slots`].
pub fn read_table(path: &Path) -> Result<(Disk, Table)> {
    let mut disk = Disk::open(path, false)?;
    let ss = disk.sector_size;
    let table = Table::read(&mut disk.file, ss)
        .with_context(|| format!("reading the GPT of {}", path.display()))?;
    Ok((disk, table))
}

/// Un-stage `staged` (tries=0, successful=0, as [`ab::spend_slot`]) so no reboot boots
/// it: only while it is still the staged slot exactly as it was read, never leaving
/// nothing bootable. The one path `verify --unstage-on-failure` and the loop guard take.
/// Returns the slots after, and the action saying which slot the disk stays on.
pub fn unstage(path: &Path, staged: &Slot) -> Result<(Vec<Slot>, Action)> {
    let (_, after) = change_slots(path, |slots: &mut Vec<Slot>| -> Result<()> {
        let i = ab::find_partition(slots, staged.partition)?;
        if slots[i] != *staged || ab::staged(slots) != Some(i) {
            return Err(anyhow!(
                "{} is not the staged slot any more (the table changed since it was read)",
                staged.label
            ));
        }
        ab::spend_slot(slots, i)?;
        Ok(())
    })?;
    let stays_on: Vec<String> = after
        .iter()
        .filter(|s| s.partition != staged.partition)
        .map(|s| format!("{} {}", s.label, s.attrs))
        .collect();
    let action = Action::Unstaged {
        label: staged.label.clone(),
        partition: staged.partition,
        stays_on: stays_on.join(", "),
    };
    Ok((after, action))
}
