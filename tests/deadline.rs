//! DEADLINE on a fake root: the generator turns every span systemd accepts into a timer
//! value systemd accepts with the same meaning, and a value outside the bounds (or one
//! systemd refuses) is a config error naming file:line while the default deadline
//! still applies, never "no deadline".

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// systemd's own reading of a span, in microseconds (None: systemd refuses it).
fn systemd_usec(span: &str) -> Option<u64> {
    let o = Command::new("systemd-analyze")
        .args(["timespan", "--", span])
        .output()
        .expect("systemd-analyze (package systemd, ci/install-deps.sh)");
    if !o.status.success() {
        return None;
    }
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = out.lines().find(|l| l.trim_start().starts_with("μs:"))?;
    line.trim_start()["μs:".len()..].trim().parse().ok()
}

/// Run the generator over a root whose /etc/abguard/abguard.conf is `conf`: the
/// timer's OnStartupSec= and the config error, if any.
fn generate(conf: &str) -> (String, Option<String>) {
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("root/etc/abguard");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("abguard.conf"), conf).unwrap();
    let out = t.path().join("out");
    let root = t.path().join("root");
    // /run exists on every booted system; the generator does not create it
    std::fs::create_dir_all(root.join("run")).unwrap();
    let o = abguard(&[
        "generator",
        "--root",
        root.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "the generator never fails the boot");
    let state = root.join("run/abguard");
    let timer =
        std::fs::read_to_string(out.join("abguard-deadline.timer.d/50-abguard.conf")).unwrap();
    let value = timer
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("OnStartupSec="))
        .unwrap()
        .to_string();
    (
        value,
        std::fs::read_to_string(state.join("config-error")).ok(),
    )
}

#[test]
fn spans_systemd_accepts_reach_the_timer_with_the_same_value() {
    for span in [
        "1h30min", "1h 30min", "2 h", "1d", "1.5h", "90", "24h", "1min",
    ] {
        let (value, err) = generate(&format!("DEADLINE={span}\n"));
        assert_eq!(err, None, "{span}");
        let want = systemd_usec(span).unwrap_or_else(|| panic!("systemd refuses {span:?}"));
        assert_eq!(
            systemd_usec(&value),
            Some(want),
            "{span:?} became OnStartupSec={value}"
        );
    }
}

#[test]
fn a_bad_deadline_is_an_error_and_the_default_applies() {
    let default = systemd_usec("10min").unwrap();
    for (span, systemd_accepts) in [
        ("0", true),
        ("30s", true),
        ("25h", true),
        ("1w", true),
        ("99999999999999999999999s", false),
        ("1h foo", false),
        ("soon", false),
        ("infinity", true),
    ] {
        assert_eq!(systemd_usec(span).is_some(), systemd_accepts, "{span}");
        let (value, err) = generate(&format!("# ours\nDEADLINE={span}\n"));
        assert_eq!(systemd_usec(&value), Some(default), "{span:?}: {value}");
        let err = err.unwrap_or_else(|| panic!("{span:?}: no config error"));
        let at = Path::new("etc/abguard/abguard.conf:2");
        assert!(
            err.contains(at.to_str().unwrap()) && err.contains(span),
            "{span:?}: {err}"
        );
    }
}

#[test]
fn every_unit_and_shape_means_what_systemd_says() {
    let units = "seconds second sec s minutes minute min months month M msec ms m hours hour \
        hr h days day d weeks week w years year y usec us μs µs";
    for u in units.split_whitespace() {
        for span in [format!("2{u}"), format!("1.25 {u}"), format!("3{u} 7")] {
            let ours = abguard::config::timespan::parse(&span).ok().map(|s| s.0);
            assert_eq!(ours, systemd_usec(&span), "{span:?}");
        }
    }
    for span in [
        "", "0", "1h foo", "12x", "1.h", "-1s", "+5s", ".5s", "1 2", "5 x",
    ] {
        let ours = abguard::config::timespan::parse(span).ok().map(|s| s.0);
        assert_eq!(ours, systemd_usec(span), "{span:?}");
    }
}
