//! Reading and writing the GPT the way cgpt and GRUB do.
//!
//! Reads validate each copy on its own (header CRC, cgpt's header limits, array CRC,
//! entry bounds) and fall back to the backup when the primary is bad, recording which
//! copy was used. Writes go backup first, fsync, then primary, fsync (GRUB's
//! `grub_gpt_write` order), so a power cut leaves at least one valid copy. Serialisation
//! and CRCs come from gptman; the copy selection and write order are ours because
//! gptman neither reports which copy it used nor orders or syncs its writes.

use crate::disk::fail;
use crate::types::{attrs::UsrAttrs, Slot};
use anyhow::{bail, Context, Result};
use gptman::GPTHeader;
use serde::Serialize;
use std::fs::File;
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

/// A partition table as read: the entry array of the copy that validated (raw bytes,
/// so a write changes exactly the bits it means to), both headers where valid, and what
/// was wrong with the rest.
#[derive(Clone, Debug)]
pub struct Table {
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub used: Copy,
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

/// One 128-byte entry of the array (UEFI spec table 5-6).
#[derive(Clone, Copy)]
struct Entry<'a>(&'a [u8]);

impl Entry<'_> {
    fn type_guid(&self) -> &[u8] {
        &self.0[0..16]
    }
    fn used(&self) -> bool {
        self.type_guid().iter().any(|&b| b != 0)
    }
    fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.0[o..o + 8].try_into().expect("8 bytes"))
    }
    fn start(&self) -> u64 {
        self.u64_at(32)
    }
    fn end(&self) -> u64 {
        self.u64_at(40)
    }
    fn attributes(&self) -> u64 {
        self.u64_at(48)
    }
    fn unique_guid(&self) -> [u8; 16] {
        self.0[16..32].try_into().expect("16 bytes")
    }
    fn name(&self) -> String {
        let units = self.0[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0);
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

fn entries(array: &[u8]) -> impl Iterator<Item = (u32, Entry<'_>)> {
    array
        .chunks_exact(ENTRY_SIZE as usize)
        .enumerate()
        .map(|(i, e)| (i as u32 + 1, Entry(e)))
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
    let array_end = h.partition_entry_lba.saturating_add(array_sectors(h, ss));
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
    // cgpt's CheckHeader: the usable range leaves room for both arrays at their usual
    // places, so either copy can always be rebuilt from the other.
    let len = array_sectors(h, ss);
    if h.first_usable_lba < 2 + len || h.last_usable_lba + 1 + len >= disk_sectors {
        return Err(format!(
            "usable range {}..={} leaves no room for both {len}-sector partition arrays on a disk of {disk_sectors} sectors",
            h.first_usable_lba, h.last_usable_lba
        ));
    }
    // GRUB's grub_gpt_check_primary/backup: each copy's header and array lie outside the
    // usable range, on its own side of it. A copy that GRUB rejects must not be the one
    // abguard reads, or the two would decide from different tables.
    let (first, last) = (h.first_usable_lba, h.last_usable_lba);
    let (array_ok, other_ok) = if at_lba == 1 {
        (array_end <= first, h.backup_lba > last)
    } else {
        // (an array between the usable range and the header puts the header past it)
        (
            h.partition_entry_lba > last && array_end <= at_lba,
            h.backup_lba < first,
        )
    };
    if !array_ok {
        return Err(format!(
            "partition array at LBA {}..{array_end} overlaps the usable range {first}..={last} or its header",
            h.partition_entry_lba
        ));
    }
    if !other_ok {
        return Err(format!(
            "header at LBA {at_lba} or its other copy at LBA {} lies inside the usable range {first}..={last}",
            h.backup_lba
        ));
    }
    Ok(())
}

/// The fields two copies' headers must share (cgpt's HeaderFieldsSame, less the array
/// CRC, which is compared on its own) that differ between `a` and `b`.
fn differing(a: &GPTHeader, b: &GPTHeader) -> Vec<&'static str> {
    [
        (a.first_usable_lba != b.first_usable_lba, "first usable LBA"),
        (a.last_usable_lba != b.last_usable_lba, "last usable LBA"),
        (a.disk_guid != b.disk_guid, "disk GUID"),
        (
            a.number_of_partition_entries != b.number_of_partition_entries,
            "number of entries",
        ),
        (
            a.size_of_partition_entry != b.size_of_partition_entry,
            "entry size",
        ),
    ]
    .into_iter()
    .filter_map(|(differs, name)| differs.then_some(name))
    .collect()
}

