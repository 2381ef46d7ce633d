//! The gate's watcher (`gate-pass`) on a fake machine, with a stand-in for systemctl
//! whose answers the test changes while the gate runs: healthy only after the window,
//! a crash inside it rolls back within a poll or two, a restart loop at once, checks
//! with timeouts, the sysext check, configuration errors and ON_FAILURE=report.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gate {
    _dir: tempfile::TempDir,
    img: PathBuf,
    m: FakeMachine,
    fake: PathBuf,
}

fn first_boot(conf: &str) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert_eq!(json(&m.initrd(&[]))["verdict"], "needs-health-check");
    let etc = m.p("sysroot/etc/abguard");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("abguard.conf"), conf).unwrap();
    let fake = fake_systemctl(&m.p("fake"));
    Gate {
        _dir: dir,
        img,
        m,
        fake,
    }
}

impl Gate {
    /// What systemctl says of `unit` from now on.
    fn unit(&self, unit: &str, active: &str, sub: &str, inv: &str, restarts: u32) {
        fake_unit(&self.fake, unit, active, sub, inv, restarts);
    }

    fn cmd(&self, verb: &[&str], usr: Option<&Path>) -> Command {
        let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        let mut probe = self.m.probe_args();
        if let Some(u) = usr {
            let i = probe.iter().position(|a| a == "--usr").unwrap();
            probe[i + 1] = u.display().to_string();
        }
        args.extend(probe);
        let mut c = Command::new(bin());
        c.args(&args)
            .env("ABGUARD_SYSTEMCTL", self.fake.join("systemctl"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn start(&self) -> Child {
        self.cmd(&["gate-pass", "--no-reboot"], None)
            .spawn()
            .unwrap()
    }

    fn healthy(&self) -> bool {
        self.m.p("run/first-boot-healthy").exists()
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.m.p("run/abguard/gate.json")).unwrap()).unwrap()
    }
}

/// Wait for the gate to end (at most `secs`); its stderr.
fn finish(mut c: Child, secs: u64) -> String {
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            c.kill().unwrap();
            let o = c.wait_with_output().unwrap();
            panic!(
                "the gate did not end in {secs}s: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn healthy_only_after_the_window_and_status_explains_the_wait() {
    let g = first_boot("CRITICAL_UNITS=web.service\nSTABLE_FOR=2s\n");
    g.unit("web.service", "activating", "start-pre", "i1", 0);
    let c = g.start();
    sleep(1200);
    assert!(!g.healthy());
    let s = g.snapshot();
    assert_eq!(s["state"], "pending");
    assert!(
        s["waiting"]
            .to_string()
            .contains("web.service (activating/start-pre, 0 restarts)"),
        "{s}"
    );
    // status shows the pending gate, in text and JSON
    let o = g.cmd(&["status"], None).output().unwrap();
    let text = stdout(&o);
    assert!(
        text.contains("health gate pending since") && text.contains("web.service (activating"),
        "{text}"
    );
    assert!(text.contains("deadline at"), "{text}");
    let o = g.cmd(&["status", "--json"], None).output().unwrap();
    assert_eq!(json(&o)["gate"]["state"], "pending");
    let up = Instant::now();
    g.unit("web.service", "active", "running", "i1", 0);
    sleep(1200);
    assert!(!g.healthy(), "passed inside the stable-for window");
    finish(c, 10);
    assert!(g.healthy());
    assert!(up.elapsed() >= Duration::from_secs(2), "{:?}", up.elapsed());
    let last = g.m.history().pop().unwrap();
    assert_eq!(last["event"], "gate-passed");
    assert!(
        last["reasons"]
            .to_string()
            .contains("web.service active and stable for 2s"),
        "{last}"
    );
    assert_eq!(
        cgpt_attrs(&g.img, 4),
        (2, 0, false, 0x2),
        "not spent, not marked"
    );
}

#[test]
fn a_crash_inside_the_window_rolls_back_within_a_second_or_two() {
    let g = first_boot("CRITICAL_UNITS=web.service\nSTABLE_FOR=60s\n");
    g.unit("web.service", "active", "running", "i1", 0);
    let c = g.start();
    sleep(1500);
    let crashed = Instant::now();
    g.unit("web.service", "failed", "failed", "i1", 0);
    finish(c, 10);
    let took = crashed.elapsed();
    eprintln!("crash to rollback: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!g.healthy(), "update-engine must never be released");
    assert_eq!(cgpt_attrs(&g.img, 4).1, 0);
    assert!(!cgpt_attrs(&g.img, 4).2);
    let last = g.m.history().pop().unwrap();
    assert_eq!(last["event"], "gate-failed");
    assert!(
        last["reasons"]
            .to_string()
            .contains("critical unit web.service failed"),
        "{last}"
    );
    assert_eq!(last["gate"]["units"][0]["unit"], "web.service");
    // the OnFailure= hook that comes after finds the verdict taken and does nothing
    let n = g.m.history().len();
    let o = g
        .cmd(&["gate-fail", "--unit", "web.service", "--no-reboot"], None)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(g.m.history().len(), n, "a second verdict was recorded");
}

#[test]
fn restart_loops_and_new_invocations_fail_at_once() {
    for (active, sub, inv, n, why) in [
        ("activating", "auto-restart", "i1", 0, "auto-restart"),
        ("active", "running", "i2", 3, "restarted 3 times"),
        ("active", "running", "i2", 0, "new InvocationID"),
    ] {
        let g = first_boot("CRITICAL_UNITS=web.service\nSTABLE_FOR=60s\n");
        g.unit("web.service", "active", "running", "i1", 0);
        let c = g.start();
        sleep(800);
        g.unit("web.service", active, sub, inv, n);
        finish(c, 10);
        let last = g.m.history().pop().unwrap();
        assert!(last["reasons"].to_string().contains(why), "{why}: {last}");
        assert_eq!(cgpt_attrs(&g.img, 4).1, 0);
    }
}

#[test]
fn report_policy_records_and_releases_like_stock_flatcar() {
    let g = first_boot("CRITICAL_UNITS=web.service\nSTABLE_FOR=60s\nON_FAILURE=report\n");
    g.unit("web.service", "activating", "auto-restart", "i1", 2);
    let before = sha(&g.img);
    finish(g.start(), 10);
    assert!(sha(&g.img) == before, "report must not touch the disk");
    assert!(g.healthy(), "the healthy flag releases update-engine");
    let last = g.m.history().pop().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["verdict"].as_str()),
        (Some("gate-failed"), Some("report"))
    );
    assert!(
        last["reasons"].to_string().contains("restarted 2 times"),
        "{last}"
    );
}

fn check(g: &Gate, name: &str, body: &str) {
    let d = g.m.p("sysroot/etc/abguard/checks.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn checks_retry_time_out_and_land_in_the_record() {
    let g = first_boot("STABLE_FOR=0\nCHECK_TIMEOUT=1s\n");
    let flag = g.m.p("port-open");
    check(
        &g,
        "port",
        &format!("echo probing; test -e {}", flag.display()),
    );
    check(&g, "slow.wanted", "sleep 100");
    let c = g.start();
    sleep(2500);
    assert!(!g.healthy(), "a failing required check holds the gate");
    let s = g.snapshot();
    assert!(
        s["waiting"].to_string().contains("check port (exit 1)"),
        "{s}"
    );
    std::fs::write(&flag, "").unwrap();
    finish(c, 15);
    assert!(g.healthy());
    let last = g.m.history().pop().unwrap();
    let checks = &last["gate"]["checks"];
    let port = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "port")
        .unwrap();
    assert_eq!(
        (port["passed"].as_bool(), port["output"].as_str()),
        (Some(true), Some("probing"))
    );
    assert!(port["runs"].as_u64().unwrap() >= 2, "{port}");
    let slow = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "slow.wanted")
        .unwrap();
    assert_eq!(slow["result"], "killed after 1s (CHECK_TIMEOUT)", "{slow}");
}

