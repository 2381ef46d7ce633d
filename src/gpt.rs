//! Reading and writing the GPT the way cgpt and GRUB do.
//!
//! Reads validate each copy on its own (header CRC, cgpt's header limits, array CRC,
//! entry bounds) and fall back to the backup when the primary is bad, recording which
//! copy was used. Writes go backup first, fsync, then primary, fsync (GRUB's
//! `grub_gpt_write` order), so a power cut leaves at least one valid copy. Serialisation
//! and CRCs come from gptman; the copy selection and write order are ours because
//! gptman neither reports which copy it used nor orders or syncs its writes.

use crate::ab::Slot;
use crate::attrs::UsrAttrs;
use crate::fail;
use anyhow::{bail, Context, Result};
use gptman::{GPTHeader, GPTPartitionEntry};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Flatcar's USR type, 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6, in on-disk byte order.
pub const USR_TYPE: [u8; 16] = guid_bytes("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6");
/// cgpt accepts exactly this entry size and at most this many entries (16 KiB array).
const ENTRY_SIZE: u32 = 128;
const MAX_ENTRIES: u32 = 128;
const HEADER_SIZE: u32 = 92;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Copy {
    Primary,
    Backup,
}

impl std::fmt::Display for Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Copy::Primary => "primary",
            Copy::Backup => "backup",
        })
    }
}

/// A partition table as read: the entries of the copy that validated, both headers
/// where valid, and what was wrong with the rest.
#[derive(Clone, Debug)]
pub struct Table {
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub used: Copy,
    primary: Option<GPTHeader>,
    backup: Option<GPTHeader>,
    entries: Vec<GPTPartitionEntry>,
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
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
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

/// Why one copy was rejected.
fn check_header(h: &GPTHeader, at_lba: u64, disk_sectors: u64, ss: u64) -> Result<(), String> {
    if h.size_of_partition_entry != ENTRY_SIZE {
        return Err(format!(
            "partition entry size {} (only {ENTRY_SIZE} is valid for cgpt and GRUB)",
            h.size_of_partition_entry
        ));
    }
    if h.number_of_partition_entries == 0 || h.number_of_partition_entries > MAX_ENTRIES {
        return Err(format!(
            "{} partition entries (cgpt accepts 1..={MAX_ENTRIES})",
            h.number_of_partition_entries
        ));
    }
    if h.primary_lba != at_lba {
        return Err(format!(
            "header says it lives at LBA {} but was found at LBA {at_lba}",
            h.primary_lba
        ));
    }
    let array_sectors = array_sectors(h, ss);
    let array_end = h.partition_entry_lba.saturating_add(array_sectors);
    if h.partition_entry_lba < 2 || array_end > disk_sectors {
        return Err(format!(
            "partition array at LBA {} does not fit on a disk of {disk_sectors} sectors",
            h.partition_entry_lba
        ));
    }
    if h.first_usable_lba > h.last_usable_lba || h.last_usable_lba >= disk_sectors {
        return Err(format!(
            "usable range {}..={} does not fit on a disk of {disk_sectors} sectors",
            h.first_usable_lba, h.last_usable_lba
        ));
    }
    Ok(())
}

fn array_sectors(h: &GPTHeader, ss: u64) -> u64 {
    (u64::from(h.number_of_partition_entries) * u64::from(h.size_of_partition_entry)).div_ceil(ss)
}

/// Entries must lie inside the usable range and must not overlap (cgpt's sanity check).
fn check_entries(h: &GPTHeader, entries: &[GPTPartitionEntry]) -> Result<(), String> {
    let mut used: Vec<(usize, &GPTPartitionEntry)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_used())
        .collect();
    for (i, e) in &used {
        if e.starting_lba > e.ending_lba
            || e.starting_lba < h.first_usable_lba
            || e.ending_lba > h.last_usable_lba
        {
            return Err(format!(
                "partition {} spans LBA {}..={}, outside the usable range {}..={}",
                i + 1,
                e.starting_lba,
                e.ending_lba,
                h.first_usable_lba,
                h.last_usable_lba
            ));
        }
    }
    used.sort_by_key(|(_, e)| e.starting_lba);
    for w in used.windows(2) {
        if w[1].1.starting_lba <= w[0].1.ending_lba {
            return Err(format!(
                "partitions {} and {} overlap",
                w[0].0 + 1,
                w[1].0 + 1
            ));
        }
    }
    Ok(())
}

