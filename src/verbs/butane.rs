//! `abguard butane`: the provisioning config that gives a machine its health-gate
//! settings, as Butane (variant flatcar, version 1.0.0) or as the Ignition 3.3.0 JSON
//! that Butane transpiles it to. It writes one drop-in, [`DROPIN`], so the settings
//! layer over the image's defaults like any other file in abguard.conf.d.
//!
//! The values are checked with the configuration parser's own rules, and the drop-in
//! text is parsed back with [`Config::apply`] before anything is printed.

use crate::cli::tools::ButaneArgs;
use crate::config::{self, keys, Config};
use crate::exit::{ExitCode, Failure, VerbResult};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Where the generated drop-in lands on the machine.
pub const DROPIN: &str = "/etc/abguard/abguard.conf.d/10-butane.conf";
/// Where `--check` scripts land: the machine's own health checks.
pub const CHECKS_DIR: &str = "/etc/abguard/checks.d";
/// The Ignition spec that Butane's flatcar 1.0.0 variant produces.
pub const IGNITION_VERSION: &str = "3.3.0";

fn parse_file_arg<'a>(opt: &str, s: &'a str) -> Result<(&'a str, &'a Path), String> {
    match s.split_once('=') {
        Some((name, path)) if !path.is_empty() => Ok((name, Path::new(path))),
        _ => Err(format!(
            "invalid --{opt} {s:?}: expected NAME=PATH, e.g. nginx.service=./nginx.service"
        )),
    }
}

fn parse_unit_file(s: &str) -> Result<(String, &Path), String> {
    let (name, path) = parse_file_arg("unit-file", s)?;
    if !config::valid_unit(name) {
        return Err(format!(
            "invalid unit {name:?}: not a unit name (e.g. nginx.service)"
        ));
    }
    Ok((name.to_string(), path))
}

/// A check's file name: what the gate runs from checks.d (no dot files, no paths).
fn parse_check(s: &str) -> Result<(String, &Path), String> {
    let (name, path) = parse_file_arg("check", s)?;
    let ok = !name.starts_with('.')
        && name.len() < 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(format!(
            "invalid check name {name:?}: letters, digits, '.', '_', '-'"
        ));
    }
    Ok((name.to_string(), path))
}

