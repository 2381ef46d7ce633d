//! Around a rollback, on fake machines: a fallback GRUB made on its own is recorded once
//! and counted; the build that failed is held and un-staged when it comes back; `allow`
//! releases it; a different build stages normally.
mod common;
use common::*;

/// GRUB's choice on the image, as the next boot would make it.
fn grub_next(img: &std::path::Path) -> String {
    stdout(&abguard(&["next", "--disk", img.to_str().unwrap()]))
        .trim()
        .to_string()
}

/// The machine now boots USR-A (1.0.0), dm-verity fine.
fn boot_a(m: &FakeMachine) {
    let h = sample().var("USR_A_ROOTHASH");
    m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m.os_release("1.0.0");
}

/// The slot's kernel as flatcar-postinst leaves it on /boot: the root hash at 0x40.
fn kernel_with_hash(m: &FakeMachine, name: &str, hash: &str) {
    let mut k = vec![0u8; 0x40];
    k.extend_from_slice(hash.as_bytes());
    k.resize(4096, 0);
    let p = m.p("sysroot/boot/flatcar");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(name), k).unwrap();
}

fn events(m: &FakeMachine) -> Vec<String> {
    m.history()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect()
}

fn attrs_b(img: &std::path::Path) -> (u8, u8, bool) {
    let o = abguard(&["status", "--json", "--disk", img.to_str().unwrap()]);
    let s = &json(&o)["slots"][1];
    (
        s["priority"].as_u64().unwrap() as u8,
        s["tries"].as_u64().unwrap() as u8,
        s["successful"].as_bool().unwrap(),
    )
}

/// B's first boot gets as far as the initrd's verdict, then the power goes: GRUB falls
/// back to A, which records the fallback once, counts it, and holds B's build.
fn power_cut_during_first_boot_of_b(dir: &std::path::Path) -> (std::path::PathBuf, FakeMachine) {
    let img = staged_and_booted_b(dir);
    let m = machine_on_first_boot_of_b(&img);
    assert!(m.initrd(&[]).status.success());
    assert_eq!(grub_next(&img), "3", "GRUB falls back: B has no try left");
    boot_a(&m);
    std::fs::create_dir_all(m.p("sys/fs/pstore")).unwrap();
    std::fs::write(
        m.p("sys/fs/pstore/dmesg-ramoops-0"),
        "<6>[ 3.1] systemd[1]: Started web.service\n<0>[ 9.9] Kernel panic - not syncing: Attempted to kill init!\n",
    )
    .unwrap();
    let o = m.initrd(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        json(&o)["reasons"]
            .to_string()
            .contains("GRUB fell back from USR-B"),
        "{}",
        json(&o)
    );
    (img, m)
}

#[test]
fn a_fallback_is_recorded_once_counted_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (img, m) = power_cut_during_first_boot_of_b(dir.path());
    // two more boots of A: still one fallback
    for _ in 0..2 {
        assert_eq!(grub_next(&img), "3");
        assert!(m.initrd(&[]).status.success());
    }
    assert_eq!(
        events(&m),
        ["initrd", "fallback", "initrd", "initrd", "initrd"]
    );
    let hist = m.history();
    let (attempt, f) = (&hist[0], &hist[1]);
    assert_eq!(f["verdict"], "rollback");
    assert_eq!(f["failed"]["label"], "USR-B");
    assert_eq!(f["failed"]["version_id"], "2.0.0");
    assert_eq!(f["failed"]["root_hash"], sample().var("USR_B_ROOTHASH"));
    assert_eq!(f["failed"]["tried_at"], attempt["time"]);
    assert_eq!(f["booted"]["label"], "USR-A");
    let reasons = f["reasons"].to_string();
    assert!(
        reasons.contains(
            "no verdict was reached: hang, panic, power loss or a reboot before the gate"
        ),
        "{reasons}"
    );
    assert!(reasons.contains("needs-health-check"), "{reasons}");
    assert!(reasons.contains("Kernel panic - not syncing"), "{reasons}");
    let t = &hist[4]["totals"];
    assert_eq!(
        (
            &t["rollbacks"],
            &t["failed_first_boots"],
            &t["fallbacks"],
            &t["boots"]
        ),
        (&1.into(), &1.into(), &1.into(), &4.into()),
        "{t}"
    );
    // the build is held, and status says so
    let st = stdout(&m.verb(&["status"]));
    assert!(st.contains("held: build 2.0.0"), "{st}");
    let st = json(&m.verb(&["status", "--json"]));
    assert_eq!(st["held"][0]["root_hash"], sample().var("USR_B_ROOTHASH"));
    assert_eq!(st["held"][0]["event"], "fallback");
    assert_eq!(st["assessment_source"], "initrd");
}

#[test]
fn a_gate_failure_holds_the_build_and_report_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert!(m.initrd(&[]).status.success());
    m.verb(&["gate-fail", "--unit", "web.service", "--no-reboot"]);
    let held: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.p("sysroot/var/lib/abguard/held.json")).unwrap())
            .unwrap();
    assert_eq!(held["held"][0]["root_hash"], sample().var("USR_B_ROOTHASH"));
    // (its version comes from the booted /usr, which this fake machine does not mount)
    assert_eq!(held["held"][0]["event"], "gate-failed");
    // the spent slot after a gate failure is explained: A's boot records no fallback
    assert_eq!(grub_next(&img), "3");
    boot_a(&m);
    assert!(m.initrd(&[]).status.success());
    assert_eq!(events(&m), ["initrd", "gate-failed", "initrd"]);

    // ON_FAILURE=report: the failure is recorded, the build is not held
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    std::fs::create_dir_all(m.p("sysroot/etc/abguard")).unwrap();
    std::fs::write(
        m.p("sysroot/etc/abguard/abguard.conf"),
        "ON_FAILURE=report\n",
    )
    .unwrap();
    assert!(m.initrd(&[]).status.success());
    m.verb(&["gate-fail", "--unit", "web.service", "--no-reboot"]);
    assert!(!m.p("sysroot/var/lib/abguard/held.json").exists());
}

