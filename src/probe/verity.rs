//! Where a USR slot's dm-verity data lives, found the way Flatcar lays it out: the hash
//! tree right after the filesystem in the same partition, starting with a verity
//! superblock, and the root hash as 64 hex characters inside the slot's kernel, where
//! GRUB reads it to build `verity.usrhash=`. No libcryptsetup here: this runs in the
//! static build too.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Flatcar's verity block size (`veritysetup format` with 4 KiB data and hash blocks).
pub const BLOCK: u64 = 4096;
/// Flatcar's hash offset since the 1 GiB /usr (fs_blocks 260094 × 4 KiB); its initrd
/// passes exactly this to `veritysetup open`.
pub const FLATCAR_HASH_OFFSET: u64 = 1_065_345_024;
/// USR-A's partition GUID: GRUB boots `/flatcar/vmlinuz-a` for it, `vmlinuz-b` otherwise.
pub const USR_A_PARTUUID: &str = "7130c94a-213a-4e5a-8e26-6cce9662f132";
/// Where GRUB's verity-hash patch reads the root hash in the kernel image: the unused
/// "rdev" area at 0x40 on x86-64, after the EFI headers (512) on arm64.
pub const KERNEL_HASH_OFFSET: u64 = 0x40;
pub const KERNEL_HASH_OFFSET_ARM64: u64 = 512;
/// The arm64 Image header's magic ("ARM\x64" at 0x38, Documentation/arch/arm64/booting.rst).
const ARM64_IMAGE_MAGIC: (usize, &[u8; 4]) = (0x38, b"ARM\x64");

/// The root-hash offset for this kernel image, from its own header rather than the
/// machine abguard runs on: an x86-64 host checking an arm64 image (or the reverse)
/// must read where that image's GRUB reads.
pub fn kernel_hash_offset(header: &[u8]) -> u64 {
    let (at, magic) = ARM64_IMAGE_MAGIC;
    if header.get(at..at + magic.len()) == Some(&magic[..]) {
        KERNEL_HASH_OFFSET_ARM64
    } else {
        KERNEL_HASH_OFFSET
    }
}
const SIGNATURE: &[u8; 8] = b"verity\0\0";

/// The on-disk verity superblock (`struct verity_sb`, 512 bytes, little-endian).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Superblock {
    pub version: u32,
    pub hash_type: u32,
    pub algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
}

impl Superblock {
    /// Parse and sanity-check a superblock; `None` unless it is one libcryptsetup would load.
    pub fn parse(b: &[u8]) -> Option<Superblock> {
        if b.len() < 512 || &b[..8] != SIGNATURE {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let alg = &b[32..64];
        let alg_len = alg.iter().position(|&c| c == 0).unwrap_or(alg.len());
        let algorithm = std::str::from_utf8(&alg[..alg_len]).ok()?.to_string();
        let sb = Superblock {
            version: u32_at(8),
            hash_type: u32_at(12),
            algorithm,
            data_block_size: u32_at(64),
            hash_block_size: u32_at(68),
            data_blocks: u64::from_le_bytes(b[72..80].try_into().expect("8 bytes")),
        };
        let size_ok = |s: u32| s.is_power_of_two() && (512..=1 << 20).contains(&s);
        (sb.version == 1
            && sb.hash_type <= 1
            && !sb.algorithm.is_empty()
            && sb.algorithm.bytes().all(|c| c.is_ascii_graphic())
            && size_ok(sb.data_block_size)
            && size_ok(sb.hash_block_size)
            && sb.data_blocks > 0)
            .then_some(sb)
    }

    pub fn data_bytes(&self) -> u64 {
        self.data_blocks
            .saturating_mul(u64::from(self.data_block_size))
    }
}

/// Hash blocks of a tree over `n` data blocks with 128 sha256 digests per 4 KiB block,
/// plus the superblock: what follows the filesystem in a Flatcar USR partition.
pub fn tree_blocks(data_blocks: u64) -> u64 {
    let (mut n, mut total) = (data_blocks, 1);
    while n > 1 {
        n = n.div_ceil(128);
        total += n;
    }
    total
}

/// Flatcar's fs_blocks (build_library/disk_util): the largest n for which n data blocks,
/// the verity superblock and the hash tree fit `bytes`.
pub fn fs_blocks(bytes: u64) -> u64 {
    let part = bytes / BLOCK;
    // the tree is about 1/128 of the data: start near the answer and walk
    let mut n = part * 128 / 129;
    while n > 0 && n + tree_blocks(n) > part {
        n -= 1;
    }
    while n + 1 + tree_blocks(n + 1) <= part {
        n += 1;
    }
    n
}

/// How the hash offset was found, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetSource {
    /// `--hash-offset`.
    Given,
    /// Flatcar's fs_blocks rule for the partition size (or a power-of-two fraction of
    /// it: Flatcar kept the 1 GiB filesystem when USR grew to 2 GiB).
    FsBlocksRule,
    /// Flatcar's fixed offset, 1065345024.
    FlatcarDefault,
    /// A scan of every 4 KiB boundary for a superblock that ends the data area.
    Scan,
}

