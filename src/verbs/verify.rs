//! `abguard verify`: check a USR slot's filesystem and hash tree offline, block by
//! block, against the root hash its kernel carries, before anything boots it. With
//! `--unstage-on-failure` (run by abguard-verify-staged.service once flatcar-postinst
//! touched /run/reboot-required) a staged update that fails is un-staged at once: the
//! next reboot stays on the slot that works.
//!
//! Locating the data (slot, device, root hash, hash offset) needs no library; the
//! verification itself is libcryptsetup's ([`crate::probe::cryptsetup`], feature `cryptsetup`).
// without the feature only the argument parsing and the error remain
#![cfg_attr(not(feature = "cryptsetup"), allow(dead_code, unused_imports))]

use super::is_block;
use crate::act::record::{self, Record};
use crate::cli::tools::VerifyArgs;
use crate::decide::ab;
use crate::disk::{change_slots, gpt::Table, read_table};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::verity::{self, OffsetSource};
use crate::probe::{self, Env};
use crate::types::{Booted, Roots, Slot};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Verified,
    Corrupted,
    WrongHash,
    NoHashTree,
}

/// The verification report (`--json`), also stored in the history with `verify-failed`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub result: Outcome,
    pub label: Option<String>,
    pub partition: Option<u32>,
    pub partuuid: Option<String>,
    /// What was read (a partition device, a partition image, or the copy of the slot).
    pub device: String,
    pub root_hash: String,
    /// `--root-hash` or the kernel image it was read from.
    pub root_hash_from: String,
    pub hash_offset: Option<u64>,
    pub hash_offset_from: Option<OffsetSource>,
    pub hash_algorithm: Option<String>,
    pub data_blocks: Option<u64>,
    pub data_block_size: Option<u32>,
    /// Byte position in the partition of the first block that failed.
    pub failed_at: Option<u64>,
    /// `data` or `hash-tree`.
    pub area: Option<&'static str>,
    /// That block's number: data block N, or hash-tree block N counted from the superblock (0).
    pub block: Option<u64>,
    pub message: String,
    /// libcryptsetup's own messages.
    pub libcryptsetup: Vec<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// The staged slot: the one GRUB boots next, while it still has tries and has not been
/// marked successful (what flatcar-postinst leaves: highest priority, T=1, S=0).
pub fn staged(slots: &[Slot]) -> Option<usize> {
    ab::staged(slots)
}

/// What was read: the device path handed to libcryptsetup, and a temporary copy that
/// must stay open as long as that path is used.
struct Source {
    path: PathBuf,
    shown: String,
    _copy: Option<File>,
}

/// The kernel's node for partition `n` of a block device, through sysfs.
fn partition_node(env: &Env, disk: &Path, n: u32) -> Result<PathBuf> {
    let name = env.sysfs.name_of_path(disk)?;
    let dir = env.sysfs.root.join("class/block").join(&name);
    let rd = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    for e in rd.flatten() {
        let p = std::fs::read_to_string(e.path().join("partition")).unwrap_or_default();
        if p.trim().parse::<u32>().ok() == Some(n) {
            return Ok(env.sysfs.dev.join(e.file_name()));
        }
    }
    bail!(
        "{} has no partition {n} in {}",
        disk.display(),
        dir.display()
    )
}

/// libcryptsetup reads whole devices (no data offset for VERITY), so a slot inside an
/// image file is copied into an unnamed temporary file (beside the image when possible)
/// and read through /proc/self/fd.
fn copy_out(image: &Path, table: &Table, n: u32) -> Result<Source> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let (first, last) = table
        .extent(n)
        .ok_or_else(|| anyhow!("partition {n} is not in the table"))?;
    let ss = table.sector_size;
    let (start, len) = (first * ss, (last + 1 - first) * ss);
    let mut src = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let dirs = [
        image
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        std::env::temp_dir(),
    ];
    let mut last_err = None;
    for d in &dirs {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_TMPFILE)
            .mode(0o600)
            .open(d)
        {
            Ok(mut tmp) => {
                src.seek(SeekFrom::Start(start))?;
                // File → File: std copies in the kernel (copy_file_range)
                let copied = std::io::copy(&mut (&mut src).take(len), &mut tmp)
                    .with_context(|| format!("copying partition {n} out of {}", image.display()))?;
                if copied != len {
                    bail!(
                        "{} ends inside partition {n} ({copied} of {len} bytes)",
                        image.display()
                    );
                }
                return Ok(Source {
                    path: PathBuf::from(format!("/proc/self/fd/{}", tmp.as_raw_fd())),
                    shown: format!("{} partition {n} (copied out)", image.display()),
                    _copy: Some(tmp),
                });
            }
            Err(e) => last_err = Some(anyhow!("{}: {e}", d.display())),
        }
    }
    Err(last_err
        .unwrap_or_else(|| anyhow!("no directory"))
        .context("creating a temporary copy of the slot"))
}

