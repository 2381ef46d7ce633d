//! Declarative configuration for the booted system's health gate.
//!
//! Files are `KEY=VALUE` (the syntax of a systemd EnvironmentFile, so Butane/Ignition
//! can write them and shell can read them): /usr/lib/abguard/abguard.conf (vendor),
//! /etc/abguard/abguard.conf, then /etc/abguard/abguard.conf.d/*.conf in name order.
//! Later files override scalars; CRITICAL_UNITS from all files are merged, so each
//! drop-in can add its own service.

/// Every key, defined once.
pub mod keys;
/// The EnvironmentFile syntax: quoting, continuation lines.
pub mod parse;
/// systemd time spans (`90s`, `1h30min`) for DEADLINE and friends.
pub mod timespan;

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use timespan::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Spend the slot and reboot so GRUB falls back.
    Rollback,
    /// Record in full, then behave as stock Flatcar: the healthy flag is written.
    Report,
}

/// One line (or file) that could not be applied: it was skipped, the rest applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 0: the whole file (unreadable).
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.what),
            n => write!(f, "{}:{n}: {}", self.file.display(), self.what),
        }
    }
}

impl Serialize for ConfigError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Units that must be active, and stay so, before the first boot after an upgrade
    /// is healthy.
    pub critical_units: Vec<String>,
    /// How long after the booted system's manager started an unproven upgrade is
    /// rolled back (OnStartupSec= of abguard-deadline.timer).
    pub deadline: Span,
    /// How long the critical units must stay up, unrestarted, after the last came up.
    pub stable_for: Span,
    /// How long one health-check run may take.
    pub check_timeout: Span,
    /// The built-in check that the sysext images of the last ordinary boot are merged.
    pub check_sysext: bool,
    /// Mark the slot good when the gate passes (for systems that mask update-engine).
    pub mark_good: bool,
    pub on_failure: OnFailure,
    /// Read all of /usr through dm-verity before boot-complete.target on the first boot
    /// after an upgrade (abguard-read-usr.service).
    pub verify_usr: bool,
    /// The watchdog's timeout on a first boot after an upgrade, initrd to verdict.
    pub hang_budget: Span,
    /// Files that contributed, in the order read.
    pub sources: Vec<PathBuf>,
    /// Lines that were skipped: on a first boot after an upgrade the gate cannot pass.
    pub errors: Vec<ConfigError>,
    /// Lines that applied but deserve a look (a key set twice in one file: the last wins).
    pub warnings: Vec<ConfigError>,
    /// The critical units already listed, so merging 200,000 stays fast (a BTreeSet:
    /// the binary has B-trees of strings already, a hash set would add kilobytes).
    #[serde(skip)]
    pub unit_set: std::collections::BTreeSet<String>,
}

