//! `abguard config`: the effective health-gate settings, and `--check [FILE…]`, which
//! validates files with the boot's own parser and no side effects (for provisioning
//! pipelines).

use crate::cli::args::ConfigArgs;
use crate::config::{keys::KEYS, Config};
use crate::exit::{ExitCode, VerbResult};

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
        for k in KEYS {
            println!("{}={}", k.name, (k.show)(&c));
        }
        for s in &c.sources {
            println!("# from {}", s.display());
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
