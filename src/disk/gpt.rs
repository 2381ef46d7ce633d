//! Reading and writing the GPT the way cgpt and GRUB do.
//!
//! Reads validate each copy on its own (header CRC, cgpt's header limits, array CRC,
//! entry bounds) and fall back to the backup when the primary is bad, recording which
//! copy was used. Writes flush each copy before the next: the backup first, then the
//! primary (GRUB's `grub_gpt_write` order), or the damaged copy first when the table was
//! read from the backup ([`Table::write`]), so a power cut leaves a valid copy. Serialisation
//! and CRCs come from gptman; the copy selection and write order are ours because
//! gptman neither reports which copy it used nor orders or syncs its writes.

use crate::disk::failpoint;
use crate::disk::layout::{
    array_sectors, differing, entries, guid_bytes, guid_string, read_copy, CopyRead, Prefetched,
    CRC32, ENTRY_SIZE, HEADER_SIZE,
};
use crate::types::{attrs::UsrAttrs, Slot};
use anyhow::{bail, Context, Result};
use gptman::GPTHeader;
use serde::Serialize;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Flatcar's USR type, 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6, in on-disk byte order.
pub const USR_TYPE: [u8; 16] = guid_bytes("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6");

/// What a disk must offer: positioned I/O plus a durable flush. Tests wrap this to cut
/// power between writes.
pub trait BlockDev: Read + Write + Seek {
    fn flush_to_media(&mut self) -> io::Result<()>;
}

impl BlockDev for File {
    fn flush_to_media(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BlockDev for io::Cursor<T>
where
    io::Cursor<T>: Write,
{
    fn flush_to_media(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Which GPT copy a table was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GptCopy {
    Primary,
    Backup,
}

impl std::fmt::Display for GptCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GptCopy::Primary => "primary",
            GptCopy::Backup => "backup",
        })
    }
}

/// A partition table as read: the entry array of the copy that validated (raw bytes,
/// so a write changes exactly the bits it means to), both headers where valid, and what
/// was wrong with the rest.
#[derive(Clone, Debug)]
pub struct Table {
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub used: GptCopy,
    primary: Option<GPTHeader>,
    backup: Option<GPTHeader>,
    array: Vec<u8>,
    /// One line per defect found, e.g. "primary header: CRC mismatch".
    pub problems: Vec<String>,
}

/// An open disk or image file, with the sector size the kernel reports.
pub struct Disk {
    pub file: File,
    pub sector_size: u64,
}

impl Disk {
    pub fn open(path: &Path, writable: bool) -> Result<Disk> {
        let file = crate::safefs::open_file(
            path,
            writable,
            crate::safefs::Kind::RegularOrBlock,
            nix::fcntl::OFlag::empty(),
        )?;
        let sector_size = sector_size(&file)
            .with_context(|| format!("reading the logical sector size of {}", path.display()))?;
        Ok(Disk { file, sector_size })
    }
}

nix::ioctl_read_bad!(blksszget, 0x1268, libc_int);
#[allow(non_camel_case_types)]
type libc_int = std::ffi::c_int;

/// BLKSSZGET for block devices; image files are read with 512-byte sectors, as cgpt does.
fn sector_size(file: &File) -> Result<u64> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::io::AsRawFd;
    if !file.metadata()?.file_type().is_block_device() {
        return Ok(512);
    }
    let mut size: libc_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which outlives the call.
    unsafe { blksszget(file.as_raw_fd(), &mut size) }?;
    match size {
        512 | 1024 | 2048 | 4096 => Ok(size as u64),
        other => bail!("unsupported logical sector size {other}"),
    }
}

