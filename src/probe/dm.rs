//! dm-verity status and root hash of the `usr` device through the raw
//! DM_TABLE_STATUS ioctl: no libdevmapper, so the binary stays static.
//!
//! The same parsers read `dmsetup status`/`dmsetup table` lines, so tests and the
//! `--dm-status`/`--dm-table` test inputs share the code path with the ioctl.

use crate::decide::verity::Target;
use anyhow::{bail, Context, Result};

const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
/// `struct dm_ioctl` from linux/dm-ioctl.h; the kernel checks the size via the ioctl number.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DmIoctl {
    pub version: [u32; 3],
    pub data_size: u32,
    pub data_start: u32,
    pub target_count: u32,
    pub open_count: i32,
    pub flags: u32,
    pub event_nr: u32,
    pub padding: u32,
    pub dev: u64,
    pub name: [u8; DM_NAME_LEN],
    pub uuid: [u8; DM_UUID_LEN],
    pub data: [u8; 7],
}

/// `struct dm_target_spec`, followed in the buffer by a NUL-terminated parameter string.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DmTargetSpec {
    pub sector_start: u64,
    pub length: u64,
    pub status: i32,
    pub next: u32,
    pub target_type: [u8; 16],
}

const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
const DM_NOFLUSH_FLAG: u32 = 1 << 11;

nix::ioctl_readwrite!(dm_table_status, 0xfd, 12, DmIoctl);

/// Decode the targets the kernel put after the dm_ioctl header. `next` offsets are
/// relative to the first spec (DM_TABLE_STATUS semantics), and every bound is checked
/// because the buffer comes from outside.
pub fn parse_targets(buf: &[u8], data_start: usize, count: u32) -> Result<Vec<Target>> {
    let spec_len = std::mem::size_of::<DmTargetSpec>();
    let mut out = Vec::new();
    let mut off = data_start;
    for i in 0..count {
        let spec_end = off.checked_add(spec_len).filter(|&e| e <= buf.len());
        let Some(spec_end) = spec_end else {
            bail!("target {i} lies outside the {}-byte reply", buf.len());
        };
        let raw = &buf[off..spec_end];
        let u64_at = |o: usize| u64::from_ne_bytes(raw[o..o + 8].try_into().expect("8 bytes"));
        let next = u32::from_ne_bytes(raw[20..24].try_into().expect("4 bytes")) as usize;
        let ty = &raw[24..40];
        let ty = String::from_utf8_lossy(&ty[..ty.iter().position(|&b| b == 0).unwrap_or(16)])
            .into_owned();
        let params_bytes = &buf[spec_end..];
        let params_end = params_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(params_bytes.len());
        out.push(Target {
            start: u64_at(0),
            length: u64_at(8),
            target_type: ty,
            params: String::from_utf8_lossy(&params_bytes[..params_end])
                .trim()
                .to_string(),
        });
        let Some(n) = data_start.checked_add(next) else {
            break;
        };
        if i + 1 < count && n <= off {
            bail!("target {i} points backwards to offset {next}");
        }
        off = n;
    }
    Ok(out)
}

