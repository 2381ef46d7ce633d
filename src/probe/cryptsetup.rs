//! Offline dm-verity verification with libcryptsetup, the canonical implementation
//! (what `veritysetup verify` runs): `crypt_load(CRYPT_VERITY)` with
//! `CRYPT_VERITY_CHECK_HASH`, then `crypt_activate_by_volume_key(cd, NULL, root_hash)`,
//! which hashes every data and tree block in userspace and activates nothing, so no
//! device-mapper is needed. libcryptsetup names the first bad block only in a log
//! message ("Verification failed at position N."), so its log callback is captured.
//!
//! Only in builds with the `cryptsetup` feature: libcryptsetup cannot be linked
//! statically, and the static initrd binary does without it.

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptVerity};
use libcryptsetup_rs::consts::vals::EncryptionFormat;
use libcryptsetup_rs::{CryptInit, CryptParamsVerity, CryptParamsVerityRef, LibcryptErr};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::sync::Mutex;

/// What libcryptsetup concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    /// The first block whose hash does not match the level above, as a byte position in
    /// the device (data blocks below the hash offset, tree blocks above it).
    Corrupted {
        position: u64,
    },
    /// Every block matches the tree, but the tree does not match the root hash.
    WrongHash,
    /// No verity superblock libcryptsetup accepts at the hash offset.
    NoHashTree,
}

pub struct Outcome {
    pub verdict: Verdict,
    /// libcryptsetup's error and normal-level messages, in order.
    pub log: Vec<String>,
}

/// libcryptsetup's log callback: collect every message into the Vec behind `usrptr`.
unsafe extern "C" fn collect(_level: c_int, msg: *const c_char, usrptr: *mut c_void) {
    if msg.is_null() || usrptr.is_null() {
        return;
    }
    // SAFETY: usrptr is the Vec registered by `verify`, which outlives the registration;
    // msg is a NUL-terminated string owned by libcryptsetup for the call.
    let (lines, text) = unsafe {
        (
            &mut *usrptr.cast::<Vec<String>>(),
            CStr::from_ptr(msg).to_string_lossy(),
        )
    };
    let text = text.trim();
    if !text.is_empty() {
        lines.push(text.to_string());
    }
}

/// "Verification failed at position 12288." → 12288
pub fn failed_position(log: &[String]) -> Option<u64> {
    log.iter().find_map(|l| {
        l.strip_prefix("Verification failed at position ")
            .map(|r| r.trim_end_matches('.'))
            .and_then(|n| n.trim().parse().ok())
    })
}

/// Registers the collector as libcryptsetup's default log callback for its lifetime.
struct LogCapture<'a> {
    _lines: &'a mut Vec<String>,
}

impl<'a> LogCapture<'a> {
    fn new(lines: &'a mut Vec<String>) -> Self {
        libcryptsetup_rs::set_log_callback(Some(collect), Some(&mut *lines));
        LogCapture { _lines: lines }
    }
}

impl Drop for LogCapture<'_> {
    fn drop(&mut self) {
        libcryptsetup_rs::set_log_callback::<()>(None, None);
    }
}

fn errno(e: &LibcryptErr) -> Option<i32> {
    match e {
        LibcryptErr::IOError(io) => io.raw_os_error(),
        _ => None,
    }
}

/// Verify `device` (data and hash tree in one device, superblock at `hash_offset`)
/// against `root_hash`. `Err` only when verification could not run at all.
pub fn verify(device: &Path, hash_offset: u64, root_hash: &[u8]) -> anyhow::Result<Outcome> {
    // the log callback is process-global in libcryptsetup
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut log = Vec::new();
    let result = {
        let capture = LogCapture::new(&mut log);
        let r = run(device, hash_offset, root_hash);
        drop(capture);
        r
    };
    let verdict = match result {
        Ok(()) => Verdict::Verified,
        Err(Step::Load(e)) => {
            if log
                .iter()
                .any(|l| l.contains("is not a valid VERITY device"))
                || errno(&e) == Some(libc_einval())
            {
                Verdict::NoHashTree
            } else {
                anyhow::bail!(
                    "libcryptsetup could not load {}: {e}{}",
                    device.display(),
                    tail(&log)
                )
            }
        }
        Err(Step::Init(e)) => anyhow::bail!(
            "libcryptsetup could not open {}: {e}{}",
            device.display(),
            tail(&log)
        ),
        Err(Step::Verify(e)) => {
            if let Some(position) = failed_position(&log) {
                Verdict::Corrupted { position }
            } else if log
                .iter()
                .any(|l| l.contains("Verification of root hash failed"))
            {
                Verdict::WrongHash
            } else {
                anyhow::bail!(
                    "libcryptsetup could not verify {}: {e}{}",
                    device.display(),
                    tail(&log)
                )
            }
        }
    };
    Ok(Outcome { verdict, log })
}

fn tail(log: &[String]) -> String {
    match log {
        [] => String::new(),
        l => format!(" ({})", l.join(" ")),
    }
}

const fn libc_einval() -> i32 {
    22
}

enum Step {
    Init(LibcryptErr),
    Load(LibcryptErr),
    Verify(LibcryptErr),
}

fn run(device: &Path, hash_offset: u64, root_hash: &[u8]) -> Result<(), Step> {
    let mut cd = CryptInit::init(device).map_err(Step::Init)?;
    // as veritysetup verify: the superblock gives algorithm, block sizes, data blocks and
    // salt; CHECK_HASH makes the activation below hash everything in userspace
    let params = CryptParamsVerity {
        hash_name: "sha256".into(),
        data_device: device.to_path_buf(),
        hash_device: None,
        fec_device: None,
        salt: Vec::new(),
        hash_type: 1,
        data_block_size: 4096,
        hash_block_size: 4096,
        data_size: 0,
        hash_area_offset: hash_offset,
        fec_area_offset: 0,
        fec_roots: 0,
        flags: CryptVerity::CHECK_HASH,
    };
    let mut p: CryptParamsVerityRef<'_> = (&params).try_into().map_err(Step::Load)?;
    cd.context_handle()
        .load(Some(EncryptionFormat::Verity), Some(&mut p))
        .map_err(Step::Load)?;
    // name NULL: verify only, create no device-mapper device
    cd.activate_handle()
        .activate_by_volume_key(None, Some(root_hash), CryptActivate::empty())
        .map_err(Step::Verify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_from_the_log() {
        let log = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            failed_position(&log(&[
                "Verification failed at position 16646144.",
                "Verification of data area failed."
            ])),
            Some(16_646_144)
        );
        assert_eq!(
            failed_position(&log(&["Verification of root hash failed."])),
            None
        );
    }
}
