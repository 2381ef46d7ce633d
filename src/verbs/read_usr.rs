//! `abguard read-usr`: read all of /dev/mapper/usr once, with large sequential reads,
//! so dm-verity hashes every block of the new /usr on the first boot after an upgrade,
//! not only the blocks this boot happened to touch. dm-verity fails a read of a block
//! that does not match its tree with EIO; the first such block is named and the check
//! fails, which (through abguard-read-usr.service, ordered before boot-complete.target
//! when VERIFY_USR=yes) fails the health gate and rolls the upgrade back.
//!
//! No library: this runs in the static build.

use crate::act::record::{self, Record};
use crate::cli::tools::ReadUsrArgs;
use crate::exit::{ExitCode, VerbResult};
use crate::probe::source::read_full_at;
use crate::probe::{self, MachinePaths};
use crate::safefs;
use crate::types::PathOverrides;
use anyhow::{Context, Result};
use serde::Serialize;
use std::os::unix::fs::FileExt;

/// dm-verity's (and Flatcar's) block size: errors are located to one of these.
const SMALL: usize = crate::probe::verity::BLOCK as usize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub device: String,
    /// `ok` or `io-error`.
    pub result: &'static str,
    pub size: u64,
    /// Bytes read before the end or the first error.
    pub bytes_read: u64,
    pub block_size: usize,
    pub direct: bool,
    pub seconds: f64,
    pub mib_per_s: f64,
    /// Byte offset and 4 KiB block number of the first block that could not be read.
    pub error_at: Option<u64>,
    pub error_block: Option<u64>,
    pub error: Option<String>,
}

/// A page-aligned buffer for O_DIRECT (and fine for buffered reads).
struct Aligned {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let mem = vec![0u8; len + SMALL];
        let start = mem.as_ptr().align_offset(SMALL);
        Aligned { mem, start, len }
    }
    fn buf(&mut self, n: usize) -> &mut [u8] {
        &mut self.mem[self.start..self.start + n.min(self.len)]
    }
}

/// Read `size` bytes with `read` (pread), `block_size` at a time, telling `done` about
/// each range read. `Err((offset, error))` names the first unreadable 4 KiB block.
fn read_all<R, D>(
    read: &R,
    done: &D,
    size: u64,
    block_size: usize,
    direct: bool,
    bytes_read: &mut u64,
) -> Result<(), (u64, std::io::Error)>
where
    R: Fn(&mut [u8], u64) -> std::io::Result<usize>,
    D: Fn(u64, usize),
{
    let mut buf = Aligned::new(block_size);
    let mut off = 0u64;
    // O_DIRECT needs whole sectors; a device's size is a whole number of them
    let round = |n: usize| if direct { n.next_multiple_of(512) } else { n };
    while off < size {
        let want = round(block_size.min((size - off) as usize));
        match read_full_at(read, buf.buf(want), off) {
            Ok(0) => break,
            Ok(n) => {
                done(off, n);
                off += n as u64;
                *bytes_read = off;
                if n < want {
                    break;
                }
            }
            Err(e) => {
                // a large read fails as a whole: find the first bad 4 KiB block in it
                let mut small = Aligned::new(SMALL);
                let end = (off + want as u64).min(size);
                let mut at = off;
                while at < end {
                    let n = round(SMALL.min((end - at) as usize));
                    match read_full_at(read, small.buf(n), at) {
                        Ok(0) => break,
                        Ok(got) => {
                            at += got as u64;
                            *bytes_read = at;
                        }
                        Err(e2) => return Err((at, e2)),
                    }
                }
                // not reproducible block by block: report the large read
                return Err((off, e));
            }
        }
    }
    Ok(())
}

pub fn run(a: &ReadUsrArgs) -> VerbResult {
    let (r, msg) = read_device(a)?;
    let failed = r.result != "ok";
    if failed {
        log::error!("{msg}");
        if a.record {
            record_failure(a, &r, &msg);
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(anyhow::Error::from)?
        );
    } else {
        println!("{msg}");
    }
    Ok(if failed {
        ExitCode::VerifyFailed
    } else {
        ExitCode::Ok
    })
}

/// How far the read is, on stderr when it is a terminal (twice a second at most); the
/// result line with the rate is printed either way.
struct Progress {
    size: u64,
    tty: bool,
    last: std::cell::Cell<Option<std::time::Instant>>,
}

impl Progress {
    fn new(size: u64) -> Progress {
        use std::io::IsTerminal;
        Progress {
            size,
            tty: std::io::stderr().is_terminal(),
            last: std::cell::Cell::new(None),
        }
    }

    fn show(&self, done: u64) {
        let now = std::time::Instant::now();
        if !self.tty
            || self
                .last
                .get()
                .is_some_and(|t| now - t < std::time::Duration::from_millis(500))
        {
            return;
        }
        self.last.set(Some(now));
        eprint!(
            "\rread-usr: {} / {} MiB ({}%)",
            done >> 20,
            self.size >> 20,
            done * 100 / self.size.max(1)
        );
    }

    fn end(&self) {
        if self.tty && self.last.get().is_some() {
            eprintln!();
        }
    }
}

