//! `abguard butane`: docs/operator.md's example is what the command prints; the Ignition
//! form passes the real Ignition validator (`ignition-validate`, Debian's ignition
//! package) and the Ignition 3.3.0 JSON schema (tests/data/ignition-3.3.schema.json,
//! coreos/ignition's, Apache-2.0) under a real JSON-schema validator (python3-jsonschema);
//! the Butane YAML parses (python3-yaml) to the same files and units; the drop-in it
//! writes parses back with abguard's own configuration parser.
//!
//! No `butane` binary can be installed here (not in Debian bookworm, PyPI, npm or
//! crates.io), so the Butane side is checked by parsing the YAML and comparing it with
//! the Ignition JSON field by field, the way Butane maps one to the other.

use abguard::config::{Config, OnFailure};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn abguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_abguard"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = abguard(args);
    assert!(
        o.status.success(),
        "abguard {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn tool(cmd: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} is needed for this test ({e}); run ./ci/install-deps.sh")
        });
    c.stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    c.wait_with_output().unwrap()
}

/// The Butane YAML as JSON, by a real YAML parser.
fn yaml(text: &str) -> Value {
    let o = tool(
        "/usr/bin/python3",
        &[
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        Some(text),
    );
    assert!(
        o.status.success(),
        "YAML does not parse: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// ignition-validate's verdict (empty: valid, no warnings).
fn ignition_validate(json: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.ign");
    std::fs::write(&f, json).unwrap();
    let o = tool("ignition-validate", &[f.to_str().unwrap()], None);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() && out.trim().is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// The schema's verdict, by python3-jsonschema.
fn schema_validate(json: &str) -> Result<(), String> {
    let schema = repo().join("tests/data/ignition-3.3.schema.json");
    let o = tool(
        "/usr/bin/python3",
        &[
            "-c",
            "import sys, json, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             cls = jsonschema.validators.validator_for(schema)\n\
             cls.check_schema(schema)\n\
             errors = [e.message + ' at ' + '/'.join(map(str, e.absolute_path)) for e in cls(schema).iter_errors(json.load(sys.stdin))]\n\
             print('\\n'.join(errors))\n\
             sys.exit(1 if errors else 0)",
            schema.to_str().unwrap(),
        ],
        Some(json),
    );
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Butane's flatcar 1.0.0 → Ignition 3.3.0 mapping, for what `abguard butane` writes:
/// the two documents must say the same. Returns the drop-in's text.
fn same_config(butane: &Value, ign: &Value) -> String {
    assert_eq!(butane["variant"], "flatcar");
    assert_eq!(butane["version"], "1.0.0");
    assert_eq!(ign["ignition"]["version"], "3.3.0");
    let bf = butane["storage"]["files"].as_array().unwrap();
    let jf = ign["storage"]["files"].as_array().unwrap();
    assert_eq!(bf.len(), jf.len());
    for (b, j) in bf.iter().zip(jf) {
        assert_eq!(b["path"], j["path"]);
        assert_eq!(b["mode"], j["mode"], "YAML 0644 is 420");
        let src = j["contents"]["source"].as_str().unwrap();
        let data = src
            .strip_prefix("data:,")
            .expect("an uncompressed data URL");
        assert!(
            data.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~%".contains(&c)),
            "{data}"
        );
        assert_eq!(
            b["contents"]["inline"].as_str().unwrap().as_bytes(),
            percent_decode(data)
        );
    }
    let bu = butane["systemd"]["units"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ju = ign["systemd"]["units"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(bu, ju, "units differ");
    assert_eq!(bf[0]["path"], "/etc/abguard/abguard.conf.d/10-butane.conf");
    bf[0]["contents"]["inline"].as_str().unwrap().to_string()
}

/// docs/operator.md's example: the `abguard butane …` command in a ```sh block and the
/// ```yaml block after it.
fn readme_example() -> (Vec<String>, String) {
    let readme = std::fs::read_to_string(repo().join("docs/operator.md")).unwrap();
    let blocks: Vec<(&str, &str)> = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|b| b.split_once('\n'))
        .collect();
    let i = blocks
        .iter()
        .position(|(lang, body)| *lang == "sh" && body.starts_with("abguard butane "))
        .expect("docs/operator.md has a ```sh block starting with `abguard butane`");
    let (lang, yaml) = blocks[i + 1];
    assert_eq!(lang, "yaml", "the example's output follows its command");
    let cmd = blocks[i].1.replace("\\\n", " ");
    let cmd = cmd.lines().next().unwrap();
    let cmd = cmd.split('>').next().unwrap(); // `> abguard.bu`
    let args = cmd.split_whitespace().skip(1).map(str::to_string).collect();
    (args, yaml.to_string())
}

#[test]
fn readme_example_is_the_commands_output() {
    let (args, want) = readme_example();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let have = ok(&args);
    assert_eq!(
        have,
        want,
        "docs/operator.md's Butane example is stale; paste `abguard butane {}`",
        args.join(" ")
    );
}

#[test]
fn readme_example_is_valid_and_equals_its_ignition_form() {
    let (args, _) = readme_example();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let butane = yaml(&ok(&args));
    args.extend(["--format", "ignition"]);
    let json = ok(&args);
    ignition_validate(&json).unwrap_or_else(|e| panic!("ignition-validate: {e}\n{json}"));
    schema_validate(&json).unwrap_or_else(|e| panic!("schema: {e}\n{json}"));
    let ign: Value = serde_json::from_str(&json).unwrap();
    let conf = same_config(&butane, &ign);
    // the user's unit, byte for byte, enabled because it has [Install]
    let unit = std::fs::read_to_string(repo().join("examples/nginx.service")).unwrap();
    assert_eq!(ign["systemd"]["units"][0]["contents"], unit.as_str());
    assert_eq!(ign["systemd"]["units"][0]["enabled"], true);
    // and the machine reads the settings back
    let mut c = Config::default();
    c.apply(Path::new("10-butane.conf"), &conf);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.critical_units, ["nginx.service", "docker.service"]);
    assert_eq!(c.deadline.to_string(), "10min");
}

#[test]
fn every_setting_round_trips_through_both_formats() {
    let args = [
        "butane",
        "--critical-unit",
        "etcd-member.service",
        "--critical-unit",
        "kubelet.service",
        "--critical-unit",
        "etcd-member.service",
        "--deadline",
        "1h 30min",
        "--mark-good",
        "--on-failure",
        "report",
        "--stable-for",
        "2min",
        "--check-timeout",
        "30s",
        "--no-check-sysext",
        "--verify-usr",
    ];
    let butane = yaml(&ok(&args));
    let json = ok(&[&args[..], &["--format", "ignition"]].concat());
    ignition_validate(&json).unwrap();
    schema_validate(&json).unwrap();
    let ign: Value = serde_json::from_str(&json).unwrap();
    assert!(ign.get("systemd").is_none(), "no units asked for");
    let conf = same_config(&butane, &ign);
    let mut c = Config::default();
    c.apply(Path::new("10-butane.conf"), &conf);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.critical_units, ["etcd-member.service", "kubelet.service"]);
    assert_eq!(c.deadline.to_string(), "1h 30min");
    assert!(c.mark_good);
    assert_eq!(c.on_failure, OnFailure::Report);
    assert_eq!(
        (c.stable_for.to_string(), c.check_timeout.to_string()),
        ("2min".into(), "30s".into())
    );
    assert!(!c.check_sysext && c.verify_usr);
    // only what was asked: a deadline alone overrides nothing else
    let conf = yaml(&ok(&["butane", "--deadline", "5min"]))["storage"]["files"][0]["contents"]
        ["inline"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        conf.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["DEADLINE=5min"]
    );
    // systemd's grammar, written normalized: what the boot reads is what systemd reads
    let conf = yaml(&ok(&["butane", "--deadline", "1.5h"]))["storage"]["files"][0]["contents"]
        ["inline"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(conf.ends_with("\nDEADLINE=1h 30min\n"), "{conf}");
}

#[test]
fn a_check_script_lands_root_owned_and_private_in_checks_d() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("port");
    std::fs::write(&f, "#!/bin/sh\nexec nc -z 127.0.0.1 80\n").unwrap();
    let spec = format!("port={}", f.display());
    let args = ["butane", "--check", &spec];
    let butane = yaml(&ok(&args));
    let json = ok(&[&args[..], &["--format", "ignition"]].concat());
    ignition_validate(&json).unwrap();
    schema_validate(&json).unwrap();
    let ign: Value = serde_json::from_str(&json).unwrap();
    same_config(&butane, &ign);
    let file = &ign["storage"]["files"][1];
    assert_eq!(file["path"], "/etc/abguard/checks.d/port");
    // the gate refuses a check anyone but root could change: 0700, uid and gid 0
    assert_eq!(file["mode"], 0o700);
    assert_eq!(
        (file["user"]["id"].as_u64(), file["group"]["id"].as_u64()),
        (Some(0), Some(0))
    );
    let b = &butane["storage"]["files"][1];
    assert_eq!(b["mode"], 0o700);
    assert_eq!(
        (b["user"]["id"].as_u64(), b["group"]["id"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        butane["storage"]["files"][1]["contents"]["inline"],
        "#!/bin/sh\nexec nc -z 127.0.0.1 80\n"
    );
    // a name the gate would not run, or a path, is refused
    for bad in ["../port", ".hidden", "a b"] {
        let o = abguard(&["butane", "--check", &format!("{bad}={}", f.display())]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
}

#[test]
fn odd_unit_files_survive_both_formats() {
    // leading spaces, no final newline, quotes, backslashes, non-ASCII, no [Install]
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("odd.service");
    let text = "  [Unit]\nDescription=\"größer\" \\ test: # not a comment\n\n[Service]\nExecStart=/bin/true";
    std::fs::write(&f, text).unwrap();
    let spec = format!("odd.service={}", f.display());
    let args = ["butane", "--mark-good", "--unit-file", &spec];
    let butane = yaml(&ok(&args));
    let json = ok(&[&args[..], &["--format", "ignition"]].concat());
    ignition_validate(&json).unwrap();
    schema_validate(&json).unwrap();
    let ign: Value = serde_json::from_str(&json).unwrap();
    same_config(&butane, &ign);
    assert_eq!(butane["systemd"]["units"][0]["contents"], text);
    assert!(
        butane["systemd"]["units"][0].get("enabled").is_none(),
        "no [Install]: not enabled"
    );
}

#[test]
fn bad_input_is_a_usage_error_with_nothing_printed() {
    for args in [
        &["butane"][..],
        &["butane", "--critical-unit", "nginx"],
        &["butane", "--critical-unit", "../../etc/passwd.service/x"],
        &["butane", "--critical-unit", "getty@.service"],
        &["butane", "--deadline", "soon"],
        &["butane", "--deadline", ""],
        // what the boot refuses: out of bounds, overflow, trailing garbage
        &["butane", "--deadline", "0"],
        &["butane", "--deadline", "25h"],
        &["butane", "--deadline", "99999999999999999999999s"],
        &["butane", "--deadline", "1h foo"],
        &["butane", "--on-failure", "panic"],
        &["butane", "--mark-good", "--unit-file", "nginx.service"],
        &[
            "butane",
            "--mark-good",
            "--unit-file",
            "nginx=examples/nginx.service",
        ],
        &["butane", "--mark-good", "--format", "yaml"],
        &[
            "butane",
            "--mark-good",
            "--unit-file",
            "a.service=x",
            "--unit-file",
            "a.service=y",
        ],
    ] {
        let o = abguard(args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("error:"),
            "{args:?}"
        );
    }
    let o = abguard(&[
        "butane",
        "--mark-good",
        "--unit-file",
        "x.service=/nonexistent",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn the_validators_are_real() {
    // what they must reject, so a pass above means something
    let good = ok(&["butane", "--mark-good", "--format", "ignition"]);
    let bad_mode = good.replace("420", "\"0644\"");
    assert!(schema_validate(&bad_mode).is_err());
    assert!(ignition_validate(&bad_mode).is_err());
    let relative = good.replace("\"/etc/abguard", "\"etc/abguard");
    assert!(ignition_validate(&relative).is_err());
    let bad_url = good.replace("data:,", "data:,%ZZ");
    assert!(ignition_validate(&bad_url).is_err());
    let no_version = good.replace("\"version\": \"3.3.0\"", "\"versionx\": \"3.3.0\"");
    assert!(schema_validate(&no_version).is_err() || ignition_validate(&no_version).is_err());
}

#[test]
fn kernel_budgets_are_valid_ignition_kernel_arguments() {
    let args = [
        "butane",
        "--hang-budget",
        "90s",
        "--panic",
        "10",
        "--rd-earlytimeout",
        "60",
    ];
    let butane = yaml(&ok(&args));
    let json = ok(&[&args[..], &["--format", "ignition"]].concat());
    ignition_validate(&json).unwrap_or_else(|e| panic!("ignition-validate: {e}\n{json}"));
    schema_validate(&json).unwrap();
    let ign: Value = serde_json::from_str(&json).unwrap();
    let want = serde_json::json!(["panic=10", "rd.earlytimeout=60"]);
    assert_eq!(ign["kernelArguments"]["shouldExist"], want);
    assert_eq!(butane["kernel_arguments"]["should_exist"], want);
    assert!(same_config(&butane, &ign).contains("HANG_BUDGET=1min 30s\n"));
    // off by default
    let plain: Value = serde_json::from_str(&ok(&[
        "butane",
        "--deadline",
        "5min",
        "--format",
        "ignition",
    ]))
    .unwrap();
    assert!(plain.get("kernelArguments").is_none());
}
