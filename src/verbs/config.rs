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
        Config::load(root)
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