/// The health-gate settings a config carries: (key, value as the file will hold it).
#[derive(Clone, Default)]
pub struct Settings(pub Vec<(&'static keys::Key, String)>);

impl Settings {
    /// The settings the options ask for, each checked with its key's own parser, so
    /// provisioning cannot write what the boot would refuse.
    pub fn from_args(a: &ButaneArgs) -> Result<Settings, String> {
        let mut out = Vec::new();
        for k in keys::KEYS {
            let Some(v) = a.value(k.butane) else { continue };
            let mut one = Config::default();
            one.critical_units.clear();
            (k.set)(&mut one, &v).map_err(|e| format!("invalid --{} {e}", k.butane))?;
            out.push((k, (k.show)(&one)));
        }
        Ok(Settings(out))
    }

    /// The drop-in's text: only the keys given, so everything else keeps the values of
    /// the files read before it. Parsed back with the real parser before it is returned.
    pub fn config_text(&self) -> Result<String> {
        let mut t =
            String::from("# abguard health gate, written at provisioning (abguard butane)\n");
        for (k, v) in &self.0 {
            let _ = writeln!(t, "{}={v}", k.name);
        }
        // round trip: what the machine will read is what was asked for
        let mut c = Config::default();
        c.apply(Path::new(DROPIN), &t);
        let back = self.0.iter().all(|(k, v)| (k.show)(&c) == *v);
        if !c.errors.is_empty() || !back {
            bail!("internal error: the drop-in does not parse back to the settings:\n{t}");
        }
        Ok(t)
    }
}

/// One systemd unit of the user's own, written next to the drop-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    pub contents: String,
}

impl Unit {
    /// Butane/Ignition `enabled: true` runs `systemctl preset`, which needs [Install].
    pub fn enabled(&self) -> bool {
        self.contents.lines().any(|l| l.trim() == "[Install]")
    }
}

/// RFC 2397 data URL, percent-encoding every byte but RFC 3986's unreserved ones, as
/// Butane does for text it leaves uncompressed.
pub fn data_url(contents: &[u8]) -> String {
    let mut s = String::from("data:,");
    for &b in contents {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// A YAML scalar for `text` after `key: `: a literal block when that is exact and plain,
/// else a double-quoted string with everything but printable ASCII escaped.
fn yaml_text(text: &str, indent: usize) -> String {
    let plain = text.ends_with('\n')
        && !text.ends_with("\n\n")
        && text
            .bytes()
            .all(|b| b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
        && text
            .lines()
            .all(|l| !l.starts_with([' ', '\t']) && (l.is_empty() || !l.trim().is_empty()));
    if plain {
        let pad = " ".repeat(indent);
        let mut s = String::from("|\n");
        for l in text.lines() {
            if l.is_empty() {
                s.push('\n');
            } else {
                let _ = writeln!(s, "{pad}{l}");
            }
        }
        return s;
    }
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            ' '..='~' => s.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(s, "\\U{:08X}", c as u32);
            }
        }
    }
    s.push_str("\"\n");
    s
}

/// The Butane document: the drop-in, the check scripts (under [`CHECKS_DIR`], mode
/// 0700 and owned by root: the gate refuses a check anyone else could change) and the
/// units.
pub fn butane(config: &str, checks: &[Unit], units: &[Unit], kargs: &[String]) -> String {
    let mut y = String::from("variant: flatcar\nversion: 1.0.0\nstorage:\n  files:\n");
    let mut file = |path: &str, mode: &str, text: &str| {
        let owner = match mode {
            "0700" => "      user:\n        id: 0\n      group:\n        id: 0\n",
            _ => "",
        };
        let _ = write!(
            y,
            "    - path: {path}\n      mode: {mode}\n{owner}      contents:\n        inline: {}",
            yaml_text(text, 10)
        );
    };
    file(DROPIN, "0644", config);
    for c in checks {
        file(&format!("{CHECKS_DIR}/{}", c.name), "0700", &c.contents);
    }
    if !units.is_empty() {
        y.push_str("systemd:\n  units:\n");
        for u in units {
            let _ = writeln!(y, "    - name: {}", u.name);
            if u.enabled() {
                y.push_str("      enabled: true\n");
            }
            let _ = write!(y, "      contents: {}", yaml_text(&u.contents, 8));
        }
    }
    // Flatcar's Ignition applies these to the OEM partition's grub.cfg (linux_append) on
    // the first boot: unsigned, so Secure Boot is untouched (docs/failure-budgets.md)
    if !kargs.is_empty() {
        y.push_str("kernel_arguments:\n  should_exist:\n");
        for k in kargs {
            let _ = writeln!(y, "    - {k}");
        }
    }
    y
}

/// The Ignition config Butane makes of [`butane`]'s document, as pretty-printed JSON.
/// Written out by hand for this fixed shape (strings escaped by serde_json): derived
/// serializers would cost the static initrd binary kilobytes for a verb it never runs.
pub fn ignition(config: &str, checks: &[Unit], units: &[Unit], kargs: &[String]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut j = format!(
        "{{\n  \"ignition\": {{\n    \"version\": {}\n  }},\n  \"storage\": {{\n    \"files\": [",
        q(IGNITION_VERSION)
    );
    // 0644 and 0700 (root's own: see `butane`)
    let files = std::iter::once((DROPIN.to_string(), 420, config)).chain(
        checks
            .iter()
            .map(|c| (format!("{CHECKS_DIR}/{}", c.name), 448, &*c.contents)),
    );
    for (i, (path, mode, text)) in files.enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let owner = match mode {
            448 => "\n        \"user\": { \"id\": 0 },\n        \"group\": { \"id\": 0 },",
            _ => "",
        };
        let _ = write!(
            j,
            "{sep}\n      {{\n        \"path\": {},\n        \"mode\": {mode},{owner}\n        \"contents\": {{\n          \
             \"source\": {}\n        }}\n      }}",
            q(&path),
            q(&data_url(text.as_bytes()))
        );
    }
    j.push_str("\n    ]\n  }");
    if !units.is_empty() {
        j.push_str(",\n  \"systemd\": {\n    \"units\": [");
        for (i, u) in units.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let enabled = if u.enabled() {
                "\n        \"enabled\": true,"
            } else {
                ""
            };
            let _ = write!(
                j,
                "{sep}\n      {{\n        \"name\": {},{enabled}\n        \"contents\": {}\n      }}",
                q(&u.name),
                q(&u.contents)
            );
        }
        j.push_str("\n    ]\n  }");
    }
    if !kargs.is_empty() {
        let list: Vec<String> = kargs.iter().map(|k| q(k)).collect();
        let _ = write!(
            j,
            ",\n  \"kernelArguments\": {{\n    \"shouldExist\": [\n      {}\n    ]\n  }}",
            list.join(",\n      ")
        );
    }
    j.push_str("\n}\n");
    j
}

