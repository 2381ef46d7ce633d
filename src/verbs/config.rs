//! `abguard config`: the effective health-gate settings, and `--check [FILE…]`, which
//! validates files with the boot's own parser and no side effects (for provisioning
//! pipelines).

use crate::cli::args::ConfigArgs;
use crate::config::{keys::KEYS, Config};
use crate::exit::{ExitCode, VerbResult};
use std::path::{Path, PathBuf};

/// Where a key's value came from: the last file that sets it (for CRITICAL_UNITS, which
/// merges, every one), else the built-in default.
fn origin(texts: &[(PathBuf, String)], key: &str, merged: bool) -> String {
    let sets = |t: &str| {
        t.lines().any(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
    };
    let from: Vec<String> = texts
        .iter()
        .filter(|(_, t)| sets(t))
        .map(|(p, _)| p.display().to_string())
        .collect();
    match (from.last(), merged) {
        (None, _) => "default".into(),
        (Some(_), true) => format!("from {}", from.join(" + ")),
        (Some(last), false) => format!("from {last}"),
    }
}

/// What an operator should know about the effective configuration.
fn warnings(root: &Path, c: &Config, under_root: bool) -> Vec<String> {
    let mut w = Vec::new();
    if under_root && c.sources.is_empty() {
        w.push(format!(
            "no configuration file under {} (usr/lib/abguard/abguard.conf, \
             etc/abguard/abguard.conf[.d]): the built-in defaults apply",
            root.display()
        ));
    }
    if c.critical_units.is_empty() {
        w.push(
            "CRITICAL_UNITS is empty: the gate waits only for boot-complete.target and \
             STABLE_FOR, so no service of yours is protected"
                .into(),
        );
    }
    w
}

/// `config`: the effective settings, or `--check` of files.
pub fn run(a: &ConfigArgs) -> VerbResult {
    let (root, json, check, files) = (&a.root, a.json, a.check, &a.files);
    let c = if files.is_empty() {
        let mut c = Config::load(root);
        // the checks the gate would refuse, reported before the boot that needs them
        for f in crate::probe::checks::discover(root) {
            if let Some(why) = f.refused {
                c.errors.push(crate::config::ConfigError {
                    file: std::path::PathBuf::from(format!("health check {}", f.name)),
                    line: 0,
                    what: why,
                });
            }
        }
        c
    } else {
        let mut c = Config::default();
        for f in files {
            if std::fs::symlink_metadata(f).is_err() {
                c.errors.push(crate::config::ConfigError {
                    file: f.clone(),
                    line: 0,
                    what: "no such file".into(),
                });
            }
            c.read_file(f);
        }
        c
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).map_err(anyhow::Error::from)?
        );
    } else if !check {
        let texts: Vec<(PathBuf, String)> = (c.sources.iter())
            .filter_map(|s| {
                // the bounded reader: a source swapped for a FIFO since it was loaded never hangs
                let t = crate::safefs::read_text(s, crate::safefs::cap::CONFIG).ok()??;
                Some((s.clone(), t))
            })
            .collect();
        for k in KEYS {
            println!(
                "{}={}  # {}",
                k.name,
                (k.show)(&c),
                origin(&texts, k.name, k.name == "CRITICAL_UNITS")
            );
        }
        for w in warnings(root, &c, files.is_empty()) {
            eprintln!("warning: {w}");
        }
    }
    for e in &c.errors {
        // the line was skipped; everything else applies
        eprintln!("{e}");
    }
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    if check && !json {
        match c.errors.len() {
            0 => println!("ok: {} file(s) read, no errors", c.sources.len()),
            n => println!("{n} error(s)"),
        }
    }
    // the effective settings are printed either way; a skipped line is an error
    Ok(match c.errors.is_empty() {
        true => ExitCode::Ok,
        false => ExitCode::Error,
    })
}