#[test]
fn a_config_error_holds_a_first_boot_and_the_deadline_names_it() {
    let g = first_boot("CRITICAL_UNITS=web.service,db.service\nSTABLE_FOR=0\n");
    let c = g.start();
    sleep(1500);
    assert!(!g.healthy(), "an incomplete configuration must not pass");
    let s = g.snapshot();
    assert!(
        s["waiting"]
            .to_string()
            .contains("abguard.conf:1: CRITICAL_UNITS="),
        "{s}"
    );
    // the deadline timer fires: rolled back, the reason and the record name file:line
    let o = g.cmd(&["gate-fail", "--no-reboot"], None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    finish(c, 5);
    let last = g.m.history().pop().unwrap();
    assert_eq!(last["event"], "deadline");
    assert!(
        last["reasons"].to_string().contains("abguard.conf:1"),
        "{last}"
    );
    assert!(
        last["config_errors"][0]
            .as_str()
            .unwrap()
            .contains("commas"),
        "{last}"
    );
    assert_eq!(cgpt_attrs(&g.img, 4).1, 0);
}

#[test]
fn the_sysext_check_names_the_image_missing_after_the_update() {
    let g = first_boot("STABLE_FOR=0\n");
    let usr = g.m.p("usr");
    let rel = usr.join("lib/extension-release.d");
    std::fs::create_dir_all(&rel).unwrap();
    for n in ["docker-flatcar", "containerd-flatcar"] {
        std::fs::write(rel.join(format!("extension-release.{n}")), "ID=_any\n").unwrap();
    }
    // an ordinary boot remembers what is merged
    let marker = g.m.p("run/abguard/needs-health-check");
    let saved = std::fs::read(&marker).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let o = g
        .cmd(&["gate-pass", "--no-reboot"], Some(&usr))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read_to_string(g.m.p("sysroot/var/lib/abguard/sysexts-merged")).unwrap();
    assert_eq!(before, "containerd-flatcar\ndocker-flatcar\n");
    // the first boot after the update: docker's image was not merged
    std::fs::write(&marker, saved).unwrap();
    std::fs::remove_file(rel.join("extension-release.docker-flatcar")).unwrap();
    let c = g
        .cmd(&["gate-pass", "--no-reboot"], Some(&usr))
        .spawn()
        .unwrap();
    sleep(1500);
    assert!(!g.healthy());
    assert!(g.snapshot()["waiting"]
        .to_string()
        .contains("not merged since the update: docker-flatcar"));
    // merged late (e.g. a retried download): the check passes on its next try
    std::fs::write(rel.join("extension-release.docker-flatcar"), "ID=_any\n").unwrap();
    finish(c, 10);
    assert!(g.healthy());
}

#[test]
fn the_deadline_names_the_check_that_never_passed() {
    let g = first_boot("STABLE_FOR=0\n");
    check(&g, "port", "echo refused; exit 1");
    let c = g.start();
    sleep(1500);
    let o = g.cmd(&["gate-fail", "--no-reboot"], None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    finish(c, 5);
    let last = g.m.history().pop().unwrap();
    assert_eq!(last["event"], "deadline");
    assert!(
        last["reasons"].to_string().contains("check port (exit 1)"),
        "{last}"
    );
    assert_eq!(last["gate"]["checks"][0]["output"], "refused");
}

/// A process is gone (or a zombie no one will run again).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_gone(pid: &str, ms: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(ms) {
        if gone(pid) {
            return true;
        }
        sleep(20);
    }
    gone(pid)
}

