//! Stock-image mode: `abguard assess` is the initrd assessment with the booted system's
//! defaults, and `make sysext` packs everything it needs into a systemd-sysext image.

mod common;
use common::*;

#[test]
fn assess_decides_like_the_initrd_and_records_it_as_assess() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let d = img.to_str().unwrap();
    let m = machine_on_first_boot_of_b(&img);
    // in the booted system /usr is mounted at /usr, not /sysusr/usr
    std::fs::write(m.p("mountinfo"), "1 0 254:9 / / rw - ext4 /dev/vda9 rw\n25 1 253:0 / /usr ro - squashfs /dev/mapper/usr ro\n31 1 0:40 / /usr ro - overlay sysext ro\n").unwrap();
    let p = |r: &str| m.p(r).to_str().unwrap().to_string();
    let args = [
        "assess",
        "--no-reboot",
        "--json",
        "--disk",
        d,
        "--cmdline",
        &p("cmdline"),
        "--sysfs",
        &p("sys"),
        "--mountinfo",
        &p("mountinfo"),
        "--run-dir",
        &p("run"),
        "--sysroot",
        &p("sysroot"),
        "--dm-status",
        &p("dm-status"),
        "--dm-table",
        &p("dm-table"),
    ];
    let o = abguard(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["event"], "assess");
    assert_eq!(j["verdict"], "needs-health-check");
    assert_eq!(
        j["booted"]["source"], "cmdline+sysfs",
        "the sysext overlay on /usr is skipped"
    );
    assert!(m.p("run/abguard/needs-health-check").exists());
    assert_eq!(m.history()[0]["event"], "assess");
}

#[test]
fn make_sysext_packs_the_binary_units_and_release_file() {
    let out = run_ok("make", &["-s", "-C", repo().to_str().unwrap(), "sysext"]);
    let raw = repo().join("target/sysext/abguard.raw");
    assert!(raw.is_file(), "make sysext wrote {}: {out}", raw.display());
    let list = run_ok("unsquashfs", &["-l", raw.to_str().unwrap()]);
    for f in [
        "usr/bin/abguard",
        "usr/lib/extension-release.d/extension-release.abguard",
        "usr/lib/systemd/system/abguard-assess.service",
        "usr/lib/systemd/system/abguard-gate.service",
        "usr/lib/systemd/system/update-engine.service.d/50-abguard.conf",
        "usr/lib/systemd/system/locksmithd.service.d/50-abguard.conf",
        "usr/lib/systemd/system/abguard-locksmithd.path",
        "usr/share/abguard/abguard.rules.yml",
        "usr/lib/systemd/system/sysinit.target.d/10-abguard.conf",
        "usr/lib/systemd/system/multi-user.target.d/10-abguard.conf",
        "usr/lib/systemd/system-generators/abguard-generator",
        "usr/lib/abguard/abguard.conf",
    ] {
        assert!(
            list.lines()
                .any(|l| l.ends_with(&format!("squashfs-root/{f}"))),
            "{f} missing from the sysext:\n{list}"
        );
    }
    assert!(
        !list.contains("dracut"),
        "the initrd module has no place in a sysext"
    );
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        "unsquashfs",
        &[
            "-q",
            "-d",
            dir.path().join("x").to_str().unwrap(),
            raw.to_str().unwrap(),
            "usr/lib/extension-release.d/extension-release.abguard",
        ],
    );
    let rel = std::fs::read_to_string(
        dir.path()
            .join("x/usr/lib/extension-release.d/extension-release.abguard"),
    )
    .unwrap();
    assert!(
        rel.contains("ID=flatcar") && rel.contains("SYSEXT_LEVEL=1.0"),
        "{rel}"
    );
}
