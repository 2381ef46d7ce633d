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
use crate::disk::{gpt::Table, read_table};
use crate::exit::{ExitCode, Failure, VerbResult};
use crate::probe::source::{self, Source};
use crate::probe::verity::{self, OffsetSource};
use crate::probe::{self, MachinePaths};
use crate::types::{Booted, Slot};
use anyhow::{anyhow, bail, Context, Result};

/// The report and what libcryptsetup's verdict means in it.
mod report;
use report::{Outcome, Report};
use std::fs::File;
use std::path::PathBuf;

/// The slot whose partition is verified, with the table it came from.
struct SlotOnDisk {
    disk: PathBuf,
    table: Table,
    index: usize,
}

impl SlotOnDisk {
    fn slot(&self) -> Slot {
        self.table.slots()[self.index].clone()
    }
}

fn booted(env: &MachinePaths, t: &SlotOnDisk) -> Option<Booted> {
    let id = super::booted_slot(env, &t.disk, &t.table).ok()?;
    Some(Booted::of(&t.table.slots()[id.index], id.source))
}

/// The userspace build with libcryptsetup, beside the static /usr/bin/abguard.
pub const HELPER: &str = "/usr/lib/abguard/abguard-cryptsetup";
/// Without libcryptsetup: hand the whole command line to [`HELPER`] when it is
/// installed (the booted system), else fail clearly (the initrd, a bare static build).
#[cfg(not(feature = "cryptsetup"))]
pub fn run(_a: &VerifyArgs) -> VerbResult {
    use std::os::unix::process::CommandExt;
    // set on the hand-over, so a helper that lacks the feature too fails instead of
    // handing it on again
    const NO_DELEGATE: &str = "ABGUARD_NO_DELEGATE";
    let helper = std::path::Path::new(HELPER);
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

/// The slot `verify` was asked about, or `None` when nothing is staged and `--staged`
/// says that is fine.
#[cfg(feature = "cryptsetup")]
fn select(env: &MachinePaths, a: &VerifyArgs) -> Result<Option<Option<SlotOnDisk>>, Failure> {
    let need_table = a.device.is_none()
        || a.partition.is_some()
        || a.staged
        || a.unstage_on_failure
        || (a.root_hash.is_none() && a.kernel.is_none());
    if !need_table {
        return Ok(Some(None));
    }
    let disk = env.disk_path()?;
    let (_, table) = read_table(&disk)?;
    let slots = table.slots();
    let index = match (a.partition, ab::staged(&slots)) {
        (Some(n), _) => ab::find_partition(&slots, n)?,
        (None, Some(i)) => i,
        (None, None) if a.staged => return Ok(None),
        (None, None) => {
            return Err(anyhow!(
                "no staged USR slot (none boots next with tries left and successful=0); name one with --partition"
            )
            .into())
        }
    };
    Ok(Some(Some(SlotOnDisk { disk, table, index })))
}

/// The root hash to verify against, and where it came from.
#[cfg(feature = "cryptsetup")]
fn root_hash(env: &MachinePaths, a: &VerifyArgs, slot: Option<&Slot>) -> Result<(String, String)> {
    Ok(match (&a.root_hash, &a.kernel, slot) {
        (Some(h), _, _) => (h.trim().to_ascii_lowercase(), "--root-hash".to_string()),
        (None, Some(k), _) => (verity::kernel_root_hash(k)?, k.display().to_string()),
        (None, None, Some(s)) => {
            let k = verity::kernel_for(&env.sysroot, &s.partuuid);
            let h = verity::kernel_root_hash(&k)
                .context("reading the slot's root hash (pass --root-hash or --kernel)")?;
            (h, k.display().to_string())
        }
        (None, None, None) => bail!("no root hash: pass --root-hash, --kernel or a slot"),
    })
}

/// What to read: `--device`, the slot's partition node, or a copy out of the image.
#[cfg(feature = "cryptsetup")]
fn source(env: &MachinePaths, a: &VerifyArgs, target: Option<&SlotOnDisk>) -> Result<Source> {
    match (&a.device, target) {
        (Some(dev), _) => Ok(Source::direct(dev)),
        (None, Some(t)) if is_block(&t.disk) => {
            let node = source::partition_node(env, &t.disk, t.slot().partition)?;
            Ok(Source::direct(&node))
        }
        (None, Some(t)) => source::copy_out(&t.disk, &t.table, t.slot().partition),
        (None, None) => bail!("nothing to read: pass --device or a slot"),
    }
}

#[cfg(feature = "cryptsetup")]
pub fn run(a: &VerifyArgs) -> VerbResult {
    let t0 = std::time::Instant::now();
    let env = MachinePaths::new(&a.paths.overrides(), false);
    let Some(target) = select(&env, a)? else {
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
    };
    let slot = target.as_ref().map(SlotOnDisk::slot);
    let (root_hash, root_hash_from) = root_hash(&env, a, slot.as_ref())?;
    let hash_bytes = verity::parse_hex(&root_hash)?;
    let source = source(&env, a, target.as_ref())?;
    let dev = File::open(&source.path).with_context(|| format!("opening {}", source.shown))?;
    let found = match a.hash_offset {
        Some(o) => Some((o, OffsetSource::Given, None)),
        None => verity::find_superblock(&dev)
            .with_context(|| format!("looking for the verity superblock in {}", source.shown))?
            .map(|f| (f.offset, f.source, Some(f.superblock))),
    };
    drop(dev);
    let mut r = Report::new(slot.as_ref(), &source.shown, root_hash, root_hash_from);
    r.hash_offset = found.as_ref().map(|f| f.0);
    r.hash_offset_from = found.as_ref().map(|f| f.1);
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
            use std::io::IsTerminal;
            // libcryptsetup reads the whole slot in one call: say so before the wait
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "verify: reading {what} through libcryptsetup ({} MiB)…",
                    offset >> 20
                );
            }
            let out = crate::probe::cryptsetup::verify(&source.path, offset, &hash_bytes)?;
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "verify: {} MiB of data in {secs:.2} s ({:.0} MiB/s)",
                offset >> 20,
                (offset >> 20) as f64 / secs.max(1e-9)
            );
            r.libcryptsetup = out.log;
            r.judge(&what, out.verdict, offset, sb.as_ref());
        }
    }
    drop(source);
    r.seconds = t0.elapsed().as_secs_f64();
    finish(&env, a, target.as_ref(), r)
}

/// Log, un-stage when asked, print; the exit code says whether the slot verified.
#[cfg(feature = "cryptsetup")]
fn finish(
    env: &MachinePaths,
    a: &VerifyArgs,
    target: Option<&SlotOnDisk>,
    mut r: Report,
) -> VerbResult {
    let failed = r.result != Outcome::Verified;
    if failed {
        log::error!("{}", r.message);
        if a.unstage_on_failure {
            match target {
                Some(t) => unstage(env, t, &mut r),
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
fn unstage(env: &MachinePaths, t: &SlotOnDisk, r: &mut Report) {
    let before = t.slot();
    let result = crate::disk::unstage(&t.disk, &before);
    let mut rec = Record::at(
        &env.proc,
        record::Event::VerifyFailed,
        record::Verdict::Corrupted,
    );
    rec.disk = Some(t.disk.display().to_string());
    rec.booted = booted(env, t);
    // the running system's version, only when the disk is the running system's
    if rec.booted.is_some() {
        rec.version_id = probe::version_id(&env.usr_candidates);
    }
    rec.reasons.push(r.message.clone());
    match result {
        Ok((slots, action)) => {
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
    if let Err(e) = crate::act::history::append_report(&env.sysroot, &rec, "verify", r) {
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
