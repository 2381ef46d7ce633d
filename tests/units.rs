//! The units that hold update coordinators back until this boot is known healthy: the
//! update-engine and locksmithd drop-ins and the path units that start them later must
//! name the flag the binary writes (act::flags::HEALTHY_FLAG under /run), and systemd must
//! accept them (`systemd-analyze verify`, with stand-ins for the coordinators).

mod common;
use abguard::act::flags::HEALTHY_FLAG;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The held coordinators: (unit, its drop-in, the path unit that starts it).
const HELD: [(&str, &str, &str); 2] = [
    (
        "update-engine.service",
        "systemd/update-engine.service.d/50-abguard.conf",
        "systemd/abguard-healthy.path",
    ),
    (
        "locksmithd.service",
        "systemd/locksmithd.service.d/50-abguard.conf",
        "systemd/abguard-locksmithd.path",
    ),
];

/// `key=value` pairs of one section, comments and other sections skipped.
fn section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut cur = String::new();
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            cur = s.to_string();
        } else if cur == name {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {l}"));
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// What is wrong with one coordinator's drop-in and path unit, given the flag path.
fn problems(unit: &str, dropin: &str, path: &str, flag: &str) -> Vec<String> {
    let mut p = Vec::new();
    let conds = section(dropin, "Unit");
    if conds != [("ConditionPathExists".to_string(), flag.to_string())] {
        p.push(format!(
            "{unit} drop-in: [Unit] is {conds:?}, want only ConditionPathExists={flag}"
        ));
    }
    let s = section(path, "Path");
    let get = |k: &str| s.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    if get("PathExists") != Some(flag) {
        p.push(format!(
            "{unit}'s path unit: PathExists={:?}, want {flag}",
            get("PathExists")
        ));
    }
    if get("Unit") != Some(unit) {
        p.push(format!("{unit}'s path unit starts {:?}", get("Unit")));
    }
    if !section(path, "Install").contains(&("WantedBy".into(), "multi-user.target".into())) {
        p.push(format!(
            "{unit}'s path unit is not WantedBy=multi-user.target"
        ));
    }
    p
}

#[test]
fn coordinators_wait_for_the_flag_the_binary_writes() {
    let flag = format!("/run/{HEALTHY_FLAG}");
    let mut all = Vec::new();
    for (unit, dropin, path) in HELD {
        all.extend(problems(unit, &read(dropin), &read(path), &flag));
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn the_check_notices_a_drifted_flag_or_target() {
    let flag = format!("/run/{HEALTHY_FLAG}");
    let (unit, dropin, path) = HELD[1];
    let dropin = read(dropin);
    let path = read(path);
    let p = problems(unit, &dropin.replace(&flag, "/run/healthy"), &path, &flag);
    assert!(p.iter().any(|x| x.contains("drop-in")), "{p:?}");
    let p = problems(unit, &dropin, &path.replace(&flag, "/run/healthy"), &flag);
    assert!(p.iter().any(|x| x.contains("PathExists")), "{p:?}");
    let p = problems(
        unit,
        &dropin,
        &path.replace(unit, "update-engine.service"),
        &flag,
    );
    assert!(p.iter().any(|x| x.contains("starts")), "{p:?}");
}

/// systemd's own parser on the path units and on each coordinator with its drop-in
/// (stand-in services, since neither coordinator is installed here): any warning fails.
#[test]
fn systemd_analyze_verify_accepts_the_units() {
    if common::tool("systemd-analyze").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut verify = Vec::new();
    for (unit, dropin, path) in HELD {
        std::fs::write(d.join(unit), "[Service]\nExecStart=/bin/true\n").unwrap();
        let dd = d.join(format!("{unit}.d"));
        std::fs::create_dir(&dd).unwrap();
        std::fs::copy(repo().join(dropin), dd.join("50-abguard.conf")).unwrap();
        let name = Path::new(path).file_name().unwrap();
        std::fs::copy(repo().join(path), d.join(name)).unwrap();
        verify.push(d.join(unit));
        verify.push(d.join(name));
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&verify)
        // our directory first; the trailing ':' keeps the system's units for targets
        .env("SYSTEMD_UNIT_PATH", format!("{}:", d.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

/// /run paths abguard reads but does not own: update-engine writes reboot-required.
const FOREIGN_RUN_PATHS: &[&str] = &["/run/reboot-required"];

/// Every /run path abguard owns, spelled from the binary's constants.
fn owned_run_paths() -> Vec<String> {
    use abguard::act::flags::{IN_STATE_DIR, STATE_DIR};
    let mut v = vec![format!("/run/{HEALTHY_FLAG}"), format!("/run/{STATE_DIR}")];
    v.extend(IN_STATE_DIR.iter().map(|n| format!("/run/{STATE_DIR}/{n}")));
    v
}

/// Each `/run/...` a file spells (comments included: a drifted comment misleads the
/// next reader as much as a drifted unit) that is neither owned nor foreign, as
/// "file:line: path".
fn unknown_run_paths(files: &[(String, String)]) -> Vec<String> {
    let owned = owned_run_paths();
    let mut out = Vec::new();
    for (name, text) in files {
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("/run/") {
                let tail = &rest[i..];
                let end = tail[1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-@".contains(c)))
                    .map_or(tail.len(), |e| e + 1);
                let path = tail[..end].trim_end_matches(['.', '/']);
                if !owned.iter().any(|o| o == path) && !FOREIGN_RUN_PATHS.contains(&path) {
                    out.push(format!("{name}:{}: {path}", n + 1));
                }
                rest = &tail[end..];
            }
        }
    }
    out
}

fn files_under(rel: &str, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(repo().join(rel)).unwrap().flatten() {
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            files_under(&name, out);
        } else {
            out.push((name.clone(), read(&name)));
        }
    }
}

fn shipped_units_and_hooks() -> Vec<(String, String)> {
    let mut files = Vec::new();
    files_under("systemd", &mut files);
    files_under("dracut", &mut files);
    files
}

/// `ConditionPathExists=/run/abguard/needs-health-check` alone arms the fail-fast hook:
/// every /run path in systemd/ and dracut/ is one the binary defines, or a foreign one
/// on the list.
#[test]
fn every_run_path_in_the_units_is_the_binarys() {
    let files = shipped_units_and_hooks();
    let spelled: usize = files.iter().map(|(_, t)| t.matches("/run/").count()).sum();
    assert!(
        spelled >= 15,
        "only {spelled} /run paths found: wrong directory?"
    );
    let bad = unknown_run_paths(&files);
    assert!(
        bad.is_empty(),
        "/run paths no constant defines:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_drifted_run_path_is_caught() {
    let files = shipped_units_and_hooks();
    for (from, to) in [
        (
            "/run/abguard/needs-health-check",
            "/run/abguard/needs-healthcheck",
        ),
        ("/run/abguard/gate-verdict", "/run/abguard/verdict"),
        ("/run/abguard/boot.json", "/run/abguard/record.json"),
        ("/run/reboot-required", "/run/reboot-needed"),
    ] {
        let drifted: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.clone(), t.replace(from, to)))
            .collect();
        let bad = unknown_run_paths(&drifted);
        assert!(
            bad.iter().any(|b| b.ends_with(to)),
            "{from} → {to}: {bad:?}"
        );
    }
}
