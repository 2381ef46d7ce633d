//! Writes `make demo`'s sample disk with the crate's own dependency (gptman), so the demo
//! needs no sgdisk, cgpt, mkfs, veritysetup or root:
//!
//!     cargo run --example demo_image -- OUTDIR
//!
//! OUTDIR gets `disk.img` (Flatcar's partition table and the fresh-install attributes:
//! USR-A priority 1, successful; USR-B priority 0), `disk.env` (what images/demo.sh
//! reads) and `usr-a/lib/os-release`, `usr-b/lib/os-release` (the /usr the demo mounts
//! for each slot). The slots hold no filesystem and no hash tree: abguard's verbs read
//! the table and attributes, os-release through --usr and the verity table through
//! --dm-table, never the partition contents. The root hashes and salt are fixed values
//! that only have to round-trip from the command line to the fake dm table.
//! Real images for the tests come from images/mkimage.sh.

use abguard::disk::layout::guid_bytes;
use anyhow::{ensure, Context, Result};
use gptman::{GPTPartitionEntry, GPT};
use std::fs::{self, OpenOptions};
use std::path::Path;

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
const USR_MB: u64 = 16;
const DISK_GUID: &str = "00000000-0000-0000-0000-000000000001"; // disk_util's fixed GUID
const USR_TYPE: &str = "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6";
const USR_A_PARTUUID: &str = "7130c94a-213a-4e5a-8e26-6cce9662f132";
const USR_B_PARTUUID: &str = "e03dd35c-7c2d-4a47-b3fe-27f15780a57c";
/// Arbitrary fixed stand-ins (64 hex, the form dm-verity uses); nothing hashes to them.
const USR_A_ROOTHASH: &str = "5f1c1a0e3d6b5e1f8e7a2c4b9d0f6a3e2b1c8d7e6f5a4b3c2d1e0f9a8b7c6d5e";
const USR_B_ROOTHASH: &str = "a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3";
/// The fixed build the demo writes to USR-B after 2.0.0 failed: another version, another
/// root hash.
const USR_B2_ROOTHASH: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SALT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (number, label, type GUID, partition GUID or None for a per-number one, MiB), as
/// images/mkimage.sh lays out Flatcar's disk: 1 MiB aligned, in number order.
const PARTS: &[(u32, &str, &str, Option<&str>, u64)] = &[
    (
        1,
        "EFI-SYSTEM",
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
        None,
        8,
    ),
    (
        2,
        "BIOS-BOOT",
        "21686148-6449-6e6f-744e-656564454649",
        None,
        2,
    ),
    (3, "USR-A", USR_TYPE, Some(USR_A_PARTUUID), USR_MB),
    (4, "USR-B", USR_TYPE, Some(USR_B_PARTUUID), USR_MB),
    (6, "OEM", "0fc63daf-8483-4772-8e79-3d69d8477de4", None, 4),
    (
        7,
        "OEM-CONFIG",
        "c95dc21a-df0e-4340-8d7b-26cbfa9a03e0",
        None,
        1,
    ),
    (9, "ROOT", "3884dd41-8582-4404-b9a8-e9b84f2df50e", None, 16),
];

/// gptprio bits: priority 48-51, tries 52-55, successful 56.
fn attrs(priority: u64, tries: u64, successful: bool) -> u64 {
    priority << 48 | tries << 52 | u64::from(successful) << 56
}

/// Flatcar's fs_blocks: the largest n with n data blocks + 1 verity superblock + every
/// hash level (128 sha256 digests per 4 KiB block) within the partition.
fn fs_blocks(part_blocks: u64) -> u64 {
    let fits = |n: u64| {
        let (mut level, mut total) = (n, n + 1);
        while level > 1 {
            level = level.div_ceil(128);
            total += level;
        }
        total <= part_blocks
    };
    let mut n = part_blocks * 128 / 129;
    while n > 0 && !fits(n) {
        n -= 1;
    }
    while fits(n + 1) {
        n += 1;
    }
    n
}