/// A superblock found on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub offset: u64,
    pub source: OffsetSource,
    pub superblock: Superblock,
}

fn read_sb(f: &File, offset: u64) -> Option<Superblock> {
    let mut b = [0u8; 512];
    f.read_exact_at(&mut b, offset).ok()?;
    Superblock::parse(&b)
}

/// Size of a block device or file, in bytes.
pub fn device_size(f: &File) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    // lseek(SEEK_END) answers for block devices and files alike
    let mut f = f;
    Ok(f.seek(SeekFrom::End(0))?)
}

/// Candidate offsets cheap to try before a scan, best first.
pub fn candidates(size: u64) -> Vec<(u64, OffsetSource)> {
    let mut c = Vec::new();
    let mut s = size;
    while s >= BLOCK * 16 {
        let off = fs_blocks(s) * BLOCK;
        if off > 0 && !c.iter().any(|(o, _)| *o == off) {
            c.push((off, OffsetSource::FsBlocksRule));
        }
        s /= 2;
    }
    if FLATCAR_HASH_OFFSET < size && !c.iter().any(|(o, _)| *o == FLATCAR_HASH_OFFSET) {
        c.push((FLATCAR_HASH_OFFSET, OffsetSource::FlatcarDefault));
    }
    c
}

/// Find the verity superblock after the filesystem: Flatcar's rule first, then a
/// forward scan of every 4 KiB boundary for a superblock whose data area ends exactly
/// where it starts (data and tree share the partition, as in Flatcar). Forward, so a
/// stale superblock from an older, larger image further back never wins. `None` when
/// there is no hash tree.
pub fn find_superblock(f: &File) -> Result<Option<Found>> {
    let size = device_size(f)?;
    for (offset, source) in candidates(size) {
        if let Some(superblock) = read_sb(f, offset) {
            return Ok(Some(Found {
                offset,
                source,
                superblock,
            }));
        }
    }
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let mut base = BLOCK; // a superblock at 0 would leave no room for data
    while base < size {
        let want = CHUNK.min((size - base) as usize);
        let got = super::source::read_full_at(&|b, o| f.read_at(b, o), &mut buf[..want], base)
            .with_context(|| format!("reading at byte {base}"))?;
        let mut at = 0;
        while at + 512 <= got {
            if buf[at..at + 8] == *SIGNATURE {
                let offset = base + at as u64;
                if let Some(superblock) = Superblock::parse(&buf[at..at + 512]) {
                    if superblock.data_bytes() == offset {
                        return Ok(Some(Found {
                            offset,
                            source: OffsetSource::Scan,
                            superblock,
                        }));
                    }
                }
            }
            at += BLOCK as usize;
        }
        if got < want {
            break;
        }
        base += want as u64;
    }
    Ok(None)
}

/// Kernel GRUB boots for a slot: `/flatcar/vmlinuz-a` for USR-A's GUID, `vmlinuz-b`
/// otherwise (grub.cfg). Machines migrated from CoreOS may only have `/coreos/`.
pub fn kernel_for(sysroot: &Path, partuuid: &str) -> PathBuf {
    let name = if partuuid.eq_ignore_ascii_case(USR_A_PARTUUID) {
        "vmlinuz-a"
    } else {
        "vmlinuz-b"
    };
    let flatcar = sysroot.join("boot/flatcar").join(name);
    let coreos = sysroot.join("boot/coreos").join(name);
    if !flatcar.exists() && coreos.exists() {
        coreos
    } else {
        flatcar
    }
}

/// The root hash stored in a kernel image, checked as GRUB checks it: exactly 64
/// characters of `[0-9a-f]`, or GRUB passes no `verity.usrhash=` at all.
pub fn kernel_root_hash(kernel: &Path) -> Result<String> {
    let f = File::open(kernel).with_context(|| format!("opening {}", kernel.display()))?;
    let mut head = [0u8; 0x40];
    f.read_exact_at(&mut head, 0)
        .with_context(|| format!("reading the header of {}", kernel.display()))?;
    let off = kernel_hash_offset(&head);
    let mut b = [0u8; 64];
    f.read_exact_at(&mut b, off)
        .with_context(|| format!("reading 64 bytes at byte {off} of {}", kernel.display()))?;
    if !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        bail!(
            "{} holds no verity root hash at byte {off} (GRUB would boot it without verity.usrhash=)",
            kernel.display()
        );
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// A root hash given as hex (any case) → bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(anyhow!(
            "root hash {s:?} is not an even number of hex digits"
        ));
    }
    Ok((0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("checked hex"))
        .collect())
}

#[cfg(test)]
#[path = "verity_tests.rs"]
mod tests;
