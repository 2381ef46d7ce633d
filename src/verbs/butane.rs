//! `abguard butane`: the provisioning config that gives a machine its health-gate
//! settings, as Butane (variant flatcar, version 1.0.0) or as the Ignition 3.3.0 JSON
//! that Butane transpiles it to. It writes one drop-in, [`DROPIN`], so the settings
//! layer over the image's defaults like any other file in abguard.conf.d.
//!
//! The values are checked with the configuration parser's own rules, and the drop-in
//! text is parsed back with [`Config::apply`] before anything is printed.

use crate::cli::tools::ButaneArgs;
use crate::config::timespan::{self, Span};
use crate::config::{self, Config, OnFailure};
use crate::exit::{ExitCode, Failure, VerbResult};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Where the generated drop-in lands on the machine.
pub const DROPIN: &str = "/etc/abguard/abguard.conf.d/10-butane.conf";
/// The Ignition spec that Butane's flatcar 1.0.0 variant produces.
pub const IGNITION_VERSION: &str = "3.3.0";

// Values are checked here rather than with clap value parsers: typed parsers cost the
// static initrd binary kilobytes for a verb the initrd never runs.
fn parse_unit(s: &str) -> Result<String, String> {
    if config::valid_unit(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid unit {s:?}: not a unit name (e.g. nginx.service)"
        ))
    }
}

// the boot's own parser and bounds, so provisioning cannot write what boot refuses
fn parse_deadline(s: &str) -> Result<Span, String> {
    timespan::deadline(s).map_err(|e| format!("invalid --deadline {e}"))
}

fn parse_unit_file(s: &str) -> Result<(String, &Path), String> {
    match s.split_once('=') {
        Some((name, path)) if !path.is_empty() => Ok((parse_unit(name)?, Path::new(path))),
        _ => Err(format!(
            "invalid --unit-file {s:?}: expected NAME=PATH, e.g. nginx.service=./nginx.service"
        )),
    }
}

/// The health-gate settings a config carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub critical_units: Vec<String>,
    pub deadline: Option<Span>,
    pub mark_good: bool,
    pub on_failure: Option<OnFailure>,
}

impl Settings {
    /// The settings the options ask for, checked with the configuration file's rules.
    pub fn from_args(a: &ButaneArgs) -> Result<Settings, String> {
        let mut units: Vec<String> = Vec::new();
        for u in &a.critical_unit {
            let u = parse_unit(u)?;
            if !units.contains(&u) {
                units.push(u);
            }
        }
        Ok(Settings {
            critical_units: units,
            deadline: a.deadline.as_deref().map(parse_deadline).transpose()?,
            mark_good: a.mark_good,
            on_failure: match a.on_failure.as_deref() {
                None => None,
                Some("rollback") => Some(OnFailure::Rollback),
                Some("report") => Some(OnFailure::Report),
                Some(v) => return Err(format!("invalid --on-failure {v:?}: rollback or report")),
            },
        })
    }

