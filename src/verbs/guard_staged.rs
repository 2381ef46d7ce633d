//! `abguard guard-staged`: the loop guard, run when /run/reboot-required appears. When
//! the staged slot holds a build that failed its first boot before, un-stage it
//! (tries=0, successful=0) before any reboot can use it, and record `restage-refused`.

use crate::act::held;
use crate::act::record::{Build, Event, Record, Verdict};
use crate::cli::lifecycle::GuardStagedArgs;
use crate::decide::ab;
use crate::decide::loopguard::{self, Held};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, MachinePaths};
use crate::types::Slot;
use anyhow::Result;
use std::path::Path;

/// `guard-staged`: un-stage a held build before a reboot can use it.
pub fn run(a: &GuardStagedArgs) -> VerbResult {
    let json = a.json;
    let env = MachinePaths::new(&a.paths.overrides(), false);
    let path = env.disk_path()?;
    let (_, table) = crate::disk::read_table(&path)?;
    let slots = table.slots();
    let say = |msg: &str| {
        match json {
            true => println!(
                "{}",
                serde_json::json!({ "unstaged": false, "message": msg })
            ),
            false => println!("{msg}"),
        }
        Ok(ExitCode::Ok)
    };
    let Some(i) = ab::staged(&slots) else {
        return say("no staged slot");
    };
    // the history has no line for a staging update_engine did: the breadcrumb says the
    // next boot tries this slot, should it die before abguard's initrd runs
    crate::act::attempt::staged(&env.sysroot, &env.proc, &slots[i].partuuid);
    let held = held::read(&env.sysroot)?;
    let hash = match super::staged_hash(&env.sysroot, &slots[i]) {
        Ok(h) => h,
        Err(e) if held.is_empty() => return say(&format!("nothing held ({e:#})")),
        Err(e) => {
            log::warn!("cannot tell which build is staged: {e:#}");
            return say(&format!("the staged build is unknown: {e:#}"));
        }
    };
    let Some(h) = loopguard::holding(&held, &hash).cloned() else {
        return say(&format!("{} holds build {hash}: not held", slots[i].label));
    };
    let r = unstage(&env, &path, &slots[i], &h)?;
    if let Err(e) = crate::act::history::record_event(&env.sysroot, &r) {
        log::warn!("history not updated: {e:#}");
    }
    let action = r
        .actions
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    log::error!("{}: {action}", r.reasons[0]);
    match json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(anyhow::Error::from)?
        ),
        false => println!("{action}\n{}", r.reasons[0]),
    }
    Ok(ExitCode::Ok)
}

fn unstage(env: &MachinePaths, path: &Path, s: &Slot, h: &Held) -> Result<Record> {
    let before = s.clone();
    let (after, unstaged) = crate::disk::unstage(path, &before)?;
    let mut r = Record::at(&env.proc, Event::RestageRefused, Verdict::Unstaged);
    r.disk = Some(path.display().to_string());
    r.version_id = probe::version_id(&env.usr_candidates);
    r.before = vec![before.clone()];
    r.slots = after;
    r.failed = Some(Build {
        label: before.label.clone(),
        partition: before.partition,
        partuuid: before.partuuid.clone(),
        version_id: h.version_id.clone(),
        root_hash: Some(h.root_hash.clone()),
        tried_at: None,
    });
    r.reasons.push(held::describe(h));
    r.actions.push(unstaged);
    Ok(r)
}