#[test]
fn the_same_build_staged_again_is_unstaged_another_stages_allow_releases() {
    let dir = tempfile::tempdir().unwrap();
    let (img, m) = power_cut_during_first_boot_of_b(dir.path());
    let d = img.to_str().unwrap();
    let b_hash = sample().var("USR_B_ROOTHASH");
    // update_engine writes the same payload and its kernel, postinst stages it
    kernel_with_hash(&m, "vmlinuz-b", &b_hash);
    assert!(abguard(&["stage", "--disk", d, "--partition", "4"])
        .status
        .success());
    assert_eq!(grub_next_dry(&img), "4", "staged: the next boot would be B");
    // /run/reboot-required appears: abguard-guard-staged.service
    let o = m.verb(&["guard-staged", "--json"]);
    let r = json(&o);
    assert_eq!(r["event"], "restage-refused");
    assert_eq!(r["verdict"], "unstaged");
    assert_eq!(r["failed"]["root_hash"], b_hash);
    assert_eq!(
        attrs_b(&img),
        (2, 0, false),
        "un-staged: tries=0 successful=0"
    );
    assert_eq!(grub_next_dry(&img), "3", "the next boot stays on A");
    // the next boot of A sees B spent, explained by the refusal: no second fallback
    assert!(m.initrd(&[]).status.success());
    assert_eq!(
        events(&m).iter().filter(|e| *e == "fallback").count(),
        1,
        "{:?}",
        events(&m)
    );
    let t = m.history().last().unwrap()["totals"].clone();
    assert_eq!(
        (&t["rollbacks"], &t["restages_refused"]),
        (&1.into(), &1.into()),
        "{t}"
    );

    // `abguard stage` on the running system refuses it outright (exit 3, nothing written)
    let mut args = vec!["stage".to_string(), "--partition".into(), "4".into()];
    args.extend(m.probe_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = std::fs::read(&img).unwrap();
    let o = abguard(&refs);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("abguard allow --root-hash"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&img).unwrap(), before);

    // a different build (another root hash) stages and stays staged
    kernel_with_hash(&m, "vmlinuz-b", &"c".repeat(64));
    m.verb(&["stage", "--partition", "4"]);
    let o = m.verb(&["guard-staged"]);
    assert!(stdout(&o).contains("not held"), "{}", stdout(&o));
    assert_eq!(grub_next_dry(&img), "4");

    // allow: the held build may come back
    let root = m.p("sysroot");
    let o = abguard(&[
        "allow",
        "--version",
        "9.9.9",
        "--sysroot",
        root.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "no such held build is an error");
    let o = abguard(&[
        "allow",
        "--version",
        "2.0.0",
        "--json",
        "--sysroot",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["released"][0]["root_hash"], b_hash);
    assert_eq!(json(&o)["held"], serde_json::json!([]));
    assert_eq!(events(&m).last().unwrap(), "allowed");
    kernel_with_hash(&m, "vmlinuz-b", &b_hash);
    m.verb(&["stage", "--partition", "4"]);
    m.verb(&["guard-staged"]);
    assert_eq!(grub_next_dry(&img), "4", "released: staged normally");
}

fn grub_next_dry(img: &std::path::Path) -> String {
    stdout(&abguard(&[
        "next",
        "--dry-run",
        "--disk",
        img.to_str().unwrap(),
    ]))
    .trim()
    .to_string()
}

#[test]
fn a_late_assessment_says_so_in_status_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let m = FakeMachine::new(&img);
    boot_a(&m);
    // the stock-image service in the booted system: /usr at /usr
    std::fs::write(m.p("mountinfo"), "1 0 254:9 / / rw - ext4 /dev/vda9 rw\n25 1 253:0 / /usr ro - squashfs /dev/mapper/usr ro\n").unwrap();
    let mut args: Vec<String> = vec!["assess".into(), "--no-reboot".into()];
    args.extend(
        m.probe_args()
            .into_iter()
            .map(|a| if a == "/sysusr/usr" { "/usr".into() } else { a }),
    );
    args.extend([
        "--dm-status".into(),
        m.p("dm-status").to_str().unwrap().into(),
    ]);
    args.extend([
        "--dm-table".into(),
        m.p("dm-table").to_str().unwrap().into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = abguard(&refs);
    assert!(o.status.success(), "{}", stderr(&o));
    let st = stdout(&m.verb(&["status"]));
    assert!(
        st.contains("assessed late: the initrd module did not run"),
        "{st}"
    );
    let prom = stdout(&m.verb(&["status", "--prometheus"]));
    assert!(
        prom.contains("abguard_assessment_source{source=\"late\"} 1\n"),
        "{prom}"
    );
    assert!(
        prom.contains("abguard_assessment_source{source=\"initrd\"} 0\n"),
        "{prom}"
    );
}