    /// The drop-in's text: only the keys given, so everything else keeps the values of
    /// the files read before it. Parsed back with the real parser before it is returned.
    pub fn config_text(&self) -> Result<String> {
        let mut t =
            String::from("# abguard health gate, written at provisioning (abguard butane)\n");
        if !self.critical_units.is_empty() {
            let _ = writeln!(t, "CRITICAL_UNITS={}", self.critical_units.join(" "));
        }
        if let Some(d) = &self.deadline {
            let _ = writeln!(t, "DEADLINE={d}");
        }
        if self.mark_good {
            t.push_str("MARK_GOOD=yes\n");
        }
        if let Some(f) = self.on_failure {
            let v = match f {
                OnFailure::Rollback => "rollback",
                OnFailure::Report => "report",
            };
            let _ = writeln!(t, "ON_FAILURE={v}");
        }
        // round trip: what the machine will read is what was asked for
        let mut c = Config::default();
        c.apply(Path::new(DROPIN), &t)?;
        let d = Config::default();
        let ok = c.critical_units == self.critical_units
            && c.deadline == self.deadline.unwrap_or(d.deadline)
            && c.mark_good == (self.mark_good || d.mark_good)
            && c.on_failure == self.on_failure.unwrap_or(d.on_failure);
        if !ok {
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

/// The Butane document.
pub fn butane(config: &str, units: &[Unit]) -> String {
    let mut y = String::from("variant: flatcar\nversion: 1.0.0\nstorage:\n  files:\n");
    let _ = write!(
        y,
        "    - path: {DROPIN}\n      mode: 0644\n      contents:\n        inline: {}",
        yaml_text(config, 10)
    );
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
    y
}

/// The Ignition config Butane makes of [`butane`]'s document, as pretty-printed JSON.
/// Written out by hand for this fixed shape (strings escaped by serde_json): derived
/// serializers would cost the static initrd binary kilobytes for a verb it never runs.
pub fn ignition(config: &str, units: &[Unit]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut j = format!(
        "{{\n  \"ignition\": {{\n    \"version\": {}\n  }},\n  \"storage\": {{\n    \"files\": [\n      \
         {{\n        \"path\": {},\n        \"mode\": 420,\n        \"contents\": {{\n          \
         \"source\": {}\n        }}\n      }}\n    ]\n  }}",
        q(IGNITION_VERSION),
        q(DROPIN),
        q(&data_url(config.as_bytes()))
    );
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
    j.push_str("\n}\n");
    j
}

/// `--unit-file` NAME=PATH pairs.
type UnitFiles<'a> = Vec<(String, &'a Path)>;

/// The options, checked: settings and the unit files asked for.
fn check(a: &ButaneArgs) -> Result<(Settings, UnitFiles<'_>), String> {
    let settings = Settings::from_args(a)?;
    if a.format != "butane" && a.format != "ignition" {
        return Err(format!(
            "invalid --format {:?}: butane or ignition",
            a.format
        ));
    }
    let mut files: UnitFiles = Vec::new();
    for spec in &a.unit_file {
        let (name, path) = parse_unit_file(spec)?;
        if files.iter().any(|(n, _)| *n == name) {
            return Err(format!("--unit-file {name} given twice"));
        }
        files.push((name, path));
    }
    Ok((settings, files))
}

pub fn run(a: &ButaneArgs) -> VerbResult {
    let (settings, files) = check(a).map_err(|message| Failure::Usage {
        verb: "butane",
        message,
    })?;
    let config = settings.config_text()?;
    let mut units: Vec<Unit> = Vec::new();
    for (name, path) in files {
        let contents = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} for {name}", path.display()))?;
        units.push(Unit { name, contents });
    }
    if a.format == "ignition" {
        print!("{}", ignition(&config, &units));
    } else {
        print!("{}", butane(&config, &units));
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(units: &[&str], deadline: Option<&str>) -> Settings {
        Settings {
            critical_units: units.iter().map(|s| s.to_string()).collect(),
            deadline: deadline.map(|d| timespan::parse(d).unwrap()),
            ..Settings::default()
        }
    }

    #[test]
    fn config_text_round_trips() {
        let s = Settings {
            mark_good: true,
            on_failure: Some(OnFailure::Report),
            ..settings(&["nginx.service", "docker.service"], Some("1h 30min"))
        };
        let t = s.config_text().unwrap();
        assert_eq!(
            t.lines().skip(1).collect::<Vec<_>>(),
            [
                "CRITICAL_UNITS=nginx.service docker.service",
                "DEADLINE=1h 30min",
                "MARK_GOOD=yes",
                "ON_FAILURE=report"
            ]
        );
        // only the keys given: nothing else is overridden
        // the value is written normalized, as systemd prints it
        let t = settings(&[], Some("90s")).config_text().unwrap();
        assert_eq!(t.lines().skip(1).collect::<Vec<_>>(), ["DEADLINE=1min 30s"]);
    }

    #[test]
    fn data_url_escapes_like_butane() {
        assert_eq!(
            data_url(b"A=b c.d_e~f-g\n#/"),
            "data:,A%3Db%20c.d_e~f-g%0A%23%2F"
        );
    }

    #[test]
    fn yaml_text_literal_or_quoted() {
        assert_eq!(yaml_text("a\n\nb\n", 2), "|\n  a\n\n  b\n");
        // anything a literal block would change or reject is quoted
        for odd in [
            "no newline",
            "two\n\n",
            " lead\n",
            "tab\n\tx\n",
            "ws\n  \n",
            "é\n",
            "",
        ] {
            let y = yaml_text(odd, 2);
            assert!(y.starts_with('"'), "{odd:?} -> {y}");
        }
        assert_eq!(yaml_text("é\"\\\n", 2), "\"\\u00E9\\\"\\\\\\n\"\n");
    }

    #[test]
    fn ignition_is_json_of_the_right_shape() {
        let units = [
            Unit {
                name: "a.service".into(),
                contents: "[Install]\nWantedBy=multi-user.target\n\"q\" \\ é\n".into(),
            },
            Unit {
                name: "b.service".into(),
                contents: "[Service]\n".into(),
            },
        ];
        for units in [&units[..], &[]] {
            let v: serde_json::Value = serde_json::from_str(&ignition("A=b\n", units)).unwrap();
            assert_eq!(v["ignition"]["version"], "3.3.0");
            let f = &v["storage"]["files"][0];
            assert_eq!(f["path"], DROPIN);
            assert_eq!(f["mode"], 420);
            assert_eq!(f["contents"]["source"], "data:,A%3Db%0A");
            assert_eq!(
                v["systemd"]["units"].as_array().map_or(0, Vec::len),
                units.len()
            );
            for (j, u) in v["systemd"]["units"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(units)
            {
                assert_eq!(j["name"], u.name.as_str());
                assert_eq!(j["contents"], u.contents.as_str());
                assert_eq!(j.get("enabled").is_some(), u.enabled());
            }
        }
    }

    #[test]
    fn unit_enabled_only_with_install_section() {
        let u = |c: &str| Unit {
            name: "x.service".into(),
            contents: c.into(),
        };
        assert!(
            u("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n").enabled()
        );
        assert!(!u("[Service]\nExecStart=/bin/true\n").enabled());
    }
}