fn wait_file(p: &Path, ms: u64) -> String {
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(ms) {
        if let Ok(s) = std::fs::read_to_string(p) {
            if !s.trim().is_empty() {
                return s;
            }
        }
        sleep(20);
    }
    panic!("{} never written", p.display());
}

#[test]
fn a_setsid_grandchild_dies_at_the_timeout_and_a_passing_checks_child_with_it() {
    let g = first_boot("STABLE_FOR=0\nCHECK_TIMEOUT=1s\n");
    let (hang, bg) = (g.m.p("hang.pid"), g.m.p("bg.pid"));
    // escapes its process group and session, then outlives the timeout
    check(
        &g,
        "hang.wanted",
        &format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 300' </dev/null >/dev/null 2>&1 &\nsleep 300",
            hang.display()
        ),
    );
    // passes at once, leaving a background child (its own session too)
    check(
        &g,
        "ok",
        &format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 300' </dev/null >/dev/null 2>&1 &\necho up",
            bg.display()
        ),
    );
    // fails once and passes on its retry (5 s later): the gate is still waiting when
    // the timeout (not the verdict) ends `hang`
    let m = g.m.p("slow.once");
    check(
        &g,
        "slow",
        &format!("[ -e {0} ] && exit 0; touch {0}; exit 1", m.display()),
    );
    let c = g.start();
    let (hang_pid, bg_pid) = (wait_file(&hang, 5000), wait_file(&bg, 5000));
    let h = wait_gone(&hang_pid, 2500);
    assert!(!g.healthy(), "the gate must still be waiting for `slow`");
    let b = wait_gone(&bg_pid, 2000);
    finish(c, 15);
    assert!(g.healthy());
    for p in [&hang_pid, &bg_pid] {
        if !gone(p) {
            let _ = Command::new("kill").args(["-9", p.trim()]).status();
        }
    }
    assert!(h, "the setsid grandchild of a timed-out check survived");
    assert!(b, "the background child of a passing check survived");
    let last = g.m.history().pop().unwrap();
    let checks = last["gate"]["checks"].to_string();
    assert!(
        checks.contains("killed after 1s (CHECK_TIMEOUT)"),
        "{checks}"
    );
    // this host has a writable cgroup v2: the box is a cgroup, not a process group
    assert!(!checks.contains("no cgroup"), "{checks}");
}

