//! The loop guard's list of held builds on ROOT (`/var/lib/abguard/held.json`), written
//! through safefs (temp file + rename, no symlink followed).

use crate::act::flags::ROOT_STATE_DIR as HISTORY_DIR;
use crate::decide::loopguard::{self, Held};
use crate::safefs::SafeDir;
use crate::types::event::Event;
use crate::types::history::Build;
use anyhow::{Context, Result};
use std::path::Path;

pub const HELD_FILE: &str = "held.json";

#[derive(serde::Serialize, Default)]
struct File {
    held: Vec<Held>,
}

/// The held builds under `root`; none when there is no list. A list that does not
/// parse is an error naming it: silently dropping it would let a bad build back in.
pub fn read(root: &Path) -> Result<Vec<Held>> {
    let dir = root.join(HISTORY_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let d = SafeDir::open(&dir)?;
    let Some(b) = d.read(HELD_FILE, crate::safefs::cap::RECORD)? else {
        return Ok(Vec::new());
    };
    let what = || format!("parsing {}", dir.join(HELD_FILE).display());
    let v: serde_json::Value = serde_json::from_slice(&b).with_context(what)?;
    let list = v["held"]
        .as_array()
        .with_context(|| format!("{}: no \"held\" list", what()))?;
    let text = |h: &serde_json::Value, k: &str| h.get(k)?.as_str().map(str::to_string);
    // an entry without a root hash can match nothing: skipped
    Ok(list
        .iter()
        .filter_map(|h| {
            Some(Held {
                root_hash: text(h, "root_hash")?,
                version_id: text(h, "version_id"),
                event: text(h, "event").unwrap_or_default(),
                since: text(h, "since").unwrap_or_default(),
            })
        })
        .collect())
}

pub fn write(root: &Path, held: &[Held]) -> Result<()> {
    let dir = SafeDir::open(root)?.subpath(HISTORY_DIR, true)?;
    let body = serde_json::to_vec_pretty(&File {
        held: held.to_vec(),
    })?;
    dir.write_atomic(HELD_FILE, &body)
}

/// Hold `b` (it failed its first boot by `event` at `time`).
pub fn hold(root: &Path, b: &Build, event: &Event, time: &str) -> Result<()> {
    let held = read(root).unwrap_or_else(|e| {
        log::warn!("{e:#}: starting a new list");
        Vec::new()
    });
    write(root, &loopguard::with(&held, b, event, time))?;
    log::warn!(
        "holding build {} ({}): it failed its first boot; `abguard allow` releases it",
        b.version_id.as_deref().unwrap_or("?"),
        b.root_hash.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// One held build, for people: what it is, why, and how to release it.
pub fn describe(h: &Held) -> String {
    format!(
        "build {} (root hash {}) failed its first boot ({} at {}); `abguard allow --root-hash {}` releases it",
        h.version_id.as_deref().unwrap_or("?"),
        h.root_hash,
        h.event,
        h.since,
        h.root_hash
    )
}

/// One held build on one short line: version, a hash prefix, why, and the release.
pub fn short(h: &Held) -> String {
    let release = match &h.version_id {
        Some(v) => format!("--version {v}"),
        None => format!("--root-hash {}", h.root_hash),
    };
    format!(
        "build {} ({}…) failed its first boot ({} at {}); `abguard allow {release}`",
        h.version_id.as_deref().unwrap_or("?"),
        h.root_hash.get(..12).unwrap_or(&h.root_hash),
        h.event,
        h.since,
    )
}