/// NAME=PATH pairs of `--unit-file` or `--check`.
type Files<'a> = Vec<(String, &'a Path)>;

/// NAME=PATH options, each name once.
fn named<'a>(
    opt: &str,
    specs: &'a [String],
    parse: fn(&str) -> Result<(String, &Path), String>,
) -> Result<Files<'a>, String> {
    let mut files: Files = Vec::new();
    for spec in specs {
        let (name, path) = parse(spec)?;
        if files.iter().any(|(n, _)| *n == name) {
            return Err(format!("--{opt} {name} given twice"));
        }
        files.push((name, path));
    }
    Ok(files)
}

/// The options, checked: settings, the checks and the unit files asked for.
fn check(a: &ButaneArgs) -> Result<(Settings, Files<'_>, Files<'_>), String> {
    let settings = Settings::from_args(a)?;
    a.kernel_arguments()?;
    if a.format != "butane" && a.format != "ignition" {
        return Err(format!(
            "invalid --format {:?}: butane or ignition",
            a.format
        ));
    }
    let checks = named("check", &a.check, parse_check)?;
    let units = named("unit-file", &a.unit_file, parse_unit_file)?;
    Ok((settings, checks, units))
}

fn read_all(files: Files<'_>) -> Result<Vec<Unit>> {
    let mut out = Vec::new();
    for (name, path) in files {
        let contents = crate::safefs::read_text(path, crate::safefs::cap::CONFIG)
            .and_then(|t| t.with_context(|| format!("{} does not exist", path.display())))
            .with_context(|| format!("reading {} for {name}", path.display()))?;
        out.push(Unit { name, contents });
    }
    Ok(out)
}

pub fn run(a: &ButaneArgs) -> VerbResult {
    let (settings, checks, units) = check(a).map_err(|message| Failure::Usage {
        verb: "butane",
        message,
    })?;
    if a.critical_unit.is_empty() {
        eprintln!(
            "warning: no --critical-unit: the gate waits only for boot-complete.target and \
             STABLE_FOR, so no service of yours is protected"
        );
    }
    let config = settings.config_text()?;
    let (checks, units) = (read_all(checks)?, read_all(units)?);
    let kargs = a.kernel_arguments().unwrap_or_default();
    if a.format == "ignition" {
        print!("{}", ignition(&config, &checks, &units, &kargs));
    } else {
        print!("{}", butane(&config, &checks, &units, &kargs));
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
#[path = "butane_tests.rs"]
mod tests;