fn array_sectors(h: &GPTHeader, ss: u64) -> u64 {
    (u64::from(h.number_of_partition_entries) * u64::from(h.size_of_partition_entry)).div_ceil(ss)
}

/// Entries must lie inside the usable range and must not overlap (cgpt's sanity check).
fn check_entries(h: &GPTHeader, array: &[u8]) -> Result<(), String> {
    // two slots with one PARTUUID make verity.usr=PARTUUID= ambiguous (cgpt refuses too)
    let mut guids: Vec<(u32, [u8; 16])> = entries(array)
        .filter(|(_, e)| e.used())
        .map(|(n, e)| (n, e.unique_guid()))
        .collect();
    guids.sort_by_key(|&(_, g)| g);
    if let Some(w) = guids.windows(2).find(|w| w[0].1 == w[1].1) {
        return Err(format!(
            "partitions {} and {} share the unique GUID {}",
            w[0].0.min(w[1].0),
            w[0].0.max(w[1].0),
            guid_string(&w[0].1)
        ));
    }
    let mut used: Vec<(u32, u64, u64)> = entries(array)
        .filter(|(_, e)| e.used())
        .map(|(n, e)| (n, e.start(), e.end()))
        .collect();
    for &(n, start, end) in &used {
        if start > end || start < h.first_usable_lba || end > h.last_usable_lba {
            return Err(format!(
                "partition {n} spans LBA {start}..={end}, outside the usable range {}..={}",
                h.first_usable_lba, h.last_usable_lba
            ));
        }
    }
    used.sort_by_key(|&(_, start, _)| start);
    for w in used.windows(2) {
        if w[1].1 <= w[0].2 {
            return Err(format!("partitions {} and {} overlap", w[0].0, w[1].0));
        }
    }
    Ok(())
}

/// CRC-32 as UEFI uses it; the slice-by-16 table is built at compile time.
const CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

type CopyRead = Result<(GPTHeader, Result<Vec<u8>, String>), String>;

/// One copy: the header (gptman checks signature, revision, size and CRC; we add cgpt's
/// limits), then its array in one read with the CRC over the raw bytes.
fn read_copy<D: Read + Seek + ?Sized>(
    dev: &mut D,
    lba: u64,
    disk_sectors: u64,
    ss: u64,
) -> CopyRead {
    dev.seek(SeekFrom::Start(lba * ss))
        .map_err(|e| e.to_string())?;
    let h = GPTHeader::read_from(dev).map_err(|e| match e {
        gptman::Error::InvalidSignature => "no GPT signature".to_string(),
        gptman::Error::InvalidChecksum(..) => "header CRC mismatch".to_string(),
        gptman::Error::InvalidHeaderSize => format!("header size is not {HEADER_SIZE}"),
        other => other.to_string(),
    })?;
    check_header(&h, lba, disk_sectors, ss)?;
    let mut array = vec![0u8; (h.number_of_partition_entries * h.size_of_partition_entry) as usize];
    let read = dev
        .seek(SeekFrom::Start(h.partition_entry_lba * ss))
        .and_then(|_| dev.read_exact(&mut array))
        .map_err(|e| format!("reading the partition array: {e}"));
    let array = read.and_then(|()| {
        if CRC32.checksum(&array) != h.partition_entry_array_crc32 {
            return Err("partition array CRC mismatch".to_string());
        }
        check_entries(&h, &array).map(|()| array)
    });
    Ok((h, array))
}

/// Serves reads from two prefetched windows, the start and the end of the disk, where
/// both GPT copies normally live: a few large reads instead of hundreds of small ones.
struct Prefetched<'a, D: ?Sized> {
    dev: &'a mut D,
    pos: u64,
    windows: [(u64, Vec<u8>); 2],
}

impl<'a, D: Read + Seek + ?Sized> Prefetched<'a, D> {
    fn new(dev: &'a mut D, len: u64, ss: u64) -> io::Result<Self> {
        // protective MBR + header + a 16 KiB array, and the same at the end
        let want = (2 + u64::from(MAX_ENTRIES * ENTRY_SIZE).div_ceil(ss)) * ss;
        let head_len = want.min(len);
        let tail_start = len.saturating_sub(want);
        let mut read_at = |at: u64, n: u64| -> io::Result<Vec<u8>> {
            let mut buf = vec![0; n as usize];
            dev.seek(SeekFrom::Start(at))?;
            dev.read_exact(&mut buf)?;
            Ok(buf)
        };
        let head = read_at(0, head_len)?;
        let tail = read_at(tail_start, len - tail_start)?;
        Ok(Prefetched {
            dev,
            pos: 0,
            windows: [(0, head), (tail_start, tail)],
        })
    }
}