fn read_copy<D: Read + Seek + ?Sized>(
    dev: &mut D,
    lba: u64,
    disk_sectors: u64,
    ss: u64,
) -> Result<(GPTHeader, Result<Vec<GPTPartitionEntry>, String>), String> {
    dev.seek(SeekFrom::Start(lba * ss))
        .map_err(|e| e.to_string())?;
    let h = GPTHeader::read_from(dev).map_err(|e| match e {
        gptman::Error::InvalidSignature => "no GPT signature".to_string(),
        gptman::Error::InvalidChecksum(..) => "header CRC mismatch".to_string(),
        gptman::Error::InvalidHeaderSize => format!("header size is not {HEADER_SIZE}"),
        other => other.to_string(),
    })?;
    check_header(&h, lba, disk_sectors, ss)?;
    let entries = h
        .read_partitions(dev, ss)
        .map_err(|e| match e {
            gptman::Error::InvalidPartitionEntryArrayChecksum(..) => {
                "partition array CRC mismatch".to_string()
            }
            other => other.to_string(),
        })
        .and_then(|entries| check_entries(&h, &entries).map(|()| entries));
    Ok((h, entries))
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
        let mut problems = Vec::new();
        let primary = read_copy(dev, 1, disk_sectors, ss);
        let mut backup_lbas = vec![disk_sectors - 1];
        if let Ok((h, _)) = &primary {
            if h.backup_lba < disk_sectors && h.backup_lba != disk_sectors - 1 && h.backup_lba > 1 {
                backup_lbas.insert(0, h.backup_lba);
            }
        }
        let mut backup = Err("not found".to_string());
        for lba in backup_lbas {
            backup = read_copy(dev, lba, disk_sectors, ss);
            if backup.is_ok() {
                break;
            }
        }
        let mut split = |name: &str, r: Result<(GPTHeader, Result<Vec<_>, String>), String>| match r
        {
            Ok((h, Ok(e))) => (Some(h), Some(e)),
            Ok((h, Err(why))) => {
                problems.push(format!("{name} partition array: {why}"));
                (Some(h), None)
            }
            Err(why) => {
                problems.push(format!("{name} header: {why}"));
                (None, None)
            }
        };
        let (ph, pe) = split("primary", primary);
        let (bh, be) = split("backup", backup);
        let (used, entries) = match (pe, be) {
            (Some(p), b) => {
                if b.as_ref().is_some_and(|b| *b != p) {
                    problems.push("backup partition array differs from the primary".into());
                }
                (Copy::Primary, p)
            }
            (None, Some(b)) => (Copy::Backup, b),
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
            entries,
            problems,
        })
    }

    /// All partitions with the USR type, in partition order.
    pub fn slots(&self) -> Vec<Slot> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.partition_type_guid == USR_TYPE)
            .map(|(i, e)| Slot {
                label: e.partition_name.as_str().to_string(),
                partition: i as u32 + 1,
                partuuid: guid_string(&e.unique_partition_guid),
                attrs: UsrAttrs::decode(e.attribute_bits),
            })
            .collect()
    }

    /// The raw 64-bit attribute field of partition `n` (1-based).
    pub fn raw_attributes(&self, n: u32) -> Option<u64> {
        let e = self.entries.get(n.checked_sub(1)? as usize)?;
        e.is_used().then_some(e.attribute_bits)
    }

    /// Which copies a write would rebuild rather than update.
    pub fn needs_repair(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Apply the USR fields of `slots` to the entries, changing only those bits.
    pub fn set_slots(&mut self, slots: &[Slot]) {
        for s in slots {
            let e = &mut self.entries[s.partition as usize - 1];
            e.attribute_bits = s.attrs.encode(e.attribute_bits);
        }
    }

    /// Both headers as they will be written: valid ones as read, a missing one rebuilt
    /// from the other the way cgpt repair does (backup at the last sector).
    fn headers_for_write(&self) -> (GPTHeader, GPTHeader) {
        let last = self.disk_sectors - 1;
        let template = self
            .primary
            .as_ref()
            .or(self.backup.as_ref())
            .expect("a valid copy was read");
        let mut primary = self.primary.clone().unwrap_or_else(|| {
            let mut h = template.clone();
            h.primary_lba = 1;
            h.backup_lba = last;
            h.partition_entry_lba = 2;
            h
        });
        let mut backup = self.backup.clone().unwrap_or_else(|| {
            let mut h = template.clone();
            h.primary_lba = last;
            h.backup_lba = 1;
            h.partition_entry_lba = last - array_sectors(template, self.sector_size);
            h
        });
        // A grown disk: GRUB moves the backup to the new end, so readers that look for
        // it at the last sector (cgpt, GRUB without a primary) still find it.
        if backup.primary_lba != last {
            backup.primary_lba = last;
            backup.partition_entry_lba = last - array_sectors(&backup, self.sector_size);
        }
        primary.backup_lba = last;
        backup.backup_lba = 1;
        (primary, backup)
    }

    /// Write both copies: backup array and header, flush, primary array and header, flush.
    pub fn write<D: BlockDev + ?Sized>(&self, dev: &mut D) -> Result<()> {
        let (primary, backup) = self.headers_for_write();
        write_copy(dev, backup, &self.entries, self.sector_size)
            .context("writing the backup GPT")?;
        dev.flush_to_media().context("flushing the backup GPT")?;
        fail::point("gpt-after-backup");
        write_copy(dev, primary, &self.entries, self.sector_size)
            .context("writing the primary GPT")?;
        dev.flush_to_media().context("flushing the primary GPT")?;
        fail::point("gpt-after-primary");
        Ok(())
    }
}