impl Table {
    /// Read the table: the primary copy when it is whole, else the backup (first where the
    /// primary header says it is, then at the last sector, like GRUB).
    pub fn read<D: Read + Seek + ?Sized>(dev: &mut D, ss: u64) -> Result<Table> {
        let len = dev
            .seek(SeekFrom::End(0))
            .context("finding the disk size")?;
        let disk_sectors = len / ss;
        if disk_sectors < 3 {
            bail!("not a GPT disk: {len} bytes is too small to hold a partition table");
        }
        let mut pre =
            Prefetched::new(dev, len, ss).context("reading the partition table sectors")?;
        let primary = read_copy(&mut pre, 1, disk_sectors, ss);
        let mut backup_lbas = vec![disk_sectors - 1];
        if let Ok((h, _)) = &primary {
            if h.backup_lba < disk_sectors - 1 && h.backup_lba > 1 {
                backup_lbas.insert(0, h.backup_lba);
            }
        }
        let mut backup = Err("not found".to_string());
        for lba in backup_lbas {
            backup = read_copy(&mut pre, lba, disk_sectors, ss);
            if backup.is_ok() {
                break;
            }
        }
        let mut problems = Vec::new();
        let mut split = |name: &str, r: CopyRead| match r {
            Ok((h, Ok(a))) => (Some(h), Some(a)),
            Ok((h, Err(why))) => {
                problems.push(format!("{name} partition array: {why}"));
                (Some(h), None)
            }
            Err(why) => {
                problems.push(format!("{name} header: {why}"));
                (None, None)
            }
        };
        let (ph, pa) = split("primary", primary);
        let (bh, ba) = split("backup", backup);
        if let Some(fields) = ph.as_ref().zip(bh.as_ref()).map(|(p, b)| differing(p, b)) {
            if !fields.is_empty() {
                problems.push(format!(
                    "backup header differs from the primary in {}",
                    fields.join(", ")
                ));
            }
        }
        let (used, array) = match (pa, ba) {
            (Some(p), b) => {
                // both arrays passed their CRCs, so comparing those compares the arrays
                // (musl's byte-wise memcmp over 16 KiB cost more than the whole parse)
                let crcs = ph
                    .as_ref()
                    .zip(bh.as_ref())
                    .map(|(p, b)| (p.partition_entry_array_crc32, b.partition_entry_array_crc32));
                if b.is_some() && crcs.is_some_and(|(p, b)| p != b) {
                    problems.push("backup partition array differs from the primary".into());
                }
                (GptCopy::Primary, p)
            }
            (None, Some(b)) => (GptCopy::Backup, b),
            (None, None) => {
                if ph.is_none()
                    && bh.is_none()
                    && problems.iter().all(|p| p.ends_with("no GPT signature"))
                {
                    bail!("no GPT partition table (neither the primary nor the backup header has the EFI PART signature)");
                }
                bail!("no valid GPT copy: {}", problems.join("; "));
            }
        };
        Ok(Table {
            sector_size: ss,
            disk_sectors,
            used,
            primary: ph,
            backup: bh,
            array,
            problems,
        })
    }

    /// All partitions with the USR type, in partition order.
    pub fn slots(&self) -> Vec<Slot> {
        entries(&self.array)
            .filter(|(_, e)| e.type_guid() == USR_TYPE)
            .map(|(n, e)| Slot {
                label: e.name(),
                partition: n,
                partuuid: guid_string(&e.unique_guid()),
                attrs: UsrAttrs::decode(e.attributes()),
            })
            .collect()
    }

    /// The raw 64-bit attribute field of partition `n` (1-based).
    pub fn raw_attributes(&self, n: u32) -> Option<u64> {
        entries(&self.array)
            .find(|(i, e)| *i == n && e.used())
            .map(|(_, e)| e.attributes())
    }

    /// First and last LBA (inclusive) of partition `n` (1-based).
    pub fn extent(&self, n: u32) -> Option<(u64, u64)> {
        entries(&self.array)
            .find(|(i, e)| *i == n && e.used())
            .map(|(_, e)| (e.start(), e.end()))
    }

