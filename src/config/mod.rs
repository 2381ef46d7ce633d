//! Declarative configuration for the booted system's health gate.
//!
//! Files are `KEY=VALUE` (the syntax of a systemd EnvironmentFile, so Butane/Ignition
//! can write them and shell can read them): /usr/lib/abguard/abguard.conf (vendor),
//! /etc/abguard/abguard.conf, then /etc/abguard/abguard.conf.d/*.conf in name order.
//! Later files override scalars; CRITICAL_UNITS from all files are merged, so each
//! drop-in can add its own service.

/// systemd time spans (`90s`, `1h30min`) for DEADLINE and friends.
pub mod timespan;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use timespan::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Spend the slot and reboot so GRUB falls back.
    Rollback,
    /// Record and log only.
    Report,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Units that must be active before the first boot after an upgrade is healthy.
    pub critical_units: Vec<String>,
    /// How long after the booted system's manager started an unproven upgrade is
    /// rolled back (OnStartupSec= of abguard-deadline.timer).
    pub deadline: Span,
    /// Mark the slot good when the gate passes (for systems that mask update-engine).
    pub mark_good: bool,
    pub on_failure: OnFailure,
    /// Read all of /usr through dm-verity before boot-complete.target on the first boot
    /// after an upgrade (abguard-read-usr.service).
    pub verify_usr: bool,
    /// Files that contributed, in the order read.
    pub sources: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            critical_units: Vec::new(),
            deadline: Span(600_000_000),
            mark_good: false,
            on_failure: OnFailure::Rollback,
            verify_usr: false,
            sources: Vec::new(),
        }
    }
}

/// A unit name systemd would accept for a critical unit (no paths, no templates left open).
pub(crate) fn valid_unit(u: &str) -> bool {
    let types = [
        ".service", ".socket", ".mount", ".target", ".path", ".timer", ".device", ".swap",
    ];
    !u.is_empty()
        && u.len() < 256
        && types.iter().any(|t| u.ends_with(t) && u.len() > t.len())
        && !u.ends_with("@.service")
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

impl Config {
    /// Apply one file's text; errors name the file and line.
    pub fn apply(&mut self, name: &Path, text: &str) -> Result<()> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let at = || format!("{}:{}", name.display(), n + 1);
            let Some((k, v)) = line.split_once('=') else {
                bail!("{}: expected KEY=VALUE, got {line:?}", at());
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').trim();
            match k.trim() {
                "CRITICAL_UNITS" => {
                    for u in v.split_whitespace() {
                        if !valid_unit(u) {
                            bail!("{}: {u:?} is not a unit name (e.g. nginx.service)", at());
                        }
                        if !self.critical_units.iter().any(|x| x == u) {
                            self.critical_units.push(u.to_string());
                        }
                    }
                }
                "DEADLINE" => {
                    self.deadline = timespan::deadline(v)
                        .map_err(|e| anyhow::anyhow!("{}: DEADLINE={e}", at()))?;
                }
                "MARK_GOOD" => {
                    self.mark_good = parse_bool(v)
                        .ok_or_else(|| anyhow::anyhow!("{}: MARK_GOOD must be yes or no", at()))?
                }
                "VERIFY_USR" => {
                    self.verify_usr = parse_bool(v)
                        .ok_or_else(|| anyhow::anyhow!("{}: VERIFY_USR must be yes or no", at()))?
                }
                "ON_FAILURE" => {
                    self.on_failure = match v {
                        "rollback" => OnFailure::Rollback,
                        "report" => OnFailure::Report,
                        _ => bail!("{}: ON_FAILURE must be rollback or report", at()),
                    }
                }
                other => bail!("{}: unknown key {other:?}", at()),
            }
        }
        self.sources.push(name.to_path_buf());
        Ok(())
    }

    /// Read the configuration under `root` ("/" on a live system).
    /// A FIFO or device in place of a file is an error at once, never a hang at boot
    /// (the generator reads these too).
    pub fn load(root: &Path) -> Result<Config> {
        let mut c = Config::default();
        let mut files = vec![
            root.join("usr/lib/abguard/abguard.conf"),
            root.join("etc/abguard/abguard.conf"),
        ];
        if let Ok(rd) = std::fs::read_dir(root.join("etc/abguard/abguard.conf.d")) {
            let mut d: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            d.sort();
            files.extend(d);
        }
        for f in files {
            if let Some(t) = read_config_file(&f)? {
                c.apply(&f, &t)?;
            }
        }
        Ok(c)
    }
}