/// Where gptman's serialisation of one copy lands, so we can write it in our order:
/// the array first, then the header. A torn copy then fails its header's array CRC
/// instead of pairing a new header with an old array.
struct Capture {
    pos: u64,
    header_at: u64,
    array_at: u64,
    header: Vec<u8>,
    array: Vec<u8>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (base, region) = if self.pos >= self.array_at
            && self.pos + buf.len() as u64 <= self.array_at + self.array.len() as u64
        {
            (self.array_at, &mut self.array)
        } else if self.pos >= self.header_at
            && self.pos + buf.len() as u64 <= self.header_at + self.header.len() as u64
        {
            (self.header_at, &mut self.header)
        } else {
            return Err(io::Error::other(
                "GPT serialisation outside the header and array",
            ));
        };
        let off = (self.pos - base) as usize;
        region[off..off + buf.len()].copy_from_slice(buf);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Capture {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Start(p) => self.pos = p,
            _ => return Err(io::Error::other("capture only seeks from the start")),
        }
        Ok(self.pos)
    }
}

fn write_copy<D: BlockDev + ?Sized>(
    dev: &mut D,
    mut header: GPTHeader,
    entries: &[GPTPartitionEntry],
    ss: u64,
) -> Result<()> {
    let mut cap = Capture {
        pos: 0,
        header_at: header.primary_lba * ss,
        array_at: header.partition_entry_lba * ss,
        header: vec![0; HEADER_SIZE as usize],
        array: vec![
            0;
            (header.number_of_partition_entries * header.size_of_partition_entry) as usize
        ],
    };
    header
        .write_into(&mut cap, ss, entries)
        .map_err(|e| anyhow::anyhow!("serialising the GPT: {e}"))?;
    dev.seek(SeekFrom::Start(cap.array_at))?;
    dev.write_all(&cap.array)?;
    fail::point("gpt-between-array-and-header");
    dev.seek(SeekFrom::Start(cap.header_at))?;
    dev.write_all(&cap.header)?;
    Ok(())
}

/// GPT GUIDs store the first three fields little-endian.
pub const fn guid_bytes(s: &str) -> [u8; 16] {
    let s = s.as_bytes();
    let mut hex = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < s.len() {
        if s[i] != b'-' {
            let v = match s[i] {
                b'0'..=b'9' => s[i] - b'0',
                b'a'..=b'f' => s[i] - b'a' + 10,
                b'A'..=b'F' => s[i] - b'A' + 10,
                _ => panic!("bad hex digit in GUID"),
            };
            hex[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
            n += 1;
        }
        i += 1;
    }
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut out = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        out[j] = hex[order[j]];
        j += 1;
    }
    out
}

pub fn guid_string(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip() {
        let s = "7130c94a-213a-4e5a-8e26-6cce9662f132";
        assert_eq!(guid_string(&guid_bytes(s)), s);
        assert_eq!(guid_string(&guid_bytes(&s.to_uppercase())), s);
        // on-disk order of the USR type, as sgdisk writes it
        assert_eq!(&USR_TYPE[..4], &[0xf4, 0xf5, 0xfb, 0x5d]);
    }

    #[test]
    fn tiny_inputs_are_errors_not_panics() {
        for len in [0usize, 1, 511, 512, 1024, 1535, 4096, 40 * 1024] {
            let mut c = io::Cursor::new(vec![0u8; len]);
            assert!(Table::read(&mut c, 512).is_err(), "len {len}");
        }
    }
}
