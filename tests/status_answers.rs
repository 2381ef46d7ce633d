//! `abguard status` answers an operator's three questions in its first lines — what
//! runs, what the next reboot does and why, why the last first boot failed — for a node
//! in each state: staged, gate pending, passed, failed, rolled back, held, and steered
//! by hand (pass-gate, fail-gate, mark-good during the gate, disable). Fake machines
//! (tests/common), the real gate with a stand-in for systemctl.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Node {
    _dir: tempfile::TempDir,
    m: FakeMachine,
    fake: PathBuf,
}

/// B staged and booted for its first time, the initrd said needs-health-check; the
/// gate watches web.service.
fn first_boot_of_b() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert_eq!(json(&m.initrd(&[]))["verdict"], "needs-health-check");
    let etc = m.p("sysroot/etc/abguard");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("abguard.conf"),
        "CRITICAL_UNITS=web.service\nSTABLE_FOR=1s\n",
    )
    .unwrap();
    let fake = fake_systemctl(&m.p("fake"));
    Node { _dir: dir, m, fake }
}

impl Node {
    fn cmd(&self, verb: &[&str]) -> Command {
        // the booted system's view: /usr is the sysroot's (the initrd's is /sysusr/usr)
        let mut probe = self.m.probe_args();
        let i = probe.iter().position(|a| a == "--usr").unwrap();
        probe[i + 1] = self.m.p("sysroot/usr").display().to_string();
        let mut c = Command::new(bin());
        c.args(verb)
            .args(probe)
            .env("ABGUARD_SYSTEMCTL", self.fake.join("systemctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, verb: &[&str]) -> Output {
        self.cmd(verb).output().unwrap()
    }

    fn ok(&self, verb: &[&str]) -> Output {
        let o = self.run(verb);
        assert!(o.status.success(), "{verb:?}: {}{}", stdout(&o), stderr(&o));
        o
    }

    /// status as text (its lines), JSON and one line; each exits 0.
    fn status(&self) -> (Vec<String>, serde_json::Value, String) {
        let text = stdout(&self.ok(&["status"]));
        let j = json(&self.ok(&["status", "--json"]));
        let short = stdout(&self.ok(&["status", "--short"]));
        assert_eq!(short.lines().count(), 1, "{short}");
        (text.lines().map(String::from).collect(), j, short)
    }

    fn unit(&self, active: &str, sub: &str) {
        fake_unit(&self.fake, "web.service", active, sub, "i1", 0);
    }

    fn gate(&self) -> Child {
        self.cmd(&["gate-pass", "--no-reboot"]).spawn().unwrap()
    }

    fn wait_for(&self, rel: &str) {
        let t = Instant::now();
        while !self.m.p(rel).exists() {
            assert!(t.elapsed() < Duration::from_secs(20), "no {rel}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The machine rebooted into USR-A (GRUB fell back) and the initrd assessed it.
    fn reboot_into_a(&self) {
        for f in ["run/abguard", "run/first-boot-healthy"] {
            let p = self.m.p(f);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        let h = sample().var("USR_A_ROOTHASH");
        self.m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
        self.m.os_release("1.0.0");
        assert_eq!(json(&self.m.initrd(&[]))["verdict"], "healthy");
    }
}

fn end(mut c: Child) -> Output {
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            c.kill().unwrap();
            panic!("the gate did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_with_output().unwrap()
}

fn starts(lines: &[String], i: usize, want: &str) {
    assert!(
        lines.get(i).is_some_and(|l| l.starts_with(want)),
        "line {i} should start with {want:?}:\n{}",
        lines.join("\n")
    );
}

#[test]
fn staged_says_what_the_next_reboot_tries_and_where_it_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let m = FakeMachine::new(&img);
    let h = sample().var("USR_A_ROOTHASH");
    m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m.os_release("1.0.0");
    assert_eq!(json(&m.initrd(&[]))["verdict"], "healthy");
    let n = Node {
        fake: fake_systemctl(&m.p("fake")),
        m,
        _dir: dir,
    };
    let o = n.ok(&["stage", "--partition", "4"]);
    assert!(stdout(&o).contains("reboot to apply"), "{}", stdout(&o));
    let (t, j, short) = n.status();
    starts(&t, 0, "running: USR-A 1.0.0 (partition 3), good");
    starts(
        &t,
        1,
        "next reboot: tries USR-B (staged, 1 try); falls back to USR-A when that first boot fails",
    );
    assert_eq!(j["running"]["state"], "good");
    assert_eq!(j["slots"][1]["state"], "staged");
    assert_eq!(j["next_reboot"]["label"], "USR-B");
    assert_eq!(short.trim(), "USR-A 1.0.0 good; next reboot: USR-B");
    // the manual record names the booted slot the probe knew
    let last = n.m.history().pop().unwrap();
    assert_eq!(last["event"], "manual-stage");
    assert_eq!(last["booted"]["label"], "USR-A");
}

#[test]
fn pending_then_passed_by_hand() {
    let n = first_boot_of_b();
    n.unit("activating", "start");
    let gate = n.gate();
    n.wait_for("run/abguard/gate.json");
    let (t, j, short) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), on trial");
    starts(
        &t,
        1,
        "next reboot: back to USR-A — USR-B is on trial and its health gate has not decided",
    );
    starts(&t, 2, "health gate pending since");
    assert!(
        t[2].contains("web.service (activating/start") && t[2].contains("abguard pass-gate"),
        "{}",
        t[2]
    );
    assert_eq!(j["health_gate"]["state"], "pending");
    assert_eq!(j["gate"]["state"], "pending");
    assert!(short.contains("health gate pending"), "{short}");
    // an operator passes it: the watcher stops, update-engine is released
    let o = n.ok(&["pass-gate", "--reason", "ticket 42"]);
    assert!(stdout(&o).contains("released"), "{}", stdout(&o));
    assert!(end(gate).status.success());
    assert!(n.m.p("run/first-boot-healthy").exists());
    let last = n.m.history().pop().unwrap();
    assert_eq!(last["event"], "manual-pass-gate");
    assert_eq!(last["booted"]["label"], "USR-B");
    let (t, j, _) = n.status();
    starts(&t, 2, "USR-B was passed by hand at");
    assert!(
        t[2].contains("ticket 42") && t[2].ends_with("update-engine marks it good"),
        "{}",
        t[2]
    );
    assert!(!t.iter().any(|l| l.contains("pending")), "{}", t.join("\n"));
    assert_eq!(j["health_gate"]["state"], "passed-by-hand");
    assert_eq!(j["gate"]["state"], "passed-by-hand");
    assert_eq!(j["assessment_superseded"], true);
    assert!(t.iter().any(
        |l| l.starts_with("initrd assessment: needs-health-check") && l.contains("superseded")
    ));
    // a second pass has nothing to pass: refused, exit 3
    assert_eq!(n.run(&["pass-gate"]).status.code(), Some(3));
}

#[test]
fn passed_reads_as_passed_and_warns_until_marked_good() {
    let n = first_boot_of_b();
    n.unit("active", "running");
    assert!(end(n.gate()).status.success());
    let (t, j, _) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), on trial");
    starts(
        &t,
        1,
        "next reboot: back to USR-A — USR-B passed its health gate but is not marked good yet",
    );
    starts(&t, 2, "USR-B passed its health gate at");
    assert!(t[2].ends_with("update-engine marks it good"), "{}", t[2]);
    assert_eq!(j["health_gate"]["state"], "passed");
    assert!(!t.iter().any(|l| l.contains("pending")), "{}", t.join("\n"));
    // marked good: the gate's line says so, the next reboot stays
    n.ok(&["mark-good"]);
    let (t, _, short) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), good");
    starts(&t, 1, "next reboot: USR-B again (good)");
    assert!(t[2].ends_with("it is marked good"), "{}", t[2]);
    assert_eq!(
        short.trim(),
        "USR-B 2.0.0 good; health gate passed; next reboot: USR-B"
    );
}

#[test]
fn failed_then_rolled_back_and_held_say_why() {
    let n = first_boot_of_b();
    n.unit("active", "running");
    let gate = n.gate();
    n.wait_for("run/abguard/gate.json");
    n.unit("failed", "failed");
    assert!(end(gate).status.success());
    let (t, j, _) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), held");
    starts(
        &t,
        1,
        "next reboot: back to USR-A — USR-B failed its health gate at",
    );
    starts(&t, 2, "USR-B failed its health gate at");
    assert!(t[2].contains("critical unit web.service"), "{}", t[2]);
    starts(&t, 3, "last failed first boot: USR-B 2.0.0 at");
    assert!(t[3].ends_with("(gate-failed)"), "{}", t[3]);
    starts(&t, 4, "  why: critical unit web.service");
    assert_eq!(j["health_gate"]["state"], "failed");
    assert_eq!(j["last_failure"]["event"], "gate-failed");
    assert!(t
        .iter()
        .any(|l| l.contains("superseded: the health gate failed")));
    // GRUB falls back: USR-A runs, the failure stays explained, the build is held
    n.reboot_into_a();
    let (t, j, short) = n.status();
    starts(&t, 0, "running: USR-A 1.0.0 (partition 3), good");
    starts(&t, 1, "next reboot: USR-A again (good)");
    starts(&t, 2, "last failed first boot: USR-B 2.0.0 at");
    starts(&t, 3, "  why: critical unit web.service");
    assert!(
        t.iter()
            .any(|l| l.starts_with("  failed units: web.service")),
        "{}",
        t.join("\n")
    );
    assert_eq!(j["slots"][1]["state"], "held");
    assert_eq!(j["slots"][1]["version_id"], "2.0.0");
    let held: Vec<&String> = t.iter().filter(|l| l.starts_with("held: ")).collect();
    assert_eq!(held.len(), 1);
    assert!(
        held[0].starts_with("held: build 2.0.0 (") && held[0].len() < 140,
        "{}",
        held[0]
    );
    assert!(
        held[0].ends_with("`abguard allow --version 2.0.0`"),
        "{}",
        held[0]
    );
    assert!(short.contains("last failure: gate-failed"), "{short}");
    // the history's columns line up: the verdict starts in the same column everywhere
    let hist: Vec<&String> = t
        .iter()
        .skip_while(|l| *l != "history:")
        .skip(1)
        .filter(|l| !l.starts_with("      "))
        .collect();
    let col = |l: &str| l.rfind(' ').unwrap();
    assert!(
        hist.len() >= 3 && hist.iter().all(|l| col(l) == col(hist[0])),
        "{hist:#?}"
    );
}

#[test]
fn fail_gate_by_hand_takes_the_gate_fail_path() {
    let n = first_boot_of_b();
    n.unit("activating", "start");
    let gate = n.gate();
    n.wait_for("run/abguard/gate.json");
    let o = n.ok(&["fail-gate", "--reason", "bad canary", "--no-reboot"]);
    assert!(stdout(&o).contains("reboot to apply"), "{}", stdout(&o));
    assert!(end(gate).status.success());
    let last = n.m.history().pop().unwrap();
    assert_eq!(last["event"], "gate-failed");
    assert!(last["reasons"][0]
        .as_str()
        .unwrap()
        .contains("failed by hand (abguard fail-gate): bad canary"));
    assert!(
        !n.m.p("run/first-boot-healthy").exists(),
        "update-engine stays held"
    );
    let (t, _, _) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), held");
    starts(&t, 3, "last failed first boot: USR-B 2.0.0");
    starts(
        &t,
        4,
        "  why: failed by hand (abguard fail-gate): bad canary",
    );
    assert_eq!(
        n.run(&["fail-gate"]).status.code(),
        Some(3),
        "nothing pending any more"
    );
}

#[test]
fn mark_good_during_the_gate_passes_it_instead_of_stranding_the_node() {
    let n = first_boot_of_b();
    n.unit("activating", "start");
    let gate = n.gate();
    n.wait_for("run/abguard/gate.json");
    let o = n.ok(&["mark-good"]);
    assert!(stderr(&o).contains("passed by hand"), "{}", stderr(&o));
    assert!(end(gate).status.success());
    assert!(
        n.m.p("run/first-boot-healthy").exists(),
        "update-engine and locksmithd released"
    );
    assert!(!n.m.p("run/abguard/needs-health-check").exists());
    let events: Vec<String> =
        n.m.history()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect();
    assert!(
        events.ends_with(&["manual-mark-good".into(), "manual-pass-gate".into()]),
        "{events:?}"
    );
    // the deadline firing later has nothing to do, and says so
    let o = n.ok(&["gate-fail", "--no-reboot"]);
    assert!(
        stderr(&o).contains("already proven healthy"),
        "{}",
        stderr(&o)
    );
    let (t, _, _) = n.status();
    starts(&t, 0, "running: USR-B 2.0.0 (partition 4), good");
    starts(&t, 1, "next reboot: USR-B again (good)");
    starts(&t, 2, "USR-B was passed by hand at");
    assert!(!t.iter().any(|l| l.contains("pending")), "{}", t.join("\n"));
}

#[test]
fn disabled_node_passes_at_once_and_status_says_so_first() {
    let n = first_boot_of_b();
    let sysroot = n.m.p("sysroot");
    let o = abguard(&[
        "disable",
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--reason",
        "debugging",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    n.unit("failed", "failed");
    assert!(end(n.gate()).status.success());
    assert!(n.m.p("run/first-boot-healthy").exists());
    let events: Vec<String> =
        n.m.history()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect();
    assert!(
        events.ends_with(&["disabled".into(), "gate-passed".into()]),
        "{events:?}"
    );
    let (t, j, short) = n.status();
    starts(&t, 2, "abguard is DISABLED on this node (since");
    assert!(t[2].contains("debugging"), "{}", t[2]);
    starts(&t, 3, "USR-B passed its health gate at");
    assert_eq!(j["disabled"]["reason"], "debugging");
    assert!(short.contains("abguard DISABLED"), "{short}");
    let o = abguard(&["enable", "--sysroot", sysroot.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(!stdout(&n.ok(&["status"])).contains("DISABLED"));
    assert_eq!(n.m.history().pop().unwrap()["event"], "enabled");
}