/// A check that writes `ran` if it ever runs, at `mode`.
fn planted(g: &Gate, name: &str, mode: u32) -> PathBuf {
    let ran = g.m.p(&format!("{name}.ran"));
    check(g, name, &format!("touch {}", ran.display()));
    use std::os::unix::fs::PermissionsExt;
    let p = g.m.p(&format!("sysroot/etc/abguard/checks.d/{name}"));
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    ran
}

#[test]
fn a_world_writable_check_is_refused_named_and_counted() {
    let g = first_boot("STABLE_FOR=0\n");
    let ran = planted(&g, "api", 0o777);
    // `config --check` says so before the boot
    let o = abguard(&[
        "config",
        "--check",
        "--root",
        &g.m.p("sysroot").display().to_string(),
    ]);
    let why = "checks.d/api: writable by others (mode 0777): refused";
    assert!(
        !o.status.success() && stderr(&o).contains(why),
        "{}",
        stderr(&o)
    );
    let c = g.start();
    sleep(1500);
    assert!(!g.healthy(), "a refused check is a failed required check");
    assert!(!ran.exists(), "a world-writable check ran as root");
    assert!(g.snapshot()["waiting"].to_string().contains(why));
    let st = g.cmd(&["status"], None).output().unwrap();
    assert!(stdout(&st).contains(why), "{}", stdout(&st));
    let m = g.cmd(&["status", "--prometheus"], None).output().unwrap();
    assert!(
        stdout(&m).contains("abguard_checks_refused 1\n"),
        "{}",
        stdout(&m)
    );
    let o = g.cmd(&["gate-fail", "--no-reboot"], None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    finish(c, 5);
    let last = g.m.history().pop().unwrap();
    assert!(last["reasons"].to_string().contains(why), "{last}");
    assert_eq!(cgpt_attrs(&g.img, 4).1, 0, "rolled back");
}

#[test]
fn check_output_is_capped_private_and_never_through_a_symlink() {
    let g = first_boot("STABLE_FOR=0\n");
    // 300 KiB of output, a secret at the start
    check(
        &g,
        "loud",
        "echo TOKEN=s3cret; head -c 307200 /dev/zero | tr '\\0' x; echo",
    );
    let c = g.start();
    finish(c, 15);
    assert!(g.healthy());
    let log = g.m.p("run/abguard/checks/loud.log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!((65536..65536 + 200).contains(&size), "log of {size} bytes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("more bytes cut"), "the cut is not said");
    use std::os::unix::fs::MetadataExt;
    let hist = g.m.p("sysroot/var/lib/abguard/attempts.jsonl");
    for p in [&log, &g.m.p("run/abguard/gate.json"), &hist] {
        let mode = std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
    }
    let out = g.m.history().pop().unwrap()["gate"]["checks"][0]["output"].to_string();
    assert!(out.len() < 5000 && out.contains("TOKEN"), "{}", out.len());
}

#[test]
fn a_symlinked_checks_log_dir_is_refused() {
    let g = first_boot("STABLE_FOR=0\n");
    check(&g, "port", "echo hello");
    let outside = g.m.p("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, g.m.p("run/abguard/checks")).unwrap();
    let c = g.start();
    sleep(1500);
    assert!(!g.healthy(), "a check that could not log must not pass");
    let s = g.snapshot()["waiting"].to_string();
    assert!(s.contains("is a symlink"), "{s}");
    let o = g.cmd(&["gate-fail", "--no-reboot"], None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    finish(c, 5);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through the link"
    );
}