impl Default for Config {
    /// Every key's default, through its own parser (the defaults are defined once).
    fn default() -> Self {
        let mut c = Config {
            critical_units: Vec::new(),
            deadline: timespan::DEADLINE_MIN,
            stable_for: Span(0),
            check_timeout: Span(0),
            check_sysext: false,
            mark_good: false,
            on_failure: OnFailure::Rollback,
            verify_usr: false,
            hang_budget: Span(0),
            sources: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            unit_set: Default::default(),
        };
        for k in keys::KEYS {
            // a default that does not parse is caught by the table's unit test
            let _ = (k.set)(&mut c, k.default);
        }
        c
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

impl Config {
    /// The part of the configuration the gate's pure decision needs.
    pub fn gate_policy(&self) -> crate::decide::gate::GatePolicy {
        crate::decide::gate::GatePolicy {
            stable_for: self.stable_for.0,
            rollback: self.on_failure == OnFailure::Rollback,
        }
    }

    /// Apply one file's text line by line: a bad line is recorded in `errors` (file,
    /// line, what) and skipped, every other line applies.
    pub fn apply(&mut self, name: &Path, text: &str) {
        self.apply_bytes(name, text.as_bytes())
    }

    /// [`Config::apply`] on bytes: a line that is not UTF-8 is that line's error.
    pub fn apply_bytes(&mut self, name: &Path, bytes: &[u8]) {
        let mut seen: Vec<(&'static str, usize)> = Vec::new();
        for l in parse::lines(bytes) {
            let err = |what: String| ConfigError {
                file: name.to_path_buf(),
                line: l.number,
                what,
            };
            let applied = l.text.and_then(|(k, v)| {
                let key = keys::key(&k).ok_or_else(|| format!("unknown key {k:?}"))?;
                (key.set)(self, &v).map_err(|e| format!("{k}={e}"))?;
                Ok(key.name)
            });
            match applied {
                // CRITICAL_UNITS lines merge (a list may take many lines): no warning
                Ok("CRITICAL_UNITS") => {}
                Ok(k) => {
                    if let Some((_, first)) = seen.iter().find(|(s, _)| *s == k) {
                        self.warnings.push(err(format!(
                            "{k} is also set on line {first}: the last one wins"
                        )));
                    } else {
                        seen.push((k, l.number));
                    }
                }
                Err(what) => self.errors.push(err(what)),
            }
        }
        self.sources.push(name.to_path_buf());
    }

    /// Read the configuration under `root` ("/" on a live system). Never fails: an
    /// unreadable file is one more entry in `errors` (protection stays on).
    /// A FIFO or device in place of a file is an error at once, never a hang at boot
    /// (the generator reads these too).
    pub fn load(root: &Path) -> Config {
        let mut c = Config::default();
        for f in files(root) {
            c.read_file(&f);
        }
        c
    }

    /// Apply one file if it exists; an unreadable one is recorded as an error.
    pub fn read_file(&mut self, f: &Path) {
        match read_config_file(f) {
            Ok(Some(t)) => self.apply_bytes(f, &t),
            Ok(None) => {}
            Err(e) => self.errors.push(ConfigError {
                file: f.to_path_buf(),
                line: 0,
                what: format!("{e:#}"),
            }),
        }
    }
}

/// The files read, in order: vendor defaults, the machine's file, its drop-ins.
pub fn files(root: &Path) -> Vec<PathBuf> {
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
    files
}

/// The text of one configuration file; `None` when it does not exist.
fn read_config_file(f: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    crate::safefs::read_bounded(f, crate::safefs::cap::CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        let mut c = Config::default();
        c.apply(Path::new("t.conf"), text);
        c
    }

    #[test]
    fn defaults_come_from_the_key_table() {
        let d = Config::default();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.deadline, Span(600_000_000));
        assert_eq!(
            (d.stable_for, d.check_timeout),
            (Span(60_000_000), Span(60_000_000))
        );
        assert!(d.check_sysext && !d.mark_good && !d.verify_usr);
        for k in keys::KEYS {
            assert_eq!((k.show)(&d), k.default, "{}", k.name);
        }
    }

    #[test]
    fn table() {
        let c = parse("# critical\nCRITICAL_UNITS=nginx.service docker.service\nDEADLINE=90s\nMARK_GOOD=yes\nON_FAILURE=report\nSTABLE_FOR=0\nCHECK_TIMEOUT=5s\n");
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.critical_units, ["nginx.service", "docker.service"]);
        assert_eq!(
            (c.deadline, c.mark_good, c.on_failure),
            (Span(90_000_000), true, OnFailure::Report)
        );
        assert_eq!((c.stable_for, c.check_timeout), (Span(0), Span(5_000_000)));
        // systemd's grammar, not only integer+unit words
        for (v, secs) in [
            ("\"1h 30min\"", 5400),
            ("1h30min", 5400),
            ("1.5h", 5400),
            ("2 h", 7200),
            ("1d", 86400),
            ("90", 90),
        ] {
            let d = parse(&format!("DEADLINE={v}")).deadline;
            assert_eq!(d, Span(secs * 1_000_000), "{v}");
        }
        assert!(parse("VERIFY_USR=yes").verify_usr);
        assert!(!parse("VERIFY_USR=yes\nVERIFY_USR=off").verify_usr);
        for bad in [
            "CRITICAL_UNITS=../../etc/passwd",
            "CRITICAL_UNITS=nginx",
            "CRITICAL_UNITS=getty@.service",
            "CRITICAL_UNITS=nginx.service,docker.service",
            "DEADLINE=soon",
            "DEADLINE=",
            "DEADLINE=0",
            "DEADLINE=30s",
            "DEADLINE=25h",
            "DEADLINE=99999999999999999999999s",
            "DEADLINE=1h foo",
            "DEADLINE=-5min",
            "DEADLINE=infinity",
            "STABLE_FOR=2h",
            "STABLE_FOR=soon",
            "CHECK_TIMEOUT=0",
            "CHECK_SYSEXT=perhaps",
            "MARK_GOOD=maybe",
            "VERIFY_USR=sometimes",
            "ON_FAILURE=panic",
            "NOPE=1",
            "no equals sign",
        ] {
            let c = parse(bad);
            assert_eq!(c.errors.len(), 1, "{bad}");
            let e = c.errors[0].to_string();
            assert!(e.starts_with("t.conf:1: "), "{bad}: {e}");
            // the bad line is skipped: everything keeps its default
            assert_eq!(
                Config {
                    errors: vec![],
                    sources: vec![],
                    warnings: vec![],
                    ..c
                },
                Config::default(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_line_is_skipped_and_the_rest_applies() {
        let c = parse("CRITICAL_UNITS=nginx.service,docker.service\nDEADLINE=2min\nMARK_GOOD=maybe\nCRITICAL_UNITS=sshd.service\n");
        assert_eq!(c.critical_units, ["sshd.service"]);
        assert_eq!(c.deadline, Span(120_000_000));
        let e: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("t.conf:1: CRITICAL_UNITS=") && e[0].contains("commas"),
            "{e:?}"
        );
        assert!(e[1].starts_with("t.conf:3: MARK_GOOD="), "{e:?}");
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
        let c = Config::load(t.path());
        assert_eq!(c.deadline.to_string(), "5min");
        assert_eq!(
            c.critical_units,
            ["sshd.service", "postgres.service", "nginx.service"]
        );
        assert_eq!(c.sources.len(), 4);
        assert_eq!(Config::load(&t.path().join("nothing")), Config::default());
        // an unreadable file is an error entry, not a failed load
        std::fs::create_dir_all(t.path().join("etc/abguard/abguard.conf.d/30-dir.conf")).unwrap();
        let c = Config::load(t.path());
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert!(c.errors[0].to_string().contains("30-dir.conf"));
        assert_eq!(c.deadline.to_string(), "5min");
    }
}
