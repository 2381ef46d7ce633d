//! The verbs on a real block device, as users test images: `losetup` the image, `partx
//! -a` it (this kernel does not scan partitions itself), mount a USR slot, and resolve
//! it through the real /sys and /proc/self/mountinfo. Needs root (CI runs as root).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Releases the mount, the partitions and the loop device even when a test fails.
struct Loop {
    dev: String,
    mounts: Vec<PathBuf>,
}

impl Loop {
    fn attach(img: &Path) -> Loop {
        let dev = run_ok("losetup", &["-f", "--show", img.to_str().unwrap()])
            .trim()
            .to_string();
        let l = Loop {
            dev,
            mounts: Vec::new(),
        };
        run_ok("partx", &["-a", &l.dev]);
        l
    }
    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
    fn mount(&mut self, n: u32, at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        run_ok("mount", &["-o", "ro", &self.part(n), at.to_str().unwrap()]);
        self.mounts.push(at.to_path_buf());
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("partx").args(["-d", &self.dev]).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[test]
fn verbs_on_a_loop_device_and_booted_slot_through_real_sysfs() {
    if !root("loop devices") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let mut l = Loop::attach(&img);
    let dev = l.dev.clone();
    assert!(
        Path::new(&l.part(3)).exists(),
        "partx created {}",
        l.part(3)
    );

    // the block device reads like the image (sector size from BLKSSZGET)
    let j = json(&abguard(&["status", "--disk", &dev, "--json"]));
    assert_eq!(j["slots"][0]["partuuid"], A_UUID);
    assert_eq!(j["next_boot"], 3);

    // stage and GRUB's next through the device; cgpt on the image file agrees
    assert!(abguard(&["stage", "--disk", &dev, "--partition", "4"])
        .status
        .success());
    assert_eq!(stdout(&abguard(&["next", "--disk", &dev])).trim(), "4");
    assert_eq!(cgpt_attrs(&img, 4), (2, 0, false, 0x2));

    // "boot" B: mount its filesystem as /usr and resolve it through the real /sys
    let usr = dir.path().join("usr");
    l.mount(4, &usr);
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!("mount.usr=PARTUUID={B_UUID} root=LABEL=ROOT"),
    )
    .unwrap();
    let probe = [
        "--usr",
        usr.to_str().unwrap(),
        "--cmdline",
        cmdline.to_str().unwrap(),
    ];

    let mut a = vec!["status", "--json"];
    a.extend(probe);
    let j = json(&abguard(&a));
    assert_eq!(
        j["disk"], dev,
        "the disk is found from the booted partition's parent"
    );
    assert_eq!(j["booted"], 4);

    let (run, root) = (dir.path().join("run"), dir.path().join("root"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let initrd = || {
        let mut a = vec![
            "initrd",
            "--no-reboot",
            "--json",
            "--run-dir",
            run.to_str().unwrap(),
            "--sysroot",
            root.to_str().unwrap(),
        ];
        a.extend(probe);
        abguard(&a)
    };
    let o = initrd();
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["verdict"], "needs-health-check");
    assert_eq!(j["booted"]["source"], "cmdline+sysfs");
    assert_eq!(
        j["version_id"], "2.0.0",
        "os-release read from the mounted slot"
    );
    assert_eq!(j["disk"], dev);
    assert!(j["reasons"]
        .to_string()
        .contains("not on a device-mapper device"));

    // mark-good with no --partition marks the booted slot, like flatcar-setgoodroot
    let mut a = vec!["mark-good"];
    a.extend(probe);
    let o = abguard(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cgpt_attrs(&img, 4), (2, 0, true, 0x102));

    // a command line naming the other slot is caught by the sysfs cross-check
    std::fs::write(&cmdline, format!("mount.usr=PARTUUID={A_UUID}")).unwrap();
    assert_eq!(json(&initrd())["verdict"], "mismatch");
}