/// Ask the kernel for the status (or, with `table`, the table) of the dm device `name`.
pub fn query(control: &std::path::Path, name: &str, table: bool) -> Result<Vec<Target>> {
    use std::os::fd::AsRawFd;
    let file =
        std::fs::File::open(control).with_context(|| format!("opening {}", control.display()))?;
    let mut size = 16 * 1024;
    loop {
        // u64 storage keeps the header suitably aligned for the kernel's struct
        let mut storage = vec![0u64; size / 8];
        let hdr_len = std::mem::size_of::<DmIoctl>();
        let mut hdr = DmIoctl {
            version: [4, 0, 0],
            data_size: size as u32,
            data_start: hdr_len as u32,
            target_count: 0,
            open_count: 0,
            flags: DM_NOFLUSH_FLAG | if table { DM_STATUS_TABLE_FLAG } else { 0 },
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        };
        if name.len() >= DM_NAME_LEN {
            bail!("dm name {name:?} is too long");
        }
        hdr.name[..name.len()].copy_from_slice(name.as_bytes());
        let ptr = storage.as_mut_ptr().cast::<DmIoctl>();
        // SAFETY: storage is at least hdr_len bytes and u64-aligned; the kernel writes at
        // most data_size bytes, which is the storage's length.
        unsafe {
            ptr.write(hdr);
            dm_table_status(file.as_raw_fd(), ptr)
        }
        .with_context(|| format!("DM_TABLE_STATUS on {name:?}"))?;
        // SAFETY: the kernel filled a DmIoctl header at the start of storage.
        let out = unsafe { ptr.read() };
        if out.flags & DM_BUFFER_FULL_FLAG != 0 && size < 1 << 20 {
            size *= 4;
            continue;
        }
        // SAFETY: reinterpreting initialised u64s as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), size) };
        let end = (out.data_size as usize).min(size);
        return parse_targets(&bytes[..end], out.data_start as usize, out.target_count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::verity::verity_root_hash;

    #[test]
    fn struct_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<DmIoctl>(), 312);
        assert_eq!(std::mem::size_of::<DmTargetSpec>(), 40);
        assert_eq!(std::mem::offset_of!(DmIoctl, dev), 40);
        assert_eq!(std::mem::offset_of!(DmIoctl, name), 48);
        assert_eq!(std::mem::offset_of!(DmIoctl, uuid), 176);
        assert_eq!(std::mem::offset_of!(DmTargetSpec, next), 20);
        assert_eq!(std::mem::offset_of!(DmTargetSpec, target_type), 24);
        // _IOWR(0xfd, 12, struct dm_ioctl) as libdevmapper computes it; musl's ioctl takes
        // an int request and glibc's an unsigned long, so compare the 32 bits.
        assert_eq!(
            nix::request_code_readwrite!(0xfd, 12, 312) as u32,
            0xc138fd0c
        );
    }

    fn reply(targets: &[(u64, u64, &str, &str)]) -> (Vec<u8>, usize) {
        let start = 312;
        let mut buf = vec![0u8; start];
        let first = buf.len();
        for (i, (s, l, ty, p)) in targets.iter().enumerate() {
            let spec_at = buf.len();
            buf.extend_from_slice(&s.to_ne_bytes());
            buf.extend_from_slice(&l.to_ne_bytes());
            buf.extend_from_slice(&0i32.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            let mut t = [0u8; 16];
            t[..ty.len()].copy_from_slice(ty.as_bytes());
            buf.extend_from_slice(&t);
            buf.extend_from_slice(p.as_bytes());
            buf.push(0);
            while buf.len() % 8 != 0 {
                buf.push(0);
            }
            let next = if i + 1 < targets.len() {
                (buf.len() - first) as u32
            } else {
                0
            };
            buf[spec_at + 20..spec_at + 24].copy_from_slice(&next.to_ne_bytes());
        }
        (buf, start)
    }

    #[test]
    fn parses_kernel_replies() {
        let hash = "10ae16c5".repeat(8);
        let table = format!("1 254:3 254:3 4096 4096 8192 8193 sha256 {hash} 5eed");
        let (buf, start) = reply(&[(0, 65536, "verity", &table)]);
        let t = parse_targets(&buf, start, 1).unwrap();
        assert_eq!(t[0].target_type, "verity");
        assert_eq!(t[0].length, 65536);
        assert_eq!(verity_root_hash(&t[0].params), Some(hash));
        let (buf, start) = reply(&[(0, 8, "linear", "254:3 0"), (8, 8, "zero", "")]);
        let t = parse_targets(&buf, start, 2).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].target_type, "zero");
    }

    #[test]
    fn hostile_replies_are_errors() {
        let (buf, start) = reply(&[(0, 8, "verity", "V")]);
        assert!(parse_targets(&buf[..start + 10], start, 1).is_err());
        assert!(parse_targets(&buf, start, 5).is_err());
        assert!(parse_targets(&buf, usize::MAX - 3, 1).is_err());
        assert!(parse_targets(&[], 0, 1).is_err());
    }
}
