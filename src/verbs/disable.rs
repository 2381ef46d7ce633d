//! `disable` and `enable`: switch abguard's health gate off or on on one node. Off,
//! a first boot after an upgrade passes its gate at once (as stock Flatcar would
//! boot it), and no unit's failure or deadline rolls it back; recorded in the history
//! and shown first by `status`.

use crate::act::record::{Event, Record, Verdict};
use crate::act::{history, steer};
use crate::cli::args::{DisableArgs, EnableArgs};
use crate::exit::{ExitCode, VerbResult};
use std::path::{Path, PathBuf};

fn root(sysroot: Option<&Path>) -> PathBuf {
    sysroot.map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

fn record(root: &Path, event: Event, reason: String) {
    let mut r = Record::at(&root.join("proc"), event, Verdict::Manual);
    r.reasons.push(reason);
    if let Err(e) = history::record_event(root, &r) {
        log::warn!("history not updated: {e:#}");
    }
}

pub fn disable(a: &DisableArgs) -> VerbResult {
    let (root, reason) = (root(a.sysroot.as_deref()), a.reason.as_deref());
    let d = steer::Disabled {
        since: crate::act::record::now_rfc3339(),
        reason: reason.unwrap_or("no reason given").to_string(),
    };
    if steer::set_disabled(&root, Some(&d))? {
        record(
            &root,
            Event::Disabled,
            format!("abguard disabled: {}", d.reason),
        );
    }
    println!(
        "abguard is disabled on this node: first boots after an upgrade pass at once, nothing \
         rolls them back; `abguard enable` switches it on again"
    );
    if steer::gate_pending(&root.join("run")) {
        println!("the gate pending now still decides: `abguard pass-gate` releases it");
    }
    Ok(ExitCode::Ok)
}

pub fn enable(a: &EnableArgs) -> VerbResult {
    let root = root(a.sysroot.as_deref());
    if steer::set_disabled(&root, None)? {
        record(&root, Event::Enabled, "abguard enabled".into());
    }
    println!("abguard is enabled: the next first boot after an upgrade is health-gated");
    Ok(ExitCode::Ok)
}
