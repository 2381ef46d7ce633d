//! `abguard status --prometheus`, read back with a real exposition-format parser
//! (prometheus_client's, Debian's python3-prometheus-client) after a failed first boot.

mod common;
use common::*;
use std::process::Command;

/// {family name: [(sample name, labels, value)]} as prometheus_client parses the text.
fn parse(text: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (./ci/install-deps.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the exposition parser rejected the output: {}\n{text}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn value(m: &serde_json::Value, family: &str, sample: &str, label: Option<(&str, &str)>) -> f64 {
    m[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"))
        .iter()
        .find(|s| s[0] == sample && label.is_none_or(|(k, v)| s[1][k] == v))
        .unwrap_or_else(|| panic!("no sample {sample} {label:?}"))[2]
        .as_f64()
        .unwrap()
}

#[test]
fn metrics_after_a_failed_first_boot_parse_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert!(m.initrd(&[]).status.success());
    let run = |verb: &[&str]| m.verb(verb);
    run(&["gate-fail", "--unit", "web.service", "--no-reboot"]);

    let text = stdout(&run(&["status", "--prometheus"]));
    let mm = parse(&text);
    assert_eq!(mm["abguard_rollbacks"]["type"], "counter");
    assert_eq!(
        value(&mm, "abguard_rollbacks", "abguard_rollbacks_total", None),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_failed_first_boots",
            "abguard_failed_first_boots_total",
            None
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_first_boots",
            "abguard_first_boots_total",
            None
        ),
        1.0
    );
    assert_eq!(
        value(&mm, "abguard_boots", "abguard_boots_total", None),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_slot_tries",
            "abguard_slot_tries",
            Some(("label", "USR-B"))
        ),
        0.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_slot_successful",
            "abguard_slot_successful",
            Some(("label", "USR-A"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_slot_next_boot",
            "abguard_slot_next_boot",
            Some(("label", "USR-A"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_slot_booted",
            "abguard_slot_booted",
            Some(("label", "USR-B"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_booted_info",
            "abguard_booted_info",
            Some(("version_id", "2.0.0"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_last_verdict",
            "abguard_last_verdict",
            Some(("verdict", "rollback"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &mm,
            "abguard_last_verdict",
            "abguard_last_verdict",
            Some(("verdict", "healthy"))
        ),
        0.0
    );

    // the textfile variant writes the same text atomically
    let prom = dir.path().join("textfile/abguard.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    run(&[
        "status",
        "--prometheus",
        "--textfile",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), text);
}

/// A fallback GRUB made on its own (power cut during B's first boot): counted as a
/// rollback, a failed first boot and a fallback, by version; the build held; a config
/// error and the assessment's source exported. Read back by the real parser.
#[test]
fn metrics_after_a_fallback_name_the_version_and_the_held_build() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert!(m.initrd(&[]).status.success());
    // the power goes; GRUB falls back to A
    let d = img.to_str().unwrap();
    assert_eq!(stdout(&abguard(&["next", "--disk", d])).trim(), "3");
    let h = sample().var("USR_A_ROOTHASH");
    m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m.os_release("1.0.0");
    assert!(m.initrd(&[]).status.success());
    std::fs::write(
        m.p("run/abguard/config-error"),
        "DEADLINE: not a time span\n",
    )
    .unwrap();

    let mm = parse(&stdout(&m.verb(&["status", "--prometheus"])));
    let v =
        |family: &str, sample: &str, label: Option<(&str, &str)>| value(&mm, family, sample, label);
    assert_eq!(v("abguard_rollbacks", "abguard_rollbacks_total", None), 1.0);
    assert_eq!(
        v(
            "abguard_failed_first_boots",
            "abguard_failed_first_boots_total",
            None
        ),
        1.0
    );
    // the power went after B's initrd, and no watchdog says why: the stage is the initrd
    assert_eq!(
        v(
            "abguard_fallbacks",
            "abguard_fallbacks_total",
            Some(("stage", "initrd"))
        ),
        1.0
    );
    assert_eq!(mm["abguard_version_failed_first_boots"]["type"], "counter");
    let s = &mm["abguard_version_failed_first_boots"]["samples"][0];
    assert_eq!(
        (&s[1]["version_id"], &s[1]["cause"], &s[2]),
        (&"2.0.0".into(), &"fallback".into(), &1.0.into()),
        "{s}"
    );
    assert_eq!(v("abguard_held_builds", "abguard_held_builds", None), 1.0);
    assert_eq!(
        v(
            "abguard_held_build_info",
            "abguard_held_build_info",
            Some(("root_hash", &sample().var("USR_B_ROOTHASH")))
        ),
        1.0
    );
    assert_eq!(v("abguard_config_error", "abguard_config_error", None), 1.0);
    assert_eq!(v("abguard_gate_pending", "abguard_gate_pending", None), 0.0);
    assert_eq!(
        v(
            "abguard_assessment_source",
            "abguard_assessment_source",
            Some(("source", "initrd"))
        ),
        1.0
    );
    // A booted after the fallback: its own verdict is the newest
    assert_eq!(
        v(
            "abguard_last_verdict",
            "abguard_last_verdict",
            Some(("verdict", "healthy"))
        ),
        1.0
    );
}
