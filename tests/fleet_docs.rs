//! The README's fleet section against the shipped rules: the kured regexp it gives
//! (the code block after `<!-- kured-flags -->`) matches every alert in
//! prometheus/abguard.rules.yml and no other alert, and each PromQL example (after
//! `<!-- operator-promql -->`) parses (promtool, as a recording rule).

mod common;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The lines of the fenced code block that follows `marker`.
fn block_after(text: &str, marker: &str) -> Vec<String> {
    let rest = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let mut lines = rest.lines().skip_while(|l| !l.starts_with("```"));
    assert!(lines.next().is_some(), "no code block after {marker}");
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(str::to_string)
        .collect()
}

fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("prometheus/abguard.rules.yml")).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect();
    assert!(names.len() >= 2, "no alerts found: {names:?}");
    names
}

/// Which of `names` the regexp matches as kured does (Go's MatchString: a search, not
/// anchored). Python's re agrees with RE2 on the syntax the README uses.
fn matching(re: &str, names: &[&str]) -> Vec<bool> {
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import re, sys\nr = re.compile(sys.argv[1])\nfor n in sys.argv[2:]: print(bool(r.search(n)))",
            re,
        ])
        .args(names)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l == "True")
        .collect()
}

fn kured_regexp(block: &[String]) -> String {
    let flag = |name: &str| {
        block
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("--{name}=")))
            .map(str::to_string)
    };
    assert_eq!(
        flag("alert-filter-match-only").as_deref(),
        Some("true"),
        "without --alert-filter-match-only the regexp names alerts kured ignores"
    );
    assert!(flag("prometheus-url").is_some(), "no --prometheus-url");
    flag("alert-filter-regexp").expect("no --alert-filter-regexp= in the kured block")
}

#[test]
fn kured_regexp_matches_every_abguard_alert_and_nothing_else() {
    let re = kured_regexp(&block_after(&readme(), "<!-- kured-flags -->"));
    let names = alert_names();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    let others = ["KubeNodeNotReady", "Watchdog", "NodeAbguardLike"];
    all.extend(others);
    let m = matching(&re, &all);
    for (n, hit) in all.iter().zip(&m) {
        let ours = names.iter().any(|x| x == n);
        assert_eq!(
            *hit, ours,
            "{re:?} on {n}: matched={hit}, abguard alert={ours}"
        );
    }
}

#[test]
fn the_regexp_check_notices_a_regexp_that_misses() {
    let names = alert_names();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    assert!(matching("^AbguardRolledBack$", &all).contains(&false));
    assert!(matching("Abguard", &["NodeAbguardLike"])[0]);
}

#[test]
fn operator_promql_examples_parse() {
    let Some(promtool) = common::tool("promtool") else {
        return;
    };
    let o = Command::new(promtool).arg("--version").output().unwrap();
    assert!(o.status.success());
    let exprs: Vec<String> = block_after(&readme(), "<!-- operator-promql -->")
        .into_iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(exprs.len() >= 5, "too few examples: {exprs:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut y = String::from("groups:\n  - name: readme\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        y += &format!(
            "      - record: readme:example{i}\n        expr: '{}'\n",
            e.replace('\'', "''")
        );
    }
    let f = dir.path().join("readme.rules.yml");
    std::fs::write(&f, y).unwrap();
    let o = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