/// Read the whole device once; the report and its one-line message.
fn read_device(a: &ReadUsrArgs) -> Result<(Report, String)> {
    use nix::fcntl::{posix_fadvise, OFlag, PosixFadviseAdvice as Adv};
    let t0 = std::time::Instant::now();
    let flags = if a.direct {
        OFlag::O_DIRECT
    } else {
        OFlag::empty()
    };
    // a directory or FIFO is a usage error (exit 1): read errors would say exit 4,
    // "verification failed", which the unit turns into a rollback
    let f = safefs::open_file(&a.device, false, safefs::Kind::RegularOrBlock, flags)?;
    let size = probe::verity::device_size(&f)
        .with_context(|| format!("reading the size of {}", a.device.display()))?;
    let _ = posix_fadvise(&f, 0, 0, Adv::POSIX_FADV_SEQUENTIAL);
    let mut bytes_read = 0;
    let progress = Progress::new(size);
    let result = read_all(
        &|buf: &mut [u8], at| f.read_at(buf, at),
        &|at, n| {
            if !a.direct {
                // hashed and done with: leave the page cache to the running system
                let _ = posix_fadvise(&f, at as i64, n as i64, Adv::POSIX_FADV_DONTNEED);
            }
            progress.show(at + n as u64);
        },
        size,
        a.block_size,
        a.direct,
        &mut bytes_read,
    );
    progress.end();
    let seconds = t0.elapsed().as_secs_f64();
    let mut r = Report {
        device: a.device.display().to_string(),
        result: "ok",
        size,
        bytes_read,
        block_size: a.block_size,
        direct: a.direct,
        seconds,
        mib_per_s: bytes_read as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        error_at: None,
        error_block: None,
        error: None,
    };
    let msg = r.judge(&result);
    Ok((r, msg))
}

impl Report {
    /// Fill in the first failure of `result`, if any, and say what happened in one line.
    fn judge(&mut self, result: &Result<(), (u64, std::io::Error)>) -> String {
        let (size, bytes_read) = (self.size, self.bytes_read);
        match result {
            Ok(()) if bytes_read == size => format!(
                "{}: read all {} MiB in {:.2} s ({:.0} MiB/s): every block passed",
                self.device,
                size >> 20,
                self.seconds,
                self.mib_per_s
            ),
            Ok(()) => {
                self.result = "io-error";
                self.error = Some(format!("ended after {bytes_read} of {size} bytes"));
                self.error_at = Some(bytes_read);
                self.error_block = Some(bytes_read / SMALL as u64);
                format!(
                    "{}: unexpected end after {bytes_read} of {size} bytes",
                    self.device
                )
            }
            Err((at, e)) => {
                self.result = "io-error";
                self.error_at = Some(*at);
                self.error_block = Some(at / SMALL as u64);
                self.error = Some(e.to_string());
                format!(
                    "{}: read error at byte {at} (4 KiB block {}) after {} MiB: {e} (dm-verity rejects blocks that do not match the hash tree)",
                    self.device,
                    at / SMALL as u64,
                    bytes_read >> 20
                )
            }
        }
    }
}

/// `read-usr-failed` in the history of `--sysroot`, with the report. The check already
/// failed; a history that cannot be written is a warning.
fn record_failure(a: &ReadUsrArgs, r: &Report, msg: &str) {
    let p = PathOverrides {
        usr: a.usr.clone(),
        sysroot: a.sysroot.clone(),
        ..PathOverrides::default()
    };
    let env = MachinePaths::new(&p, false);
    let mut rec = Record::at(
        &env.proc,
        record::Event::ReadUsrFailed,
        record::Verdict::Corrupted,
    );
    rec.version_id = probe::version_id(&env.usr_candidates);
    rec.reasons.push(msg.to_string());
    if let Err(e) = crate::act::history::append_report(&env.sysroot, &rec, "read_usr", r) {
        log::warn!("history not updated: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// A device of `size` bytes whose block `bad` fails like a dm-verity mismatch: a read
    /// that reaches it returns what lies before it (if anything), then EIO.
    fn fake(size: u64, bad: Option<u64>) -> impl Fn(&mut [u8], u64) -> std::io::Result<usize> {
        move |buf: &mut [u8], at: u64| {
            let end = (at + buf.len() as u64).min(size);
            if at >= size {
                return Ok(0);
            }
            match bad.map(|b| b * SMALL as u64) {
                Some(b) if at <= b && b < end => {
                    if at == b {
                        Err(std::io::Error::from_raw_os_error(5))
                    } else {
                        Ok((b - at) as usize)
                    }
                }
                _ => Ok((end - at) as usize),
            }
        }
    }

    #[test]
    fn reads_everything_in_odd_sizes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("usr");
        // not a multiple of the read size, nor of 4 KiB
        std::fs::write(&p, vec![7u8; (3 << 20) + 1234]).unwrap();
        let f = File::open(&p).unwrap();
        let (mut n, seen) = (0, std::cell::Cell::new(0));
        read_all(
            &|b: &mut [u8], at| f.read_at(b, at),
            &|_, len| seen.set(seen.get() + len),
            (3 << 20) + 1234,
            1 << 20,
            false,
            &mut n,
        )
        .unwrap();
        assert_eq!((n, seen.get()), ((3 << 20) + 1234, (3 << 20) + 1234));
    }

    #[test]
    fn names_the_first_bad_block() {
        let size = 40u64 << 20;
        for (bad, bs) in [
            (0u64, 4 << 20),
            (1000, 4 << 20),
            (1024, 4 << 20),
            (10239, 1 << 20),
            (5, SMALL),
        ] {
            let mut n = 0;
            let (at, e) =
                read_all(&fake(size, Some(bad)), &|_, _| {}, size, bs, false, &mut n).unwrap_err();
            assert_eq!(at, bad * SMALL as u64, "bad block {bad}, reads of {bs}");
            assert_eq!(e.raw_os_error(), Some(5));
            assert_eq!(n, at, "everything before the bad block was read");
        }
        let mut n = 0;
        read_all(&fake(size, None), &|_, _| {}, size, 4 << 20, false, &mut n).unwrap();
        assert_eq!(n, size);
    }
}