    /// Whether a write would also repair a damaged copy.
    pub fn needs_repair(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Apply the USR fields of `slots`: only those nine bits of each attribute field change.
    pub fn set_slots(&mut self, slots: &[Slot]) {
        for s in slots {
            let at = (s.partition as usize - 1) * ENTRY_SIZE as usize + 48;
            let field: &mut [u8] = &mut self.array[at..at + 8];
            let old = u64::from_le_bytes(field.as_ref().try_into().expect("8 bytes"));
            field.copy_from_slice(&s.attrs.encode(old).to_le_bytes());
        }
    }

    /// Both headers as they will be written: valid ones as read and where they are, a
    /// missing one rebuilt from the other the way GRUB and cgpt repair do (a rebuilt
    /// backup at the last sector).
    fn headers_for_write(&self) -> (GPTHeader, GPTHeader) {
        let last = self.disk_sectors - 1;
        let template = match self.used {
            GptCopy::Primary => self.primary.as_ref(),
            GptCopy::Backup => self.backup.as_ref(),
        }
        .expect("the copy used was read with its header");
        // the other header is kept only if it describes the same table as the copy read
        // (found by fuzzing: a 2-entry backup header would have been paired with the
        // 16 KiB array; one with another usable range kept its entries out of range).
        // A header that differs from the copy read is rebuilt like a missing one, as
        // cgpt does (HeaderFieldsSame, then repair from the primary).
        let fits = |h: &GPTHeader| differing(h, template).is_empty();
        let kept_primary = self.primary.clone().filter(fits);
        let kept_backup = self.backup.clone().filter(fits);
        let mut primary = kept_primary.unwrap_or_else(|| {
            let mut h = template.clone();
            h.primary_lba = 1;
            h.partition_entry_lba = 2;
            h
        });
        // A valid backup is rewritten where it is, also on a disk grown after imaging
        // (not in the last sector): GRUB's gptprio.next does that (grub_gpt_write writes
        // each header at its own LBA; only grub_gpt_repair of a missing backup moves it),
        // and moving it would leave the old copy behind, stale but whole. A rebuilt
        // backup goes to the last sector, as grub_gpt_repair and cgpt repair put it.
        let mut backup = kept_backup.unwrap_or_else(|| {
            let mut h = template.clone();
            h.primary_lba = last;
            h.partition_entry_lba = last - array_sectors(&h, self.sector_size);
            h
        });
        primary.backup_lba = backup.primary_lba;
        backup.backup_lba = 1;
        (primary, backup)
    }

    /// Write both copies, each followed by a flush: the backup first, then the primary,
    /// as GRUB does, so a cut leaves the primary intact. When the table was read from
    /// the backup (the primary is damaged), the order turns round: the damaged copy is
    /// repaired first, because overwriting the only valid copy first would let a second
    /// power cut leave no valid table at all (found by tests/model.rs).
    pub fn write<D: BlockDev + ?Sized>(&self, dev: &mut D) -> Result<()> {
        let (primary, backup) = self.headers_for_write();
        let crc = CRC32.checksum(&self.array);
        let ss = self.sector_size;
        let order = match self.used {
            GptCopy::Primary => [("backup", &backup), ("primary", &primary)],
            GptCopy::Backup => [("primary", &primary), ("backup", &backup)],
        };
        for (n, (name, header)) in order.into_iter().enumerate() {
            write_copy(dev, header, &self.array, crc, ss)
                .with_context(|| format!("writing the {name} GPT"))?;
            dev.flush_to_media()
                .with_context(|| format!("flushing the {name} GPT"))?;
            failpoint::point(if n == 0 {
                "gpt-after-first-copy"
            } else {
                "gpt-after-second-copy"
            });
        }
        Ok(())
    }
}

/// The 92-byte header as the UEFI spec lays it out, with both CRCs filled in.
fn encode_header(h: &GPTHeader, array_crc: u32) -> [u8; HEADER_SIZE as usize] {
    let mut b = [0u8; HEADER_SIZE as usize];
    b[0..8].copy_from_slice(&h.signature);
    b[8..12].copy_from_slice(&h.revision);
    b[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    b[20..24].copy_from_slice(&h.reserved);
    b[24..32].copy_from_slice(&h.primary_lba.to_le_bytes());
    b[32..40].copy_from_slice(&h.backup_lba.to_le_bytes());
    b[40..48].copy_from_slice(&h.first_usable_lba.to_le_bytes());
    b[48..56].copy_from_slice(&h.last_usable_lba.to_le_bytes());
    b[56..72].copy_from_slice(&h.disk_guid);
    b[72..80].copy_from_slice(&h.partition_entry_lba.to_le_bytes());
    b[80..84].copy_from_slice(&h.number_of_partition_entries.to_le_bytes());
    b[84..88].copy_from_slice(&h.size_of_partition_entry.to_le_bytes());
    b[88..92].copy_from_slice(&array_crc.to_le_bytes());
    let crc = CRC32.checksum(&b);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One copy, array first: a torn copy then fails its header's array CRC instead of
/// pairing a new header with an old array.
fn write_copy<D: BlockDev + ?Sized>(
    dev: &mut D,
    h: &GPTHeader,
    array: &[u8],
    crc: u32,
    ss: u64,
) -> Result<()> {
    dev.seek(SeekFrom::Start(h.partition_entry_lba * ss))?;
    dev.write_all(array)?;
    failpoint::point("gpt-between-array-and-header");
    dev.seek(SeekFrom::Start(h.primary_lba * ss))?;
    dev.write_all(&encode_header(h, crc))?;
    Ok(())
}

#[cfg(test)]
#[path = "gpt_tests.rs"]
mod tests;
