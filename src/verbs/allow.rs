//! `abguard allow`: release held builds so they may be staged again, and record it.

use crate::act::held;
use crate::act::record::{Event, Record, Verdict};
use crate::cli::lifecycle::AllowArgs;
use crate::decide::loopguard::{self, Release};
use crate::exit::{ExitCode, VerbResult};
use anyhow::anyhow;
use std::path::PathBuf;

pub fn run(a: &AllowArgs) -> VerbResult {
    let root = a.sysroot.clone().unwrap_or_else(|| PathBuf::from("/"));
    let which = match (&a.version, &a.root_hash) {
        (Some(v), _) => Release::Version(v.clone()),
        (_, Some(h)) => Release::RootHash(h.clone()),
        _ => Release::All,
    };
    let held = held::read(&root)?;
    let (kept, released) = loopguard::release(&held, &which);
    if released.is_empty() && which != Release::All {
        return Err(anyhow!(
            "no held build matches {} (held: {})",
            match &which {
                Release::Version(v) => format!("version {v}"),
                Release::RootHash(h) => format!("root hash {h}"),
                Release::All => unreachable!(),
            },
            if held.is_empty() {
                "none".to_string()
            } else {
                held.iter()
                    .map(|h| format!("{} {}", h.version_id.as_deref().unwrap_or("?"), h.root_hash))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
        .into());
    }
    if !released.is_empty() {
        held::write(&root, &kept)?;
        let mut r = Record::at(&root.join("proc"), Event::Allowed, Verdict::Allowed);
        r.reasons = released
            .iter()
            .map(|h| {
                format!(
                    "released build {} (root hash {}), held since {} for {}",
                    h.version_id.as_deref().unwrap_or("?"),
                    h.root_hash,
                    h.since,
                    h.event
                )
            })
            .collect();
        if let Err(e) = crate::act::history::record_event(&root, &r) {
            log::warn!("history not updated: {e:#}");
        }
    }
    if a.json {
        let out = serde_json::json!({ "released": released, "held": kept });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?
        );
    } else {
        for h in &released {
            println!(
                "released {} ({})",
                h.version_id.as_deref().unwrap_or("?"),
                h.root_hash
            );
        }
        println!("{} build(s) still held", kept.len());
    }
    Ok(ExitCode::Ok)
}
