//! The hang budget and the breadcrumbs on fake machines: what B's first boot arms and
//! leaves on ROOT, and the stage A's boot names when GRUB fell back from B.
mod common;
use common::*;

/// This boot's /proc: its boot ID and uptime.
fn proc_of(m: &FakeMachine, boot_id: &str, uptime: &str) {
    let p = m.p("proc/sys/kernel/random");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("boot_id"), format!("{boot_id}\n")).unwrap();
    std::fs::write(m.p("proc/uptime"), format!("{uptime} 1.00\n")).unwrap();
}

fn watchdog(m: &FakeMachine, bootstatus: u32) {
    let d = m.p("sys/class/watchdog/watchdog0");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("identity"), "i6300ESB timer\n").unwrap();
    std::fs::write(d.join("bootstatus"), format!("{bootstatus}\n")).unwrap();
}

fn crumb(m: &FakeMachine) -> Option<serde_json::Value> {
    let t = std::fs::read(m.p("sysroot/var/lib/abguard/attempt.json")).ok()?;
    Some(serde_json::from_slice(&t).unwrap())
}

/// The machine boots USR-A (1.0.0), 3 s after its kernel started.
fn boot_a(m: &FakeMachine, boot_id: &str) {
    let h = sample().var("USR_A_ROOTHASH");
    m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m.os_release("1.0.0");
    proc_of(m, boot_id, "3.00");
}

/// How B's first boot ends, set up on the machine before A's boot.
#[derive(Clone, Copy, Debug)]
enum End {
    /// B's initrd never ran (stage 0, the kernel or GRUB); `kernel`: EFI-SYSTEM is
    /// mounted and B's kernel is on it.
    NoInitrd { kernel: bool },
    /// B's initrd ran, then: pstore, the watchdog's bootstatus (None: no device).
    AfterInitrd { panic: bool, dog: Option<u32> },
}