/// The slot whose partition is verified, with the table it came from.
struct Target {
    disk: PathBuf,
    table: Table,
    index: usize,
}

impl Target {
    fn slot(&self) -> Slot {
        self.table.slots()[self.index].clone()
    }
}

fn booted(env: &Env, t: &Target) -> Option<Booted> {
    let id = super::booted_slot(env, &t.disk, &t.table).ok()?;
    Some(Booted::of(&t.table.slots()[id.index], id.source))
}

/// The userspace build with libcryptsetup, beside the static /usr/bin/abguard.
pub const HELPER: &str = "/usr/lib/abguard/abguard-cryptsetup";
/// Without libcryptsetup: hand the whole command line to [`HELPER`] when it is
/// installed (the booted system), else fail clearly (the initrd, a bare static build).
#[cfg(not(feature = "cryptsetup"))]
pub fn run(_p: &Roots, _a: &VerifyArgs) -> VerbResult {
    use std::os::unix::process::CommandExt;
    // set on the hand-over, so a helper that lacks the feature too fails instead of
    // handing it on again
    const NO_DELEGATE: &str = "ABGUARD_NO_DELEGATE";
    let helper = Path::new(HELPER);
    if std::env::var_os(NO_DELEGATE).is_none() && helper.exists() {
        let err = std::process::Command::new(helper)
            .args(std::env::args_os().skip(1))
            .env(NO_DELEGATE, "1")
            .exec();
        return Err(anyhow!("running {HELPER}: {err}").into());
    }
    let helper_state = if helper.exists() {
        "was handed this and lacks it too"
    } else {
        "is not installed"
    };
    Err(anyhow!(
        "this abguard was built without the `cryptsetup` feature, so it cannot verify a slot \
         (libcryptsetup cannot be linked into the static initrd build), and {HELPER} (the \
         userspace build, `make build-cryptsetup`) {helper_state}"
    )
    .into())
}