/// The text of one configuration file; `None` when it does not exist.
fn read_config_file(f: &Path) -> Result<Option<String>> {
    use crate::safefs::{open_file, Kind};
    use std::io::Read;
    let mut file = match open_file(f, false, Kind::Regular, nix::fcntl::OFlag::empty()) {
        Ok(file) => file,
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut t = String::new();
    file.read_to_string(&mut t)
        .with_context(|| format!("reading {}", f.display()))?;
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let mut c = Config::default();
        c.apply(Path::new("t.conf"), text)?;
        Ok(c)
    }

    #[test]
    fn table() {
        let c = parse("# critical\nCRITICAL_UNITS=nginx.service docker.service\nDEADLINE=90s\nMARK_GOOD=yes\nON_FAILURE=report\n").unwrap();
        assert_eq!(c.critical_units, ["nginx.service", "docker.service"]);
        assert_eq!(
            (c.deadline, c.mark_good, c.on_failure),
            (Span(90_000_000), true, OnFailure::Report)
        );
        // systemd's grammar, not only integer+unit words
        for (v, secs) in [
            ("\"1h 30min\"", 5400),
            ("1h30min", 5400),
            ("1.5h", 5400),
            ("2 h", 7200),
            ("1d", 86400),
            ("90", 90),
        ] {
            let d = parse(&format!("DEADLINE={v}")).unwrap().deadline;
            assert_eq!(d, Span(secs * 1_000_000), "{v}");
        }
        assert!(!Config::default().verify_usr);
        assert!(parse("VERIFY_USR=yes").unwrap().verify_usr);
        assert!(!parse("VERIFY_USR=yes\nVERIFY_USR=off").unwrap().verify_usr);
        for bad in [
            "CRITICAL_UNITS=../../etc/passwd",
            "CRITICAL_UNITS=nginx",
            "CRITICAL_UNITS=getty@.service",
            "DEADLINE=soon",
            "DEADLINE=",
            "DEADLINE=0",
            "DEADLINE=30s",
            "DEADLINE=25h",
            "DEADLINE=99999999999999999999999s",
            "DEADLINE=1h foo",
            "DEADLINE=-5min",
            "DEADLINE=infinity",
            "MARK_GOOD=maybe",
            "VERIFY_USR=sometimes",
            "ON_FAILURE=panic",
            "NOPE=1",
            "no equals sign",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("t.conf:1:"), "{bad}: {e}");
        }
    }

    #[test]
    fn layering() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str, s: &str| {
            let f = t.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, s).unwrap();
        };
        w(
            "usr/lib/abguard/abguard.conf",
            "DEADLINE=10min\nCRITICAL_UNITS=sshd.service\n",
        );
        w("etc/abguard/abguard.conf", "DEADLINE=5min\n");
        w(
            "etc/abguard/abguard.conf.d/20-web.conf",
            "CRITICAL_UNITS=nginx.service\n",
        );
        w(
            "etc/abguard/abguard.conf.d/10-db.conf",
            "CRITICAL_UNITS=postgres.service sshd.service\n",
        );
        w("etc/abguard/abguard.conf.d/README", "ignored");
        let c = Config::load(t.path()).unwrap();
        assert_eq!(c.deadline.to_string(), "5min");
        assert_eq!(
            c.critical_units,
            ["sshd.service", "postgres.service", "nginx.service"]
        );
        assert_eq!(c.sources.len(), 4);
        assert_eq!(
            Config::load(&t.path().join("nothing")).unwrap(),
            Config::default()
        );
    }
}
