//! One GPT copy as cgpt and GRUB read it: the header's limits, the entry array and its
//! checks, the CRC, and the prefetched windows both copies are read through.

use anyhow::Result;
use gptman::GPTHeader;
use std::io::{self, Read, Seek, SeekFrom};

/// cgpt accepts exactly this entry size and at most this many entries (16 KiB array).
pub(crate) const ENTRY_SIZE: u32 = 128;
pub(crate) const MAX_ENTRIES: u32 = 128;
pub(crate) const HEADER_SIZE: u32 = 92;

/// One 128-byte entry of the array (UEFI spec table 5-6).
#[derive(Clone, Copy)]
pub(crate) struct Entry<'a>(&'a [u8]);

impl Entry<'_> {
    pub(crate) fn type_guid(&self) -> &[u8] {
        &self.0[0..16]
    }
    pub(crate) fn used(&self) -> bool {
        self.type_guid().iter().any(|&b| b != 0)
    }
    pub(crate) fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.0[o..o + 8].try_into().expect("8 bytes"))
    }
    pub(crate) fn start(&self) -> u64 {
        self.u64_at(32)
    }
    pub(crate) fn end(&self) -> u64 {
        self.u64_at(40)
    }
    pub(crate) fn attributes(&self) -> u64 {
        self.u64_at(48)
    }
    pub(crate) fn unique_guid(&self) -> [u8; 16] {
        self.0[16..32].try_into().expect("16 bytes")
    }
    pub(crate) fn name(&self) -> String {
        let units = self.0[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0);
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

pub(crate) fn entries(array: &[u8]) -> impl Iterator<Item = (u32, Entry<'_>)> {
    array
        .chunks_exact(ENTRY_SIZE as usize)
        .enumerate()
        .map(|(i, e)| (i as u32 + 1, Entry(e)))
}

/// Why one copy was rejected.
pub(crate) fn check_header(
    h: &GPTHeader,
    at_lba: u64,
    disk_sectors: u64,
    ss: u64,
) -> Result<(), String> {
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
pub(crate) fn differing(a: &GPTHeader, b: &GPTHeader) -> Vec<&'static str> {
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

pub(crate) fn array_sectors(h: &GPTHeader, ss: u64) -> u64 {
    (u64::from(h.number_of_partition_entries) * u64::from(h.size_of_partition_entry)).div_ceil(ss)
}

/// Entries must lie inside the usable range and must not overlap (cgpt's sanity check).
pub(crate) fn check_entries(h: &GPTHeader, array: &[u8]) -> Result<(), String> {
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
pub(crate) const CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

pub(crate) type CopyRead = Result<(GPTHeader, Result<Vec<u8>, String>), String>;

/// One copy: the header (gptman checks signature, revision, size and CRC; we add cgpt's
/// limits), then its array in one read with the CRC over the raw bytes.
pub(crate) fn read_copy<D: Read + Seek + ?Sized>(
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
pub(crate) struct Prefetched<'a, D: ?Sized> {
    dev: &'a mut D,
    pos: u64,
    windows: [(u64, Vec<u8>); 2],
}

impl<'a, D: Read + Seek + ?Sized> Prefetched<'a, D> {
    pub(crate) fn new(dev: &'a mut D, len: u64, ss: u64) -> io::Result<Self> {
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