fn os_release(dir: &Path, version: &str) -> Result<()> {
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let text = format!(
        "NAME=\"Flatcar Container Linux by Kinvolk\"\nID=flatcar\nID_LIKE=coreos\n\
         VERSION={version}\nVERSION_ID={version}\nBUILD_ID=abguard-demo\n\
         PRETTY_NAME=\"Flatcar Container Linux by Kinvolk {version} (abguard demo, no filesystem)\"\n"
    );
    let p = lib.join("os-release");
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// A stand-in for a slot's kernel: what abguard reads of it is the root hash GRUB passes,
/// 64 hex characters at byte 0x40 (Flatcar's x86 layout).
fn kernel(path: &Path, hash: &str) -> Result<()> {
    let mut b = vec![0u8; 0x40];
    b.extend_from_slice(hash.as_bytes());
    fs::write(path, b).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ensure!(args.len() == 1, "usage: demo_image OUTDIR");
    let out = Path::new(&args[0]);
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let img = out.join("disk.img");

    let mut start = MIB; // MBR and primary GPT, padded to 1 MiB
    let mut layout = Vec::new();
    for &(n, label, ty, guid, mb) in PARTS {
        layout.push((n, label, ty, guid, start, mb * MIB));
        start += mb * MIB;
    }
    let disk_size = start + MIB; // backup GPT, kept aligned

    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&img)
        .with_context(|| format!("creating {}", img.display()))?;
    f.set_len(disk_size)
        .with_context(|| format!("sizing {}", img.display()))?;
    let mut gpt = GPT::new_from(&mut f, SECTOR, guid_bytes(DISK_GUID))
        .with_context(|| format!("new GPT on {}", img.display()))?;
    for &(n, label, ty, guid, start, size) in &layout {
        // partitions without a fixed GUID get a distinct, reproducible one
        let unique = match guid {
            Some(g) => guid_bytes(g),
            None => guid_bytes(&format!("00000000-0000-4000-8000-00000000000{n}")),
        };
        let attribute_bits = match n {
            3 => attrs(1, 0, true),
            4 => attrs(0, 0, false),
            _ => 0,
        };
        gpt[n] = GPTPartitionEntry {
            partition_type_guid: guid_bytes(ty),
            unique_partition_guid: unique,
            starting_lba: start / SECTOR,
            ending_lba: (start + size) / SECTOR - 1,
            attribute_bits,
            partition_name: label.into(),
        };
    }
    GPT::write_protective_mbr_into(&mut f, SECTOR)
        .with_context(|| format!("writing the protective MBR to {}", img.display()))?;
    gpt.write_into(&mut f)
        .with_context(|| format!("writing the GPT to {}", img.display()))?;
    drop(f);

    os_release(&out.join("usr-a"), "1.0.0")?;
    os_release(&out.join("usr-b"), "2.0.0")?;
    os_release(&out.join("usr-b2"), "2.1.0")?;
    let kernels = out.join("kernels");
    fs::create_dir_all(&kernels).with_context(|| format!("creating {}", kernels.display()))?;
    kernel(&kernels.join("vmlinuz-a"), USR_A_ROOTHASH)?;
    kernel(&kernels.join("vmlinuz-b"), USR_B_ROOTHASH)?;
    kernel(&kernels.join("vmlinuz-b2"), USR_B2_ROOTHASH)?;

    let fsb = fs_blocks(USR_MB * MIB / 4096);
    let start_of = |n: u32| layout.iter().find(|p| p.0 == n).map(|p| p.4).unwrap_or(0);
    let env = format!(
        "DISK={}\nDISK_SIZE={disk_size}\nSECTOR_SIZE={SECTOR}\nSTATE=fresh\nUSR_FS=none\nVERITY=0\n\
         FS_BLOCKS={fsb}\nHASH_OFFSET={}\nSALT={SALT}\n\
         USR_A_PARTUUID={USR_A_PARTUUID}\nUSR_A_ROOTHASH={USR_A_ROOTHASH}\nUSR_A_START={}\nUSR_A_VERSION=1.0.0\n\
         USR_B_PARTUUID={USR_B_PARTUUID}\nUSR_B_ROOTHASH={USR_B_ROOTHASH}\nUSR_B_START={}\nUSR_B_VERSION=2.0.0\n\
         USR_B2_ROOTHASH={USR_B2_ROOTHASH}\nUSR_B2_VERSION=2.1.0\n",
        img.display(),
        fsb * 4096,
        start_of(3),
        start_of(4),
    );
    let envp = out.join("disk.env");
    fs::write(&envp, env).with_context(|| format!("writing {}", envp.display()))?;
    Ok(())
}