impl<D: Read + Seek + ?Sized> Read for Prefetched<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for (start, data) in &self.windows {
            let end = start + data.len() as u64;
            if self.pos >= *start && self.pos + buf.len() as u64 <= end {
                let off = (self.pos - start) as usize;
                buf.copy_from_slice(&data[off..off + buf.len()]);
                self.pos += buf.len() as u64;
                return Ok(buf.len());
            }
        }
        self.dev.seek(SeekFrom::Start(self.pos))?;
        let n = self.dev.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: Read + Seek + ?Sized> Seek for Prefetched<'_, D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            other => self.dev.seek(other)?,
        };
        Ok(self.pos)
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
            Copy::Primary => self.primary.as_ref(),
            Copy::Backup => self.backup.as_ref(),
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
            Copy::Primary => [("backup", &backup), ("primary", &primary)],
            Copy::Backup => [("primary", &primary), ("backup", &backup)],
        };
        for (n, (name, header)) in order.into_iter().enumerate() {
            write_copy(dev, header, &self.array, crc, ss)
                .with_context(|| format!("writing the {name} GPT"))?;
            dev.flush_to_media()
                .with_context(|| format!("flushing the {name} GPT"))?;
            fail::point(if n == 0 {
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
    fail::point("gpt-between-array-and-header");
    dev.seek(SeekFrom::Start(h.primary_lba * ss))?;
    dev.write_all(&encode_header(h, crc))?;
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

    /// Each placement rule of GRUB's and cgpt's header checks, on a 133,120-sector disk
    /// laid out as sgdisk does (arrays at 2 and 133,087, usable 34..=133,086).
    #[test]
    fn copies_grub_or_cgpt_reject_are_rejected() {
        const N: u64 = 133_120;
        let header = |at: u64, other: u64, entries: u64, first: u64, last: u64| GPTHeader {
            signature: *b"EFI PART",
            revision: [0, 0, 1, 0],
            header_size: HEADER_SIZE,
            crc32_checksum: 0,
            reserved: [0; 4],
            primary_lba: at,
            backup_lba: other,
            first_usable_lba: first,
            last_usable_lba: last,
            disk_guid: [7; 16],
            partition_entry_lba: entries,
            number_of_partition_entries: 128,
            size_of_partition_entry: ENTRY_SIZE,
            partition_entry_array_crc32: 0,
        };
        let primary = |entries, first, last| header(1, N - 1, entries, first, last);
        let backup = |entries, first, last| header(N - 1, 1, entries, first, last);
        let check = |h: GPTHeader| check_header(&h, h.primary_lba, N, 512);
        // (header, the words of the rejection, or None when it is valid)
        let cases = [
            (primary(2, 34, 133_086), None),
            (backup(133_087, 34, 133_086), None),
            // a primary array elsewhere before the usable range is fine for both
            (primary(10, 42, 133_086), None),
            // GRUB: the primary array must end before the usable range starts
            (primary(3, 34, 133_086), Some("overlaps the usable range")),
            // GRUB: the backup array must start after the usable range, end before its header
            (
                backup(133_000, 34, 133_086),
                Some("overlaps the usable range"),
            ),
            (backup(133_050, 34, 133_040), None),
            (backup(133_088, 34, 133_040), Some("or its header")),
            // GRUB: each header's other copy is on the other side of the usable range
            (
                header(1, 133_000, 2, 34, 133_086),
                Some("lies inside the usable range"),
            ),
            (
                header(N - 1, 40, 133_087, 34, 133_086),
                Some("lies inside the usable range"),
            ),
            // cgpt: room for both 32-sector arrays at their usual places
            (primary(2, 33, 133_086), Some("leaves no room")),
            (primary(2, 34, 133_087), Some("leaves no room")),
            (backup(133_087, 20, 133_086), Some("leaves no room")),
        ];
        for (h, want) in cases {
            let what = format!(
                "{} at {} entries at {}",
                h.first_usable_lba, h.primary_lba, h.partition_entry_lba
            );
            match (check(h), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn tiny_inputs_are_errors_not_panics() {
        for len in [0usize, 1, 511, 512, 1024, 1535, 4096, 40 * 1024] {
            let mut c = io::Cursor::new(vec![0u8; len]);
            assert!(Table::read(&mut c, 512).is_err(), "len {len}");
        }
    }
}
