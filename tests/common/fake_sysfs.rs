//! The one fake sysfs the tests build: a tree shaped like the kernel's, where
//! devices/ holds the nodes and class/block and dev/block link to them. Shared by the
//! integration tests' fake machines (tests/common/mod.rs) and the unit tests of
//! src/probe/sysfs.rs (included there by path), so both read the same shape.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub struct FakeSys {
    root: PathBuf,
    /// The temporary directory when the tree owns one.
    _dir: Option<tempfile::TempDir>,
}

impl FakeSys {
    /// A tree in its own temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FakeSys::at(dir.path());
        s._dir = Some(dir);
        s
    }

    /// A tree at `root` (created), owned by the caller.
    pub fn at(root: &Path) -> Self {
        for d in ["class/block", "dev/block", "devices/virtual/block"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        FakeSys {
            root: root.to_path_buf(),
            _dir: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn link(&self, name: &str, devpath: &str, majmin: &str) {
        let r = self.root();
        for l in [
            r.join("class/block").join(name),
            r.join("dev/block").join(majmin),
        ] {
            let _ = std::fs::remove_file(&l);
            symlink(format!("../../{devpath}"), l).unwrap();
        }
        std::fs::write(r.join(devpath).join("dev"), format!("{majmin}\n")).unwrap();
    }

    /// A whole disk (`vda`, `254:0`).
    pub fn disk(&self, name: &str, majmin: &str) {
        let p = format!("devices/pci0000:00/block/{name}");
        std::fs::create_dir_all(self.root().join(&p)).unwrap();
        self.link(name, &p, majmin);
    }

    /// Partition `n` of `disk`.
    pub fn part(&self, disk: &str, name: &str, n: u32, majmin: &str) {
        let p = format!("devices/pci0000:00/block/{disk}/{name}");
        std::fs::create_dir_all(self.root().join(&p)).unwrap();
        std::fs::write(self.root().join(&p).join("partition"), format!("{n}\n")).unwrap();
        self.link(name, &p, majmin);
    }

    /// A device-mapper device (replacing one of the same name) on top of `slaves`,
    /// partitions made with [`FakeSys::part`] or names of none.
    pub fn dm(&self, name: &str, dm_name: &str, majmin: &str, slaves: &[&str]) {
        let p = format!("devices/virtual/block/{name}");
        let d = self.root().join(&p);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dm")).unwrap();
        std::fs::create_dir_all(d.join("slaves")).unwrap();
        std::fs::write(d.join("dm/name"), format!("{dm_name}\n")).unwrap();
        for s in slaves {
            let disk = self.disk_of(s).unwrap_or_else(|| "x".into());
            symlink(
                format!("../../../../pci0000:00/block/{disk}/{s}"),
                d.join("slaves").join(s),
            )
            .unwrap();
        }
        self.link(name, &p, majmin);
    }

    /// The disk a partition made with [`FakeSys::part`] is on.
    fn disk_of(&self, part: &str) -> Option<String> {
        let block = self.root().join("devices/pci0000:00/block");
        std::fs::read_dir(block).ok()?.flatten().find_map(|e| {
            e.path()
                .join(part)
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
    }
}