/// B's first boot ends as `end`; A boots and records the fallback: its record.
fn fallback_after(end: End) -> (FakeMachine, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let img = {
        // the image must outlive the tempdir of this function
        let keep = std::env::temp_dir().join(
            format!("abguard-stage-{}-{:?}.img", std::process::id(), end)
                .replace([' ', '{', '}', ':', ','], ""),
        );
        std::fs::copy(&img, &keep).unwrap();
        keep
    };
    let m = FakeMachine::new(&img);
    std::fs::create_dir_all(m.p("sysroot/var")).unwrap();
    // A's boot that saw B staged: the history knows B was to be tried
    boot_a(&m, "boot-of-a0");
    let d = img.to_str().unwrap();
    assert!(abguard(&["stage", "--disk", d, "--partition", "4"])
        .status
        .success());
    assert!(m.initrd(&[]).status.success());
    // GRUB's gptprio.next: B chosen, its one try spent
    assert_eq!(stdout(&abguard(&["next", "--disk", d])).trim(), "4");
    let h = sample().var("USR_B_ROOTHASH");
    m.boot(4, &verity_cmdline(B_UUID, &h), "V", &h);
    m.os_release("2.0.0");
    proc_of(&m, "boot-of-b", "40.00");
    match end {
        End::NoInitrd { kernel } => {
            // the boot died before abguard ran
            std::fs::create_dir_all(m.p("sysroot/boot/flatcar")).unwrap();
            if kernel {
                let mut k = vec![0u8; 0x40];
                k.extend_from_slice(sample().var("USR_B_ROOTHASH").as_bytes());
                std::fs::write(m.p("sysroot/boot/flatcar/vmlinuz-b"), k).unwrap();
            }
            // GRUB's own spend of the try, as gptprio.next does it
        }
        End::AfterInitrd { panic, dog } => {
            let o = m.initrd(&[]);
            assert!(o.status.success(), "{}", stderr(&o));
            if panic {
                std::fs::create_dir_all(m.p("sys/fs/pstore")).unwrap();
                std::fs::write(
                    m.p("sys/fs/pstore/dmesg-ramoops-0"),
                    "<0>[ 9.9] Kernel panic - not syncing: sysrq triggered crash\n",
                )
                .unwrap();
            }
            if let Some(b) = dog {
                watchdog(&m, b);
            }
        }
    }
    boot_a(&m, "boot-of-a");
    let o = m.initrd(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = m
        .history()
        .into_iter()
        .find(|e| e["event"] == "fallback")
        .unwrap_or_else(|| panic!("no fallback recorded: {:?}", m.history()));
    (m, f)
}

#[test]
fn a_fallback_names_the_stage_the_attempt_reached() {
    #[rustfmt::skip]
    let cases = [
        (End::NoInitrd { kernel: false }, "bootloader", false),
        (End::NoInitrd { kernel: true }, "stage 0 or kernel", false),
        (End::AfterInitrd { panic: true, dog: Some(0) }, "kernel panic", true),
        (End::AfterInitrd { panic: false, dog: Some(0x20) }, "hang", true),
        (End::AfterInitrd { panic: false, dog: Some(0) }, "power loss or reset", true),
        (End::AfterInitrd { panic: false, dog: None }, "initrd", true),
    ];
    for (end, stage, timed) in cases {
        let (m, f) = fallback_after(end);
        assert_eq!(f["stage"], stage, "{end:?}: {f}");
        // B's kernel started 40 s before its record, A's 3 s before its own: ~37 s
        match timed {
            true => {
                let t = f["took_s"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{end:?}: {f}"));
                assert!((36..=40).contains(&t), "{end:?}: took {t}");
            }
            false => assert!(f["took_s"].is_null(), "{end:?}: {f}"),
        }
        assert!(
            f["reasons"]
                .to_string()
                .contains(&format!("stage: {stage}")),
            "{f}"
        );
        // the breadcrumb served its attempt and is gone
        assert_eq!(crumb(&m), None, "{end:?}");
        let st = stdout(&m.verb(&["status"]));
        // the stage is in status's answer to "why did it roll back?"
        assert!(
            st.contains("last failed first boot: USR-B ")
                && st.contains(&format!("  why: stage: {stage}")),
            "{st}"
        );
        let st = json(&m.verb(&["status", "--json"]));
        assert_eq!(st["last_failure"]["event"], "fallback");
        assert_eq!(st["last_failure"]["stage"], stage);
        let prom = stdout(&m.verb(&["status", "--prometheus"]));
        assert!(
            prom.contains(&format!("abguard_fallbacks_total{{stage=\"{stage}\"}} 1\n")),
            "{prom}"
        );
        let _ = std::fs::remove_file(&m.disk);
    }
}

#[test]
fn a_first_boot_arms_the_watchdog_and_leaves_a_breadcrumb_an_ordinary_boot_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    std::fs::create_dir_all(m.p("sysroot/var")).unwrap();
    proc_of(&m, "boot-of-b", "12.50");
    // no watchdog device: recorded in the boot record
    let r = json(&m.initrd(&[]));
    assert_eq!(r["verdict"], "needs-health-check");
    assert!(
        r["reasons"].to_string().contains("no watchdog device"),
        "{r}"
    );
    let c = crumb(&m).expect("breadcrumb on ROOT");
    assert_eq!(
        (&c["reached"], &c["boot_id"]),
        (&"initrd".into(), &"boot-of-b".into())
    );
    assert_eq!(
        c["partuuid"].as_str().unwrap().to_lowercase(),
        B_UUID.to_lowercase()
    );
    assert!(
        c["watchdog"]
            .as_str()
            .unwrap()
            .contains("no watchdog device"),
        "{c}"
    );
    // a device sysfs lists but /dev lacks: not armed, said so, no drop-in for PID 1
    watchdog(&m, 0);
    let r = json(&m.initrd(&[]));
    let reasons = r["reasons"].to_string();
    assert!(
        reasons.contains("watchdog not armed (watchdog0 (i6300ESB timer))"),
        "{reasons}"
    );
    assert!(!m.p("run/systemd/system.conf.d").exists());

    // an ordinary boot: nothing armed, no breadcrumb, no word about the watchdog
    let m2 = FakeMachine::new(&copy(dir.path(), "plain.img"));
    std::fs::create_dir_all(m2.p("sysroot/var")).unwrap();
    proc_of(&m2, "ordinary", "5.00");
    watchdog(&m2, 0);
    let h = sample().var("USR_A_ROOTHASH");
    m2.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m2.os_release("1.0.0");
    let r = json(&m2.initrd(&[]));
    assert_eq!(r["verdict"], "healthy", "{r}");
    assert!(!r.to_string().contains("watchdog"), "{r}");
    assert_eq!(crumb(&m2), None);
}

/// update_engine stages B (no history line), the next boot dies before abguard's initrd
/// runs, GRUB falls back: only the loop guard's breadcrumb says B was tried.
#[test]
fn a_staging_with_no_history_line_is_still_found_by_its_breadcrumb() {
    for with_guard in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let img = copy(dir.path(), "d.img");
        let m = FakeMachine::new(&img);
        std::fs::create_dir_all(m.p("sysroot/var")).unwrap();
        boot_a(&m, "boot-of-a0");
        assert!(m.initrd(&[]).status.success());
        // flatcar-postinst's cgpt: B staged, nothing recorded
        cgpt_add(&img, 4, 2, 1, false);
        if with_guard {
            m.verb(&["guard-staged"]);
            assert_eq!(crumb(&m).unwrap()["reached"], "staged");
        }
        // GRUB: B's try spent; B's boot never reaches the initrd; back on A
        let d = img.to_str().unwrap();
        assert_eq!(stdout(&abguard(&["next", "--disk", d])).trim(), "4");
        boot_a(&m, "boot-of-a1");
        assert!(m.initrd(&[]).status.success());
        let fell: Vec<_> = m
            .history()
            .into_iter()
            .filter(|e| e["event"] == "fallback")
            .collect();
        match with_guard {
            true => {
                assert_eq!(fell.len(), 1, "{:?}", m.history());
                assert_eq!(fell[0]["stage"], "stage 0 or kernel");
                assert_eq!(crumb(&m), None);
            }
            // without it, a spent B is indistinguishable from one older than the history
            false => assert!(fell.is_empty()),
        }
    }
}