#[cfg(feature = "cryptsetup")]
pub fn run(p: &Roots, a: &VerifyArgs) -> VerbResult {
    let t0 = std::time::Instant::now();
    let env = Env::new(p, false);
    let need_table = a.device.is_none()
        || a.partition.is_some()
        || a.staged
        || a.unstage_on_failure
        || (a.root_hash.is_none() && a.kernel.is_none());
    let target = if need_table {
        let disk = env.disk_path()?;
        let (_, table) = read_table(&disk, false)?;
        let slots = table.slots();
        let index = match a.partition {
            Some(n) => ab::find_partition(&slots, n)?,
            None => match staged(&slots) {
                Some(i) => i,
                None if a.staged => {
                    let msg = "no staged update (no slot that boots next with tries left and not yet successful): nothing to verify";
                    if a.json {
                        println!(
                            "{}",
                            serde_json::json!({ "result": "nothing-staged", "message": msg })
                        );
                    } else {
                        println!("{msg}");
                    }
                    return Ok(ExitCode::Ok);
                }
                None => {
                    return Err(anyhow!(
                        "no staged USR slot (none boots next with tries left and successful=0); name one with --partition"
                    )
                    .into())
                }
            },
        };
        Some(Target { disk, table, index })
    } else {
        None
    };
    let slot = target.as_ref().map(Target::slot);

    let (root_hash, root_hash_from) = match (&a.root_hash, &a.kernel, &slot) {
        (Some(h), _, _) => (h.trim().to_ascii_lowercase(), "--root-hash".to_string()),
        (None, Some(k), _) => (verity::kernel_root_hash(k)?, k.display().to_string()),
        (None, None, Some(s)) => {
            let k = verity::kernel_for(&env.sysroot, &s.partuuid);
            let h = verity::kernel_root_hash(&k)
                .context("reading the slot's root hash (pass --root-hash or --kernel)")?;
            (h, k.display().to_string())
        }
        (None, None, None) => unreachable!("need_table without a root hash source"),
    };
    let hash_bytes = verity::parse_hex(&root_hash)?;

    let source = match (&a.device, &target) {
        (Some(dev), _) => Source {
            path: dev.clone(),
            shown: dev.display().to_string(),
            _copy: None,
        },
        (None, Some(t)) if is_block(&t.disk) => {
            let n = t.slot().partition;
            let node = partition_node(&env, &t.disk, n)?;
            Source {
                shown: node.display().to_string(),
                path: node,
                _copy: None,
            }
        }
        (None, Some(t)) => copy_out(&t.disk, &t.table, t.slot().partition)?,
        (None, None) => unreachable!("need_table without --device"),
    };

    let dev = File::open(&source.path).with_context(|| format!("opening {}", source.shown))?;
    let found = match a.hash_offset {
        Some(o) => Some((o, OffsetSource::Given, None)),
        None => verity::find_superblock(&dev)
            .with_context(|| format!("looking for the verity superblock in {}", source.shown))?
            .map(|f| (f.offset, f.source, Some(f.superblock))),
    };
    drop(dev);

    let mut r = Report {
        result: Outcome::NoHashTree,
        label: slot.as_ref().map(|s| s.label.clone()),
        partition: slot.as_ref().map(|s| s.partition),
        partuuid: slot.as_ref().map(|s| s.partuuid.clone()),
        device: source.shown.clone(),
        root_hash,
        root_hash_from,
        hash_offset: found.as_ref().map(|f| f.0),
        hash_offset_from: found.as_ref().map(|f| f.1),
        hash_algorithm: None,
        data_blocks: None,
        data_block_size: None,
        failed_at: None,
        area: None,
        block: None,
        message: String::new(),
        libcryptsetup: Vec::new(),
        seconds: 0.0,
        actions: Vec::new(),
    };
    if let Some((_, _, Some(sb))) = &found {
        r.hash_algorithm = Some(sb.algorithm.clone());
        r.data_blocks = Some(sb.data_blocks);
        r.data_block_size = Some(sb.data_block_size);
    }
    let what = match &slot {
        Some(s) => format!("{} (partition {})", s.label, s.partition),
        None => source.shown.clone(),
    };
    match found {
        None => {
            r.message = format!(
                "{what}: no hash tree: no verity superblock after the filesystem (looked at Flatcar's offsets and every 4 KiB boundary)"
            );
        }
        Some((offset, _, sb)) => {
            let out = crate::probe::cryptsetup::verify(&source.path, offset, &hash_bytes)?;
            r.libcryptsetup = out.log;
            use crate::probe::cryptsetup::Verdict;
            match out.verdict {
                Verdict::Verified => {
                    r.result = Outcome::Verified;
                    r.message = format!(
                        "{what}: verified: {} data blocks and the hash tree at byte {offset} match root hash {}",
                        r.data_blocks.map_or_else(|| "all".into(), |n| n.to_string()),
                        r.root_hash
                    );
                }
                Verdict::Corrupted { position } => {
                    r.result = Outcome::Corrupted;
                    r.failed_at = Some(position);
                    let dbs = sb.as_ref().map_or(4096, |s| u64::from(s.data_block_size));
                    let hbs = sb.as_ref().map_or(4096, |s| u64::from(s.hash_block_size));
                    if position < offset {
                        r.area = Some("data");
                        r.block = Some(position / dbs);
                        r.message = format!(
                            "{what}: corrupted: data block {} (byte {position}) does not match its hash in the tree",
                            position / dbs
                        );
                    } else {
                        r.area = Some("hash-tree");
                        r.block = Some((position - offset) / hbs);
                        r.message = format!(
                            "{what}: corrupted: hash-tree block {} (byte {position}) does not match its hash in the level above",
                            (position - offset) / hbs
                        );
                    }
                }
                Verdict::WrongHash => {
                    r.result = Outcome::WrongHash;
                    r.message = format!(
                        "{what}: wrong root hash: every block matches the hash tree, but the tree does not match {} from {} (a different image, or a damaged top hash block)",
                        r.root_hash, r.root_hash_from
                    );
                }
                Verdict::NoHashTree => {
                    r.message = format!(
                        "{what}: no hash tree: libcryptsetup found no verity superblock at byte {offset}"
                    );
                }
            }
        }
    }
    drop(source);
    r.seconds = t0.elapsed().as_secs_f64();

    let failed = r.result != Outcome::Verified;
    if failed {
        log::error!("{}", r.message);
        if a.unstage_on_failure {
            match &target {
                Some(t) => unstage(&env, t, &mut r),
                None => r.actions.push("not un-staged: no slot to un-stage".into()),
            }
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(anyhow::Error::from)?
        );
    } else {
        println!("{}", r.message);
        for act in &r.actions {
            println!("  {act}");
        }
    }
    Ok(if failed {
        ExitCode::VerifyFailed
    } else {
        ExitCode::Ok
    })
}

/// Un-stage a slot that failed: tries=0, successful=0 (ab::spend_slot), only while it
/// is still the staged one, and record why. Never leaves nothing bootable.
fn unstage(env: &Env, t: &Target, r: &mut Report) {
    let before = t.slot();
    let result = change_slots(&t.disk, |slots: &mut Vec<Slot>| -> Result<()> {
        let i = ab::find_partition(slots, before.partition)?;
        if slots[i] != before || staged(slots) != Some(i) {
            bail!(
                "{} is not the staged slot any more (the table changed during verification)",
                before.label
            );
        }
        ab::spend_slot(slots, i)?;
        Ok(())
    })
    .map(|(_, after)| after);
    let mut rec = Record::new(record::Event::VerifyFailed, record::Verdict::Corrupted);
    rec.disk = Some(t.disk.display().to_string());
    rec.booted = booted(env, t);
    // the running system's version, only when the disk is the running system's
    if rec.booted.is_some() {
        rec.version_id = probe::version_id(&env.usr_candidates);
    }
    rec.reasons.push(r.message.clone());
    match result {
        Ok(slots) => {
            let others: Vec<String> = slots
                .iter()
                .filter(|s| s.partition != before.partition)
                .map(|s| format!("{} {}", s.label, s.attrs))
                .collect();
            let action = record::Action::Unstaged {
                label: before.label.clone(),
                partition: before.partition,
                stays_on: others.join(", "),
            };
            let msg = action.to_string();
            log::error!("{msg}");
            rec.verdict = record::Verdict::Unstaged;
            rec.actions.push(action);
            rec.slots = slots;
            r.actions.push(msg);
        }
        Err(e) => {
            let msg = format!("not un-staged: {e:#}");
            log::error!("{msg}");
            rec.reasons.push(msg.clone());
            rec.slots = t.table.slots();
            r.actions.push(msg);
        }
    }
    #[derive(Serialize)]
    struct WithReport<'a> {
        #[serde(flatten)]
        record: &'a Record,
        verify: &'a Report,
    }
    if let Err(e) = crate::act::history::append_history(
        &env.sysroot,
        &WithReport {
            record: &rec,
            verify: r,
        },
    ) {
        log::warn!("history not updated: {e:#}");
        r.actions.push(format!("history not updated: {e:#}"));
    } else {
        r.actions.push(format!(
            "recorded verify-failed in {}",
            env.sysroot
                .join(crate::act::history::HISTORY_DIR)
                .join(crate::act::history::HISTORY_FILE)
                .display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_is_the_next_boot_with_a_try_left() {
        let s = ab::slots_from(&[(1, 0, true), (2, 1, false)]);
        assert_eq!(staged(&s), Some(1));
        // the try was spent (B is booting or failed): not staged any more
        assert_eq!(
            staged(&ab::slots_from(&[(1, 0, true), (2, 0, false)])),
            None
        );
        // fresh image, B good, a manual rollback with --force (T1 on a never-good slot)
        assert_eq!(
            staged(&ab::slots_from(&[(1, 0, true), (0, 0, false)])),
            None
        );
        assert_eq!(staged(&ab::slots_from(&[(1, 0, true), (2, 0, true)])), None);
        assert_eq!(
            staged(&ab::slots_from(&[(2, 1, false), (1, 0, true)])),
            Some(0)
        );
        // B has tries but A has the higher priority: GRUB boots A, nothing is staged
        assert_eq!(
            staged(&ab::slots_from(&[(3, 0, true), (2, 1, false)])),
            None
        );
    }
}
